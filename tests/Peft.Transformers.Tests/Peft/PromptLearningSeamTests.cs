using Microsoft.Extensions.Logging;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Core.Tuners;
using Peft.Testing;
using Peft.Transformers.Generation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Peft.Transformers.Tests.PeftParity;

/// <summary>
/// The prompt-learning seam of the tuner core, proven with a tiny test method that prepends ONE learned virtual token
/// (a minimal prompt tuning registered through <see cref="PeftRegistry.Register"/>, without touching generic code):
/// <see cref="PeftModel.GetPeftModel"/> accepts a tuner that injects no layers; the forward prepends the token and
/// extends mask and labels; and generation, which goes through <see cref="IGenerationStepHook"/>, gives the same tokens
/// with the KV cache (the token is prepended at the first step only, while the cache holds one position more than the
/// sequence) as without it and as a by-hand recomputation of the whole sequence every step.
/// </summary>
public sealed class PromptLearningSeamTests
{
    static PromptLearningSeamTests() => OneTokenPromptTuner.EnsureRegistered();

    private static readonly string[] Models = ["llama-tiny", "opt-tiny"];

    public static TheoryData<string> CausalModels => new(Models);

    private static (PeftModel Model, Tensor Ids, Tensor Mask) Create(string modelName)
    {
        var lm = AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName));
        var pm = PeftModel.GetPeftModel(lm, new OneTokenPromptConfig { TaskType = TaskType.CausalLM });
        pm.eval();
        using var f = SafetensorsFile.Open(Fixtures.Reference(modelName));
        return (pm, f.GetTensor("gen_input_ids"), f.GetTensor("gen_attention_mask"));
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Forward_prepends_the_virtual_token_and_only_it_trains(string modelName)
    {
        using var scope = NewDisposeScope();
        var (pm, ids, mask) = Create(modelName);
        using var _ = pm;
        var labels = ids.clone();
        var output = pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask, Labels = labels });
        Assert.Equal(new[] { ids.shape[0], ids.shape[1] + 1 }, output.Logits!.shape[..2]);
        Assert.NotNull(output.Loss);
        var (trainable, _) = pm.GetNbTrainableParameters();
        Assert.Equal(((IPreTrainedModel)pm.GetBaseModel()).Dimensions.HiddenSize, trainable);
        using (pm.DisableAdapter())
        {
            // Disabled, the method adds no token (PEFT's disable_adapter for prompt learning runs the base model).
            Assert.Equal(ids.shape[1], pm.forward(new ModelInput { InputIds = ids, AttentionMask = mask }).Logits!.shape[1]);
        }
        Assert.Throws<NotSupportedException>(() => pm.MergeAdapter());
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Greedy_with_cache_equals_without_cache_and_equals_recomputation(string modelName)
    {
        using var scope = NewDisposeScope();
        var (pm, ids, mask) = Create(modelName);
        using var _ = pm;
        const int newTokens = 8;
        var cached = pm.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens, UseCache = true });
        var uncached = pm.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens, UseCache = false });
        TensorAssert.Equal(uncached, cached, $"{modelName}: one virtual token, cache vs no cache");

        // By hand: run the whole sequence through PeftModel.forward (which prepends the token) every step.
        var seq = ids;
        var m = mask;
        using (no_grad())
        {
            for (int i = 0; i < newTokens; i++)
            {
                var logits = pm.forward(new ModelInput { InputIds = seq, AttentionMask = m }).Logits!; // [B, 1 + T, V]
                var next = logits[.., -1, ..].argmax(-1).unsqueeze(1);                                // [B, 1]
                seq = cat([seq, next], 1);
                m = cat([m, ones_like(next)], 1);
            }
        }
        TensorAssert.Equal(seq, cached, $"{modelName}: generate vs recomputation");

        using var plain = AutoModelForCausalLM.FromPretrained(Fixtures.Model(modelName));
        var baseIds = plain.Generate(ids, mask, new GenerationConfig { MaxNewTokens = newTokens });
        Assert.False(baseIds.eq(cached).all().item<bool>(), $"{modelName}: the virtual token does not change greedy decoding, so this test would prove nothing");
    }

    [Theory]
    [MemberData(nameof(CausalModels))]
    public void Beam_search_with_cache_equals_without_cache(string modelName)
    {
        using var scope = NewDisposeScope();
        var (pm, ids, mask) = Create(modelName);
        using var _ = pm;
        var cfg = new GenerationConfig { MaxNewTokens = 6, NumBeams = 3, UseCache = true };
        TensorAssert.Equal(pm.Generate(ids, mask, cfg with { UseCache = false }), pm.Generate(ids, mask, cfg), $"{modelName}: beams, cache vs no cache");
    }
}

/// <summary>The test method's config: no settings beyond the base ones.</summary>
internal sealed record OneTokenPromptConfig : PeftConfig
{
    public const string Type = "TEST_ONE_TOKEN_PROMPT";

    public override string PeftType => Type;

    public override void Validate() { }
}

/// <summary>
/// A minimal prompt-learning method (a one-token prompt tuning): one learned embedding per adapter prepended to the
/// input embeddings; the mask gets a 1 and the labels a −100 in front; position ids are dropped (as PEFT does).
/// </summary>
internal sealed class OneTokenPromptTuner : PromptLearningTuner
{
    private static int _registered;
    private readonly AdapterParameterDict prompt_embeddings = new();
    private bool _disabled;

    public OneTokenPromptTuner(nn.Module model, ILogger? logger) : base("OneTokenPromptTuner", model, logger) { }

    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
            PeftRegistry.Register(new(OneTokenPromptConfig.Type, typeof(OneTokenPromptConfig), (m, log) => new OneTokenPromptTuner(m, log)));
    }

    public override string Prefix => "prompt_embeddings";

    private IPreTrainedModel Pretrained => Model as IPreTrainedModel
        ?? throw new NotSupportedException($"{Model.GetType().Name} is not an IPreTrainedModel.");

    protected override PeftConfig CreatePromptAdapter(string adapterName, PeftConfig config)
    {
        var table = Pretrained.GetInputEmbeddings().weight!;
        using var g = manual_seed(7);
        var value = randn([Pretrained.Dimensions.HiddenSize], dtype: table.dtype, device: table.device).mul(0.5);
        prompt_embeddings.Set(adapterName, new Parameter(value, requires_grad: true));
        return config;
    }

    public override void SetAdapterLayersEnabled(bool enabled)
    {
        base.SetAdapterLayersEnabled(enabled);
        _disabled = !enabled;
    }

    protected override ModelInput PrepareInput(ModelInput input)
    {
        if (_disabled) return input;
        var ids = input.InputIds ?? throw new ArgumentException("the test prompt method needs InputIds", nameof(input));
        long batch = ids.shape[0];
        var embeds = Pretrained.GetInputEmbeddings().forward(ids);                                     // [B, T, H]
        var virtualToken = prompt_embeddings[ActiveAdapter].view(1, 1, -1).expand(batch, 1, -1);        // [B, 1, H]
        return input with
        {
            InputIds = null,
            InputsEmbeds = cat([virtualToken.to(embeds.dtype), embeds], 1),                            // [B, 1 + T, H]
            AttentionMask = ExtendMask(input.AttentionMask),
            Labels = input.Labels is { } l ? cat([full([batch, 1], -100L, dtype: l.dtype, device: l.device), l], 1) : null,
            PositionIds = null,
        };
    }

    protected override ModelInput PrepareInputsForGeneration(ModelInput stepInput)
    {
        if (_disabled) return stepInput;
        // After the first step the cache already holds the virtual token: only the mask grows by its position.
        if (stepInput.PastKeyValues is { } cache && cache.GetSeqLength() > 0)
            return stepInput with { AttentionMask = ExtendMask(stepInput.AttentionMask), PositionIds = null };
        return PrepareInput(stepInput);
    }

    private static Tensor? ExtendMask(Tensor? mask) =>
        mask is null ? null : cat([ones([mask.shape[0], 1], dtype: mask.dtype, device: mask.device), mask], 1);

    protected override IEnumerable<AdapterTensorSlot> AdapterSlots(string adapterName, PeftConfig config)
    {
        foreach (var s in base.AdapterSlots(adapterName, config)) yield return s;
        yield return new AdapterTensorSlot("prompt_embeddings", prompt_embeddings[adapterName]);
    }
}
