namespace Peft.Fuzz;

/// <summary>
/// One reader under fuzz: the file it reads (<see cref="FileName"/>, written fresh for each input), the seeds
/// (fixture files), the other files its folder needs (<see cref="Prepare"/>), how to mutate a seed (generic or
/// format-aware) and how to read the folder (<see cref="Run"/>, which also uses what it loaded: encodes text,
/// reads tensors, walks rows).
/// </summary>
public sealed class FuzzTarget
{
    /// <summary>Format name (used for the regression folder and the report).</summary>
    public required string Name { get; init; }

    /// <summary>The file the mutated input is written to, relative to the input folder.</summary>
    public required string FileName { get; init; }

    /// <summary>Seed contents (from the fixtures).</summary>
    public required IReadOnlyList<byte[]> Seeds { get; init; }

    /// <summary>Writes the other files of the folder (read-only copies of fixtures), if any.</summary>
    public Action<string> Prepare { get; init; } = _ => { };

    /// <summary>Reads the folder with the reader under test; throws for bad input.</summary>
    public required Action<string> Run { get; init; }

    /// <summary>
    /// True when <see cref="Run"/> never changes the folder except by rewriting files it writes afresh for every input:
    /// then the runner prepares one folder once and rewrites only <see cref="FileName"/> per input (costly folders).
    /// </summary>
    public bool PreparesOnce { get; init; }

    /// <summary>False for readers that accept any bytes (the text builder): then no refusal is expected.</summary>
    public bool CanRefuse { get; init; } = true;

    /// <summary>Mutation strategy: by default, JSON-aware half of the time for JSON files, else generic.</summary>
    public Func<Mutator, byte[], byte[], byte[]>? Mutation { get; init; }

    /// <summary>Produces one input.</summary>
    public byte[] Mutate(Mutator m, byte[] seed, byte[] other) =>
        Mutation is { } f ? f(m, seed, other)
        : FileName.EndsWith(".json", StringComparison.Ordinal) && m.Rng.Next(2) == 0 ? m.MutateJson(seed, other)
        : m.Mutate(seed, other);
}
