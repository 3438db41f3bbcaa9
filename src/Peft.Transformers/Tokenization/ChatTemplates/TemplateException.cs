using System.Globalization;
using System.Text.RegularExpressions;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// A chat template failed to parse or render (jinja2 <c>TemplateSyntaxError</c> / <c>UndefinedError</c>, transformers'
/// <c>TemplateError</c> from <c>raise_exception</c>). <see cref="Exception.Message"/> names where: the file the template
/// came from and the template's name when the tokenizer rendered it (<see cref="PreTrainedTokenizer.ApplyChatTemplate(System.Text.Json.Nodes.JsonArray, bool, System.Text.Json.Nodes.JsonArray?, IReadOnlyDictionary{string, System.Text.Json.Nodes.JsonNode?}?, bool)"/>),
/// and the template line when known; <see cref="Reason"/> is the error alone, as jinja2 / transformers word it.
/// </summary>
public sealed partial class TemplateException : Exception
{
    /// <summary>An error; a leading <c>"line N: "</c> in <paramref name="message"/> becomes <see cref="Line"/>.</summary>
    public TemplateException(string message, Exception? inner = null) : this(Split(message), null, null, inner)
    {
    }

    private TemplateException((int Line, string Reason) located, string? file, string? templateName, Exception? inner)
        : base(Compose(located.Line, located.Reason, file, templateName), inner)
    {
        (Line, Reason, TemplateFile, TemplateName) = (located.Line, located.Reason, file, templateName);
    }

    /// <summary>The error without its location (for <c>raise_exception</c>: the template's own message).</summary>
    public string Reason { get; }

    /// <summary>The 1-based template line the error happened on; 0 when unknown.</summary>
    public int Line { get; }

    /// <summary>The file the template was read from (tokenizer_config.json or chat_template.jinja), when known.</summary>
    public string? TemplateFile { get; }

    /// <summary>The template's name ("default", "tool_use", ...), when known.</summary>
    public string? TemplateName { get; }

    /// <summary>This error at <paramref name="line"/>, unless it already has a line.</summary>
    internal TemplateException AtLine(int line) =>
        Line > 0 || line <= 0 ? this : new TemplateException((line, Reason), TemplateFile, TemplateName, this);

    /// <summary>This error in the template <paramref name="name"/> read from <paramref name="file"/>.</summary>
    internal TemplateException InFile(string file, string name) => new((Line, Reason), file, name, this);

    private static (int, string) Split(string message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var m = LinePrefix().Match(message);
        return m.Success && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int line)
            ? (line, message[m.Length..])
            : (0, message);
    }

    private static string Compose(int line, string reason, string? file, string? name)
    {
        string where = file is null ? "" : $"{file}: chat template '{name}'" + (line > 0 ? ", " : ": ");
        return where + (line > 0 ? $"line {line}: " : "") + reason;
    }

    [GeneratedRegex(@"^line (\d+): ")]
    private static partial Regex LinePrefix();
}
