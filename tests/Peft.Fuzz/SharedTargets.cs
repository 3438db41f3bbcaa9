namespace Peft.Fuzz;

/// <summary>
/// xUnit collection for the test classes that run <see cref="Targets"/>: the targets are one static list whose
/// checkpoint targets share a model and an output folder, so classes using them must not run in parallel.
/// </summary>
[CollectionDefinition(Name)]
public sealed class SharedTargets
{
    /// <summary>The collection's name.</summary>
    public const string Name = "fuzz targets (shared model and folders)";
}
