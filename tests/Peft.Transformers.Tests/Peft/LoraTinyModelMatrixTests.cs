using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity; // not "...Tests.Peft": that would shadow the root namespace Peft in sibling tests

/// <summary>
/// The tuner matrix on the tiny transformer models: for each model and LoRA setting, the adapter changes the output,
/// disabling gives the base output, merging equals the unmerged output, unmerging restores, save/load round-trips,
/// and a second adapter switches and deletes cleanly.
/// </summary>
public class LoraTinyModelMatrixTests
{
    public static TheoryData<string, string> Cases => new()
    {
        { "opt-tiny", "q+fc2" },
        { "opt-tiny", "all-linear-rslora" },
        { "gpt2-tiny", "conv1d-dora" },
        { "gpt2-tiny", "wpe+c_attn" },
        { "llama-tiny", "all-linear-dora" },
        { "llama-tiny", "embed+regex" },
        { "qwen2-tiny", "layers-pattern" },
        { "bert-tiny", "seqcls-embed" },
        { "bert-ner-tiny", "tokcls" },
        { "bert-qa-tiny", "qa" },
        { "bert-tiny", "seqcls-all-linear" },
    };

    private static (PreTrainedModel Model, LoraConfig Config) Build(string model, string setting)
    {
        var dir = Fixtures.Model(model);
        PreTrainedModel m = model switch
        {
            "bert-tiny" => AutoModelForSequenceClassification.FromPretrained(dir),
            "bert-ner-tiny" => AutoModelForTokenClassification.FromPretrained(dir),
            "bert-qa-tiny" => AutoModelForQuestionAnswering.FromPretrained(dir),
            _ => AutoModelForCausalLM.FromPretrained(dir),
        };
        LoraConfig c = setting switch
        {
            "q+fc2" => new() { R = 4, TargetModules = ["q_proj", "fc2"], InitLoraWeights = LoraInit.Gaussian },
            "all-linear-rslora" => new() { R = 4, TargetModules = "all-linear", UseRslora = true, Bias = LoraBias.LoraOnly },
            "conv1d-dora" => new() { R = 4, TargetModules = ["c_attn", "c_proj", "c_fc"], UseDora = true, FanInFanOut = true },
            "wpe+c_attn" => new() { R = 4, TargetModules = ["wpe", "c_attn"], Bias = LoraBias.All, FanInFanOut = true },
            "all-linear-dora" => new() { R = 2, TargetModules = "all-linear", UseDora = true },
            "embed+regex" => new() { R = 4, TargetModules = @".*(embed_tokens|self_attn\.(q|v)_proj)" },
            "layers-pattern" => new()
            {
                R = 4, TargetModules = ["q_proj", "down_proj"], LayersToTransform = [1], LayersPattern = ["layers"],
                RankPattern = new Dictionary<string, int> { ["down_proj"] = 2 }, AlphaPattern = new Dictionary<string, double> { ["q_proj"] = 16 },
            },
            "seqcls-embed" => new() { R = 4, TargetModules = ["word_embeddings", "query", "value"], TaskType = TaskType.SeqCls },
            "tokcls" => new() { R = 4, TargetModules = ["query", "key", "dense"], TaskType = TaskType.TokenCls, ExcludeModules = @".*output\.dense" },
            "qa" => new() { R = 4, TargetModules = ["query", "value"], TaskType = TaskType.QuestionAns },
            "seqcls-all-linear" => new() { R = 2, TargetModules = "all-linear", TaskType = TaskType.SeqCls },
            _ => throw new ArgumentException(setting),
        };
        // Random A and B so every adapter changes the output (gaussian: B is zero at first, so it is filled below).
        return (m, c.InitLoraWeights == LoraInit.Gaussian ? c : c with { InitLoraWeights = false });
    }

    private static ModelInput Input()
    {
        var ids = tensor(new long[] { 5, 17, 42, 99, 7, 300, 12, 64, 3, 8, 250, 1, 1, 1, 1, 1 }, [2, 8]);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0 }, [2, 8]);
        return new ModelInput { InputIds = ids, AttentionMask = mask };
    }

    private static Tensor Out(ModelOutput o) => o.Logits ?? cat([o.StartLogits!, o.EndLogits!], -1);

    [Theory]
    [MemberData(nameof(Cases))]
    public void MergeDisableSaveLoadAndMultiAdapterLaws(string model, string setting)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var input = Input();
        var mask = input.AttentionMask!;
        var (m, config) = Build(model, setting);
        m.eval();
        Tensor baseOut;
        using (no_grad()) baseOut = Out(m.forward(input));
        Tensor? TokenMask(Tensor t) => t.dim() == 3 ? mask : null;

        var pm = PeftModel.GetPeftModel(m, config);
        pm.eval();
        using var _ = no_grad();
        foreach (var (n, p) in pm.named_parameters())
        {
            if (n.Contains("lora_B")) p.normal_(0, 0.1); // gaussian init starts as a no-op; give B values
        }
        var adapted = Out(pm.forward(input));
        Assert.False(baseOut.allclose(adapted, atol: 1e-4), $"{model}/{setting}: adapter did not change the output");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, Out(pm.forward(input)), 1e-4, TokenMask(baseOut), "disabled");
        pm.MergeAdapter();
        TensorAssert.Close(adapted, Out(pm.forward(input)), 1e-4, TokenMask(baseOut), "merged");
        pm.UnmergeAdapter();
        TensorAssert.Close(adapted, Out(pm.forward(input)), 1e-4, TokenMask(baseOut), "unmerged");
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, Out(pm.forward(input)), 1e-4, TokenMask(baseOut), "base restored after unmerge");

        pm.AddAdapter("second", config with { R = 2, Bias = LoraBias.None });
        pm.SetAdapter("second");
        var second = Out(pm.forward(input));
        Assert.False(second.allclose(adapted, atol: 1e-4), "second adapter gives its own output");
        pm.SetAdapter("default");
        TensorAssert.Close(adapted, Out(pm.forward(input)), 1e-4, TokenMask(baseOut), "back to default");
        pm.SavePretrained(dir.Path);
        pm.DeleteAdapter("second");
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".second"));

        var (fresh, _) = Build(model, setting);
        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(adapted, Out(loaded.forward(input)), 1e-4, TokenMask(baseOut), "reloaded default");
        loaded.LoadAdapter(Path.Combine(dir.Path, "second"), "second");
        loaded.SetAdapter("second");
        TensorAssert.Close(second, Out(loaded.forward(input)), 1e-4, TokenMask(baseOut), "reloaded second");
        loaded.SetAdapter("default");
        var merged = (PreTrainedModel)loaded.MergeAndUnload();
        TensorAssert.Close(adapted, Out(merged.forward(input)), 1e-4, TokenMask(baseOut), "merge_and_unload");
        Assert.DoesNotContain(merged.named_parameters(), p => p.name.Contains("lora_") || p.name.Contains("base_layer"));
    }
}
