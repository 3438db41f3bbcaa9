using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Core.Tuners;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity;

/// <summary>
/// Each prompt-learning method trains with a plain AdamW loop (only its encoder and, for SEQ_CLS, the classifier copy
/// change), saves <c>prompt_embeddings</c> as PEFT does (the encoder output while training) and reloads (inference mode)
/// to the same logits; sequence classification on BERT; TEXT / SAMPLE_VOCAB init from the word embeddings.
/// </summary>
public sealed class PromptLearningTrainingTests
{
    public static TheoryData<string, string> CausalCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var method in new[] { "prompt-tuning", "p-tuning-mlp", "p-tuning-lstm", "prefix-tuning", "prefix-tuning-projection" })
            data.Add("opt-tiny", method);
        foreach (var model in new[] { "llama-tiny", "gpt2-tiny", "qwen2-tiny" })
        {
            foreach (var method in new[] { "prompt-tuning", "prefix-tuning" })
                data.Add(model, method);
        }
        return data;
    }

    public static TheoryData<string> Methods => new() { "prompt-tuning", "p-tuning-mlp", "p-tuning-lstm", "prefix-tuning", "prefix-tuning-projection" };

    /// <summary>Runs <paramref name="steps"/> AdamW steps on <paramref name="input"/>; returns the first and last loss.</summary>
    private static (double First, double Last) Train(PeftModel pm, ModelInput input, int steps = 6, double lr = 1e-2)
    {
        pm.train();
        using var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr);
        double first = 0, last = 0;
        for (int step = 0; step < steps; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var output = pm.forward(input);
            Assert.Null(output.PastKeyValues);
            var loss = output.Loss!;
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        pm.eval();
        return (first, last);
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    [Theory]
    [MemberData(nameof(CausalCases))]
    public void Causal_lm_trains_saves_and_reloads(string modelName, string method)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var f = SafetensorsFile.Open(Fixtures.Reference(modelName));
        var ids = f.GetTensor("input_ids");
        var mask = f.GetTensor("attention_mask");
        var input = new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids.masked_fill(mask.eq(0), -100) };

        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName));
        var baseBefore = Snapshot(lm);
        PeftModel pm;
        using (manual_seed(3)) pm = PeftModel.GetPeftModel(lm, PromptLearningGenerationTests.Config(method));
        using var _ = pm;
        Assert.All(pm.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains("prompt_encoder.default.", p.name));
        var (first, last) = Train(pm, input);
        Assert.True(last < first, $"{modelName} {method}: loss did not go down: {first} -> {last}");
        foreach (var (name, p) in lm.named_parameters()) TensorAssert.Equal(baseBefore[name], p, $"{method}: base parameter {name} changed");

        Tensor trained;
        using (no_grad()) trained = pm.forward(input with { Labels = null }).Logits!;
        pm.SavePretrained(dir.Path);
        var config = (PromptLearningConfig)PeftConfig.FromPretrained(dir.Path);
        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, PeftModel.WeightsFileName)))
        {
            Assert.Equal([PromptEncoderTuner<PromptLearningConfig>.PromptEmbeddingsKey], file.Keys);
            long width = config is PrefixTuningConfig ? config.NumLayers!.Value * 2L * config.TokenDim!.Value : config.TokenDim!.Value;
            Assert.Equal(new[] { (long)config.NumVirtualTokens, width }, file.GetInfo("prompt_embeddings").Shape.Select(x => (long)x));
        }

        using var again = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName)), dir.Path);
        Assert.Equal(0L, again.GetNbTrainableParameters().trainable);
        using (no_grad())
        {
            long extra = trained.shape[1] - ids.shape[1];
            var logitsMask = extra == 0 ? mask : cat([ones([mask.shape[0], extra], dtype: mask.dtype), mask], 1);
            TensorAssert.Close(trained, again.forward(input with { Labels = null }).Logits!, 1e-5, logitsMask, $"{modelName} {method}: reloaded adapter");
        }
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void Sequence_classification_on_bert_trains_saves_and_reloads(string method)
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        using var f = SafetensorsFile.Open(Fixtures.Reference("bert-tiny"));
        var input = new ModelInput
        {
            InputIds = f.GetTensor("input_ids"),
            AttentionMask = f.GetTensor("attention_mask"),
            TokenTypeIds = f.GetTensor("token_type_ids"),
            Labels = tensor(new long[] { 0, 3, 1 }),
        };
        var model = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"));
        PeftModel pm;
        using (manual_seed(5)) pm = PeftModel.GetPeftModel(model, PromptLearningGenerationTests.Config(method, TaskType.SeqCls));
        using var _ = pm;
        Assert.Contains("classifier", ((PromptLearningConfig)pm.ActivePeftConfig).ModulesToSave!);
        Assert.Contains(pm.named_parameters(), p => p.parameter.requires_grad && p.name.Contains("classifier"));
        var (first, last) = Train(pm, input, steps: 8);
        Assert.True(last < first, $"bert seq-cls {method}: loss did not go down: {first} -> {last}");

        Tensor trained;
        using (no_grad()) trained = pm.forward(input with { Labels = null }).Logits!;
        Assert.Equal(new[] { 3L, 5L }, trained.shape);
        using (no_grad())
        using (pm.DisableAdapter())
        {
            TensorAssert.Close(f.GetTensor("logits"), pm.forward(input with { Labels = null }).Logits!, 1e-4, null, $"{method}: disabled = base model");
        }
        pm.SavePretrained(dir.Path);
        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, PeftModel.WeightsFileName)))
        {
            // PEFT's prompt-learning PeftModel holds the model itself as base_model: no ".model" in the modules_to_save keys.
            Assert.Equal(["base_model.classifier.bias", "base_model.classifier.weight", "prompt_embeddings"], file.Keys.Order(StringComparer.Ordinal));
        }
        using var again = PeftModel.FromPretrained(AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny")), dir.Path);
        using (no_grad()) TensorAssert.Close(trained, again.forward(input with { Labels = null }).Logits!, 1e-5, null, $"bert seq-cls {method}: reloaded adapter");
    }

    [Fact]
    public void Text_init_copies_the_word_embeddings_of_the_tokenized_text()
    {
        using var scope = NewDisposeScope();
        var tokenizer = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        const string text = "Classify the sentiment";
        var ids = tokenizer.Encode(text);
        foreach (int n in new[] { ids.Count - 1, ids.Count * 2 + 1 })   // cut and repeated
        {
            var config = new PromptTuningConfig
            {
                TaskType = TaskType.CausalLM, NumVirtualTokens = n, PromptTuningInit = PromptTuningInit.Text,
                PromptTuningInitText = text, TokenizerNameOrPath = Fixtures.Model("opt-tiny"), InitTokenizer = t => tokenizer.Encode(t),
            };
            using var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), config);
            var words = ((IPreTrainedModel)pm.GetBaseModel()).GetInputEmbeddings();
            var expectedIds = tensor(Enumerable.Range(0, n).Select(i => (long)ids[i % ids.Count]).ToArray());
            var tuner = (PromptEncoderTuner<PromptTuningConfig>)pm.Tuner;
            TensorAssert.Equal(words.forward(expectedIds).detach(), tuner.EncoderOf("default").Embedding.weight!.detach(), $"TEXT init with {n} virtual tokens");
        }
        var noTokenizer = new PromptTuningConfig
        {
            TaskType = TaskType.CausalLM, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.Text,
            PromptTuningInitText = text, TokenizerNameOrPath = "some/tokenizer",
        };
        using (var untokenized = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), noTokenizer))
        {
            var e = Assert.Throws<InvalidOperationException>(() => untokenized.forward(new ModelInput { InputIds = tensor(new long[,] { { 5, 6 } }) }));
            Assert.Contains("some/tokenizer", e.Message);
            using var nowhere = new TempDir();
            Assert.Throws<InvalidOperationException>(() => untokenized.SavePretrained(nowhere.Path));
            Assert.False(File.Exists(Path.Combine(nowhere.Path, PeftModel.WeightsFileName)));
        }
    }

    [Fact]
    public void A_text_initialised_adapter_reloads_trainable_without_a_tokenizer()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var tokenizer = AutoTokenizer.FromPretrained(Fixtures.Model("opt-tiny"));
        var config = new PromptTuningConfig
        {
            TaskType = TaskType.CausalLM, NumVirtualTokens = 4, PromptTuningInit = PromptTuningInit.Text,
            PromptTuningInitText = "Summarize:", TokenizerNameOrPath = Fixtures.Model("opt-tiny"), InitTokenizer = t => tokenizer.Encode(t),
        };
        var input = new ModelInput { InputIds = tensor(new long[,] { { 5, 6, 7 } }) };
        Tensor expected;
        using (var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), config))
        {
            pm.SavePretrained(dir.Path);
            using (no_grad()) expected = pm.forward(input).Logits!;
        }
        // Resuming training: the saved config says TEXT, FromPretrained has no tokenizer, the saved weights replace the init.
        using var again = PeftModel.FromPretrained(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), dir.Path, isTrainable: true);
        Assert.Equal(4L * 64, again.GetNbTrainableParameters().trainable);
        using (no_grad()) TensorAssert.Close(expected, again.forward(input).Logits!, 1e-6, null, "TEXT adapter reloaded trainable");
    }

    [Fact]
    public void Sample_vocab_init_rows_are_word_embeddings()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny")), PromptLearningGenerationTests.Config("prompt-tuning-sample-vocab"));
        var table = ((IPreTrainedModel)pm.GetBaseModel()).GetInputEmbeddings().weight!.detach();          // [V, H]
        var rows = ((PromptEncoderTuner<PromptTuningConfig>)pm.Tuner).EncoderOf("default").Embedding.weight!.detach(); // [N, H]
        var distances = (rows.unsqueeze(1) - table.unsqueeze(0)).abs().amax(-1);                            // [N, V]
        Assert.True(distances.min(1).values.max().item<float>() == 0f, "every SAMPLE_VOCAB row is a row of the word embedding table");
    }
}
