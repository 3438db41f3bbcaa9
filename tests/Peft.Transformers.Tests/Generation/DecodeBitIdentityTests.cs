using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// The decode-path rewrite (fewer native calls per token: heads split with one view, grouped decode layout, rotary
/// tables made once per forward, host-kept shapes, no per-step scalars) must not change one bit of what the models
/// compute. References/&lt;model&gt;.decode.safetensors hold, for each tiny causal fixture, the last-position logits of
/// every step of a cached greedy decode (prefill, then one token per step) and the <c>Generate</c> output, for a
/// left-padded batch with its mask and for one unpadded prompt without a mask — written by this test
/// (<c>PEFT_DECODE_REFERENCE_WRITE=&lt;dir&gt;</c>) on the code before the rewrite (main at 4cdd0e5). The test asserts
/// bitwise equality of every logit and token.
/// <para>
/// Bitwise equality of float results holds only for the CPU kernels the references were made with. Each file also holds
/// a kernel fingerprint (linear, layer norm, SDPA, cos/sin, rsqrt on seeded inputs, independent of the model code);
/// on a machine whose kernels give other bits for it, the logits are compared within 1e-5 instead (tokens still exact),
/// and the message says so. The HF parity of the same paths is <see cref="GenerationParityTests"/>'s.
/// </para>
/// </summary>
public sealed class DecodeBitIdentityTests
{
    private const int Steps = 10;

    public static TheoryData<string> CausalModels => new() { "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny" };

    private static string ReferencePath(string name) => Path.Combine(AppContext.BaseDirectory, "Generation", "References", name + ".decode.safetensors");

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Cached_greedy_decode_logits_and_tokens_are_bit_identical_to_the_reference(string name)
    {
        using var scope = NewDisposeScope();
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name));
        model.eval();
        using var fixture = SafetensorsFile.Open(Fixtures.Reference(name));
        var r = fixture.ReadAll();
        var batchIds = r["gen_input_ids"];
        var batchMask = r["gen_attention_mask"];
        var keep = batchMask[0].nonzero().squeeze(1);
        var single = batchIds[0].index_select(0, keep).unsqueeze(0);                  // [1, T] without padding

        var actual = new Dictionary<string, Tensor> { ["fingerprint"] = KernelFingerprint() };
        using (no_grad())
        {
            Decode(model, batchIds, batchMask, "batch", actual);
            Decode(model, single, null, "single", actual);
        }
        actual["batch.generate"] = model.Generate(batchIds, batchMask, new GenerationConfig { MaxNewTokens = Steps });
        actual["single.generate"] = model.Generate(single, null, new GenerationConfig { MaxNewTokens = Steps, MinNewTokens = Steps });

        var writeDir = Environment.GetEnvironmentVariable("PEFT_DECODE_REFERENCE_WRITE");
        if (!string.IsNullOrEmpty(writeDir))
        {
            Directory.CreateDirectory(writeDir);
            SafetensorsIO.SaveFile(actual, Path.Combine(writeDir, name + ".decode.safetensors"));
        }

        using var refFile = SafetensorsFile.Open(ReferencePath(name));
        var expected = refFile.ReadAll();
        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), actual.Keys.OrderBy(k => k, StringComparer.Ordinal));
        bool sameKernels = BitEqual(expected["fingerprint"], actual["fingerprint"]);
        foreach (var key in expected.Keys.Where(k => k != "fingerprint"))
        {
            if (expected[key].dtype == ScalarType.Int64) TensorAssert.Equal(expected[key], actual[key], $"{name} {key}");
            else if (sameKernels) Assert.True(BitEqual(expected[key], actual[key]), $"{name} {key}: logits differ bitwise from the reference ({MaxDiff(expected[key], actual[key]):G6} max |diff|)");
            else TensorAssert.Close(expected[key], actual[key], 1e-5, what: $"{name} {key} (this CPU's kernels differ from the reference machine's: compared within 1e-5, not bitwise)");
        }
    }

    // Prefill, then Steps − 1 single-token steps through the model's own cache (greedy), as generate runs them;
    // records logits [Steps, B, V] float32 and tokens [B, Steps].
    private static void Decode(PreTrainedModel model, Tensor ids, Tensor? mask, string label, Dictionary<string, Tensor> into)
    {
        var logits = new List<Tensor>();
        var tokens = new List<Tensor>();
        using var cache = new KeyValueCache();
        var input = ids;
        for (int step = 0; step < Steps; step++)
        {
            var o = model.forward(new ModelInput { InputIds = input, AttentionMask = mask, PastKeyValues = cache, UseCache = true, LogitsToKeep = 1 });
            var last = o.Logits!.select(1, -1).to_type(ScalarType.Float32);             // [B, V]
            var next = last.argmax(-1);                                                  // [B]
            logits.Add(last);
            tokens.Add(next);
            input = next.unsqueeze(1);                                                   // [B, 1]
            if (mask is not null) mask = cat([mask, ones_like(input)], 1);
        }
        into[label + ".logits"] = stack(logits);
        into[label + ".tokens"] = stack(tokens, 1);
    }

    // Results of the kernels the models use, on seeded inputs and independent of the model code: equal bits here mean
    // this CPU computes those kernels as the reference machine did.
    private static Tensor KernelFingerprint()
    {
        using var gen = new Generator(1234);
        var x = randn([2, 5, 64], generator: gen);
        var w = randn([64, 64], generator: gen);
        var q = randn([2, 4, 5, 16], generator: gen);
        var parts = new[]
        {
            nn.functional.linear(x, w).flatten(),
            nn.functional.layer_norm(x, [64]).flatten(),
            nn.functional.scaled_dot_product_attention(q, q.mul(0.5), q.add(1.0), is_casual: true).flatten(),
            x.cos().flatten(), x.sin().flatten(), x.abs().add(0.1).rsqrt().flatten(), nn.functional.silu(x).flatten(),
        };
        return cat(parts, 0);
    }

    private static bool BitEqual(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != ScalarType.Float32 || b.dtype != ScalarType.Float32) return false;
        var (x, y) = (a.contiguous().data<float>().ToArray(), b.contiguous().data<float>().ToArray());
        for (int i = 0; i < x.Length; i++)
            if (BitConverter.SingleToInt32Bits(x[i]) != BitConverter.SingleToInt32Bits(y[i])) return false;
        return true;
    }

    private static double MaxDiff(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) ? a.sub(b).abs().max().item<float>() : double.NaN;
}
