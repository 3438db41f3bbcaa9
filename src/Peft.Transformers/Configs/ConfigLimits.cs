namespace Peft.Transformers;

/// <summary>
/// Bounds on the sizes a config.json may ask for, checked by each config's <c>Validate</c> before any model is built,
/// so a config downloaded from anywhere cannot make model construction allocate terabytes (or divide by zero). The
/// bounds sit far above every released model (hidden sizes up to ~25k, vocabularies up to ~260k, ~130 layers,
/// ~0.5T parameters) and far below what would exhaust a machine by accident: HF has no such check (it would try to
/// allocate); we fail fast naming the key and the value.
/// </summary>
public static class ConfigLimits
{
    /// <summary>Largest hidden / embedding / head / intermediate dimension accepted.</summary>
    public const long MaxDim = 1 << 18;

    /// <summary>Largest vocabulary (and position-embedding table) accepted.</summary>
    public const long MaxVocab = 1 << 23;

    /// <summary>Largest number of layers accepted.</summary>
    public const long MaxLayers = 4096;

    /// <summary>Largest estimated parameter count accepted (2^40, about 1.1 trillion).</summary>
    public const long MaxParameters = 1L << 40;

    /// <summary>
    /// Checks every named size: positive and at most its bound, then the rough parameter estimate
    /// (embeddings + layers x (4 h^2 + 3 h i)). Throws <see cref="ArgumentException"/> naming the model type, the key and
    /// the value (<see cref="AutoConfig.FromJson"/> adds the file).
    /// </summary>
    public static void Check(string modelType, long vocab, long hidden, long layers, long heads, long intermediate, long positions)
    {
        Dim(modelType, "vocab_size", vocab, MaxVocab);
        Dim(modelType, "hidden_size", hidden, MaxDim);
        Dim(modelType, "num_hidden_layers", layers, MaxLayers);
        Dim(modelType, "num_attention_heads", heads, MaxDim);
        Dim(modelType, "intermediate_size", intermediate, MaxDim);
        Dim(modelType, "max_position_embeddings", positions, MaxVocab);
        double estimate = (double)(vocab + positions) * hidden + (double)layers * (4.0 * hidden * hidden + 3.0 * hidden * intermediate);
        if (estimate > MaxParameters)
            throw new ArgumentException($"{modelType}: the sizes (vocab_size {vocab}, hidden_size {hidden}, num_hidden_layers {layers}, intermediate_size {intermediate}) describe about {estimate:E2} parameters, more than the limit of {MaxParameters:E2}; refusing before allocating.");
    }

    private static void Dim(string modelType, string key, long value, long max)
    {
        if (value <= 0) throw new ArgumentException($"{modelType}: {key} must be positive, got {value}.");
        if (value > max) throw new ArgumentException($"{modelType}: {key} {value} is larger than the limit of {max}; refusing before allocating.");
    }
}
