using TorchSharp;

namespace Peft.Core.Torch;

/// <summary>
/// Scalars for libtorch calls that are disposed deterministically instead of by their finalizer. A
/// <see cref="Scalar"/> made implicitly from a number (<c>t.mul(0.5)</c>, <c>t * 2</c>) is unreachable as soon as
/// its native handle has been read, so a garbage collection started by another thread during the native call can run
/// its finalizer and free the native scalar while libtorch still reads it (seen as "toFloat" overflow checks and
/// "Unknown scalar type" errors, in principle a wrong value; upstream dotnet/TorchSharp#1434 / #1496 concern the same
/// Scalars). <see cref="Of(double)"/> returns a Scalar that a per-thread ring of <see cref="RingSize"/> entries keeps
/// reachable until that many later Scalars were made on the thread, then disposes it: a call site passes it straight
/// into one synchronous libtorch call, so it is long done by then. Never store a held Scalar.
/// </summary>
public static class HeldScalars
{
    /// <summary>How many Scalars each thread keeps alive.</summary>
    public const int RingSize = 4096;

    /// <summary>
    /// int32 1, process-lifetime (static, never finalized): the alpha / value that TorchSharp's <c>add(x)</c>,
    /// <c>add_(x)</c>, <c>addcdiv(a, b)</c> and <c>a + b</c> pass as an implicit, finalizable Scalar; call the overload
    /// with the alpha and pass this instead (the checkpoint fuzz caught "toFloat" from <c>add_(Scalar)</c>).
    /// </summary>
    internal static readonly Scalar One = 1.ToScalar();

    [ThreadStatic] private static Scalar?[]? t_ring;
    [ThreadStatic] private static int t_next;

    /// <summary>A float64 Scalar (as the implicit conversion from double), held until <see cref="RingSize"/> later ones.</summary>
    public static Scalar Of(double value) => Hold(value.ToScalar());

    /// <summary>A float32 Scalar (as the implicit conversion from float).</summary>
    public static Scalar Of(float value) => Hold(value.ToScalar());

    /// <summary>An int32 Scalar (as the implicit conversion from int).</summary>
    public static Scalar Of(int value) => Hold(value.ToScalar());

    /// <summary>An int64 Scalar (as the implicit conversion from long).</summary>
    public static Scalar Of(long value) => Hold(value.ToScalar());

    /// <summary>A bool Scalar (as the implicit conversion from bool).</summary>
    public static Scalar Of(bool value) => Hold(value.ToScalar());

    /// <summary>An existing Scalar passes through (a call site the rewrite wrapped twice).</summary>
    public static Scalar Of(Scalar value) => value;

    private static Scalar Hold(Scalar scalar)
    {
        var ring = t_ring ??= new Scalar?[RingSize];
        int i = t_next;
        ring[i]?.Dispose();
        ring[i] = scalar;
        t_next = (i + 1) % RingSize;
        return scalar;
    }
}
