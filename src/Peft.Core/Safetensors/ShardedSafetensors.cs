using System.Text.Json;
using Peft.Core.IO;
using TorchSharp;

namespace Peft.Core.Safetensors;

/// <summary>
/// A checkpoint of one or more safetensors files seen as one: a single <c>model.safetensors</c>, or shards listed
/// by <c>model.safetensors.index.json</c> (<c>{"metadata": {...}, "weight_map": {name: file}}</c>).
/// HF equivalent: the loading half of <c>transformers.modeling_utils.load_sharded_checkpoint</c>.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    private const int MaxIndexBytes = 100_000_000; // same bound as a safetensors header

    private readonly Dictionary<string, SafetensorsFile> _fileOf;
    private readonly List<SafetensorsFile> _files;

    /// <summary>Every tensor name, in shard then file order.</summary>
    public IReadOnlyList<string> Keys { get; }

    /// <summary>The files opened (one, or every shard).</summary>
    public IReadOnlyList<SafetensorsFile> Files => _files;

    private SafetensorsCheckpoint(List<SafetensorsFile> files, Dictionary<string, SafetensorsFile> fileOf, List<string> keys)
    {
        _files = files;
        _fileOf = fileOf;
        Keys = keys;
    }

    /// <summary>Opens a single safetensors file.</summary>
    public static SafetensorsCheckpoint OpenFile(string path)
    {
        var f = SafetensorsFile.Open(path);
        return new SafetensorsCheckpoint([f], f.Tensors.ToDictionary(t => t.Name, _ => f, StringComparer.Ordinal), f.Keys.ToList());
    }

    /// <summary>
    /// Opens a sharded checkpoint from its index file. Every shard the index names is opened and checked: a
    /// tensor the index assigns to a shard must be in that shard.
    /// </summary>
    /// <exception cref="InvalidDataException">The index is malformed or disagrees with the shards.</exception>
    public static SafetensorsCheckpoint OpenIndex(string indexPath)
    {
        if (!File.Exists(indexPath)) throw new FileNotFoundException($"safetensors index not found: {indexPath}", indexPath);
        var dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        var weightMap = ReaderErrors.Guard(indexPath, () => ReadWeightMap(indexPath));
        var files = new List<SafetensorsFile>();
        var byShard = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var fileOf = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var keys = new List<string>();
        try
        {
            foreach (var shard in weightMap.Values.Distinct().Order(StringComparer.Ordinal))
            {
                var shardPath = SafePath.Resolve(dir, shard, $"Malformed safetensors index {indexPath}: shard file", fromFile: true);
                if (!File.Exists(shardPath))
                    throw new FileNotFoundException($"Malformed safetensors index {indexPath}: shard '{shard}' does not exist ({shardPath}).", shardPath);
                var f = SafetensorsFile.Open(shardPath);
                files.Add(f);
                byShard[shard] = f;
            }
            foreach (var (name, shard) in weightMap)
            {
                var f = byShard[shard];
                if (!f.Contains(name))
                    throw new InvalidDataException($"Malformed safetensors index {indexPath}: '{name}' is mapped to {shard}, which does not hold it.");
                fileOf[name] = f;
            }
            foreach (var f in files)
            {
                keys.AddRange(f.Keys.Where(fileOf.ContainsKey));
            }
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
        return new SafetensorsCheckpoint(files, fileOf, keys);
    }

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        Dictionary<string, string> weightMap;
        try
        {
            var bytes = File.ReadAllBytes(indexPath);
            if (bytes.Length > MaxIndexBytes)
                throw new InvalidDataException($"Malformed safetensors index {indexPath}: {bytes.Length} bytes, more than the {MaxIndexBytes}-byte limit.");
            using var doc = JsonDocument.Parse(bytes);
            if (!doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"Malformed safetensors index {indexPath}: missing object 'weight_map'.");
            }
            weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"Malformed safetensors index {indexPath}: weight_map['{p.Name}'] must be a file name.");
                if (!weightMap.TryAdd(p.Name, p.Value.GetString()!))
                    throw new InvalidDataException($"Malformed safetensors index {indexPath}: weight_map key '{p.Name}' appears twice.");
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Malformed safetensors index {indexPath}: {e.Message}", e);
        }
        return weightMap;
    }

    /// <summary>
    /// Opens the weights of a model folder: <c>model.safetensors</c>, else <c>model.safetensors.index.json</c>
    /// (or the same with another <paramref name="baseName"/>, such as <c>adapter_model</c>). A file that is a symlink
    /// resolving outside <paramref name="dir"/> is refused before it is read (<see cref="ArgumentException"/> naming it),
    /// except a Hugging Face cache snapshot's links into its repo's <c>blobs/</c>; the index's shard names are checked
    /// the same way.
    /// </summary>
    public static SafetensorsCheckpoint OpenFolder(string dir, string baseName = "model")
    {
        var single = Path.Combine(dir, baseName + ".safetensors");
        if (File.Exists(single))
        {
            SafePath.EnsureInside(dir, single, $"Model folder '{dir}': {baseName}.safetensors");
            return OpenFile(single);
        }
        var index = Path.Combine(dir, baseName + ".safetensors.index.json");
        if (File.Exists(index))
        {
            SafePath.EnsureInside(dir, index, $"Model folder '{dir}': {baseName}.safetensors.index.json");
            return OpenIndex(index);
        }
        throw new FileNotFoundException($"no {baseName}.safetensors or {baseName}.safetensors.index.json in {dir}", single);
    }

    /// <summary>True when the checkpoint holds that tensor.</summary>
    public bool Contains(string name) => _fileOf.ContainsKey(name);

    /// <summary>The header entry of a tensor.</summary>
    public SafetensorsTensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>Reads one tensor (caller owns it). See <see cref="SafetensorsFile.GetTensor"/>.</summary>
    public torch.Tensor GetTensor(string name, torch.ScalarType? dtype = null, torch.Device? device = null) =>
        FileOf(name).GetTensor(name, dtype, device);

    private SafetensorsFile FileOf(string name) => _fileOf.TryGetValue(name, out var f)
        ? f
        : throw new KeyNotFoundException($"tensor '{name}' is not in the checkpoint ({string.Join(", ", _files.Select(x => x.Path))})");

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
