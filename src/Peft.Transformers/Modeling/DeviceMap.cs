using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// HF <c>device_map</c> for one device: "cpu", "cuda", "cuda:N", or "auto" (the first CUDA device when one is
/// available, else the CPU). Spreading the layers of one model over several devices is not implemented: the model
/// forward passes do not move hidden states between devices, so "auto" places the whole model on one device.
/// </summary>
public static class DeviceMap
{
    /// <summary>Resolves <paramref name="deviceMap"/> / <paramref name="device"/> (at most one may be given) to the load device; null = CPU.</summary>
    /// <exception cref="ArgumentException">Both given, or an unknown map string (named in the message).</exception>
    public static Device Resolve(string? deviceMap, Device? device)
    {
        if (deviceMap is not null && device is not null)
            throw new ArgumentException($"FromPretrainedOptions: give Device or DeviceMap, not both (Device = {device}, DeviceMap = '{deviceMap}').");
        if (device is not null) return device;
        return deviceMap switch
        {
            null or "cpu" => CPU,
            "auto" => cuda.is_available() ? new Device(DeviceType.CUDA, 0) : CPU,
            "cuda" => new Device(DeviceType.CUDA, 0),
            _ when deviceMap.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(deviceMap.AsSpan(5), out var i) && i >= 0 => new Device(DeviceType.CUDA, i),
            _ => throw new ArgumentException($"FromPretrainedOptions.DeviceMap '{deviceMap}' is not one of \"cpu\", \"cuda\", \"cuda:N\", \"auto\"."),
        };
    }
}
