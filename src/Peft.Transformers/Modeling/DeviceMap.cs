using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// HF <c>device_map</c> strings: "cpu", "cuda", "cuda:N" put the whole model on that device; "auto", "balanced" and
/// "sequential" are planned per decoder layer by <see cref="DeviceMapPlanner"/> over the visible GPUs' free memory (or
/// <see cref="FromPretrainedOptions.MaxMemory"/>) with the CPU last, so layers that do not fit spill to the CPU; without
/// a GPU they load on the CPU. <see cref="Resolve"/> gives the single device of a map (the first GPU for the planned ones).
/// </summary>
public static class DeviceMap
{
    /// <summary>Resolves <paramref name="deviceMap"/> / <paramref name="device"/> (at most one may be given) to the load device; null = CPU.</summary>
    /// <exception cref="ArgumentException">Both given, or an unknown map string (named in the message).</exception>
    public static Device Resolve(string? deviceMap, Device? device)
    {
        if (deviceMap is not null && device is not null)
            throw new ArgumentException($"FromPretrainedOptions: give Device or DeviceMap, not both (Device = {device}, DeviceMap = '{deviceMap}').");
        if (device is not null) return device;
        return deviceMap switch
        {
            null or "cpu" => CPU,
            "auto" or "balanced" or "sequential" => cuda.is_available() ? new Device(DeviceType.CUDA, 0) : CPU,
            "cuda" => new Device(DeviceType.CUDA, 0),
            _ when deviceMap.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(deviceMap.AsSpan(5), out var i) && i >= 0 => new Device(DeviceType.CUDA, i),
            _ => throw new ArgumentException($"FromPretrainedOptions.DeviceMap '{deviceMap}' is not one of \"cpu\", \"cuda\", \"cuda:N\", \"auto\", \"balanced\", \"sequential\"."),
        };
    }
}

/// <summary>One placement unit of <see cref="DeviceMapPlanner"/>: a decoder layer (never split, HF <c>_no_split_modules</c>) or a module outside the layers.</summary>
/// <param name="Name">Module path, e.g. "model.layers.3" or "model.embed_tokens".</param>
/// <param name="Bytes">Bytes of its parameters in the load dtype.</param>
public sealed record DeviceMapUnit(string Name, long Bytes);

/// <summary>A device and the bytes of weights it may hold (accelerate's <c>max_memory</c> entry).</summary>
public sealed record DeviceBudget(Device Device, long Bytes);

/// <summary>
/// The multi-device <c>device_map</c> planner: a pure function from the model's placement units (in forward order)
/// and per-device budgets to a unit → device map, as accelerate's <c>infer_auto_device_map</c> does for transformers:
/// <list type="bullet">
/// <item>"sequential": units in model order fill the devices in the order given (GPUs first, the CPU last); a unit
/// that does not fit in what is left moves to the next device (layers are never split), so layers spill to the CPU
/// once the GPUs are full.</item>
/// <item>"auto" / "balanced" (transformers passes both through accelerate's <c>get_balanced_memory</c>): every GPU but
/// the last is first capped at total / GPU count + 1.25 × the largest unit (accelerate's buffer), then the sequential
/// fill runs — so a model that fits is spread evenly and one that does not fills the GPUs and spills to the CPU.</item>
/// </list>
/// Simplifications, documented: no reserve for the largest offloaded layer on the first GPU, and tied weights are
/// not forced onto one device (a tied head holds no parameters of its own and follows the previous unit).
/// </summary>
public static class DeviceMapPlanner
{
    /// <summary>Places <paramref name="units"/> on <paramref name="budgets"/> with <paramref name="strategy"/>.</summary>
    /// <exception cref="ArgumentException">Unknown strategy, or no budgets.</exception>
    /// <exception cref="InvalidOperationException">A unit fits on no remaining device (named with its size).</exception>
    public static IReadOnlyDictionary<string, Device> Plan(IReadOnlyList<DeviceMapUnit> units, IReadOnlyList<DeviceBudget> budgets, string strategy)
    {
        ArgumentNullException.ThrowIfNull(units);
        ArgumentNullException.ThrowIfNull(budgets);
        if (budgets.Count == 0) throw new ArgumentException("device_map planning needs at least one device budget.", nameof(budgets));
        var caps = strategy switch
        {
            "sequential" => budgets.Select(b => b.Bytes).ToArray(),
            "auto" or "balanced" => Balanced(units, budgets),
            _ => throw new ArgumentException($"device_map strategy '{strategy}' is not one of \"auto\", \"balanced\", \"sequential\".", nameof(strategy)),
        };
        var map = new Dictionary<string, Device>(StringComparer.Ordinal);
        int d = 0;
        long used = 0;
        foreach (var u in units)
        {
            while (d < caps.Length && used + u.Bytes > caps[d]) { d++; used = 0; }
            if (d == caps.Length)
                throw new InvalidOperationException(
                    $"device_map '{strategy}': '{u.Name}' ({u.Bytes} bytes) fits on no remaining device; budgets were [{string.Join(", ", budgets.Select(b => $"{b.Device}: {b.Bytes}"))}].");
            map[u.Name] = budgets[d].Device;
            used += u.Bytes;
        }
        return map;
    }

    private static long[] Balanced(IReadOnlyList<DeviceMapUnit> units, IReadOnlyList<DeviceBudget> budgets)
    {
        var caps = budgets.Select(b => b.Bytes).ToArray();
        var gpus = Enumerable.Range(0, budgets.Count).Where(i => budgets[i].Device.type != DeviceType.CPU && budgets[i].Bytes > 0).ToList();
        if (gpus.Count < 2 || units.Count == 0) return caps;
        long total = units.Sum(u => u.Bytes), largest = units.Max(u => u.Bytes);
        long perGpu = total / gpus.Count + (long)(1.25 * largest);
        foreach (var i in gpus.Take(gpus.Count - 1)) caps[i] = Math.Min(caps[i], perGpu);   // the last GPU keeps its budget
        return caps;
    }

    /// <summary>
    /// The placement units of the <paramref name="task"/> model for <paramref name="config"/> in forward order (built
    /// without weights): each decoder layer whole, every other parameter grouped by its module; bytes in
    /// <paramref name="dtype"/> (integer tensors keep theirs).
    /// </summary>
    public static IReadOnlyList<DeviceMapUnit> Units(PretrainedConfig config, ModelTask task, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var model = ModelFactory.BuildSkeleton(config, task);
        var layers = model.named_modules().Where(nm => nm.module is Models.ITransformerLayer).Select(nm => nm.name + ".").ToList();
        var order = new List<string>();
        var bytes = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (name, p) in model.named_parameters())
        {
            var unit = layers.FirstOrDefault(l => name.StartsWith(l, StringComparison.Ordinal))?.TrimEnd('.')
                ?? (name.Contains('.') ? name[..name.LastIndexOf('.')] : name);
            if (!bytes.ContainsKey(unit)) { order.Add(unit); bytes[unit] = 0; }
            long size = p.is_floating_point() ? ElementSize(dtype) : p.ElementSize;
            bytes[unit] += p.numel() * size;
        }
        return order.Select(u => new DeviceMapUnit(u, bytes[u])).ToList();
    }

    /// <summary><see cref="Plan(IReadOnlyList{DeviceMapUnit}, IReadOnlyList{DeviceBudget}, string)"/> over <see cref="Units"/>.</summary>
    public static IReadOnlyDictionary<string, Device> Plan(PretrainedConfig config, ModelTask task, ScalarType dtype, IReadOnlyList<DeviceBudget> budgets, string strategy) =>
        Plan(Units(config, task, dtype), budgets, strategy);

    private static long ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Float64 => 8,
        _ => 4,
    };
}
