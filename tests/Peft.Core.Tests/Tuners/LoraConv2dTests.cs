using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners;

internal sealed class TinyConvNet : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv1;
    private readonly nn.Module<Tensor, Tensor> conv2;
    private readonly nn.Module<Tensor, Tensor> head;

    public TinyConvNet() : base("TinyConvNet")
    {
        conv1 = nn.Conv2d(3, 8, (3, 3), stride: (2, 2), padding: (1, 1));
        conv2 = nn.Conv2d(8, 8, (1, 1));
        head = nn.Linear(8, 4);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = nn.functional.relu(conv1.forward(x));      // [B, 8, 4, 4]
        h = nn.functional.relu(conv2.forward(h));          // [B, 8, 4, 4]
        return head.forward(h.mean([2, 3]));                // [B, 4]
    }
}

public class LoraConv2dTests
{
    [Fact]
    public void Conv2dAdapterMergesUnmergesSavesAndLoads()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var model = new TinyConvNet();
        var x = randn(3, 3, 8, 8);
        var baseOut = model.forward(x).detach().clone();
        var sd = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        var pm = PeftModel.GetPeftModel(model, new LoraConfig { R = 2, LoraAlpha = 4, TargetModules = ["conv1", "conv2"], InitLoraWeights = false });
        pm.eval();
        var adapted = pm.ForwardTensor(x);
        Assert.False(baseOut.allclose(adapted, atol: 1e-4));
        Assert.Equal([2L, 3, 3, 3], ((LoraConv2d)Peft.Core.Tuners.ModuleSurgery.GetSubmodule(pm.GetBaseModel(), "conv1")).LoraA("default").weight.shape);
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.ForwardTensor(x), 1e-6, what: "disabled");
        pm.MergeAdapter();
        TensorAssert.Close(adapted, pm.ForwardTensor(x), 1e-5, what: "merged (3x3 and 1x1 deltas)");
        pm.UnmergeAdapter();
        using (pm.DisableAdapter()) TensorAssert.Close(baseOut, pm.ForwardTensor(x), 1e-5, what: "unmerge restores");
        var mixed = pm.ForwardTensor(x, ["default", "__base__", "default"]);
        TensorAssert.Close(adapted[0], mixed[0], 1e-5, what: "mixed batch row 0");
        TensorAssert.Close(baseOut[1], mixed[1], 1e-5, what: "mixed batch row 1");
        pm.SavePretrained(dir.Path);

        var fresh = new TinyConvNet();
        using (no_grad()) foreach (var (k, v) in fresh.state_dict()) v.copy_(sd[k]);
        var loaded = PeftModel.FromPretrained(fresh, dir.Path);
        TensorAssert.Close(adapted, loaded.ForwardTensor(x), 1e-6, what: "reloaded");
        var merged = (nn.Module<Tensor, Tensor>)loaded.MergeAndUnload();
        TensorAssert.Close(adapted, merged.forward(x), 1e-5, what: "merge_and_unload");
    }
}
