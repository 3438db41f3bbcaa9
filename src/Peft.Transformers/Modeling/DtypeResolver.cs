using System.Text.Json;
using Peft.Core.Safetensors;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// transformers 5's <c>dtype="auto"</c> (its default): an explicit dtype wins; else the config's <c>dtype</c> (older
/// files: <c>torch_dtype</c>); else the dtype of the checkpoint's first floating-point tensor; else float32.
/// </summary>
internal static class DtypeResolver
{
    public static ScalarType Resolve(ScalarType? requested, PretrainedConfig config, SafetensorsCheckpoint? checkpoint, string where)
    {
        if (requested is { } r)
        {
            if (!r.IsFloatingPoint())
                throw new ArgumentException($"{where}: FromPretrainedOptions.Dtype must be a floating-point dtype, got {r}.");
            return r;
        }
        var name = config.Dtype;
        if (name is null && config.ExtensionData is { } ext && ext.TryGetValue("torch_dtype", out var td) && td.ValueKind == JsonValueKind.String)
            name = td.GetString();
        if (name is not null && name != "auto") return Parse(name, where);
        if (checkpoint is not null)
        {
            foreach (var key in checkpoint.Keys)
            {
                var t = SafetensorsDtype.ToScalarType(checkpoint.GetInfo(key).Dtype);
                if (t.IsFloatingPoint()) return t;
            }
        }
        return ScalarType.Float32;
    }

    /// <summary>"float32" / "float16" / "bfloat16" / "float64" (with or without "torch.").</summary>
    public static ScalarType Parse(string name, string where) => name.Replace("torch.", "", StringComparison.Ordinal) switch
    {
        "float32" or "float" => ScalarType.Float32,
        "float16" or "half" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        "float64" or "double" => ScalarType.Float64,
        _ => throw new InvalidDataException($"{where}: config dtype '{name}' is not float32, float16, bfloat16 or float64."),
    };

    private static bool IsFloatingPoint(this ScalarType t) =>
        t is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64;
}
