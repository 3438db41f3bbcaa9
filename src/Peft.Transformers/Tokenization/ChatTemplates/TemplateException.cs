namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// A chat template failed to parse or render (jinja2 <c>TemplateSyntaxError</c> / <c>UndefinedError</c>, transformers'
/// <c>TemplateError</c> from <c>raise_exception</c>). The message names the template line when known.
/// </summary>
public sealed class TemplateException(string message, Exception? inner = null) : Exception(message, inner);
