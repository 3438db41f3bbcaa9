using Peft.Core.Tuners;
using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners.PromptLearning;

/// <summary>
/// What the prompt-learning tuners hand to the model (PEFT's <c>PeftModelForCausalLM</c> / <c>ForSequenceClassification</c>
/// forward and <c>prepare_inputs_for_generation</c>), the encoders' PEFT parameter names, adapters side by side, and
/// strict loading of <c>prompt_embeddings</c>.
/// </summary>
public class PromptLearningTunerTests
{
    private static readonly long[,] Ids = { { 1, 2, 3, 4 }, { 5, 6, 7, 8 } };

    private static ModelInput Input(bool labels = true) => new()
    {
        InputIds = tensor(Ids),
        AttentionMask = tensor(new long[,] { { 0, 1, 1, 1 }, { 1, 1, 1, 1 } }),
        PositionIds = tensor(new long[,] { { 1, 0, 1, 2 }, { 0, 1, 2, 3 } }),
        TokenTypeIds = zeros([2, 4], dtype: ScalarType.Int64),
        Labels = labels ? tensor(Ids) : null,
    };

    [Theory]
    [InlineData("PROMPT_TUNING")]
    [InlineData("P_TUNING")]
    public void Virtual_tokens_are_prepended_with_mask_and_labels_as_peft(string type)
    {
        using var scope = NewDisposeScope();
        var lm = new TinyPromptLm();
        PromptLearningConfig config = type == "PROMPT_TUNING"
            ? new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3 }
            : new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3, EncoderHiddenSize = 4 };
        using var pm = PeftModel.GetPeftModel(lm, config);
        var output = pm.forward(Input());
        var seen = lm.LastInput!;
        Assert.Null(seen.InputIds);
        Assert.Null(seen.PositionIds);                                   // PEFT drops position ids
        Assert.Null(seen.TokenTypeIds);                                  // and token type ids for causal LM
        Assert.Equal(new long[] { 2, 7, 8 }, seen.InputsEmbeds!.shape);
        TensorAssert.Equal(tensor(new long[,] { { 1, 1, 1, 0, 1, 1, 1 }, { 1, 1, 1, 1, 1, 1, 1 } }), seen.AttentionMask!, "mask");
        TensorAssert.Equal(tensor(new long[,] { { -100, -100, -100, 1, 2, 3, 4 }, { -100, -100, -100, 5, 6, 7, 8 } }), seen.Labels!, "labels");
        TensorAssert.Equal(lm.GetInputEmbeddings().forward(tensor(Ids)), seen.InputsEmbeds![.., 3..], "word embeddings after the virtual tokens");
        TensorAssert.Equal(seen.InputsEmbeds[0, ..3], seen.InputsEmbeds[1, ..3], "the same virtual tokens in every row");
        Assert.NotNull(output.Loss);
        Assert.Equal(new long[] { 2, 7, 20 }, output.Logits!.shape);

        using (pm.DisableAdapter())
        {
            var plain = Input();
            pm.forward(plain);
            Assert.Same(plain.InputIds, lm.LastInput!.InputIds);
        }
    }

    [Fact]
    public void Sequence_classification_keeps_labels_and_extends_token_types_with_zeros()
    {
        using var scope = NewDisposeScope();
        var lm = new TinyPromptLm();
        using var pm = PeftModel.GetPeftModel(lm, new PromptTuningConfig { TaskType = TaskType.SeqCls, NumVirtualTokens = 2 });
        var input = Input() with { TokenTypeIds = ones([2, 4], dtype: ScalarType.Int64), Labels = tensor(new long[] { 1, 0 }) };
        pm.Tuner.Forward(input with { Labels = null });
        var seen = lm.LastInput!;
        Assert.Null(seen.Labels);
        TensorAssert.Equal(tensor(new long[,] { { 0, 0, 1, 1, 1, 1 }, { 0, 0, 1, 1, 1, 1 } }), seen.TokenTypeIds!, "token_type_ids");
    }

    [Fact]
    public void Prefix_tuning_passes_a_filled_cache_shifted_positions_and_an_extended_mask()
    {
        using var scope = NewDisposeScope();
        var lm = new TinyPromptLm();
        using var pm = PeftModel.GetPeftModel(lm, new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 3 });
        var config = (PrefixTuningConfig)pm.ActivePeftConfig;
        Assert.Equal((4, 2, 2), (config.TokenDim!.Value, config.NumAttentionHeads!.Value, config.NumLayers!.Value)); // GQA: 2 kv heads of 2
        var output = pm.forward(Input());
        var seen = lm.LastInput!;
        TensorAssert.Equal(tensor(Ids), seen.InputIds!, "input ids passed on");
        Assert.Null(seen.InputsEmbeds);
        Assert.Equal([3L, 3L], lm.PastLengths);
        TensorAssert.Equal(tensor(new long[,] { { 4, 3, 4, 5 }, { 3, 4, 5, 6 } }), seen.PositionIds!, "position ids + num_virtual_tokens");
        Assert.Equal(new long[] { 2, 7 }, seen.AttentionMask!.shape);
        Assert.Null(output.PastKeyValues);                               // made for this call, disposed (no UseCache)

        // The cache rows are the flattened prefix: [N, 2L·H·D] viewed [N, 2L, H, D], layer l key = slot 2l, value = 2l + 1.
        var table = ((PrefixTuningModel)pm.Tuner).EncoderOf("default").Embedding.weight!.detach();  // [3, 16]
        using var kept = pm.forward(Input() with { UseCache = true }).PastKeyValues!;
        var view = table.view(3, 4, 2, 2).permute(1, 2, 0, 3);                                            // [2L, H, N, D]
        for (int l = 0; l < 2; l++)
        {
            TensorAssert.Equal(view[2 * l].unsqueeze(0).expand(2, -1, -1, -1), kept[l]!.Value.Key.detach(), $"layer {l} key");
            TensorAssert.Equal(view[2 * l + 1].unsqueeze(0).expand(2, -1, -1, -1), kept[l]!.Value.Value.detach(), $"layer {l} value");
        }
    }

    [Fact]
    public void Encoders_have_peft_parameter_names()
    {
        using var scope = NewDisposeScope();
        static string[] Names(PromptLearningConfig c)
        {
            using var pm = PeftModel.GetPeftModel(new TinyPromptLm(), c);
            return pm.named_parameters().Where(p => p.name.Contains("prompt_encoder")).Select(p => p.name[(p.name.IndexOf("prompt_encoder", StringComparison.Ordinal))..]).ToArray();
        }
        Assert.Equal(["prompt_encoder.default.embedding.weight"], Names(new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }));
        Assert.Equal(["prompt_encoder.default.embedding.weight", "prompt_encoder.default.mlp_head.0.weight", "prompt_encoder.default.mlp_head.0.bias",
            "prompt_encoder.default.mlp_head.2.weight", "prompt_encoder.default.mlp_head.2.bias", "prompt_encoder.default.mlp_head.4.weight", "prompt_encoder.default.mlp_head.4.bias"],
            Names(new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }));
        var lstm = Names(new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm, EncoderNumLayers = 1 });
        Assert.Contains("prompt_encoder.default.lstm_head.weight_ih_l0", lstm);
        Assert.Contains("prompt_encoder.default.lstm_head.weight_hh_l0_reverse", lstm);
        Assert.Contains("prompt_encoder.default.mlp_head.2.bias", lstm);
        Assert.Equal(["prompt_encoder.default.embedding.weight", "prompt_encoder.default.transform.0.weight", "prompt_encoder.default.transform.0.bias",
            "prompt_encoder.default.transform.2.weight", "prompt_encoder.default.transform.2.bias"],
            Names(new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PrefixProjection = true }));
        // Inference mode: only the table, which holds the saved encoder output.
        Assert.Equal(["prompt_encoder.default.embedding.weight"], Names(new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, InferenceMode = true }));
    }

    [Fact]
    public void Two_adapters_switch_delete_and_load_strictly()
    {
        using var scope = NewDisposeScope();
        var lm = new TinyPromptLm();
        using var pm = PeftModel.GetPeftModel(lm, new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 });
        pm.AddAdapter("b", new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 5 });
        Assert.Equal(["default"], pm.ActiveAdapters);
        pm.forward(Input());
        Assert.Equal(6, lm.LastInput!.InputsEmbeds!.shape[1]);
        pm.SetAdapter("b");
        pm.forward(Input());
        Assert.Equal(9, lm.LastInput!.InputsEmbeds!.shape[1]);
        Assert.All(pm.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains(".b.", p.name));
        Assert.Throws<NotSupportedException>(() => pm.Tuner.SetAdapter(["default", "b"]));
        Assert.Throws<ArgumentException>(() => pm.AddAdapter("c", new LoraConfig { TargetModules = ["lm_head"] }));

        var state = pm.Tuner.GetAdapterStateDict("b");
        Assert.Equal(["prompt_embeddings"], state.Keys);
        var wrong = new Dictionary<string, Tensor> { ["prompt_embeddings"] = zeros(4, 8) };
        var e = Assert.Throws<InvalidDataException>(() => pm.Tuner.LoadAdapterStateDict(wrong, "b", "x.safetensors"));
        Assert.Contains("[4, 8]", e.Message);
        var extra = new Dictionary<string, Tensor> { ["prompt_embeddings"] = zeros(5, 8), ["prompt_encoder.x"] = zeros(1) };
        Assert.Contains("prompt_encoder.x", Assert.Throws<InvalidDataException>(() => pm.Tuner.LoadAdapterStateDict(extra, "b", "x.safetensors")).Message);
        Assert.Contains("prompt_embeddings", Assert.Throws<InvalidDataException>(() => pm.Tuner.LoadAdapterStateDict(new Dictionary<string, Tensor>(), "b", "x.safetensors")).Message);

        pm.DeleteAdapter("b");
        Assert.Equal(["default"], pm.ActiveAdapters);
        Assert.DoesNotContain(pm.named_parameters(), p => p.name.Contains(".b."));
        pm.forward(Input());
        Assert.Equal(6, lm.LastInput!.InputsEmbeds!.shape[1]);
    }

    [Fact]
    public void A_projected_prefix_cannot_load_a_flattened_prefix_while_training_and_models_without_sizes_are_rejected()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyPromptLm(), new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PrefixProjection = true });
        var saved = pm.Tuner.GetAdapterStateDict("default");
        Assert.Equal(new long[] { 2, 16 }, saved["prompt_embeddings"].shape);  // the projection's output, [N, 2L·token_dim]
        var e = Assert.Throws<InvalidDataException>(() => pm.Tuner.LoadAdapterStateDict(saved, "default", "p.safetensors"));
        Assert.Contains("isTrainable", e.Message);

        Assert.Throws<NotSupportedException>(() => PeftModel.GetPeftModel(new TinyMlp(), new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 }));
        Assert.Throws<NotSupportedException>(() => PeftModel.GetPeftModel(new TinyPromptLm(), new PromptTuningConfig { NumVirtualTokens = 2 }));
    }
}
