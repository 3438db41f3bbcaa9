using System.Text.Json.Nodes;
using Peft.Testing;
using TorchSharp;

namespace Peft.Transformers.Tests.Modeling;

/// <summary>Tests that read the process's peak resident set: they run alone (any test on another thread would allocate in between).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ResidentSetCollection
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Process resident set (sequential)";
}

/// <summary>
/// Building a model for loading allocates no weight memory, not even transiently: with a 400k-token vocabulary
/// (a 390 MB float32 embedding table per vocabulary-sized matrix), the peak resident set (VmHWM, reset through
/// /proc/self/clear_refs) grows by less than 48 MB while every architecture and head is constructed.
/// </summary>
[Collection(ResidentSetCollection.Name)]
public sealed class ConstructionMemoryTests
{
    private const long Vocab = 400_000;
    private const long Limit = 48L << 20;

    public static TheoryData<string, ModelTask> Architectures => MetaConstructionTests.Architectures;

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Building_for_loading_allocates_no_weight_memory(string modelType, ModelTask task)
    {
        if (!OperatingSystem.IsLinux()) return;           // VmHWM / clear_refs are Linux's; the meta-device test covers the rest
        var config = BigVocabulary(modelType);
        using (var warm = ModelFactory.BuildSkeleton(config, task)) { }   // JIT, native module code
        GC.Collect();
        GC.WaitForPendingFinalizers();
        File.WriteAllText("/proc/self/clear_refs", "5");                   // reset VmHWM to the current RSS
        long before = Status("VmRSS:");
        long peak;
        using (var model = ModelFactory.BuildSkeleton(config, task))
        {
            peak = Status("VmHWM:");
            Assert.All(model.parameters(), p => Assert.Equal(DeviceType.META, p.device_type));
        }
        Assert.True(peak - before < Limit,
            $"{modelType}/{task}: building on the meta device raised the peak resident set by {(peak - before) >> 20} MB (a float32 vocabulary table is {Vocab * 256 * 4 >> 20} MB)");
    }

    private static PretrainedConfig BigVocabulary(string modelType)
    {
        var fixture = modelType switch { "bert" => "bert-tiny", "gpt2" => "gpt2-tiny", "opt" => "opt-tiny", "qwen2" => "qwen2-tiny", _ => "llama-tiny" };
        var path = Path.Combine(Fixtures.Model(fixture), "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json["model_type"] = modelType;
        json["vocab_size"] = Vocab;
        json["tie_word_embeddings"] = false;                                 // an untied head: two vocabulary-sized matrices
        foreach (var key in new[] { "hidden_size", "n_embd", "word_embed_proj_dim" })
            if (json.ContainsKey(key)) json[key] = 256;
        return AutoConfig.FromJson(json.ToJsonString(), path);
    }

    private static long Status(string key)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/self/status has no {key}");
    }
}
