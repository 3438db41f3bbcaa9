using Peft.Core;
using Peft.Core.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers.Generation;

/// <summary>
/// Chooses between the dynamic KV cache and static-cache decoding (with a CUDA graph of the decoding step on CUDA)
/// from <see cref="GenerationConfig.CacheImplementation"/> (HF <c>generation_config.cache_implementation</c>):
/// <list type="bullet">
/// <item><c>null</c> / <c>"auto"</c> (default): static + CUDA graph when the inputs are on CUDA, the model is eligible
/// and graphs are available; the dynamic cache otherwise.</item>
/// <item><c>"static"</c>: static decoding wherever the model is eligible (eagerly, without a graph, off CUDA or when
/// graphs are unavailable); throws <see cref="NotSupportedException"/> naming the reason when it is not.</item>
/// <item><c>"dynamic"</c>: always the dynamic cache.</item>
/// </list>
/// Eligible: a <see cref="PreTrainedModel"/> causal LM that supports it (no sliding-window layers), or a
/// <see cref="PeftModel"/> over one whose method leaves the inputs unchanged (<see cref="Peft.Core.Tuners.BaseTuner.TransformsInputs"/>:
/// LoRA, IA3, ...; prompt learning feeds its own step inputs and decodes dynamically), in eval mode, cache on, no beam
/// search, all parameters on the inputs' device. Environment variable <c>PEFT_CUDA_GRAPHS=0</c> turns graph capture off.
/// </summary>
internal static class StaticDecoding
{
    /// <summary>Environment variable: <c>0</c> disables CUDA graph capture of decoding steps.</summary>
    public const string EnvVar = "PEFT_CUDA_GRAPHS";

    /// <summary>Static caches are sized to prompt + new tokens rounded up to a multiple of this, so calls of similar lengths share one.</summary>
    public const long CapacityStep = 256;

    /// <summary>The cache capacity for a generation of at most <paramref name="maxLength"/> positions.</summary>
    public static long Capacity(long maxLength) => (maxLength + CapacityStep - 1) / CapacityStep * CapacityStep;

    /// <summary>
    /// The holder and whether to capture a graph when this generation decodes with a static cache; null for the
    /// dynamic cache. Throws <see cref="NotSupportedException"/> when "static" is asked for and the model is not eligible.
    /// </summary>
    public static (StaticDecodeHolder Holder, bool UseGraph)? Choose(nn.Module<ModelInput, ModelOutput> model, GenerationConfig config, Device device)
    {
        string impl = config.CacheImplementation ?? GenerationConfig.CacheAuto;
        if (impl == GenerationConfig.CacheDynamic) return null;
        bool explicitStatic = impl == GenerationConfig.CacheStatic;
        bool graphsWanted = device.type == DeviceType.CUDA && Environment.GetEnvironmentVariable(EnvVar) != "0";
        if (!explicitStatic && !graphsWanted) return null;
        string? why = Ineligible(model, config);
        StaticDecodeHolder? holder = null;
        if (why is null && Target(model) is { } pre)
        {
            holder = pre.StaticDecodeHolder;
            holder.Refresh(pre);
            var devices = holder.ParameterDevices;
            if (devices.Length != 1 || !Models.ModelOps.SameDevice(devices[0], device))
                why = $"the parameters live on {string.Join(", ", devices.Select(d => d.ToString()))}, the inputs on {device}";
        }
        if (why is not null)
        {
            if (explicitStatic) throw new NotSupportedException($"GenerationConfig.CacheImplementation = \"static\": {why}");
            return null;
        }
        bool useGraph = graphsWanted && holder!.GraphFailure is null && CudaGraph.Unavailable is null;
        if (!explicitStatic && !useGraph) return null;
        return (holder!, useGraph);
    }

    private static string? Ineligible(nn.Module<ModelInput, ModelOutput> model, GenerationConfig config)
    {
        if (!config.UseCache) return "use_cache is false";
        if (config.NumBeams > 1) return $"beam search (num_beams = {config.NumBeams}) reorders the cache";
        if (model is PeftModel { Tuner: { TransformsInputs: true } tuner })
            return $"{tuner.GetType().Name} feeds its own inputs to each step (prompt learning)";
        if (Target(model) is not { } pre) return $"{model.GetType().Name} is not a PreTrainedModel (or a PeftModel over one)";
        if (pre.StaticCacheUnsupported is { } reason) return reason;
        if (pre.training) return $"{pre.ArchitectureName} is in training mode (call eval())";
        return null;
    }

    // The PreTrainedModel whose static cache, parameters and training flag static decoding uses: the model itself, or
    // the one a PeftModel wraps when its method leaves the inputs unchanged (the PeftModel's forward is then that
    // model's forward with the adapters inside it; the stepper still calls the PeftModel's forward).
    private static PreTrainedModel? Target(nn.Module<ModelInput, ModelOutput> model) => model switch
    {
        PreTrainedModel pre => pre,
        PeftModel { Tuner: { TransformsInputs: false, Model: PreTrainedModel inner } } => inner,
        _ => null,
    };
}
