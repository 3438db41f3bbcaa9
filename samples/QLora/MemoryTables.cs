using Peft.Transformers;
using Spectre.Console;

namespace QLora;

/// <summary>
/// Prints <see cref="MemoryEstimator"/>'s tables for the real checkpoints whose public <c>config.json</c> files ship in
/// <c>samples/data/configs/&lt;name&gt;/</c> (OPT-6.7B, Llama-2-7B, Qwen2.5-0.5B): the weights in each storage precision
/// (the seed's "parameters × bytes per parameter", with the real NF4 / int8 layouts), and the memory of one training
/// step (batch 1 × 512 tokens, bfloat16 compute, gradient checkpointing) for full fine-tuning, LoRA (r=8 on q_proj,
/// v_proj) and QLoRA.
/// </summary>
public static class MemoryTables
{
    /// <summary>Batch and sequence length of the training estimate.</summary>
    public const int Batch = 1, Sequence = 512;

    /// <summary>Reads every <c>*/config.json</c> under <paramref name="configsDir"/> and prints both tables; returns the rows printed.</summary>
    public static IReadOnlyList<(string Name, PretrainedConfig Config)> Print(string configsDir)
    {
        var configs = Directory.GetDirectories(configsDir).Order(StringComparer.Ordinal)
            .Select(d => (Name: Path.GetFileName(d), Config: AutoConfig.FromPretrained(d))).ToList();
        if (configs.Count == 0) throw new FileNotFoundException($"no <name>/config.json folders in '{configsDir}'");

        var weights = new Table().Title("weights (GiB) by storage precision").AddColumns("model", "parameters", "fp32", "fp16", "bf16", "int8", "nf4");
        foreach (var (name, c) in configs)
        {
            var row = new List<string> { name, $"{MemoryEstimator.Count(c).All / 1e9:F2} B" };
            row.AddRange(Enum.GetValues<WeightPrecision>().Select(p => $"{MemoryEstimate.GiB(MemoryEstimator.WeightBytes(c, p)):F2}"));
            weights.AddRow([.. row]);
        }
        AnsiConsole.Write(weights);

        var training = new Table().Title($"training memory (GiB), batch {Batch} × {Sequence} tokens, bf16, gradient checkpointing")
            .AddColumns("model", "method", "weights", "gradients", "AdamW states", "activations", "total");
        foreach (var (name, c) in configs)
        {
            foreach (var method in Enum.GetValues<FineTuningMethod>())
            {
                var m = MemoryEstimator.Training(c, method, Batch, Sequence, gradientCheckpointing: true);
                training.AddRow(name, Label(method), Gib(m.Weights), Gib(m.Gradients), Gib(m.OptimizerStates), Gib(m.Activations), $"[bold]{Gib(m.Total)}[/]");
            }
        }
        AnsiConsole.Write(training);
        return configs;
    }

    private static string Label(FineTuningMethod method) => method switch
    {
        FineTuningMethod.Full => "full fine-tuning",
        FineTuningMethod.Lora => "LoRA (bf16 base)",
        FineTuningMethod.QLora => "QLoRA (NF4 base)",
        _ => method.ToString(),
    };

    private static string Gib(long bytes) => $"{MemoryEstimate.GiB(bytes):F2}";
}
