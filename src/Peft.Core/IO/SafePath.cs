#if PEFT_DATASETS
namespace Peft.Datasets.IO;
#else
namespace Peft.Core.IO;
#endif

/// <summary>
/// Keeps every path that comes from a file or an argument (adapter names, subfolders, hub ids, sharded-index file
/// names, dataset data_files) inside its folder: a name with <c>..</c>, an absolute path, or a symlink that resolves
/// outside the folder is refused with <see cref="UnauthorizedAccessException"/>-free, typed
/// <see cref="ArgumentException"/> (arguments) or <see cref="InvalidDataException"/> (names read from a file) before
/// anything is read or written. HF equivalent: none (transformers trusts the folder); this is the safetensors
/// philosophy applied to paths.
/// </summary>
#if PEFT_DATASETS
internal static class SafePath // the same file, compiled into Peft.Datasets (which does not reference Peft.Core)
#else
internal static class SafePath
#endif
{
    private static readonly char[] Separators = ['/', '\\'];

    /// <summary>
    /// Checks a single path component (an adapter name, a split name): not empty, not <c>.</c> / <c>..</c>, no
    /// separator, no NUL, not rooted.
    /// </summary>
    /// <exception cref="ArgumentException">The name could leave its folder; the message names <paramref name="what"/>.</exception>
    public static string CheckName(string name, string what)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || name is "." or ".." || name.IndexOfAny(Separators) >= 0 || name.Contains('\0') || Path.IsPathRooted(name))
            throw new ArgumentException($"{what} '{name}' is not a plain name (no '..', path separators or absolute paths); it could leave its folder.", nameof(name));
        return name;
    }

    /// <summary>
    /// Resolves <paramref name="relative"/> (may contain sub-folders) under <paramref name="root"/> and returns the full
    /// path. Refused: absolute paths, <c>..</c> components, NUL, and any existing component that is a symlink resolving
    /// outside <paramref name="root"/>.
    /// </summary>
    /// <param name="root">The folder the path must stay in.</param>
    /// <param name="relative">The relative path (from a file or an argument).</param>
    /// <param name="what">Names the source in the message (e.g. "model.safetensors.index.json: shard file").</param>
    /// <param name="fromFile">True when the name was read from a file (throws <see cref="InvalidDataException"/>), false for an argument (<see cref="ArgumentException"/>).</param>
    public static string Resolve(string root, string relative, string what, bool fromFile = false)
    {
        ArgumentNullException.ThrowIfNull(root);
        ArgumentNullException.ThrowIfNull(relative);
        string? problem = null;
        if (relative.Length == 0) problem = "is empty";
        else if (relative.Contains('\0')) problem = "contains a NUL character";
        else if (Path.IsPathRooted(relative) || relative.StartsWith('\\') || (relative.Length > 1 && relative[1] == ':')) problem = "is an absolute path";
        else if (relative.Split(Separators).Any(p => p == "..")) problem = "contains '..'";
        if (problem is not null) throw Refuse(what, relative, problem, fromFile);
        var full = Path.GetFullPath(Path.Combine(root, relative));
        EnsureInside(root, full, what, fromFile);
        return full;
    }

    /// <summary>
    /// Checks that <paramref name="path"/>, with every symlink along it resolved, lies inside <paramref name="root"/>
    /// (also resolved). Components that do not exist yet are taken as they are (saving creates them).
    /// </summary>
    public static void EnsureInside(string root, string path, string what, bool fromFile = false)
    {
        var realRoot = RealPath(AllowedRoot(Path.GetFullPath(root)));
        var real = RealPath(Path.GetFullPath(path));
        if (!IsUnder(realRoot, real))
            throw Refuse(what, path, $"resolves to '{real}', outside '{realRoot}' (a symlink or '..' leaves the folder)", fromFile);
    }

    /// <summary>The path with every existing symlink component resolved (like realpath(3), tolerant of missing tails).</summary>
    public static string RealPath(string full)
    {
        var parts = full.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        string cur = Path.GetPathRoot(full) ?? "/";
        for (int i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(cur, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is not null)
            {
                FileSystemInfo? target;
                try { target = info.ResolveLinkTarget(returnFinalTarget: true); }
                catch (IOException) { target = null; } // a cycle: keep the link path, which is then checked as is
                if (target is not null) next = RealPath(Path.GetFullPath(target.FullName));
            }
            cur = next;
        }
        return cur;
    }

    /// <summary>
    /// The folder links may point into: the folder itself, or for a Hugging Face cache snapshot
    /// (<c>.../models--org--name/snapshots/&lt;rev&gt;</c>, whose files are links to <c>../../blobs/</c>) the whole
    /// <c>models--org--name</c> folder.
    /// </summary>
    private static string AllowedRoot(string root)
    {
        var parts = root.TrimEnd(Path.DirectorySeparatorChar).Split(Path.DirectorySeparatorChar);
        for (int i = parts.Length - 2; i >= 1; i--)
        {
            if (parts[i] == "snapshots" && (parts[i - 1].StartsWith("models--", StringComparison.Ordinal) || parts[i - 1].StartsWith("datasets--", StringComparison.Ordinal)))
                return string.Join(Path.DirectorySeparatorChar, parts.Take(i));
        }
        return root;
    }

    private static bool IsUnder(string root, string path)
    {
        var r = root.TrimEnd(Path.DirectorySeparatorChar);
        return path == r || path.StartsWith(r + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    private static Exception Refuse(string what, string path, string problem, bool fromFile)
    {
        var msg = $"{what} '{path}' {problem}; refused (nothing outside the folder is read or written).";
        return fromFile ? new InvalidDataException(msg) : new ArgumentException(msg);
    }
}
