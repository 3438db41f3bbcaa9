using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tuners;

/// <summary>
/// One tensor of an adapter's file (PEFT <c>get_peft_model_state_dict</c> / <c>set_peft_model_state_dict</c>).
/// </summary>
/// <param name="Key">The key in <c>adapter_model.safetensors</c> (adapter name removed), e.g.
/// <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c> or <c>prompt_embeddings</c>.</param>
/// <param name="Value">The model's tensor (not owned by the caller).</param>
/// <param name="Save">Whether saving writes it.</param>
/// <param name="Required">Whether loading fails when the file lacks it.</param>
/// <param name="Load">Copies a file tensor in (argument: value, key); null = a shape-checked copy into <paramref name="Value"/>.</param>
public sealed record AdapterTensorSlot(string Key, Tensor Value, bool Save = true, bool Required = true, Action<Tensor, string>? Load = null);

public abstract partial class BaseTuner
{
    /// <summary>The prefix of model tensors in adapter files (the model is <c>base_model.model</c> in PEFT).</summary>
    public const string StateDictRoot = "base_model.model.";

    /// <summary>
    /// The tensors of <paramref name="adapterName"/>'s file: every tuner layer's <see cref="ITunerLayer.AdapterTensors"/>
    /// and every modules_to_save copy (PEFT layout). A method adds its own (LoRA biases, prompt embeddings) by overriding.
    /// </summary>
    protected virtual IEnumerable<AdapterTensorSlot> AdapterSlots(string adapterName, PeftConfig config)
    {
        foreach (var (path, layer) in TunerLayers())
        {
            if (!layer.AdapterNames.Contains(adapterName)) continue;
            foreach (var (name, value) in layer.AdapterTensors(adapterName))
            {
                yield return new AdapterTensorSlot($"{StateDictRoot}{path}.{name}", value, Load: (t, k) => layer.LoadAdapterTensor(adapterName, name, t, k));
            }
        }
        foreach (var (path, w) in ModulesToSaveWrappers())
        {
            if (!w.Has(adapterName)) continue;
            foreach (var (name, value) in w.AdapterTensors(adapterName))
            {
                yield return new AdapterTensorSlot($"{StateDictRoot}{path}.{name}", value);
                // PEFT's bias="all" files also carry the wrapper's own bias keys; accept them (the copy's value is the same tensor).
                if (name.EndsWith("bias", StringComparison.Ordinal))
                {
                    yield return new AdapterTensorSlot($"{StateDictRoot}{path}.modules_to_save.{name}", value, Save: false, Required: false);
                    yield return new AdapterTensorSlot($"{StateDictRoot}{path}.original_module.{name}", w.OriginalModule.state_dict()[name], Save: false, Required: false);
                }
            }
        }
    }

    /// <summary>
    /// The adapter's tensors as PEFT saves them (keys of <see cref="AdapterSlots"/> that are saved). The tensors are the
    /// model's own unless a method transforms them (AdaLoRA trims to its rank pattern); create them in the caller's
    /// dispose scope and do not dispose the returned values.
    /// </summary>
    public virtual Dictionary<string, Tensor> GetAdapterStateDict(string adapterName)
    {
        var config = ConfigOf(adapterName);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var slot in AdapterSlots(adapterName, config))
        {
            if (slot.Save) result[slot.Key] = slot.Value;
        }
        return result;
    }

    /// <summary>
    /// Copies saved tensors (PEFT layout) into adapter <paramref name="adapterName"/>; strict: an unknown key or a missing
    /// required one throws naming the key and <paramref name="source"/>; a shape mismatch names both shapes.
    /// </summary>
    public virtual void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> tensors, string adapterName, string source)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var config = ConfigOf(adapterName);
        var slots = new Dictionary<string, AdapterTensorSlot>(StringComparer.Ordinal);
        foreach (var s in AdapterSlots(adapterName, config)) slots.TryAdd(s.Key, s);
        var required = slots.Values.Where(s => s.Required).Select(s => s.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var (key, value) in tensors)
        {
            if (!slots.TryGetValue(key, out var slot))
            {
                var expected = required.Take(6);
                throw new InvalidDataException(
                    $"{source}: tensor '{key}' does not fit the model's adapter '{adapterName}' ({config.PeftType}: no such adapter layer, tensor or module to save). " +
                    $"Expected keys like: {string.Join(", ", expected)}{(required.Count > 6 ? ", ..." : "")}.");
            }
            if (slot.Load is { } load) load(value, key);
            else CopyInto(slot.Value, value, key);
            required.Remove(key);
        }
        if (required.Count > 0)
            throw new InvalidDataException($"{source}: missing adapter tensors for adapter '{adapterName}': {string.Join(", ", required.Take(10))}{(required.Count > 10 ? ", ..." : "")}.");
    }

    /// <summary>The config of an existing adapter; throws naming the known ones.</summary>
    protected PeftConfig ConfigOf(string adapterName) =>
        _configs.TryGetValue(adapterName, out var c) ? c
            : throw new ArgumentException($"No adapter '{adapterName}' (have: {string.Join(", ", _configs.Keys)}).", nameof(adapterName));

    /// <summary>Copies <paramref name="value"/> into <paramref name="target"/> (dtype / device converted) after checking the shape; names <paramref name="key"/> on mismatch.</summary>
    protected static void CopyInto(Tensor target, Tensor value, string key)
    {
        if (!target.shape.SequenceEqual(value.shape))
            throw new InvalidDataException($"adapter tensor '{key}': shape [{string.Join(", ", value.shape)}] in the file does not fit the model's [{string.Join(", ", target.shape)}].");
        using var _ = no_grad();
        target.copy_(value.to(target.dtype, target.device));
    }
}
