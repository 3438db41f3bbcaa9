using Peft.Core.IO;
using System.Text.Json.Nodes;
using Peft.Transformers.Tokenization.Pipeline;

namespace Peft.Transformers;

/// <summary>Loads the tokenizer of a Hugging Face model folder (HF <c>AutoTokenizer.from_pretrained</c>).</summary>
public static class AutoTokenizer
{
    /// <summary>
    /// Loads <c>tokenizer.json</c> + <c>tokenizer_config.json</c> (+ <c>special_tokens_map.json</c>) from
    /// <paramref name="dir"/>; without tokenizer.json, the legacy files: <c>vocab.json</c> + <c>merges.txt</c> (GPT-2
    /// byte-level BPE) or <c>vocab.txt</c> (BERT WordPiece). A malformed or unsupported component fails here with a
    /// message naming it.
    /// </summary>
    /// <param name="dir">A model folder, or a hub id ("org/name") downloaded into / found in the HF cache (<see cref="HubCache.ResolveModelDir"/>).</param>
    public static PreTrainedTokenizer FromPretrained(string dir) => FromPretrained(dir, null);

    /// <summary>As <see cref="FromPretrained(string)"/>, with hub settings (revision, token, cache folder, offline, endpoint) for a hub id.</summary>
    /// <remarks>
    /// As in transformers 5, a tokenizer class that defines its own pipeline (<c>LlamaTokenizer</c>: Metaspace with
    /// prepend scheme "first", see <c>TokenizerClassDefinitions</c>) takes only the vocabulary, merges and added tokens
    /// from tokenizer.json; <see cref="FromTokenizerFile"/> uses the file as written.
    /// </remarks>
    public static PreTrainedTokenizer FromPretrained(string dir, FromPretrainedOptions? options) => Load(dir, options, classPipeline: true);

    /// <summary>
    /// Loads the folder with its <c>tokenizer.json</c> pipeline exactly as written (HF
    /// <c>PreTrainedTokenizerFast.from_pretrained</c>, tokenizers' <c>Tokenizer.from_file</c>), ignoring the pipeline a
    /// tokenizer_class defines in transformers 5 (the Llama-2 file's Prepend normalizer stays). The config's special
    /// tokens, chat template and padding settings apply as in <see cref="FromPretrained(string)"/>.
    /// </summary>
    /// <param name="dir">A model folder, or a hub id found in / downloaded into the HF cache.</param>
    /// <param name="options">Hub settings for a hub id.</param>
    public static PreTrainedTokenizer FromTokenizerFile(string dir, FromPretrainedOptions? options = null) => Load(dir, options, classPipeline: false);

    private static PreTrainedTokenizer Load(string dir, FromPretrainedOptions? options, bool classPipeline)
    {
        ArgumentException.ThrowIfNullOrEmpty(dir);
        if (!Directory.Exists(dir) && Hub.HubPaths.IsRepoId(dir)) dir = HubCache.ResolveModelDir(dir, options);
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"AutoTokenizer.FromPretrained: '{dir}' is neither a folder nor a hub id (org/name)");
        var config = ReadObject(Path.Combine(dir, "tokenizer_config.json")) ?? [];
        if (ReadObject(Path.Combine(dir, "special_tokens_map.json")) is JsonObject map)
            foreach (var (k, v) in map)
                if (config[k] is null && v is not null) config[k] = v.DeepClone();

        // transformers 5 saves the chat template beside the config; that file wins over the config's key
        var jinja = Path.Combine(dir, "chat_template.jinja");
        if (File.Exists(jinja)) config["chat_template"] = File.ReadAllText(jinja);

        string tj = Path.Combine(dir, "tokenizer.json");
        JsonObject json;
        string source = tj; // the file(s) the pipeline comes from, named in errors
        if (File.Exists(tj))
        {
            json = ReadObject(tj)!;
            if (classPipeline) json = TokenizerClassDefinitions.Apply(json, config);
        }
        else if (File.Exists(Path.Combine(dir, "vocab.json")) && File.Exists(Path.Combine(dir, "merges.txt")))
        {
            source = Path.Combine(dir, "vocab.json") + " + merges.txt";
            json = ReaderErrors.Guard(source, () => LegacyFiles.ByteLevelBpe(dir, config));
        }
        else if (File.Exists(Path.Combine(dir, "vocab.txt")))
        {
            source = Path.Combine(dir, "vocab.txt");
            json = ReaderErrors.Guard(source, () => LegacyFiles.WordPiece(dir, config));
        }
        else throw new FileNotFoundException($"AutoTokenizer.FromPretrained: '{dir}' has no tokenizer.json, vocab.json + merges.txt or vocab.txt");
        var pipe = ReaderErrors.Guard(source, () => TokenizerPipeline.FromJson(json, source));
        var configSource = Path.Combine(dir, "tokenizer_config.json") + " / special_tokens_map.json";
        return ReaderErrors.Guard(configSource, () => new PreTrainedTokenizer(pipe, config, dir));
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        JsonNode? n;
        try
        {
            n = ReaderErrors.ParseJson(File.ReadAllText(path), path, new System.Text.Json.JsonDocumentOptions { AllowTrailingCommas = true });
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e);
        }
        return n as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object at the top level");
    }
}
