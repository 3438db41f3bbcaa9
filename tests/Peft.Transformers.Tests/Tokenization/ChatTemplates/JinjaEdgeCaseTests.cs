using System.Text.Json.Nodes;
using Peft.Transformers.Tokenization.ChatTemplates;

namespace Peft.Transformers.Tests.Tokenization.ChatTemplates;

/// <summary>
/// Inputs the chat-template fuzz target (tests/Peft.Fuzz, "chat_template") found crashing the interpreter with an
/// untyped .NET exception; each is now a <see cref="TemplateException"/> naming the line, or renders as jinja2 does.
/// </summary>
public sealed class JinjaEdgeCaseTests
{
    private static string Render(string template) => ChatTemplate.Parse(template).Render(new Dictionary<string, JsonNode?>(StringComparer.Ordinal));

    [Theory]
    [InlineData("x\n{{ 99999999999999999999 }}", "line 2: number literal '99999999999999999999' is malformed or outside the 64-bit range")]
    [InlineData("{{ 1e+ }}", "line 1: number literal '1e+' is malformed or outside the 64-bit range")]
    [InlineData("{{ 9223372036854775807 + 1 }}", "line 1: the integer result of 9223372036854775807 + 1 is outside the 64-bit range")]
    [InlineData("{{ 2 ** 64 }}", "line 1: the integer result of 2 ** 64 is outside the 64-bit range")]
    [InlineData("{{ (-9223372036854775807 - 1) // -1 }}", "line 1: the integer result of -9223372036854775808 // -1 is outside the 64-bit range")]
    [InlineData("\n{{ 3 is divisibleby 0 }}", "line 2: division by zero")]
    [InlineData("{{ 3 is divisibleby }}", "line 1: test 'divisibleby' needs an argument")]
    public void Former_crash_is_a_template_error_naming_the_line(string template, string message)
    {
        var e = Assert.Throws<TemplateException>(() => Render(template));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Sort_of_values_that_do_not_compare_is_a_template_error_not_a_wrapped_InvalidOperationException()
    {
        var e = Assert.Throws<TemplateException>(() => Render("\n{{ [1, 'a'] | sort }}"));
        Assert.Equal(2, e.Line);
        Assert.Contains("not supported between instances of", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{{ [] | min is defined }}|{{ [] | max is defined }}|{{ [3, 1] | min }}", "False|False|1")]
    [InlineData("{{ 2 ** 62 }} {{ 9223372036854775807 - 1 }} {{ -7 // 2 }} {{ 7 % -3 }}", "4611686018427387904 9223372036854775806 -4 -2")]
    [InlineData("{{ 1234.5678 | round(2) }} {{ 1234.5 | round(-2) }} {{ 0.5 | round(40) }}", "1234.57 1200.0 0.5")]
    public void Edge_values_render_as_jinja2(string template, string expected) => Assert.Equal(expected, Render(template));
}
