using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>
/// A chat template that fails while rendering (<c>raise_exception</c>, an unknown filter, a type error) throws a
/// <see cref="TemplateException"/> whose message names the file the template came from (tokenizer_config.json or
/// chat_template.jinja), the template and its line; <see cref="TemplateException.Reason"/> keeps jinja2's wording.
/// </summary>
public sealed class ChatTemplateErrorLocationTests
{
    private static readonly JsonArray Conversation = [new JsonObject { ["role"] = "user", ["content"] = "hi" }];

    public static TheoryData<string, int, string> Failing() => new()
    {
        { "{% for m in messages %}\n{{ m.content }}\n{{ raise_exception('roles must alternate') }}{% endfor %}", 3, "roles must alternate" },
        { "a\nb\n{{ messages | no_such_filter }}", 3, "no filter named 'no_such_filter'" },
        { "{% if true %}\n\n\n{{ messages[0].content - 1 }}{% endif %}", 4, "unsupported operand type(s) for -: 'str' and 'int'" },
    };

    private static string TokenizerFolder(TempDir tmp, string template, bool jinjaFile)
    {
        foreach (var f in Directory.GetFiles(Fixtures.Model("llama-tiny"))) File.Copy(f, tmp.File(Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(tmp.File("tokenizer_config.json")))!.AsObject();
        if (jinjaFile) File.WriteAllText(tmp.File("chat_template.jinja"), template);
        else cfg["chat_template"] = template;
        File.WriteAllText(tmp.File("tokenizer_config.json"), cfg.ToJsonString());
        return tmp.Path;
    }

    [Theory]
    [MemberData(nameof(Failing))]
    public void Render_error_names_the_config_file_the_template_and_the_line(string template, int line, string reason)
    {
        using var tmp = new TempDir();
        var tok = AutoTokenizer.FromPretrained(TokenizerFolder(tmp, template, jinjaFile: false));
        var e = Assert.Throws<TemplateException>(() => tok.ApplyChatTemplate(Conversation));
        Assert.StartsWith($"{tmp.File("tokenizer_config.json")}: chat template 'default', line {line}: ", e.Message, StringComparison.Ordinal);
        Assert.Equal(reason, e.Reason);
        Assert.Equal((line, tmp.File("tokenizer_config.json"), "default"), (e.Line, e.TemplateFile, e.TemplateName));
    }

    [Fact]
    public void Render_error_of_a_chat_template_jinja_names_that_file()
    {
        using var tmp = new TempDir();
        var tok = AutoTokenizer.FromPretrained(TokenizerFolder(tmp, "x\n{{ raise_exception('no') }}", jinjaFile: true));
        var e = Assert.Throws<TemplateException>(() => tok.ApplyChatTemplate(Conversation));
        Assert.Equal($"{tmp.File("chat_template.jinja")}: chat template 'default', line 2: no", e.Message);
    }

    [Fact]
    public void Template_rendered_directly_names_the_line_and_keeps_the_reason()
    {
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("a\n\n{{ raise_exception('stop') }}").Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal)));
        Assert.Equal(("line 3: stop", "stop", 3), (e.Message, e.Reason, e.Line));
    }
}
