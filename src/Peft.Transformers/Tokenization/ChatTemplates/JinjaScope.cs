namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>
/// Variables of one jinja2 frame. <c>for</c> bodies (each iteration) and macro calls open a child scope, so a
/// <c>set</c> inside a loop does not change the outer variable (hence <c>namespace()</c>); <c>if</c> opens none.
/// </summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s._vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _vars[name] = value;
}
