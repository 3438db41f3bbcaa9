using Microsoft.Win32.SafeHandles;
using Peft.Core.Safetensors;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>
/// Reads checkpoint tensors with positioned file reads (<c>pread</c>) using the validated headers of a
/// <see cref="SafetensorsCheckpoint"/>. Unlike copying out of the memory map, the file's pages never enter the
/// process's resident set (they stay in the page cache, reclaimable, and are not counted in RSS). A tensor already in
/// the wanted dtype on the CPU is read straight into its own memory; any other (a dtype conversion, or a GPU target)
/// is allocated once in its final dtype on its final device and filled through a small CPU staging buffer, so the
/// only transient memory is <see cref="StagingBytes"/>, never a second full-size copy of the tensor.
/// </summary>
internal sealed class CheckpointReader : IDisposable
{
    /// <summary>Bytes of file data read per step when a tensor is converted or moved (8 MiB).</summary>
    public const long StagingBytes = 8L << 20;

    private readonly SafetensorsCheckpoint _checkpoint;
    private readonly Dictionary<string, (SafeFileHandle Handle, long DataStart)> _handles = new(StringComparer.Ordinal);

    public CheckpointReader(SafetensorsCheckpoint checkpoint) => _checkpoint = checkpoint;

    /// <summary>
    /// Tensor <paramref name="key"/> as a new tensor in <paramref name="dtype"/> (null: the file's) on
    /// <paramref name="device"/> (null: the CPU); caller owns it. Same values as <see cref="SafetensorsCheckpoint.GetTensor"/>.
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
        long begin = h.DataStart + info.Begin;
        var fileDtype = SafetensorsDtype.ToScalarType(info.Dtype);
        var target = dtype ?? fileDtype;
        bool onCpu = device is null || device.type == TorchSharp.DeviceType.CPU;
        if (target == fileDtype && onCpu)
        {
            var t = empty(info.Shape, fileDtype);
            ReadInto(t, h.Handle, begin, file.Path, key);
            return t;
        }
        var result = empty(info.Shape, target, device: onCpu ? CPU : device);
        using var flat = result.view(-1);
        long n = flat.shape[0];
        long elementSize = info.ByteLength / Math.Max(1, n);
        long perStep = Math.Max(1, StagingBytes / Math.Max(1, elementSize));
        using var staging = empty(Math.Min(perStep, n), fileDtype);
        for (long start = 0; start < n; start += perStep)
        {
            long len = Math.Min(perStep, n - start);
            using var part = staging.narrow(0, 0, len);
            ReadInto(part, h.Handle, begin + start * elementSize, file.Path, key);
            using var dst = flat.narrow(0, start, len);
            dst.copy_(part);                                        // converts the dtype and crosses to the device
        }
        return result;
    }

    private static void ReadInto(Tensor t, SafeFileHandle handle, long position, string path, string key) =>
        Peft.Core.Torch.TensorBytes.Visit(t, (offset, span) =>
        {
            int read = 0;
            while (read < span.Length)
            {
                int n = RandomAccess.Read(handle, span[read..], position + offset + read);
                if (n <= 0) throw new InvalidDataException($"{path}: tensor '{key}' ends before its end offset in the header.");
                read += n;
            }
        });

    public void Dispose()
    {
        foreach (var (handle, _) in _handles.Values) handle.Dispose();
    }
}
