using System.Text.Json;
using System.Text.Json.Nodes;

namespace Peft.Transformers;

/// <summary>Reads a model folder's config.json into the config record of its <c>model_type</c> (HF <c>AutoConfig</c>).</summary>
public static class AutoConfig
{
    private static readonly Dictionary<string, Type> Types = new(StringComparer.Ordinal)
    {
        ["bert"] = typeof(BertConfig),
        ["gpt2"] = typeof(GPT2Config),
        ["opt"] = typeof(OPTConfig),
        ["llama"] = typeof(LlamaConfig),
        ["qwen2"] = typeof(Qwen2Config),
        ["mistral"] = typeof(MistralConfig),
    };

    /// <summary>The supported <c>model_type</c> values.</summary>
    public static IReadOnlyCollection<string> SupportedModelTypes => Types.Keys;

    /// <summary>
    /// Loads <c>config.json</c> from a folder, a config file path, or a hub id resolved through the local HF cache.
    /// </summary>
    /// <exception cref="FileNotFoundException">No config.json.</exception>
    /// <exception cref="NotSupportedException">Unknown <c>model_type</c>.</exception>
    public static PretrainedConfig FromPretrained(string pathOrId, FromPretrainedOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(pathOrId);
        string file = File.Exists(pathOrId) ? pathOrId : Path.Combine(HubCache.ResolveModelDir(pathOrId, options), "config.json");
        if (!File.Exists(file)) throw new FileNotFoundException($"config.json not found in '{pathOrId}' ({file}).", file);
        return FromJson(File.ReadAllText(file), file) with { NameOrPath = pathOrId };
    }

    /// <summary>Parses config.json text; <paramref name="source"/> names the file in error messages.</summary>
    public static PretrainedConfig FromJson(string json, string source = "config.json") =>
        Peft.Core.IO.ReaderErrors.Guard(source, () => Parse(json, source));

    private static PretrainedConfig Parse(string json, string source)
    {
        JsonNode? node;
        try { node = Peft.Core.IO.ReaderErrors.ParseJson(json, source, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: malformed JSON: {e.Message}", e); }
        if (node is not JsonObject obj) throw new InvalidDataException($"{source}: expected a JSON object.");
        var modelType = (obj["model_type"] is JsonValue mt && mt.TryGetValue<string>(out var mts) ? mts : null)
            ?? throw new InvalidDataException($"{source}: missing 'model_type'.");
        if (!Types.TryGetValue(modelType, out var type))
            throw new NotSupportedException($"{source}: model_type '{modelType}' is not supported (supported: {string.Join(", ", Types.Keys)}).");
        try
        {
            var cfg = (PretrainedConfig)(JsonSerializer.Deserialize(json, type, PretrainedConfig.JsonOptions)
                ?? throw new InvalidDataException($"{source}: empty config."));
            cfg.Validate();
            return cfg;
        }
        catch (JsonException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
    }
}
