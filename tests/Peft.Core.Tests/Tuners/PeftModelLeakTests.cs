using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

[Collection(LeakTestCollection.Name)]
public class PeftModelLeakTests
{
    [Theory]
    [InlineData("linear")]
    [InlineData("dora")]
    [InlineData("embedding")]
    [InlineData("modules-to-save")]
    public void ForwardInAScopeLeavesNoTensors(string name)
    {
        var pm = PeftModel.GetPeftModel(new TinyMlp(), LoraTunerMatrixTests.Config(name));
        using var ids = TinyMlp.Input();
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            pm.forward(new ModelInput { InputIds = ids });
        }, 20, what: name);
        LeakCheck.AssertNoGrowth(() =>
        {
            pm.MergeAdapter();
            pm.UnmergeAdapter();
        }, 5, what: name + " merge/unmerge");
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("dora")]
    [InlineData("embedding")]
    public void Bf16ModelWithFloat32AdaptersLeavesNoTensors(string name)
    {
        var model = new TinyMlp();
        model.to(ScalarType.BFloat16);
        var pm = PeftModel.GetPeftModel(model, LoraTunerMatrixTests.Config(name)); // adapters upcast to float32
        using var ids = TinyMlp.Input();
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            pm.forward(new ModelInput { InputIds = ids });
        }, 20, what: name + " bf16");
        LeakCheck.AssertNoGrowth(() =>
        {
            pm.MergeAdapter();
            pm.UnmergeAdapter();
        }, 5, what: name + " bf16 merge/unmerge");
    }
}
