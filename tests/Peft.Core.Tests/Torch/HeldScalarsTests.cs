using Peft.Core.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

/// <summary><see cref="HeldScalars"/>: the same Scalar types as TorchSharp's implicit conversions, alive through the call.</summary>
public class HeldScalarsTests
{
    [Fact]
    public void HeldScalarsHaveTheImplicitConversionsTypesAndValues()
    {
        // the same native Scalar as the implicit conversion each overload replaces (type and value)
        using (Scalar d = 0.1) Assert.Equal((d.Type, d.ToDouble()), (HeldScalars.Of(0.1).Type, HeldScalars.Of(0.1).ToDouble()));
        using (Scalar f = 0.1f) Assert.Equal((f.Type, f.ToSingle()), (HeldScalars.Of(0.1f).Type, HeldScalars.Of(0.1f).ToSingle()));
        using (Scalar i = 7) Assert.Equal((i.Type, i.ToInt32()), (HeldScalars.Of(7).Type, HeldScalars.Of(7).ToInt32()));
        using (Scalar l = 1L << 40) Assert.Equal((l.Type, l.ToInt64()), (HeldScalars.Of(1L << 40).Type, HeldScalars.Of(1L << 40).ToInt64()));
        using (Scalar b = true) Assert.Equal((b.Type, b.ToBoolean()), (HeldScalars.Of(true).Type, HeldScalars.Of(true).ToBoolean()));
        Assert.Equal(ScalarType.Int64, HeldScalars.Of(1L << 40).Type);
        using var t = tensor(new[] { 1.5f, -2.25f, 3f });
        using var implicitForm = t.mul(0.1);
        using var held = t.mul(HeldScalars.Of(0.1));
        Assert.Equal(implicitForm.data<float>().ToArray(), held.data<float>().ToArray());
    }

    [Fact]
    public void HeldScalarsStayValidWhileAnotherThreadForcesCollectionsAndFinalizers()
    {
        // the race HeldScalars removes: a GC (started by any thread) finalizing a Scalar during the native call
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        });
        collector.Start();
        using var t = ones(64);
        try
        {
            for (int i = 0; i < 3 * HeldScalars.RingSize; i++)
            {
                double v = 1 + i % 97;
                using var r = t.mul(HeldScalars.Of(v)).add(HeldScalars.Of(0.5));
                Assert.Equal((float)(v + 0.5), r.data<float>()[0]);
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }
}
