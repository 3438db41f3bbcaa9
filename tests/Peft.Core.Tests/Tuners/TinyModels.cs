using Peft.Core.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>A residual block whose projection can be replaced (field typed Module&lt;Tensor, Tensor&gt;).</summary>
internal sealed class TinyBlock : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> fc;

    public TinyBlock(long dim) : base("TinyBlock")
    {
        fc = nn.Linear(dim, dim);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => nn.functional.relu(fc.forward(x)) + x;
}

/// <summary>
/// A tiny model with every kind of layer LoRA handles: embedding (ids [B, T] → [B, T, 16]), Linear in fields, a
/// ModuleList of blocks, a GPT-2 Conv1D, a Sequential, and a classifier head.
/// </summary>
internal sealed class TinyMlp : nn.Module<Tensor, Tensor>
{
    public const long Vocab = 50, Dim = 16, Classes = 3;

    private readonly nn.Module<Tensor, Tensor> emb;
    private readonly nn.Module<Tensor, Tensor> lin0;
    private readonly ModuleList<TinyBlock> layers;
    private readonly nn.Module<Tensor, Tensor> conv;
    private readonly Sequential seq;
    private readonly nn.Module<Tensor, Tensor> classifier;

    public TinyMlp() : base("TinyMlp")
    {
        emb = nn.Embedding(Vocab, Dim);
        lin0 = nn.Linear(Dim, Dim);
        layers = new ModuleList<TinyBlock>(new TinyBlock(Dim), new TinyBlock(Dim));
        conv = new Conv1D(Dim, Dim);
        using (no_grad()) ((Conv1D)conv).bias.normal_(0, 0.1);
        seq = nn.Sequential(("lin", nn.Linear(Dim, Dim)), ("act", nn.Tanh()));
        classifier = nn.Linear(Dim, Classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        var h = emb.forward(ids);
        h = nn.functional.relu(lin0.forward(h));
        foreach (var block in layers) h = block.forward(h);
        h = conv.forward(h);
        h = seq.forward(h);
        return classifier.forward(h);
    }

    /// <summary>A new model with the same weights as <paramref name="source"/>.</summary>
    public static TinyMlp CopyOf(TinyMlp source)
    {
        var m = new TinyMlp();
        var src = source.state_dict();
        using (no_grad())
        {
            foreach (var (k, v) in m.state_dict()) v.copy_(src[k]);
        }
        return m;
    }

    /// <summary>Fixed input ids [2, 5].</summary>
    public static Tensor Input() => tensor(new long[] { 1, 4, 9, 16, 25, 3, 7, 11, 13, 49 }, [2, 5]);
}
