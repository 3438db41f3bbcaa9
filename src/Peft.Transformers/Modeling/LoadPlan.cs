using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>Where and how <see cref="PreTrainedModel"/>'s streaming load puts each tensor: dtype, device(s), optional quantizer.</summary>
/// <param name="Dtype">Floating-point parameters are read in this dtype (integer tensors keep theirs).</param>
/// <param name="Device">Every tensor is read onto this device, unless <see cref="Placement"/> places its module.</param>
/// <param name="Quantizer">Replaces quantisation targets by their quantised layer; null = none.</param>
internal sealed record LoadPlan(ScalarType Dtype, Device Device, WeightQuantizer? Quantizer)
{
    /// <summary>A multi-device placement (device_map "auto" / "balanced" / "sequential"); null = all on <see cref="Device"/>.</summary>
    public LoadPlacement? Placement { get; init; }

    /// <summary>The dtype a checkpoint tensor for <paramref name="target"/> is read in.</summary>
    public ScalarType DtypeFor(Tensor target) => target.is_floating_point() ? Dtype : target.dtype;

    /// <summary>The device of the module at <paramref name="modulePath"/>.</summary>
    public Device DeviceFor(string modulePath) => Placement?.For(modulePath) ?? Device;
}
