using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// The result of <see cref="PreTrainedTokenizer.EncodeBatch(IReadOnlyList{string}, bool, bool, int?, bool)"/> (HF
/// <c>BatchEncoding</c>): plain per-row lists, the per-row <see cref="TokenEncoding"/>s (offsets, word ids), and
/// int64 tensors [B, T] built on first access. The tensors are owned by this object: <see cref="Dispose"/> frees
/// them (they are created outside any dispose scope). Rows must have equal lengths for the tensors (pad them).
/// </summary>
public sealed class BatchEncoding : IDisposable
{
    private readonly bool _hasTokenTypeIds;
    private Tensor? _inputIds;
    private Tensor? _attentionMask;
    private Tensor? _tokenTypeIds;

    internal BatchEncoding(IReadOnlyList<TokenEncoding> encodings, bool hasTokenTypeIds)
    {
        Encodings = encodings;
        _hasTokenTypeIds = hasTokenTypeIds;
        InputIdsList = encodings.Select(e => e.Ids.ToArray()).ToArray();
        AttentionMaskList = encodings.Select(e => e.AttentionMask.ToArray()).ToArray();
        TokenTypeIdsList = hasTokenTypeIds ? encodings.Select(e => e.TypeIds.ToArray()).ToArray() : null;
    }

    /// <summary>One encoding per input row (offsets, word ids, tokens, overflow).</summary>
    public IReadOnlyList<TokenEncoding> Encodings { get; }

    /// <summary>Token ids per row (HF <c>input_ids</c> as lists).</summary>
    public IReadOnlyList<int[]> InputIdsList { get; }

    /// <summary>Attention mask per row: 1 for tokens, 0 for padding.</summary>
    public IReadOnlyList<int[]> AttentionMaskList { get; }

    /// <summary>Token type ids per row, or null when the tokenizer's model inputs have none (GPT-2, Llama, ...).</summary>
    public IReadOnlyList<int[]>? TokenTypeIdsList { get; }

    /// <summary>Number of rows.</summary>
    public int Count => Encodings.Count;

    /// <summary>int64 tensor [B, T] of token ids on the CPU; owned by this object.</summary>
    public Tensor InputIds => _inputIds ??= ToTensor(InputIdsList, "input_ids");

    /// <summary>int64 tensor [B, T] with 1 for tokens and 0 for padding; owned by this object.</summary>
    public Tensor AttentionMask => _attentionMask ??= ToTensor(AttentionMaskList, "attention_mask");

    /// <summary>int64 tensor [B, T] of token type ids, or null when the tokenizer has none; owned by this object.</summary>
    public Tensor? TokenTypeIds => TokenTypeIdsList is null ? null : _tokenTypeIds ??= ToTensor(TokenTypeIdsList, "token_type_ids");

    /// <summary>HF <c>word_ids(batch_index)</c>.</summary>
    public IReadOnlyList<int?> WordIds(int batchIndex) => Encodings[batchIndex].WordIds;

    /// <summary>HF <c>sequence_ids(batch_index)</c>.</summary>
    public IReadOnlyList<int?> SequenceIds(int batchIndex) => Encodings[batchIndex].SequenceIds;

    /// <summary>
    /// The columns for a batched <c>Dataset.Map</c>: "input_ids", "attention_mask" (and "token_type_ids" when the
    /// tokenizer has them), each a <c>List&lt;int[]&gt;</c> with one array per row.
    /// </summary>
    public IReadOnlyDictionary<string, System.Collections.IList> ToColumns()
    {
        var d = new Dictionary<string, System.Collections.IList>
        {
            ["input_ids"] = InputIdsList.ToList(),
            ["attention_mask"] = AttentionMaskList.ToList(),
        };
        if (_hasTokenTypeIds && TokenTypeIdsList is not null) d["token_type_ids"] = TokenTypeIdsList.ToList();
        return d;
    }

    /// <summary>Frees the tensors created by the tensor properties.</summary>
    public void Dispose()
    {
        _inputIds?.Dispose();
        _attentionMask?.Dispose();
        _tokenTypeIds?.Dispose();
        _inputIds = _attentionMask = _tokenTypeIds = null;
    }

    private static Tensor ToTensor(IReadOnlyList<int[]> rows, string name)
    {
        int b = rows.Count;
        int t = b == 0 ? 0 : rows[0].Length;
        for (int i = 1; i < b; i++)
            if (rows[i].Length != t)
                throw new InvalidOperationException(
                    $"BatchEncoding.{name}: rows have different lengths ({t} and {rows[i].Length} at row {i}); encode with padding: true to build a [B, T] tensor");
        var data = new long[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < t; j++) data[i * t + j] = rows[i][j];
        var result = tensor(data, new long[] { b, t }, ScalarType.Int64);
        result.DetachFromDisposeScope();
        return result;
    }
}
