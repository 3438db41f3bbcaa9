using System.Collections.Immutable;
using TorchSharp;
using TorchSharp.Modules;

namespace Peft.Core.Tuners;

/// <summary>What a LoRA layer factory is asked to wrap (PEFT's arguments of <c>dispatch_*</c>).</summary>
/// <param name="Target">The module to adapt.</param>
/// <param name="Key">Its path in the model (for messages).</param>
/// <param name="AdapterName">The adapter to create.</param>
/// <param name="R">Rank for this module (after <c>rank_pattern</c>).</param>
/// <param name="Alpha">Alpha for this module (after <c>alpha_pattern</c>).</param>
/// <param name="Config">The adapter's config.</param>
/// <param name="Warn">Records a warning on the tuner (e.g. fan_in_fan_out corrected).</param>
public sealed record LoraLayerRequest(torch.nn.Module Target, string Key, string AdapterName, int R, double Alpha, LoraConfig Config, Action<string> Warn);

/// <summary>Creates the LoRA layer for a module, or returns null when it does not handle that module type (PEFT <c>dispatch_*</c>).</summary>
public delegate LoraLayer? LoraLayerFactory(LoraLayerRequest request);

/// <summary>
/// The ordered list of LoRA layer factories (PEFT <c>LoraModel._create_new_module</c>'s dispatchers): the first that
/// returns a layer wins. Factories added with <see cref="Register"/> (e.g. by a quantization package for its own
/// linear type) are tried before the built-in ones, as PEFT tries bitsandbytes / GPTQ / ... before
/// <c>dispatch_default</c>. Note that any linear implementing <see cref="Tuners.IBaseLayerWeight"/> is already
/// handled by <see cref="Default"/>'s linear factory.
/// </summary>
public static class LoraDispatchers
{
    private static ImmutableList<LoraLayerFactory> _registered = ImmutableList<LoraLayerFactory>.Empty;

    /// <summary>The built-in factories: Embedding, Conv2d, GPT-2 Conv1D, Linear (and <see cref="Tuners.IBaseLayerWeight"/> linears).</summary>
    public static IReadOnlyList<LoraLayerFactory> Default { get; } = [Embedding, Conv2d, Conv1D, Linear];

    /// <summary>Registered factories followed by <see cref="Default"/>: the list <see cref="LoraModel"/> walks.</summary>
    public static IReadOnlyList<LoraLayerFactory> All => [.. _registered, .. Default];

    /// <summary>Adds <paramref name="factory"/> ahead of the built-in factories (later registrations are tried first). Thread-safe.</summary>
    public static void Register(LoraLayerFactory factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        ImmutableInterlocked.Update(ref _registered, l => l.Contains(factory) ? l : l.Insert(0, factory));
    }

    /// <summary>Removes a factory added with <see cref="Register"/>; returns false when it was not registered.</summary>
    public static bool Unregister(LoraLayerFactory factory)
    {
        bool removed = false;
        ImmutableInterlocked.Update(ref _registered, l =>
        {
            removed = l.Contains(factory);
            return l.Remove(factory);
        });
        return removed;
    }

    /// <summary>PEFT <c>dispatch_default</c> for <c>nn.Embedding</c>.</summary>
    public static LoraLayer? Embedding(LoraLayerRequest q) =>
        q.Target is TorchSharp.Modules.Embedding e ? new LoraEmbedding(e, q.AdapterName, q.R, q.Alpha, q.Config) : null;

    /// <summary>PEFT <c>dispatch_default</c> for <c>nn.Conv2d</c>.</summary>
    public static LoraLayer? Conv2d(LoraLayerRequest q) =>
        q.Target is TorchSharp.Modules.Conv2d c ? new LoraConv2d(c, q.AdapterName, q.R, q.Alpha, q.Config) : null;

    /// <summary>PEFT <c>dispatch_default</c> for GPT-2's <c>Conv1D</c> (weight [in, out]: fan_in_fan_out forced on, with a warning).</summary>
    public static LoraLayer? Conv1D(LoraLayerRequest q)
    {
        if (q.Target is not Peft.Core.Modules.Conv1D c) return null;
        if (!q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to False but the target module '{q.Key}' is a Conv1D (weight [in, out]). Setting fan_in_fan_out to True for it.");
        return new LoraLinear(c, q.AdapterName, q.R, q.Alpha, q.Config);
    }

    /// <summary>PEFT <c>dispatch_default</c> for <c>nn.Linear</c> (fan_in_fan_out forced off, with a warning), and any <see cref="Tuners.IBaseLayerWeight"/> linear module.</summary>
    public static LoraLayer? Linear(LoraLayerRequest q)
    {
        if (q.Target is not (TorchSharp.Modules.Linear or Tuners.IBaseLayerWeight) || q.Target is not torch.nn.Module<torch.Tensor, torch.Tensor> m) return null;
        if (q.Config.FanInFanOut)
            q.Warn($"fan_in_fan_out is set to True but the target module '{q.Key}' is a Linear (weight [out, in]). Setting fan_in_fan_out to False for it.");
        return new LoraLinear(m, q.AdapterName, q.R, q.Alpha, q.Config);
    }
}
