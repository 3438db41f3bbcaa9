namespace Peft.Testing;

/// <summary>
/// Locates the reference fixtures (<c>../shared/fixtures</c> beside the checkout) and data (<c>../shared/data</c>).
/// Walks up from the test assembly's folder until a folder holds <c>shared/fixtures/README.md</c>, so it works
/// from a clone, a git worktree below the project folder, and CI's fresh clone with shared/ beside it.
/// <c>PEFT_SHARED_DIR</c> overrides the search.
/// </summary>
public static class Fixtures
{
    private static readonly Lazy<string> SharedDir = new(FindShared);

    /// <summary>The shared folder (holds fixtures/ and data/).</summary>
    public static string Shared => SharedDir.Value;

    /// <summary><c>shared/fixtures/hf</c>.</summary>
    public static string Hf => Path.Combine(Shared, "fixtures", "hf");

    /// <summary>A tiny model folder, e.g. <c>Model("gpt2-tiny")</c>.</summary>
    public static string Model(string name) => Path.Combine(Hf, "models", name);

    /// <summary>The forward reference of a tiny model, e.g. <c>Reference("gpt2-tiny")</c>.</summary>
    public static string Reference(string name) => Path.Combine(Hf, "references", name + ".forward.safetensors");

    /// <summary>An adapter case folder, e.g. <c>Adapter("opt-lora")</c>.</summary>
    public static string Adapter(string name) => Path.Combine(Hf, "adapters", name);

    /// <summary>A training case folder, e.g. <c>Training("opt-lora")</c>.</summary>
    public static string Training(string name) => Path.Combine(Hf, "training", name);

    /// <summary>A data file, e.g. <c>Data("quotes.jsonl")</c>.</summary>
    public static string Data(string name) => Path.Combine(Shared, "data", name);

    /// <summary>The tiny model folder names.</summary>
    public static IReadOnlyList<string> TinyModels { get; } =
        ["bert-tiny", "bert-ner-tiny", "bert-qa-tiny", "gpt2-tiny", "opt-tiny", "llama-tiny", "qwen2-tiny"];

    private static string FindShared()
    {
        var env = Environment.GetEnvironmentVariable("PEFT_SHARED_DIR");
        if (!string.IsNullOrEmpty(env))
        {
            return Directory.Exists(Path.Combine(env, "fixtures"))
                ? Path.GetFullPath(env)
                : throw new DirectoryNotFoundException($"PEFT_SHARED_DIR={env} has no fixtures/ folder");
        }
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared");
            if (File.Exists(Path.Combine(candidate, "fixtures", "README.md"))) return candidate;
        }
        throw new DirectoryNotFoundException(
            $"Could not find shared/fixtures above {AppContext.BaseDirectory}. The tests expect ../shared beside the checkout (or set PEFT_SHARED_DIR).");
    }
}
