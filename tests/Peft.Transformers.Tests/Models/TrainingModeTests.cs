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

/// <summary>Prefix key/values (PEFT prefix tuning) on the encoder: attended to, not modified, positions offset.</summary>
public sealed class BertPrefixTests
{
    [Fact]
    public void Bert_attends_to_prefix_keys_and_values_without_changing_them()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load("bert-tiny");
        var r = Reference("bert-tiny");
        var input = ReferenceInput("bert-tiny", r);
        long b = 3, p = 4;
        using var cache = new KeyValueCache();
        for (int layer = 0; layer < 2; layer++) cache.Update(layer, torch.randn(b, 4, p, 16), torch.randn(b, 4, p, 16));
        var before = cache[0]!.Value.Key.clone();
        // a fully masked prefix leaves the outputs as without a prefix, except for the shifted positions
        var positions = torch.arange(p, p + 30, dtype: torch.ScalarType.Int64).unsqueeze(0).expand(b, 30);
        var noPrefix = model.forward(input with { PositionIds = positions });
        var maskedPrefix = model.forward(input with
        {
            PastKeyValues = cache,
            AttentionMask = torch.cat([torch.zeros(b, p, dtype: torch.ScalarType.Int64), r["attention_mask"]], 1),
        });
        TensorAssert.Close(noPrefix.Logits!, maskedPrefix.Logits!, 1e-5, null, "masked prefix");
        TensorAssert.Close(before, cache[0]!.Value.Key, 0, null, "cache unchanged");
        Assert.Equal(p, cache.GetSeqLength());
        var visible = model.forward(input with
        {
            PastKeyValues = cache,
            AttentionMask = torch.cat([torch.ones(b, p, dtype: torch.ScalarType.Int64), r["attention_mask"]], 1),
        });
        Assert.True((visible.Logits! - maskedPrefix.Logits!).abs().max().item<float>() > 1e-4, "a visible prefix changes the output");
        Assert.Throws<ArgumentException>(() => model.forward(input with { PastKeyValues = cache }));
    }
}
