using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers;
using Peft.Transformers.Models.Bert;
using Peft.Transformers.Models.Llama;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>Configs, Auto loaders, options, hub cache resolution, heads newly initialised, sharded files.</summary>
public sealed class LoadingTests
{
    public static TheoryData<string> Models => new(Fixtures.TinyModels);

    private sealed class ListLogger : ILogger
    {
        public List<string> Messages { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Config_round_trips_every_key(string name)
    {
        var path = Path.Combine(Fixtures.Model(name), "config.json");
        var config = AutoConfig.FromPretrained(Fixtures.Model(name));
        var original = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        var written = JsonNode.Parse(config.ToJson())!.AsObject();
        foreach (var (key, value) in original)
        {
            Assert.True(written.ContainsKey(key), $"{name}: key '{key}' lost");
            Assert.True(SameJson(value, written[key]), $"{name}: '{key}' was {value?.ToJsonString()} and is written as {written[key]?.ToJsonString()}");
        }
    }

    private static bool SameJson(JsonNode? a, JsonNode? b) => (a, b) switch
    {
        (null, null) => true,
        (JsonObject x, JsonObject y) => x.Count == y.Count && x.All(kv => y.ContainsKey(kv.Key) && SameJson(kv.Value, y[kv.Key])),
        (JsonArray x, JsonArray y) => x.Count == y.Count && x.Zip(y).All(p => SameJson(p.First, p.Second)),
        (JsonValue x, JsonValue y) when x.GetValueKind() == System.Text.Json.JsonValueKind.Number && y.GetValueKind() == System.Text.Json.JsonValueKind.Number
            => x.GetValue<double>() == y.GetValue<double>(),
        _ => JsonNode.DeepEquals(a, b),
    };

    [Fact]
    public void AutoConfig_dispatches_on_model_type_and_reads_hf_fields()
    {
        var llama = Assert.IsType<LlamaConfig>(AutoConfig.FromPretrained(Fixtures.Model("llama-tiny")));
        Assert.Equal(2, llama.KeyValueHeads);
        Assert.Equal(16, llama.HeadDim);
        Assert.Equal(10000.0, llama.EffectiveRopeTheta);
        Assert.False(llama.TieWordEmbeddings);
        var qwen = Assert.IsType<Qwen2Config>(AutoConfig.FromPretrained(Fixtures.Model("qwen2-tiny")));
        Assert.Equal(1000000.0, qwen.EffectiveRopeTheta);
        var bert = Assert.IsType<BertConfig>(AutoConfig.FromPretrained(Fixtures.Model("bert-ner-tiny")));
        Assert.Equal(9, bert.NumLabels);
        Assert.Equal("B-PER", bert.Id2Label![1]);
        Assert.IsType<GPT2Config>(AutoConfig.FromPretrained(Fixtures.Model("gpt2-tiny")));
        var opt = Assert.IsType<OPTConfig>(AutoConfig.FromPretrained(Fixtures.Model("opt-tiny")));
        Assert.Equal([2], opt.EosTokenId!);
    }

    [Fact]
    public void Unknown_model_type_and_missing_config_fail_with_the_path()
    {
        var e = Assert.Throws<NotSupportedException>(() => AutoConfig.FromJson("{\"model_type\": \"mamba\"}", "x/config.json"));
        Assert.Contains("mamba", e.Message);
        Assert.Contains("x/config.json", e.Message);
        using var tmp = new TempDir();
        var f = Assert.Throws<FileNotFoundException>(() => AutoConfig.FromPretrained(tmp.Path));
        Assert.Contains(tmp.Path, f.Message);
    }

    [Fact]
    public void Hub_id_resolves_through_the_hf_cache_layout()
    {
        using var home = new TempDir();
        var repo = Path.Combine(home.Path, "hub", "models--tiny-org--opt-tiny");
        var snapshot = Path.Combine(repo, "snapshots", "0123456789abcdef0123456789abcdef01234567");
        Directory.CreateDirectory(snapshot);
        foreach (var file in Directory.GetFiles(Fixtures.Model("opt-tiny"))) File.Copy(file, Path.Combine(snapshot, Path.GetFileName(file)));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), "0123456789abcdef0123456789abcdef01234567");
        var old = (Environment.GetEnvironmentVariable("HF_HOME"), Environment.GetEnvironmentVariable("HF_HUB_CACHE"));
        try
        {
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", null);
            Environment.SetEnvironmentVariable("HF_HOME", home.Path);
            Assert.Equal(snapshot, HubCache.ResolveModelDir("tiny-org/opt-tiny"));
            Assert.Equal(snapshot, HubCache.ResolveModelDir("tiny-org/opt-tiny", new FromPretrainedOptions { Revision = "0123456789abcdef0123456789abcdef01234567" }));
            using var scope = torch.NewDisposeScope();
            using var model = AutoModelForCausalLM.FromPretrained("tiny-org/opt-tiny", new FromPretrainedOptions { LocalFilesOnly = true });
            Assert.Equal("tiny-org/opt-tiny", model.NameOrPath);
            var r = Reference("opt-tiny");
            TensorAssert.Close(r["logits"], model.forward(ReferenceInput("opt-tiny", r)).Logits!, 1e-4, r["attention_mask"], "opt via hub cache");
            var missing = Assert.ThrowsAny<DirectoryNotFoundException>(() => AutoModelForCausalLM.FromPretrained("tiny-org/not-there"));
            Assert.Contains("models--tiny-org--not-there", missing.Message);
            Assert.ThrowsAny<DirectoryNotFoundException>(() => HubCache.ResolveModelDir("tiny-org/opt-tiny", new FromPretrainedOptions { Revision = "v9" }));
        }
        finally
        {
            Environment.SetEnvironmentVariable("HF_HOME", old.Item1);
            Environment.SetEnvironmentVariable("HF_HUB_CACHE", old.Item2);
        }
    }

    [Fact]
    public void New_classification_head_is_reported_and_initialised()
    {
        var log = new ListLogger();
        using var model = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("llama-tiny"), new FromPretrainedOptions { NumLabels = 3, Logger = log });
        Assert.IsType<LlamaForSequenceClassification>(model);
        Assert.Equal(["score.weight"], model.MissingKeys);
        Assert.Equal(["lm_head.weight"], model.UnexpectedKeys);
        Assert.Contains(log.Messages, m => m.Contains("newly initialized") && m.Contains("score.weight"));
        Assert.Contains(log.Messages, m => m.Contains("not used") && m.Contains("lm_head.weight"));
        var std = model.state_dict()["score.weight"].std().item<float>();
        Assert.InRange(std, 0.01, 0.03);   // HF init: N(0, initializer_range = 0.02)

        // pooled at the last non-pad token of each row (right padding in the reference; pad id set for the test)
        using var scope = torch.NewDisposeScope();
        var r = Reference("llama-tiny");
        var ids = r["input_ids"].clone();
        var mask = r["attention_mask"];
        ids.masked_fill_(mask.eq(0), 0);
        var cfg = (AutoConfig.FromPretrained(Fixtures.Model("llama-tiny")) with { PadTokenId = 0 }).WithNumLabels(3);
        var padded = (LlamaForSequenceClassification)AutoModelForSequenceClassification.FromConfig(cfg);
        padded.LoadWeights(Fixtures.Model("llama-tiny"));
        padded.eval();
        var o = padded.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = torch.tensor(new long[] { 0, 2, 1 }) });
        Assert.Equal([3L, 3L], o.Logits!.shape);
        var last = mask.sum(1) - 1;
        for (int b = 0; b < 3; b++)
        {
            var h = o.LastHiddenState![b, last[b].item<long>()];
            var expected = torch.nn.functional.linear(h.unsqueeze(0), padded.state_dict()["score.weight"])[0];
            TensorAssert.Close(expected, o.Logits[b], 1e-5, null, $"row {b}");
        }
        Assert.NotNull(o.Loss);
        padded.Dispose();
    }

    [Fact]
    public void AutoModel_strips_the_head_prefix_and_pooler_is_new_for_ner()
    {
        using var scope = torch.NewDisposeScope();
        using var bert = AutoModel.FromPretrained(Fixtures.Model("bert-tiny"));
        Assert.IsType<BertModel>(bert);
        Assert.Equal(["classifier.bias", "classifier.weight"], bert.UnexpectedKeys.Order());
        Assert.Empty(bert.MissingKeys);
        var r = Reference("bert-tiny");
        TensorAssert.Close(r["last_hidden_state"], bert.forward(ReferenceInput("bert-tiny", r)).LastHiddenState!, 1e-4, r["attention_mask"], "BertModel");

        using var ner = AutoModel.FromPretrained(Fixtures.Model("bert-ner-tiny"));
        Assert.Equal(["pooler.dense.bias", "pooler.dense.weight"], ner.MissingKeys.Order());

        using var llama = AutoModel.FromPretrained(Fixtures.Model("llama-tiny"));
        Assert.IsType<LlamaModel>(llama);
        var rl = Reference("llama-tiny");
        TensorAssert.Close(rl["last_hidden_state"], llama.forward(ReferenceInput("llama-tiny", rl)).LastHiddenState!, 1e-4, rl["attention_mask"], "LlamaModel");

        using var mlm = AutoModelForMaskedLM.FromPretrained(Fixtures.Model("bert-tiny"));
        Assert.IsType<BertForMaskedLM>(mlm);
        Assert.Equal(["cls.predictions.bias", "cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.dense.bias", "cls.predictions.transform.dense.weight"], mlm.MissingKeys.Order(StringComparer.Ordinal));
        var mo = mlm.forward(ReferenceInput("bert-tiny", r));
        Assert.Equal([3L, 30L, 1000L], mo.Logits!.shape);
    }

    [Theory]
    [InlineData(torch.ScalarType.Float16)]
    [InlineData(torch.ScalarType.BFloat16)]
    public void Loads_in_half_precision_close_to_float32(torch.ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("qwen2-tiny"), new FromPretrainedOptions { Dtype = dtype, Device = torch.CPU });
        Assert.All(model.parameters(), p => Assert.Equal(dtype, p.dtype));
        var r = Reference("qwen2-tiny");
        var logits = model.forward(ReferenceInput("qwen2-tiny", r)).Logits!;
        Assert.Equal(dtype, logits.dtype);
        var err = (logits.to_type(torch.ScalarType.Float32) - r["logits"]).abs().masked_select(r["attention_mask"].unsqueeze(-1).expand_as(r["logits"]).to_type(torch.ScalarType.Bool));
        var scale = r["logits"].abs().max().item<float>();
        Assert.True(err.max().item<float>() < 0.1 * scale, $"{dtype}: max error {err.max().item<float>()} vs scale {scale}");
        Assert.Equal(model.NumParameters() * 2, model.GetMemoryFootprint());
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Parameter_count_and_footprint_match_the_checkpoint(string name)
    {
        using var model = Load(name);
        using var f = SafetensorsFile.Open(Path.Combine(Fixtures.Model(name), "model.safetensors"));
        long n = f.Tensors.Sum(t => t.NumElements);
        Assert.Equal(n, model.NumParameters());
        Assert.Equal(n * 4, model.GetMemoryFootprint());
        foreach (var p in model.parameters()) p.requires_grad = false;
        Assert.Equal(0, model.NumParameters(onlyTrainable: true));
    }

    [Fact]
    public void Sharded_checkpoint_loads_like_the_single_file()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        var src = Fixtures.Model("llama-tiny");
        File.Copy(Path.Combine(src, "config.json"), tmp.File("config.json"));
        using (var f = SafetensorsFile.Open(Path.Combine(src, "model.safetensors")))
        {
            var names = f.Keys.ToList();
            var first = names.Take(names.Count / 2).ToList();
            var second = names.Skip(names.Count / 2).ToList();
            SafetensorsWriter.Copy(f, tmp.File("model-00001-of-00002.safetensors"), first);
            SafetensorsWriter.Copy(f, tmp.File("model-00002-of-00002.safetensors"), second);
            var map = new JsonObject();
            foreach (var k in first) map[k] = "model-00001-of-00002.safetensors";
            foreach (var k in second) map[k] = "model-00002-of-00002.safetensors";
            File.WriteAllText(tmp.File("model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        }
        using var model = AutoModelForCausalLM.FromPretrained(tmp.Path);
        Assert.Empty(model.MissingKeys);
        var r = Reference("llama-tiny");
        TensorAssert.Close(r["logits"], model.forward(ReferenceInput("llama-tiny", r)).Logits!, 1e-4, r["attention_mask"], "sharded");
    }

    [Fact]
    public void Wrong_shape_in_checkpoint_names_the_key()
    {
        using var tmp = new TempDir();
        var src = Fixtures.Model("gpt2-tiny");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        json["n_inner"] = 128;
        File.WriteAllText(tmp.File("config.json"), json.ToJsonString());
        File.Copy(Path.Combine(src, "model.safetensors"), tmp.File("model.safetensors"));
        var e = Assert.Throws<InvalidDataException>(() => AutoModelForCausalLM.FromPretrained(tmp.Path));
        Assert.Contains("transformer.h.0.mlp.c_fc.", e.Message);
        Assert.Contains("[128", e.Message);
    }

    [Fact]
    public void Generation_defaults_come_from_generation_config_json()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("llama-tiny"));
        var g = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model("llama-tiny"), "generation_config.json")))!.AsObject();
        Assert.Equal(g["eos_token_id"]!.GetValue<int>(), model.GenerationConfig.EosTokenId);
        Assert.Equal(g["bos_token_id"]!.GetValue<int>(), model.GenerationConfig.BosTokenId);
        Assert.True(model.CanGenerate);
        using var bert = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"));
        Assert.False(bert.CanGenerate);
        Assert.Equal(5, bert.Config.NumLabels);
        Assert.Equal("computers", bert.Config.Id2Label![0]);
    }
}

/// <summary>Checkpoints written by older tools: legacy names HF renames or ignores on load.</summary>
public sealed class LegacyCheckpointTests
{
    [Fact]
    public void Bert_layernorm_gamma_beta_and_unprefixed_gpt2_with_mask_buffers_load()
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        // BERT with LayerNorm.gamma / LayerNorm.beta
        var bertDir = Path.Combine(tmp.Path, "bert");
        Directory.CreateDirectory(bertDir);
        File.Copy(Path.Combine(Fixtures.Model("bert-tiny"), "config.json"), Path.Combine(bertDir, "config.json"));
        using (var f = SafetensorsFile.Open(Path.Combine(Fixtures.Model("bert-tiny"), "model.safetensors")))
        {
            var renamed = f.Keys.Select(k => new KeyValuePair<string, torch.Tensor>(
                k.Replace("LayerNorm.weight", "LayerNorm.gamma").Replace("LayerNorm.bias", "LayerNorm.beta"), f.GetTensor(k))).ToList();
            renamed.Add(new("bert.embeddings.position_ids", torch.arange(128, dtype: torch.ScalarType.Int64).unsqueeze(0)));
            SafetensorsWriter.Save(Path.Combine(bertDir, "model.safetensors"), renamed, new Dictionary<string, string> { ["format"] = "pt" });
        }
        using var bert = AutoModelForSequenceClassification.FromPretrained(bertDir);
        Assert.Empty(bert.MissingKeys);
        Assert.Empty(bert.UnexpectedKeys);
        var r = ModelTestUtil.Reference("bert-tiny");
        TensorAssert.Close(r["logits"], bert.forward(ModelTestUtil.ReferenceInput("bert-tiny", r)).Logits!, 1e-4, null, "bert gamma/beta");

        // GPT-2 as the original OpenAI export: no "transformer." prefix, causal-mask buffers present
        var gptDir = Path.Combine(tmp.Path, "gpt2");
        Directory.CreateDirectory(gptDir);
        File.Copy(Path.Combine(Fixtures.Model("gpt2-tiny"), "config.json"), Path.Combine(gptDir, "config.json"));
        using (var f = SafetensorsFile.Open(Path.Combine(Fixtures.Model("gpt2-tiny"), "model.safetensors")))
        {
            var list = f.Keys.Select(k => new KeyValuePair<string, torch.Tensor>(k["transformer.".Length..], f.GetTensor(k))).ToList();
            list.Add(new("h.0.attn.bias", torch.ones(1, 1, 4, 4)));
            list.Add(new("h.1.attn.masked_bias", torch.tensor(-1e4f)));
            SafetensorsWriter.Save(Path.Combine(gptDir, "model.safetensors"), list, new Dictionary<string, string> { ["format"] = "pt" });
        }
        using var gpt = AutoModelForCausalLM.FromPretrained(gptDir);
        Assert.Empty(gpt.MissingKeys);
        Assert.Empty(gpt.UnexpectedKeys);
        var rg = ModelTestUtil.Reference("gpt2-tiny");
        TensorAssert.Close(rg["logits"], gpt.forward(ModelTestUtil.ReferenceInput("gpt2-tiny", rg)).Logits!, 1e-4, rg["attention_mask"], "gpt2 unprefixed");
    }
}

/// <summary>Unsupported checkpoint formats fail with a message that says what to do.</summary>
public sealed class CheckpointFormatTests
{
    [Fact]
    public void Pickle_only_folder_is_rejected_with_advice()
    {
        using var tmp = new TempDir();
        File.Copy(Path.Combine(Fixtures.Model("opt-tiny"), "config.json"), tmp.File("config.json"));
        File.WriteAllBytes(tmp.File("pytorch_model.bin"), [0x80, 0x02]);
        var e = Assert.Throws<NotSupportedException>(() => AutoModelForCausalLM.FromPretrained(tmp.Path));
        Assert.Contains("pytorch_model.bin", e.Message);
        Assert.Contains("safetensors", e.Message);
    }

    [Fact]
    public void Device_and_dtype_report_the_parameters()
    {
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("gpt2-tiny"), new FromPretrainedOptions { Dtype = torch.ScalarType.BFloat16 });
        Assert.Equal(torch.ScalarType.BFloat16, model.Dtype);
        Assert.Equal(DeviceType.CPU, model.Device.type);
    }
}

/// <summary>Token-classification heads on decoder backbones (new heads over the reference hidden states).</summary>
public sealed class DecoderTokenClassificationTests
{
    [Theory]
    [InlineData("gpt2-tiny", "classifier")]
    [InlineData("llama-tiny", "score")]
    [InlineData("qwen2-tiny", "score")]
    public void New_token_head_applies_to_the_reference_hidden_states(string name, string head)
    {
        using var scope = torch.NewDisposeScope();
        using var model = AutoModelForTokenClassification.FromPretrained(Fixtures.Model(name), new FromPretrainedOptions { NumLabels = 4 });
        Assert.Equal(new[] { head + ".bias", head + ".weight" }, model.MissingKeys.Order(StringComparer.Ordinal));
        var r = ModelTestUtil.Reference(name);
        var labels = r["labels"].remainder(4).masked_fill(r["labels"].eq(-100), -100);
        var o = model.forward(ModelTestUtil.ReferenceInput(name, r) with { Labels = labels });
        var sd = model.state_dict();
        var expected = torch.nn.functional.linear(r["last_hidden_state"], sd[head + ".weight"], sd[head + ".bias"]);
        TensorAssert.Close(expected, o.Logits!, 1e-4, r["attention_mask"], name);
        Assert.NotNull(o.Loss);
    }
}

/// <summary>HF's ignore_mismatched_sizes: a head of another size is re-initialised instead of failing.</summary>
public sealed class MismatchedSizeTests
{
    [Fact]
    public void Classifier_with_another_label_count_fails_or_is_reinitialised()
    {
        var e = Assert.Throws<InvalidDataException>(() => AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"), new FromPretrainedOptions { NumLabels = 3 }));
        Assert.Contains("classifier.", e.Message);
        using var model = AutoModelForSequenceClassification.FromPretrained(Fixtures.Model("bert-tiny"), new FromPretrainedOptions { NumLabels = 3, IgnoreMismatchedSizes = true });
        Assert.Equal(["classifier.bias", "classifier.weight"], model.MissingKeys.Order(StringComparer.Ordinal));
        Assert.Equal(2, model.MismatchedKeys.Count);
        Assert.Contains("[5, 64]", string.Join(" ", model.MismatchedKeys));
        Assert.Equal(3, model.Config.NumLabels);
        Assert.Equal([3L, 64L], model.state_dict()["classifier.weight"].shape);
    }
}

/// <summary>generation_config.json survives save → reload.</summary>
public sealed class GenerationConfigSaveTests
{
    [Fact]
    public void Saved_generation_config_keeps_the_loaded_settings()
    {
        using var tmp = new TempDir();
        using var model = AutoModelForCausalLM.FromPretrained(Fixtures.Model("opt-tiny"));
        model.GenerationConfig = model.GenerationConfig with { MaxNewTokens = 7, RepetitionPenalty = 1.3, EosTokenIds = [2, 5] };
        model.SavePretrained(tmp.Path);
        var json = JsonNode.Parse(File.ReadAllText(tmp.File("generation_config.json")))!.AsObject();
        Assert.Equal(7, json["max_new_tokens"]!.GetValue<int>());
        Assert.Equal(2, json["eos_token_id"]!.AsArray().Count);
        Assert.False(json.ContainsKey("max_length"));
        using var again = AutoModelForCausalLM.FromPretrained(tmp.Path);
        Assert.Equal(7, again.GenerationConfig.MaxNewTokens);
        Assert.Equal(1.3, again.GenerationConfig.RepetitionPenalty);
        Assert.Equal([2, 5], again.GenerationConfig.EosTokenIds!);
        Assert.Equal(model.GenerationConfig.BosTokenId, again.GenerationConfig.BosTokenId);
    }
}

/// <summary>HF resize_token_embeddings: embeddings, untied heads and MLM bias follow the new vocabulary size.</summary>
public sealed class ResizeTokenEmbeddingsTests
{
    [Theory]
    [InlineData("llama-tiny")]
    [InlineData("gpt2-tiny")]
    [InlineData("opt-tiny")]
    public void Growing_keeps_old_logits_and_round_trips(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = ModelTestUtil.Load(name);
        var r = ModelTestUtil.Reference(name);
        var input = ModelTestUtil.ReferenceInput(name, r) with { Labels = null };
        var before = model.forward(input).Logits!;
        long n0 = model.NumParameters();
        bool untied = model.GetOutputEmbeddings() is not null;
        var emb = model.ResizeTokenEmbeddings(1003);
        Assert.Equal([1003L, 64L], emb.weight!.shape);
        Assert.Equal(n0 + 3 * 64 * (untied ? 2 : 1), model.NumParameters());
        var after = model.forward(input).Logits!;
        Assert.Equal(1003, after.shape[2]);
        TensorAssert.Close(before, after.narrow(2, 0, 1000), 1e-5, r["attention_mask"], $"{name} old vocabulary");
        using var tmp = new TempDir();
        model.SavePretrained(tmp.Path);
        using var again = AutoModelForCausalLM.FromPretrained(tmp.Path);
        Assert.Empty(again.MissingKeys);
        TensorAssert.Close(after, again.forward(input).Logits!, 0, null, $"{name} reloaded");
    }

    [Fact]
    public void Bert_mlm_bias_grows_with_zeros()
    {
        using var model = (Peft.Transformers.Models.Bert.BertForMaskedLM)AutoModelForMaskedLM.FromPretrained(Fixtures.Model("bert-tiny"));
        model.ResizeTokenEmbeddings(1002);
        Assert.Equal([1002L], model.cls.predictions.bias.shape);
        Assert.Equal(1002, ((BertConfig)model.Config).VocabSize);
        Assert.Equal(0f, model.cls.predictions.bias[1001].item<float>());
    }
}
