using System.Text.Json.Nodes;
using Peft.Core.IO;
using Peft.Core.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

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
    /// One update of every parameter that has a gradient (torch <c>optimizer.step()</c>), without autograd. Each
    /// parameter's temporaries are freed before the next parameter starts (one dispose scope per parameter), so the
    /// step's extra memory is one parameter's temporaries, as in torch's loop, not the sum over all parameters.
    /// </summary>
    public void Step()
    {
        using var _ = no_grad();
        int index = 0;
        foreach (var g in Groups)
            foreach (var p in g.Params)
            {
                int i = index++;
                using var scope = NewDisposeScope();
                var grad = p.grad;
                if (grad is null) continue;
                Update(p, grad, g, StateOf(i, p));
            }
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

    private Dictionary<string, Tensor> StateOf(int index, Tensor p)
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

    /// <summary>Restores the state written by <see cref="Save"/>; throws naming the file and key on any mismatch.</summary>
    public void Load(string dir)
    {
        string jsonPath = Path.Combine(dir, "optimizer.json");
        var json = JsonNode.Parse(File.ReadAllText(jsonPath))!.AsObject();
        if (json["optimizer"]?.GetValue<string>() != Name)
            throw new InvalidDataException($"{jsonPath}: optimizer is '{json["optimizer"]}', this run uses '{Name}'");
        var groups = json["param_groups"]!.AsArray();
        if (groups.Count != Groups.Count) throw new InvalidDataException($"{jsonPath}: {groups.Count} param groups, this run has {Groups.Count}");
        for (int gi = 0; gi < Groups.Count; gi++)
        {
            var names = groups[gi]!["params"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray();
            if (!names.SequenceEqual(Groups[gi].Names))
                throw new InvalidDataException($"{jsonPath}: param group {gi} holds [{string.Join(", ", names.Take(4))}...], this run's trainable parameters differ");
            Groups[gi].Lr = groups[gi]!["lr"]!.GetValue<double>();
        }
        ClearState();
        var devices = Groups.SelectMany(g => g.Params).Select(p => p.device).ToArray();
        using var file = SafetensorsFile.Open(Path.Combine(dir, "optimizer.safetensors"));
        foreach (var key in file.Keys)
        {
            var parts = key.Split('.');
            if (parts.Length != 3 || parts[0] != "state" || !int.TryParse(parts[1], out int i) || i < 0 || i >= devices.Length)
                throw new InvalidDataException($"{file.Path}: unexpected key '{key}'");
            var t = file.GetTensor(key, device: devices[i]);
            StateOf(i, t)[parts[2]] = t.DetachFromDisposeScope();
        }
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
