using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// The (IA)³ rows of the tuner matrix on the tiny transformer models, with PEFT's per-model default target and
/// feed-forward modules: the adapter changes the output, disabling gives the base output, merging equals the unmerged
/// output, unmerging restores, save/load round-trips, a second adapter switches and deletes cleanly. Plus training:
/// a few AdamW steps lower the loss.
/// </summary>
public class IA3TinyModelMatrixTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "opt-tiny", "defaults" },
        { "gpt2-tiny", "defaults" },          // c_attn (output) + mlp.c_proj (input), both Conv1D
        { "llama-tiny", "defaults" },
        { "qwen2-tiny", "all-linear" },
        { "bert-tiny", "defaults" },          // sequence classification: classifier in modules_to_save
    };

    private static PreTrainedModel LoadModel(string model) => model switch
    {
        "bert-tiny" => AutoModelForSequenceClassification.FromPretrained(Fixtures.Model(model)),
        _ => AutoModelForCausalLM.FromPretrained(Fixtures.Model(model)),
    };

    private static IA3Config Config(string model, string setting)
    {
        var task = model == "bert-tiny" ? TaskType.SeqCls : TaskType.CausalLM;
        return setting switch
        {
            "defaults" => new IA3Config { TaskType = task },
            // A regex: as a list, "down_proj" would not be a subset of the expanded full names and the saved config would
            // not load (in PEFT either: its __post_init__ checks the subset on load).
            "all-linear" => new IA3Config { TaskType = task, TargetModules = "all-linear", FeedforwardModules = @".*\.down_proj" },
            _ => throw new ArgumentException(setting),
        };
    }

    private static ModelInput Input()
    {
        var ids = tensor(new long[] { 5, 17, 42, 99, 7, 300, 12, 64, 3, 8, 250, 1, 1, 1, 1, 1 }, [2, 8]);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 }, [2, 8]);
        return new ModelInput { InputIds = ids, AttentionMask = mask };
    }

    /// <summary>Gives every ia3_l vector values away from 1 so the adapter changes the output.</summary>
    private static void Randomize(PeftModel pm, string adapter, int seed)
    {
        var g = new Generator((ulong)seed);
        using var _ = no_grad();
        foreach (var (n, p) in pm.named_parameters())
        {
            if (n.Contains($"ia3_l.{adapter}")) p.copy_(rand(p.shape, generator: g) + 0.5);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void MergeDisableSaveLoadAndMultiAdapterLaws(string model, string setting)
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

        var config = Config(model, setting);
        var pm = PeftModel.GetPeftModel(m, config);
        pm.eval();
        using (no_grad()) TensorAssert.Close(baseOut, pm.forward(input).Logits!, 1e-5, tokenMask, "ones init is a no-op");
        Randomize(pm, "default", 1);
        using var _ = no_grad();
        var adapted = pm.forward(input).Logits!;
        Assert.False(baseOut.allclose(adapted, atol: 1e-4), $"{model}/{setting}: adapter did not change the output");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.forward(input).Logits!, 1e-4, tokenMask, "disabled");
        pm.MergeAdapter();
        TensorAssert.Close(adapted, pm.forward(input).Logits!, 1e-4, tokenMask, "merged");
        pm.UnmergeAdapter();
        TensorAssert.Close(adapted, pm.forward(input).Logits!, 1e-4, tokenMask, "unmerged");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.forward(input).Logits!, 1e-4, tokenMask, "base restored after unmerge");

        pm.AddAdapter("second", config);
        Randomize(pm, "second", 2);
        pm.SetAdapter("second");
        var second = pm.forward(input).Logits!;
        Assert.False(second.allclose(adapted, atol: 1e-4), "second adapter gives its own output");
        pm.SetAdapter("default");
        TensorAssert.Close(adapted, pm.forward(input).Logits!, 1e-4, tokenMask, "back to default");
        pm.SavePretrained(dir.Path);
        pm.DeleteAdapter("second");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".second"));

        var loaded = PeftModel.FromPretrained(LoadModel(model), dir.Path);
        Assert.IsType<IA3Config>(loaded.ActivePeftConfig);
        TensorAssert.Close(adapted, loaded.forward(input).Logits!, 1e-4, tokenMask, "reloaded default");
        loaded.LoadAdapter(Path.Combine(dir.Path, "second"), "second");
        loaded.SetAdapter("second");
        TensorAssert.Close(second, loaded.forward(input).Logits!, 1e-4, tokenMask, "reloaded second");
        loaded.SetAdapter("default");
        var merged = (PreTrainedModel)loaded.MergeAndUnload();
        TensorAssert.Close(adapted, merged.forward(input).Logits!, 1e-4, tokenMask, "merge_and_unload");
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("ia3_") || p.name.Contains("base_layer"));
    }

    [Theory]
    [InlineData("opt-tiny")]
    [InlineData("gpt2-tiny")]
    public void AFewAdamWStepsLowerTheLoss(string model)
    {
        using var scope = NewDisposeScope();
        var pm = PeftModel.GetPeftModel(LoadModel(model), new IA3Config { TaskType = TaskType.CausalLM });
        pm.train();
        var ids = randint(3, 900, [4, 12], generator: new Generator(3));
        var batch = new ModelInput { InputIds = ids, AttentionMask = ones_like(ids), Labels = ids };
        using var optimizer = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 0.05);
        var losses = new List<double>();
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
        Assert.All(pm.named_parameters().Where(p => !p.name.Contains("ia3_l")), p => Assert.False(p.parameter.requires_grad, p.name));
    }
}
