using Peft.Core;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.Generation;

/// <summary>
/// The stepper's per-step hook (<see cref="IGenerationStepHook"/>): a model implementing it gets every decoding step
/// through it, with only the tokens not yet consumed when caching; and a cache a model creates for one step only
/// (no caching) is disposed by the stepper.
/// </summary>
[Collection(LeakTestCollection.Name)]
public sealed class GenerationStepHookTests
{
    /// <summary>Forwards to the toy model through the hook; without caching it still asks the toy model for a cache (a per-step one).</summary>
    private sealed class HookedToy(ToyCausalLM inner) : nn.Module<ModelInput, ModelOutput>("hooked"), IGenerationStepHook
    {
        public List<long> StepWidths { get; } = new();

        public override ModelOutput forward(ModelInput input) => throw new InvalidOperationException("generation must use the hook");

        public ModelOutput ForwardGenerationStep(ModelInput stepInput)
        {
            StepWidths.Add(stepInput.InputIds!.shape[1]);
            return inner.forward(stepInput with { UseCache = true });
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Generation_runs_every_step_through_the_hook_and_frees_per_step_caches(bool useCache)
    {
        using var ids = tensor(new long[] { 3, 5, 7, 1, 2, 4 }, [2, 3]);
        var cfg = new GenerationConfig { MaxNewTokens = 5, UseCache = useCache };
        using var expected = GenerationLoop.Generate(new ToyCausalLM(), ids, null, cfg);
        var hooked = new HookedToy(new ToyCausalLM());
        using (var actual = GenerationLoop.Generate(hooked, ids, null, cfg)) TensorAssert.Equal(expected, actual, "through the hook");
        Assert.Equal(useCache ? new long[] { 3, 1, 1, 1, 1 } : new long[] { 3, 4, 5, 6, 7 }, hooked.StepWidths);
        LeakCheck.AssertNoGrowth(() => GenerationLoop.Generate(hooked, ids, null, cfg).Dispose(), 5, what: $"use_cache={useCache}");
    }
}
