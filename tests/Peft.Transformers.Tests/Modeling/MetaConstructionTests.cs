using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Models;
using Peft.Transformers.Models.Bert;
using Peft.Transformers.Models.Gpt2;
using Peft.Transformers.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>
/// Loading builds every architecture without storage: the model <c>FromPretrained</c> constructs has all its
/// parameters and buffers on the meta device before the first tensor is read (no random fp32 weights are
/// materialised), and the loaded model still gives the reference outputs.
/// </summary>
public sealed class MetaConstructionTests
{
    public static TheoryData<string> Models => new(Fixtures.TinyModels);

    /// <summary>Every (model_type, task) the factory knows, with a fixture folder of that model_type.</summary>
    public static TheoryData<string, ModelTask> Architectures
    {
        get
        {
            var data = new TheoryData<string, ModelTask>();
            foreach (var (type, task) in ModelFactory.Architectures.OrderBy(a => a.ModelType, StringComparer.Ordinal).ThenBy(a => a.Task))
                data.Add(type, task);
            return data;
        }
    }

    private static string FolderOf(string modelType, TempDir tmp) => modelType switch
    {
        "bert" => Fixtures.Model("bert-tiny"),
        "gpt2" => Fixtures.Model("gpt2-tiny"),
        "opt" => Fixtures.Model("opt-tiny"),
        "llama" => Fixtures.Model("llama-tiny"),
        "qwen2" => Fixtures.Model("qwen2-tiny"),
        "mistral" => MistralFolder(tmp),
        _ => throw new InvalidOperationException($"no fixture for model_type '{modelType}': add one to this test"),
    };

    // Mistral shares the Llama layout: the llama-tiny weights under a mistral config.
    private static string MistralFolder(TempDir tmp)
    {
        var src = Fixtures.Model("llama-tiny");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        json["model_type"] = "mistral";
        json["architectures"] = new System.Text.Json.Nodes.JsonArray("MistralForCausalLM");
        File.WriteAllText(Path.Combine(tmp.Path, "config.json"), json.ToJsonString());
        File.Copy(Path.Combine(src, "model.safetensors"), Path.Combine(tmp.Path, "model.safetensors"));
        return tmp.Path;
    }

    /// <summary>Loads with an observer that records, at construction, every parameter or buffer that has storage.</summary>
    private static (PreTrainedModel Model, List<string> Materialised) LoadObserved(string folder, ModelTask task, FromPretrainedOptions? options = null)
    {
        var materialised = new List<string>();
        bool observed = false;
        LoadObservers.Constructed.Value = m =>
        {
            observed = true;
            materialised.AddRange(m.named_parameters().Where(p => p.parameter.device_type != DeviceType.META).Select(p => p.name));
            materialised.AddRange(m.named_buffers().Where(b => b.buffer.device_type != DeviceType.META).Select(b => "buffer " + b.name));
        };
        try
        {
            var model = ModelFactory.FromPretrained(folder, task, options);
            Assert.True(observed, "the construction observer was not called");
            return (model, materialised);
        }
        finally
        {
            LoadObservers.Constructed.Value = null;
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Every_architecture_is_built_without_storage_when_loading(string modelType, ModelTask task)
    {
        using var tmp = new TempDir();
        var (model, materialised) = LoadObserved(FolderOf(modelType, tmp), task, new FromPretrainedOptions { NumLabels = 3, IgnoreMismatchedSizes = true });
        using (model)
        {
            Assert.True(materialised.Count == 0, $"{modelType}/{task}: built with storage before loading: {string.Join(", ", materialised)}");
            Assert.NotEmpty(model.parameters());
            Assert.All(model.named_parameters(), p => Assert.True(p.parameter.device_type == DeviceType.CPU, $"{modelType}/{task}: {p.name} on {p.parameter.device}"));
            // The backbone came from the checkpoint: what is missing (initialised instead) is only a new head.
            var backbone = model.IsBaseModel ? "" : model.BaseModelPrefix + ".";
            Assert.All(model.MissingKeys, k => Assert.False(backbone.Length == 0 || k.StartsWith(backbone, StringComparison.Ordinal), $"{modelType}/{task}: backbone key {k} was not loaded"));
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Fixture_models_built_on_meta_give_the_reference_outputs(string name)
    {
        var (model, materialised) = LoadObserved(Fixtures.Model(name), ModelTestUtil.TaskOf(name));
        using (model)
        using (var scope = NewDisposeScope())
        {
            Assert.True(materialised.Count == 0, $"{name}: built with storage before loading: {string.Join(", ", materialised)}");
            Assert.Empty(model.MissingKeys);
            var r = ModelTestUtil.Reference(name);
            var o = model.forward(ModelTestUtil.ReferenceInput(name, r));
            var mask = r["attention_mask"];
            TensorAssert.Close(r["last_hidden_state"], o.LastHiddenState!, 1e-4, mask, $"{name} last_hidden_state");
            if (r.TryGetValue("start_logits", out var start))
            {
                TensorAssert.Close(start, o.StartLogits!, 1e-4, mask, $"{name} start_logits");
                TensorAssert.Close(r["end_logits"], o.EndLogits!, 1e-4, mask, $"{name} end_logits");
            }
            else
            {
                TensorAssert.Close(r["logits"], o.Logits!, 1e-4, r["logits"].dim() == 2 ? null : mask, $"{name} logits");
            }
        }
    }

    [Fact]
    public void Tied_heads_share_the_loaded_embedding()
    {
        using var gpt2 = ModelTestUtil.Load("gpt2-tiny");
        var lm = Assert.IsType<GPT2LMHeadModel>(gpt2);
        Assert.True(SameStorage(lm.GetInputEmbeddings().weight!, ((TiedLinear)lm.lm_head).weight), "lm_head does not read wte");
        Assert.DoesNotContain(gpt2.named_parameters(), p => p.name == "lm_head.weight");

        // An MLM head on a classification checkpoint: the decoder reads the loaded word embeddings; the new transform
        // is initialised and the vocabulary bias, a bare parameter, starts at zero (HF), not at uninitialised memory.
        var (mlm, materialised) = LoadObserved(Fixtures.Model("bert-tiny"), ModelTask.MaskedLM);
        using (mlm)
        {
            Assert.Empty(materialised);
            var m = Assert.IsType<BertForMaskedLM>(mlm);
            Assert.True(SameStorage(m.GetInputEmbeddings().weight!, ((TiedLinear)m.cls.predictions.decoder).weight), "the MLM decoder does not read the word embeddings");
            Assert.Contains("cls.predictions.bias", mlm.MissingKeys);
            Assert.Equal(0, m.cls.predictions.bias.abs().max().item<float>());
            using var reference = ModelTestUtil.Load("bert-tiny");
            var loaded = reference.state_dict()["bert.embeddings.word_embeddings.weight"];
            Assert.Equal(0, (loaded - m.GetInputEmbeddings().weight!).abs().max().item<float>());
        }
    }

    /// <summary>Whether writing through <paramref name="a"/> is seen through <paramref name="b"/> (one storage); both are restored.</summary>
    private static bool SameStorage(Tensor a, Tensor b)
    {
        using var _ = no_grad();
        float before = a[0, 0].item<float>();
        a[0, 0].fill_(before + 1);
        bool same = b[0, 0].item<float>() == before + 1;
        a[0, 0].fill_(before);
        return same;
    }
}
