using System.Text.Json.Nodes;
using Peft.Testing;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>Where templates come from (config string, named-template list, chat_template.jinja) and the API's argument checks.</summary>
public class ApplyChatTemplateTests
{
    private static readonly string Templates = Path.Combine(AppContext.BaseDirectory, "Tokenization", "ChatTemplates", "templates");

    private static string CopyTokenizer(TempDir tmp, Action<JsonObject> editConfig)
    {
        foreach (var f in Directory.GetFiles(Fixtures.Model("llama-tiny"))) File.Copy(f, tmp.File(Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(tmp.File("tokenizer_config.json")))!.AsObject();
        editConfig(cfg);
        File.WriteAllText(tmp.File("tokenizer_config.json"), cfg.ToJsonString());
        return tmp.Path;
    }

    [Fact]
    public void Named_template_list_picks_default_or_tool_use_and_the_jinja_file_wins()
    {
        var chatml = File.ReadAllText(Path.Combine(Templates, "chatml.jinja"));
        var zephyr = File.ReadAllText(Path.Combine(Templates, "zephyr.jinja"));
        using var tmp = new TempDir();
        var dir = CopyTokenizer(tmp, c => c["chat_template"] = new JsonArray(
            new JsonObject { ["name"] = "default", ["template"] = chatml },
            new JsonObject { ["name"] = "tool_use", ["template"] = zephyr }));
        var tok = AutoTokenizer.FromPretrained(dir);
        var messages = new[] { new ChatMessage("user", "Hi") };
        var reference = AutoTokenizer.FromPretrained(dir);
        reference.ChatTemplate = chatml;
        Assert.Equal(reference.ApplyChatTemplate(messages, addGenerationPrompt: true), tok.ApplyChatTemplate(messages, addGenerationPrompt: true));
        reference.ChatTemplate = zephyr;
        Assert.Equal(reference.ApplyChatTemplate(messages, addGenerationPrompt: true),
            tok.ApplyChatTemplate(messages, addGenerationPrompt: true, tools: new JsonArray()));

        // typed and JSON forms agree; save/load keeps the templates
        Assert.Equal(tok.ApplyChatTemplate(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" })), tok.ApplyChatTemplate(messages));
        using var saved = new TempDir();
        tok.SavePretrained(saved.Path);
        Assert.Equal(["default", "tool_use"], AutoTokenizer.FromPretrained(saved.Path).ChatTemplates.Keys.Order());

        File.WriteAllText(tmp.File("chat_template.jinja"), zephyr);
        Assert.Equal(zephyr, AutoTokenizer.FromPretrained(dir).ChatTemplate);
    }

    [Fact]
    public void Bad_calls_fail_with_the_reason()
    {
        var tok = AutoTokenizer.FromPretrained(Fixtures.Model("llama-tiny"));
        var none = Assert.Throws<InvalidOperationException>(() => tok.ApplyChatTemplate([new ChatMessage("user", "x")]));
        Assert.Contains("no chat template", none.Message);
        tok.ChatTemplate = File.ReadAllText(Path.Combine(Templates, "chatml.jinja"));
        Assert.Throws<ArgumentException>(() => tok.ApplyChatTemplate([new ChatMessage("user", "x")], addGenerationPrompt: true, continueFinalMessage: true));
        using var tmp = new TempDir();
        var dir = CopyTokenizer(tmp, c => c["chat_template"] = "{% if %}");
        var bad = Assert.Throws<InvalidDataException>(() => AutoTokenizer.FromPretrained(dir).ApplyChatTemplate([new ChatMessage("user", "x")]));
        Assert.Contains("tokenizer_config.json", bad.Message);
    }
}
