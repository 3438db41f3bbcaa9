using System.Text.Json;
using Peft.Core.Modules;
using Peft.Core.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The <c>quantization_config</c> entry of config.json (HF <c>config.quantization_config</c>): set when a model is
/// loaded quantised, and re-derived from the layers when it is saved so that the folder always describes its tensors —
/// dropped when nothing is quantised (after <c>MergeAndUnload</c> / dequantisation), written when a model was
/// quantised in place (<see cref="Peft.Core.QLoraConfig"/>), with <c>llm_int8_skip_modules</c> listing the unquantised linear
/// layers whenever the default rule would not reproduce the quantised set.
/// </summary>
internal static class SavedQuantizationConfig
{
    private const string Key = "quantization_config";

    /// <summary><paramref name="ext"/> with <c>quantization_config</c> set to <paramref name="config"/>.</summary>
    public static Dictionary<string, JsonElement> With(IReadOnlyDictionary<string, JsonElement>? ext, BitsAndBytesConfig config)
    {
        var d = ext is null ? new Dictionary<string, JsonElement>() : new Dictionary<string, JsonElement>(ext);
        d[Key] = BitsAndBytesConfigJson.ToJson(config);
        return d;
    }

    /// <summary>The extension data to save for <paramref name="model"/>: <paramref name="ext"/> with the entry re-derived from its layers.</summary>
    public static Dictionary<string, JsonElement>? ForSave(PreTrainedModel model, Dictionary<string, JsonElement>? ext)
    {
        var quantized = model.named_modules().Where(nm => nm.module is IQuantizedLinear).ToList();
        if (quantized.Count == 0)
        {
            if (ext is null || !ext.ContainsKey(Key)) return ext;
            var without = new Dictionary<string, JsonElement>(ext);
            without.Remove(Key);
            return without;
        }
        BitsAndBytesConfig? stored = ext is not null && ext.TryGetValue(Key, out var q) ? BitsAndBytesConfigJson.FromJson(q, "config.quantization_config") : null;
        var bnb = quantized[0].module switch
        {
            Linear4bit l4 => new BitsAndBytesConfig
            {
                LoadIn4Bit = true, Bnb4BitQuantType = l4.State.Format.Name, Bnb4BitUseDoubleQuant = l4.State.Nested is not null,
                Bnb4BitComputeDtype = l4.ComputeDtype, Bnb4BitBlocksize = l4.State.Blocksize,
            },
            Linear8bit l8 => new BitsAndBytesConfig { LoadIn8Bit = true, LlmInt8Threshold = l8.Threshold },
            _ => new BitsAndBytesConfig { LoadIn8Bit = true },
        };
        var linears = model.named_modules().Where(nm => nm.module is Linear or Conv1D or IQuantizedLinear).Select(nm => nm.name).ToList();
        var isQuantized = quantized.Select(nm => nm.name).ToHashSet(StringComparer.Ordinal);
        bool Reproduces(IReadOnlyList<string>? skip)
        {
            var patterns = ModelQuantizer.SkippedNames(model, new QuantizationSettings(null, SkipModules: skip));
            return linears.All(p => !ModelQuantizer.IsSkipped(p, patterns) == isQuantized.Contains(p));
        }
        IReadOnlyList<string>? skipList = stored is not null && Reproduces(stored.LlmInt8SkipModules) ? stored.LlmInt8SkipModules
            : Reproduces(null) ? null
            : linears.Where(p => !isQuantized.Contains(p)).ToList();
        return With(ext, bnb with { LlmInt8SkipModules = skipList });
    }
}
