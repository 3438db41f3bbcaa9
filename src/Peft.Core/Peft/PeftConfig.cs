using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Peft.Core.IO;
using Peft.Core.Tuners;

namespace Peft.Core;

/// <summary>
/// Base of every PEFT method's configuration (PEFT <c>PeftConfig</c>), read from and written to
/// <c>adapter_config.json</c>. Concrete configs (<see cref="LoraConfig"/>, ...) are sealed records with
/// <c>init</c> properties named by <see cref="JsonPropertyNameAttribute"/> exactly as PEFT's keys, so
/// <c>cfg with { InferenceMode = false }</c> works on any of them. Keys this library does not model are kept in
/// <see cref="ExtensionData"/> and written back unchanged.
/// </summary>
public abstract record PeftConfig
{
    /// <summary>The PEFT version whose file format this library writes (<c>peft_version</c> when none was read).</summary>
    public const string PeftFormatVersion = "0.21.0";

    /// <summary>The file name of the config inside an adapter folder.</summary>
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>PEFT's <c>peft_type</c> ("LORA", ...): the key of <see cref="PeftRegistry"/>.</summary>
    [JsonIgnore]
    public abstract string PeftType { get; }

    /// <summary>HF <c>task_type</c>; null for a plain module.</summary>
    [JsonPropertyName("task_type")]
    public TaskType? TaskType { get; init; }

    /// <summary>HF <c>inference_mode</c>: when true the adapter is loaded frozen (no parameter requires grad).</summary>
    [JsonPropertyName("inference_mode")]
    public bool InferenceMode { get; init; }

    /// <summary>HF <c>base_model_name_or_path</c>: where the base model came from (filled in by <see cref="PeftModel"/> when null).</summary>
    [JsonPropertyName("base_model_name_or_path")]
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>HF <c>revision</c> of the base model.</summary>
    [JsonPropertyName("revision")]
    public string? Revision { get; init; }

    /// <summary>HF <c>peft_version</c>: the PEFT version that wrote the file.</summary>
    [JsonPropertyName("peft_version")]
    public string? PeftVersion { get; init; }

    /// <summary>Keys of <c>adapter_config.json</c> that this library does not model; written back unchanged.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? ExtensionData { get; init; }

    /// <summary>True for prompt-learning methods (prompt / prefix / P-tuning), which do not replace layers.</summary>
    [JsonIgnore]
    public virtual bool IsPromptLearning => false;

    /// <summary>HF <c>modules_to_save</c> of methods that have it (null otherwise).</summary>
    [JsonIgnore]
    public virtual IReadOnlyList<string>? ModulesToSaveNames => null;

    /// <summary>A copy with <c>modules_to_save</c> replaced (methods without it return themselves).</summary>
    public virtual PeftConfig WithModulesToSave(IReadOnlyList<string> modules) => this;

    /// <summary>Cross-field checks; throws <see cref="ArgumentException"/> naming the field and the value.</summary>
    public abstract void Validate();

    /// <summary>
    /// Prepares the base model before <c>GetPeftModel</c> injects adapters; nothing by default. A config that needs
    /// the model in another form does it here (<c>QLoraConfig</c> quantizes the linear layers in place).
    /// </summary>
    public virtual void PrepareModel(TorchSharp.torch.nn.Module model)
    {
    }

    /// <summary>
    /// Keys PEFT writes for this method that this library does not interpret, with PEFT's defaults. They are written
    /// when absent so Python PEFT reads the file exactly as its own; <see cref="Validate"/> rejects files that set
    /// them to anything that would change the math.
    /// </summary>
    protected virtual IReadOnlyDictionary<string, JsonNode?> PeftDefaults { get; } = new Dictionary<string, JsonNode?>();

    internal static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// Reads <c>adapter_config.json</c> from <paramref name="dir"/> and returns the concrete config for its
    /// <c>peft_type</c> (HF <c>PeftConfig.from_pretrained</c>). Throws naming the file when it is missing or invalid.
    /// </summary>
    public static PeftConfig FromPretrained(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        var path = Path.Combine(dir, ConfigFileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No {ConfigFileName} in adapter folder '{dir}'.", path);
        SafePath.EnsureInside(dir, path, $"Adapter folder '{dir}': {ConfigFileName}");
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses the JSON of an <c>adapter_config.json</c> into its concrete config type.</summary>
    /// <param name="json">The file's text.</param>
    /// <param name="source">Named in error messages (usually the file path).</param>
    public static PeftConfig FromJson(string json, string? source = null)
    {
        source ??= ConfigFileName;
        return ReaderErrors.Guard(source, () => Parse(json, source));
    }

    private static PeftConfig Parse(string json, string source)
    {
        JsonNode? root;
        try { root = ReaderErrors.ParseJson(json, source); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: invalid JSON ({e.Message}).", e); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{source}: expected a JSON object.");
        var peftType = (obj["peft_type"] is JsonValue pt && pt.TryGetValue<string>(out var pts) ? pts : null)
            ?? throw new InvalidDataException($"{source}: no \"peft_type\" key.");
        var entry = PeftRegistry.Get(peftType, source);
        PeftConfig config;
        try
        {
            obj.Remove("peft_type");
            config = (PeftConfig)(obj.Deserialize(entry.ConfigType, JsonOptions)
                ?? throw new InvalidDataException($"{source}: empty config."));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: cannot read {entry.ConfigType.Name}: {e.Message}", e);
        }
        try { config.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
        return config;
    }

    /// <summary>The config as PEFT writes it: every PEFT key, sorted, two-space indented.</summary>
    public string ToJson()
    {
        var node = JsonSerializer.SerializeToNode(this, GetType(), JsonOptions)!.AsObject();
        node["peft_type"] = PeftType;
        node["peft_version"] ??= PeftFormatVersion;
        foreach (var (key, value) in PeftDefaults)
        {
            if (!node.ContainsKey(key)) node[key] = value?.DeepClone();
        }
        var sorted = new JsonObject();
        foreach (var key in node.Select(kv => kv.Key).OrderBy(k => k, StringComparer.Ordinal).ToList())
        {
            var value = node[key];
            node.Remove(key);
            sorted[key] = value;
        }
        return sorted.ToJsonString(JsonOptions);
    }

    /// <summary>Writes <c>adapter_config.json</c> into <paramref name="dir"/> (created if needed; atomic write).</summary>
    public void SavePretrained(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        Directory.CreateDirectory(dir);
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFileName), ToJson());
    }

    /// <summary>Throws when <paramref name="key"/> is in <see cref="ExtensionData"/> with a value other than PEFT's default.</summary>
    protected void RequireDefault(string key, Func<JsonElement, bool> isDefault, string why)
    {
        if (ExtensionData is not null && ExtensionData.TryGetValue(key, out var v) && !isDefault(v))
        {
            throw new NotSupportedException($"{PeftType} config key \"{key}\" = {v.GetRawText()} is not supported by Peft.NET ({why}).");
        }
    }

    /// <summary>True for JSON null, false, an empty object or an empty array.</summary>
    protected static bool IsNullOrEmpty(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.False or JsonValueKind.Undefined => true,
        JsonValueKind.Object => !v.EnumerateObject().Any(),
        JsonValueKind.Array => v.GetArrayLength() == 0,
        _ => false,
    };
}
