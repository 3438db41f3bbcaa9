using TorchSharp;

namespace Peft.Core.Tuners;

/// <summary>
/// A layer that a tuner put in place of a base layer (PEFT <c>BaseTunerLayer</c>): holds the original module as
/// <c>base_layer</c> and per-adapter state keyed by adapter name.
/// </summary>
public interface ITunerLayer
{
    /// <summary>The wrapped original module (PEFT <c>get_base_layer()</c>).</summary>
    torch.nn.Module<torch.Tensor, torch.Tensor> BaseLayer { get; }

    /// <summary>Adapters this layer holds weights for.</summary>
    IReadOnlyCollection<string> AdapterNames { get; }

    /// <summary>Adapters applied in forward (PEFT <c>active_adapters</c>).</summary>
    IReadOnlyList<string> ActiveAdapters { get; }

    /// <summary>When true, forward is the base layer's (merged weights are unmerged first). PEFT <c>disable_adapters</c>.</summary>
    bool DisableAdapters { get; set; }

    /// <summary>Adapters currently folded into the base weight.</summary>
    IReadOnlyList<string> MergedAdapters { get; }

    /// <summary>Makes <paramref name="adapterNames"/> active: their parameters require grad (unless frozen), others do not.</summary>
    void SetAdapter(IReadOnlyList<string> adapterNames, bool trainable = true);

    /// <summary>Removes an adapter's weights (PEFT <c>delete_adapter</c>).</summary>
    void DeleteAdapter(string adapterName);

    /// <summary>Folds the adapters (default: the active ones) into the base weight; <paramref name="safeMerge"/> checks for NaN/Inf first.</summary>
    void Merge(bool safeMerge = false, IReadOnlyList<string>? adapterNames = null);

    /// <summary>Restores the base weight from before <see cref="Merge"/>.</summary>
    void Unmerge();

    /// <summary>
    /// The adapter's tensors as PEFT saves them, named relative to this layer with the adapter name removed
    /// (e.g. <c>lora_A.weight</c>, <c>lora_magnitude_vector</c>). Not owned by the caller.
    /// </summary>
    IEnumerable<(string Name, torch.Tensor Value)> AdapterTensors(string adapterName);

    /// <summary>Copies a saved tensor (name as in <see cref="AdapterTensors"/>) into the adapter; throws naming the key and both shapes on mismatch.</summary>
    void LoadAdapterTensor(string adapterName, string name, torch.Tensor value, string key);

    /// <summary>
    /// Gives up the base layer (after a tuner put it back in this layer's place on unload) and disposes everything else
    /// this layer owns. The layer is unusable afterwards.
    /// </summary>
    void ReleaseBaseLayer();
}

/// <summary>
/// A tuner layer that can apply a different adapter to each row of a batch (PEFT's <c>adapter_names</c> forward
/// argument, "mixed-adapter batches"; supported by LoRA). <see cref="BaseTuner"/> sets <see cref="RowAdapterNames"/>
/// for the duration of one forward call.
/// </summary>
public interface IMixedBatchTunerLayer : ITunerLayer
{
    /// <summary>Per-row adapter names for the current forward ("__base__" = no adapter for that row); null = the active adapters.</summary>
    IReadOnlyList<string>? RowAdapterNames { get; set; }
}
