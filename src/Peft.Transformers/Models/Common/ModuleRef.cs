namespace Peft.Transformers.Models;

/// <summary>
/// A reference to a module that must not be registered as a child of the holder (TorchSharp registers every field
/// of a module type). Used to remember the original embedding for tied heads and <c>GetInputEmbeddings()</c>.
/// </summary>
internal sealed class ModuleRef<T>(T value) where T : class
{
    /// <summary>The referenced module.</summary>
    public T Value { get; } = value;
}
