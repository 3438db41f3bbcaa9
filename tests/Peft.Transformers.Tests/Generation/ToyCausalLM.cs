using Peft.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// A one-layer, one-head causal LM with learned positions and a key/value cache, written for the generation tests.
/// Positions come from <see cref="ModelInput.PositionIds"/> (or cumsum of the mask), so left padding is invisible to
/// real tokens. Counts the tokens it is fed to prove that the cache avoids recomputing the prefix.
/// </summary>
internal sealed class ToyCausalLM : nn.Module<ModelInput, ModelOutput>
{
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly Linear q, k, v, o, lm_head;
    private readonly bool _supportsCache;
    private readonly long _dim;

    public long TokensFed { get; private set; }
    public int Forwards { get; private set; }

    /// <summary>Per forward: whether an attention mask was passed.</summary>
    public List<bool> MaskPassed { get; } = [];

    public ToyCausalLM(int vocab = 23, int dim = 16, int maxPositions = 64, long seed = 7, double scale = 1.0, bool supportsCache = true)
        : base("toy")
    {
        _supportsCache = supportsCache;
        _dim = dim;
        wte = nn.Embedding(vocab, dim);
        wpe = nn.Embedding(maxPositions, dim);
        q = nn.Linear(dim, dim); k = nn.Linear(dim, dim); v = nn.Linear(dim, dim); o = nn.Linear(dim, dim);
        lm_head = nn.Linear(dim, vocab, hasBias: false);
        RegisterComponents();
        using var g = new Generator((ulong)seed);
        using (no_grad())
        {
            foreach (var (_, p) in named_parameters())
            {
                using var r = randn(p.shape, generator: g).mul(scale * (p.dim() == 1 ? 0.1 : 0.6));
                p.copy_(r);
            }
        }
        eval();
    }

    public override ModelOutput forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var ids = input.InputIds!;
        long n = ids.shape[0], t = ids.shape[1];
        TokensFed += n * t;
        Forwards++;
        MaskPassed.Add(input.AttentionMask is not null);
        var cache = input.PastKeyValues;
        if (cache is null && input.UseCache && _supportsCache) cache = new KeyValueCache();
        if (!_supportsCache) cache = null;
        long past = cache?.GetSeqLength() ?? 0;
        var mask = input.AttentionMask ?? ones(n, past + t, ScalarType.Int64);
        var pos = input.PositionIds ?? mask.cumsum(-1).sub(1).clamp_min(0)[.., (int)past..];
        var h = wte.forward(ids).add(wpe.forward(pos));                        // [N, T, D]
        var qh = q.forward(h).unsqueeze(1);                                     // [N, 1, T, D]
        var kh = k.forward(h).unsqueeze(1);
        var vh = v.forward(h).unsqueeze(1);
        if (cache is not null) (kh, vh) = cache.Update(0, kh, vh);             // [N, 1, past+T, D]
        long total = past + t;
        var att = qh.matmul(kh.transpose(-1, -2)).div(Math.Sqrt(_dim));       // [N, 1, T, past+T]
        var qi = arange(past, total, ScalarType.Int64).view(-1, 1);
        var kj = arange(total, ScalarType.Int64).view(1, -1);
        var allowed = kj.le(qi).view(1, 1, t, total).logical_and(mask.view(n, 1, 1, total).eq(1));
        att = att.masked_fill(allowed.logical_not(), float.NegativeInfinity).softmax(-1).nan_to_num(0.0);
        var y = o.forward(att.matmul(vh).squeeze(1));                           // [N, T, D]
        var logits = lm_head.forward(h.add(y));                                 // [N, T, V]
        return new ModelOutput { Logits = logits.MoveToOuterDisposeScope(), PastKeyValues = cache };
    }

    /// <summary>Logits of the last position for full sequences (no cache), [N, V].</summary>
    public Tensor LastLogits(Tensor ids, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        mask ??= ones_like(ids);
        var pos = mask.cumsum(-1).sub(1).masked_fill(mask.eq(0), 1);
        var o = forward(new ModelInput { InputIds = ids, AttentionMask = mask, PositionIds = pos });
        return o.Logits![.., -1, ..].MoveToOuterDisposeScope();
    }
}
