using System.Runtime.CompilerServices;

namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// Guards the recursive parser and evaluator against templates nested deeper than the thread's stack (a downloaded
/// tokenizer_config.json with <c>((((...</c>, <c>not not not ...</c>, a long <c>a + a + ...</c> chain or nested blocks):
/// .NET cannot catch a stack overflow, so without this check such a template ends the whole process. jinja2 stops the
/// same templates with Python's RecursionError.
/// </summary>
internal static class JinjaStack
{
    /// <summary>
    /// Throws <see cref="TemplateException"/> (naming <paramref name="line"/> when known) when little stack is left.
    /// Also guards the recursive walks over values a template builds (a list nested 100,000 deep by a loop, or one
    /// that contains itself).
    /// </summary>
    public static void Check(int line = 0)
    {
        if (!RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateException((line > 0 ? $"line {line}: " : "") + "the template or a value it built is nested too deeply");
    }
}
