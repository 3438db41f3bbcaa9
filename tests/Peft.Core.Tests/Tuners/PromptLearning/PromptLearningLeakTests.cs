using Peft.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Core.Tests.Tuners.PromptLearning;

/// <summary>Training steps of every prompt-learning method leave no live tensors (the prefix cache made per call is disposed).</summary>
[Collection(LeakTestCollection.Name)]
public class PromptLearningLeakTests
{
    public static TheoryData<string> Methods => new() { "prompt", "p-mlp", "p-lstm", "prefix", "prefix-projection" };

    private static PromptLearningConfig Config(string name) => name switch
    {
        "prompt" => new PromptTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 },
        "p-mlp" => new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 },
        "p-lstm" => new PromptEncoderConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, EncoderReparameterizationType = PromptEncoderReparameterizationType.Lstm },
        "prefix" => new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2 },
        _ => new PrefixTuningConfig { TaskType = TaskType.CausalLM, NumVirtualTokens = 2, PrefixProjection = true },
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void Forward_backward_and_save_in_a_scope_leave_no_tensors(string name)
    {
        using var pm = PeftModel.GetPeftModel(new TinyPromptLm(), Config(name));
        using var ids = tensor(new long[,] { { 1, 2, 3 }, { 4, 5, 6 } });
        using var mask = ones([2, 3], dtype: ScalarType.Int64);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            var loss = pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = ids }).Loss!;
            loss.backward();
            pm.zero_grad();
        }, 10, what: name);
        LeakCheck.AssertNoGrowth(() =>
        {
            using var scope = NewDisposeScope();
            pm.Tuner.GetAdapterStateDict("default");
        }, 5, what: name + " state dict");
    }
}
