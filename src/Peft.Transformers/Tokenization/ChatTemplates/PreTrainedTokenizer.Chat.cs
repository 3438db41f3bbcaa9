using System.Text.Json.Nodes;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers;

/// <summary>One chat turn for <see cref="PreTrainedTokenizer.ApplyChatTemplate(IEnumerable{ChatMessage}, bool, JsonArray?, IReadOnlyDictionary{string, JsonNode?}?, bool)"/>.</summary>
/// <param name="Role">"system", "user", "assistant", "tool", ...</param>
/// <param name="Content">The text of the turn.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>The message as HF's dict: <c>{"role": ..., "content": ...}</c>.</summary>
    public JsonObject ToJson() => new() { ["role"] = Role, ["content"] = Content };
}

public sealed partial class PreTrainedTokenizer
{
    private Dictionary<string, ChatTemplate>? _chatTemplates;
    private IReadOnlyDictionary<string, string> _chatTemplateFiles = new Dictionary<string, string>(StringComparer.Ordinal);  // name -> its file; replaced, never changed

    /// <summary>
    /// The chat templates by name (HF <c>tokenizer.chat_template</c>): tokenizer_config.json's <c>chat_template</c> (a
    /// string → "default", or the list-of-<c>{name, template}</c> form) or <c>chat_template.jinja</c>. Empty when the
    /// tokenizer has none. Set <see cref="ChatTemplate"/> to replace the default one.
    /// </summary>
    public IReadOnlyDictionary<string, ChatTemplate> ChatTemplates => _chatTemplates ??= LoadChatTemplates();

    /// <summary>The default chat template's text, or null; setting it parses the text (and replaces "default").</summary>
    /// <exception cref="TemplateException">The text does not parse.</exception>
    public string? ChatTemplate
    {
        get => ChatTemplates.TryGetValue("default", out var t) ? t.Source : null;
        set
        {
            var all = new Dictionary<string, ChatTemplate>(ChatTemplates, StringComparer.Ordinal);
            if (value is null) all.Remove("default");
            else all["default"] = Tokenization.ChatTemplates.ChatTemplate.Parse(value);
            _chatTemplateFiles = _chatTemplateFiles.Where(kv => kv.Key != "default").ToDictionary(StringComparer.Ordinal);
            _chatTemplates = all;
        }
    }

    /// <summary>
    /// Renders a conversation with the tokenizer's chat template (HF <c>apply_chat_template(..., tokenize=False)</c>).
    /// The template sees <c>messages</c>, <c>tools</c> (None when null), <c>documents</c> (None),
    /// <c>add_generation_prompt</c>, the special tokens (<c>bos_token</c>, <c>eos_token</c>, ...) and
    /// <paramref name="templateVariables"/> (e.g. <c>enable_thinking</c>). With <paramref name="continueFinalMessage"/>
    /// the text ends right after the last message's content, so generation continues it. Token ids as HF computes them:
    /// <c>Encode(text, addSpecialTokens: false)</c>.
    /// </summary>
    /// <param name="messages">HF's list of message dicts (any fields: role, content, tool_calls, name, ...).</param>
    /// <param name="addGenerationPrompt">Append the assistant header the template defines.</param>
    /// <param name="tools">JSON schemas of tools (HF <c>tools</c>), or null.</param>
    /// <param name="templateVariables">Extra template keyword arguments.</param>
    /// <param name="continueFinalMessage">Leave the final message open (HF <c>continue_final_message</c>).</param>
    /// <exception cref="InvalidOperationException">The tokenizer has no chat template.</exception>
    /// <exception cref="ArgumentException">Both <paramref name="addGenerationPrompt"/> and <paramref name="continueFinalMessage"/>; or
    /// the final message's content is not found in the rendered text.</exception>
    /// <exception cref="TemplateException">The template raised (<c>raise_exception</c>) or failed.</exception>
    public string ApplyChatTemplate(JsonArray messages, bool addGenerationPrompt = false, JsonArray? tools = null,
        IReadOnlyDictionary<string, JsonNode?>? templateVariables = null, bool continueFinalMessage = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (addGenerationPrompt && continueFinalMessage)
            throw new ArgumentException("continueFinalMessage and addGenerationPrompt are not compatible: continueFinalMessage continues the last message, addGenerationPrompt starts a new one.");
        var (name, template) = SelectTemplate(tools is not null);
        var vars = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (k, v) in SpecialTokenVariables()) vars[k] = v;
        if (templateVariables is not null) foreach (var (k, v) in templateVariables) vars[k] = v?.DeepClone();
        vars["messages"] = messages.DeepClone();
        vars["tools"] = tools?.DeepClone();
        vars["documents"] = null;
        vars["add_generation_prompt"] = addGenerationPrompt;
        string rendered;
        try
        {
            rendered = template.Render(vars);
        }
        catch (TemplateException e)
        {
            throw e.InFile(TemplateFile(name), name);
        }
        return continueFinalMessage ? CutAfterFinalMessage(rendered, messages) : rendered;
    }

    /// <summary>Typed form of <see cref="ApplyChatTemplate(JsonArray, bool, JsonArray?, IReadOnlyDictionary{string, JsonNode?}?, bool)"/>.</summary>
    public string ApplyChatTemplate(IEnumerable<ChatMessage> messages, bool addGenerationPrompt = false, JsonArray? tools = null,
        IReadOnlyDictionary<string, JsonNode?>? templateVariables = null, bool continueFinalMessage = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return ApplyChatTemplate(new JsonArray(messages.Select(m => (JsonNode)m.ToJson()).ToArray()), addGenerationPrompt, tools, templateVariables, continueFinalMessage);
    }

    private (string Name, ChatTemplate Template) SelectTemplate(bool hasTools)
    {
        var all = ChatTemplates;
        if (all.Count == 0)
            throw new InvalidOperationException($"Tokenizer '{NameOrPath}' has no chat template (tokenizer_config.json 'chat_template' or chat_template.jinja); set PreTrainedTokenizer.ChatTemplate.");
        if (hasTools && all.TryGetValue("tool_use", out var toolUse)) return ("tool_use", toolUse);
        if (all.TryGetValue("default", out var d)) return ("default", d);
        throw new InvalidOperationException($"Tokenizer '{NameOrPath}' has chat templates [{string.Join(", ", all.Keys)}] but none named 'default'.");
    }

    private IEnumerable<KeyValuePair<string, JsonNode?>> SpecialTokenVariables()
    {
        (string, string?)[] named = [("bos_token", BosToken), ("eos_token", EosToken), ("unk_token", UnkToken), ("sep_token", SepToken),
            ("pad_token", PadToken), ("cls_token", ClsToken), ("mask_token", MaskToken)];
        foreach (var (k, v) in named)
            if (v is not null) yield return new(k, v);
        if (AdditionalSpecialTokens.Count > 0)
            yield return new("additional_special_tokens", new JsonArray(AdditionalSpecialTokens.Select(t => (JsonNode)t).ToArray()));
    }

    /// <summary>HF's continue_final_message cut: the text up to the end of the final message's content.</summary>
    private static string CutAfterFinalMessage(string rendered, JsonArray messages)
    {
        if (messages.Count == 0) throw new ArgumentException("continueFinalMessage needs at least one message", nameof(messages));
        var content = messages[^1]?["content"];
        string final = content switch
        {
            JsonValue v when v.TryGetValue(out string? s) => s!,
            JsonArray parts => parts.LastOrDefault(p => p?["type"]?.GetValue<string>() == "text")?["text"]?.GetValue<string>()
                ?? throw new ArgumentException("continueFinalMessage: the final message has no text part", nameof(messages)),
            _ => throw new ArgumentException("continueFinalMessage: the final message has no string content", nameof(messages)),
        };
        var stripped = final.Trim();
        if (!rendered.Contains(stripped, StringComparison.Ordinal))
            throw new ArgumentException("continueFinalMessage is set but the final message does not appear in the rendered chat (the template changed it).", nameof(messages));
        int at = rendered.LastIndexOf(stripped, StringComparison.Ordinal);
        var lstripped = final.TrimStart();
        return string.CompareOrdinal(rendered, at, lstripped, 0, lstripped.Length) == 0 && at + lstripped.Length <= rendered.Length
            ? rendered[..(at + lstripped.Length)]
            : rendered[..(at + stripped.Length)];
    }

    private Dictionary<string, ChatTemplate> LoadChatTemplates()
    {
        var result = new Dictionary<string, ChatTemplate>(StringComparer.Ordinal);
        string where = NameOrPath is null ? "tokenizer_config.json" : Path.Combine(NameOrPath, "tokenizer_config.json");
        switch (_config["chat_template"])
        {
            case null: break;
            case JsonValue v when v.TryGetValue(out string? text):
                // AutoTokenizer puts chat_template.jinja's text here when the folder has one (it wins over the config's key)
                if (NameOrPath is not null && File.Exists(Path.Combine(NameOrPath, "chat_template.jinja"))) where = Path.Combine(NameOrPath, "chat_template.jinja");
                result["default"] = Parse(text!, where, "default");
                break;
            case JsonArray list:
                foreach (var item in list)
                {
                    string? name = null, text = null;
                    if (item is not JsonObject entry || entry["name"] is not JsonValue n || !n.TryGetValue(out name)
                        || entry["template"] is not JsonValue t || !t.TryGetValue(out text))
                        throw new InvalidDataException($"{where}: chat_template list entries need 'name' and 'template' strings");
                    result[name] = Parse(text, where, name);
                }
                break;
            default: throw new InvalidDataException($"{where}: chat_template must be a string or a list of {{name, template}}");
        }
        _chatTemplateFiles = result.Keys.ToDictionary(k => k, _ => where, StringComparer.Ordinal);
        return result;
    }

    // Where a template's render error points: its file, or the property it was set through.
    private string TemplateFile(string name) =>
        _chatTemplateFiles.TryGetValue(name, out var file) ? file : $"PreTrainedTokenizer.ChatTemplate of '{NameOrPath}'";

    private static ChatTemplate Parse(string text, string where, string name)
    {
        try { return Tokenization.ChatTemplates.ChatTemplate.Parse(text); }
        catch (TemplateException e) { throw new InvalidDataException($"{where}: chat template '{name}' does not parse: {e.Message}", e); }
    }

    private JsonNode? ChatTemplateJson()
    {
        if (_chatTemplates is null) return _config["chat_template"]?.DeepClone();
        if (_chatTemplates.Count == 0) return null;
        if (_chatTemplates.Count == 1 && _chatTemplates.TryGetValue("default", out var only)) return only.Source;
        return new JsonArray(_chatTemplates.Select(kv => (JsonNode)new JsonObject { ["name"] = kv.Key, ["template"] = kv.Value.Source }).ToArray());
    }
}
