using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// The forward pass with the KV cache, left padding and mask-derived positions reproduces HF's greedy
/// <c>generate</c> output (a minimal greedy loop here; the real loop is GenerationLoop's).
/// </summary>
public sealed class GreedyDecodingParityTests
{
    public static TheoryData<string> CausalModels => new(Fixtures.TinyModels.Where(IsCausal));

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Cached_greedy_decoding_reproduces_hf_generate(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        var expected = r["greedy_output_ids"];
        var g = model.GenerationConfig;
        var eos = g.EosTokenIds ?? (g.EosTokenId is { } e ? [e] : []);
        long pad = g.PadTokenId ?? (eos.Count > 0 ? eos[0] : 0);
        using var cache = new KeyValueCache();
        var unfinished = torch.ones(ids.shape[0], dtype: torch.ScalarType.Int64);
        var input = ids;
        for (int step = 0; step < 16; step++)
        {
            var positions = GenerationPositionIds(mask, input.shape[1]);           // as HF prepare_inputs_for_generation
            var o = model.forward(new ModelInput { InputIds = input, AttentionMask = mask, PositionIds = positions, PastKeyValues = cache, UseCache = true });
            var next = o.Logits!.select(1, -1).argmax(-1);                          // [B]
            next = next * unfinished + pad * (1 - unfinished);
            ids = torch.cat([ids, next.unsqueeze(1)], 1);
            mask = torch.cat([mask, torch.ones(mask.shape[0], 1, dtype: torch.ScalarType.Int64)], 1);
            foreach (var id in eos) unfinished = unfinished * next.ne(id).to_type(torch.ScalarType.Int64);
            input = next.unsqueeze(1);
            if (unfinished.max().item<long>() == 0) break;
        }
        TensorAssert.Equal(expected, ids, $"{name} greedy");
    }
}
