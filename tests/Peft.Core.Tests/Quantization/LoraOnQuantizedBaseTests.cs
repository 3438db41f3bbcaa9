using Peft.Core.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Quantization;

/// <summary>
/// LoRA wraps a <see cref="Linear4bit"/> through the core's <c>IBaseLayerWeight</c>; the quantized base must be registered
/// once (as <c>base_layer</c>) and survive a plain <c>MergeAndUnload</c> / <c>Unload</c> (regression: a stored
/// <c>WeightAccess</c> made <c>RegisterComponents</c> register the base a second time and dispose it on unload).
/// </summary>
public class LoraOnQuantizedBaseTests
{
    private sealed class TwoLayer : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> proj;
        private readonly nn.Module<Tensor, Tensor> head;

        public TwoLayer(Generator gen) : base(nameof(TwoLayer))
        {
            proj = new Linear4bit(randn([32, 64], generator: gen) * 0.05, randn([32], generator: gen) * 0.1, FourBitFormat.Nf4, ScalarType.Float32, doubleQuant: true);
            head = nn.Linear(32, 8);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => head.forward(nn.functional.relu(proj.forward(x)));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void QuantizedBaseIsRegisteredOnceAndSurvivesUnload(bool merge)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(3);
        var model = new TwoLayer(gen);
        var x = randn([4, 64], generator: gen);
        var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["proj"], InitLoraWeights = LoraInit.Gaussian });
        var names = pm.named_modules().Select(m => m.name).ToList();
        Assert.DoesNotContain(names, n => n.Contains('<') || n.Contains("WeightAccess", StringComparison.Ordinal));
        Assert.DoesNotContain(pm.state_dict().Keys, k => k.Contains('<'));
        Assert.Single(names, n => n.EndsWith("proj.base_layer", StringComparison.Ordinal));
        var adapted = pm.ForwardTensor(x).detach().clone();
        Assert.False(adapted.isnan().any().item<bool>());

        var back = (TwoLayer)(merge ? pm.MergeAndUnload() : pm.Unload());
        var y = back.forward(x);                           // throws on a disposed base
        Assert.Equal(new long[] { 4, 8 }, y.shape);
        Assert.False(y.isnan().any().item<bool>());
        if (merge) Assert.True(y.allclose(adapted, rtol: 0.05, atol: 0.05), "merged (dequantised) output differs from the adapted one");
    }
}
