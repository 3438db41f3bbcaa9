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
}
