namespace Peft.Datasets;

/// <summary>
/// A strict reader of the Thrift compact protocol for Parquet metadata (the footer's <c>FileMetaData</c> and each
/// <c>PageHeader</c>), walked exactly the way Parquet.Net 6.1's generated reader consumes the bytes: a known field is
/// read as its declared type whatever its wire type says, an unknown one is skipped by its wire type. It refuses what
/// would send that reader past the end of its buffer (where its varint and struct-skip loops never end), a field whose
/// wire type differs from the declared one, an unknown struct or nested list (Parquet.Net cannot skip those), and list
/// counts or lengths larger than the bytes left. The result is a tree of <see cref="ThriftStruct"/> values.
/// </summary>
internal sealed class ParquetThriftReader(byte[] buffer, int start, int end, string what)
{
    private const int MaxDepth = 16;

    /// <summary>Field types per struct, from parquet.thrift as Parquet.Net 6.1.0 reads it ("id:type"; list&lt;T&gt;; a struct by name).</summary>
    private static readonly Dictionary<string, string> Schema = new()
    {
        ["SizeStatistics"] = "1:i64 2:list<i64> 3:list<i64>",
        ["BoundingBox"] = "1:double 2:double 3:double 4:double 5:double 6:double 7:double 8:double",
        ["GeospatialStatistics"] = "1:BoundingBox 2:list<i32>",
        ["Statistics"] = "1:bin 2:bin 3:i64 4:i64 5:bin 6:bin 7:bool 8:bool",
        ["StringType"] = "",
        ["UUIDType"] = "",
        ["MapType"] = "",
        ["ListType"] = "",
        ["EnumType"] = "",
        ["DateType"] = "",
        ["Float16Type"] = "",
        ["NullType"] = "",
        ["DecimalType"] = "1:i32 2:i32",
        ["MilliSeconds"] = "",
        ["MicroSeconds"] = "",
        ["NanoSeconds"] = "",
        ["TimeUnit"] = "1:MilliSeconds 2:MicroSeconds 3:NanoSeconds",
        ["TimestampType"] = "1:bool 2:TimeUnit",
        ["TimeType"] = "1:bool 2:TimeUnit",
        ["IntType"] = "1:i8 2:bool",
        ["JsonType"] = "",
        ["BsonType"] = "",
        ["VariantType"] = "1:i8",
        ["GeometryType"] = "1:bin",
        ["GeographyType"] = "1:bin 2:i32",
        ["LogicalType"] = "1:StringType 2:MapType 3:ListType 4:EnumType 5:DecimalType 6:DateType 7:TimeType 8:TimestampType 10:IntType 11:NullType 12:JsonType 13:BsonType 14:UUIDType 15:Float16Type 16:VariantType 17:GeometryType 18:GeographyType",
        ["SchemaElement"] = "1:i32 2:i32 3:i32 4:bin 5:i32 6:i32 7:i32 8:i32 9:i32 10:LogicalType",
        ["DataPageHeader"] = "1:i32 2:i32 3:i32 4:i32 5:Statistics",
        ["IndexPageHeader"] = "",
        ["DictionaryPageHeader"] = "1:i32 2:i32 3:bool",
        ["DataPageHeaderV2"] = "1:i32 2:i32 3:i32 4:i32 5:i32 6:i32 7:bool 8:Statistics",
        ["PageHeader"] = "1:i32 2:i32 3:i32 4:i32 5:DataPageHeader 6:IndexPageHeader 7:DictionaryPageHeader 8:DataPageHeaderV2",
        ["KeyValue"] = "1:bin 2:bin",
        ["SortingColumn"] = "1:i32 2:bool 3:bool",
        ["PageEncodingStats"] = "1:i32 2:i32 3:i32",
        ["ColumnMetaData"] = "1:i32 2:list<i32> 3:list<bin> 4:i32 5:i64 6:i64 7:i64 8:list<KeyValue> 9:i64 10:i64 11:i64 12:Statistics 13:list<PageEncodingStats> 14:i64 15:i32 16:SizeStatistics 17:GeospatialStatistics",
        ["EncryptionWithFooterKey"] = "",
        ["EncryptionWithColumnKey"] = "1:list<bin> 2:bin",
        ["ColumnCryptoMetaData"] = "1:EncryptionWithFooterKey 2:EncryptionWithColumnKey",
        ["ColumnChunk"] = "1:bin 2:i64 3:ColumnMetaData 4:i64 5:i32 6:i64 7:i32 8:ColumnCryptoMetaData 9:bin",
        ["RowGroup"] = "1:list<ColumnChunk> 2:i64 3:i64 4:list<SortingColumn> 5:i64 6:i64 7:i16",
        ["TypeDefinedOrder"] = "",
        ["ColumnOrder"] = "1:TypeDefinedOrder",
        ["AesGcmV1"] = "1:bin 2:bin 3:bool",
        ["AesGcmCtrV1"] = "1:bin 2:bin 3:bool",
        ["EncryptionAlgorithm"] = "1:AesGcmV1 2:AesGcmCtrV1",
        ["FileMetaData"] = "1:i32 2:list<SchemaElement> 3:i64 4:list<RowGroup> 5:list<KeyValue> 6:bin 7:list<ColumnOrder> 8:EncryptionAlgorithm 9:bin",
    };

    private static readonly Dictionary<string, Dictionary<short, string>> Fields = Schema.ToDictionary(
        kv => kv.Key,
        kv => kv.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .ToDictionary(f => short.Parse(f[..f.IndexOf(':')], System.Globalization.CultureInfo.InvariantCulture), f => f[(f.IndexOf(':') + 1)..]));

    private readonly int _start = start;
    private int _pos = start;

    /// <summary>Position after the last byte read.</summary>
    public int Position => _pos;

    /// <summary>Reads one struct of the given parquet.thrift type.</summary>
    public ThriftStruct ReadStruct(string type) => ReadStruct(type, 0);

    private InvalidDataException Bad(string message) =>
        new($"Parquet {what} is corrupt at byte {_pos - _start}: {message}");

    private byte Next()
    {
        if (_pos >= end) throw Bad("unexpected end of the metadata");
        return buffer[_pos++];
    }

    private ulong Varint(int maxBytes)
    {
        ulong v = 0;
        for (int i = 0; i < maxBytes; i++)
        {
            byte b = Next();
            v |= (ulong)(b & 0x7F) << (7 * i);
            if ((b & 0x80) == 0) return v;
        }
        throw Bad($"a varint longer than {maxBytes} bytes");
    }

    private int Length(long n, string kind)
    {
        if (n < 0 || n > end - _pos) throw Bad($"{kind} of {n} is more than the {end - _pos} bytes left");
        return (int)n;
    }

    private ThriftStruct ReadStruct(string type, int depth)
    {
        if (depth > MaxDepth) throw Bad($"structs nested deeper than {MaxDepth}");
        var known = Fields[type];
        var s = new ThriftStruct();
        short last = 0;
        while (true)
        {
            byte header = Next();
            if (header == 0) return s;
            int modifier = header >> 4, wire = header & 0x0F;
            short id = modifier == 0 ? (short)ZigZag32((uint)Varint(5)) : unchecked((short)(last + modifier));
            last = id;
            if (known.TryGetValue(id, out var declared))
            {
                if (!WireMatches(declared, wire)) throw Bad($"{type} field {id} is declared {declared} but has wire type {wire}");
                s.Fields[id] = declared == "bool" ? wire == 1 : ReadValue(declared, depth);
            }
            else SkipUnknown(type, id, wire);
        }
    }

    private object ReadValue(string declared, int depth)
    {
        switch (declared)
        {
            case "i8": return (long)(sbyte)Next();
            case "i16":
            case "i32": return (long)ZigZag32((uint)Varint(5));
            case "i64": return ZigZag(Varint(10));
            case "double": _ = Length(8, "a double"); _pos += 8; return 0.0;
            case "bin":
                {
                    int n = Length(unchecked((int)(uint)Varint(5)), "a binary length");
                    var bytes = buffer.AsSpan(_pos, n).ToArray();
                    _pos += n;
                    return bytes;
                }
            case "bool": return Next() == 1; // a list element
        }
        if (declared.StartsWith("list<", StringComparison.Ordinal))
        {
            string element = declared[5..^1];
            byte h = Next();
            long count = h >> 4 == 15 ? unchecked((int)(uint)Varint(5)) : h >> 4;
            if (!WireMatches(element, h & 0x0F) && !(element == "bool" && (h & 0x0F) is 1 or 2))
                throw Bad($"a list of {element} has element wire type {h & 0x0F}");
            int n = Length(count, "a list count");
            var list = new List<object>(Math.Min(n, 1024));
            for (int i = 0; i < n; i++) list.Add(ReadValue(element, depth));
            return list;
        }
        return ReadStruct(declared, depth + 1);
    }

    /// <summary>Parquet.Net's SkipField: primitives by wire type; it cannot skip structs, sets, maps or nested lists.</summary>
    private void SkipUnknown(string type, short id, int wire)
    {
        switch (wire)
        {
            case 1 or 2: return;
            case 3: _ = Length(1, "a byte"); _pos++; return;
            case 4 or 5: Varint(5); return;
            case 6: Varint(10); return;
            case 7: _pos += Length(8, "a double"); return;
            case 8:
                {
                    int n = Length(unchecked((int)(uint)Varint(5)), "a binary length"); // read before _pos is
                    _pos += n;
                    return;
                }
            case 9:
                {
                    byte h = Next();
                    long count = h >> 4 == 15 ? unchecked((int)(uint)Varint(5)) : h >> 4;
                    int elementWire = h & 0x0F;
                    if (elementWire is < 1 or > 8) throw Bad($"unknown {type} field {id} is a list of wire type {elementWire}, which Parquet.Net cannot skip");
                    int n = Length(count, "a list count");
                    for (int i = 0; i < n; i++) SkipUnknown(type, id, elementWire);
                    return;
                }
            default: throw Bad($"unknown {type} field {id} has wire type {wire}, which Parquet.Net cannot skip");
        }
    }

    private static bool WireMatches(string declared, int wire) => declared switch
    {
        "bool" => wire is 1 or 2,
        "i8" => wire == 3,
        "i16" => wire == 4,
        "i32" => wire == 5,
        "i64" => wire == 6,
        "double" => wire == 7,
        "bin" => wire == 8,
        _ when declared.StartsWith("list<", StringComparison.Ordinal) => wire == 9,
        _ => wire == 12,
    };

    private static long ZigZag(ulong n) => (long)(n >> 1) ^ -(long)(n & 1);

    private static int ZigZag32(uint n) => (int)(n >> 1) ^ -(int)(n & 1);
}

/// <summary>One decoded Thrift struct: field id to value (long, bool, double, byte[], List&lt;object&gt; or ThriftStruct).</summary>
internal sealed class ThriftStruct
{
    /// <summary>The fields present.</summary>
    public Dictionary<short, object> Fields { get; } = [];

    /// <summary>An integer field, or null when absent.</summary>
    public long? Long(short id) => Fields.TryGetValue(id, out var v) && v is long l ? l : null;

    /// <summary>A struct field, or null when absent.</summary>
    public ThriftStruct? Struct(short id) => Fields.TryGetValue(id, out var v) ? v as ThriftStruct : null;

    /// <summary>A list field (empty when absent).</summary>
    public IEnumerable<T> List<T>(short id) => Fields.TryGetValue(id, out var v) && v is List<object> l ? l.OfType<T>() : [];
}
