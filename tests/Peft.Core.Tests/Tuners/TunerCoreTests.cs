using Peft.Core.Tuners;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>
/// The method-neutral tuner core: the tuner owns configs and active adapters; the LoRA layer factory list is ordered and
/// open (a registered factory wins; a linear that stores its weight elsewhere, as a quantized one will, is adapted
/// through <see cref="IBaseLayerWeight"/> and merges / unmerges through it); PeftModel's training hooks and
/// checkpointing forward to the tuner / model.
/// </summary>
public class TunerCoreTests
{
    private static LoraConfig Cfg(params string[] targets) => new() { R = 2, LoraAlpha = 4, TargetModules = targets, InitLoraWeights = false };

    [Fact]
    public void The_tuner_owns_configs_and_active_adapters()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg("fc"));
        pm.AddAdapter("b", Cfg("fc"));
        pm.Tuner.SetAdapter(["b"]);
        Assert.Equal("b", pm.ActiveAdapter);
        Assert.Same(pm.Tuner.PeftConfigs, pm.PeftConfigs);
        pm.Tuner.DeleteAdapter("b");
        Assert.Equal(["default"], pm.ActiveAdapters);
        Assert.Equal(["default"], pm.PeftConfigs.Keys);
        Assert.Throws<ArgumentException>(() => pm.Tuner.SetAdapter(["nope"]));
    }

    [Fact]
    public void Lora_hooks_add_nothing_and_checkpointing_on_a_plain_module_names_the_type()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg("fc"));
        ITrainingHooks hooks = pm;
        Assert.Null(hooks.LossTerm());
        hooks.OnOptimizerStep(0);
        Assert.False(pm.IsGradientCheckpointing);
        var ex = Assert.Throws<NotSupportedException>(() => pm.GradientCheckpointingEnable());
        Assert.Contains(nameof(TinyMlp), ex.Message);
    }

    [Fact]
    public void Checkpointing_is_forwarded_to_a_model_that_supports_it()
    {
        using var scope = NewDisposeScope();
        var model = new CheckpointingModel();
        using var pm = PeftModel.GetPeftModel(model, Cfg("fc"));
        IGradientCheckpointing g = pm;
        g.GradientCheckpointingEnable();
        Assert.True(model.IsGradientCheckpointing);
        Assert.True(g.IsGradientCheckpointing);
        g.GradientCheckpointingDisable();
        Assert.False(pm.IsGradientCheckpointing);
    }

    private sealed class CheckpointingModel : nn.Module<Tensor, Tensor>, IGradientCheckpointing
    {
        private readonly nn.Module<Tensor, Tensor> fc = nn.Linear(4, 4);

        public CheckpointingModel() : base("CheckpointingModel") => RegisterComponents();

        public bool IsGradientCheckpointing { get; private set; }

        public void GradientCheckpointingEnable() => IsGradientCheckpointing = true;

        public void GradientCheckpointingDisable() => IsGradientCheckpointing = false;

        public override Tensor forward(Tensor x) => fc.forward(x);
    }

    [Fact]
    public void A_weight_access_linear_is_adapted_merged_and_unmerged_through_its_interface()
    {
        using var scope = NewDisposeScope();
        var linear = new BufferLinear(6, 5);
        var model = new HolderModel(linear);
        using var pm = PeftModel.GetPeftModel(model, Cfg("proj"));
        pm.eval();
        var layer = Assert.IsType<LoraLinear>(pm.Tuner.TunerLayers().Single().Layer);
        Assert.Equal((6L, 5L), (layer.InFeatures, layer.OutFeatures));
        var x = randn(3, 6);
        var before = linear.WeightBuffer.clone();
        var adapted = pm.ForwardTensor(x);
        pm.MergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(x), 1e-5, what: "merged through IBaseLayerWeight");
        Assert.False(before.allclose(linear.WeightBuffer));
        pm.UnmergeAdapter();
        TensorAssert.Close(before, linear.WeightBuffer, 1e-5, what: "unmerged");
    }

    [Fact]
    public void A_registered_factory_is_tried_before_the_built_in_ones()
    {
        using var scope = NewDisposeScope();
        // Matches only this test's adapter name: the list is process-wide and other tests run in parallel.
        LoraLayerFactory factory = q => q.Target is Linear l && q.Key == "lin0" && q.AdapterName == "dispatch-test"
            ? new MarkedLoraLinear(l, q.AdapterName, q.R, q.Alpha, q.Config) : null;
        LoraDispatchers.Register(factory);
        try
        {
            using var pm = PeftModel.GetPeftModel(new TinyMlp(), Cfg("fc", "lin0"), adapterName: "dispatch-test");
            var layers = pm.Tuner.TunerLayers().ToDictionary(l => l.Path, l => l.Layer);
            Assert.IsType<MarkedLoraLinear>(layers["lin0"]);
            Assert.All(layers.Where(l => l.Key != "lin0"), l => Assert.IsType<LoraLinear>(l.Value));
            Assert.True(layers.Count > 1);
        }
        finally
        {
            Assert.True(LoraDispatchers.Unregister(factory));
        }
    }

    private sealed class MarkedLoraLinear(Linear l, string name, int r, double alpha, LoraConfig config) : LoraLinear(l, name, r, alpha, config);

    /// <summary>A linear whose weight is a buffer (not a parameter), as a quantized layer stores packed data.</summary>
    internal sealed class BufferLinear : nn.Module<Tensor, Tensor>, IBaseLayerWeight
    {
        private readonly Tensor weight_buffer;

        public BufferLinear(long inFeatures, long outFeatures) : base("BufferLinear")
        {
            weight_buffer = randn(outFeatures, inFeatures).DetachFromDisposeScope();
            register_buffer("weight_buffer", weight_buffer);
            InFeatures = inFeatures;
            OutFeatures = outFeatures;
        }

        public Tensor WeightBuffer => weight_buffer;

        public long InFeatures { get; }

        public long OutFeatures { get; }

        public ScalarType ComputeDtype => weight_buffer.dtype;

        public Device Device => weight_buffer.device;

        public Tensor GetWeight() => weight_buffer.clone();

        public void SetWeight(Tensor weight)
        {
            using var _ = no_grad();
            weight_buffer.copy_(weight);
        }

        public override Tensor forward(Tensor x) => nn.functional.linear(x, weight_buffer);
    }

    internal sealed class HolderModel : nn.Module<Tensor, Tensor>
    {
        private nn.Module<Tensor, Tensor> proj;

        public HolderModel(BufferLinear p) : base("HolderModel")
        {
            proj = p;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => proj.forward(x);
    }
}
