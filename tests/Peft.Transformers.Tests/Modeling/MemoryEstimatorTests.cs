using Peft.Testing;
using Peft.Transformers.Tests.Models;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

public class MemoryEstimatorTests
{
    private static PretrainedConfig FixtureConfig(string name) => AutoConfig.FromPretrained(Fixtures.Model(name));

    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("qwen2-tiny")]
    [InlineData("opt-tiny")]
    public void WeightBytesEqualTheFootprintOfTheLoadedModel(string name)
    {
        var config = FixtureConfig(name);
        using (var fp32 = ModelTestUtil.Load(name))
            Assert.Equal(fp32.GetMemoryFootprint(), MemoryEstimator.WeightBytes(config, WeightPrecision.Float32));
        using (var bf16 = ModelTestUtil.Load(name, new FromPretrainedOptions { Dtype = ScalarType.BFloat16 }))
            Assert.Equal(bf16.GetMemoryFootprint(), MemoryEstimator.WeightBytes(config, WeightPrecision.BFloat16));
        using (var int8 = ModelTestUtil.Load(name, new FromPretrainedOptions { Quantization = new BitsAndBytesConfig { LoadIn8Bit = true } }))
            Assert.Equal(int8.GetMemoryFootprint(), MemoryEstimator.WeightBytes(config, WeightPrecision.Int8, otherDtype: ScalarType.Float32));
        using var nf4 = ModelTestUtil.Load(name, new FromPretrainedOptions
        {
            Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true },
        });
        double est = MemoryEstimator.WeightBytes(config, WeightPrecision.Nf4, otherDtype: ScalarType.Float32);
        double real = nf4.GetMemoryFootprint();
        Assert.InRange(est / real, 0.99, 1.01);                // only the per-layer JSON length is approximated
    }

    [Fact]
    public void RealSizesFromConfigsAlone()
    {
        var opt67 = AutoConfig.FromJson("""
            {"model_type":"opt","vocab_size":50272,"hidden_size":4096,"ffn_dim":16384,"num_hidden_layers":32,"num_attention_heads":32,
             "max_position_embeddings":2048,"word_embed_proj_dim":4096,"do_layer_norm_before":true,"tie_word_embeddings":true,"torch_dtype":"float16"}
            """, "opt-6.7b/config.json");
        var llama7 = AutoConfig.FromJson("""
            {"model_type":"llama","vocab_size":32000,"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":32,"num_attention_heads":32,
             "num_key_value_heads":32,"max_position_embeddings":4096,"rms_norm_eps":1e-5,"tie_word_embeddings":false,"torch_dtype":"float16"}
            """, "llama-2-7b/config.json");
        var qwen05 = AutoConfig.FromJson("""
            {"model_type":"qwen2","vocab_size":151936,"hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
             "num_key_value_heads":2,"max_position_embeddings":32768,"rms_norm_eps":1e-6,"tie_word_embeddings":true,"torch_dtype":"bfloat16"}
            """, "qwen2.5-0.5b/config.json");
        // parameter counts published for these checkpoints
        Assert.InRange(MemoryEstimator.Count(opt67).All, 6.65e9, 6.67e9);
        Assert.InRange(MemoryEstimator.Count(llama7).All, 6.73e9, 6.75e9);
        Assert.InRange(MemoryEstimator.Count(qwen05).All, 0.49e9, 0.50e9);
        // the seed's arithmetic: OPT-6.7B in fp16 ≈ 12.5 GB (GiB)
        Assert.InRange(MemoryEstimate.GiB(MemoryEstimator.WeightBytes(opt67, WeightPrecision.Float16)), 12.3, 12.5);
        double nf4 = MemoryEstimate.GiB(MemoryEstimator.WeightBytes(llama7, WeightPrecision.Nf4));
        Assert.InRange(nf4, 3.3, 4.0);
        foreach (var (name, c) in new[] { ("OPT-6.7B", opt67), ("Llama-2-7B", llama7), ("Qwen2.5-0.5B", qwen05) })
        {
            var full = MemoryEstimator.Training(c, FineTuningMethod.Full, 1, 512, gradientCheckpointing: false);
            var lora = MemoryEstimator.Training(c, FineTuningMethod.Lora, 1, 512, gradientCheckpointing: true);
            var qlora = MemoryEstimator.Training(c, FineTuningMethod.QLora, 1, 512, gradientCheckpointing: true);
            Assert.True(full.Total > lora.Total && lora.Total > qlora.Total, name);
            Assert.True(qlora.Activations < full.Activations, name);
            Console.WriteLine($"{name}: fp32 {MemoryEstimate.GiB(MemoryEstimator.WeightBytes(c, WeightPrecision.Float32)):F2} GiB, fp16 {MemoryEstimate.GiB(MemoryEstimator.WeightBytes(c, WeightPrecision.Float16)):F2}, " +
                $"int8 {MemoryEstimate.GiB(MemoryEstimator.WeightBytes(c, WeightPrecision.Int8)):F2}, nf4 {MemoryEstimate.GiB(MemoryEstimator.WeightBytes(c, WeightPrecision.Nf4)):F2}; " +
                $"train b=1 s=512: full {MemoryEstimate.GiB(full.Total):F1}, LoRA+gc {MemoryEstimate.GiB(lora.Total):F1}, QLoRA+gc {MemoryEstimate.GiB(qlora.Total):F1} GiB");
        }
    }

    [Fact]
    public void LoraParametersMatchAPeftModel()
    {
        var config = FixtureConfig("llama-tiny");
        using var pm = Peft.Core.PeftModel.GetPeftModel(ModelTestUtil.Load("llama-tiny"),
            new Peft.Core.LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = Peft.Core.TaskType.CausalLM });
        Assert.Equal(pm.GetNbTrainableParameters().trainable, MemoryEstimator.LoraParameters(config, 8, ["q_proj", "v_proj"]));
    }
}
