using System.Text;
using System.Text.Json.Nodes;
using Peft.Core;
using Peft.Core.Safetensors;
using Peft.Datasets;
using Peft.Testing;
using Peft.Transformers;
using TorchSharp;

namespace Peft.Fuzz;

/// <summary>Every reader under fuzz, with seeds taken from the reference fixtures (copied, never modified).</summary>
public static class Targets
{
    private static readonly Lazy<string> SeedDir = new(BuildSeedDir);

    /// <summary>Text encoded by tokenizer targets after loading (covers normalizers, pre-tokenizers, added tokens).</summary>
    private const string Sample = "Hello world! Ünïcödé  tabs\tand 123 numbers <|endoftext|> [CLS] <s> 日本語";

    /// <summary>All targets, by name.</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } = Build();

    /// <summary>A target by name.</summary>
    public static FuzzTarget Get(string name) => All.Single(t => t.Name == name);

    private static byte[] Read(string path) => File.ReadAllBytes(path);

    private static void Copy(string from, string dir, params string[] names)
    {
        foreach (var n in names)
        {
            var src = Path.Combine(from, n);
            if (File.Exists(src)) File.Copy(src, Path.Combine(dir, n));
        }
    }

    private static string Seed(string name) => Path.Combine(SeedDir.Value, name);

    private static List<FuzzTarget> Build()
    {
        var models = Fixtures.TinyModels.Select(Fixtures.Model).ToList();
        var adapters = Directory.GetDirectories(Path.Combine(Fixtures.Hf, "adapters")).Order(StringComparer.Ordinal).ToList();
        var gpt2 = Fixtures.Model("gpt2-tiny");
        var bert = Fixtures.Model("bert-tiny");
        return
        [
            new()
            {
                Name = "safetensors", FileName = "model.safetensors",
                Seeds = adapters.Select(a => Read(Path.Combine(a, "adapter_model.safetensors"))).ToList(),
                Mutation = MutateSafetensors,
                Run = dir =>
                {
                    using var scope = torch.NewDisposeScope();
                    using var f = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
                    foreach (var t in f.Tensors) f.GetTensor(t.Name).Dispose();
                },
            },
            new()
            {
                Name = "sharded-index", FileName = "model.safetensors.index.json",
                Seeds = [Read(Seed("model.safetensors.index.json"))],
                Prepare = dir => Copy(SeedDir.Value, dir, "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"),
                Run = dir =>
                {
                    using var scope = torch.NewDisposeScope();
                    using var c = SafetensorsCheckpoint.OpenFolder(dir);
                    foreach (var k in c.Keys) c.GetTensor(k).Dispose();
                },
            },
            new()
            {
                Name = "config", FileName = "config.json",
                Seeds = models.Select(m => Read(Path.Combine(m, "config.json"))).ToList(),
                Run = dir => AutoConfig.FromPretrained(Path.Combine(dir, "config.json")).ToJson(),
            },
            new()
            {
                Name = "generation_config", FileName = "generation_config.json",
                Seeds = models.Select(m => Path.Combine(m, "generation_config.json")).Where(File.Exists).Select(Read).ToList(),
                Run = dir => GenerationConfig.FromFile(Path.Combine(dir, "generation_config.json")),
            },
            new()
            {
                Name = "tokenizer.json", FileName = "tokenizer.json",
                Seeds = models.Select(m => Read(Path.Combine(m, "tokenizer.json"))).ToList(),
                Prepare = dir => Copy(gpt2, dir, "tokenizer_config.json"),
                Run = UseTokenizer,
            },
            new()
            {
                Name = "tokenizer_config", FileName = "tokenizer_config.json",
                Seeds = models.Select(m => Read(Path.Combine(m, "tokenizer_config.json"))).ToList(),
                Prepare = dir => Copy(bert, dir, "tokenizer.json"),
                Run = UseTokenizer,
            },
            new()
            {
                Name = "special_tokens_map", FileName = "special_tokens_map.json",
                Seeds = [Read(Seed("special_tokens_map.json"))],
                Prepare = dir => Copy(gpt2, dir, "tokenizer.json", "tokenizer_config.json"),
                Run = UseTokenizer,
            },
            new()
            {
                Name = "vocab.txt", FileName = "vocab.txt",
                Seeds = [Read(Seed("vocab.txt"))],
                Prepare = dir => Copy(bert, dir, "tokenizer_config.json"),
                Run = UseTokenizer,
            },
            new()
            {
                Name = "vocab.json", FileName = "vocab.json",
                Seeds = [Read(Seed("vocab.json"))],
                Prepare = dir => { Copy(SeedDir.Value, dir, "merges.txt"); Copy(gpt2, dir, "tokenizer_config.json"); },
                Run = UseTokenizer,
            },
            new()
            {
                Name = "merges.txt", FileName = "merges.txt",
                Seeds = [Read(Seed("merges.txt"))],
                Prepare = dir => { Copy(SeedDir.Value, dir, "vocab.json"); Copy(gpt2, dir, "tokenizer_config.json"); },
                Run = UseTokenizer,
            },
            new()
            {
                Name = "adapter_config", FileName = "adapter_config.json",
                Seeds = adapters.Select(a => Read(Path.Combine(a, "adapter_config.json"))).ToList(),
                Run = dir => PeftConfig.FromPretrained(dir).ToJson(),
            },
            new()
            {
                Name = "adapter_weights", FileName = "adapter_model.safetensors",
                Seeds = [Read(Path.Combine(Fixtures.Adapter("opt-lora"), "adapter_model.safetensors"))],
                Mutation = MutateSafetensors,
                Prepare = dir => Copy(Fixtures.Adapter("opt-lora"), dir, "adapter_config.json"),
                Run = dir =>
                {
                    using var scope = torch.NewDisposeScope();
                    using var model = AutoModelForCausalLM.FromConfig(OptConfig.Value);
                    using var pm = PeftModel.FromPretrained(model, dir);
                },
            },
            Dataset("csv", "data.csv", [Read(Seed("data.csv")), Read(Seed("data2.csv"))]),
            Dataset("json", "data.json", [Read(Seed("data.json"))]),
            Dataset("json", "data.jsonl", [Read(Seed("data.jsonl"))], name: "jsonl"),
            Dataset("text", "data.txt", [Read(Seed("data.txt"))]),
            Dataset("parquet", "data.parquet", [Read(Seed("data.parquet"))]),
            ChatTemplateTarget.Create(),
            .. CheckpointTargets.All(),
        ];
    }

    private static readonly Lazy<PretrainedConfig> OptConfig = new(() => AutoConfig.FromPretrained(Path.Combine(Fixtures.Model("opt-tiny"), "config.json")));

    private static FuzzTarget Dataset(string builder, string file, List<byte[]> seeds, string? name = null) => new()
    {
        Name = "dataset-" + (name ?? builder), FileName = file, Seeds = seeds, CanRefuse = builder != "text",
        Run = dir =>
        {
            var ds = DatasetLoader.LoadDataset(builder, Path.Combine(dir, file))["train"];
            foreach (var row in ds.Rows()) foreach (var (_, v) in row) _ = v?.ToString();
        },
    };

    private static void UseTokenizer(string dir)
    {
        var tok = AutoTokenizer.FromPretrained(dir);
        var ids = tok.Encode(Sample);
        tok.Decode(ids);
        tok.Decode([0, 1, 2, 5, 100, tok.VocabSize - 1], skipSpecialTokens: true);
        tok.EncodeBatch(["a", Sample], padding: tok.PadTokenId is not null, truncation: true, maxLength: 8);
    }

    /// <summary>
    /// Safetensors-aware: mutate the JSON header (dtype, shape, data_offsets, names, metadata) and re-pack it with a
    /// correct length prefix, or set the length prefix to a boundary value, or mutate the raw bytes.
    /// </summary>
    private static byte[] MutateSafetensors(Mutator m, byte[] seed, byte[] other)
    {
        var rng = m.Rng;
        if (seed.Length < 8) return m.Mutate(seed, other);
        ulong n = BitConverter.ToUInt64(seed, 0);
        if (n > (ulong)(seed.Length - 8)) return m.Mutate(seed, other);
        var header = seed.AsSpan(8, (int)n).ToArray();
        var data = seed.AsSpan(8 + (int)n).ToArray();
        switch (rng.Next(4))
        {
            case 0:
            case 1:
                {
                    var h = m.MutateJson(header, other);
                    return [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. data];
                }
            case 2:
                {
                    ulong[] lens = [0, 1, 2, n - 1, n + 1, n + 8, (ulong)seed.Length, 100_000_001, ulong.MaxValue, 1UL << 63, int.MaxValue + 1UL];
                    return [.. BitConverter.GetBytes(lens[rng.Next(lens.Length)]), .. header, .. data];
                }
            default:
                return m.Mutate(seed, other);
        }
    }

    private static string BuildSeedDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "peft-fuzz-seeds-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        };
        var gpt2 = Fixtures.Model("gpt2-tiny");
        var tj = JsonNode.Parse(File.ReadAllText(Path.Combine(gpt2, "tokenizer.json")))!;
        File.WriteAllText(Path.Combine(dir, "vocab.json"), tj["model"]!["vocab"]!.ToJsonString());
        var merges = tj["model"]!["merges"]!.AsArray()
            .Select(x => x is JsonArray p ? $"{p[0]} {p[1]}" : x!.GetValue<string>());
        File.WriteAllText(Path.Combine(dir, "merges.txt"), "#version: 0.2\n" + string.Join("\n", merges) + "\n");
        var bj = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model("bert-tiny"), "tokenizer.json")))!;
        var vocab = bj["model"]!["vocab"]!.AsObject().OrderBy(kv => kv.Value!.GetValue<int>()).Select(kv => kv.Key);
        File.WriteAllText(Path.Combine(dir, "vocab.txt"), string.Join("\n", vocab) + "\n");
        File.WriteAllText(Path.Combine(dir, "special_tokens_map.json"),
            "{\n  \"bos_token\": \"<|endoftext|>\",\n  \"eos_token\": {\"content\": \"<|endoftext|>\", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, \"single_word\": false},\n  \"unk_token\": \"<|endoftext|>\",\n  \"pad_token\": \"<|endoftext|>\"\n}\n");

        // Sharded checkpoint: the opt-lora adapter's tensors split over two shards + an index.
        using (var f = SafetensorsFile.Open(Path.Combine(Fixtures.Adapter("opt-lora"), "adapter_model.safetensors")))
        {
            var names = f.Keys.ToList();
            var first = names.Take(names.Count / 2).ToList();
            var second = names.Skip(names.Count / 2).ToList();
            SafetensorsWriter.Copy(f, Path.Combine(dir, "model-00001-of-00002.safetensors"), first);
            SafetensorsWriter.Copy(f, Path.Combine(dir, "model-00002-of-00002.safetensors"), second);
            var wm = new JsonObject();
            foreach (var k in first) wm[k] = "model-00001-of-00002.safetensors";
            foreach (var k in second) wm[k] = "model-00002-of-00002.safetensors";
            var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 1234 }, ["weight_map"] = wm };
            File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index.ToJsonString(new() { WriteIndented = true }));
        }

        // Datasets: the first lines of the shared data files, and the same rows as JSON / text / parquet.
        var csv = File.ReadLines(Fixtures.Data("topics_train.csv")).Take(30).ToList();
        File.WriteAllText(Path.Combine(dir, "data.csv"), string.Join("\n", csv) + "\n");
        File.WriteAllText(Path.Combine(dir, "data2.csv"), "a,b,c\n1,2.5,true\n2,,false\n3,NaN,\"x,\"\"y\"\"\"\n");
        var jsonl = File.ReadLines(Fixtures.Data("quotes.jsonl")).Take(20).ToList();
        File.WriteAllText(Path.Combine(dir, "data.jsonl"), string.Join("\n", jsonl) + "\n");
        File.WriteAllText(Path.Combine(dir, "data.json"), "[" + string.Join(",\n", jsonl) + "]\n");
        File.WriteAllText(Path.Combine(dir, "data.txt"), "first line\n\nthird line with ünïcödé\r\nfourth\rfifth\n");
        var ds = DatasetLoader.LoadDataset("csv", Path.Combine(dir, "data.csv"))["train"];
        ds.ToParquet(Path.Combine(dir, "data.parquet"));
        return dir;
    }
}
