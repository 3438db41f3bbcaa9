using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Core.Quantization;
using TorchSharp;

namespace Peft.Transformers;

/// <summary>
/// <c>config.json</c>'s <c>quantization_config</c> for bitsandbytes, as transformers' <c>BitsAndBytesConfig.to_dict()</c>
/// writes it (keys sorted: <c>_load_in_4bit</c>, <c>_load_in_8bit</c>, <c>bnb_4bit_compute_dtype</c>, ...,
/// <c>quant_method: "bitsandbytes"</c>), and back.
/// </summary>
internal static class BitsAndBytesConfigJson
{
    /// <summary>The config's JSON object (HF to_dict; the block size is not an HF key: it lives in each layer's quant_state).</summary>
    public static JsonElement ToJson(BitsAndBytesConfig c)
    {
        var o = new JsonObject
        {
            ["_load_in_4bit"] = c.LoadIn4Bit,
            ["_load_in_8bit"] = c.LoadIn8Bit,
            ["bnb_4bit_compute_dtype"] = BnbQuantStateJson.DtypeName(c.Bnb4BitComputeDtype),
            ["bnb_4bit_quant_storage"] = "uint8",                                  // the only storage Validate accepts
            ["bnb_4bit_quant_type"] = c.Bnb4BitQuantType,
            ["bnb_4bit_use_double_quant"] = c.Bnb4BitUseDoubleQuant,
            ["llm_int8_enable_fp32_cpu_offload"] = false,
            ["llm_int8_has_fp16_weight"] = false,
            ["llm_int8_skip_modules"] = c.LlmInt8SkipModules is { } s ? new JsonArray(s.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()) : null,
            ["llm_int8_threshold"] = JsonNode.Parse(PythonFloat(c.LlmInt8Threshold)),
            ["load_in_4bit"] = c.LoadIn4Bit,
            ["load_in_8bit"] = c.LoadIn8Bit,
            ["quant_method"] = "bitsandbytes",
        };
        return JsonSerializer.SerializeToElement(o);
    }

    /// <summary>Reads a <c>quantization_config</c> object; <paramref name="where"/> names the file in errors.</summary>
    /// <exception cref="NotSupportedException">Another quant_method (gptq, awq, ...), or an 8-bit model with fp16 weights.</exception>
    /// <exception cref="InvalidDataException">A key has the wrong type or an unknown value (named).</exception>
    public static BitsAndBytesConfig FromJson(JsonElement e, string where)
    {
        if (e.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{where}: 'quantization_config' must be an object, got {e.ValueKind}.");
        var method = Str(e, "quant_method", where) ?? "bitsandbytes";
        if (method != "bitsandbytes")
            throw new NotSupportedException($"{where}: quantization_config.quant_method '{method}' is not supported; only 'bitsandbytes' is.");
        if (Bool(e, "llm_int8_has_fp16_weight", where) == true)
            throw new NotSupportedException($"{where}: quantization_config.llm_int8_has_fp16_weight = true (8-bit training with fp16 weights) is not supported.");
        var c = new BitsAndBytesConfig
        {
            LoadIn4Bit = Bool(e, "load_in_4bit", where) ?? Bool(e, "_load_in_4bit", where) ?? false,
            LoadIn8Bit = Bool(e, "load_in_8bit", where) ?? Bool(e, "_load_in_8bit", where) ?? false,
            Bnb4BitQuantType = Str(e, "bnb_4bit_quant_type", where) ?? "fp4",
            Bnb4BitUseDoubleQuant = Bool(e, "bnb_4bit_use_double_quant", where) ?? false,
            Bnb4BitComputeDtype = Dtype(e, "bnb_4bit_compute_dtype", where) ?? torch.ScalarType.Float32,
            Bnb4BitQuantStorage = Dtype(e, "bnb_4bit_quant_storage", where) ?? torch.ScalarType.Byte,
            LlmInt8SkipModules = SkipList(e, where),
            LlmInt8Threshold = Number(e, "llm_int8_threshold", where) ?? 6.0,
        };
        try { c.Validate(); }
        catch (ArgumentException x) { throw new InvalidDataException($"{where}: quantization_config: {x.Message}", x); }
        if (!c.LoadIn4Bit && !c.LoadIn8Bit)
            throw new InvalidDataException($"{where}: quantization_config has neither load_in_4bit nor load_in_8bit set.");
        return c;
    }

    private static bool? Bool(JsonElement e, string key, string where) => !e.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
        : throw new InvalidDataException($"{where}: quantization_config.{key} must be true or false, got {v.GetRawText()}.");

    private static double? Number(JsonElement e, string key, string where) => !e.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number ? v.GetDouble()
        : throw new InvalidDataException($"{where}: quantization_config.{key} must be a number, got {v.GetRawText()}.");

    /// <summary>A double as Python's repr writes it in JSON (6.0, 0.5, 1e-05 style is not needed for thresholds).</summary>
    private static string PythonFloat(double v) =>
        v == Math.Floor(v) && Math.Abs(v) < 1e15 ? v.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture) : v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);

    private static string? Str(JsonElement e, string key, string where) => !e.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : throw new InvalidDataException($"{where}: quantization_config.{key} must be a string, got {v.GetRawText()}.");

    private static torch.ScalarType? Dtype(JsonElement e, string key, string where) => Str(e, key, where) switch
    {
        null => null,
        "float32" => torch.ScalarType.Float32,
        "float16" => torch.ScalarType.Float16,
        "bfloat16" => torch.ScalarType.BFloat16,
        "uint8" => torch.ScalarType.Byte,
        var s => throw new InvalidDataException($"{where}: quantization_config.{key} '{s}' is not a dtype Peft.NET reads (float32, float16, bfloat16, uint8)."),
    };

    private static IReadOnlyList<string>? SkipList(JsonElement e, string where)
    {
        if (!e.TryGetProperty("llm_int8_skip_modules", out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String))
            throw new InvalidDataException($"{where}: quantization_config.llm_int8_skip_modules must be null or a list of strings, got {v.GetRawText()}.");
        return v.EnumerateArray().Select(x => x.GetString()!).ToList();
    }
}
