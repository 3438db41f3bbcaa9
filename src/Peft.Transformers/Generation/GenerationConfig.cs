using System.Text.Json;
using System.Text.Json.Serialization;

namespace Peft.Transformers;

/// <summary>
/// Decoding settings, named as Hugging Face's <c>GenerationConfig</c> (JSON keys as in <c>generation_config.json</c>).
/// A model carries the defaults read from its folder; a per-call config overrides them, except that null token ids
/// (<see cref="PadTokenId"/>, <see cref="EosTokenId"/>, <see cref="BosTokenId"/>) fall back to the model's.
/// </summary>
public sealed record GenerationConfig
{
    // Value-typed settings remember whether they were given (object initializer, `with`, or JSON), so a per-call
    // `DoSample = false` wins over a model or pipeline default even though false is also the library default.
    private int _minLength = 0;
    private bool _useCache = true;
    private bool _doSample = false;
    private double _temperature = 1.0;
    private int _topK = 50;
    private double _topP = 1.0;
    private double _repetitionPenalty = 1.0;
    private int _noRepeatNgramSize = 0;
    private int _numBeams = 1;
    private double _lengthPenalty = 1.0;
    private bool _earlyStopping = false;
    private int _numReturnSequences = 1;
    private int _explicit;

    private static readonly string[] TrackedNames =
    [
        nameof(MinLength),
        nameof(UseCache),
        nameof(DoSample),
        nameof(Temperature),
        nameof(TopK),
        nameof(TopP),
        nameof(RepetitionPenalty),
        nameof(NoRepeatNgramSize),
        nameof(NumBeams),
        nameof(LengthPenalty),
        nameof(EarlyStopping),
        nameof(NumReturnSequences),
    ];

    /// <summary>
    /// True when <paramref name="propertyName"/> (a value-typed setting such as <c>nameof(DoSample)</c>) was set
    /// explicitly rather than left at its library default. Nullable settings are "set" when not null.
    /// </summary>
    public bool IsExplicit(string propertyName)
    {
        int i = Array.IndexOf(TrackedNames, propertyName);
        return i >= 0 ? (_explicit & (1 << i)) != 0 : throw new ArgumentException($"GenerationConfig has no tracked value setting '{propertyName}'", nameof(propertyName));
    }

    /// <summary>Number of tokens to generate after the prompt. HF <c>max_new_tokens</c>.</summary>
    [JsonPropertyName("max_new_tokens")] public int? MaxNewTokens { get; init; }

    /// <summary>Maximum total length (prompt + new). Used when <see cref="MaxNewTokens"/> is null. HF <c>max_length</c> (default 20).</summary>
    [JsonPropertyName("max_length")] public int? MaxLength { get; init; }

    /// <summary>Minimum total length (prompt + new) before EOS may be produced (0 = off). HF <c>min_length</c>.</summary>
    [JsonPropertyName("min_length")] public int MinLength { get => _minLength; init { _minLength = value; _explicit |= 1; } }

    /// <summary>Reuse the keys/values of earlier positions (one new token per step). HF <c>use_cache</c> (default true).</summary>
    [JsonPropertyName("use_cache")] public bool UseCache { get => _useCache; init { _useCache = value; _explicit |= 2; } }

    /// <summary>Minimum number of new tokens before EOS may be produced. HF <c>min_new_tokens</c>.</summary>
    [JsonPropertyName("min_new_tokens")] public int? MinNewTokens { get; init; }

    /// <summary>Sample instead of greedy/beam decoding. HF <c>do_sample</c>.</summary>
    [JsonPropertyName("do_sample")] public bool DoSample { get => _doSample; init { _doSample = value; _explicit |= 4; } }

    /// <summary>Softmax temperature for sampling. HF <c>temperature</c> (default 1.0).</summary>
    [JsonPropertyName("temperature")] public double Temperature { get => _temperature; init { _temperature = value; _explicit |= 8; } }

    /// <summary>Keep the k most likely tokens when sampling (0 = off). HF <c>top_k</c> (default 50).</summary>
    [JsonPropertyName("top_k")] public int TopK { get => _topK; init { _topK = value; _explicit |= 16; } }

    /// <summary>Nucleus sampling mass (1.0 = off). HF <c>top_p</c>.</summary>
    [JsonPropertyName("top_p")] public double TopP { get => _topP; init { _topP = value; _explicit |= 32; } }

    /// <summary>Penalty for tokens already present (1.0 = off). HF <c>repetition_penalty</c>.</summary>
    [JsonPropertyName("repetition_penalty")] public double RepetitionPenalty { get => _repetitionPenalty; init { _repetitionPenalty = value; _explicit |= 64; } }

    /// <summary>Forbid repeating any n-gram of this size (0 = off). HF <c>no_repeat_ngram_size</c>.</summary>
    [JsonPropertyName("no_repeat_ngram_size")] public int NoRepeatNgramSize { get => _noRepeatNgramSize; init { _noRepeatNgramSize = value; _explicit |= 128; } }

    /// <summary>Beam count (1 = no beam search). HF <c>num_beams</c>.</summary>
    [JsonPropertyName("num_beams")] public int NumBeams { get => _numBeams; init { _numBeams = value; _explicit |= 256; } }

    /// <summary>Exponent of the length normalisation of beam scores. HF <c>length_penalty</c>.</summary>
    [JsonPropertyName("length_penalty")] public double LengthPenalty { get => _lengthPenalty; init { _lengthPenalty = value; _explicit |= 512; } }

    /// <summary>Stop beam search when <see cref="NumBeams"/> finished candidates exist. HF <c>early_stopping</c>.</summary>
    [JsonPropertyName("early_stopping")] public bool EarlyStopping { get => _earlyStopping; init { _earlyStopping = value; _explicit |= 1024; } }

    /// <summary>Sequences returned per prompt. HF <c>num_return_sequences</c>.</summary>
    [JsonPropertyName("num_return_sequences")] public int NumReturnSequences { get => _numReturnSequences; init { _numReturnSequences = value; _explicit |= 2048; } }

    /// <summary>End-of-sequence id; see <see cref="EosTokenIds"/> for several. HF <c>eos_token_id</c>.</summary>
    [JsonIgnore] public int? EosTokenId { get; init; }

    /// <summary>All end-of-sequence ids (HF accepts an int or a list). When set, it wins over <see cref="EosTokenId"/>.</summary>
    [JsonIgnore] public IReadOnlyList<int>? EosTokenIds { get; init; }

    /// <summary>Padding id, used to fill finished rows. HF <c>pad_token_id</c>.</summary>
    [JsonPropertyName("pad_token_id")] public int? PadTokenId { get; init; }

    /// <summary>Beginning-of-sequence id. HF <c>bos_token_id</c>.</summary>
    [JsonPropertyName("bos_token_id")] public int? BosTokenId { get; init; }

    /// <summary><see cref="CacheImplementation"/>: static + CUDA graph on CUDA when eligible, the dynamic cache elsewhere (the default).</summary>
    public const string CacheAuto = "auto";

    /// <summary><see cref="CacheImplementation"/>: a preallocated cache (HF <c>StaticCache</c>); decoding steps are captured in a CUDA graph on CUDA.</summary>
    public const string CacheStatic = "static";

    /// <summary><see cref="CacheImplementation"/>: the cache grows with the sequence (HF <c>DynamicCache</c>).</summary>
    public const string CacheDynamic = "dynamic";

    /// <summary>
    /// The key/value cache used by greedy / sampling decoding. HF <c>cache_implementation</c>: null or
    /// <see cref="CacheAuto"/> (default) = <see cref="CacheStatic"/> with a CUDA graph of each decoding step when the
    /// inputs are on CUDA and the model is eligible (a causal LM of this library in eval mode, on one device, without
    /// sliding-window layers, no beam search, not prompt learning (a PeftModel with LoRA, IA3, ... is eligible)), <see cref="CacheDynamic"/> elsewhere;
    /// <see cref="CacheStatic"/> = static wherever eligible (eagerly off CUDA; throws when not eligible);
    /// <see cref="CacheDynamic"/> = never static. Environment variable <c>PEFT_CUDA_GRAPHS=0</c> disables graph
    /// capture. The static state is kept by the model for the next call (see
    /// <see cref="PreTrainedModel.ReleaseGenerationCaches"/>).
    /// </summary>
    [JsonPropertyName("cache_implementation")] public string? CacheImplementation { get; init; }

    /// <summary>Seed of the sampling generator (null = nondeterministic).</summary>
    [JsonPropertyName("seed")] public long? Seed { get; init; }

    /// <summary>Keys of generation_config.json this record does not model; kept and written back.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? ExtensionData { get; init; }

    /// <summary>The end-of-sequence ids in effect: <see cref="EosTokenIds"/>, else <see cref="EosTokenId"/>, else none.</summary>
    [JsonIgnore]
    public IReadOnlyList<int> EffectiveEosTokenIds =>
        EosTokenIds is { Count: > 0 } ids ? ids : EosTokenId is { } id ? [id] : [];

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>
    /// Reads a <c>generation_config.json</c> file (HF <c>GenerationConfig.from_pretrained</c>). <c>eos_token_id</c> may be
    /// an int or a list; unknown keys are kept in <see cref="ExtensionData"/>. A folder path reads the file inside it.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The JSON is malformed or a key has the wrong type (the message names it).</exception>
    public static GenerationConfig FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Directory.Exists(path)) path = Path.Combine(path, "generation_config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"generation config not found: {path}", path);
        return FromJson(File.ReadAllText(path), path);
    }

    /// <summary>Parses the JSON text of a <c>generation_config.json</c>; <paramref name="source"/> names it in errors.</summary>
    public static GenerationConfig FromJson(string json, string source = "generation_config.json") =>
        Peft.Core.IO.ReaderErrors.Guard(source, () => Parse(json, source));

    private static GenerationConfig Parse(string json, string source)
    {
        System.Text.Json.Nodes.JsonObject obj;
        try
        {
            obj = Peft.Core.IO.ReaderErrors.ParseJson(json, source) as System.Text.Json.Nodes.JsonObject
                  ?? throw new InvalidDataException($"{source}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: malformed JSON: {e.Message}", e);
        }
        IReadOnlyList<int>? eos = null;
        if (obj["eos_token_id"] is { } eosNode)
        {
            eos = eosNode switch
            {
                System.Text.Json.Nodes.JsonArray a => a.Select(x => x!.GetValue<int>()).ToArray(),
                System.Text.Json.Nodes.JsonValue v => [v.GetValue<int>()],
                _ => throw new InvalidDataException($"{source}: eos_token_id must be an int or a list of ints, got {eosNode.ToJsonString()}"),
            };
        }
        obj.Remove("eos_token_id");
        // HF writes early_stopping as a bool or "never"; "never" is treated as false (same stopping rule when length_penalty <= 0).
        if (obj["early_stopping"] is System.Text.Json.Nodes.JsonValue es && es.GetValueKind() == JsonValueKind.String)
            obj["early_stopping"] = false;
        GenerationConfig cfg;
        try
        {
            cfg = obj.Deserialize<GenerationConfig>(JsonOptions)
                  ?? throw new InvalidDataException($"{source}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: bad value at {e.Path}: {e.Message}", e);
        }
        return eos is null ? cfg : eos.Count == 1 ? cfg with { EosTokenId = eos[0] } : cfg with { EosTokenIds = eos, EosTokenId = eos[0] };
    }

    /// <summary>
    /// The JSON text of <c>generation_config.json</c>. With <paramref name="useDiff"/> (the default, as HF's
    /// <c>save_pretrained</c> writes it) only values that differ from a default <see cref="GenerationConfig"/> are
    /// written, plus every unknown key kept from the loaded file; eos is an int or a list.
    /// </summary>
    public string ToJson(bool useDiff = true)
    {
        var obj = JsonSerializer.SerializeToNode(this, JsonOptions)!.AsObject();
        var eos = EffectiveEosTokenIds;
        obj["eos_token_id"] = eos.Count switch
        {
            0 => null,
            1 => eos[0],
            _ => new System.Text.Json.Nodes.JsonArray(eos.Select(x => (System.Text.Json.Nodes.JsonNode?)x).ToArray()),
        };
        if (useDiff)
        {
            var defaults = JsonSerializer.SerializeToNode(new GenerationConfig(), JsonOptions)!.AsObject();
            defaults["eos_token_id"] = null;
            foreach (var key in obj.Select(kv => kv.Key).ToList())
            {
                if (ExtensionData?.ContainsKey(key) == true) continue;
                if (defaults.TryGetPropertyValue(key, out var d) && System.Text.Json.Nodes.JsonNode.DeepEquals(d, obj[key]))
                {
                    obj.Remove(key);
                }
            }
        }
        return obj.ToJsonString(JsonOptions);
    }

    /// <summary>Writes <c>generation_config.json</c> into <paramref name="dir"/> atomically (HF <c>save_pretrained</c>).</summary>
    public void SavePretrained(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        Directory.CreateDirectory(dir);
        Peft.Core.IO.AtomicFile.WriteAllText(Path.Combine(dir, "generation_config.json"), ToJson() + "\n");
    }

    /// <summary>
    /// Combines a per-call config with defaults underneath (a model's <c>generation_config.json</c>, or a pipeline's):
    /// a setting given explicitly here wins, otherwise the default's value is used (HF 5.x <c>use_model_defaults</c>);
    /// null token ids and lengths fall back to the default's. Explicit flags are combined, so configs can be layered.
    /// </summary>
    public GenerationConfig MergeOver(GenerationConfig? defaults)
    {
        if (defaults is null) return this;
        T Pick<T>(string name, T mine, T theirs) => IsExplicit(name) || !defaults.IsExplicit(name) ? mine : theirs;
        var merged = this with
        {
            MaxNewTokens = MaxNewTokens ?? (MaxLength is null ? defaults.MaxNewTokens : null),
            MaxLength = MaxLength ?? (MaxNewTokens is null ? defaults.MaxLength : null),
            MinNewTokens = MinNewTokens ?? defaults.MinNewTokens,
            EosTokenId = EosTokenId ?? (EosTokenIds is null ? defaults.EosTokenId : null),
            EosTokenIds = EosTokenIds ?? (EosTokenId is null ? defaults.EosTokenIds : null),
            PadTokenId = PadTokenId ?? defaults.PadTokenId,
            BosTokenId = BosTokenId ?? defaults.BosTokenId,
            Seed = Seed ?? defaults.Seed,
            CacheImplementation = CacheImplementation ?? defaults.CacheImplementation,
        };
        merged._minLength = Pick(nameof(MinLength), MinLength, defaults.MinLength);
        merged._useCache = Pick(nameof(UseCache), UseCache, defaults.UseCache);
        merged._doSample = Pick(nameof(DoSample), DoSample, defaults.DoSample);
        merged._temperature = Pick(nameof(Temperature), Temperature, defaults.Temperature);
        merged._topK = Pick(nameof(TopK), TopK, defaults.TopK);
        merged._topP = Pick(nameof(TopP), TopP, defaults.TopP);
        merged._repetitionPenalty = Pick(nameof(RepetitionPenalty), RepetitionPenalty, defaults.RepetitionPenalty);
        merged._noRepeatNgramSize = Pick(nameof(NoRepeatNgramSize), NoRepeatNgramSize, defaults.NoRepeatNgramSize);
        merged._numBeams = Pick(nameof(NumBeams), NumBeams, defaults.NumBeams);
        merged._lengthPenalty = Pick(nameof(LengthPenalty), LengthPenalty, defaults.LengthPenalty);
        merged._earlyStopping = Pick(nameof(EarlyStopping), EarlyStopping, defaults.EarlyStopping);
        merged._numReturnSequences = Pick(nameof(NumReturnSequences), NumReturnSequences, defaults.NumReturnSequences);
        merged._explicit = _explicit | defaults._explicit;
        return merged;
    }

    /// <summary>
    /// Checks value ranges (HF <c>GenerationConfig.validate</c>); throws <see cref="ArgumentException"/> naming the field and value.
    /// </summary>
    public void Validate()
    {
        static void Fail(string name, object? value, string why) =>
            throw new ArgumentException($"GenerationConfig.{name} = {value}: {why}", name);
        if (MaxNewTokens is <= 0) Fail(nameof(MaxNewTokens), MaxNewTokens, "must be positive");
        if (MaxLength is <= 0) Fail(nameof(MaxLength), MaxLength, "must be positive");
        if (MinNewTokens is < 0) Fail(nameof(MinNewTokens), MinNewTokens, "must be >= 0");
        if (MinLength < 0) Fail(nameof(MinLength), MinLength, "must be >= 0");
        if (DoSample && !(Temperature > 0)) Fail(nameof(Temperature), Temperature, "must be strictly positive when sampling");
        if (TopK < 0) Fail(nameof(TopK), TopK, "must be >= 0 (0 = off)");
        if (!(TopP > 0 && TopP <= 1)) Fail(nameof(TopP), TopP, "must be in (0, 1]");
        if (!(RepetitionPenalty > 0)) Fail(nameof(RepetitionPenalty), RepetitionPenalty, "must be strictly positive");
        if (NoRepeatNgramSize < 0) Fail(nameof(NoRepeatNgramSize), NoRepeatNgramSize, "must be >= 0");
        if (NumBeams < 1) Fail(nameof(NumBeams), NumBeams, "must be >= 1");
        if (NumReturnSequences < 1) Fail(nameof(NumReturnSequences), NumReturnSequences, "must be >= 1");
        if (CacheImplementation is not (null or CacheAuto or CacheStatic or CacheDynamic))
            Fail(nameof(CacheImplementation), $"\"{CacheImplementation}\"", $"supported: \"{CacheAuto}\" (default), \"{CacheStatic}\", \"{CacheDynamic}\"");
        if (!DoSample && NumReturnSequences > NumBeams)
            Fail(nameof(NumReturnSequences), NumReturnSequences,
                $"greedy and beam search return at most NumBeams ({NumBeams}) sequences per prompt; set DoSample = true or raise NumBeams");
    }
}
