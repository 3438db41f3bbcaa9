using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Every case of chat_template_refs.json (transformers 5.17 <c>apply_chat_template</c> over the Llama-3 and Qwen3
/// tokenizers' own templates and 19 collected templates, 7 conversations, generation prompt on/off,
/// continue_final_message, tools, template variables): same text character for character, same token ids, and an
/// exception where Python raised.
/// </summary>
public class ChatTemplateReferenceTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Tokenization", "ChatTemplates");
    private static readonly Lazy<JsonObject> Refs = new(() => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Dir, "chat_template_refs.json")))!);
    private static readonly Dictionary<string, PreTrainedTokenizer> Tokenizers = [];

    public static TheoryData<int> Cases()
    {
        var data = new TheoryData<int>();
        for (int i = 0; i < Refs.Value["cases"]!.AsArray().Count; i++) data.Add(i);
        return data;
    }

    private static PreTrainedTokenizer Tokenizer(string folder)
    {
        lock (Tokenizers)
        {
            if (!Tokenizers.TryGetValue(folder, out var t))
                Tokenizers[folder] = t = AutoTokenizer.FromPretrained(Path.Combine(Fixtures.Shared, "fixtures", folder));
            return t;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Renders_like_transformers(int index)
    {
        var c = Refs.Value["cases"]![index]!.AsObject();
        var name = c["template"]!.GetValue<string>();
        var tok = Tokenizer(c["tokenizer"]!.GetValue<string>());
        var template = name is "llama3" or "qwen3" ? tok.ChatTemplates["default"]
            : ChatTemplate.Parse(File.ReadAllText(Path.Combine(Dir, "templates", name + ".jinja")));
        var messages = Refs.Value["conversations"]![c["conversation"]!.GetValue<string>()]!.AsArray();
        var vars = (c["template_variables"] as JsonObject)?.ToDictionary(kv => kv.Key, kv => kv.Value);
        var tools = c["tools"] as JsonArray;
        bool agp = c["add_generation_prompt"]?.GetValue<bool>() ?? false;
        bool cont = c["continue_final_message"]?.GetValue<bool>() ?? false;
        string Render() => WithTemplate(tok, template, () => tok.ApplyChatTemplate(messages, agp, tools, vars, cont));
        string label = $"{name}/{c["conversation"]} agp={agp} cont={cont} tools={tools is not null} vars={c["template_variables"]?.ToJsonString()}";
        if (c["error"] is { } err)
        {
            var e = Assert.Throws<TemplateException>(Render);
            Assert.Equal(err.GetValue<string>().Replace("TemplateError: ", ""), e.Reason);   // the message adds where
            return;
        }
        var text = Render();
        Assert.True(c["text"]!.GetValue<string>() == text, $"{label}\nexpected:\n{c["text"]}\nactual:\n{text}");
        Assert.Equal(c["ids"]!.AsArray().Select(n => n!.GetValue<int>()), tok.Encode(text, addSpecialTokens: false));
    }

    private static string WithTemplate(PreTrainedTokenizer tok, ChatTemplate template, Func<string> render)
    {
        lock (tok)
        {
            var before = tok.ChatTemplate;
            tok.ChatTemplate = template.Source;
            try { return render(); }
            finally { tok.ChatTemplate = before; }
        }
    }
}
