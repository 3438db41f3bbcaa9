using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.Pipeline;

/// <summary>Builds the tokenizer.json document that HF's slow-to-fast converters produce from the legacy files.</summary>
internal static class LegacyFiles
{
    /// <summary>GPT-2 style: vocab.json + merges.txt, byte-level pre-tokenizer / decoder.</summary>
    public static JsonObject ByteLevelBpe(string dir, JsonObject config)
    {
        string vocabPath = Path.Combine(dir, "vocab.json");
        var vocab = Peft.Core.IO.ReaderErrors.ParseJson(File.ReadAllText(vocabPath), vocabPath) as JsonObject
            ?? throw new InvalidDataException($"{vocabPath}: expected a JSON object token -> id");
        var merges = new JsonArray();
        foreach (var line in File.ReadLines(Path.Combine(dir, "merges.txt")))
        {
            if (line.StartsWith("#version", StringComparison.Ordinal) || line.Trim().Length == 0) continue;
            merges.Add(line);
        }
        bool prefix = Json.Bool(config, "add_prefix_space", false);
        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = prefix, ["trim_offsets"] = true, ["use_regex"] = true };
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedFromConfig(config, vocab),
            ["normalizer"] = null,
            ["pre_tokenizer"] = byteLevel.DeepClone(),
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false, ["vocab"] = vocab, ["merges"] = merges,
            },
        };
        return json;
    }

    /// <summary>BERT style: vocab.txt with BertNormalizer, BertPreTokenizer, WordPiece and [CLS] A [SEP].</summary>
    public static JsonObject WordPiece(string dir, JsonObject config)
    {
        var vocab = new JsonObject();
        int id = 0;
        foreach (var line in File.ReadLines(Path.Combine(dir, "vocab.txt")))
        {
            string tok = line.TrimEnd('\r');
            if (!vocab.ContainsKey(tok)) vocab[tok] = id;
            id++;
        }
        string cls = Json.OptString(config, "cls_token") ?? "[CLS]";
        string sep = Json.OptString(config, "sep_token") ?? "[SEP]";
        int Id(string t) => vocab[t] is JsonValue v ? v.GetValue<int>() : throw new InvalidDataException($"{dir}/vocab.txt: special token '{t}' is missing");
        JsonObject Special(string t, int type) => new() { ["SpecialToken"] = new JsonObject { ["id"] = t, ["type_id"] = type } };
        JsonObject Seq(string s, int type) => new() { ["Sequence"] = new JsonObject { ["id"] = s, ["type_id"] = type } };
        bool lower = Json.Bool(config, "do_lower_case", true);
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedFromConfig(config, vocab),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = Json.Bool(config, "tokenize_chinese_chars", true),
                ["strip_accents"] = config["strip_accents"]?.DeepClone(), ["lowercase"] = lower,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special(cls, 0), Seq("A", 0), Special(sep, 0)),
                ["pair"] = new JsonArray(Special(cls, 0), Seq("A", 0), Special(sep, 0), Seq("B", 1), Special(sep, 1)),
                ["special_tokens"] = new JsonObject
                {
                    [cls] = new JsonObject { ["id"] = cls, ["ids"] = new JsonArray(Id(cls)), ["tokens"] = new JsonArray(cls) },
                    [sep] = new JsonObject { ["id"] = sep, ["ids"] = new JsonArray(Id(sep)), ["tokens"] = new JsonArray(sep) },
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = Json.OptString(config, "unk_token") ?? "[UNK]", ["continuing_subword_prefix"] = "##",
                ["max_input_chars_per_word"] = 100, ["vocab"] = vocab,
            },
        };
        return json;
    }

    /// <summary>The special tokens of the config as added tokens (special, not normalized), using vocabulary ids
    /// where the token exists and new ids after the vocabulary otherwise.</summary>
    private static JsonArray AddedFromConfig(JsonObject config, JsonObject vocab)
    {
        var names = new List<string>();
        foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token" })
        {
            string? t = config[key] is JsonObject o ? Json.OptString(o, "content") : Json.OptString(config, key);
            if (t is not null) names.Add(t);
        }
        if (config["additional_special_tokens"] is JsonArray extra)
            foreach (var n in extra)
                if ((n is JsonObject o ? Json.OptString(o, "content") : n?.GetValue<string>()) is string s) names.Add(s);
        foreach (var (k, v) in vocab)
            if (v is not JsonValue iv || !iv.TryGetValue<int>(out _)) throw new InvalidDataException($"vocab.json: the id of '{k}' must be an integer, got {v?.ToJsonString() ?? "null"}");
        int next = vocab.Count == 0 ? 0 : vocab.Max(kv => kv.Value!.GetValue<int>()) + 1;
        var res = new List<(int Id, string Content)>();
        foreach (var t in names.Distinct())
        {
            int id = vocab[t] is JsonValue v ? v.GetValue<int>() : next++;
            res.Add((id, t));
        }
        var arr = new JsonArray();
        foreach (var (id, t) in res.OrderBy(x => x.Id))
            arr.Add(new JsonObject
            {
                ["id"] = id, ["content"] = t, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
            });
        return arr;
    }
}
