using Peft.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Extractive question answering (HF <c>QuestionAnsweringPipeline</c>): encodes (question, context), masks every
/// position outside the context (except CLS for "no answer"), takes softmax start/end probabilities and returns the
/// best spans (score = p_start · p_end, end ≥ start, at most <c>maxAnswerLen</c> tokens) with character offsets in the
/// context, widened to whole words as HF's <c>align_to_words</c>.
/// </summary>
/// <remarks>
/// A context longer than <c>maxSeqLen</c> is split into overlapping windows (HF <c>doc_stride</c>, default
/// min(maxSeqLen / 2, 128)); answers of every window are ranked together, the "no answer" score is the lowest over windows.
/// </remarks>
/// <param name="model">A QA model returning <c>StartLogits</c> / <c>EndLogits</c> [1, T].</param>
/// <param name="tokenizer">Its tokenizer (pairs, offsets and sequence ids are needed).</param>
public sealed class QuestionAnsweringPipeline(nn.Module<ModelInput, ModelOutput> model, IPipelineTokenizer tokenizer)
    : Pipeline(model, tokenizer)
{
    /// <inheritdoc />
    public override string Task => "question-answering";

    /// <summary>
    /// Answers <paramref name="question"/> from <paramref name="context"/>: the <paramref name="topK"/> best spans, best first.
    /// </summary>
    /// <param name="question">The question.</param>
    /// <param name="context">The text holding the answer.</param>
    /// <param name="topK">Answers returned (HF <c>top_k</c>).</param>
    /// <param name="maxAnswerLen">Longest answer in tokens (HF <c>max_answer_len</c>, 15).</param>
    /// <param name="handleImpossibleAnswer">Allow the empty answer (scored by the CLS position; HF <c>handle_impossible_answer</c>).</param>
    /// <param name="maxSeqLen">Longest encoded input (HF <c>max_seq_len</c>, 384).</param>
    /// <param name="alignToWords">Widen spans to whole words (HF <c>align_to_words</c>, default true).</param>
    /// <param name="docStride">Overlap of consecutive windows in tokens (HF <c>doc_stride</c>); null = min(maxSeqLen / 2, 128).</param>
    public IReadOnlyList<PipelineResult> Run(string question, string context, int topK = 1, int maxAnswerLen = 15,
        bool handleImpossibleAnswer = false, int maxSeqLen = 384, bool alignToWords = true, int? docStride = null)
    {
        ArgumentNullException.ThrowIfNull(question);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxAnswerLen, 1);
        if (string.IsNullOrWhiteSpace(question)) throw new ArgumentException("question is empty", nameof(question));
        if (string.IsNullOrWhiteSpace(context)) throw new ArgumentException("context is empty", nameof(context));
        int stride = docStride ?? Math.Min(maxSeqLen / 2, 128);
        var first = Tokenizer.Encode(question, context, maxLength: maxSeqLen, stride: stride);
        var windows = new List<PipelineEncoding> { first };
        if (first.Overflowing is { } more) windows.AddRange(more);
        var answers = new List<PipelineResult>();
        double minNull = double.PositiveInfinity;
        foreach (var enc in windows)
        {
            float[] startLogits, endLogits;
            using (NewDisposeScope())
            {
                var output = Forward(enc);
                startLogits = (output.StartLogits ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no StartLogits"))
                    .reshape(-1).to_type(ScalarType.Float32).data<float>().ToArray();
                endLogits = (output.EndLogits ?? throw new InvalidOperationException($"{Model.GetType().Name} returned no EndLogits"))
                    .reshape(-1).to_type(ScalarType.Float32).data<float>().ToArray();
            }
            var (spans, nullScore) = DecodeWindow(context, enc, startLogits, endLogits, topK, maxAnswerLen, alignToWords);
            answers.AddRange(spans);
            minNull = Math.Min(minNull, nullScore);
        }
        if (handleImpossibleAnswer) answers.Add(new PipelineResult { Score = minNull, Start = 0, End = 0, Answer = "" });
        return answers.OrderByDescending(r => r.Score).Take(topK).ToList();
    }

    /// <summary>HF's span decoding from start/end logits over one encoded (question, context) window.</summary>
    public IReadOnlyList<PipelineResult> Postprocess(string context, PipelineEncoding enc, float[] startLogits, float[] endLogits,
        int topK = 1, int maxAnswerLen = 15, bool handleImpossibleAnswer = false, bool alignToWords = true)
    {
        var (results, minNull) = DecodeWindow(context, enc, startLogits, endLogits, topK, maxAnswerLen, alignToWords);
        if (handleImpossibleAnswer) results.Add(new PipelineResult { Score = minNull, Start = 0, End = 0, Answer = "" });
        return results.OrderByDescending(r => r.Score).Take(topK).ToList();
    }

    private (List<PipelineResult> Spans, double NullScore) DecodeWindow(string context, PipelineEncoding enc, float[] startLogits, float[] endLogits,
        int topK, int maxAnswerLen, bool alignToWords)
    {
        int n = enc.Ids.Count;
        // desired positions: the context, and CLS (kept for the "no answer" score)
        var desired = new bool[n];
        for (int i = 0; i < n; i++) desired[i] = enc.SequenceIds[i] == 1 || (Tokenizer.ClsTokenId is { } cls && enc.Ids[i] == cls);
        var s = Softmax(startLogits.Select((x, i) => desired[i] ? x : -10000f).ToArray());
        var e = Softmax(endLogits.Select((x, i) => desired[i] ? x : -10000f).ToArray());
        double nullScore = s[0] * e[0];
        s[0] = e[0] = 0.0;

        var spans = new List<(double Score, int Start, int End)>();
        for (int a = 0; a < n; a++)
        {
            if (!desired[a]) continue;
            for (int b = a; b < n && b - a < maxAnswerLen; b++)
                if (desired[b]) spans.Add((s[a] * e[b], a, b));
        }
        var results = spans.OrderByDescending(x => x.Score).Take(topK)
            .Where(x => enc.SequenceIds[x.Start] == 1 && enc.SequenceIds[x.End] == 1)
            .Select(x =>
            {
                var (cs, ce) = CharSpan(context, enc, x.Start, x.End, alignToWords);
                return new PipelineResult { Score = x.Score, Start = cs, End = ce, Answer = context[cs..ce] };
            }).ToList();
        return (results, nullScore);
    }

    /// <summary>Character span of tokens [a, b] in the context, widened to their words when <paramref name="alignToWords"/>.</summary>
    private (int Start, int End) CharSpan(string context, PipelineEncoding enc, int a, int b, bool alignToWords)
    {
        int start = enc.Offsets[a].Start, end = enc.Offsets[b].End;
        if (!alignToWords) return (start, end);
        if (enc.WordIds is { } w)
        {
            for (int i = a - 1; i >= 0 && enc.SequenceIds[i] == 1 && w[i] == w[a]; i--) start = enc.Offsets[i].Start;
            for (int i = b + 1; i < enc.Ids.Count && enc.SequenceIds[i] == 1 && w[i] == w[b]; i++) end = enc.Offsets[i].End;
            return (start, end);
        }
        // no word ids: a word continues while tokens touch (no character between them)
        for (int i = a - 1; i >= 0 && enc.SequenceIds[i] == 1 && enc.Offsets[i].End == start && IsWordChar(context, start - 1) && IsWordChar(context, start); i--)
            start = enc.Offsets[i].Start;
        for (int i = b + 1; i < enc.Ids.Count && enc.SequenceIds[i] == 1 && enc.Offsets[i].Start == end && IsWordChar(context, end - 1) && IsWordChar(context, end); i++)
            end = enc.Offsets[i].End;
        return (start, end);
    }

    private static bool IsWordChar(string text, int i) => i >= 0 && i < text.Length && char.IsLetterOrDigit(text[i]);

    /// <inheritdoc />
    protected override IReadOnlyList<PipelineResult> RunDefault(string input, GenerationConfig? generationConfig) =>
        throw new ArgumentException("question-answering needs a question and a context: call Run(question, context)", nameof(input));
}
