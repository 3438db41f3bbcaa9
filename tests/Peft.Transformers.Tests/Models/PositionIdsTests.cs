using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// Without <see cref="ModelInput.PositionIds"/> the causal models use HF 5.17's default positions: the Llama family
/// and GPT-2 <c>arange(past, past + T)</c> whatever the attention mask, OPT <c>(cumsum(mask) · mask − 1)[:, past:]</c>.
/// Checked on the left-padded generation prompts of the fixtures, with and without a KV cache.
/// </summary>
public sealed class PositionIdsTests
{
    public static TheoryData<string> CausalModels => new(Fixtures.TinyModels.Where(IsCausal));

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Forward_without_position_ids_uses_hf_default_positions(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        long t = ids.shape[1];
        Assert.True(mask.eq(0).any().item<bool>(), $"{name}: the generation prompts must be left-padded for this test");
        var implicitPos = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;
        var hfDefault = model.forward(new ModelInput
        {
            InputIds = ids, AttentionMask = mask, PositionIds = HfDefaultPositionIds(model.ModelType, mask, 0, t),
        }).Logits!;
        TensorAssert.Close(hfDefault, implicitPos, 0, null, $"{name} default positions");

        // Generate's positions agree with the default only where the mask rule is the default (OPT). GPT-2's learned
        // positions make a left-padded row differ clearly. RoPE only sees position differences and a per-row shift
        // keeps them, so for the Llama family the two rules differ by rounding only (the exact comparison above is
        // what shows that the default is arange).
        var generation = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PositionIds = GenerationPositionIds(mask, t) }).Logits!;
        double maxDiff = ((generation - implicitPos).abs() * mask.unsqueeze(-1)).max().item<float>();
        if (model.ModelType == "opt") Assert.True(maxDiff < 1e-4, $"{name}: OPT's default must follow the mask (diff {maxDiff})");
        else if (model.ModelType == "gpt2") Assert.True(maxDiff > 1e-3, $"{name}: the default must be arange, not mask-derived (diff {maxDiff})");
        else Assert.True(maxDiff < 1e-4, $"{name}: RoPE with per-row shifted positions must differ by rounding only (diff {maxDiff})");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Cached_steps_without_position_ids_start_at_the_past_length(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        long t = ids.shape[1], prefix = t - 3;
        using var implicitCache = new KeyValueCache();
        using var explicitCache = new KeyValueCache();
        for (long start = 0; start < t;)
        {
            long n = start == 0 ? prefix : 1;
            var stepIds = ids.narrow(1, start, n);
            var stepMask = mask.narrow(1, 0, start + n);
            var a = model.forward(new ModelInput { InputIds = stepIds, AttentionMask = stepMask, PastKeyValues = implicitCache, UseCache = true }).Logits!;
            var b = model.forward(new ModelInput
            {
                InputIds = stepIds, AttentionMask = stepMask, PastKeyValues = explicitCache, UseCache = true,
                PositionIds = HfDefaultPositionIds(model.ModelType, stepMask, start, n),
            }).Logits!;
            TensorAssert.Close(b, a, 0, null, $"{name} step at past {start}");
            start += n;
        }
        Assert.Equal(t, implicitCache.GetSeqLength());
    }
}
