namespace Peft.Transformers;

/// <summary>
/// Observation points of the streaming load, for tests and the load benchmark (no effect when unset). Each flows with
/// the caller's async context only, so concurrent loads elsewhere in the process are not seen.
/// </summary>
internal static class LoadObservers
{
    /// <summary>
    /// Called with the model <see cref="ModelFactory.FromPretrained"/> builds, before any weight is read: every parameter
    /// is then still on the meta device (nothing materialised, no random init).
    /// </summary>
    public static readonly AsyncLocal<Action<PreTrainedModel>?> Constructed = new();

    /// <summary>Called after each checkpoint tensor (or pre-quantised / quantised layer) is in place, with its file key.</summary>
    public static readonly AsyncLocal<Action<string>?> TensorLoaded = new();
}
