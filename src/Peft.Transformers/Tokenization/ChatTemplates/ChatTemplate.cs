using System.Text;
using System.Text.Json.Nodes;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// A parsed Jinja2 chat template (HF <c>tokenizer.chat_template</c>), rendered with our own interpreter under the
/// settings transformers uses (<c>trim_blocks</c>, <c>lstrip_blocks</c>, <c>raise_exception</c>, <c>strftime_now</c>,
/// <c>tojson</c> with <c>ensure_ascii=False</c>, loop controls). Parse once, render many times; thread-safe.
/// </summary>
public sealed class ChatTemplate
{
    private readonly IReadOnlyList<Node> _nodes;

    private ChatTemplate(string source, IReadOnlyList<Node> nodes)
    {
        Source = source;
        _nodes = nodes;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="TemplateException">A syntax error (the message names the line).</exception>
    public static ChatTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return new ChatTemplate(source, JinjaParser.Parse(source));
    }

    /// <summary>
    /// Renders with <paramref name="variables"/> as the template's context (JSON values become Python-like values:
    /// objects → dicts in key order, arrays → lists, integers → int, other numbers → float, null → None).
    /// </summary>
    /// <param name="variables">Context variables (messages, tools, add_generation_prompt, bos_token, ...).</param>
    /// <param name="now">Clock for <c>strftime_now</c>; null = local time, as transformers uses.</param>
    /// <exception cref="TemplateException">The template raised (<c>raise_exception</c>) or used a value wrongly.</exception>
    public string Render(IReadOnlyDictionary<string, JsonNode?> variables, Func<DateTime>? now = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var root = new Scope(null);
        JinjaGlobals.AddTo(root, now ?? (() => DateTime.Now));
        var context = new Scope(root);
        foreach (var (k, v) in variables) context.Set(k, Py.FromJson(v));
        var sb = new StringBuilder();
        new JinjaEvaluator().Render(_nodes, context, sb);
        return sb.ToString();
    }
}
