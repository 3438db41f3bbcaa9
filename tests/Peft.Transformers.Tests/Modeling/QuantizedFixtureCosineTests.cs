using Peft.Core.Quantization;
using Peft.Transformers.Tests.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>
/// The accuracy bars on the tiny fixture models: logits of the model loaded with a
/// <see cref="BitsAndBytesConfig"/> against the float32 reference logits (cosine over unpadded positions).
/// 8-bit reaches 0.99 on every fixture. 4-bit reaches 0.97 only on bert-qa-tiny: the fixtures' weights are
/// N(0, 0.2) at hidden 64 (per-projection gain ≈ 1.6, where HF's init gives ≈ 0.3), so each sub-layer's output dominates
/// the residual stream and the format's ≈ 10 % (NF4) / ≈ 13 % (FP4) relative weight error on Gaussian blocks reaches
/// the logits almost undamped. For those fixtures the test asserts instead that the loaded model's cosine equals the
/// cosine of the float32 model whose target weights are rounded by an independent reference quantiser (nearest
/// codebook entry in float64, bnb's pure-torch backend rule, the tables below from bitsandbytes): the shortfall is
/// the format's, not the loader's. <c>tools/Peft.Interop/check_quant.py</c> recomputes the same cosines with
/// transformers' own module selection and a Python port of bnb's kernels on the GPU machine.
/// </summary>
public class QuantizedFixtureCosineTests
{
    private static readonly double[] Nf4Table =
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
        -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];

    private static readonly double[] Fp4Magnitudes = [0.0, 0.005208333333, 0.66666667, 1.0, 0.33333333, 0.5, 0.16666667, 0.25];

    internal static BitsAndBytesConfig Config(string mode) => mode switch
    {
        "int8" => new BitsAndBytesConfig { LoadIn8Bit = true },
        "hf-default" => new BitsAndBytesConfig { LoadIn4Bit = true },                       // HF defaults: fp4, no double quant, fp32 compute
        "nf4" => new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4" },
        "nf4-dq" => new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true },
        _ => throw new ArgumentException(mode, nameof(mode)),
    };

    /// <summary>Cosine of a model's output logits to the fixture's float32 logits (unpadded positions for per-token logits; QA: start ‖ end).</summary>
    internal static double LogitsCosine(string name, PreTrainedModel model)
    {
        using var scope = NewDisposeScope();
        var r = ModelTestUtil.Reference(name);
        var output = model.forward(ModelTestUtil.ReferenceInput(name, r));
        var expected = r.TryGetValue("logits", out var l) ? l : cat([r["start_logits"], r["end_logits"]], -1);
        var actual = output.Logits ?? cat([output.StartLogits!, output.EndLogits!], -1);
        Tensor x = expected, y = actual;
        if (expected.dim() == 3)
        {
            var m = r["attention_mask"].to_type(ScalarType.Bool).unsqueeze(-1).expand_as(expected);
            x = expected.masked_select(m);
            y = actual.masked_select(m);
        }
        return nn.functional.cosine_similarity(x.reshape(-1).to_type(ScalarType.Float64), y.reshape(-1).to_type(ScalarType.Float64), 0).item<double>();
    }

    internal static double LoadedCosine(string name, string mode)
    {
        using var model = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = Config(mode) });
        return LogitsCosine(name, model);
    }

    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("qwen2-tiny")]
    [InlineData("opt-tiny")]
    [InlineData("gpt2-tiny")]
    [InlineData("bert-tiny")]
    [InlineData("bert-ner-tiny")]
    [InlineData("bert-qa-tiny")]
    public void EightBitKeepsCosineAbove099OnEveryFixture(string name)
    {
        double cos = LoadedCosine(name, "int8");
        Assert.True(cos >= 0.99, $"{name} int8: cosine {cos:F5} < 0.99");
    }

    /// <summary>
    /// 4-bit with HF's default config (fp4) and with nf4: at least 0.97 where the fixture allows it (bert-qa-tiny),
    /// else equal (±2e-3, the reference rounds ties differently) to the float32 model with reference-rounded weights.
    /// </summary>
    [Theory]
    [InlineData("bert-qa-tiny", "nf4", true)]
    [InlineData("bert-qa-tiny", "hf-default", true)]
    [InlineData("llama-tiny", "nf4", false)]
    [InlineData("llama-tiny", "hf-default", false)]
    [InlineData("qwen2-tiny", "nf4", false)]
    [InlineData("qwen2-tiny", "hf-default", false)]
    [InlineData("opt-tiny", "nf4", false)]
    [InlineData("opt-tiny", "hf-default", false)]
    [InlineData("gpt2-tiny", "nf4", false)]
    [InlineData("gpt2-tiny", "hf-default", false)]
    [InlineData("bert-tiny", "nf4", false)]
    [InlineData("bert-ner-tiny", "hf-default", false)]
    public void FourBitCosineMeetsTheBarOrIsTheFormatsOwnRounding(string name, string mode, bool barReachable)
    {
        using var scope = NewDisposeScope();
        using var q = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = Config(mode) });
        double loaded = LogitsCosine(name, q);
        var targets = q.named_modules().Where(nm => nm.module is IQuantizedLinear).Select(nm => nm.name).ToHashSet();
        Assert.NotEmpty(targets);
        using var f = ModelTestUtil.Load(name);
        using (no_grad())
        {
            foreach (var (path, module) in f.named_modules())
            {
                if (!targets.Contains(path)) continue;
                var w = module.named_parameters(recurse: false).First(p => p.name == "weight").parameter;
                bool conv1d = module is Peft.Core.Modules.Conv1D;
                var rounded = ReferenceRound(conv1d ? w.t() : w, mode == "hf-default");
                w.copy_(conv1d ? rounded.t() : rounded);
            }
        }
        double reference = LogitsCosine(name, f);
        Console.WriteLine($"{name} {mode}: loaded cosine {loaded:F5}, reference-rounded fp32 model {reference:F5}");
        if (barReachable) Assert.True(loaded >= 0.97, $"{name} {mode}: cosine {loaded:F5} < 0.97");
        else
        {
            Assert.True(loaded < 0.97, $"{name} {mode} now reaches the bar ({loaded:F5}): move it to the asserted cases");
            Assert.True(Math.Abs(loaded - reference) <= 2e-3, $"{name} {mode}: loaded {loaded:F5} vs reference rounding {reference:F5}");
        }
    }

    /// <summary>Blockwise (64, row-major over [out, in]) absmax rounding to the nearest NF4 / FP4 entry, in float64.</summary>
    private static Tensor ReferenceRound(Tensor weight, bool fp4)
    {
        var table = tensor(fp4 ? [.. Fp4Magnitudes, .. Fp4Magnitudes.Select(v => -v)] : Nf4Table, dtype: ScalarType.Float64);
        var flat = weight.to_type(ScalarType.Float64).reshape(-1);
        long n = flat.shape[0], pad = (64 - n % 64) % 64;
        var blocks = cat([flat, zeros(pad, dtype: ScalarType.Float64)]).view(-1, 64);        // [blocks, 64]
        var absmax = blocks.abs().amax([1], keepdim: true);                                    // [blocks, 1]
        var scaled = blocks / absmax.clamp_min(1e-300);
        var idx = (scaled.unsqueeze(-1) - table).abs().argmin(-1);                             // [blocks, 64]
        var back = (table[idx] * absmax).reshape(-1).narrow(0, 0, n);
        return back.reshape(weight.shape).to_type(weight.dtype);
    }
}
