using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>The models train: the loss back-propagates to every parameter (tied embeddings included).</summary>
public sealed class TrainingModeTests
{
    public static TheoryData<string> Models => new(Fixtures.TinyModels);

    [Theory]
    [MemberData(nameof(Models))]
    public void Loss_backpropagates_to_every_parameter(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        model.train();
        var r = Reference(name);
        var input = ReferenceInput(name, r);
        if (name == "bert-tiny") input = input with { Labels = torch.tensor(new long[] { 0, 3, 4 }) };
        if (name == "bert-ner-tiny") input = input with { Labels = r["input_ids"].remainder(9).masked_fill(r["attention_mask"].eq(0), -100) };
        if (name == "bert-qa-tiny") input = input with { StartPositions = torch.tensor(new long[] { 1, 2, 3 }), EndPositions = torch.tensor(new long[] { 4, 5, 40 }) };
        var o = model.forward(input);
        Assert.NotNull(o.Loss);
        Assert.Equal(0, o.Loss!.dim());
        o.Loss.backward();
        foreach (var (n, p) in model.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name}: no gradient for {n}");
            if (n.Contains("pooler") && name != "bert-tiny") continue;
            Assert.True(p.grad!.abs().sum().item<float>() > 0, $"{name}: zero gradient for {n}");
        }
    }
}
