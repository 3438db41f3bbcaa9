using System.Text.Json.Nodes;

namespace Peft.Samples;

/// <summary>tokenizer.json pieces the samples' tokenizer writers share (HF tokenizers' serialised layout).</summary>
internal static class TokenizerJsonParts
{
    /// <summary>An <c>added_tokens</c> entry for a special token.</summary>
    public static JsonObject Special(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
        ["normalized"] = false, ["special"] = true,
    };

    /// <summary>OPT-style post-processor: every sequence starts with <c>&lt;/s&gt;</c> (id <paramref name="eosId"/>).</summary>
    public static JsonObject OptStylePostProcessor(int eosId) => new()
    {
        ["type"] = "TemplateProcessing",
        ["single"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "</s>", ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        ["pair"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "</s>", ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
        ["special_tokens"] = new JsonObject
        {
            ["</s>"] = new JsonObject { ["id"] = "</s>", ["ids"] = new JsonArray(eosId), ["tokens"] = new JsonArray("</s>") },
        },
    };
}
