using Peft.Core;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Models;

/// <summary>
/// One layer of a transformer stack as <see cref="BackbonePass"/> drives it (HF <c>GPT2Block</c>,
/// <c>OPTDecoderLayer</c>, <c>LlamaDecoderLayer</c>, <c>BertLayer</c>): hidden [B, T, hidden] → [B, T, hidden].
/// </summary>
internal interface ITransformerLayer
{
    /// <summary>Runs the layer. Must not keep or dispose any tensor of <paramref name="inputs"/>.</summary>
    Tensor Forward(Tensor hidden, in LayerInputs inputs);

    /// <summary>The layer's parameters (implemented by <c>nn.Module.parameters</c>); checkpointing back-propagates into them.</summary>
    IEnumerable<Parameter> parameters(bool recurse = true);
}

/// <summary>
/// What every layer of one pass receives besides the hidden states: its index, the additive attention mask
/// [B|1, 1, T, past + T] (null = none), the rotary tables of the Llama family (null elsewhere: cos and the
/// half-negated sin, [B, 1, T, D_rot] each, see <c>RotaryEmbedding.CosSin</c>) and the
/// key/value cache the layer reads its past keys and values from and appends to (null = no cache).
/// </summary>
/// <c>Batch</c> / <c>Length</c>: B and T of the hidden states when the caller knows them on the host (0: unknown, the
/// layer reads the shape).
internal readonly record struct LayerInputs(int LayerIndex, Tensor? Mask, Tensor? Cos, Tensor? Sin, KeyValueCache? Cache, long Batch = 0, long Length = 0)
{
    /// <summary>(B, T) when known, else null.</summary>
    public (long B, long T)? Shape => Length > 0 ? (Batch, Length) : null;
}
