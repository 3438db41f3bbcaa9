using System.Text.Json.Nodes;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// An optimizer whose whole state is tensors and numbers, so a checkpoint stores it as safetensors + JSON (no pickle):
/// <c>optimizer.safetensors</c> holds <c>state.{i}.{name}</c> per parameter index (in group order) and
/// <c>optimizer.json</c> the groups (lr, weight decay, parameter names) and settings. State tensors live on each
/// parameter's device, are detached and owned by this object.
/// </summary>
public abstract class TrainerOptimizer : IDisposable
{
    private readonly Dictionary<int, Dictionary<string, Tensor>> _state = new();

    /// <summary>Creates the optimizer over <paramref name="groups"/>.</summary>
    protected TrainerOptimizer(IReadOnlyList<ParamGroup> groups)
    {
        ArgumentNullException.ThrowIfNull(groups);
        Groups = groups;
    }

    /// <summary>The parameter groups (torch <c>param_groups</c>).</summary>
    public IReadOnlyList<ParamGroup> Groups { get; }

    /// <summary>The optimizer's name in <c>optimizer.json</c> ("adamw_torch", "sgd").</summary>
    public abstract string Name { get; }

    /// <summary>Sets every group's lr (what torch's <c>LambdaLR</c> writes into <c>param_groups</c>).</summary>
    public void SetLr(double lr)
    {
        foreach (var g in Groups) g.Lr = lr;
    }

    /// <summary>
    /// One update of every parameter that has a gradient (torch <c>optimizer.step()</c>), without autograd, group by
    /// group (<see cref="StepGroup"/>).
    /// </summary>
    public void Step()
    {
        using var _ = no_grad();
        int index = 0;
        foreach (var g in Groups)
        {
            StepGroup(g, index);
            index += g.Params.Count;
        }
    }

    /// <summary>
    /// The runs of parameters whose gradients a multi-tensor step reads as one flat buffer, in step order (each
    /// parameter once): <see cref="GradClip"/> flattens gradients in these runs, so the step views them instead of
    /// copying them again. The default: each group's parameters in order.
    /// </summary>
    internal virtual IEnumerable<IReadOnlyList<Tensor>> FlatRuns() => Groups.Select(g => (IReadOnlyList<Tensor>)g.Params.Cast<Tensor>().ToList());

    /// <summary>
    /// Updates the parameters of <paramref name="group"/>, whose first parameter has state index
    /// <paramref name="firstIndex"/>; runs without autograd. The default calls <see cref="StepParameter"/> for each
    /// parameter; an optimizer with a multi-tensor form overrides this.
    /// </summary>
    protected virtual void StepGroup(ParamGroup group, int firstIndex)
    {
        ArgumentNullException.ThrowIfNull(group);
        for (int i = 0; i < group.Params.Count; i++) StepParameter(group, group.Params[i], firstIndex + i);
    }

    /// <summary>
    /// <see cref="Update"/> of one parameter if it has a gradient, in its own dispose scope (its temporaries are freed
    /// before the next parameter starts, as in torch's loop).
    /// </summary>
    protected void StepParameter(ParamGroup group, Tensor param, int index)
    {
        ArgumentNullException.ThrowIfNull(param);
        using var scope = NewDisposeScope();
        var grad = param.grad;
        if (grad is null) return;
        Update(param, grad, group, StateOf(index));
    }

    /// <summary>Sets every gradient to None (torch <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var g in Groups)
            foreach (var p in g.Params)
            {
                var grad = p.grad;
                if (grad is null) continue;
                p.grad = null;
                grad.Dispose();
            }
    }

    /// <summary>Updates one parameter in place from its gradient; <paramref name="state"/> holds its long-lived tensors.</summary>
    protected abstract void Update(Tensor param, Tensor grad, ParamGroup group, Dictionary<string, Tensor> state);

    /// <summary>Settings written to <c>optimizer.json</c> and checked on load.</summary>
    protected abstract JsonObject Settings();

    /// <summary>A long-lived state tensor: detached and owned by the optimizer.</summary>
    protected static Tensor Keep(Tensor t) => t.DetachFromDisposeScope();

    /// <summary>The state dictionary of the parameter with state index <paramref name="index"/> (created empty on first use).</summary>
    protected Dictionary<string, Tensor> StateOf(int index)
    {
        if (!_state.TryGetValue(index, out var s)) _state[index] = s = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        return s;
    }

    /// <summary>Writes <c>optimizer.safetensors</c> and <c>optimizer.json</c> into <paramref name="dir"/> (atomically each).</summary>
    public void Save(string dir)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (i, s) in _state)
            foreach (var (k, t) in s) tensors[$"state.{i}.{k}"] = t;
        using (var scope = NewDisposeScope())
        {
            var cpu = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.cpu().contiguous());
            SafetensorsIO.SaveFile(cpu, Path.Combine(dir, "optimizer.safetensors"));
        }
        var groups = new JsonArray();
        foreach (var g in Groups)
            groups.Add(new JsonObject { ["lr"] = g.Lr, ["weight_decay"] = g.WeightDecay, ["params"] = new JsonArray(g.Names.Select(n => (JsonNode)n!).ToArray()) });
        var json = new JsonObject { ["optimizer"] = Name, ["settings"] = Settings(), ["param_groups"] = groups };
        AtomicFile.WriteAllText(Path.Combine(dir, "optimizer.json"), json.ToJsonString(new() { WriteIndented = true }));
    }

    /// <summary>
    /// Restores the state written by <see cref="Save"/>. Throws <see cref="InvalidDataException"/> naming the file and
    /// key when the files do not belong to this run (optimizer, settings, parameter names) or hold values no run writes
    /// (a non-finite or negative lr, state tensors of the wrong names, shapes or dtypes, see <see cref="CheckState"/>).
    /// </summary>
    public void Load(string dir)
    {
        string jsonPath = Path.Combine(dir, "optimizer.json");
        var json = ReaderErrors.ParseJson(File.ReadAllText(jsonPath), jsonPath);
        var lrs = ReaderErrors.Guard(jsonPath, () => ReadGroups(json, jsonPath));
        var loaded = ReadState(Path.Combine(dir, "optimizer.safetensors"));
        ClearState();
        foreach (var (i, s) in loaded) _state[i] = s;
        for (int gi = 0; gi < Groups.Count; gi++) Groups[gi].Lr = lrs[gi];
    }

    private double[] ReadGroups(JsonNode? json, string jsonPath)
    {
        if (json is not JsonObject o) throw new InvalidDataException($"{jsonPath}: not a JSON object");
        if (o["optimizer"]?.GetValue<string>() != Name)
            throw new InvalidDataException($"{jsonPath}: optimizer is '{o["optimizer"]}', this run uses '{Name}'");
        if (o["settings"]?.ToJsonString() != Settings().ToJsonString())
            throw new InvalidDataException($"{jsonPath}: settings {o["settings"]?.ToJsonString()} differ from this run's {Settings().ToJsonString()}");
        var groups = o["param_groups"] as JsonArray ?? throw new InvalidDataException($"{jsonPath}: 'param_groups' is not a list");
        if (groups.Count != Groups.Count) throw new InvalidDataException($"{jsonPath}: {groups.Count} param groups, this run has {Groups.Count}");
        var lrs = new double[Groups.Count];
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            var names = (groups[gi]?["params"] as JsonArray ?? throw new InvalidDataException($"{jsonPath}: param group {gi} has no 'params' list"))
                .Select(n => n?.GetValue<string>()).ToArray();
            if (!names.SequenceEqual(Groups[gi].Names))
                throw new InvalidDataException($"{jsonPath}: param group {gi} holds [{string.Join(", ", names.Take(4))}...], this run's trainable parameters differ");
            double lr = groups[gi]?["lr"]?.GetValue<double>() ?? throw new InvalidDataException($"{jsonPath}: param group {gi} has no 'lr'");
            if (!double.IsFinite(lr) || lr < 0) throw new InvalidDataException($"{jsonPath}: param group {gi} has lr {lr}");
            lrs[gi] = lr;
        }
        return lrs;
    }

    private Dictionary<int, Dictionary<string, Tensor>> ReadState(string path)
    {
        var parameters = Groups.SelectMany(g => g.Params).ToArray();
        var loaded = new Dictionary<int, Dictionary<string, Tensor>>();
        try
        {
            using var file = SafetensorsFile.Open(path);
            foreach (var key in file.Keys)
            {
                var parts = key.Split('.');
                if (parts.Length != 3 || parts[0] != "state" || !int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i) || i >= parameters.Length)
                    throw new InvalidDataException($"{path}: unexpected key '{key}'");
                if (!loaded.TryGetValue(i, out var s)) loaded[i] = s = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                s[parts[2]] = file.GetTensor(key, device: parameters[i].device).DetachFromDisposeScope();
            }
            foreach (var (i, s) in loaded) CheckState(path, i, parameters[i], s);
            return loaded;
        }
        catch
        {
            foreach (var t in loaded.Values.SelectMany(s => s.Values)) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Checks the loaded state of parameter <paramref name="index"/> before it is used: an optimizer overrides this to
    /// require exactly the tensors its <see cref="Update"/> keeps (names, shapes, dtypes, value ranges). The default
    /// (an optimizer without state) refuses any. Throws <see cref="InvalidDataException"/> naming <paramref name="file"/>.
    /// </summary>
    protected virtual void CheckState(string file, int index, Tensor param, IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Count > 0) throw new InvalidDataException($"{file}: {Name} keeps no state, but the file has 'state.{index}.{state.Keys.First()}'");
    }

    /// <summary>Throws naming <paramref name="file"/> unless <paramref name="t"/> has the shape and dtype given and finite values.</summary>
    protected static void RequireTensor(string file, string key, Tensor t, long[] shape, ScalarType dtype)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (!t.shape.SequenceEqual(shape) || t.dtype != dtype)
            throw new InvalidDataException($"{file}: '{key}' is {t.dtype} [{string.Join(", ", t.shape)}], expected {dtype} [{string.Join(", ", shape)}]");
        using var finite = isfinite(t).all();
        if (!finite.item<bool>()) throw new InvalidDataException($"{file}: '{key}' holds NaN or infinite values");
    }

    private void ClearState()
    {
        foreach (var s in _state.Values)
            foreach (var t in s.Values) t.Dispose();
        _state.Clear();
    }

    /// <summary>Disposes the state tensors and the subclass's cached constants.</summary>
    public void Dispose()
    {
        ClearState();
        ReleaseCaches();
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes tensors a subclass keeps between steps that are not optimizer state (constants); none by default.</summary>
    protected virtual void ReleaseCaches()
    {
    }
}
