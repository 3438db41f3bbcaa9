using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Where bottleneck adapters go when <see cref="AdapterConfig.TargetModules"/> is null. Written to
/// <c>adapter_config.json</c> as "houlsby" / "pfeiffer" (the names adapter libraries use).
/// </summary>
[JsonConverter(typeof(BottleneckPlacementJsonConverter))]
public enum BottleneckPlacement
{
    /// <summary>"houlsby" (default): after the attention output projection and after the feed-forward output projection.</summary>
    Houlsby,
    /// <summary>"pfeiffer": after the feed-forward output projection only.</summary>
    Pfeiffer,
}

/// <summary>Converts <see cref="BottleneckPlacement"/> to and from the <c>placement</c> strings.</summary>
internal sealed class BottleneckPlacementJsonConverter() : HfNameJsonConverter<BottleneckPlacement>(
    "placement", (BottleneckPlacement.Houlsby, "houlsby"), (BottleneckPlacement.Pfeiffer, "pfeiffer"));
