using Peft.Core;
using Peft.Transformers.Generation;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Continues a prompt (HF <c>TextGenerationPipeline</c>). Like HF, it samples by default (temperature 0.7, up to
/// 256 new tokens) unless the model's generation_config.json or the call says otherwise (<c>DoSample = false</c> for
/// greedy). It encodes the prompt, calls <see cref="GenerationLoop.Generate(nn.Module{ModelInput, ModelOutput}, Tensor, Tensor?, GenerationConfig, GenerationConfig?)"/>
/// and decodes the new tokens of each returned sequence without special tokens, as transformers 5.x's
/// <c>postprocess</c> does (<c>decode(sequence[prompt_len:])</c>, clean-up of tokenization spaces only for WordPiece
/// tokenizers: 5.x ignores it for BPE). With <c>returnFullText</c> (default) the text is the prompt string followed by
/// that decoded continuation, so a Llama-family prompt ending in "." continues as "...Monday.could", not "... could".
/// Chat input (a list of messages) is in <see cref="RunChat(System.Text.Json.Nodes.JsonArray, GenerationConfig?, bool?, CancellationToken)"/>.
/// </summary>
/// <param name="model">A causal LM (a <c>PreTrainedModel</c>, a <c>PeftModel</c>, ...).</param>
/// <param name="tokenizer">Its tokenizer.</param>
/// <param name="modelDefaults">The model's generation defaults (<c>generation_config.json</c>), or null.</param>
public sealed partial class TextGenerationPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer,
    GenerationConfig? modelDefaults = null) : Pipeline(model, tokenizer)
{
    /// <summary>
    /// HF's text-generation pipeline defaults (<c>_default_generation_config</c>): 256 new tokens, sampling at
    /// temperature 0.7. They sit under the model's generation_config.json values, which sit under the call's.
    /// </summary>
    public static GenerationConfig PipelineDefaults { get; } = new() { MaxNewTokens = 256, DoSample = true, Temperature = 0.7 };

    /// <inheritdoc />
    public override string Task => "text-generation";

    /// <summary>The model's generation defaults used under every call's config.</summary>
    public GenerationConfig? ModelDefaults { get; } = modelDefaults;

    /// <summary>What a call's config is merged over: the model's defaults over <see cref="PipelineDefaults"/>.</summary>
    public GenerationConfig EffectiveDefaults => (ModelDefaults ?? new GenerationConfig()).MergeOver(PipelineDefaults);

    /// <summary>
    /// Generates <c>NumReturnSequences</c> continuations of <paramref name="prompt"/>; each result carries
    /// <see cref="PipelineResult.GeneratedText"/> and <see cref="PipelineResult.GeneratedTokenIds"/>.
    /// </summary>
    /// <param name="prompt">The prompt text.</param>
    /// <param name="config">Decoding settings (MaxNewTokens / MaxLength, sampling, beams, NumReturnSequences, ...).</param>
    /// <param name="returnFullText">Prepend the prompt (HF <c>return_full_text</c>, default true).</param>
    /// <param name="cancellationToken">Checked before each decoding step.</param>
    public IReadOnlyList<PipelineResult> Run(string prompt, GenerationConfig? config, bool returnFullText,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        config ??= new GenerationConfig();
        var enc = Tokenizer.Encode(prompt, addSpecialTokens: true);
        if (enc.Ids.Count == 0) throw new ArgumentException($"prompt \"{prompt}\" encodes to no tokens; text generation needs at least one", nameof(prompt));
        return Generate(enc.Ids, config, cancellationToken)
            .Select(r => r with { GeneratedText = returnFullText ? prompt + r.GeneratedText : r.GeneratedText })
            .ToList();
    }

    /// <summary>Generates from prompt ids; each result's text is the decoded continuation (the tokens after the prompt).</summary>
    private List<PipelineResult> Generate(IReadOnlyList<int> promptIds, GenerationConfig config, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(promptIds.Select(x => (long)x).ToArray(), [1, promptIds.Count]);
        var mask = ones_like(ids);
        var output = GenerationLoop.Generate(Model, ids, mask, config, EffectiveDefaults, cancellationToken);
        var results = new List<PipelineResult>();
        for (int r = 0; r < output.shape[0]; r++)
        {
            var seq = output[r].data<long>().Select(x => (int)x).ToArray();
            results.Add(new PipelineResult { GeneratedText = DecodeContinuation(seq.Skip(promptIds.Count)), GeneratedTokenIds = seq });
        }
        return results;
    }

    /// <summary>
    /// HF 5.x: <c>decode(new_ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)</c>, where the clean-up is
    /// ignored for BPE tokenizers; only a WordPiece tokenizer (## continuation prefix) gets it.
    /// </summary>
    private string DecodeContinuation(IEnumerable<int> newIds) =>
        Tokenizer is PipelineTokenizer { HasContinuingSubwordPrefix: true } wordPiece
            ? wordPiece.Tokenizer.Decode(newIds, skipSpecialTokens: true, cleanUpTokenizationSpaces: true)
            : Tokenizer.Decode(newIds, skipSpecialTokens: true);

    /// <summary>Batch form of <see cref="Run(string, GenerationConfig?, bool, CancellationToken)"/>: prompts are generated one by one.</summary>
    public IReadOnlyList<IReadOnlyList<PipelineResult>> Run(IEnumerable<string> prompts, GenerationConfig? config, bool returnFullText = true,
        CancellationToken cancellationToken = default) =>
        prompts.Select(p => Run(p, config, returnFullText, cancellationToken)).ToList();

    /// <summary>
    /// Streams the new text of one prompt piece by piece (HF <c>TextStreamer</c>): greedy or sampling only.
    /// </summary>
    public IEnumerable<string> Stream(string prompt, GenerationConfig? config = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        config ??= new GenerationConfig();
        var enc = Tokenizer.Encode(prompt, addSpecialTokens: true);
        var ids = tensor(enc.Ids.Select(x => (long)x).ToArray(), [1, enc.Ids.Count]);
        ids.DetachFromDisposeScope();
        return StreamCore(ids, config, cancellationToken);
    }

    private IEnumerable<string> StreamCore(Tensor ids, GenerationConfig config, CancellationToken ct)
    {
        using (ids)
        {
            foreach (var piece in GenerationLoop.StreamText(Model, ids, null, config, t => Tokenizer.Decode(t, skipSpecialTokens: true), EffectiveDefaults, ct))
                yield return piece;
        }
    }

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) =>
        Run(input, generationConfig, returnFullText: true);
}
