using System.Text;
using Peft.Core.IO;
using TorchSharp;

namespace Peft.Core.Safetensors;

/// <summary>
/// Writes safetensors files byte-compatible with the reference writer (Rust <c>safetensors</c>, used by
/// <c>safetensors.torch.save_file</c> and <c>save_pretrained</c>): compact JSON header with <c>__metadata__</c>
/// first, padded with spaces to a multiple of 8 bytes, tensors laid out by dtype (widest first) then by name.
/// Writing is atomic: a temp file in the same folder is renamed over the target when complete.
/// </summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Saves tensors to <paramref name="path"/>. Tensors may live on any device and be non-contiguous; they are
    /// copied to contiguous CPU memory one at a time while writing. The tensors are not disposed.
    /// </summary>
    /// <param name="path">Target file.</param>
    /// <param name="tensors">Name to tensor. Names must be unique.</param>
    /// <param name="metadata">Written as <c>__metadata__</c> when not null (e.g. <c>{"format":"pt"}</c>).</param>
    public static void Save(string path, IEnumerable<KeyValuePair<string, torch.Tensor>> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in list)
        {
            if (!names.Add(name)) throw new ArgumentException($"tensor name '{name}' appears twice; cannot save {path}.", nameof(tensors));
            ArgumentNullException.ThrowIfNull(t, $"tensor '{name}'");
        }
        var entries = list
            .Select(kv => (kv.Key, Tensor: kv.Value, Dtype: SafetensorsDtype.FromScalarType(kv.Value.dtype)))
            .OrderByDescending(e => SafetensorsDtype.LayoutRank(e.Dtype))
            .ThenBy(e => e.Key, StringComparer.Ordinal)
            .ToList();

        var infos = new List<SafetensorsTensorInfo>(entries.Count);
        long offset = 0;
        foreach (var e in entries)
        {
            long bytes = e.Tensor.NumberOfElements * SafetensorsDtype.ElementSize(e.Dtype);
            infos.Add(new SafetensorsTensorInfo(e.Key, e.Dtype, e.Tensor.shape, offset, offset + bytes));
            offset += bytes;
        }

        AtomicFile.Write(path, stream =>
        {
            WriteHeader(stream, infos, metadata);
            foreach (var e in entries)
            {
                WriteTensorData(stream, e.Tensor);
            }
        });
    }

    /// <summary>
    /// Copies a file's tensors, in their order and with their metadata, to <paramref name="path"/> (used to
    /// round-trip files exactly, and to re-save subsets). The source stays open and unchanged.
    /// </summary>
    public static void Copy(SafetensorsFile source, string path, IEnumerable<string>? names = null,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        var wanted = names is null ? null : new HashSet<string>(names, StringComparer.Ordinal);
        var selected = source.Tensors.Where(t => wanted is null || wanted.Contains(t.Name)).ToList();
        var infos = new List<SafetensorsTensorInfo>(selected.Count);
        long offset = 0;
        foreach (var t in selected)
        {
            infos.Add(t with { Begin = offset, End = offset + t.ByteLength });
            offset += t.ByteLength;
        }
        AtomicFile.Write(path, stream =>
        {
            WriteHeader(stream, infos, metadata ?? source.Metadata);
            foreach (var t in selected)
            {
                using var tensor = source.GetTensor(t.Name);
                WriteTensorData(stream, tensor);
            }
        });
    }

    /// <summary>The header bytes the reference writer produces for these entries (without the 8-byte length).</summary>
    public static byte[] BuildHeader(IReadOnlyList<SafetensorsTensorInfo> infos, IReadOnlyDictionary<string, string>? metadata)
    {
        var sb = new StringBuilder();
        sb.Append('{');
        bool first = true;
        if (metadata is not null)
        {
            sb.Append("\"__metadata__\":{");
            bool firstMd = true;
            foreach (var (k, v) in metadata)
            {
                if (!firstMd) sb.Append(',');
                firstMd = false;
                AppendJsonString(sb, k);
                sb.Append(':');
                AppendJsonString(sb, v);
            }
            sb.Append('}');
            first = false;
        }
        foreach (var info in infos)
        {
            if (!first) sb.Append(',');
            first = false;
            AppendJsonString(sb, info.Name);
            sb.Append(":{\"dtype\":");
            AppendJsonString(sb, info.Dtype);
            sb.Append(",\"shape\":[").Append(string.Join(',', info.Shape)).Append("],\"data_offsets\":[")
              .Append(info.Begin).Append(',').Append(info.End).Append("]}");
        }
        sb.Append('}');
        var bytes = new UTF8Encoding(false).GetBytes(sb.ToString());
        int pad = (8 - bytes.Length % 8) % 8;
        if (pad == 0) return bytes;
        var padded = new byte[bytes.Length + pad];
        bytes.CopyTo(padded, 0);
        padded.AsSpan(bytes.Length).Fill((byte)' ');
        return padded;
    }

    private static void WriteHeader(Stream stream, IReadOnlyList<SafetensorsTensorInfo> infos, IReadOnlyDictionary<string, string>? metadata)
    {
        var header = BuildHeader(infos, metadata);
        stream.Write(BitConverter.GetBytes((ulong)header.Length));
        stream.Write(header);
    }

    private static void WriteTensorData(Stream stream, torch.Tensor tensor)
    {
        if (tensor.NumberOfElements == 0) return;
        using var scope = torch.NewDisposeScope();
        var t = tensor.device_type == DeviceType.CPU ? tensor : tensor.cpu();
        if (!t.is_contiguous()) t = t.contiguous();
        Torch.TensorBytes.Visit(t, (_, span) => stream.Write(span));
    }

    // JSON string escaping as serde_json does it (the reference writer): only quote, backslash and control
    // characters are escaped; everything else is written as raw UTF-8.
    private static void AppendJsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
