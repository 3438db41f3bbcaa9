using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Puts the modules of a model on the devices of an explicit <c>device_map</c> (HF accelerate's
/// <c>dispatch_model</c> without hooks: the forward passes move activations themselves, see
/// <c>Models/Common/BackbonePass</c>). Keys are module paths as <c>named_modules()</c> spells them ("model.layers.3",
/// "lm_head"; "" = the whole model), values device strings ("cpu", "cuda:1"). The planner that turns "auto" /
/// "balanced" into such a map is <see cref="DeviceMap"/>'s.
/// </summary>
public static class DevicePlacement
{
    /// <summary>
    /// Moves each mapped module to its device, shorter paths first (so "model.layers.3" overrides "model"). A model
    /// split this way gives the logits of the unsplit model (the hidden states are copied between devices).
    /// </summary>
    /// <exception cref="KeyNotFoundException">A path names no module (the message names it and the model type).</exception>
    /// <exception cref="ArgumentException">A device string does not parse (named in the message).</exception>
    public static void Apply(nn.Module model, IReadOnlyDictionary<string, string> deviceMap)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(deviceMap);
        var modules = model.named_modules().ToDictionary(m => m.name, m => m.module, StringComparer.Ordinal);
        modules[""] = model;
        foreach (var (path, device) in deviceMap.OrderBy(kv => kv.Key.Length).ThenBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!modules.TryGetValue(path, out var module))
                throw new KeyNotFoundException($"device_map key '{path}' names no module of {model.GetType().Name}");
            Device d;
            try { d = new Device(device); }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException)
            {
                throw new ArgumentException($"device_map['{path}'] = '{device}' is not a device (\"cpu\", \"cuda\", \"cuda:N\")", nameof(deviceMap), e);
            }
            module.to(d);
        }
    }

    /// <summary>Bytes of parameters and buffers per device (HF <c>get_memory_footprint</c> split by device; keys as <c>Device.ToString()</c>).</summary>
    public static IReadOnlyDictionary<string, long> MemoryFootprintByDevice(nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var bytes = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var t in model.parameters().Cast<Tensor>().Concat(model.buffers()))
        {
            string key = t.device.ToString();
            bytes[key] = bytes.GetValueOrDefault(key) + t.numel() * t.ElementSize;
        }
        return bytes;
    }
}
