using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>
/// device_map placement while loading. Without a GPU the routing is checked with the meta device standing in for a
/// second device: every tensor must be read onto its unit's device. The GPU run (layers spilled from cuda:0 to the CPU,
/// logits equal to the one-device load) is bench <c>device_map_load</c>.
/// </summary>
public sealed class LoadPlacementTests
{
    [Fact]
    public void A_module_takes_the_device_of_its_unit_and_a_layer_prefix_is_not_a_longer_layer()
    {
        var placement = LoadPlacement.FromMap([
            new("model.embed_tokens", CPU), new("model.layers.0", CPU), new("model.layers.1", META), new("model.layers.10", CPU), new("lm_head", META),
        ]);
        Assert.Equal(DeviceType.META, placement.For("model.layers.1.self_attn.q_proj").type);
        Assert.Equal(DeviceType.CPU, placement.For("model.layers.10.self_attn.q_proj").type);
        Assert.Equal(DeviceType.META, placement.For("lm_head").type);
        Assert.Equal(DeviceType.CPU, placement.For("model.rotary").type);            // no unit: the first unit's device
        Assert.Equal(DeviceType.CPU, placement.First.type);
    }

    [Fact]
    public void The_loader_reads_each_tensor_onto_its_units_device()
    {
        var dir = Fixtures.Model("llama-tiny");
        var config = AutoConfig.FromPretrained(dir);
        var units = DeviceMapPlanner.Units(config, ModelTask.CausalLM, ScalarType.Float32);
        // CPU for the embeddings and layer 0, "another device" (meta) from layer 1 on: a spill in reverse, same routing.
        var map = units.Select(u => new KeyValuePair<string, Device>(u.Name, u.Name is "model.embed_tokens" or "model.layers.0" ? CPU : META)).ToList();
        using var model = ModelFactory.BuildSkeleton(config, ModelTask.CausalLM);
        var plan = new LoadPlan(ScalarType.Float32, CPU, null) { Placement = LoadPlacement.FromMap(map) };
        var (missing, unexpected) = model.LoadWeights(dir, false, plan);
        model.MaterializeRest(plan);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        foreach (var (name, p) in model.named_parameters())
        {
            bool onCpu = name.StartsWith("model.embed_tokens.", StringComparison.Ordinal) || name.StartsWith("model.layers.0.", StringComparison.Ordinal);
            Assert.True((onCpu ? DeviceType.CPU : DeviceType.META) == p.device_type, $"{name} is on {p.device}");
        }
        using var reference = ModelFactory.FromPretrained(dir, ModelTask.CausalLM);
        var expected = reference.state_dict()["model.layers.0.self_attn.q_proj.weight"];
        Assert.Equal(0, (expected - model.state_dict()["model.layers.0.self_attn.q_proj.weight"]).abs().max().item<float>());
    }

    [Fact]
    public void Planned_maps_without_a_gpu_load_on_the_cpu_and_bad_max_memory_is_named()
    {
        if (cuda.is_available()) return;                                   // the GPU behaviour is bench device_map_load's
        foreach (var map in new[] { "auto", "balanced", "sequential" })
        {
            using var model = ModelTestLoad(new FromPretrainedOptions { DeviceMap = map });
            Assert.All(model.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
        }
        using (var capped = ModelTestLoad(new FromPretrainedOptions { DeviceMap = "auto", MaxMemory = new Dictionary<string, long> { ["cpu"] = 1L << 30 } }))
            Assert.All(capped.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
        var noMap = Assert.Throws<ArgumentException>(() => ModelTestLoad(new FromPretrainedOptions { MaxMemory = new Dictionary<string, long> { ["cpu"] = 1 } }));
        Assert.Contains("MaxMemory needs DeviceMap", noMap.Message);
        var badKey = Assert.Throws<ArgumentException>(() => ModelTestLoad(new FromPretrainedOptions { DeviceMap = "auto", MaxMemory = new Dictionary<string, long> { ["gpu0"] = 1 } }));
        Assert.Contains("'gpu0'", badKey.Message);
        var noGpu = Assert.Throws<ArgumentException>(() => ModelTestLoad(new FromPretrainedOptions { DeviceMap = "sequential", MaxMemory = new Dictionary<string, long> { ["cuda:0"] = 1 } }));
        Assert.Contains("'cuda:0'", noGpu.Message);
        Assert.Equal(DeviceType.CPU, DeviceMap.Resolve("balanced", null).type);
    }

    private static PreTrainedModel ModelTestLoad(FromPretrainedOptions options) =>
        ModelFactory.FromPretrained(Fixtures.Model("llama-tiny"), ModelTask.CausalLM, options);
}
