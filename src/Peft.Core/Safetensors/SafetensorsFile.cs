using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace Peft.Core.Safetensors;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's name (state-dict key).</param>
/// <param name="Dtype">The safetensors dtype name (F32, BF16, I64, ...).</param>
/// <param name="Shape">The shape; empty for a scalar.</param>
/// <param name="Begin">Start of the data, relative to the end of the header.</param>
/// <param name="End">End (exclusive) of the data, relative to the end of the header.</param>
public sealed record SafetensorsTensorInfo(string Name, string Dtype, long[] Shape, long Begin, long End)
{
    /// <summary>Number of bytes of the tensor's data.</summary>
    public long ByteLength => End - Begin;

    /// <summary>Number of elements (1 for a scalar).</summary>
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file opened for reading: the header is parsed and validated up front, the data is memory-mapped
/// and copied into a tensor only when <see cref="GetTensor"/> asks for it, so a large file never needs its size
/// in managed memory.
/// </summary>
/// <remarks>
/// Why our own reader rather than TorchSharp.PyBridge's: PyBridge reads the whole file through a stream into
/// tensors it creates at once, and does not report malformed headers (overlapping or out-of-range offsets,
/// duplicate names, size mismatches) with the file and tensor named. The format is small (an 8-byte length,
/// a JSON header, raw little-endian data), so a focused reader that memory-maps and validates is simpler than
/// wrapping PyBridge. Validation follows the reference implementation (Rust <c>safetensors</c>): offsets must
/// tile the data area exactly, in order, with no holes or overlaps.
/// HF equivalent: <c>safetensors.safe_open(path, framework="pt")</c>.
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    private const long MaxHeaderSize = 100_000_000; // the reference implementation's limit
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly unsafe byte* _base;
    private readonly Dictionary<string, SafetensorsTensorInfo> _byName;
    private bool _disposed;

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The header's <c>__metadata__</c> (string to string), or null when the file has none.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; }

    /// <summary>Every tensor, in the order their data lies in the file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }

    /// <summary>Size of the JSON header in bytes (including its padding).</summary>
    public long HeaderLength { get; }

    /// <summary>Tensor names in file order.</summary>
    public IEnumerable<string> Keys => Tensors.Select(t => t.Name);

    private unsafe SafetensorsFile(string path)
    {
        Path = path;
        // the length of what a symlink points to (the HF cache links snapshots to blobs), not of the link itself
        var fileLength = (new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? new FileInfo(path)).Length;
        if (fileLength < 8)
        {
            throw Bad(path, $"the file is {fileLength} bytes, shorter than the 8-byte header length");
        }

        byte[] headerBytes;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Span<byte> lenBytes = stackalloc byte[8];
            fs.ReadExactly(lenBytes);
            ulong n = BitConverter.ToUInt64(lenBytes);
            if (n > (ulong)(fileLength - 8))
            {
                throw Bad(path, $"header length {n} is larger than the file allows ({fileLength - 8} bytes after the length)");
            }
            if (n > MaxHeaderSize)
            {
                throw Bad(path, $"header length {n} exceeds the limit of {MaxHeaderSize} bytes");
            }
            headerBytes = new byte[n];
            fs.ReadExactly(headerBytes);
        }
        HeaderLength = headerBytes.Length;
        long dataLength = fileLength - 8 - headerBytes.Length;

        (Metadata, var infos) = ParseHeader(path, headerBytes, dataLength);
        Tensors = infos;
        _byName = infos.ToDictionary(t => t.Name, StringComparer.Ordinal);

        if (fileLength > 0)
        {
            _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset + 8 + headerBytes.Length;
        }
    }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is malformed; the message names the file and the tensor.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"safetensors file not found: {path}", path);
        }
        return new SafetensorsFile(path);
    }

    /// <summary>True when the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>The header entry of a tensor.</summary>
    /// <exception cref="KeyNotFoundException">No tensor of that name; the message names the file.</exception>
    public SafetensorsTensorInfo GetInfo(string name) => _byName.TryGetValue(name, out var info)
        ? info
        : throw new KeyNotFoundException($"tensor '{name}' is not in {Path}");

    /// <summary>
    /// The raw little-endian bytes of a tensor, straight from the memory map (no copy). Valid until this object
    /// is disposed. Only for tensors under 2 GiB; use <see cref="GetTensor"/> for larger ones.
    /// </summary>
    public unsafe ReadOnlySpan<byte> GetBytes(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = GetInfo(name);
        if (info.ByteLength > int.MaxValue)
        {
            throw new InvalidOperationException($"tensor '{name}' in {Path} is {info.ByteLength} bytes, too large for a span; use GetTensor.");
        }
        return new ReadOnlySpan<byte>(_base + info.Begin, (int)info.ByteLength);
    }

    /// <summary>
    /// Copies one tensor out of the file into a new CPU tensor, then converts it to <paramref name="dtype"/> and
    /// moves it to <paramref name="device"/> when given. The caller owns the result (it is registered with the
    /// current dispose scope, if any).
    /// </summary>
    public unsafe torch.Tensor GetTensor(string name, torch.ScalarType? dtype = null, torch.Device? device = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = GetInfo(name);
        var type = SafetensorsDtype.ToScalarType(info.Dtype);
        var t = torch.empty(info.Shape, type);
        byte* src = _base + info.Begin;
        Torch.TensorBytes.Visit(t, (offset, dst) => new ReadOnlySpan<byte>(src + offset, dst.Length).CopyTo(dst));
        if (dtype is { } dt && dt != type)
        {
            var c = t.to_type(dt);
            t.Dispose();
            t = c;
        }
        if (device is not null && device.type != DeviceType.CPU)
        {
            var m = t.to(device);
            t.Dispose();
            t = m;
        }
        return t;
    }

    /// <summary>Reads every tensor into a dictionary (file order). The caller owns the tensors.</summary>
    public Dictionary<string, torch.Tensor> ReadAll(torch.ScalarType? dtype = null, torch.Device? device = null)
    {
        var result = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        foreach (var info in Tensors)
        {
            result[info.Name] = GetTensor(info.Name, dtype, device);
        }
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }

    private static InvalidDataException Bad(string path, string what, string? tensor = null) =>
        new(tensor is null
            ? $"Malformed safetensors file {path}: {what}."
            : $"Malformed safetensors file {path}: tensor '{tensor}': {what}.");

    private static (IReadOnlyDictionary<string, string>? Metadata, List<SafetensorsTensorInfo> Tensors) ParseHeader(
        string path, byte[] header, long dataLength)
    {
        string json;
        try
        {
            json = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(header);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"Malformed safetensors file {path}: the header is not valid UTF-8 ({e.Message}).", e);
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.TrimEnd(' '));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Malformed safetensors file {path}: the header is not valid JSON ({e.Message}).", e);
        }

        // A lone surrogate escape (\ud800) parses but throws InvalidOperationException when a name or value is read;
        // ReaderErrors.Guard turns it into an InvalidDataException naming the file.
        using (doc)
        {
            return Peft.Core.IO.ReaderErrors.Guard(path, () => ParseEntries(path, doc.RootElement, dataLength));
        }
    }

    private static (IReadOnlyDictionary<string, string>? Metadata, List<SafetensorsTensorInfo> Tensors) ParseEntries(
        string path, JsonElement root, long dataLength)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Bad(path, $"the header must be a JSON object, found {root.ValueKind}");
        }

        Dictionary<string, string>? metadata = null;
        var tensors = new List<SafetensorsTensorInfo>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var prop in root.EnumerateObject())
        {
            if (!seen.Add(prop.Name))
            {
                throw Bad(path, "the name appears twice in the header", prop.Name);
            }
            if (prop.Name == "__metadata__")
            {
                metadata = ParseMetadata(path, prop.Value);
                continue;
            }
            tensors.Add(ParseTensor(path, prop.Name, prop.Value));
        }

        // Offsets must tile [0, dataLength) exactly, in order (as the reference implementation checks).
        tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long expected = 0;
        foreach (var t in tensors)
        {
            if (t.Begin < expected)
            {
                throw Bad(path, $"data_offsets [{t.Begin}, {t.End}] overlap the previous tensor's data (which ends at {expected})", t.Name);
            }
            if (t.Begin > expected)
            {
                throw Bad(path, $"data_offsets [{t.Begin}, {t.End}] leave a gap after offset {expected}", t.Name);
            }
            if (t.End > dataLength)
            {
                throw Bad(path, $"data_offsets [{t.Begin}, {t.End}] run past the end of the data area ({dataLength} bytes)", t.Name);
            }
            expected = t.End;
        }
        if (expected != dataLength)
        {
            throw Bad(path, $"the tensors cover {expected} bytes but the data area has {dataLength} bytes");
        }
        return (metadata, tensors);
    }

    private static Dictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad(path, $"__metadata__ must be an object of strings, found {value.ValueKind}");
        }
        var md = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in value.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
            {
                throw Bad(path, $"__metadata__ value of '{p.Name}' must be a string, found {p.Value.ValueKind}");
            }
            if (!md.TryAdd(p.Name, p.Value.GetString()!))
            {
                throw Bad(path, $"__metadata__ key '{p.Name}' appears twice");
            }
        }
        return md;
    }

    private static SafetensorsTensorInfo ParseTensor(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Bad(path, $"the entry must be an object, found {value.ValueKind}", name);
        }
        string? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        foreach (var p in value.EnumerateObject())
        {
            switch (p.Name)
            {
                case "dtype":
                    dtype = p.Value.ValueKind == JsonValueKind.String
                        ? p.Value.GetString()
                        : throw Bad(path, $"dtype must be a string, found {p.Value.ValueKind}", name);
                    break;
                case "shape":
                    shape = ReadLongArray(path, name, "shape", p.Value);
                    break;
                case "data_offsets":
                    offsets = ReadLongArray(path, name, "data_offsets", p.Value);
                    break;
                default:
                    throw Bad(path, $"unknown field '{p.Name}'", name);
            }
        }
        if (dtype is null) throw Bad(path, "missing dtype", name);
        if (shape is null) throw Bad(path, "missing shape", name);
        if (offsets is null) throw Bad(path, "missing data_offsets", name);
        if (!SafetensorsDtype.IsKnown(dtype))
        {
            throw Bad(path, $"unknown or unsupported dtype '{dtype}' (supported: {string.Join(", ", SafetensorsDtype.Names)})", name);
        }
        if (offsets.Length != 2)
        {
            throw Bad(path, $"data_offsets must have 2 entries, found {offsets.Length}", name);
        }
        if (offsets[0] > offsets[1])
        {
            throw Bad(path, $"data_offsets [{offsets[0]}, {offsets[1]}] end before they begin", name);
        }
        long numel = 1, bytes;
        try
        {
            foreach (var d in shape)
            {
                numel = checked(numel * d);
            }
            bytes = checked(numel * SafetensorsDtype.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw Bad(path, $"shape [{string.Join(", ", shape)}] x {dtype} overflows a 64-bit byte count", name);
        }
        if (bytes != offsets[1] - offsets[0])
        {
            throw Bad(path, $"shape [{string.Join(", ", shape)}] x {dtype} is {bytes} bytes but data_offsets [{offsets[0]}, {offsets[1]}] span {offsets[1] - offsets[0]}", name);
        }
        return new SafetensorsTensorInfo(name, dtype, shape, offsets[0], offsets[1]);
    }

    private static long[] ReadLongArray(string path, string name, string field, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Bad(path, $"{field} must be an array, found {value.ValueKind}", name);
        }
        var result = new long[value.GetArrayLength()];
        int i = 0;
        foreach (var e in value.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long v) || v < 0)
            {
                throw Bad(path, $"{field} must hold non-negative integers, found {e.GetRawText()}", name);
            }
            result[i++] = v;
        }
        return result;
    }
}
