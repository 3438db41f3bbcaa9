using System.Text.Json.Nodes;
using Peft.Testing;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>
/// A chat template comes from a downloaded tokenizer_config.json / chat_template.jinja: a repetition past 2^26 items
/// fails with <see cref="TemplateException"/> instead of allocating without bound, and one nested deeper than the stack
/// (or building such a value) fails with <see cref="TemplateException"/> instead of a stack overflow that .NET cannot
/// catch (the process would end); jinja2 raises RecursionError for the same templates. Run on a thread-pool thread,
/// whose stack (1.5 MB) is the smallest a caller is likely to use.
/// </summary>
public sealed class ChatTemplateNestingTests
{
    public static TheoryData<string, string> DeepTemplates() => new()
    {
        { "parentheses", "{{ " + new string('(', 100_000) + "1" + new string(')', 100_000) + " }}" },
        { "not chain", "{{ " + string.Concat(Enumerable.Repeat("not ", 100_000)) + "1 }}" },
        { "unary minus", "{{ " + new string('-', 100_000) + "1 }}" },
        { "nested lists", "{{ " + new string('[', 100_000) + new string(']', 100_000) + " }}" },
        { "nested blocks", string.Concat(Enumerable.Repeat("{% if true %}", 50_000)) + "x" + string.Concat(Enumerable.Repeat("{% endif %}", 50_000)) },
        { "long operator chain", "{{ " + string.Join(" + ", Enumerable.Repeat("1", 200_000)) + " }}" },
        { "filter chain", "{{ 1" + string.Concat(Enumerable.Repeat("|string", 100_000)) + " }}" },
        { "value built by a loop", "{% set ns = namespace(x=[]) %}{% for i in range(90000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}" },
    };

    [Theory]
    [MemberData(nameof(DeepTemplates))]
    public async Task A_template_nested_deeper_than_the_stack_fails_with_a_template_error(string what, string template)
    {
        var e = await Task.Run(() => Assert.Throws<TemplateException>(() =>
            ChatTemplate.Parse(template).Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal))));
        Assert.True(e.Message.Contains("nested too deeply", StringComparison.Ordinal), $"{what}: {e.Message}");
    }

    [Fact]
    public async Task Templates_nested_as_deep_as_real_ones_still_render()
    {
        var template = "{{ " + new string('(', 50) + "1" + new string(')', 50) + " + " + string.Join(" + ", Enumerable.Repeat("1", 500)) + " }}";
        Assert.Equal("501", await Task.Run(() => ChatTemplate.Parse(template).Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal))));
    }

    [Fact]
    public void A_named_template_list_entry_that_is_not_a_string_is_refused_naming_the_file()
    {
        using var tmp = new TempDir();
        foreach (var f in Directory.GetFiles(Fixtures.Model("llama-tiny"))) File.Copy(f, tmp.File(Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(tmp.File("tokenizer_config.json")))!.AsObject();
        cfg["chat_template"] = new JsonArray(new JsonObject { ["name"] = 3, ["template"] = "x" });
        File.WriteAllText(tmp.File("tokenizer_config.json"), cfg.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => AutoTokenizer.FromPretrained(tmp.Path).ChatTemplates);
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Theory]
    [InlineData("{{ 'ab' * 10000000000 }}")]
    [InlineData("{{ 4294967297 * 'a' }}")]
    [InlineData("{{ '' * 1000000000000 }}")]
    [InlineData("{{ [1, 2] * 100000000 }}")]
    public void Repeating_a_string_or_list_past_the_limit_fails_with_a_template_error(string template)
    {
        var e = Assert.Throws<TemplateException>(() => ChatTemplate.Parse(template).Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal)));
        Assert.Contains("would exceed", e.Message);
        Assert.Equal("ababab", ChatTemplate.Parse("{{ 'ab' * 3 }}").Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal)));
    }
}
