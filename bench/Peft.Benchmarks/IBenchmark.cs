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
public sealed record BenchmarkOptions(string Device, int Repeats, bool Quick)
{
    /// <summary>Intra-op threads (<c>torch.set_num_threads</c>); 0 leaves libtorch's default.</summary>
    public int Threads { get; init; }

    /// <summary>Untimed warm-up iterations before the timed ones (hf_lora_bench.py <c>--warmup</c>, default 3).</summary>
    public int Warmup { get; init; } = 3;

    /// <summary>Model shape for the Python-mirror cases: "opt125m" (default) or "llama1b".</summary>
    public string Model { get; init; } = "opt125m";

    /// <summary>Compute dtype for the Python-mirror cases: "fp32" (CPU default) or "bf16" (GPU cases).</summary>
    public string Dtype { get; init; } = "fp32";

    /// <summary>Batch size override (0: the mirrored script's default: 8).</summary>
    public int Batch { get; init; }

    /// <summary>Sequence length override (0: the mirrored script's default: 128 on CPU, 512 on CUDA).</summary>
    public int Seq { get; init; }

    /// <summary>Random seed (hf_lora_bench.py <c>--seed</c>).</summary>
    public int Seed { get; init; }

    /// <summary><c>--cuda-graphs</c>: the train-step cases capture each step once as a CUDA graph and replay it.</summary>
    public bool CudaGraphs { get; init; }
}
