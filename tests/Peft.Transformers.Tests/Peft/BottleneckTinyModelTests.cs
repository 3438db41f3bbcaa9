using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// Bottleneck adapters on the tiny transformer models through the public PEFT API (GetPeftModel / SavePretrained /
/// FromPretrained / LoadAdapter / DisableAdapter / PrintTrainableParameters), with the default placements per model
/// type; training lowers the loss; merging is refused.
/// </summary>
public class BottleneckTinyModelTests
{
    public static TheoryData<string, BottleneckPlacement, int> Placements => new()
    {
        // model, placement, adapted modules (2 layers each: houlsby = attention + feed-forward output, pfeiffer = feed-forward)
        { "opt-tiny", BottleneckPlacement.Houlsby, 4 },
        { "opt-tiny", BottleneckPlacement.Pfeiffer, 2 },
        { "gpt2-tiny", BottleneckPlacement.Houlsby, 4 },
        { "gpt2-tiny", BottleneckPlacement.Pfeiffer, 2 },
        { "llama-tiny", BottleneckPlacement.Houlsby, 4 },
        { "qwen2-tiny", BottleneckPlacement.Pfeiffer, 2 },
        { "bert-tiny", BottleneckPlacement.Houlsby, 4 },
        { "bert-tiny", BottleneckPlacement.Pfeiffer, 2 },
    };

    private static PreTrainedModel LoadModel(string model) => model switch
    {
        "bert-tiny" => AutoModelForSequenceClassification.FromPretrained(Fixtures.Model(model)),
        _ => AutoModelForCausalLM.FromPretrained(Fixtures.Model(model)),
    };

    private static TaskType Task(string model) => model == "bert-tiny" ? TaskType.SeqCls : TaskType.CausalLM;

    private static ModelInput Input()
    {
        var ids = tensor(new long[] { 5, 17, 42, 99, 7, 300, 12, 64, 3, 8, 250, 1, 1, 1, 1, 1 }, [2, 8]);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 }, [2, 8]);
        return new ModelInput { InputIds = ids, AttentionMask = mask };
    }

    [Theory]
    [MemberData(nameof(Placements))]
    public void DefaultPlacementIdentityAtStartDisableSaveLoadAndNoMerge(string model, BottleneckPlacement placement, int adapted)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var input = Input();
        var mask = input.AttentionMask!;
        var m = LoadModel(model);
        m.eval();
        Tensor baseOut;
        using (no_grad()) baseOut = m.forward(input).Logits!;
        Tensor? tokenMask = baseOut.dim() == 3 ? mask : null;

        var pm = PeftModel.GetPeftModel(m, new AdapterConfig { Placement = placement, ReductionFactor = 8, TaskType = Task(model) });
        pm.eval();
        var layers = pm.Tuner.TunerLayers().ToList();
        Assert.Equal(adapted, layers.Count);
        Assert.All(layers, l => Assert.IsType<BottleneckAdapterLayer>(l.Layer));
        if (placement == BottleneckPlacement.Pfeiffer)
            Assert.DoesNotContain(layers, l => l.Path.Contains("attn") || l.Path.Contains("attention"));
        using var _ = no_grad();
        TensorAssert.Close(baseOut, pm.forward(input).Logits!, 1e-5, tokenMask, "zero up-projection: outputs unchanged");

        var (trainable, all) = pm.GetNbTrainableParameters();
        long adapterParams = pm.named_parameters().Where(p => p.name.Contains("adapter_")).Sum(p => p.parameter.numel());
        long heads = pm.named_parameters().Where(p => p.name.Contains(".modules_to_save.")).Sum(p => p.parameter.numel());
        Assert.Equal(adapterParams + heads, trainable);
        Assert.Equal(m.parameters().Sum(p => p.numel()), all); // m is the wrapped model: its parameters now include the adapters
        Assert.StartsWith($"trainable params: {trainable:N0} || all params: {all:N0}", pm.PrintTrainableParameters());

        foreach (var (n, p) in pm.named_parameters())
        {
            if (n.Contains("adapter_up")) p.normal_(0, 0.2, generator: new Generator(5));
        }
        var adaptedOut = pm.forward(input).Logits!;
        Assert.False(baseOut.allclose(adaptedOut, atol: 1e-4), "trained-looking adapter changes the output");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.forward(input).Logits!, 1e-5, tokenMask, "disabled");
        Assert.Throws<NotSupportedException>(() => pm.MergeAndUnload());

        pm.SavePretrained(dir.Path);
        var cfg = Assert.IsType<BottleneckAdapterConfig>(PeftConfig.FromPretrained(dir.Path));
        Assert.NotNull(cfg.TargetModules); // resolved placement is saved
        var loaded = PeftModel.FromPretrained(LoadModel(model), dir.Path);
        TensorAssert.Close(adaptedOut, loaded.forward(input).Logits!, 1e-5, tokenMask, "reloaded");
        loaded.LoadAdapter(dir.Path, "again");
        loaded.SetAdapter("again");
        TensorAssert.Close(adaptedOut, loaded.forward(input).Logits!, 1e-5, tokenMask, "LoadAdapter under another name");
        loaded.DeleteAdapter("again");
        Assert.DoesNotContain(loaded.named_parameters(), p => p.name.Contains(".again."));
    }

    [Theory]
    [InlineData("opt-tiny", BottleneckPlacement.Houlsby)]
    [InlineData("llama-tiny", BottleneckPlacement.Pfeiffer)]
    public void AFewAdamWStepsFromTheIdentityLowerTheLoss(string model, BottleneckPlacement placement)
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(LoadModel(model), new AdapterConfig { Placement = placement, ReductionFactor = 4, NonLinearity = "gelu", TaskType = TaskType.CausalLM });
        pm.train();
        var ids = randint(3, 900, [4, 12], generator: new Generator(11));
        var batch = new ModelInput { InputIds = ids, AttentionMask = ones_like(ids), Labels = ids };
        using var optimizer = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 0.01);
        var losses = new List<float>();
        for (int step = 0; step < 6; step++)
        {
            using var stepScope = NewDisposeScope();
            var loss = pm.forward(batch).Loss!;
            losses.Add(loss.item<float>());
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
        Assert.True(losses[^1] < losses[0] - 1e-3, $"{model}: losses {string.Join(", ", losses)} did not go down");
        Assert.All(pm.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains("adapter_", p.name));
    }
}
