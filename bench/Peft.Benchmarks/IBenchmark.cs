namespace Peft.Benchmarks;

/// <summary>
/// One benchmark. Each lives in its own file; <c>Program</c> finds them by reflection, so adding one touches no
/// other file. Results are JSON lines (one object per measured case, with medians) on standard output.
/// </summary>
public interface IBenchmark
{
    /// <summary>Name used on the command line: <c>dotnet run --project bench/Peft.Benchmarks -c Release -- NAME</c>.</summary>
    string Name { get; }

    /// <summary>Runs the benchmark and writes JSON lines through <paramref name="report"/>.</summary>
    void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report);
}

/// <summary>Options common to every benchmark.</summary>
/// <param name="Device">"cpu" or "cuda".</param>
/// <param name="Repeats">Timed repetitions (after warm-up); medians are reported.</param>
/// <param name="Quick">Smaller sizes, for a smoke run.</param>
public sealed record BenchmarkOptions(string Device, int Repeats, bool Quick);
