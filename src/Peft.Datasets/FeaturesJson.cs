using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Datasets;

/// <summary>
/// HF's JSON form of features (as stored under the "huggingface" key of Parquet / Arrow metadata and in
/// dataset_info.json): <c>{"text": {"dtype": "string", "_type": "Value"}, "label": {"names": [...], "_type": "ClassLabel"}, ...}</c>.
/// </summary>
public static class FeaturesJson
{
    /// <summary>The features as HF JSON (an object keyed by column).</summary>
    public static JsonObject ToJson(Features features)
    {
        ArgumentNullException.ThrowIfNull(features);
        var o = new JsonObject();
        foreach (var (k, f) in features) o[k] = ToJson(f);
        return o;
    }

    /// <summary>One feature as HF JSON.</summary>
    public static JsonNode ToJson(FeatureType feature) => feature switch
    {
        Value v => new JsonObject { ["dtype"] = v.Dtype, ["_type"] = "Value" },
        ClassLabel c => new JsonObject { ["names"] = new JsonArray(c.Names.Select(n => (JsonNode)JsonValue.Create(n)!).ToArray()), ["_type"] = "ClassLabel" },
        Sequence s => s.Length < 0
            ? new JsonObject { ["feature"] = ToJson(s.Feature), ["_type"] = "List" }
            : new JsonObject { ["feature"] = ToJson(s.Feature), ["length"] = s.Length, ["_type"] = "List" },
        _ => throw new NotSupportedException($"Feature {feature} has no HF JSON form"),
    };

    /// <summary>Features from HF JSON; unknown feature kinds throw naming the column.</summary>
    public static Features FromJson(JsonElement features)
    {
        if (features.ValueKind != JsonValueKind.Object) throw new FormatException("HF features JSON must be an object");
        return new Features(features.EnumerateObject().Select(p => new KeyValuePair<string, FeatureType>(p.Name, Parse(p.Value, p.Name))));
    }

    private static FeatureType Parse(JsonElement e, string column)
    {
        if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 1) return new Sequence(Parse(e[0], column));  // [feature] shorthand
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("_type", out var t)) throw new FormatException($"Column '{column}': feature JSON without _type: {e}");
        switch (t.GetString())
        {
            case "Value":
                var dtype = e.GetProperty("dtype").GetString()!;
                dtype = dtype switch { "large_string" => "string", "double" => "float64", "float" => "float32", _ => dtype };
                if (!Value.Dtypes.Contains(dtype)) throw new FormatException($"Column '{column}': unsupported Value dtype '{dtype}'");
                return new Value(dtype);
            case "ClassLabel":
                if (e.TryGetProperty("names", out var names) && names.ValueKind == JsonValueKind.Array)
                    return new ClassLabel(names.EnumerateArray().Select(n => n.GetString()!));
                return new ClassLabel(e.GetProperty("num_classes").GetInt32());
            case "List" or "Sequence" or "LargeList":
                int length = e.TryGetProperty("length", out var l) && l.ValueKind == JsonValueKind.Number ? l.GetInt32() : -1;
                return new Sequence(Parse(e.GetProperty("feature"), column), length);
            default:
                throw new FormatException($"Column '{column}': unsupported feature type '{t.GetString()}'");
        }
    }
}
