using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Where each module goes when <see cref="FromPretrainedOptions.DeviceMap"/> is "auto", "balanced" or "sequential"
/// (HF <c>device_map</c> strings): <see cref="DeviceMapPlanner"/> over the model's placement units (decoder layers
/// whole) and the device budgets — <see cref="FromPretrainedOptions.MaxMemory"/> where given, else 90 % of each visible
/// GPU's free memory (accelerate keeps a margin too) and an unlimited CPU last — so a model larger than the GPUs fills
/// them in order and spills its remaining layers to the CPU. The loader reads every tensor straight onto its unit's
/// device. Unit sizes are counted in the load dtype before quantisation (conservative for 4/8-bit loads).
/// </summary>
internal sealed class LoadPlacement
{
    private readonly List<(string Unit, Device Device)> _units;

    private LoadPlacement(IReadOnlyDictionary<string, Device> map) =>
        _units = map.Select(kv => (kv.Key, kv.Value)).OrderByDescending(u => u.Key.Length).ToList();

    /// <summary>The device of the first unit (the input embeddings): where inputs go.</summary>
    public Device First { get; private init; } = CPU;

    /// <summary>The device of the module at <paramref name="modulePath"/>: its enclosing unit's, else the first unit's.</summary>
    public Device For(string modulePath)
    {
        foreach (var (unit, device) in _units)
        {
            if (modulePath.Length == unit.Length ? modulePath == unit
                : modulePath.StartsWith(unit, StringComparison.Ordinal) && modulePath[unit.Length] == '.')
                return device;
        }
        return First;
    }

    /// <summary>A placement from an explicit unit → device map (in forward order).</summary>
    public static LoadPlacement FromMap(IReadOnlyList<KeyValuePair<string, Device>> map) =>
        new(map.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal)) { First = map.Count > 0 ? map[0].Value : CPU };

    /// <summary>Whether <paramref name="deviceMap"/> asks for a planned placement ("auto", "balanced", "sequential").</summary>
    public static bool IsPlanned(string? deviceMap) => deviceMap is "auto" or "balanced" or "sequential";

    /// <summary>
    /// The placement for <paramref name="options"/>, or null when the whole model goes to one device: the map is not a
    /// planned one, or no GPU is visible (HF: "auto" without CUDA loads on the CPU). A <see cref="FromPretrainedOptions.MaxMemory"/>
    /// that names no GPU puts every unit on the CPU.
    /// </summary>
    /// <exception cref="ArgumentException">MaxMemory without a planned DeviceMap, or a MaxMemory key that is not "cpu" / "cuda:N" / "N".</exception>
    public static LoadPlacement? For(PretrainedConfig config, ModelTask task, ScalarType dtype, FromPretrainedOptions options)
    {
        if (!IsPlanned(options.DeviceMap))
        {
            if (options.MaxMemory is not null)
                throw new ArgumentException($"FromPretrainedOptions.MaxMemory needs DeviceMap \"auto\", \"balanced\" or \"sequential\" (DeviceMap = '{options.DeviceMap ?? "null"}').");
            return null;
        }
        var budgets = Budgets(options.MaxMemory);
        var units = DeviceMapPlanner.Units(config, task, dtype);
        if (!budgets.Any(b => b.Device.type == DeviceType.CUDA))      // no GPU: everything on the CPU (HF), even when one is visible but MaxMemory names none
            return options.MaxMemory is null ? null : FromMap(units.Select(u => new KeyValuePair<string, Device>(u.Name, CPU)).ToList());
        var map = DeviceMapPlanner.Plan(units, budgets, options.DeviceMap!);
        return FromMap(units.Select(u => new KeyValuePair<string, Device>(u.Name, map[u.Name])).ToList());
    }

    private static List<DeviceBudget> Budgets(IReadOnlyDictionary<string, long>? maxMemory)
    {
        var budgets = new List<DeviceBudget>();
        long cpu = long.MaxValue;
        if (maxMemory is not null)
        {
            foreach (var (key, bytes) in maxMemory)
            {
                if (bytes < 0) throw new ArgumentException($"FromPretrainedOptions.MaxMemory['{key}'] = {bytes} is negative.");
                if (key == "cpu") { cpu = bytes; continue; }
                var id = key.StartsWith("cuda:", StringComparison.Ordinal) ? key[5..] : key;
                if (!int.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i))
                    throw new ArgumentException($"FromPretrainedOptions.MaxMemory key '{key}' is not \"cpu\", \"cuda:N\" or a GPU index.");
                if (!cuda.is_available() || i >= cuda.device_count())
                    throw new ArgumentException($"FromPretrainedOptions.MaxMemory names '{key}' but {(cuda.is_available() ? $"only {cuda.device_count()} GPU(s) are visible" : "CUDA is not available")}.");
                budgets.Add(new DeviceBudget(new Device(DeviceType.CUDA, i), bytes));
            }
            budgets.Sort((a, b) => a.Device.index.CompareTo(b.Device.index));
        }
        else if (cuda.is_available())
        {
            for (int i = 0; i < cuda.device_count(); i++)
                budgets.Add(new DeviceBudget(new Device(DeviceType.CUDA, i), (long)(0.9 * GpuMemory.FreeBytes(i))));
        }
        budgets.Add(new DeviceBudget(CPU, cpu));
        return budgets;
    }
}
