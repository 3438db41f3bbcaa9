using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using Peft.Core.Torch;

namespace Peft.Core.Tuners;

/// <summary>
/// AdaLoRA's rank allocator (PEFT <c>RankAllocator</c>; paper: openreview.net/forum?id=lq62uWRJjiY). After each
/// optimizer step it scores every parameter element by its sensitivity |w · ∇w|, smoothed by an EMA (beta1), times
/// the EMA of its uncertainty |sensitivity − smoothed| (beta2); a singular value's score is its own plus the mean scores
/// of its row of A and column of B. On allocation steps it zeroes the lowest-scoring singular values so that the
/// number kept across all modules is the current budget (a cubic schedule from the initial total rank to
/// target_r × modules), and reports which are kept (the rank pattern).
/// </summary>
/// <remarks>Owns its score tensors (detached); dispose it (the tuner does) to free them.</remarks>
public sealed class RankAllocator : IDisposable
{
    private readonly AdaLoraConfig _config;
    private readonly string _adapter;
    private readonly Func<IReadOnlyList<(string Path, AdaLoraLayer Layer)>> _layers;
    private readonly Dictionary<string, (Tensor Ipt, Tensor ExpAvgIpt, Tensor ExpAvgUnc)> _scores = new(StringComparer.Ordinal);

    /// <summary>Starts an allocator for <paramref name="adapterName"/> over the layers <paramref name="layers"/> returns (module path, layer).</summary>
    /// <exception cref="ArgumentOutOfRangeException">beta1 or beta2 is not in (0, 1).</exception>
    public RankAllocator(AdaLoraConfig config, string adapterName, Func<IReadOnlyList<(string Path, AdaLoraLayer Layer)>> layers)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(layers);
        if (config.Beta1 is not (> 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(config), config.Beta1, $"AdaLoRA beta1 must be in (0, 1), got {config.Beta1}.");
        if (config.Beta2 is not (> 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(config), config.Beta2, $"AdaLoRA beta2 must be in (0, 1), got {config.Beta2}.");
        _config = config;
        _adapter = adapterName;
        _layers = layers;
        var held = Held();
        InitBudget = held.Sum(l => (int)l.Layer.LoraA(adapterName).shape[0]);
        TargetBudget = config.TargetR * held.Count;
    }

    /// <summary>The total initial rank (sum of every module's rank at creation; PEFT <c>init_bgt</c>).</summary>
    public int InitBudget { get; }

    /// <summary>The total final rank, target_r × modules (PEFT <c>target_bgt</c>).</summary>
    public int TargetBudget { get; }

    private List<(string Path, AdaLoraLayer Layer)> Held() =>
        _layers().Where(l => l.Layer.AdapterNames.Contains(_adapter)).ToList();

    /// <summary>
    /// PEFT <c>budget_schedule(step)</c>: the full budget up to tinit; target_r × modules after total_step − tfinal;
    /// in between <c>⌊(init − target) · (1 − (step − tinit) / (total − tfinal − tinit))³ + target⌋</c>, masking every deltaT steps.
    /// </summary>
    public (int Budget, bool Mask) BudgetSchedule(int step)
    {
        int tinit = _config.Tinit, tfinal = _config.Tfinal, total = _config.TotalStep!.Value;
        if (step <= tinit) return (InitBudget, false);
        if (step > total - tfinal) return (TargetBudget, true);
        double mul = 1 - (double)(step - tinit) / (total - tfinal - tinit);
        int budget = (int)((InitBudget - TargetBudget) * Math.Pow(mul, 3) + TargetBudget);
        return (budget, step % _config.DeltaT == 0);
    }

    /// <summary>PEFT <c>update_and_allocate</c>: updates the scores before the final phase, then masks to the budget when the schedule (or <paramref name="forceMask"/>) says so. Returns the rank pattern when it masked, else null.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<bool>>? UpdateAndAllocate(int globalStep, bool forceMask = false)
    {
        if (globalStep < _config.FinalStep) UpdateScores();
        var (budget, mask) = BudgetSchedule(globalStep);
        return mask || forceMask ? MaskToBudget(budget) : null;
    }

    /// <summary>PEFT <c>update_ipt</c>: sensitivity |p · ∇p| and its EMAs for every A, B, E of the adapter (gradients must still be present).</summary>
    public void UpdateScores()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (path, layer) in Held())
        {
            foreach (var (kind, p) in Factors(layer))
            {
                var key = $"{path}.{kind}";
                var grad = p.grad ?? throw new InvalidOperationException(
                    $"AdaLoRA: '{key}' has no gradient; call UpdateAndAllocate / OnOptimizerStep after backward and before zero_grad.");
                if (!_scores.TryGetValue(key, out var s) || !s.Ipt.shape.SequenceEqual(p.shape))
                {
                    if (s.Ipt is not null) DisposeScores(s);
                    s = (Keep(zeros_like(p)), Keep(zeros_like(p)), Keep(zeros_like(p)));
                }
                var ipt = (p * grad).abs();
                var avg = (s.ExpAvgIpt * HeldScalars.Of(_config.Beta1)).add(ipt * HeldScalars.Of((1 - _config.Beta1)), HeldScalars.One);
                var unc = (s.ExpAvgUnc * HeldScalars.Of(_config.Beta2)).add((ipt - avg).abs() * HeldScalars.Of((1 - _config.Beta2)), HeldScalars.One);
                s.Ipt.copy_(ipt);
                s.ExpAvgIpt.copy_(avg);
                s.ExpAvgUnc.copy_(unc);
                _scores[key] = s;
            }
        }
    }

    /// <summary>
    /// PEFT <c>mask_to_budget</c>: the triplet score of each singular value (E's score + mean score of A's row + mean
    /// score of B's column), the threshold = the (init − budget)-th smallest score, singular values with score ≤
    /// threshold zeroed. Returns the rank pattern (key <c>&lt;path&gt;.lora_E</c> → kept flags). A budget that is not
    /// below the initial total rank (init_r ≤ target_r) masks nothing (PEFT's <c>kthvalue</c> would fail with k = 0).
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<bool>> MaskToBudget(int budget)
    {
        int k = InitBudget - budget;
        if (k < 1)
        {
            return Held().ToDictionary(l => $"{l.Path}.lora_E", l => (IReadOnlyList<bool>)Enumerable.Repeat(true, (int)l.Layer.LoraE(_adapter).shape[0]).ToArray(), StringComparer.Ordinal);
        }
        using var scope = NewDisposeScope();
        var triplets = new List<(string Path, AdaLoraLayer Layer, Tensor Score)>();
        foreach (var (path, layer) in Held())
        {
            var a = Score($"{path}.lora_A").mean([1], keepdim: true);          // [r, 1]
            var b = Score($"{path}.lora_B").mean([0], keepdim: false).view(-1, 1); // [r, 1]
            var e = Score($"{path}.lora_E");                                      // [r, 1]
            var sum = e.view(-1).add(cat([a, b], 1).sum(1), HeldScalars.One);                         // [r]
            triplets.Add((path, layer, sum));
        }
        double threshold = torch.kthvalue(cat(triplets.Select(t => t.Score).ToArray(), 0), k, 0).values.item<float>();
        var pattern = new Dictionary<string, IReadOnlyList<bool>>(StringComparer.Ordinal);
        foreach (var (path, layer, score) in triplets)
        {
            var keep = score.gt(HeldScalars.Of(threshold)).data<bool>().ToArray();
            layer.MaskSingularValues(_adapter, keep, path);
            pattern[$"{path}.lora_E"] = keep;
        }
        return pattern;
    }

    /// <summary>PEFT <c>mask_using_rank_pattern</c>: zeroes the singular values <paramref name="rankPattern"/> drops (keys with or without the adapter name).</summary>
    public void MaskUsingRankPattern(IReadOnlyDictionary<string, IReadOnlyList<bool>> rankPattern)
    {
        ArgumentNullException.ThrowIfNull(rankPattern);
        foreach (var (path, layer) in Held())
        {
            var key = $"{path}.lora_E";
            var keep = rankPattern.TryGetValue(key, out var v) ? v
                : rankPattern.TryGetValue($"{key}.{_adapter}", out v) ? v
                : throw new InvalidOperationException($"AdaLoRA rank_pattern has no entry for '{key}'.");
            layer.MaskSingularValues(_adapter, keep, key);
        }
    }

    /// <summary>Forgets the scores (PEFT <c>reset_ipt</c>).</summary>
    public void ResetScores()
    {
        foreach (var s in _scores.Values) DisposeScores(s);
        _scores.Clear();
    }

    /// <inheritdoc />
    public void Dispose() => ResetScores();

    private Tensor Score(string key) => _scores.TryGetValue(key, out var s) ? s.ExpAvgIpt * s.ExpAvgUnc
        : throw new InvalidOperationException($"AdaLoRA: no scores for '{key}' yet (UpdateScores was never called).");

    private IEnumerable<(string Kind, Parameter P)> Factors(AdaLoraLayer layer)
    {
        yield return ("lora_A", layer.LoraA(_adapter));
        yield return ("lora_B", layer.LoraB(_adapter));
        yield return ("lora_E", layer.LoraE(_adapter));
    }

    private static Tensor Keep(Tensor t) => t.DetachFromDisposeScope();

    private static void DisposeScores((Tensor Ipt, Tensor ExpAvgIpt, Tensor ExpAvgUnc) s)
    {
        s.Ipt.Dispose();
        s.ExpAvgIpt.Dispose();
        s.ExpAvgUnc.Dispose();
    }
}
