using Peft.Core.Safetensors;
using Peft.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

/// <summary>
/// PEFT's <c>autocast_adapter_dtype</c> on a bfloat16 model (the tiny model converted with <c>.to(bfloat16)</c>):
/// adapter weights become float32 while the base stays bfloat16 (or stay bfloat16 with
/// <c>autocastAdapterDtype: false</c>); each layer's forward equals PEFT's definition written out here from the
/// layer's own tensors (base in bf16, input cast to float32, adapter math and add in float32, one cast back to bf16);
/// a training step keeps updates bf16 cannot represent; saved files hold F32 tensors that load back equal; merging
/// rounds base + delta once as PEFT's default merge does.
/// </summary>
public class AdapterDtypeTests
{
    private const string Name = "default";

    private static TinyMlp Bf16Model()
    {
        var m = new TinyMlp();
        m.to(ScalarType.BFloat16);
        return m;
    }

    private static LoraConfig Lora() => new()
    {
        R = 4, LoraAlpha = 8, TargetModules = ["emb", "lin0", "fc", "conv"], InitLoraWeights = false, TaskType = TaskType.SeqCls,
    };

    private static Tensor Bf16Input(long rows = 2) => randn([rows, 5, TinyMlp.Dim], generator: new Generator(7)).to(ScalarType.BFloat16);

    private static void AssertBitEqual(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.dtype, actual.dtype);
        Assert.Equal(expected.shape, actual.shape);
        if (!expected.eq(actual).all().item<bool>())
        {
            var diff = (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();
            Assert.Fail($"{what}: not bit-equal (max |diff| = {diff:G6}).");
        }
    }

    private static T Layer<T>(PeftModel pm, string path) where T : class =>
        (T)pm.Tuner.TunerLayers().Single(l => l.Path == path).Layer;

    [Fact]
    public void Lora_on_a_bf16_model_has_float32_adapters_and_a_bf16_base_and_head_copy()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora());
        int adapters = 0;
        foreach (var (n, p) in pm.named_parameters())
        {
            if (n.Contains("lora_", StringComparison.Ordinal))
            {
                adapters++;
                Assert.True(p.dtype == ScalarType.Float32, $"{n}: {p.dtype}");
                Assert.True(p.requires_grad, $"{n} must stay trainable");
                Assert.Equal(DeviceType.CPU, p.device_type);
            }
            else
            {
                Assert.True(p.dtype == ScalarType.BFloat16, $"{n}: {p.dtype} (base weights and modules_to_save copies keep the model dtype)");
            }
        }
        Assert.Equal(10, adapters); // emb, lin0, layers.0.fc, layers.1.fc, conv: A and B each
        Assert.Contains(pm.named_parameters(), p => p.name.Contains("modules_to_save", StringComparison.Ordinal));
        // the replaced parameter is both the module's registered parameter and its weight field
        var a = Layer<LoraLinear>(pm, "lin0").LoraA(Name);
        Assert.Same(a.weight, a.named_parameters().Single().parameter);
    }

    [Fact]
    public void AutocastAdapterDtype_false_keeps_the_adapters_in_bf16()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora(), autocastAdapterDtype: false);
        Assert.All(pm.named_parameters(), p => Assert.True(p.parameter.dtype == ScalarType.BFloat16, p.name));
        pm.AddAdapter("second", Lora() with { TaskType = null });
        Assert.All(pm.named_parameters().Where(p => p.name.Contains(".second", StringComparison.Ordinal)),
            p => Assert.True(p.parameter.dtype == ScalarType.Float32, p.name)); // AddAdapter's own default is true
        pm.AddAdapter("third", Lora() with { TaskType = null }, autocastAdapterDtype: false);
        Assert.All(pm.named_parameters().Where(p => p.name.Contains(".third", StringComparison.Ordinal)),
            p => Assert.True(p.parameter.dtype == ScalarType.BFloat16, p.name));
        using var ids = TinyMlp.Input();
        Assert.Equal(ScalarType.BFloat16, pm.ForwardTensor(ids).dtype);
    }

    [Fact]
    public void Lora_linear_and_conv1d_forward_is_PEFTs_definition_in_float32()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora());
        pm.eval();
        using var _ = no_grad();
        var x = Bf16Input();
        foreach (var path in new[] { "lin0", "conv", "layers.0.fc" })
        {
            var layer = Layer<LoraLinear>(pm, path);
            var baseOut = layer.BaseLayer.forward(x);                                   // bf16
            var h = layer.LoraB(Name).forward(layer.LoraA(Name).forward(x.to(ScalarType.Float32)));
            var expected = baseOut.add(h.mul(layer.Scaling[Name])).to(ScalarType.BFloat16); // PEFT: bf16 + (h·s) in fp32, one cast back
            AssertBitEqual(expected, layer.forward(x), path);
        }
    }

    [Fact]
    public void Dora_forward_on_bf16_is_PEFTs_definition_in_float32()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = ["lin0"], InitLoraWeights = false, UseDora = true });
        pm.eval();
        using var _ = no_grad();
        var layer = Layer<LoraLinear>(pm, "lin0");
        var m = layer.Magnitude(Name)!;
        Assert.Equal(ScalarType.Float32, m.dtype);
        var x = Bf16Input();
        var x32 = x.to(ScalarType.Float32);
        double s = layer.Scaling[Name];
        var result = layer.BaseLayer.forward(x);                                                    // bf16
        var w = layer.BaseWeight.to(ScalarType.Float32);                                              // [out, in]
        var loraWeight = layer.LoraB(Name).weight.matmul(layer.LoraA(Name).weight);                  // [out, in] fp32
        var norm = linalg.norm(w.add(loraWeight.mul(s)), dims: [1]);
        var scale = (m / norm).view(1, -1);                                                           // [1, out]
        var lora = layer.LoraB(Name).forward(layer.LoraA(Name).forward(x32));
        var baseResult = result - layer.BaseBias!;                                                    // bf16
        var expected = result.add((scale - 1) * baseResult + scale * lora * s).to(ScalarType.BFloat16);
        AssertBitEqual(expected, layer.forward(x), "DoRA lin0");
    }

    [Fact]
    public void Lora_conv2d_forward_on_bf16_is_PEFTs_definition_in_float32()
    {
        using var scope = NewDisposeScope();
        var model = new TinyConvNet();
        model.to(ScalarType.BFloat16);
        using var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["conv1"], InitLoraWeights = false });
        using var _ = no_grad();
        var layer = (LoraConv2d)pm.Tuner.TunerLayers().Single().Layer;
        var t = layer.AdapterTensors(Name).ToDictionary(p => p.Name, p => p.Value);
        Assert.Equal(ScalarType.Float32, t["lora_A.weight"].dtype);
        var x = randn([2, 3, 8, 8], generator: new Generator(5)).to(ScalarType.BFloat16);
        // conv1: stride 2, padding 1 (TinyConvNet); lora_A copies them, lora_B is 1×1
        var afterA = nn.functional.conv2d(x.to(ScalarType.Float32), t["lora_A.weight"], strides: [2, 2], padding: [1, 1]);
        var h = nn.functional.conv2d(afterA, t["lora_B.weight"]).mul(layer.Scaling[Name]);
        var expected = layer.BaseLayer.forward(x).add(h).to(ScalarType.BFloat16);
        AssertBitEqual(expected, layer.forward(x), "conv1");
    }

    [Fact]
    public void Lora_embedding_forward_adds_in_float32_and_returns_bf16()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora());
        using var _ = no_grad();
        var layer = Layer<LoraEmbedding>(pm, "emb");
        var t = layer.AdapterTensors(Name).ToDictionary(p => p.Name, p => p.Value);
        var a = t["lora_embedding_A"];                                                    // [r, vocab] fp32
        var b = t["lora_embedding_B"];                                                    // [dim, r] fp32
        Assert.Equal(ScalarType.Float32, a.dtype);
        var ids = TinyMlp.Input();
        var afterA = a.t().index_select(0, ids.flatten()).view(2, 5, -1);               // [B, T, r]
        var expected = layer.BaseLayer.forward(ids).add(afterA.matmul(b.t()).mul(layer.Scaling[Name])).to(ScalarType.BFloat16);
        AssertBitEqual(expected, layer.forward(ids), "emb");
    }

    [Fact]
    public void Mixed_adapter_batch_casts_rows_to_the_adapter_dtype_and_each_term_to_bf16()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora());
        pm.eval();
        using var _ = no_grad();
        var layer = Layer<LoraLinear>(pm, "lin0");
        var x = Bf16Input(3);
        var baseOut = layer.BaseLayer.forward(x);
        var rows = new[] { "default", "__base__", "default" };
        Tensor Row(int i)
        {
            var bi = baseOut[i];
            if (rows[i] == "__base__") return bi;
            var h = layer.LoraB(Name).forward(layer.LoraA(Name).forward(x[i].to(ScalarType.Float32))).mul(layer.Scaling[Name]);
            return bi + h.to(ScalarType.BFloat16);                                         // PEFT: result[rows] += term.to(result dtype)
        }
        var expected = stack(Enumerable.Range(0, 3).Select(Row).ToArray());
        using (pm.Tuner.WithRowAdapters(rows, 3)) AssertBitEqual(expected, layer.forward(x), "mixed batch");
    }

    [Fact]
    public void A_training_step_keeps_updates_that_bf16_would_round_away()
    {
        using var scope = NewDisposeScope();
        (Tensor Before, Tensor After) Step(bool autocast)
        {
            random.manual_seed(3);
            var pm = PeftModel.GetPeftModel(Bf16Model(), Lora() with { TaskType = null }, autocastAdapterDtype: autocast);
            var a = Layer<LoraLinear>(pm, "lin0").LoraA(Name).weight;
            var before = a.detach().clone();
            var opt = optim.AdamW(pm.parameters().Where(p => p.requires_grad), lr: 2e-4);
            using var ids = TinyMlp.Input();
            pm.ForwardTensor(ids).to(ScalarType.Float32).pow(2).sum().backward();
            opt.step();
            return (before, a.detach().clone());
        }
        var (b32, a32) = Step(autocast: true);
        Assert.Equal(ScalarType.Float32, a32.dtype);
        var moved = a32.ne(b32);
        Assert.True(moved.all().item<bool>(), "every fp32 entry of lora_A moves by ~lr");
        // ~2e-4 steps are below half a bf16 ulp for |w| ≥ 0.0625: in fp32 they are kept ...
        var smallSteps = moved.logical_and(a32.to(ScalarType.BFloat16).eq(b32.to(ScalarType.BFloat16)));
        Assert.True(smallSteps.sum().item<long>() > 0, "some fp32 updates are smaller than bf16 can represent");
        // ... while the same step on bf16 adapters leaves those entries unchanged.
        var (b16, a16) = Step(autocast: false);
        Assert.Equal(ScalarType.BFloat16, a16.dtype);
        Assert.True(a16.eq(b16).sum().item<long>() > 0, "bf16 adapters lose lr-sized updates");
    }

    [Fact]
    public void Saved_adapter_holds_F32_tensors_and_loads_back_equal_onto_a_bf16_model()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var baseModel = Bf16Model();
        var copy = TinyMlp.CopyOf(baseModel); // float32 holding the bf16 values
        using var pm = PeftModel.GetPeftModel(baseModel, Lora() with { TaskType = null });
        pm.eval();
        using var ids = TinyMlp.Input();
        var before = pm.ForwardTensor(ids).detach().clone();
        pm.SavePretrained(dir.Path);
        using (var file = SafetensorsFile.Open(Path.Combine(dir.Path, "adapter_model.safetensors")))
        {
            Assert.Equal(10, file.Tensors.Count);
            Assert.All(file.Tensors, t => Assert.Equal("F32", t.Dtype));
        }
        using var loaded = PeftModel.FromPretrained(TinyMlp.CopyOf(copy).To(ScalarType.BFloat16), dir.Path);
        var saved = pm.Tuner.TunerLayers().SelectMany(l => l.Layer.AdapterTensors(Name).Select(t => (Key: l.Path + "." + t.Name, t.Value))).ToList();
        var back = loaded.Tuner.TunerLayers().SelectMany(l => l.Layer.AdapterTensors(Name).Select(t => (Key: l.Path + "." + t.Name, t.Value))).ToDictionary(t => t.Key, t => t.Value);
        foreach (var (key, value) in saved) AssertBitEqual(value, back[key], key);
        AssertBitEqual(before, loaded.ForwardTensor(ids), "logits after reload");
        // without autocast the file's F32 values are loaded into bf16 adapters
        using var kept = PeftModel.FromPretrained(TinyMlp.CopyOf(copy).To(ScalarType.BFloat16), dir.Path, autocastAdapterDtype: false);
        Assert.All(kept.Tuner.TunerLayers().SelectMany(l => l.Layer.AdapterTensors(Name)), t => Assert.Equal(ScalarType.BFloat16, t.Value.dtype));
    }

    [Fact]
    public void Merge_on_bf16_is_base_plus_float32_delta_rounded_once_and_unmerge_subtracts_the_rounded_delta()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), Lora() with { TaskType = null });
        using var _ = no_grad();
        var lin = Layer<LoraLinear>(pm, "lin0");
        var emb = Layer<LoraEmbedding>(pm, "emb");
        var w = lin.BaseWeight.detach().clone();
        var we = emb.BaseWeight.detach().clone();
        var delta = lin.GetDeltaWeight(Name);
        var deltaEmb = emb.GetDeltaWeight(Name);
        Assert.Equal(ScalarType.Float32, delta.dtype);
        pm.Tuner.Merge();
        var merged = lin.BaseWeight.detach().clone();
        AssertBitEqual((w + delta).to(ScalarType.BFloat16), merged, "lin0 merged (PEFT: weight.data += delta)");
        AssertBitEqual(we + deltaEmb.to(ScalarType.BFloat16), emb.BaseWeight, "emb merged (PEFT: += delta.to(orig_dtype))");
        pm.Tuner.Unmerge();
        AssertBitEqual(merged - delta.to(ScalarType.BFloat16), lin.BaseWeight, "lin0 unmerged (PEFT: -= delta.to(orig_dtype))");
    }

    [Fact]
    public void AdaLora_on_bf16_has_float32_svd_triplets_and_PEFTs_forward()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(Bf16Model(), AdaLoraTests.Config());
        pm.eval();
        using var _ = no_grad();
        var layer = Layer<SvdLinear>(pm, "lin0");
        foreach (var p in new[] { layer.LoraA(Name), layer.LoraB(Name), layer.LoraE(Name), layer.RankNum(Name) })
            Assert.Equal(ScalarType.Float32, p.dtype);
        Assert.Equal(ScalarType.BFloat16, layer.BaseWeight.dtype);
        var x = Bf16Input();
        var h = x.to(ScalarType.Float32).matmul((layer.LoraA(Name) * layer.LoraE(Name)).t()).matmul(layer.LoraB(Name).t());
        var term = h.mul(layer.Scaling[Name]).div(layer.RankNum(Name) + 1e-5);
        var expected = layer.BaseLayer.forward(x).add(term).to(ScalarType.BFloat16);  // PEFT: result += term (one rounding)
        AssertBitEqual(expected, layer.forward(x), "SvdLinear");
        using var frozen = PeftModel.GetPeftModel(Bf16Model(), AdaLoraTests.Config(), autocastAdapterDtype: false);
        Assert.Equal(ScalarType.BFloat16, Layer<SvdLinear>(frozen, "lin0").LoraA(Name).dtype);
    }

    [Fact]
    public void IA3_on_bf16_has_float32_vectors_and_PEFTs_forward()
    {
        using var scope = NewDisposeScope();
        var config = new IA3Config { TargetModules = ["lin0", "fc"], FeedforwardModules = ["fc"], InitIA3Weights = false };
        using var pm = PeftModel.GetPeftModel(Bf16Model(), config);
        using var _ = no_grad();
        var x = Bf16Input();
        var output = Layer<IA3Linear>(pm, "lin0");
        var l = output.Vector(Name);
        Assert.Equal(ScalarType.Float32, l.dtype);
        Assert.True(l.requires_grad);
        var expected = output.BaseLayer.forward(x).mul(l.flatten()).to(ScalarType.BFloat16);       // output scaling
        AssertBitEqual(expected, output.forward(x), "lin0 (output scaling)");
        var ff = Layer<IA3Linear>(pm, "layers.0.fc");
        var lf = ff.Vector(Name);
        var expectedFf = ff.BaseLayer.forward(x.to(ScalarType.Float32).mul(lf.flatten()).to(ScalarType.BFloat16)); // input scaling
        AssertBitEqual(expectedFf, ff.forward(x), "fc (input scaling)");
        using var kept = PeftModel.GetPeftModel(Bf16Model(), config, autocastAdapterDtype: false);
        Assert.Equal(ScalarType.BFloat16, Layer<IA3Linear>(kept, "lin0").Vector(Name).dtype);
    }

    [Fact]
    public void Float32_models_are_untouched()
    {
        using var scope = NewDisposeScope();
        using var pm = PeftModel.GetPeftModel(new TinyMlp(), Lora());
        Assert.All(pm.named_parameters(), p => Assert.True(p.parameter.dtype == ScalarType.Float32, p.name));
        var layer = Layer<LoraLinear>(pm, "lin0");
        using var _ = no_grad();
        var x = Bf16Input().to(ScalarType.Float32);
        var expected = layer.BaseLayer.forward(x).add(layer.LoraB(Name).forward(layer.LoraA(Name).forward(x)), layer.Scaling[Name]);
        AssertBitEqual(expected, layer.forward(x), "fp32 lin0");
    }
}

internal static class TinyMlpDtype
{
    /// <summary>Converts the model in place and returns it.</summary>
    public static TinyMlp To(this TinyMlp model, ScalarType dtype)
    {
        model.to(dtype);
        return model;
    }
}
