using Peft.Core;
using Peft.Testing;
using TorchSharp;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// The shared backbone loop accepts what prompt learning feeds it: a pre-filled cache longer than input_ids with an
/// attention mask of [B, past + T] (prefix tuning), and inputs_embeds instead of input_ids (prompt tuning).
/// </summary>
public sealed class BackbonePassTests
{
    public static TheoryData<string> Models => DecoderModels.Theory;

    [Theory]
    [MemberData(nameof(Models))]
    public void Cached_prefix_then_suffix_equals_one_pass(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        model.eval();
        long b = 2, p = 5, t = 4;
        var ids = DecoderModels.RandomIds(model, b, p + t);
        var mask = torch.ones(b, p + t, dtype: torch.ScalarType.Int64);
        mask[1].narrow(0, 0, 2).fill_(0);                                          // row 1 left-padded
        var full = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        using var cache = new KeyValueCache();
        model.forward(new ModelInput { InputIds = ids.narrow(1, 0, p), AttentionMask = mask.narrow(1, 0, p), PastKeyValues = cache });
        Assert.Equal(p, cache.GetSeqLength());
        var rest = model.forward(new ModelInput { InputIds = ids.narrow(1, p, t), AttentionMask = mask, PastKeyValues = cache });
        Assert.Equal(p + t, cache.GetSeqLength());
        TensorAssert.Close(full.narrow(1, p, t), rest.Logits!, 1e-5, null, $"{name}: cached suffix");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Random_prefix_cache_is_attended_and_a_masked_prefix_changes_nothing(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        model.eval();
        var d = model.Dimensions;
        long b = 2, p = 3, t = 6;
        var ids = DecoderModels.RandomIds(model, b, t);
        KeyValueCache Prefix()
        {
            torch.manual_seed(3);
            var c = new KeyValueCache();
            for (int l = 0; l < d.NumLayers; l++) c.Update(l, torch.randn(b, d.NumKeyValueHeads, p, d.HeadDim), torch.randn(b, d.NumKeyValueHeads, p, d.HeadDim));
            return c;
        }
        var positions = torch.arange(t, dtype: torch.ScalarType.Int64).unsqueeze(0).expand(b, t);
        var plain = model.forward(new ModelInput { InputIds = ids, PositionIds = positions }).Logits!;

        using var masked = Prefix();
        var hiddenPrefix = torch.cat([torch.zeros(b, p, dtype: torch.ScalarType.Int64), torch.ones(b, t, dtype: torch.ScalarType.Int64)], 1);
        var maskedOut = model.forward(new ModelInput { InputIds = ids, AttentionMask = hiddenPrefix, PastKeyValues = masked, PositionIds = positions }).Logits!;
        TensorAssert.Close(plain, maskedOut, 1e-5, null, $"{name}: fully masked prefix");

        using var seen = Prefix();
        var before = seen[0]!.Value.Key.clone();
        var prefixed = model.forward(new ModelInput { InputIds = ids, AttentionMask = torch.ones(b, p + t, dtype: torch.ScalarType.Int64), PastKeyValues = seen }).Logits!;
        Assert.True((prefixed - plain).abs().max().item<float>() > 1e-3, $"{name}: a visible prefix must change the logits");
        Assert.Equal(p + t, seen.GetSeqLength());
        TensorAssert.Equal(before, seen[0]!.Value.Key.narrow(2, 0, p), $"{name}: prefix keys kept");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Inputs_embeds_equal_input_ids_through_the_input_embeddings(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        model.eval();
        var ids = DecoderModels.RandomIds(model, 2, 7);
        var mask = torch.ones(2, 7, dtype: torch.ScalarType.Int64);
        mask[0].narrow(0, 0, 1).fill_(0);
        var byIds = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, OutputHiddenStates = true });
        var embeds = model.GetInputEmbeddings().forward(ids);
        var byEmbeds = model.forward(new ModelInput { InputsEmbeds = embeds, AttentionMask = mask, OutputHiddenStates = true });
        TensorAssert.Equal(byIds.Logits!, byEmbeds.Logits!, $"{name}: logits");
        Assert.Equal(model.Dimensions.NumLayers + 1, byEmbeds.HiddenStates!.Count);
    }

    [Fact]
    public void Bert_reads_the_prefix_cache_through_the_shared_loop_without_creating_one()
    {
        using var scope = torch.NewDisposeScope();
        using var model = ModelTestUtil.Load("bert-tiny");
        var r = ModelTestUtil.Reference("bert-tiny");
        var o = model.forward(ModelTestUtil.ReferenceInput("bert-tiny", r) with { UseCache = true, OutputHiddenStates = true });
        Assert.Null(o.PastKeyValues);
        Assert.Same(o.LastHiddenState, o.HiddenStates![^1]);
    }
}
