using Peft.Core;
using Peft.Core.Tuners;
using Peft.Testing;
using Peft.Transformers;
using Peft.Transformers.Models.Opt;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// Intermediates of a forward are released at their last use (Models/Common/Release), as Python's reference counting
/// frees them in HF's forward: the live tensors seen just after the last decoder layer do not grow with the number of
/// layers (before, every layer's outputs stayed alive until the forward's scope ended), with and without autograd, with
/// LoRA adapters, pre- and post-norm. And MergeAndUnload leaves exactly the base model's tensors alive.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class IntermediateReleaseTests
{
    // Wraps the module that runs right after the layer loop (final norm / project_out) and records the live tensor count at its call.
    private sealed class Probe : nn.Module<Tensor, Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> _inner;
        public long LiveAtCall { get; private set; } = -1;

        public Probe(nn.Module<Tensor, Tensor> inner) : base("Probe")
        {
            _inner = inner;
        }

        public override Tensor forward(Tensor x)
        {
            LiveAtCall = LeakCheck.LiveTensors;
            return _inner.forward(x);
        }
    }

    private static OPTConfig Config(int layers, bool preNorm) => new()
    {
        VocabSize = 70, HiddenSize = 48, NumAttentionHeads = 6, FfnDim = 96, NumHiddenLayers = layers, MaxPositionEmbeddings = 40,
        DoLayerNormBefore = preNorm, WordEmbedProjDim = preNorm ? 48 : 32, PadTokenId = 1, Dropout = 0.0,
    };

    // Live tensors at the probe minus live tensors before the forward.
    private static long HeldAfterLayers(int layers, bool preNorm, bool grad, bool lora)
    {
        manual_seed(7);
        using var model = (OPTForCausalLM)AutoModelForCausalLM.FromConfig(Config(layers, preNorm));
        var decoder = model.model.decoder;
        var probe = new Probe(decoder.final_layer_norm ?? decoder.project_out!);
        ModuleSurgery.ReplaceChild(decoder, decoder.final_layer_norm is not null ? "final_layer_norm" : "project_out", probe);
        PeftModel? pm = lora ? PeftModel.GetPeftModel(model, new LoraConfig { R = 4, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM }) : null;
        nn.Module<ModelInput, ModelOutput> net = pm is null ? model : pm;
        using var ids = randint(2, 70, [2, 9], dtype: ScalarType.Int64);
        long before = LeakCheck.LiveTensors;
        using (var scope = NewDisposeScope())
        using (grad ? null : no_grad())
        {
            var o = net.forward(new ModelInput { InputIds = ids, Labels = grad ? ids : null });
            if (grad) o.Loss!.backward();
        }
        pm?.Dispose();
        Assert.True(probe.LiveAtCall >= 0, "the probe was not called");
        return probe.LiveAtCall - before;
    }

    [Theory]
    [InlineData(true, false, false)]
    [InlineData(false, false, false)]
    [InlineData(true, true, false)]
    [InlineData(true, false, true)]
    [InlineData(true, true, true)]
    [InlineData(false, true, true)]
    public void Live_tensors_after_the_layers_do_not_grow_with_depth(bool preNorm, bool grad, bool lora)
    {
        long two = HeldAfterLayers(2, preNorm, grad, lora);
        long six = HeldAfterLayers(6, preNorm, grad, lora);
        Assert.True(six == two, $"live tensors after the layer loop: {two} with 2 layers, {six} with 6 (each layer keeps {(six - two) / 4.0:F1})");
        Assert.InRange(two, 1, 12);
    }

    [Fact]
    public void MergeAndUnload_leaves_only_the_base_models_tensors()
    {
        manual_seed(3);
        long start = LeakCheck.LiveTensors;
        var model = AutoModelForCausalLM.FromConfig(Config(3, preNorm: true));
        long baseCount = LeakCheck.LiveTensors - start;
        var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 4, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        using (no_grad())
            foreach (var (name, p) in pm.named_parameters())
                if (name.Contains("lora_B", StringComparison.Ordinal)) p.normal_(0.0, 0.02);
        Assert.True(LeakCheck.LiveTensors - start > baseCount);        // the adapters exist
        using var merged = pm.MergeAndUnload();
        pm.Dispose();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(baseCount, LeakCheck.LiveTensors - start);
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("lora_", StringComparison.Ordinal));
    }
}
