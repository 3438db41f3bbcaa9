using Peft.Benchmarks.HfMirror;
using Peft.Core.Torch.Cuda;
using Peft.Core.Tuners;
using Peft.Transformers.Models.Llama;
using static TorchSharp.torch;

namespace Peft.Benchmarks.Fused;

/// <summary>fused_check rows for the rotary kernel (q and k together), PEFT's float32 LoRA tail and the LoRA layer's tail paths.</summary>
public sealed partial class FusedCheckBenchmark
{
    // Rotary at [B, Hq, Hk, T, D], q and k made as the attention makes them (a transposed view of the projection
    // [B, T, H·D]); per-row positions (random offsets) or one broadcast row ([1, T] ids → tables [1, 1, T, D]).
    // Fused (RotaryEmbedding.ApplyPair's kernel) vs the eager chain (RotaryEmbedding.Apply on q, then on k):
    // outputs and the projections' gradients must be bit-equal; the fused outputs are also compared with HF's
    // written-out apply_rotary_pos_emb (x·cos + cat(−x₂, x₁)·sin).
    private static Dictionary<string, object?> CheckRotary(long[] shape, bool broadcastTable, ScalarType dtype, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        long b = shape[0], hq = shape[1], hk = shape[2], t = shape[3], d = shape[4];
        manual_seed(b * 131 + hq * 17 + t * 3 + d);
        var pq0 = randn(b, t, hq * d) * 2;
        var pk0 = randn(b, t, hk * d) * 2;
        var gq0 = randn(b, hq, t, d);
        var gk0 = randn(b, hk, t, d);
        var positions = broadcastTable ? arange(t).unsqueeze(0) : arange(t).unsqueeze(0) + randint(0, 1000, [b, 1]); // [B|1, T]
        var invFreq = 1.0 / pow(10000.0, arange(0, d, 2, dtype: ScalarType.Float32) / d);                        // [D/2]
        var (cos, sin) = RotaryEmbedding.CosSin(positions.to(device), invFreq.to(device), dtype, d);          // [B|1, 1, T, D]
        bool fits = false;
        (Tensor Q, Tensor K, Tensor Gq, Tensor Gk) Run(bool fused) => WithFused(fused, () =>
        {
            var pq = pq0.to(dtype).to(device).requires_grad_(true);
            var pk = pk0.to(dtype).to(device).requires_grad_(true);
            var q = pq.view(b, t, hq, d).transpose(1, 2);                                                      // [B, Hq, T, D]
            var k = pk.view(b, t, hk, d).transpose(1, 2);                                                      // [B, Hk, T, D]
            if (fused) fits = RotaryFunction.Fits(q, k, cos, sin);
            var (oq, ok) = RotaryEmbedding.ApplyPair(q, k, cos, sin, d, d);
            autograd.backward([oq, ok], [gq0.to(dtype).to(device), gk0.to(dtype).to(device)]);
            return (oq.detach(), ok.detach(), pq.grad!.detach(), pk.grad!.detach());
        });
        var f = Run(true);
        var e = Run(false);
        var row = new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "rotary", ["shape_b_hq_hk_t_d"] = shape, ["dtype"] = dtype.ToString(),
            ["tables"] = broadcastTable ? "[1,1,T,D] broadcast" : "[B,1,T,D] per-row positions", ["fused_ran"] = fits,
        };
        Compare(row, "q", f.Q, e.Q, dtype);
        Compare(row, "k", f.K, e.K, dtype);
        Compare(row, "grad_q_proj", f.Gq, e.Gq, dtype);
        Compare(row, "grad_k_proj", f.Gk, e.Gk, dtype);
        long half = d / 2;
        var plainSin = cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1);               // HF's sin
        Tensor Hf(Tensor p, long h)
        {
            var x = p.to(dtype).to(device).view(b, t, h, d).transpose(1, 2);                                   // [B, H, T, D]
            var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
            return x * cos + rotated * plainSin;
        }
        Compare(row, "q_vs_hf", f.Q, Hf(pq0, hq), dtype);
        Compare(row, "k_vs_hf", f.K, Hf(pk0, hk), dtype);
        if (!fits) failures.Add($"rotary {dtype} [{string.Join(",", shape)}]: the fused kernel did not take these tensors");
        foreach (var name in new[] { "q", "k", "grad_q_proj", "grad_k_proj", "q_vs_hf", "k_vs_hf" })
            if ((long)row[name + "_differing"]! != 0) failures.Add($"rotary {dtype} [{string.Join(",", shape)}]: {name} {row[name + "_differing"]} elements differ");
        return row;
    }

    // PEFT's float32 LoRA tail at [N, out] on a base output in dtype: the fused node vs PEFT's chain written out as
    // separate torch ops ((result.float() + h * s).to(dtype), its autograd for the gradients): bit-equal required. Also
    // reported: how many elements torch's one-kernel result.add(h, alpha: s) (the eager path) differs from PEFT in.
    private static Dictionary<string, object?> CheckLoraTail(long[] shape, double scaling, ScalarType dtype, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        manual_seed(shape[^1] * 5 + shape.Length);
        var r0 = randn(shape) * 2;
        var h0 = randn(shape) * 0.05;
        var g0 = randn(shape);
        (Tensor Out, Tensor Gr, Tensor Gh) Run(bool fused)
        {
            var result = r0.to(dtype).to(device).requires_grad_(true);
            var h = h0.to(device).requires_grad_(true);                                                       // float32
            var o = fused ? LoraTailFunction.Apply(result, h, scaling)
                : (result.to_type(ScalarType.Float32) + h * scaling).to_type(dtype);                          // PEFT: mul, add, cast
            o.backward([g0.to(dtype).to(device)]);
            return (o.detach(), result.grad!.detach(), h.grad!.detach());
        }
        bool applies = FusedKernels.AppliesWithFloat32(r0.to(dtype).to(device), h0.to(device));
        var f = Run(true);
        var p = Run(false);
        var eagerAdd = r0.to(dtype).to(device).add(h0.to(device), scaling).to_type(dtype);                      // torch add with alpha
        var row = new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "lora_tail", ["shape"] = shape, ["dtype"] = dtype.ToString(), ["scaling"] = scaling,
            ["fused_applies"] = applies,
        };
        Compare(row, "out", f.Out, p.Out, dtype);
        Compare(row, "grad_result", f.Gr, p.Gr, dtype);
        Compare(row, "grad_h", f.Gh, p.Gh, ScalarType.Float32);
        Compare(row, "eager_add_alpha_vs_peft", eagerAdd, p.Out, dtype);
        if (!applies) failures.Add($"lora_tail {dtype} [{string.Join(",", shape)}]: AppliesWithFloat32 refused");
        foreach (var name in new[] { "out", "grad_result", "grad_h" })
            if ((long)row[name + "_differing"]! != 0) failures.Add($"lora_tail {dtype} [{string.Join(",", shape)}]: {name} {row[name + "_differing"]} elements differ from PEFT's chain");
        return row;
    }

    // The LoRA linear layer itself on CUDA (PEFT's autocast: a float32 adapter on a bf16 / fp32 / fp16 base) while
    // autograd records, as in training: the output and the gradients of lora_A, lora_B and the input must be bit-equal
    // to PEFT's chain written out from the layer's own modules (base, x cast to float32, A, B, · s, add, cast back).
    // A half base takes the in-place tail; float32 the one-kernel add (exact s) or the fused tail (s = 0.3).
    private static Dictionary<string, object?> CheckLoraLayer(long rows, long outDim, int r, double alpha, ScalarType dtype, Device device, List<string> failures)
    {
        using var scope = NewDisposeScope();
        manual_seed(outDim * 7 + r);
        const long inDim = 96;
        using var net = nn.Sequential(("lin0", nn.Linear(inDim, outDim, dtype: dtype, device: device)));
        using var pm = PeftModel.GetPeftModel(net, new LoraConfig { R = r, LoraAlpha = alpha, TargetModules = ["lin0"], InitLoraWeights = false });
        var layer = (LoraLinear)pm.Tuner.TunerLayers().Single(l => l.Path == "lin0").Layer;
        var a = layer.LoraA("default").weight;
        var b = layer.LoraB("default").weight;
        double s = layer.Scaling["default"];
        var x = randn([rows, inDim], dtype: dtype, device: device).requires_grad_(true);
        var g = randn([rows, outDim], dtype: dtype, device: device);
        (Tensor Out, Tensor Ga, Tensor Gb, Tensor Gx) Run(Func<Tensor> forward)
        {
            a.grad = null;
            b.grad = null;
            x.grad = null;
            var o = forward();
            o.backward([g]);
            return (o.detach(), a.grad!.clone(), b.grad!.clone(), x.grad!.clone());
        }
        var peft = Run(() =>
        {
            var h = layer.LoraB("default").forward(layer.LoraA("default").forward(x.to_type(ScalarType.Float32)));
            return layer.BaseLayer.forward(x).add(h.mul(s)).to_type(dtype);
        });
        var ours = Run(() => layer.forward(x));
        var row = new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "lora_layer", ["rows"] = rows, ["out"] = outDim, ["dtype"] = dtype.ToString(), ["scaling"] = s,
        };
        Compare(row, "out", ours.Out, peft.Out, dtype);
        Compare(row, "grad_x", ours.Gx, peft.Gx, dtype);
        Compare(row, "grad_A", ours.Ga, peft.Ga, ScalarType.Float32);
        Compare(row, "grad_B", ours.Gb, peft.Gb, ScalarType.Float32);
        foreach (var name in new[] { "out", "grad_x", "grad_A", "grad_B" })
            if ((long)row[name + "_differing"]! != 0) failures.Add($"lora_layer {dtype} [{rows},{outDim}] s={s}: {name} {row[name + "_differing"]} elements differ from PEFT's chain");
        return row;
    }

    // Forward + backward at the Llama-1B step's shapes: rotary on one layer's q [8, 32, 512, 64] and k [8, 8, 512, 64]
    // (fused vs the eager chain), the LoRA tail on q_proj's output [4096, 2048] (fused vs the eager add-with-alpha + cast).
    private static Dictionary<string, object?> TimeRotaryLora(Device device)
    {
        using var scope = NewDisposeScope();
        var dtype = ScalarType.BFloat16;
        long b = 8, t = 512, hq = 32, hk = 8, d = 64;
        var pq = randn([b, t, hq * d], dtype: dtype, device: device).requires_grad_(true);
        var pk = randn([b, t, hk * d], dtype: dtype, device: device).requires_grad_(true);
        var gq = randn([b, hq, t, d], dtype: dtype, device: device);
        var gk = randn([b, hk, t, d], dtype: dtype, device: device);
        var invFreq = (1.0 / pow(10000.0, arange(0, d, 2, dtype: ScalarType.Float32) / d)).to(device);
        var (cos, sin) = RotaryEmbedding.CosSin(arange(t, device: device).unsqueeze(0).expand(b, t), invFreq, dtype, d);
        var result = randn([b * t, 2048], dtype: dtype, device: device).requires_grad_(true);
        var h = randn([b * t, 2048], device: device).requires_grad_(true);
        var gr = randn([b * t, 2048], dtype: dtype, device: device);
        void Rope()
        {
            using var s = NewDisposeScope();
            var (oq, ok) = RotaryEmbedding.ApplyPair(pq.view(b, t, hq, d).transpose(1, 2), pk.view(b, t, hk, d).transpose(1, 2), cos, sin, d, d);
            autograd.backward([oq, ok], [gq, gk]);
            pq.grad = null;
            pk.grad = null;
        }
        void Tail(bool fused)
        {
            using var s = NewDisposeScope();
            (fused ? LoraTailFunction.Apply(result, h, 2.0) : result.add(h, 2.0).to_type(dtype)).backward([gr]);
            result.grad = null;
            h.grad = null;
        }
        return new Dictionary<string, object?>
        {
            ["case"] = "fused_check", ["part"] = "timing_fwd_bwd_ms", ["dtype"] = "bf16",
            ["rotary_qk_8x512_32+8x64_fused"] = Ms(device, true, Rope), ["rotary_qk_8x512_32+8x64_eager"] = Ms(device, false, Rope),
            ["lora_tail_4096x2048_fused"] = Ms(device, true, () => Tail(true)), ["lora_tail_4096x2048_eager"] = Ms(device, false, () => Tail(false)),
        };
    }
}
