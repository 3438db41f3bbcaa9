using Peft.Core;
using Peft.Transformers;
using static TorchSharp.torch;

namespace Peft.Benchmarks.HfMirror;

/// <summary>
/// <c>floor</c>: the resident memory of a process that has only loaded libtorch (one tiny tensor op), TorchSharp and
/// our assemblies (their types touched), against Python's <c>import torch, transformers, peft</c>
/// (<c>bench/py/floor.py</c>). Reports VmHWM, VmRSS split into anonymous / file-backed pages, the thread count and
/// the .NET GC's committed bytes: the part of every case's peak RSS that is not the model.
/// </summary>
public sealed class FloorBenchmark : IBenchmark
{
    /// <inheritdoc />
    public string Name => "floor";

    /// <inheritdoc />
    public void Run(BenchmarkOptions options, Action<IReadOnlyDictionary<string, object?>> report)
    {
        using (var t = ones(4, 4)) using (var u = t.matmul(t)) _ = u.sum().item<float>();
        _ = typeof(PeftModel).Assembly.GetTypes().Length + typeof(PreTrainedModel).Assembly.GetTypes().Length;
        var status = File.ReadLines("/proc/self/status").Select(l => l.Split(':', 2)).Where(p => p.Length == 2)
            .ToDictionary(p => p[0], p => p[1].Trim());
        double Mb(string key) => status.TryGetValue(key, out var v) ? Math.Round(long.Parse(v.Split(' ')[0]) / 1024.0, 1) : double.NaN;
        var gc = GC.GetGCMemoryInfo();
        report(new Dictionary<string, object?>
        {
            ["case"] = Name, ["threads"] = get_num_threads(),
            ["peak_rss_mb"] = Mb("VmHWM"), ["rss_mb"] = Mb("VmRSS"), ["rss_anon_mb"] = Mb("RssAnon"), ["rss_file_mb"] = Mb("RssFile"),
            ["os_threads"] = status.GetValueOrDefault("Threads"),
            ["gc_committed_mb"] = Math.Round(gc.TotalCommittedBytes / 1048576.0, 1),
            ["gc_heap_mb"] = Math.Round(GC.GetTotalMemory(false) / 1048576.0, 1),
            ["server_gc"] = System.Runtime.GCSettings.IsServerGC,
            ["assemblies"] = AppDomain.CurrentDomain.GetAssemblies().Length,
        });
    }
}
