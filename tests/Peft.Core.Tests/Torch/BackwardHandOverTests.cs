using Peft.Core.Torch;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Torch;

/// <summary>
/// <see cref="BackwardHandOver"/>: the incoming gradient wrappers are disposed at once, the returned gradients stay
/// valid until the next hand-over on the same thread (the engine copies them first) and are disposed then; a returned
/// tensor that is also an incoming one is kept; null gradients are allowed.
/// </summary>
public sealed class BackwardHandOverTests
{
    [Fact]
    public void Incoming_grads_go_at_once_and_returned_grads_at_the_next_hand_over()
    {
        BackwardHandOver.ReleasePrevious();
        var incoming = ones(3);
        var grad = zeros(3);
        var result = new List<Tensor> { grad, null!, null! };
        Assert.Same(result, BackwardHandOver.Finish(result, incoming));
        Assert.True(incoming.IsInvalid, "incoming gradient not disposed");
        Assert.False(grad.IsInvalid, "returned gradient disposed before the engine copied it");

        var incoming2 = ones(2);
        var grad2 = zeros(2);
        BackwardHandOver.Finish([grad2, incoming2], incoming2);                 // a passed-through incoming grad is kept
        Assert.True(grad.IsInvalid, "previous returned gradient not disposed at the next hand-over");
        Assert.False(grad2.IsInvalid);
        Assert.False(incoming2.IsInvalid);

        BackwardHandOver.ReleasePrevious();
        Assert.True(grad2.IsInvalid && incoming2.IsInvalid);
    }

    [Fact]
    public void Hand_overs_are_per_thread()
    {
        BackwardHandOver.ReleasePrevious();
        var mine = zeros(2);
        BackwardHandOver.Finish([mine]);
        var other = new Thread(() => BackwardHandOver.Finish([zeros(1)]));
        other.Start();
        other.Join();
        Assert.False(mine.IsInvalid, "another thread's hand-over released this thread's gradients");
        BackwardHandOver.ReleasePrevious();
        Assert.True(mine.IsInvalid);
    }
}
