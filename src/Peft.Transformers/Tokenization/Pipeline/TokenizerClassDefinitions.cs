using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>
/// transformers 5 tokenizer classes that define their pipeline in <c>__init__</c>: for them
/// <c>TokenizersBackend.convert_to_native_format</c> takes only the vocabulary, merges and added tokens from
/// <c>tokenizer.json</c>, and the class sets the normalizer, pre-tokenizer and decoder itself, so
/// <c>AutoTokenizer.from_pretrained</c> can tokenize differently from <c>tokenizers.Tokenizer.from_file</c> on the same
/// file. An ordered list of (tokenizer_class names, rewrite of the tokenizer.json object); classes not listed use the
/// file as written (HF <c>PreTrainedTokenizerFast</c> / <c>TokenizersBackend</c>).
/// </summary>
internal static class TokenizerClassDefinitions
{
    private static readonly (string[] Classes, Func<JsonObject, JsonObject, JsonObject?> Rewrite)[] Definitions =
    [
        (["LlamaTokenizer", "LlamaTokenizerFast"], Llama),
    ];

    /// <summary>The pipeline JSON transformers 5 builds for <paramref name="config"/>'s tokenizer_class (the input itself when the class keeps the file's).</summary>
    public static JsonObject Apply(JsonObject tokenizerJson, JsonObject config)
    {
        var cls = Json.OptString(config, "tokenizer_class");
        foreach (var (classes, rewrite) in Definitions)
            if (cls is not null && classes.Contains(cls) && rewrite(tokenizerJson, config) is { } rewritten) return rewritten;
        return tokenizerJson;
    }

    /// <summary>
    /// transformers 5 <c>LlamaTokenizer.__init__</c>: the BPE model with <c>fuse_unk</c> and <c>byte_fallback</c>, no
    /// normalizer, a <c>Metaspace</c> pre-tokenizer (replacement "▁", no split) whose prepend scheme comes from
    /// <c>add_prefix_space</c> (default true) and <c>legacy</c> (default false): "first" (a "▁" is prepended only to
    /// the text at offset 0, and only when it does not already start with one), "always" when legacy, "never" without
    /// a prefix space; decoder Replace("▁", " "), ByteFallback, Fuse and, with a prefix space, Strip(" ", 1, 0).
    /// The Llama-2 tokenizer.json's own <c>Prepend("▁")</c> normalizer instead prepends to every piece, so
    /// " leading space" gave "▁▁leading▁space" there and "▁leading▁space" here. Files whose model is not BPE are
    /// left as written.
    /// </summary>
    private static JsonObject? Llama(JsonObject tokenizerJson, JsonObject config)
    {
        if (tokenizerJson["model"] is not JsonObject model || Json.OptString(model, "type") != "BPE") return null;
        bool addPrefixSpace = config["add_prefix_space"] is JsonValue a && a.TryGetValue(out bool av) ? av : true;
        bool legacy = config["legacy"] is JsonValue l && l.TryGetValue(out bool lv) && lv;
        string scheme = !addPrefixSpace ? "never" : legacy ? "always" : "first";
        var json = (JsonObject)tokenizerJson.DeepClone();
        var m = (JsonObject)json["model"]!;
        m["fuse_unk"] = true;
        m["byte_fallback"] = true;
        m["dropout"] = null;
        json["normalizer"] = null;
        json["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "\u2581", ["prepend_scheme"] = scheme, ["split"] = false };
        var decoders = new JsonArray
        {
            new JsonObject { ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "\u2581" }, ["content"] = " " },
            new JsonObject { ["type"] = "ByteFallback" },
            new JsonObject { ["type"] = "Fuse" },
        };
        if (addPrefixSpace) decoders.Add(new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 });
        json["decoder"] = new JsonObject { ["type"] = "Sequence", ["decoders"] = decoders };
        return json;
    }
}
