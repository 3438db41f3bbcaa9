using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Testing;
using Peft.Transformers;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>Golden parity of every tiny model against the Python reference forward pass.</summary>
public sealed class ModelParityTests
{
    public static TheoryData<string> Models => new(Fixtures.TinyModels);

    public static TheoryData<string> CausalModels => new(Fixtures.TinyModels.Where(IsCausal));

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_matches_reference(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var o = model.forward(ReferenceInput(name, r));
        var mask = r["attention_mask"];
        TensorAssert.Close(r["last_hidden_state"], o.LastHiddenState!, 1e-4, mask, $"{name} last_hidden_state");
        if (r.TryGetValue("start_logits", out var start))
        {
            TensorAssert.Close(start, o.StartLogits!, 1e-4, mask, $"{name} start_logits");
            TensorAssert.Close(r["end_logits"], o.EndLogits!, 1e-4, mask, $"{name} end_logits");
        }
        else if (r["logits"].dim() == 2)
        {
            TensorAssert.Close(r["logits"], o.Logits!, 1e-4, null, $"{name} logits");
        }
        else
        {
            TensorAssert.Close(r["logits"], o.Logits!, 1e-4, mask, $"{name} logits");
        }
        if (r.TryGetValue("loss", out var loss))
        {
            Assert.NotNull(o.Loss);
            TensorAssert.Close(loss.reshape(1), o.Loss!.reshape(1), 1e-4, null, $"{name} loss");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void State_dict_names_and_shapes_match_the_checkpoint(string name)
    {
        using var model = Load(name);
        using var f = SafetensorsFile.Open(Path.Combine(Fixtures.Model(name), "model.safetensors"));
        var expected = f.Tensors.ToDictionary(t => t.Name, t => string.Join(",", t.Shape));
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => string.Join(",", kv.Value.shape));
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, shape) in expected) Assert.True(shape == actual[k], $"{name}: {k} shape [{actual[k]}] != [{shape}]");
        Assert.Empty(model.MissingKeys);
        Assert.Empty(model.UnexpectedKeys);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Save_then_reload_gives_identical_outputs(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var tmp = new TempDir();
        using var model = Load(name);
        model.SavePretrained(tmp.Path);
        using var again = ModelFactory.FromPretrained(tmp.Path, TaskOf(name));
        var r = Reference(name);
        var input = ReferenceInput(name, r);
        var a = model.forward(input);
        var b = again.forward(input);
        TensorAssert.Close(a.Logits ?? a.StartLogits!, b.Logits ?? b.StartLogits!, 0, null, $"{name} reloaded");
        using var f = SafetensorsFile.Open(Path.Combine(tmp.Path, "model.safetensors"));
        using var g = SafetensorsFile.Open(Path.Combine(Fixtures.Model(name), "model.safetensors"));
        Assert.Equal(g.Keys.Order(StringComparer.Ordinal), f.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("pt", f.Metadata!["format"]);
        var cfg = AutoConfig.FromPretrained(tmp.Path);
        Assert.Equal(model.Config.ModelType, cfg.ModelType);
        Assert.Equal(model.ArchitectureName, cfg.Architectures![0]);
    }

    /// <summary>Full forward == prefix forward + one token at a time with the cache, on a left-padded batch.</summary>
    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Kv_cache_incremental_decoding_matches_full_forward(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        long t = ids.shape[1];
        var full = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!;   // [B, T, V]
        long prefix = t - 4;
        using var cache = new KeyValueCache();
        var first = model.forward(new ModelInput
        {
            InputIds = ids.narrow(1, 0, prefix), AttentionMask = mask.narrow(1, 0, prefix), PastKeyValues = cache, UseCache = true,
        });
        Assert.Same(cache, first.PastKeyValues);
        var pieces = new List<torch.Tensor> { first.Logits! };
        for (long i = prefix; i < t; i++)
        {
            var step = model.forward(new ModelInput
            {
                InputIds = ids.narrow(1, i, 1), AttentionMask = mask.narrow(1, 0, i + 1), PastKeyValues = cache, UseCache = true,
            });
            pieces.Add(step.Logits!);
        }
        Assert.Equal(t, cache.GetSeqLength());
        var incremental = torch.cat(pieces, 1);
        TensorAssert.Close(full, incremental, 1e-4, mask, $"{name} cached vs full");
    }

    /// <summary>
    /// A left-padded row gives the same logits as the same tokens unpadded when the positions are HF generate's
    /// (cumsum(mask) − 1, padding 1), passed explicitly as a Python user would.
    /// </summary>
    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Left_padding_does_not_change_real_token_logits(string name)
    {
        using var scope = torch.NewDisposeScope();
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        var positions = GenerationPositionIds(mask, ids.shape[1]);
        var batched = model.forward(new ModelInput { InputIds = ids, AttentionMask = mask, PositionIds = positions }).Logits!;
        for (long row = 0; row < ids.shape[0]; row++)
        {
            long pad = ids.shape[1] - mask[row].sum().item<long>();
            long n = ids.shape[1] - pad;
            var alone = model.forward(new ModelInput { InputIds = ids[row].narrow(0, pad, n).unsqueeze(0) }).Logits!;
            TensorAssert.Close(alone[0], batched[row].narrow(0, pad, n), 1e-4, null, $"{name} row {row}");
        }
    }
}
