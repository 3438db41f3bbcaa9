using Peft.Core;
using Peft.Core.Tuners;
using Peft.Testing;
using Peft.Transformers.Models.Llama;
using TorchSharp;
using TorchSharp.Modules;

namespace Peft.Transformers.Tests.Models;

/// <summary>
/// Gradient checkpointing (HF <c>gradient_checkpointing_enable()</c>): the same loss and gradients as without it,
/// for full fine-tuning and LoRA (frozen embeddings), with dropout, with a prefix cache; layers really are recomputed;
/// caching is off while checkpointing; eval mode and no_grad ignore it. Dropout draws from the process-wide torch
/// generator, so these tests run alone (<see cref="GlobalRngCollection"/>).
/// </summary>
[Collection(GlobalRngCollection.Name)]
public sealed class GradientCheckpointingTests
{
    public static TheoryData<string> Models => DecoderModels.Theory;

    /// <summary>One seeded training forward + backward; returns the loss and every trainable parameter's gradient (cloned).</summary>
    internal static (float Loss, Dictionary<string, torch.Tensor> Grads) Step(torch.nn.Module<ModelInput, ModelOutput> model, ModelInput input, long seed = 42)
    {
        foreach (var p in model.parameters()) p.grad = null;
        torch.manual_seed(seed);
        var loss = model.forward(input).Loss!;
        loss.backward();
        var grads = model.named_parameters().Where(kv => kv.parameter.requires_grad)
            .ToDictionary(kv => kv.name, kv => kv.parameter.grad?.clone() ?? throw new InvalidOperationException($"no gradient for {kv.name}"));
        return (loss.item<float>(), grads);
    }

    private static void AssertSameGradients(Dictionary<string, torch.Tensor> expected, Dictionary<string, torch.Tensor> actual, string what)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, g) in expected) TensorAssert.Close(g, actual[name], 1e-6, null, $"{what}: {name}");
    }

    private static ModelInput LmInput(PreTrainedModel model, long b = 2, long t = 9)
    {
        var ids = DecoderModels.RandomIds(model, b, t);
        var mask = torch.ones(b, t, dtype: torch.ScalarType.Int64);
        mask[1].narrow(0, 0, 3).fill_(0);
        return new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids.masked_fill(mask.eq(0), -100) };
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Full_fine_tuning_loss_and_gradients_equal_without_checkpointing_with_dropout(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name, dropout: 0.2);
        model.train();
        var input = LmInput(model);
        var (loss, grads) = Step(model, input);
        var (otherSeedLoss, _) = Step(model, input, seed: 43);
        Assert.NotEqual(loss, otherSeedLoss);                                       // dropout is really active
        model.GradientCheckpointingEnable();
        var (ckLoss, ckGrads) = Step(model, input);
        Assert.Equal(loss, ckLoss);
        AssertSameGradients(grads, ckGrads, name);
        Assert.True(grads.Values.All(g => g.abs().sum().item<float>() > 0) || name == "gpt2-tiny", $"{name}: some gradients are zero");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Lora_gradients_equal_without_checkpointing_with_frozen_embeddings(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        string[] targets = name == "gpt2-tiny" ? ["c_attn", "c_fc"] : name == "opt-tiny" ? ["q_proj", "v_proj", "fc1"] : ["q_proj", "v_proj", "down_proj"];
        var config = new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.1, TargetModules = targets, TaskType = TaskType.CausalLM, InitLoraWeights = false, FanInFanOut = name == "gpt2-tiny" };
        var peft = PeftModel.GetPeftModel(model, config);
        peft.train();
        Assert.False(model.GetInputEmbeddings().weight!.requires_grad);            // HF's reentrant-checkpoint pitfall
        var input = LmInput(model);
        var (loss, grads) = Step(peft, input);
        Assert.NotEmpty(grads);
        Assert.All(grads.Keys, k => Assert.Contains("lora_", k));
        model.GradientCheckpointingEnable();
        var (ckLoss, ckGrads) = Step(peft, input);
        Assert.Equal(loss, ckLoss);
        AssertSameGradients(grads, ckGrads, name);
        Assert.All(ckGrads, kv => Assert.True(kv.Value.abs().sum().item<float>() > 0, $"{name}: zero gradient for {kv.Key}"));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Prefix_cache_gradients_equal_and_the_cache_is_not_extended(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        model.train();
        var d = model.Dimensions;
        long b = 2, p = 3, t = 5;
        torch.manual_seed(1);
        var keys = Enumerable.Range(0, d.NumLayers).Select(_ => torch.randn(b, d.NumKeyValueHeads, p, d.HeadDim).requires_grad_(true)).ToArray();
        var values = Enumerable.Range(0, d.NumLayers).Select(_ => torch.randn(b, d.NumKeyValueHeads, p, d.HeadDim).requires_grad_(true)).ToArray();
        var ids = DecoderModels.RandomIds(model, b, t);
        var mask = torch.ones(b, p + t, dtype: torch.ScalarType.Int64);
        (float, torch.Tensor[]) Run()
        {
            foreach (var x in keys.Concat(values)) x.grad = null;
            using var cache = new KeyValueCache();
            for (int l = 0; l < d.NumLayers; l++) cache.Update(l, keys[l], values[l]);
            var loss = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PastKeyValues = cache, Labels = ids }).Loss!;
            loss.backward();
            Assert.Equal(model.IsGradientCheckpointing ? p : p + t, cache.GetSeqLength());
            return (loss.item<float>(), keys.Concat(values).Select(x => x.grad!.clone()).ToArray());
        }
        var (loss, grads) = Run();
        model.GradientCheckpointingEnable();
        var (ckLoss, ckGrads) = Run();
        Assert.Equal(loss, ckLoss);
        for (int i = 0; i < grads.Length; i++) TensorAssert.Close(grads[i], ckGrads[i], 1e-6, null, $"{name}: prefix grad {i}");
        Assert.True(ckGrads[0].abs().sum().item<float>() > 0, $"{name}: no gradient reaches the prefix");
    }

    [Fact]
    public void Bert_encoder_layers_checkpoint_too()
    {
        using var scope = torch.NewDisposeScope();
        using var model = ModelTestUtil.Load("bert-tiny");
        model.train();
        var r = ModelTestUtil.Reference("bert-tiny");
        var input = ModelTestUtil.ReferenceInput("bert-tiny", r) with { Labels = torch.tensor(new long[] { 0, 3, 4 }) };
        var (loss, grads) = Step(model, input);
        model.GradientCheckpointingEnable();
        var (ckLoss, ckGrads) = Step(model, input);
        Assert.Equal(loss, ckLoss);
        AssertSameGradients(grads, ckGrads, "bert-tiny");
    }

    [Fact]
    public void Enable_and_disable_toggle_the_model_and_its_backbone()
    {
        using var model = (LlamaForCausalLM)DecoderModels.Load("llama-tiny");
        IGradientCheckpointing hooks = model;
        Assert.False(hooks.IsGradientCheckpointing);
        hooks.GradientCheckpointingEnable();
        Assert.True(model.IsGradientCheckpointing);
        Assert.True(model.model.IsGradientCheckpointing);
        hooks.GradientCheckpointingDisable();
        Assert.False(model.IsGradientCheckpointing);
        Assert.False(model.model.IsGradientCheckpointing);
    }

    [Fact]
    public void Layers_are_recomputed_in_backward_only_when_training_with_grad()
    {
        using var scope = torch.NewDisposeScope();
        using var model = (LlamaForCausalLM)DecoderModels.Load("llama-tiny");
        var counter = new CountingModule(model.model.layers[0].self_attn.o_proj);
        ModuleSurgery.ReplaceChild(model.model.layers[0].self_attn, "o_proj", counter); // the supported way to swap a child
        var input = LmInput(model);
        int Calls(Action a)
        {
            counter.Calls = 0;
            a();
            return counter.Calls;
        }
        model.GradientCheckpointingEnable();
        model.train();
        Assert.Equal(2, Calls(() => model.forward(input).Loss!.backward()));    // forward + recomputation
        model.eval();
        Assert.Equal(1, Calls(() => model.forward(input).Loss!.backward()));    // eval mode ignores checkpointing
        model.train();
        using (torch.no_grad()) Assert.Equal(1, Calls(() => model.forward(input)));
        model.GradientCheckpointingDisable();
        Assert.Equal(1, Calls(() => model.forward(input).Loss!.backward()));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Use_cache_is_off_while_checkpointing_in_training_and_eval_ignores_checkpointing(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = DecoderModels.Load(name);
        model.GradientCheckpointingEnable();
        var input = LmInput(model) with { UseCache = true };
        model.eval();
        using (var o = model.forward(input).PastKeyValues) Assert.NotNull(o);
        model.train();
        Assert.Null(model.forward(input).PastKeyValues);
        using (torch.no_grad())
        using (var o = model.forward(input).PastKeyValues) Assert.NotNull(o);
        // eval logits are the same with checkpointing on and off
        model.eval();
        var on = model.forward(input with { UseCache = false }).Logits!;
        model.GradientCheckpointingDisable();
        TensorAssert.Equal(model.forward(input with { UseCache = false }).Logits!, on, name);
    }

    private sealed class CountingModule(torch.nn.Module<torch.Tensor, torch.Tensor> inner) : torch.nn.Module<torch.Tensor, torch.Tensor>("Counting")
    {
        public int Calls;

        public override torch.Tensor forward(torch.Tensor x)
        {
            Calls++;
            return inner.forward(x);
        }
    }
}

/// <summary>A checkpointed training step releases every tensor it creates (step scope, as the Trainer runs it).</summary>
[Collection(LeakTestCollection.Name)]
public sealed class GradientCheckpointingLeakTests
{
    [Theory]
    [InlineData("opt-tiny")]
    [InlineData("llama-tiny")]
    public void Checkpointed_lora_training_steps_do_not_leak(string name)
    {
        using var model = DecoderModels.Load(name, dropout: 0.1);
        var peft = PeftModel.GetPeftModel(model, new LoraConfig { R = 4, LoraAlpha = 8, LoraDropout = 0.1, TargetModules = new[] { "q_proj", "v_proj" }, TaskType = TaskType.CausalLM });
        peft.train();
        model.GradientCheckpointingEnable();
        using var ids = DecoderModels.RandomIds(model, 2, 8);
        using var opt = torch.optim.SGD(peft.parameters().Where(p => p.requires_grad), 1e-3);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var step = torch.NewDisposeScope();
            opt.zero_grad();
            peft.forward(new ModelInput { InputIds = ids, Labels = ids }).Loss!.backward();
            opt.step();
        }, 30, what: name);
    }
}

/// <summary>Tests that reseed and draw from torch's process-wide generator and compare two draws run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalRngCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Global torch RNG (sequential)";
}
