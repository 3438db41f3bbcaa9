using Peft.Core;
using Peft.Testing;
using TorchSharp;
using static Peft.Transformers.Tests.Models.ModelTestUtil;

namespace Peft.Transformers.Tests.Models;

/// <summary>Forward passes release every intermediate tensor: live-tensor counts stay flat over 100 calls.</summary>
[Collection(LeakTestCollection.Name)]
public sealed class ModelLeakTests
{
    public static TheoryData<string> Models => new(Fixtures.TinyModels);

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_does_not_leak_tensors(string name)
    {
        using var model = Load(name);
        var r = Reference(name);
        var input = ReferenceInput(name, r);
        LeakCheck.AssertNoGrowth(() =>
        {
            var o = model.forward(input);
            o.Logits?.Dispose();
            o.Loss?.Dispose();
            o.LastHiddenState?.Dispose();
            o.PoolerOutput?.Dispose();
            o.StartLogits?.Dispose();
            o.EndLogits?.Dispose();
        }, 100, what: name);
        foreach (var t in r.Values) t.Dispose();
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Forward_in_a_scope_leaves_nothing_behind(string name)
    {
        using var model = Load(name);
        var r = Reference(name);
        var input = ReferenceInput(name, r);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = torch.NewDisposeScope();
            model.forward(input with { OutputHiddenStates = true });
        }, 100, what: name);
        foreach (var t in r.Values) t.Dispose();
    }

    [Theory]
    [InlineData("gpt2-tiny")]
    [InlineData("opt-tiny")]
    [InlineData("llama-tiny")]
    [InlineData("qwen2-tiny")]
    public void Cached_decoding_does_not_leak_tensors(string name)
    {
        using var model = Load(name);
        var r = Reference(name);
        var ids = r["gen_input_ids"];
        var mask = r["gen_attention_mask"];
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = torch.NewDisposeScope();
            using var cache = new KeyValueCache();
            long t = ids.shape[1];
            model.forward(new ModelInput { InputIds = ids.narrow(1, 0, t - 3), AttentionMask = mask.narrow(1, 0, t - 3), PastKeyValues = cache });
            for (long i = t - 3; i < t; i++)
                model.forward(new ModelInput { InputIds = ids.narrow(1, i, 1), AttentionMask = mask.narrow(1, 0, i + 1), PastKeyValues = cache });
        }, 30, what: name);
        foreach (var t in r.Values) t.Dispose();
    }
}
