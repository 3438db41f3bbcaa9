using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Prompt tuning (PEFT <c>PromptTuningConfig</c>, Lester et al. 2021): <see cref="PromptLearningConfig.NumVirtualTokens"/>
/// learned embeddings prepended to the input embeddings. Initialised at random (<c>RANDOM</c>), from the embeddings of
/// random vocabulary tokens (<c>SAMPLE_VOCAB</c>), or from the embeddings of <see cref="PromptTuningInitText"/>'s tokens
/// (<c>TEXT</c>; PEFT loads <see cref="TokenizerNameOrPath"/> with AutoTokenizer — here pass <see cref="InitTokenizer"/>).
/// </summary>
public sealed record PromptTuningConfig : PromptLearningConfig
{
    /// <summary>PEFT's <c>prompt_tuning_init</c> values.</summary>
    public static class Init
    {
        /// <summary>"RANDOM": N(0, 1) as <c>nn.Embedding</c> initialises.</summary>
        public const string Random = "RANDOM";
        /// <summary>"TEXT": the word embeddings of the tokenized init text, repeated or cut to the virtual token count.</summary>
        public const string Text = "TEXT";
        /// <summary>"SAMPLE_VOCAB": the word embeddings of uniformly drawn vocabulary ids.</summary>
        public const string SampleVocab = "SAMPLE_VOCAB";
    }

    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "PROMPT_TUNING";

    /// <summary>HF <c>prompt_tuning_init</c>: "RANDOM" (default), "TEXT" or "SAMPLE_VOCAB" (see <see cref="Init"/>).</summary>
    [JsonPropertyName("prompt_tuning_init")]
    public string PromptTuningInit { get; init; } = Init.Random;

    /// <summary>HF <c>prompt_tuning_init_text</c>: the text whose token embeddings start the prompt (TEXT only).</summary>
    [JsonPropertyName("prompt_tuning_init_text")]
    public string? PromptTuningInitText { get; init; }

    /// <summary>HF <c>tokenizer_name_or_path</c>: the tokenizer of the TEXT init (recorded in the file; PEFT requires it for TEXT).</summary>
    [JsonPropertyName("tokenizer_name_or_path")]
    public string? TokenizerNameOrPath { get; init; }

    /// <summary>
    /// The tokenizer used for TEXT init (not saved): text → ids as HF's <c>tokenizer(text)["input_ids"]</c> (special
    /// tokens added), e.g. <c>text =&gt; AutoTokenizer.FromPretrained(dir).Encode(text)</c>. Peft.Core cannot load a
    /// tokenizer itself, so TEXT init without it fails naming <see cref="TokenizerNameOrPath"/>.
    /// </summary>
    [JsonIgnore]
    public Func<string, IReadOnlyList<int>>? InitTokenizer { get; init; }

    /// <inheritdoc />
    protected override IReadOnlyDictionary<string, JsonNode?> PeftDefaults { get; } = new Dictionary<string, JsonNode?>
    {
        ["auto_mapping"] = null, ["tokenizer_kwargs"] = null,
    };

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (PromptTuningInit is not (Init.Random or Init.Text or Init.SampleVocab))
            throw new ArgumentException($"PROMPT_TUNING config: prompt_tuning_init must be \"RANDOM\", \"TEXT\" or \"SAMPLE_VOCAB\", got \"{PromptTuningInit}\".", nameof(PromptTuningInit));
        if (PromptTuningInit == Init.Text && string.IsNullOrEmpty(TokenizerNameOrPath))
            throw new ArgumentException("PROMPT_TUNING config: prompt_tuning_init \"TEXT\" needs tokenizer_name_or_path (PEFT raises the same).", nameof(TokenizerNameOrPath));
        if (PromptTuningInit == Init.Text && PromptTuningInitText is null)
            throw new ArgumentException("PROMPT_TUNING config: prompt_tuning_init \"TEXT\" needs prompt_tuning_init_text.", nameof(PromptTuningInitText));
        if (PromptTuningInit != Init.Text && ExtensionData is not null && ExtensionData.TryGetValue("tokenizer_kwargs", out var kw) && !IsNullOrEmpty(kw))
            throw new ArgumentException("PROMPT_TUNING config: tokenizer_kwargs is only valid with prompt_tuning_init \"TEXT\".", "tokenizer_kwargs");
    }
}
