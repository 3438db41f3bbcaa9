using System.Globalization;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Peft.Core.Quantization;

/// <summary>
/// The non-tensor fields of a <see cref="QuantState"/> as bnb serialises them (<c>QuantState.as_dict(packed=True)</c>
/// → <c>pack_dict_to_tensor</c>): the UTF-8 bytes of Python's <c>json.dumps</c> of
/// {quant_type, blocksize, dtype, shape[, nested_blocksize, nested_dtype, nested_offset]} as a uint8 tensor, stored
/// under <c>weight.quant_state.bitsandbytes__&lt;quant_type&gt;</c>.
/// </summary>
internal static class BnbQuantStateJson
{
    /// <summary>The packed uint8 [len] tensor for <paramref name="state"/> (caller owns it).</summary>
    public static Tensor Pack(QuantState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var sb = new StringBuilder();
        sb.Append("{\"quant_type\": \"").Append(state.Format.Name).Append("\", \"blocksize\": ").Append(state.Blocksize.ToString(CultureInfo.InvariantCulture))
          .Append(", \"dtype\": \"").Append(DtypeName(state.Dtype)).Append("\", \"shape\": [")
          .Append(string.Join(", ", state.Shape.Select(s => s.ToString(CultureInfo.InvariantCulture)))).Append(']');
        if (state.Nested is { } n)
        {
            sb.Append(", \"nested_blocksize\": ").Append(n.Blocksize.ToString(CultureInfo.InvariantCulture))
              .Append(", \"nested_dtype\": \"float32\", \"nested_offset\": ").Append(PythonFloat(n.Offset));
        }
        sb.Append('}');
        var bytes = Encoding.UTF8.GetBytes(sb.ToString());
        return tensor(bytes, dtype: ScalarType.Byte);
    }

    /// <summary>
    /// Rebuilds a state from the packed JSON tensor and the serialised tensors (<paramref name="tensor"/>(name) for
    /// "weight.absmax", "weight.quant_map", "weight.nested_absmax", "weight.nested_quant_map"; the state takes
    /// ownership of what it returns). <paramref name="where"/> names the source in errors.
    /// </summary>
    /// <exception cref="InvalidDataException">Malformed JSON, an unknown quant type, or a missing tensor.</exception>
    public static QuantState Unpack(Tensor packedJson, Func<string, Tensor?> tensor, string where)
    {
        ArgumentNullException.ThrowIfNull(packedJson);
        ArgumentNullException.ThrowIfNull(tensor);
        JsonElement root;
        try
        {
            using var cpu = packedJson.cpu().contiguous();
            root = JsonDocument.Parse(cpu.bytes.ToArray()).RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: the packed quant state is not valid JSON ({e.Message}).", e);
        }
        try
        {
            var format = FourBitFormat.FromName(root.GetProperty("quant_type").GetString()!);
            int blocksize = root.GetProperty("blocksize").GetInt32();
            var dtype = ParseDtype(root.GetProperty("dtype").GetString()!, where);
            var shape = root.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Tensor Need(string k) => tensor(k) ?? throw new InvalidDataException($"{where}: missing '{k}'.");
            NestedQuantState? nested = null;
            if (root.TryGetProperty("nested_blocksize", out var nb))
            {
                nested = new NestedQuantState(Need("weight.nested_absmax"), Need("weight.nested_quant_map"), nb.GetInt32(),
                    (float)root.GetProperty("nested_offset").GetDouble());
            }
            return new QuantState(format, Need("weight.absmax"), Need("weight.quant_map"), blocksize, shape, dtype, nested);
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"{where}: malformed quant state ({e.Message}).", e);
        }
    }

    /// <summary>torch's dtype name without "torch." ("float32", "bfloat16", "float16").</summary>
    public static string DtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        _ => throw new ArgumentException($"dtype {dtype} cannot be quantized to 4 bits."),
    };

    private static ScalarType ParseDtype(string name, string where) => name switch
    {
        "float32" => ScalarType.Float32,
        "float16" => ScalarType.Float16,
        "bfloat16" => ScalarType.BFloat16,
        _ => throw new InvalidDataException($"{where}: dtype '{name}' is not float32, float16 or bfloat16."),
    };

    /// <summary>Python's <c>repr(float)</c> of a float32 value widened to double (shortest round-trip digits).</summary>
    public static string PythonFloat(float value)
    {
        double d = value;
        if (double.IsNaN(d)) return "NaN";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16) return d.ToString("F1", CultureInfo.InvariantCulture);
        double a = Math.Abs(d);
        if (a >= 1e-4 && a < 1e16) return d.ToString("R", CultureInfo.InvariantCulture);
        var r = d.ToString("E16", CultureInfo.InvariantCulture);                // exponent form, then the shortest mantissa
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var mantissa = shortest.Contains('E') ? shortest.Split('E')[0] : r.Split('E')[0].TrimEnd('0').TrimEnd('.');
        int exp = int.Parse(r.Split('E')[1], CultureInfo.InvariantCulture);
        return $"{mantissa}e{(exp < 0 ? "-" : "+")}{Math.Abs(exp):00}";
    }
}
