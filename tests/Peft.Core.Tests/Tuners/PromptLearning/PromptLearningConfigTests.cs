using System.Text.Json.Nodes;

namespace Peft.Core.Tests.Tuners.PromptLearning;

/// <summary>The prompt-learning configs: PEFT's keys and defaults, validation messages, and the sizes filled from the model.</summary>
public class PromptLearningConfigTests
{
    private static readonly TransformerDimensions Gqa = new(NumLayers: 3, NumAttentionHeads: 8, NumKeyValueHeads: 2, HiddenSize: 64, HeadDim: 8);

    [Fact]
    public void Json_has_peft_keys_and_round_trips()
    {
        var config = new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 7, PromptTuningInit = PromptTuningInit.Text, PromptTuningInitText = "hi", TokenizerNameOrPath = "tok" };
        var json = JsonNode.Parse(config.ToJson())!.AsObject();
        foreach (var key in new[] { "num_virtual_tokens", "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers", "modules_to_save",
                     "prompt_tuning_init", "prompt_tuning_init_text", "tokenizer_name_or_path", "tokenizer_kwargs", "auto_mapping", "task_type", "inference_mode" })
            Assert.True(json.ContainsKey(key), key);
        Assert.Equal("PROMPT_TUNING", json["peft_type"]!.GetValue<string>());
        var back = Assert.IsType<PromptTuningConfig>(PeftConfig.FromJson(config.ToJson()));
        Assert.Equal(7, back.NumVirtualTokens);
        Assert.Equal("TEXT", json["prompt_tuning_init"]!.GetValue<string>());
        Assert.Equal(PromptTuningInit.Text, back.PromptTuningInit);

        var prefix = Assert.IsType<PrefixTuningConfig>(PeftConfig.FromJson(new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PrefixProjection = true, InitWeights = "zero" }.ToJson()));
        Assert.True(prefix.PrefixProjection);
        Assert.Equal("zero", prefix.InitWeights);
        var ptuning = Assert.IsType<PromptEncoderConfig>(PeftConfig.FromJson(new PromptEncoderConfig { TaskType = TaskType.SeqCls, NumVirtualTokens = 2, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm }.ToJson()));
        Assert.Equal(PromptEncoderReparameterizationType.Lstm, ptuning.EncoderReparameterizationType);
        Assert.Equal(2, ptuning.EncoderNumLayers);
        Assert.True(ptuning.IsPromptLearning);
    }

    [Fact]
    public void Sizes_are_filled_from_the_model_as_peft_does()
    {
        var prompt = (PromptTuningConfig)new PromptTuningConfig { NumVirtualTokens = 4 }.WithModelDimensions(Gqa);
        Assert.Equal((3, 64, 8, 1), (prompt.NumLayers, prompt.TokenDim, prompt.NumAttentionHeads, prompt.NumTransformerSubmodules));
        var ptuning = (PromptEncoderConfig)new PromptEncoderConfig { NumVirtualTokens = 4 }.WithModelDimensions(Gqa);
        Assert.Equal(64, ptuning.EncoderHiddenSize);
        // Prefix tuning on a GQA model: one key/value head set (peft#1901).
        var prefix = (PrefixTuningConfig)new PrefixTuningConfig { NumVirtualTokens = 4 }.WithModelDimensions(Gqa);
        Assert.Equal((16, 2, 16), (prefix.TokenDim, prefix.NumAttentionHeads, prefix.EncoderHiddenSize));
        var given = (PrefixTuningConfig)new PrefixTuningConfig { NumVirtualTokens = 4, EncoderHiddenSize = 5, NumLayers = 1 }.WithModelDimensions(Gqa);
        Assert.Equal((5, 1), (given.EncoderHiddenSize, given.NumLayers));
    }

    [Theory]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":0}""", "num_virtual_tokens")]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":3,"prompt_tuning_init":"WORDS"}""", "prompt_tuning_init")]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":3,"prompt_tuning_init":"TEXT","prompt_tuning_init_text":"x"}""", "tokenizer_name_or_path")]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":3,"prompt_tuning_init":"TEXT","tokenizer_name_or_path":"t"}""", "prompt_tuning_init_text")]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":3,"tokenizer_kwargs":{"a":1}}""", "tokenizer_kwargs")]
    [InlineData("""{"peft_type":"P_TUNING","num_virtual_tokens":3,"encoder_reparameterization_type":"GRU"}""", "encoder_reparameterization_type")]
    [InlineData("""{"peft_type":"P_TUNING","num_virtual_tokens":3,"encoder_dropout":1.5}""", "encoder_dropout")]
    [InlineData("""{"peft_type":"PREFIX_TUNING","num_virtual_tokens":3,"init_weights":"ones"}""", "init_weights")]
    [InlineData("""{"peft_type":"PREFIX_TUNING","num_virtual_tokens":3,"token_dim":10,"num_attention_heads":4}""", "token_dim")]
    [InlineData("""{"peft_type":"PREFIX_TUNING","num_virtual_tokens":3,"token_dim":-1}""", "token_dim")]
    public void Invalid_values_fail_naming_the_key_and_the_file(string json, string key)
    {
        var e = Assert.Throws<InvalidDataException>(() => PeftConfig.FromJson(json, "some/adapter_config.json"));
        Assert.Contains(key, e.Message);
        Assert.Contains("some/adapter_config.json", e.Message);
    }

    [Theory]
    [InlineData("""{"peft_type":"PROMPT_TUNING","num_virtual_tokens":3,"num_transformer_submodules":2}""", "num_transformer_submodules")]
    [InlineData("""{"peft_type":"PREFIX_TUNING","num_virtual_tokens":3,"task_type":"SEQ_2_SEQ_LM"}""", "SEQ_2_SEQ_LM")]
    public void Unsupported_settings_fail_naming_them(string json, string what)
    {
        var e = Assert.Throws<NotSupportedException>(() => PeftConfig.FromJson(json));
        Assert.Contains(what, e.Message);
    }
}
