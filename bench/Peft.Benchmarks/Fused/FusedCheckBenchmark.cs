using System.Diagnostics;
using Peft.Benchmarks.HfMirror;
using Peft.Core;
using Peft.Core.Torch.Cuda;
using Peft.Transformers;
using Peft.Transformers.Models;
using Peft.Transformers.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Fused;

/// <summary>
/// Proof of the fused CUDA kernels (<see cref="FusedKernels"/>), no Python side: fused vs eager in one process
/// (<c>PEFT_FUSED_KERNELS=0</c> set in-process for the eager side) for RMSNorm (through <see cref="RmsNorm"/>'s
/// dispatch) and SwiGLU (<see cref="SwiGluFunction"/> vs <c>silu(gate) * up</c>) at several shapes (odd hidden
/// sizes included), bfloat16, float32 and float16, weight frozen and trainable: outputs and every gradient compared (max |diff|,
/// max ulp, differing elements), per-op timings (forward + backward, medians), then a 10-step Llama-1B-shape LoRA
/// training run fused vs eager (loss per step, max relative difference). Rotary (q and k in one kernel, through
/// <see cref="RotaryEmbedding.ApplyPair"/>) vs the eager chain and HF's written-out form, and PEFT's float32 LoRA tail
/// (<c>LoraTailFunction</c>) vs PEFT's chain of separate ops, both bit-equal required; the LoRA linear layer on CUDA
/// (bf16 / fp32 / fp16 base, float32 adapter, autograd recording: the in-place half tail, the one-kernel add, the fused
/// tail) vs PEFT's chain written out from its modules: output and the gradients of A, B and the input, bit-equal required.
/// Exits non-zero when an elementwise part is not bit-equal: SwiGLU everywhere, and RMSNorm on integer-valued inputs
/// ("exact" rows), where every summation order gives the same row sums, so any difference is an elementwise one.
/// <c>dotnet Peft.Benchmarks.dll fused_check --device cuda</c> (<c>--quick</c>: fewer shapes, 3 training steps).
/// </summary>
public sealed partial class FusedCheckBenchmark : IBenchmark
{
    private const double Eps = 1e-5;

    /// <inheritdoc />
    public string Name => "fused_check";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        if (options.Device != "cuda") throw new ArgumentException("fused_check needs --device cuda");
        var device = CUDA;
        using (ones(1, device: device)) { }
        var probe = new Dictionary<string, object?>
        {
            ["case"] = Name, ["part"] = "probe", ["available"] = FusedKernels.Unavailable(0) ?? "yes",
            ["nvrtc"] = Nvrtc.Load().Compiler?.Path, ["nvrtc_version"] = Nvrtc.Load().Compiler?.Version.ToString(),
            ["nvrtc_candidates"] = Nvrtc.Candidates().ToArray(), ["stream"] = TorchStream.Unavailable ?? "yes",
        };
        report(probe);
        if (FusedKernels.Unavailable(0) is { } why) throw new InvalidOperationException($"fused_check: kernels {why}");

        var failures = new List<string>();
        var dtypes = new[] { ScalarType.BFloat16, ScalarType.Float32, ScalarType.Float16 };
        long[][] rmsShapes = options.Quick ? [[4096, 2048], [3, 7, 1023]] : [[4096, 2048], [2, 5, 1023], [33, 4097], [17, 64], [9, 5], [1, 8192]];
        long[][] swigluShapes = options.Quick ? [[4096, 8192], [3, 7, 1023]] : [[4096, 8192], [2, 5, 1023], [33, 4097], [1, 1]];
        // rotary: [B, Hq, Hk, T, D]; the LoRA tail: [N, out] (h float32, the base output in the row's dtype)
        long[][] ropeShapes = options.Quick ? [[8, 32, 8, 512, 64], [3, 5, 1, 7, 6]] : [[8, 32, 8, 512, 64], [2, 14, 2, 33, 128], [3, 5, 1, 7, 6], [1, 3, 3, 1, 2], [2, 4, 4, 9, 18]];
        long[][] tailShapes = options.Quick ? [[4096, 2048], [3, 7, 1023]] : [[4096, 2048], [3, 7, 1023], [33, 4097], [1, 1]];
        // PEFT_FUSED_CHECK_ONLY=adamw: the AdamW part alone (a short device call)
        bool onlyAdamW = Environment.GetEnvironmentVariable("PEFT_FUSED_CHECK_ONLY") == "adamw";
        foreach (var dtype in onlyAdamW ? [] : dtypes)
        {
            foreach (var shape in rmsShapes)
                foreach (bool trainW in new[] { false, true })
                    foreach (bool exact in new[] { false, true })
                        report(CheckRmsNorm(shape, dtype, trainW, exact, device, failures));
            foreach (var shape in swigluShapes) report(CheckSwiGlu(shape, dtype, device, failures));
            foreach (var shape in ropeShapes)
                foreach (bool broadcast in new[] { false, true })
                    report(CheckRotary(shape, broadcast, dtype, device, failures));
            foreach (var shape in tailShapes)
                foreach (double s in new[] { 2.0, 0.3 })
                    report(CheckLoraTail(shape, s, dtype, device, failures));
            foreach (var (rows, outDim) in new (long, long)[] { (4096, 2048), (21, 1023) })
                foreach (var (r, alpha) in new[] { (8, 16.0), (4, 1.2) })
                    report(CheckLoraLayer(rows, outDim, r, alpha, dtype, device, failures));
        }
        foreach (var dtype in dtypes)
            foreach (long n in options.Quick ? new long[] { 4099 } : [1 << 20, 4099, 7])
                foreach (double wd in new[] { 0.01, 0.0 })
                    report(CheckAdamW(n, dtype, wd, device, failures));
        foreach (long n in options.Quick ? new long[] { 1 << 20 } : [125_239_296, 1_104_218_112])
            report(TimeAdamW(device, n));
        if (!onlyAdamW)
        {
            report(TimeOps(device));
            report(TimeRotaryLora(device));
            report(Training(options, options.Quick ? 3 : 10));
        }
        if (failures.Count > 0) throw new InvalidOperationException("fused_check: elementwise parts differ: " + string.Join("; ", failures));
    }

    private static Dictionary<string, object?> CheckRmsNorm(long[] shape, ScalarType dtype, bool trainW, bool exact, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        long h = shape[^1];
        manual_seed(h * 31 + shape.Length);
        // exact: small integers, so x², g·w and their row sums are exact in any order.
        var x0 = exact ? randint(-3, 4, shape, dtype: ScalarType.Float32) : randn(shape) * 2;
        var w0 = exact ? randint(1, 4, [h], dtype: ScalarType.Float32) : 1 + randn(h) * 0.1;
        var g0 = exact ? randint(-2, 3, shape, dtype: ScalarType.Float32) : randn(shape);
        (Tensor Out, Tensor Gx, Tensor? Gw) Run(bool fused) => WithFused(fused, () =>
        {
            using var norm = new RmsNorm(h, Eps, device);
            norm.to(dtype);
            using (no_grad()) norm.weight.copy_(w0);
            norm.weight.requires_grad_(trainW);
            var x = x0.to(dtype).to(device).requires_grad_(true);
            var o = norm.forward(x);
            o.backward([g0.to(dtype).to(device)]);
            return (o.detach(), x.grad!.detach(), trainW ? norm.weight.grad!.detach().clone() : null);
        });
        var f = Run(true);
        var e = Run(false);
        var row = new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "rmsnorm", ["shape"] = shape, ["dtype"] = dtype.ToString(), ["weight_trainable"] = trainW,
            ["inputs"] = exact ? "integers (exact row sums)" : "randn",
        };
        Compare(row, "out", f.Out, e.Out, dtype);
        Compare(row, "grad_x", f.Gx, e.Gx, dtype);
        if (trainW) Compare(row, "grad_w", f.Gw!, e.Gw!, dtype);
        if (exact && ((long)row["out_differing"]! != 0 || (long)row["grad_x_differing"]! != 0))
            failures.Add($"rmsnorm {dtype} [{string.Join(",", shape)}] exact inputs: out {row["out_differing"]}, grad_x {row["grad_x_differing"]} elements differ");
        return row;
    }

    private static Dictionary<string, object?> CheckSwiGlu(long[] shape, ScalarType dtype, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        manual_seed(shape[^1] * 7 + 1);
        var gate0 = randn(shape) * 3;
        var up0 = randn(shape) * 2;
        var g0 = randn(shape);
        (Tensor Out, Tensor Gg, Tensor Gu) Run(bool fused)
        {
            var gate = gate0.to(dtype).to(device).requires_grad_(true);
            var up = up0.to(dtype).to(device).requires_grad_(true);
            var o = fused ? SwiGluFunction.Apply(gate, up) : nn.functional.silu(gate) * up;
            o.backward([g0.to(dtype).to(device)]);
            return (o.detach(), gate.grad!.detach(), up.grad!.detach());
        }
        var f = Run(true);
        var e = Run(false);
        var row = new Dictionary<string, object?> { ["case"] = "fused_check", ["part"] = "swiglu", ["shape"] = shape, ["dtype"] = dtype.ToString() };
        Compare(row, "out", f.Out, e.Out, dtype);
        Compare(row, "grad_gate", f.Gg, e.Gg, dtype);
        Compare(row, "grad_up", f.Gu, e.Gu, dtype);
        foreach (var k in new[] { "out", "grad_gate", "grad_up" })
            if ((long)row[k + "_differing"]! != 0) failures.Add($"swiglu {dtype} [{string.Join(",", shape)}]: {k} {row[k + "_differing"]} elements differ");
        return row;
    }

    // Differing elements, max |diff| and max distance in units in the last place of the dtype (bf16, fp32: exact
    // distance between the bit patterns; fp16: |diff| over the fp16 ulp at the larger magnitude).
    private static void Compare(Dictionary<string, object?> row, string name, Tensor a, Tensor b, ScalarType dtype)
    {
        var fa = a.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        var fb = b.to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        long differing = 0, maxUlp = 0;
        double maxAbs = 0;
        int shift = dtype == ScalarType.BFloat16 ? 16 : 0;
        for (int i = 0; i < fa.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(fa[i]) == BitConverter.SingleToInt32Bits(fb[i])) continue;
            differing++;
            double diff = Math.Abs((double)fa[i] - fb[i]);
            maxAbs = Math.Max(maxAbs, diff);
            long ulps = dtype == ScalarType.Float16
                ? (long)Math.Round(diff / HalfUlp(Math.Max(Math.Abs(fa[i]), Math.Abs(fb[i]))))
                : Math.Abs(Ordered(fa[i]) - Ordered(fb[i])) >> shift;
            maxUlp = Math.Max(maxUlp, ulps);
        }
        row[name + "_differing"] = differing;
        row[name + "_of"] = (long)fa.Length;
        row[name + "_max_abs"] = maxAbs;
        row[name + "_max_ulp"] = maxUlp;
    }

    // The fp16 spacing at magnitude m: 2^(e − 10) for normal numbers, 2^−24 below 2^−14.
    private static double HalfUlp(double m) => m < Math.Pow(2, -14) ? Math.Pow(2, -24) : Math.Pow(2, Math.Floor(Math.Log2(m)) - 10);

    private static long Ordered(float f)
    {
        int bits = BitConverter.SingleToInt32Bits(f);
        return bits < 0 ? -(long)(bits & 0x7fffffff) : bits;
    }

    // Forward + backward of each op at the Llama-1B step's shapes (8 × 512 rows), fused vs eager, medians of 20.
    private static Dictionary<string, object?> TimeOps(Device device)
    {
        using var scope = NewDisposeScope();
        var dtype = ScalarType.BFloat16;
        var x = randn([4096, 2048], dtype: dtype, device: device).requires_grad_(true);
        var gx = randn([4096, 2048], dtype: dtype, device: device);
        var gate = randn([4096, 8192], dtype: dtype, device: device).requires_grad_(true);
        var up = randn([4096, 8192], dtype: dtype, device: device).requires_grad_(true);
        var gg = randn([4096, 8192], dtype: dtype, device: device);
        using var norm = new RmsNorm(2048, Eps, device);
        norm.to(dtype);
        norm.weight.requires_grad_(false);
        void Rms()
        {
            using var s = NewDisposeScope();
            norm.forward(x).backward([gx]);
            x.grad!.Dispose();
            x.grad = null;
        }
        void Swi(bool fused)
        {
            using var s = NewDisposeScope();
            (fused ? SwiGluFunction.Apply(gate, up) : nn.functional.silu(gate) * up).backward([gg]);
            gate.grad = null;
            up.grad = null;
        }
        return new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "timing_fwd_bwd_ms", ["dtype"] = "bf16",
            ["rmsnorm_4096x2048_fused"] = Ms(device, true, Rms), ["rmsnorm_4096x2048_eager"] = Ms(device, false, Rms),
            ["swiglu_4096x8192_fused"] = Ms(device, true, () => Swi(true)), ["swiglu_4096x8192_eager"] = Ms(device, false, () => Swi(false)),
        };
    }

    // The lora_step benchmark's setting (Llama-1B shape, bf16, 8 × 512, LoRA r8 q/v, AdamW) for a few steps, fused vs eager.
    private static Dictionary<string, object?> Training(BenchmarkOptions options, int steps)
    {
        var o = options with { Model = "llama1b", Dtype = "bf16" };
        double[] Losses(bool fused) => WithFused(fused, () =>
        {
            using var model = MirrorSetup.BuildModel(o);
            using var pm = PeftModel.GetPeftModel(model, MirrorSetup.Lora());
            pm.train();
            using var opt = MirrorSetup.Optimizer(pm);
            using var ids = MirrorSetup.RandomBatch(o);
            var losses = new double[steps];
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < steps; i++)
            {
                using var scope = NewDisposeScope();
                var loss = pm.forward(new ModelInput { InputIds = ids, Labels = ids })!.Loss!;
                loss.backward();
                opt.Step();
                opt.ZeroGrad();
                losses[i] = loss.item<float>();
            }
            return losses;
        });
        var fusedLosses = Losses(true);
        var eagerLosses = Losses(false);
        double maxRel = fusedLosses.Zip(eagerLosses, (a, b) => Math.Abs(a - b) / Math.Max(Math.Abs(b), 1e-12)).Max();
        return new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "llama1b_lora_training", ["steps"] = steps,
            ["loss_fused"] = fusedLosses.Select(l => Math.Round(l, 6)).ToArray(), ["loss_eager"] = eagerLosses.Select(l => Math.Round(l, 6)).ToArray(),
            ["max_rel_diff"] = maxRel,
        };
    }

    // Median of 20 timed runs of a (after 3 warm-ups), fused or eager, in ms.
    private static double Ms(Device device, bool fused, Action a) => WithFused(fused, () =>
    {
        for (int i = 0; i < 3; i++) a();
        cuda.synchronize(device);
        var ts = new List<double>();
        for (int i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            a();
            cuda.synchronize(device);
            ts.Add(sw.Elapsed.TotalMilliseconds);
        }
        return Math.Round(MirrorSetup.Median(ts), 4);
    });

    private static T WithFused<T>(bool fused, Func<T> run)
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        Environment.SetEnvironmentVariable(FusedKernels.EnvVar, fused ? "1" : "0");
        try { return run(); }
        finally { Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old); }
    }
}
