using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Peft.Core.IO;

namespace Peft.Transformers;

/// <summary>
/// The <c>checkpoint-&lt;step&gt;</c> folders of a run: written into a hidden temporary folder, sealed with a
/// <c>checkpoint_manifest.json</c> (size and SHA-256 of every file) written last, then renamed into place, so a
/// crash or kill at any point never leaves a folder that looks complete but is not; a damaged folder fails
/// <see cref="Verify"/> with the folder and file named.
/// </summary>
public static partial class CheckpointFolder
{
    /// <summary>HF <c>PREFIX_CHECKPOINT_DIR</c>.</summary>
    public const string Prefix = "checkpoint-";

    /// <summary>The manifest written last into every checkpoint.</summary>
    public const string ManifestName = "checkpoint_manifest.json";

    private const string TempPrefix = ".tmp-checkpoint-";

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex Name();

    /// <summary>The checkpoint folders of <paramref name="outputDir"/>, oldest step first.</summary>
    public static IReadOnlyList<string> Sorted(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return [];
        return Directory.EnumerateDirectories(outputDir)
            .Select(d => (d, m: Name().Match(Path.GetFileName(d))))
            .Where(x => x.m.Success)
            .OrderBy(x => long.Parse(x.m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .Select(x => x.d).ToList();
    }

    /// <summary>The newest checkpoint folder (HF <c>get_last_checkpoint</c>), or null.</summary>
    public static string? Last(string outputDir) => Sorted(outputDir).LastOrDefault();

    /// <summary>
    /// Writes <c>checkpoint-<paramref name="step"/></c>: <paramref name="write"/> fills a temporary folder, the
    /// manifest seals it, and a rename publishes it (replacing an older folder of the same step). Returns the path.
    /// </summary>
    public static string Write(string outputDir, int step, Action<string> write)
    {
        Directory.CreateDirectory(outputDir);
        string final = Path.Combine(outputDir, Prefix + step.ToString(System.Globalization.CultureInfo.InvariantCulture));
        string tmp = Path.Combine(outputDir, $"{TempPrefix}{step}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            write(tmp);
            WriteManifest(tmp);
            if (Directory.Exists(final))
            {
                string old = Path.Combine(outputDir, $"{TempPrefix}{step}-old-{Guid.NewGuid():N}");
                Directory.Move(final, old);
                Directory.Move(tmp, final);
                Directory.Delete(old, recursive: true);
            }
            else
            {
                Directory.Move(tmp, final);
            }
        }
        catch
        {
            try { Directory.Delete(tmp, recursive: true); } catch (IOException) { }
            throw;
        }
        return final;
    }

    /// <summary>Deletes temporary folders left by a killed run.</summary>
    public static void CleanTemporary(string outputDir)
    {
        if (!Directory.Exists(outputDir)) return;
        foreach (var d in Directory.EnumerateDirectories(outputDir, TempPrefix + "*"))
        {
            try { Directory.Delete(d, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Checks that <paramref name="dir"/> is a complete checkpoint: its manifest exists and every file it lists has the
    /// recorded size and SHA-256. Throws <see cref="InvalidDataException"/> naming the folder and the file otherwise.
    /// </summary>
    public static void Verify(string dir)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"Checkpoint folder '{dir}' does not exist");
        string manifestPath = Path.Combine(dir, ManifestName);
        if (!File.Exists(manifestPath))
            throw new InvalidDataException($"Checkpoint '{dir}' is incomplete: it has no {ManifestName} (the save was interrupted or the folder was not written by this Trainer)");
        Dictionary<string, FileEntry> files;
        try
        {
            var node = ReaderErrors.ParseJson(File.ReadAllText(manifestPath), manifestPath);
            files = ReaderErrors.Guard(manifestPath, () => node.Deserialize<Dictionary<string, FileEntry>>())
                ?? throw new InvalidDataException($"{manifestPath}: null manifest");
            if (files.Values.Any(f => f is null || f.Size < 0 || f.Sha256 is null))
                throw new InvalidDataException($"{manifestPath}: an entry without a size or SHA-256");
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Checkpoint '{dir}': {ManifestName} is corrupt ({e.Message})", e);
        }
        foreach (var path in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(dir, path).Replace('\\', '/');
            if (rel != ManifestName && !files.ContainsKey(rel))
                throw new InvalidDataException($"Checkpoint '{dir}' is corrupt: file '{rel}' is not in its {ManifestName}");
        }
        foreach (var (rel, entry) in files)
        {
            string path = SafePath.Resolve(dir, rel, $"Checkpoint '{dir}': {ManifestName} entry", fromFile: true);
            if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{dir}' is corrupt: file '{rel}' listed in {ManifestName} is missing");
            long size = new FileInfo(path).Length;
            if (size != entry.Size) throw new InvalidDataException($"Checkpoint '{dir}' is corrupt: file '{rel}' has {size} bytes, {ManifestName} says {entry.Size}");
            if (Hash(path) != entry.Sha256) throw new InvalidDataException($"Checkpoint '{dir}' is corrupt: file '{rel}' does not match its SHA-256 in {ManifestName}");
        }
    }

    /// <summary>
    /// Deletes the oldest checkpoints beyond <paramref name="limit"/>, never <paramref name="best"/> (HF
    /// <c>_rotate_checkpoints</c>: the best one is kept and counts towards the limit).
    /// </summary>
    public static void Rotate(string outputDir, int? limit, string? best)
    {
        if (limit is not int keep) return;
        var all = Sorted(outputDir).ToList();
        string? bestFull = best is null ? null : Path.GetFullPath(best);
        if (bestFull is not null && keep == 1 && all.Count > 0 && Path.GetFullPath(all[^1]) != bestFull) keep = 2;
        var deletable = all.Where(d => Path.GetFullPath(d) != bestFull).ToList();
        int excess = all.Count - keep;
        foreach (var d in deletable.Take(Math.Max(0, excess)))
        {
            // Renamed first (atomic), then deleted: a kill mid-delete leaves a temporary folder (CleanTemporary removes
            // it at the next start), never a checkpoint-<step> folder whose manifest lists files already gone.
            string doomed = Path.Combine(outputDir, $"{TempPrefix}{Path.GetFileName(d)}-rotated-{Guid.NewGuid():N}");
            Directory.Move(d, doomed);
            Directory.Delete(doomed, recursive: true);
        }
    }

    private static void WriteManifest(string dir)
    {
        var files = new SortedDictionary<string, FileEntry>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(dir, path).Replace('\\', '/');
            if (rel == ManifestName) continue;
            files[rel] = new FileEntry(new FileInfo(path).Length, Hash(path));
        }
        AtomicFile.WriteAllText(Path.Combine(dir, ManifestName), JsonSerializer.Serialize(files, new JsonSerializerOptions { WriteIndented = true }));
    }

    private static string Hash(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    private sealed record FileEntry(
        [property: System.Text.Json.Serialization.JsonPropertyName("size")] long Size,
        [property: System.Text.Json.Serialization.JsonPropertyName("sha256")] string Sha256);
}
