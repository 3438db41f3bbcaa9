using TorchSharp;

namespace Peft.Core.Safetensors;

/// <summary>The safetensors dtype names this library reads and writes, and their TorchSharp equivalents.</summary>
public static class SafetensorsDtype
{
    private static readonly Dictionary<string, (torch.ScalarType Type, int Size)> ByName = new(StringComparer.Ordinal)
    {
        ["F64"] = (torch.ScalarType.Float64, 8),
        ["F32"] = (torch.ScalarType.Float32, 4),
        ["F16"] = (torch.ScalarType.Float16, 2),
        ["BF16"] = (torch.ScalarType.BFloat16, 2),
        ["I64"] = (torch.ScalarType.Int64, 8),
        ["I32"] = (torch.ScalarType.Int32, 4),
        ["I16"] = (torch.ScalarType.Int16, 2),
        ["I8"] = (torch.ScalarType.Int8, 1),
        ["U8"] = (torch.ScalarType.Byte, 1),
        ["BOOL"] = (torch.ScalarType.Bool, 1),
    };

    /// <summary>
    /// The order the reference writer (Rust <c>safetensors</c>) lays tensors out in: by dtype, largest alignment
    /// first, then by name. Larger rank = earlier in the file.
    /// </summary>
    private static readonly Dictionary<string, int> Rank = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 0, ["U8"] = 1, ["I8"] = 2, ["I16"] = 3, ["F16"] = 4, ["BF16"] = 5,
        ["I32"] = 6, ["F32"] = 7, ["F64"] = 8, ["I64"] = 9,
    };

    /// <summary>Every supported dtype name.</summary>
    public static IReadOnlyCollection<string> Names => ByName.Keys;

    /// <summary>True when <paramref name="name"/> is a supported dtype name (case-sensitive, as in the format).</summary>
    public static bool IsKnown(string name) => ByName.ContainsKey(name);

    /// <summary>Bytes per element of a dtype name.</summary>
    public static int ElementSize(string name) => ByName.TryGetValue(name, out var v)
        ? v.Size
        : throw new ArgumentException($"safetensors dtype '{name}' is not supported (supported: {string.Join(", ", ByName.Keys)}).", nameof(name));

    /// <summary>TorchSharp scalar type of a dtype name.</summary>
    public static torch.ScalarType ToScalarType(string name) => ByName.TryGetValue(name, out var v)
        ? v.Type
        : throw new ArgumentException($"safetensors dtype '{name}' is not supported (supported: {string.Join(", ", ByName.Keys)}).", nameof(name));

    /// <summary>The safetensors dtype name of a TorchSharp scalar type.</summary>
    public static string FromScalarType(torch.ScalarType type)
    {
        foreach (var (k, v) in ByName)
        {
            if (v.Type == type) return k;
        }
        throw new ArgumentException($"TorchSharp dtype {type} has no safetensors equivalent supported here.", nameof(type));
    }

    internal static int LayoutRank(string name) => Rank[name];
}
