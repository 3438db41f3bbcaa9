using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.Json;
using Peft.Benchmarks;
using TorchSharp;

// Usage: Peft.Benchmarks [NAME ...] [--device cpu|cuda] [--repeats N] [--quick] [--list]
//        [--threads N] [--warmup N] [--model opt125m|llama1b] [--dtype fp32|bf16] [--batch B] [--seq T] [--seed S]
//        [--cuda-graphs] (lora_step / full_step: each step captured once as a CUDA graph and replayed)
// Before anything loads libtorch: the MKL-on-AMD fast path decides and names the GEMM path in use.
Peft.Benchmarks.OpCount.OpCounter.Install();   // PEFT_OPCOUNT_LIB: count native calls (op_count case); before TorchSharp loads
Console.Error.WriteLine(Peft.Core.Torch.MklFastPath.Enable());
var names = new List<string>();
string device = "cpu";
int repeats = 5;
bool quick = false, list = false, cudaGraphs = false;
int threads = 0, warmup = 3, batch = 0, seq = 0, seed = 0;
string model = "opt125m", dtype = "fp32";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--device": device = args[++i]; break;
        case "--repeats": repeats = int.Parse(args[++i]); break;
        case "--quick": quick = true; break;
        case "--threads": threads = int.Parse(args[++i]); break;
        case "--warmup": warmup = int.Parse(args[++i]); break;
        case "--batch": batch = int.Parse(args[++i]); break;
        case "--seq": seq = int.Parse(args[++i]); break;
        case "--seed": seed = int.Parse(args[++i]); break;
        case "--model": model = args[++i]; break;
        case "--dtype": dtype = args[++i]; break;
        case "--list": list = true; break;
        case "--cuda-graphs": cudaGraphs = true; break;
        default: names.Add(args[i]); break;
    }
}

var all = Assembly.GetExecutingAssembly().GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();
if (list)
{
    foreach (var b in all) Console.WriteLine(b.Name);
    return 0;
}

// GPU runs load the native wrapper explicitly (docs: shared GPU.md).
var lts = Environment.GetEnvironmentVariable("LIBTORCHSHARP");
if (lts is not null) NativeLibrary.Load(lts);
if (device == "cuda") torch.InitializeDeviceType(DeviceType.CUDA);

if (threads > 0) torch.set_num_threads(threads);
var options = new BenchmarkOptions(device, repeats, quick) { Threads = threads, Warmup = warmup, Model = model, Dtype = dtype, Batch = batch, Seq = seq, Seed = seed, CudaGraphs = cudaGraphs };
var selected = names.Count == 0 ? all : all.Where(b => names.Contains(b.Name)).ToList();
if (names.Count > 0 && selected.Count != names.Count)
{
    Console.Error.WriteLine($"unknown benchmark(s): {string.Join(", ", names.Except(all.Select(b => b.Name)))}; known: {string.Join(", ", all.Select(b => b.Name))}");
    return 2;
}
foreach (var b in selected)
{
    b.Run(options, row =>
    {
        var line = new Dictionary<string, object?> { ["benchmark"] = b.Name, ["device"] = device };
        foreach (var (k, v) in row) line[k] = v;
        Console.WriteLine(JsonSerializer.Serialize(line));
    });
}
return 0;

namespace Peft.Benchmarks
{
    /// <summary>Timing helpers: warm-up, repeated runs, medians.</summary>
    public static class Timing
    {
        /// <summary>Runs <paramref name="action"/> once to warm up, then <paramref name="repeats"/> times; returns the median seconds.</summary>
        public static double MedianSeconds(Action action, int repeats)
        {
            action();
            var times = new double[Math.Max(1, repeats)];
            for (int i = 0; i < times.Length; i++)
            {
                var sw = Stopwatch.StartNew();
                action();
                times[i] = sw.Elapsed.TotalSeconds;
            }
            Array.Sort(times);
            return times[times.Length / 2];
        }
    }
}
