using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace Peft.Core.Tuners;

/// <summary>
/// The PEFT methods known to this library, keyed by <c>peft_type</c> (PEFT <c>PEFT_TYPE_TO_CONFIG_MAPPING</c> and
/// <c>PEFT_TYPE_TO_TUNER_MAPPING</c>). Adding a method = its folder under <c>Tuners/</c> + one line in
/// <see cref="Entries"/>. Methods defined outside this library register with <see cref="Register"/> (PEFT
/// <c>register_peft_method</c>).
/// </summary>
public static class PeftRegistry
{
    /// <summary>One PEFT method.</summary>
    /// <param name="PeftType">PEFT's <c>peft_type</c> ("LORA", ...).</param>
    /// <param name="ConfigType">The concrete <see cref="PeftConfig"/> record read from <c>adapter_config.json</c>.</param>
    /// <param name="CreateTuner">
    /// Wraps a model in the method's tuner: a <see cref="LayerInjectingTuner"/> (LoRA, AdaLoRA, IA3, ...) or a
    /// <see cref="PromptLearningTuner"/> (prompt / prefix / P-tuning).
    /// </param>
    public sealed record Entry(string PeftType, Type ConfigType, Func<torch.nn.Module, ILogger?, BaseTuner> CreateTuner);

    private static readonly ConcurrentDictionary<string, Entry> Entries = new(StringComparer.Ordinal)
    {
        ["LORA"] = new("LORA", typeof(LoraConfig), (m, log) => new LoraModel(m, log)),
        ["ADALORA"] = new("ADALORA", typeof(AdaLoraConfig), (m, log) => new AdaLoraModel(m, log)),
        ["PROMPT_TUNING"] = new("PROMPT_TUNING", typeof(PromptTuningConfig), (m, log) => new PromptTuningModel(m, log)),
        ["P_TUNING"] = new("P_TUNING", typeof(PromptEncoderConfig), (m, log) => new PTuningModel(m, log)),
        ["PREFIX_TUNING"] = new("PREFIX_TUNING", typeof(PrefixTuningConfig), (m, log) => new PrefixTuningModel(m, log)),
        ["IA3"] = new("IA3", typeof(IA3Config), (m, log) => new IA3Model(m, log)),
        ["BOTTLENECK"] = new("BOTTLENECK", typeof(BottleneckAdapterConfig), (m, log) => new BottleneckModel(m, log)),
    };

    /// <summary>
    /// Adds a method (PEFT <c>register_peft_method</c>). <paramref name="entry"/>'s config type must derive from
    /// <see cref="PeftConfig"/>; a taken <c>peft_type</c> throws.
    /// </summary>
    public static void Register(Entry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(entry.PeftType);
        ArgumentNullException.ThrowIfNull(entry.CreateTuner);
        if (!typeof(PeftConfig).IsAssignableFrom(entry.ConfigType) || entry.ConfigType.IsAbstract)
            throw new ArgumentException($"PeftRegistry: config type {entry.ConfigType.FullName} of \"{entry.PeftType}\" is not a concrete PeftConfig.", nameof(entry));
        if (!Entries.TryAdd(entry.PeftType, entry))
            throw new ArgumentException($"PeftRegistry: peft_type \"{entry.PeftType}\" is already registered.", nameof(entry));
    }

    /// <summary>The registered peft types.</summary>
    public static IReadOnlyCollection<string> PeftTypes => Entries.Keys.ToList();

    /// <summary>The entry for <paramref name="peftType"/>; throws naming the type and <paramref name="source"/> when unknown.</summary>
    public static Entry Get(string peftType, string? source = null) =>
        Entries.TryGetValue(peftType, out var e) ? e
            : throw new NotSupportedException($"{source ?? "config"}: peft_type \"{peftType}\" is not supported (known: {string.Join(", ", Entries.Keys)}).");
}
