using Microsoft.Extensions.Logging;
using Peft.Core.Tuners;
using TorchSharp;

namespace Peft.Core;

/// <summary>
/// The PEFT methods known to this library, keyed by <c>peft_type</c> (PEFT <c>PEFT_TYPE_TO_CONFIG_MAPPING</c> and
/// <c>PEFT_TYPE_TO_TUNER_MAPPING</c>). Adding a method = its folder under <c>Tuners/</c> + one line in
/// <see cref="Entries"/>.
/// </summary>
public static class PeftRegistry
{
    /// <summary>One PEFT method.</summary>
    /// <param name="PeftType">PEFT's <c>peft_type</c> ("LORA", ...).</param>
    /// <param name="ConfigType">The concrete <see cref="PeftConfig"/> record read from <c>adapter_config.json</c>.</param>
    /// <param name="CreateTuner">
    /// Wraps a model in the method's tuner (layer-replacing methods). Null for prompt-learning methods, which
    /// <see cref="PeftModel"/> handles through <see cref="IPretrainedModel"/> instead.
    /// </param>
    public sealed record Entry(string PeftType, Type ConfigType, Func<torch.nn.Module, ILogger?, BaseTuner>? CreateTuner);

    private static readonly Dictionary<string, Entry> Entries = new(StringComparer.Ordinal)
    {
        ["LORA"] = new("LORA", typeof(LoraConfig), (m, log) => new LoraModel(m, log)),
    };

    /// <summary>The registered peft types.</summary>
    public static IReadOnlyCollection<string> PeftTypes => Entries.Keys;

    /// <summary>The entry for <paramref name="peftType"/>; throws naming the type and <paramref name="source"/> when unknown.</summary>
    public static Entry Get(string peftType, string? source = null) =>
        Entries.TryGetValue(peftType, out var e) ? e
            : throw new NotSupportedException($"{source ?? "config"}: peft_type \"{peftType}\" is not supported (known: {string.Join(", ", Entries.Keys)}).");
}
