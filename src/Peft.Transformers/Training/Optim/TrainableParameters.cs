using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Optimization;

/// <summary>
/// The parameters the optimizer updates. In full precision they are the model's own trainable parameters. In
/// mixed precision (<see cref="TrainingArguments.Bf16"/>) the model runs in bfloat16 and this holds float32 master
/// copies (HF/apex "master weights"): after backward the bf16 gradients are copied into the masters, the optimizer
/// and clipping work on the masters, and the updated masters are copied back into the model. The masters are owned
/// here and disposed with it.
/// </summary>
internal sealed class TrainableParameters : IDisposable
{
    private readonly List<(string Name, Parameter Model, Parameter Master)> _pairs = [];
    private readonly bool _hasMasters;

    public TrainableParameters(nn.Module model, ScalarType? computeDtype)
    {
        _hasMasters = computeDtype is not null;
        var masters = new Dictionary<string, Parameter>(StringComparer.Ordinal);
        if (_hasMasters)
        {
            using (no_grad())
            {
                foreach (var (name, p) in model.named_parameters())
                    if (p.requires_grad) masters[name] = new Parameter(p.detach().to(ScalarType.Float32).clone().DetachFromDisposeScope(), requires_grad: true);
            }
            model.to(computeDtype!.Value); // replaces the parameter objects; pair the masters with the new ones by name
        }
        foreach (var (name, p) in model.named_parameters())
        {
            if (!p.requires_grad) continue;
            _pairs.Add((name, p, _hasMasters ? masters[name] : p));
        }
    }

    /// <summary>(name, parameter the optimizer steps) in <c>named_parameters()</c> order.</summary>
    public IReadOnlyList<(string Name, Parameter Param)> ForOptimizer => _pairs.Select(p => (p.Name, p.Master)).ToList();

    /// <summary>Moves the model's gradients onto the masters (no-op in full precision).</summary>
    public void GradientsToMasters()
    {
        if (!_hasMasters) return;
        foreach (var (_, model, master) in _pairs)
        {
            var g = model.grad;
            if (g is null) continue;
            var old = master.grad;
            master.grad = g.to(ScalarType.Float32).DetachFromDisposeScope();
            old?.Dispose();
            model.grad = null;
            g.Dispose();
        }
    }

    /// <summary>Copies the masters into the model (no-op in full precision).</summary>
    public void MastersToModel()
    {
        if (!_hasMasters) return;
        using var _ = no_grad();
        foreach (var (_, model, master) in _pairs) model.copy_(master);
    }

    public void Dispose()
    {
        if (!_hasMasters) return;
        foreach (var (_, _, master) in _pairs)
        {
            master.grad?.Dispose();
            master.Dispose();
        }
    }
}
