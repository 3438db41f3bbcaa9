using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>The multi-device planner with fake budgets on the CPU (no GPU needed: devices are only labels here).</summary>
public class DeviceMapPlannerTests
{
    private static readonly Device Gpu0 = new(DeviceType.CUDA, 0), Gpu1 = new(DeviceType.CUDA, 1), Gpu2 = new(DeviceType.CUDA, 2);

    private static List<DeviceMapUnit> Model(int layers, long layer = 100, long embed = 50, long head = 50) =>
        [new("model.embed_tokens", embed), .. Enumerable.Range(0, layers).Select(i => new DeviceMapUnit($"model.layers.{i}", layer)),
         new("model.norm", 1), new("lm_head", head)];

    [Fact]
    public void SequentialFillsTheGpusInOrderAndSpillsLayersToTheCpu()
    {
        var map = DeviceMapPlanner.Plan(Model(8), [new(Gpu0, 260), new(Gpu1, 300), new(CPU, long.MaxValue)], "sequential");
        Assert.Equal(Gpu0, map["model.embed_tokens"]);
        Assert.Equal(Gpu0, map["model.layers.1"]);
        Assert.Equal(Gpu1, map["model.layers.2"]);                 // 50 + 2·100 = 250 on cuda:0, the next layer does not fit
        Assert.Equal(Gpu1, map["model.layers.4"]);
        Assert.Equal(CPU, map["model.layers.5"]);
        Assert.Equal(CPU, map["lm_head"]);
        // forward order never goes back to an earlier device
        var order = Model(8).Select(u => map[u.Name]).Select(d => d.type == DeviceType.CPU ? int.MaxValue : d.index).ToList();
        Assert.Equal(order.Order(), order);
    }

    [Fact]
    public void BalancedSpreadsAModelThatFitsEvenlyAndKeepsItOffTheCpu()
    {
        var units = Model(12);
        var map = DeviceMapPlanner.Plan(units, [new(Gpu0, 10_000), new(Gpu1, 10_000), new(Gpu2, 10_000), new(CPU, long.MaxValue)], "balanced");
        Assert.DoesNotContain(map.Values, d => d.type == DeviceType.CPU);
        var perGpu = units.GroupBy(u => map[u.Name].index).ToDictionary(g => g.Key, g => g.Sum(u => u.Bytes));
        Assert.Equal(3, perGpu.Count);
        long total = units.Sum(u => u.Bytes);
        Assert.All(perGpu.Values, b => Assert.InRange(b, total / 3 - 2 * 100, total / 3 + (long)(1.25 * 100)));
        Assert.Equal(map, DeviceMapPlanner.Plan(units, [new(Gpu0, 10_000), new(Gpu1, 10_000), new(Gpu2, 10_000), new(CPU, long.MaxValue)], "auto"));
    }

    [Fact]
    public void AutoFillsTheGpusAndSpillsWhenTheModelDoesNotFit()
    {
        var map = DeviceMapPlanner.Plan(Model(10), [new(Gpu0, 300), new(Gpu1, 300), new(CPU, long.MaxValue)], "auto");
        Assert.Equal(Gpu0, map["model.layers.0"]);
        Assert.Equal(Gpu1, map["model.layers.3"]);
        Assert.Equal(CPU, map["model.layers.9"]);
        Assert.Equal(CPU, map["lm_head"]);
    }

    [Fact]
    public void BadInputIsNamed()
    {
        Assert.Contains("'spread'", Assert.Throws<ArgumentException>(() => DeviceMapPlanner.Plan(Model(2), [new(CPU, 1000)], "spread")).Message);
        var e = Assert.Throws<InvalidOperationException>(() => DeviceMapPlanner.Plan(Model(2, layer: 500), [new(Gpu0, 400), new(CPU, 450)], "sequential"));
        Assert.Contains("model.layers.0", e.Message);
    }

    [Fact]
    public void UnitsFromAConfigAreWholeDecoderLayersInForwardOrder()
    {
        var config = AutoConfig.FromJson("""
            {"model_type":"llama","vocab_size":100,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":3,
             "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":64,"tie_word_embeddings":false}
            """, "test/config.json");
        var units = DeviceMapPlanner.Units(config, ModelTask.CausalLM, ScalarType.BFloat16);
        Assert.Equal(["model.embed_tokens", "model.layers.0", "model.layers.1", "model.layers.2", "model.norm", "lm_head"], units.Select(u => u.Name));
        long layer = 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64 + 2 * 32);   // q, k/v (GQA), o, gate/up/down, two norms; bf16
        Assert.Equal(layer, units[1].Bytes);
        Assert.Equal(2L * 100 * 32, units[0].Bytes);
        var map = DeviceMapPlanner.Plan(config, ModelTask.CausalLM, ScalarType.BFloat16, [new(Gpu0, units[0].Bytes + layer), new(CPU, long.MaxValue)], "sequential");
        Assert.Equal(Gpu0, map["model.layers.0"]);
        Assert.Equal(CPU, map["model.layers.1"]);
    }
}
