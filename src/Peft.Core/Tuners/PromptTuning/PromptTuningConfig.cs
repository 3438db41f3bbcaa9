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
    /// <inheritdoc />
    [JsonIgnore]
    public override string PeftType => "PROMPT_TUNING";

    /// <summary>HF <c>prompt_tuning_init</c>: <see cref="Core.PromptTuningInit.Random"/> (default), <see cref="Core.PromptTuningInit.Text"/> or <see cref="Core.PromptTuningInit.SampleVocab"/>.</summary>
    [JsonPropertyName("prompt_tuning_init")]
    public PromptTuningInit PromptTuningInit { get; init; } = PromptTuningInit.Random;

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
        if (!Enum.IsDefined(PromptTuningInit))
            throw new ArgumentOutOfRangeException(nameof(PromptTuningInit), PromptTuningInit, $"PROMPT_TUNING config: prompt_tuning_init must be Random, Text or SampleVocab, got {(int)PromptTuningInit}.");
        if (PromptTuningInit == PromptTuningInit.Text && string.IsNullOrEmpty(TokenizerNameOrPath))
            throw new ArgumentException("PROMPT_TUNING config: prompt_tuning_init \"TEXT\" needs tokenizer_name_or_path (PEFT raises the same).", nameof(TokenizerNameOrPath));
        if (PromptTuningInit == PromptTuningInit.Text && PromptTuningInitText is null)
            throw new ArgumentException("PROMPT_TUNING config: prompt_tuning_init \"TEXT\" needs prompt_tuning_init_text.", nameof(PromptTuningInitText));
        if (PromptTuningInit != PromptTuningInit.Text && ExtensionData is not null && ExtensionData.TryGetValue("tokenizer_kwargs", out var kw) && !IsNullOrEmpty(kw))
            throw new ArgumentException("PROMPT_TUNING config: tokenizer_kwargs is only valid with prompt_tuning_init \"TEXT\".", "tokenizer_kwargs");
    }
}
