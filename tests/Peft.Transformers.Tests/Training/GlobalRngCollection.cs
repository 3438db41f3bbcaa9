namespace Peft.Transformers.Tests.Training;

/// <summary>
/// Tests that compare runs bit for bit while dropout draws from torch's process-wide CPU generator: they run alone,
/// since any test on another thread drawing random numbers in between would change the draws.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Global torch RNG (sequential)";
}
