using TorchSharp;
using Xunit;

namespace Peft.Testing;

/// <summary>Tensor comparisons with messages that say where and by how much two tensors differ.</summary>
public static class TensorAssert
{
    /// <summary>Asserts equal shapes and max |expected − actual| &lt;= <paramref name="atol"/> (optionally only where <paramref name="mask"/> is true).</summary>
    public static void Close(torch.Tensor expected, torch.Tensor actual, double atol = 1e-4, torch.Tensor? mask = null, string? what = null)
    {
        using var scope = torch.NewDisposeScope();
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}] != expected [{string.Join(", ", expected.shape)}]");
        var diff = (expected.to_type(torch.ScalarType.Float64) - actual.to_type(torch.ScalarType.Float64)).abs();
        if (mask is not null)
        {
            var m = mask.to_type(torch.ScalarType.Bool);
            while (m.dim() < diff.dim()) m = m.unsqueeze(-1);
            diff = diff * m.expand_as(diff).to_type(torch.ScalarType.Float64);
        }
        double max = diff.max().item<double>();
        if (!(max <= atol))
        {
            var flat = diff.flatten().argmax().item<long>();
            Assert.Fail($"{what}: max |diff| = {max:G6} > {atol:G3} (at flat index {flat}: expected {expected.flatten()[flat].to_type(torch.ScalarType.Float64).item<double>():G8}, actual {actual.flatten()[flat].to_type(torch.ScalarType.Float64).item<double>():G8})");
        }
    }

    /// <summary>Asserts equal shapes and identical integer values.</summary>
    public static void Equal(torch.Tensor expected, torch.Tensor actual, string? what = null)
    {
        using var scope = torch.NewDisposeScope();
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}] != expected [{string.Join(", ", expected.shape)}]");
        var e = expected.to_type(torch.ScalarType.Int64).data<long>().ToArray();
        var a = actual.to_type(torch.ScalarType.Int64).data<long>().ToArray();
        for (int i = 0; i < e.Length; i++)
        {
            if (e[i] != a[i])
            {
                Assert.Fail($"{what}: differs at flat index {i}: expected {e[i]}, actual {a[i]}\n expected: [{string.Join(", ", e)}]\n actual:   [{string.Join(", ", a)}]");
            }
        }
    }
}
