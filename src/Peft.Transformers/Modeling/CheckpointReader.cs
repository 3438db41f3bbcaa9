using Microsoft.Win32.SafeHandles;
using Peft.Core.Safetensors;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Reads checkpoint tensors with positioned file reads (<c>pread</c>) straight into the new tensor's memory, using the
/// validated headers of a <see cref="SafetensorsCheckpoint"/>. Unlike copying out of the memory map, the file's pages
/// never enter the process's resident set, so a streaming load peaks at the model plus the tensor in flight.
/// </summary>
internal sealed class CheckpointReader : IDisposable
{
    private readonly SafetensorsCheckpoint _checkpoint;
    private readonly Dictionary<string, (SafeFileHandle Handle, long DataStart)> _handles = new(StringComparer.Ordinal);

    public CheckpointReader(SafetensorsCheckpoint checkpoint) => _checkpoint = checkpoint;

    /// <summary>
    /// Tensor <paramref name="key"/> as a new CPU tensor in its file dtype, then converted to <paramref name="dtype"/>
    /// and moved to <paramref name="device"/> when given (same contract as <see cref="SafetensorsCheckpoint.GetTensor"/>).
    /// </summary>
    public Tensor GetTensor(string key, ScalarType? dtype = null, Device? device = null)
    {
        var file = _checkpoint.Files.First(f => f.Contains(key));
        var info = file.GetInfo(key);
        if (!_handles.TryGetValue(file.Path, out var h))
        {
            h = (File.OpenHandle(file.Path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess), 8 + file.HeaderLength);
            _handles[file.Path] = h;
        }
        var t = empty(info.Shape, SafetensorsDtype.ToScalarType(info.Dtype));
        Peft.Core.Torch.TensorBytes.Visit(t, (offset, span) =>
        {
            int read = 0;
            while (read < span.Length)
            {
                int n = RandomAccess.Read(h.Handle, span[read..], h.DataStart + info.Begin + offset + read);
                if (n <= 0) throw new InvalidDataException($"{file.Path}: tensor '{key}' ends before its {info.ByteLength} bytes.");
                read += n;
            }
        });
        if (dtype is { } dt && dt != t.dtype)
        {
            var c = t.to_type(dt);
            t.Dispose();
            t = c;
        }
        if (device is not null && device.type != TorchSharp.DeviceType.CPU)
        {
            var m = t.to(device);
            t.Dispose();
            t = m;
        }
        return t;
    }

    public void Dispose()
    {
        foreach (var (handle, _) in _handles.Values) handle.Dispose();
    }
}
