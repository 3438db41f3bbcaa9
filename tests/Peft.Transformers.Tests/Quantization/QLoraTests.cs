using Peft.Core;
using Peft.Core.Quantization;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Quantization;

/// <summary>
/// QLoRA training, in-place quantization and merging. Sequential (<see cref="Training.GlobalRngCollection"/>): one test
/// builds two adapters under one seed of torch's process-wide generator and compares them.
/// </summary>
[Collection(Training.GlobalRngCollection.Name)]
public class QLoraTests
{
    private static ModelInput Batch()
    {
        var ids = randint(0, 900, [2, 12], generator: new Generator(21));
        var mask = ones(2, 12, dtype: ScalarType.Int64);
        return new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids };
    }

    private static List<(nn.Module Module, string Key, Tensor Value)> QuantizedTensors(nn.Module model) =>
        model.modules().Where(m => m is IQuantizedLinear)
            .SelectMany(m => m.state_dict().Select(kv => (m, kv.Key, kv.Value.clone())))
            .ToList();

    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("opt-tiny")]
    public void QLoraTrainingLowersTheLossAndLeavesQuantizedBaseBitIdentical(string name)
    {
        using var scope = NewDisposeScope();
        var bnb = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true };
        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model(name), new FromPretrainedOptions { Quantization = bnb });
        KbitTraining.PrepareModelForKbitTraining(lm, useGradientCheckpointing: false);
        var before = QuantizedTensors(lm);
        Assert.NotEmpty(before);
        using var pm = PeftModel.GetPeftModel(lm, new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM });
        Assert.All(pm.modules().OfType<LoraLinear>(), l => Assert.IsAssignableFrom<IQuantizedLinear>(l.BaseLayer));
        Assert.All(pm.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains("lora_", p.name));
        Assert.All(pm.named_parameters().Where(p => p.name.Contains("lora_")), p => Assert.Equal(ScalarType.Float32, p.parameter.dtype));
        pm.train();
        var input = Batch();
        var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), 1e-2);
        double first = 0, last = 0;
        for (int step = 0; step < 6; step++)
        {
            using var stepScope = NewDisposeScope();
            opt.zero_grad();
            var loss = pm.forward(input).Loss!;
            loss.backward();
            opt.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first, $"{name}: loss did not go down: {first} -> {last}");
        foreach (var (module, key, value) in before)
        {
            Assert.Contains(module, pm.modules());                              // the same quantized layer is the base of a LoRA layer or untouched
            TensorAssert.Close(value, module.state_dict()[key], 0, what: key);  // bit-identical after training
        }
    }

    [Fact]
    public void QLoraConfigQuantizesInPlaceLikeLoadingIn4BitAndSavesAPlainLoraAdapterThatLoadsOnFloat32()
    {
        using var scope = NewDisposeScope();
        var input = Batch();
        var qcfg = new QLoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"], TaskType = TaskType.CausalLM, InitLoraWeights = LoraInit.Gaussian };

        // GetPeftModel(model, QLoraConfig) on a full-precision model == LoraConfig on the same model loaded in 4-bit
        var fp = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        manual_seed(3);
        using var pm = PeftModel.GetPeftModel(fp, qcfg);
        Assert.True(fp.modules().OfType<Linear4bit>().Count() >= 14);
        var loaded = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"), new FromPretrainedOptions
        {
            Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitUseDoubleQuant = true },
        });
        manual_seed(3);
        using var pm2 = PeftModel.GetPeftModel(loaded, new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj"], TaskType = TaskType.CausalLM, InitLoraWeights = LoraInit.Gaussian });
        using (no_grad())
        {
            pm.eval(); pm2.eval();
            TensorAssert.Close(pm2.forward(input).Logits!, pm.forward(input).Logits!, 0, what: "QLoraConfig vs 4-bit load + LoraConfig");
            foreach (var l in pm.modules().OfType<LoraLinear>()) l.LoraB("default").weight!.normal_(0, 0.1);   // a non-trivial adapter
        }

        using var dir = new TempDir();
        pm.SavePretrained(dir.Path);
        var json = File.ReadAllText(dir.File("adapter_config.json"));
        Assert.Contains("\"peft_type\": \"LORA\"", json);
        Assert.DoesNotContain("QuantType", json);
        Assert.DoesNotContain("quant", json, StringComparison.OrdinalIgnoreCase);

        // The adapter loads on the float32 base; its delta equals the QLoRA model's delta up to the base's quantization
        var base32 = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        using var onFp32 = PeftModel.FromPretrained(base32, dir.Path);
        Assert.Empty(base32.modules().OfType<IQuantizedLinear>());
        using (no_grad())
        {
            var a = pm.modules().OfType<LoraLinear>().First();
            var b = onFp32.modules().OfType<LoraLinear>().First();
            TensorAssert.Close(a.LoraA("default").weight!, b.LoraA("default").weight!, 0, what: "lora_A");
            TensorAssert.Close(a.LoraB("default").weight!, b.LoraB("default").weight!, 0, what: "lora_B");
        }
    }

    [Fact]
    public void MergeAndUnloadReturnsFullPrecisionLinearsOrRequantizes()
    {
        using var scope = NewDisposeScope();
        var input = Batch();
        var cfg = new QLoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["q_proj", "v_proj"], TaskType = TaskType.CausalLM };
        Tensor expected;
        nn.Module merged;
        {
            var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
            var pm = PeftModel.GetPeftModel(lm, cfg);
            using (no_grad()) foreach (var l in pm.modules().OfType<LoraLinear>()) l.LoraB("default").weight!.normal_(0, 0.1);
            pm.eval();
            using (no_grad()) expected = pm.forward(input).Logits!;
            merged = QuantizedMerge.MergeAndUnload(pm);
        }
        Assert.Empty(merged.modules().OfType<IQuantizedLinear>());
        Assert.Empty(merged.modules().OfType<LoraLinear>());
        using (no_grad()) TensorAssert.Close(expected, ((PreTrainedModel)merged).forward(input).Logits!, 1e-4, what: "full-precision merge");

        var lm2 = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        var pm2 = PeftModel.GetPeftModel(lm2, cfg);
        using (no_grad()) foreach (var l in pm2.modules().OfType<LoraLinear>()) l.LoraB("default").weight!.normal_(0, 0.1);
        var log = new ListLogger();
        var requantized = QuantizedMerge.MergeAndUnload(pm2, requantize: true, logger: log);
        Assert.Contains(QuantizedMerge.RoundingWarning, log.Messages);
        Assert.NotEmpty(requantized.modules().OfType<Linear4bit>());
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Messages { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }

    [Fact]
    public void PrepareModelForKbitTrainingFreezesAndCastsHalfPrecisionOutsideQuantizedLayers()
    {
        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model("qwen2-tiny"), new FromPretrainedOptions
        {
            Dtype = ScalarType.BFloat16,
            Quantization = new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = "nf4", Bnb4BitComputeDtype = ScalarType.BFloat16 },
        });
        using (lm)
        {
            Assert.Contains(lm.modules().OfType<Linear4bit>(), l => l.Bias?.dtype == ScalarType.BFloat16);
            KbitTraining.PrepareModelForKbitTraining(lm);
            Assert.All(lm.parameters(), p => Assert.False(p.requires_grad));
            // PEFT casts every fp16/bf16 parameter but Params4bit: norms, embeddings, head and the quantized layers' biases
            var floats = lm.parameters().Where(p => p.is_floating_point()).ToList();
            Assert.NotEmpty(floats);
            Assert.All(floats, p => Assert.Equal(ScalarType.Float32, p.dtype));
            Assert.All(lm.modules().OfType<Linear4bit>().Where(l => l.Bias is not null), l => Assert.Equal(ScalarType.Float32, l.Bias!.dtype));
            Assert.Contains(lm.named_parameters(), p => p.parameter.dtype == ScalarType.Byte);
            Assert.True(((IGradientCheckpointing)lm).IsGradientCheckpointing);
            // enable_input_require_grads: with every parameter frozen, the training forward still builds a graph
            Assert.True(((IInputRequireGrads)lm).InputRequireGrads);
            lm.train();
            using var scope = NewDisposeScope();
            var ids = tensor(new long[] { 3, 7, 11, 5 }).unsqueeze(0);
            Assert.True(lm.forward(new ModelInput { InputIds = ids }).Logits!.requires_grad);
            ((IInputRequireGrads)lm).DisableInputRequireGrads();
            Assert.False(lm.forward(new ModelInput { InputIds = ids }).Logits!.requires_grad);
        }
    }

    /// <summary>
    /// PEFT counts a bnb Params4bit as numel · 2 (get_nb_trainable_parameters), so a LoRA model on a 4-bit base reports
    /// the same trainable and total counts as on its float32 base; an int8 base counts its int8 weights as they are.
    /// </summary>
    [Theory]
    [InlineData("llama-tiny", "nf4")]
    [InlineData("gpt2-tiny", "fp4")]
    [InlineData("opt-tiny", "int8")]
    public void TrainableParameterCountsOnAQuantizedBaseEqualPefts(string name, string mode)
    {
        var lora = new LoraConfig { R = 4, LoraAlpha = 8, TaskType = TaskType.CausalLM, TargetModules = name == "gpt2-tiny" ? ["c_attn"] : ["q_proj", "v_proj"] };
        var bnb = mode == "int8" ? new BitsAndBytesConfig { LoadIn8Bit = true } : new BitsAndBytesConfig { LoadIn4Bit = true, Bnb4BitQuantType = mode };
        using var fp = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model(name)), lora);
        using var q = PeftModel.GetPeftModel(AutoModelForCausalLM.FromPretrained(Fixtures.Model(name), new FromPretrainedOptions { Quantization = bnb }), lora);
        Assert.Equal(fp.GetNbTrainableParameters(), q.GetNbTrainableParameters());
        Assert.Equal(fp.PrintTrainableParameters(), q.PrintTrainableParameters());
    }
}
