using System.Text.Json.Serialization;

namespace Peft.Core;

/// <summary>
/// Which biases a LoRA adapter trains and saves (PEFT <c>LoraConfig.bias</c>). Written to <c>adapter_config.json</c>
/// as PEFT's strings: "none", "all", "lora_only".
/// </summary>
[JsonConverter(typeof(LoraBiasJsonConverter))]
public enum LoraBias
{
    /// <summary>"none": no bias trains (PEFT's default).</summary>
    None,
    /// <summary>"all": every bias of the model trains and is saved with the adapter.</summary>
    All,
    /// <summary>"lora_only": the biases of the adapted layers train and are saved.</summary>
    LoraOnly,
}

/// <summary>Converts <see cref="LoraBias"/> to and from PEFT's <c>bias</c> strings.</summary>
internal sealed class LoraBiasJsonConverter() : HfNameJsonConverter<LoraBias>(
    "bias", (LoraBias.None, "none"), (LoraBias.All, "all"), (LoraBias.LoraOnly, "lora_only"));
