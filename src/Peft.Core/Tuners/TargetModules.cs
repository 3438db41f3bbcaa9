using System.Collections;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace Peft.Core;

/// <summary>
/// Which modules a tuner targets (PEFT <c>target_modules</c> / <c>exclude_modules</c>): either a list of names, where a
/// module matches when its full dotted name equals an entry or ends with <c>"." + entry</c>; or one regular
/// expression that must match the full name (Python <c>re.fullmatch</c>); or <c>"all-linear"</c>, every linear layer
/// except the output head (expanded to the matching full names when the adapter is created, as PEFT does).
/// Assign a list (<c>["q_proj", "v_proj"]</c>, <c>new[] { ... }</c>) or a string (regex / "all-linear").
/// </summary>
[JsonConverter(typeof(TargetModulesJsonConverter))]
[CollectionBuilder(typeof(TargetModules), nameof(Create))]
public sealed class TargetModules : IEquatable<TargetModules>, IEnumerable<string>
{
    /// <summary>PEFT's shorthand for every linear layer but the output head.</summary>
    public const string AllLinear = "all-linear";

    private readonly string[]? _names;

    /// <summary>The names, when this is a list (null for a regex).</summary>
    public IReadOnlyList<string>? Names => _names;

    /// <summary>The regular expression (or <see cref="AllLinear"/>), when this is a string (null for a list).</summary>
    public string? Pattern { get; }

    /// <summary>True for <c>"all-linear"</c>.</summary>
    public bool IsAllLinear => string.Equals(Pattern, AllLinear, StringComparison.OrdinalIgnoreCase);

    private TargetModules(string[]? names, string? pattern)
    {
        _names = names;
        Pattern = pattern;
    }

    /// <summary>A list of names (exact or <c>.name</c> suffix).</summary>
    public static TargetModules FromNames(IEnumerable<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return new([.. names], null);
    }

    /// <summary>A full-match regular expression, or <c>"all-linear"</c>.</summary>
    public static TargetModules FromPattern(string pattern)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        return new(null, pattern);
    }

    /// <summary>Collection-expression builder (<c>TargetModules t = ["q_proj", "v_proj"]</c>).</summary>
    public static TargetModules Create(ReadOnlySpan<string> names) => new(names.ToArray(), null);

    /// <summary>A list of names.</summary>
    public static implicit operator TargetModules(string[] names) => FromNames(names);

    /// <summary>A list of names.</summary>
    public static implicit operator TargetModules(List<string> names) => FromNames(names);

    /// <summary>A regex or "all-linear".</summary>
    public static implicit operator TargetModules(string pattern) => FromPattern(pattern);

    /// <summary>
    /// Whether the module with full dotted name <paramref name="key"/> matches (PEFT's rule: regex → full match;
    /// list → exact name or <c>.entry</c> suffix).
    /// </summary>
    public bool Matches(string key)
    {
        if (_names is not null)
        {
            foreach (var n in _names)
            {
                if (key == n || key.EndsWith("." + n, StringComparison.Ordinal)) return true;
            }
            return false;
        }
        if (IsAllLinear) throw new InvalidOperationException("\"all-linear\" must be expanded to module names before matching.");
        return Regex.IsMatch(key, "^(?:" + Pattern + ")$");
    }

    /// <summary>True when this list-form target names exactly <paramref name="key"/> (PEFT's <c>key in target_modules</c>).</summary>
    public bool ContainsExact(string key) => _names is not null && Array.IndexOf(_names, key) >= 0;

    /// <inheritdoc />
    public IEnumerator<string> GetEnumerator() => ((IEnumerable<string>)(_names ?? [Pattern!])).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <inheritdoc />
    public bool Equals(TargetModules? other) =>
        other is not null && Pattern == other.Pattern &&
        (_names is null ? other._names is null : other._names is not null && _names.SequenceEqual(other._names));

    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as TargetModules);

    /// <inheritdoc />
    public override int GetHashCode() => _names is null ? Pattern!.GetHashCode(StringComparison.Ordinal) : _names.Length;

    /// <inheritdoc />
    public override string ToString() => _names is null ? $"\"{Pattern}\"" : "[" + string.Join(", ", _names.Select(n => $"'{n}'")) + "]";
}

/// <summary>Reads a JSON string (regex) or array of strings (names) into <see cref="TargetModules"/>, and writes it back the same way.</summary>
internal sealed class TargetModulesJsonConverter : JsonConverter<TargetModules>
{
    /// <inheritdoc />
    public override TargetModules? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null: return null;
            case JsonTokenType.String: return TargetModules.FromPattern(reader.GetString()!);
            case JsonTokenType.StartArray:
                var list = JsonSerializer.Deserialize<List<string>>(ref reader, options)!;
                return TargetModules.FromNames(list);
            default: throw new JsonException("expected a string (regex) or a list of module names");
        }
    }

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, TargetModules value, JsonSerializerOptions options)
    {
        if (value.Names is null) writer.WriteStringValue(value.Pattern);
        else JsonSerializer.Serialize(writer, value.Names, options);
    }
}

/// <summary>Reads an int or a list of ints (PEFT <c>layers_to_transform</c>) into a list.</summary>
internal sealed class IntOrListJsonConverter : JsonConverter<IReadOnlyList<int>>
{
    /// <inheritdoc />
    public override IReadOnlyList<int>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Null => null,
            JsonTokenType.Number => [reader.GetInt32()],
            JsonTokenType.StartArray => JsonSerializer.Deserialize<List<int>>(ref reader, options),
            _ => throw new JsonException("expected an int or a list of ints"),
        };

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, IReadOnlyList<int> value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value.ToArray(), options);
}

/// <summary>Reads a string or a list of strings (PEFT <c>layers_pattern</c>, <c>modules_to_save</c>) into a list.</summary>
internal sealed class StringOrListJsonConverter : JsonConverter<IReadOnlyList<string>>
{
    /// <inheritdoc />
    public override IReadOnlyList<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType switch
        {
            JsonTokenType.Null => null,
            JsonTokenType.String => [reader.GetString()!],
            JsonTokenType.StartArray => JsonSerializer.Deserialize<List<string>>(ref reader, options),
            _ => throw new JsonException("expected a string or a list of strings"),
        };

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, IReadOnlyList<string> value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value.ToArray(), options);
}
