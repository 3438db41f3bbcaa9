using Peft.Core.Torch.Cuda;
using Peft.Testing;
using Peft.Transformers.Models.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models.Llama;

/// <summary>
/// The fused rotary dispatch (<c>RotaryEmbedding.ApplyPair</c> → <see cref="RotaryFunction"/>) on this CUDA-less
/// machine: the eager chain runs, equal bit for bit (outputs and the projections' gradients) to HF's
/// <c>apply_rotary_pos_emb</c> written out here, with the switch on or off; the fused node's layout check accepts
/// exactly the shapes the kernel handles and refuses CPU tensors; the node refuses CPU tensors with a typed exception
/// instead of reaching native code; no tensors leak. The kernel against the eager chain on CUDA: <c>fused_check</c>.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class RotaryFunctionTests
{
    private static Tensor InvFreq(long d) =>
        exp(arange(0L, d, 2L, dtype: ScalarType.Int64).to_type(ScalarType.Float32).mul(-Math.Log(10000.0) / d));   // [D/2]

    // HF: x · cos + cat(−x₂, x₁) · sin, sin recovered from the half-negated table.
    private static Tensor Hf(Tensor x, Tensor cos, Tensor signedSin)
    {
        long half = x.shape[^1] / 2;
        var sin = cat([signedSin.narrow(-1, 0, half).neg(), signedSin.narrow(-1, half, half)], -1);
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }

    private static void SameValues(Tensor expected, Tensor actual, string what)
    {
        Assert.True(expected.shape.SequenceEqual(actual.shape) && expected.dtype == actual.dtype, $"{what}: shape or dtype differs");
        using var same = expected.eq(actual).all();
        Assert.True(same.item<bool>(), $"{what}: values differ");
    }

    [Theory]
    [InlineData(ScalarType.Float32, null, false)]
    [InlineData(ScalarType.BFloat16, null, false)]
    [InlineData(ScalarType.BFloat16, "0", true)]
    [InlineData(ScalarType.Float16, null, true)]
    public void ApplyPair_on_cpu_equals_hf_for_outputs_and_projection_gradients(ScalarType dtype, string? fused, bool broadcastTable)
    {
        var old = Environment.GetEnvironmentVariable(FusedKernels.EnvVar);
        Environment.SetEnvironmentVariable(FusedKernels.EnvVar, fused);
        try
        {
            using var scope = NewDisposeScope();
            using var gen = new Generator(5);
            long b = 2, hq = 6, hk = 2, t = 5, d = 10;
            var pq = randn([b, t, hq * d], generator: gen).to_type(dtype).requires_grad_(true);          // [B, T, Hq·D]
            var pk = randn([b, t, hk * d], generator: gen).to_type(dtype).requires_grad_(true);
            var pq2 = pq.detach().clone().requires_grad_(true);
            var pk2 = pk.detach().clone().requires_grad_(true);
            var positions = broadcastTable ? arange(4L, 4L + t).unsqueeze(0) : arange(t).unsqueeze(0) + tensor(new long[] { 3, 17 }).unsqueeze(1);
            var (cos, sin) = RotaryEmbedding.CosSin(positions, InvFreq(d), dtype, d);                     // [B|1, 1, T, D]
            var gq = randn([b, hq, t, d], generator: gen).to_type(dtype);
            var gk = randn([b, hk, t, d], generator: gen).to_type(dtype);

            var (q, k) = RotaryEmbedding.ApplyPair(pq.view(b, t, hq, d).transpose(1, 2), pk.view(b, t, hk, d).transpose(1, 2), cos, sin, d, d);
            autograd.backward([q, k], [gq, gk]);
            var eq = Hf(pq2.view(b, t, hq, d).transpose(1, 2), cos, sin);
            var ek = Hf(pk2.view(b, t, hk, d).transpose(1, 2), cos, sin);
            autograd.backward([eq, ek], [gq, gk]);

            SameValues(eq, q, "q vs HF");
            SameValues(ek, k, "k vs HF");
            SameValues(pq2.grad!, pq.grad!, "grad of q_proj's output vs HF");
            SameValues(pk2.grad!, pk.grad!, "grad of k_proj's output vs HF");
        }
        finally
        {
            Environment.SetEnvironmentVariable(FusedKernels.EnvVar, old);
        }
    }

    [Fact]
    public void Fits_refuses_cpu_tensors_and_shapes_the_kernel_does_not_handle()
    {
        using var scope = NewDisposeScope();
        var q = randn(2, 4, 3, 8);
        var k = randn(2, 2, 3, 8);
        var table = randn(2, 1, 3, 8);
        Assert.False(RotaryFunction.Fits(q, k, table, table));                                        // CPU: never
        Assert.False(RotaryFunction.Fits(randn(2, 4, 3, 7), randn(2, 2, 3, 7), randn(2, 1, 3, 7), randn(2, 1, 3, 7))); // odd D
        Assert.False(RotaryFunction.Fits(q, randn(2, 2, 4, 8), table, table));                      // T differs
        Assert.False(RotaryFunction.Fits(q, k, randn(3, 1, 3, 8), table));                          // table batch neither B nor 1
        Assert.False(RotaryFunction.Fits(q, k, randn(2, 2, 3, 8), table));                          // table with a head axis
        Assert.False(RotaryFunction.Fits(q.transpose(2, 3), k, table, table));                      // D not unit-stride
        Assert.False(RotaryFunction.Fits(randn(4, 3, 8), k, table, table));                         // not 4-D
    }

    [Fact]
    public void Fused_node_refuses_cpu_tensors_with_a_typed_exception()
    {
        using var scope = NewDisposeScope();
        var q = randn(2, 4, 3, 8);
        var k = randn(2, 2, 3, 8);
        var table = randn(2, 1, 3, 8);
        var e = Assert.Throws<CudaDriverException>(() => RotaryFunction.Apply(q, k, table, table));
        Assert.StartsWith("unavailable: ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ApplyPair_forward_backward_does_not_leak_tensors()
    {
        using var pq = randn(2, 3, 4 * 6);
        using var pk = randn(2, 3, 2 * 6);
        using var positions = arange(3L).unsqueeze(0);
        using var inv = InvFreq(6);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var lq = pq.detach().requires_grad_(true);
            var lk = pk.detach().requires_grad_(true);
            var (cos, sin) = RotaryEmbedding.CosSin(positions, inv, ScalarType.Float32, 6);
            var (q, k) = RotaryEmbedding.ApplyPair(lq.view(2, 3, 4, 6).transpose(1, 2), lk.view(2, 3, 2, 6).transpose(1, 2), cos, sin, 6, 6);
            (q.sum() + k.sum()).backward();
            Assert.NotNull(lq.grad);
        }, 50, what: "RotaryEmbedding.ApplyPair forward + backward in a scope");
    }
}
