using TorchSharp;

namespace Peft.Core.Safetensors;

/// <summary>
/// One-call helpers over <see cref="SafetensorsFile"/> and <see cref="SafetensorsWriter"/>.
/// HF equivalent: <c>safetensors.torch.load_file</c> / <c>save_file</c>.
/// </summary>
public static class SafetensorsIO
{
    /// <summary>Loads every tensor of a file (caller owns them).</summary>
    public static Dictionary<string, torch.Tensor> LoadFile(string path, torch.ScalarType? dtype = null, torch.Device? device = null)
    {
        using var f = SafetensorsFile.Open(path);
        return f.ReadAll(dtype, device);
    }

    /// <summary>Saves tensors to a file, atomically, in the reference layout.</summary>
    public static void SaveFile(IReadOnlyDictionary<string, torch.Tensor> tensors, string path,
        IReadOnlyDictionary<string, string>? metadata = null) =>
        SafetensorsWriter.Save(path, tensors, metadata);
}
