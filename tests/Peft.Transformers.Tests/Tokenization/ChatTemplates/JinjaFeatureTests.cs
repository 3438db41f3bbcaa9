using System.Text.Json.Nodes;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Interpreter features one by one against jinja2 3.1.6 configured as transformers configures it
/// (jinja_feature_refs.json, made by tools/chat-template-ref/make_jinja_feature_refs.py): Python value printing,
/// tojson spacing, loop.*, loop filters / else / break / continue, scoping and namespace(), macros, slicing, string
/// methods, filters, tests, operators, whitespace control, block set, raise_exception, undefined errors.
/// </summary>
public class JinjaFeatureTests
{
    private static readonly JsonObject Refs = (JsonObject)JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "Tokenization", "ChatTemplates", "jinja_feature_refs.json")))!;

    public static TheoryData<string> Cases() => [.. Refs["cases"]!.AsObject().Select(kv => kv.Key)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Renders_like_jinja2(string name)
    {
        var c = Refs["cases"]![name]!.AsObject();
        var vars = Refs["variables"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value);
        var template = ChatTemplate.Parse(c["template"]!.GetValue<string>());
        if (c["error"] is { } err)
        {
            var e = Assert.Throws<TemplateException>(() => template.Render(vars));
            var expected = err.GetValue<string>();
            if (expected.StartsWith("TemplateError: ", StringComparison.Ordinal)) Assert.Equal(expected["TemplateError: ".Length..], e.Reason);
            return;
        }
        Assert.Equal(c["text"]!.GetValue<string>(), template.Render(vars));
    }

    [Fact]
    public void Syntax_errors_name_the_line()
    {
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("a\n{% if x %}\nb"));
        Assert.Contains("endif", e.Message);
        var u = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("x\n{{ a + }}"));
        Assert.Contains("line 2", u.Message);
        Assert.Throws<TemplateException>(() => ChatTemplate.Parse("{% frobnicate %}"));
    }

    [Fact]
    public void Strftime_now_uses_the_given_clock()
    {
        var t = ChatTemplate.Parse("{{ strftime_now('%d %b %Y %H:%M') }}");
        Assert.Equal(new DateTime(2024, 7, 26, 9, 5, 0).ToString("dd MMM yyyy HH:mm", System.Globalization.CultureInfo.InvariantCulture),
            t.Render(new Dictionary<string, JsonNode?>(), () => new DateTime(2024, 7, 26, 9, 5, 0)));
    }
}
