using System.Buffers.Binary;

namespace Peft.Datasets;

/// <summary>
/// Checks a Parquet file's metadata before Parquet.Net reads it, so that a corrupt or hostile file ends in an
/// <see cref="InvalidDataException"/> (which the loader wraps in a <see cref="DatasetLoadException"/> naming the file) instead of a reader that loops forever or allocates what a size
/// field claims: the magic bytes and footer length, the footer's Thrift structure (<see cref="ParquetThriftReader"/>),
/// and, for every column chunk, the chain of page headers Parquet.Net will follow (each inside the data region, page
/// sizes and value counts bounded by the file's real size). The reads that follow are also under a
/// <see cref="ReadBudgetStream"/>, which ends any loop these checks did not foresee.
/// </summary>
internal static class ParquetGuard
{
    private static ReadOnlySpan<byte> Magic => "PAR1"u8;

    /// <summary>Largest decompressed page accepted: the larger of 64 MiB and 4096 times its compressed size.</summary>
    public static long MaxUncompressedPage(long compressed) => Math.Max(1L << 26, 4096 * compressed);

    /// <summary>Checks <paramref name="file"/> (seekable; its position is left undefined).</summary>
    /// <param name="file">The open file.</param>
    /// <param name="maxValues">The most values (rows, dictionary entries) one column chunk or page may claim.</param>
    public static void Check(Stream file, long maxValues)
    {
        long length = file.Length;
        if (length < 12) throw new InvalidDataException($"not a Parquet file: {length} bytes");
        Span<byte> tail = stackalloc byte[8];
        file.Position = length - 8;
        file.ReadExactly(tail);
        Span<byte> head = stackalloc byte[4];
        file.Position = 0;
        file.ReadExactly(head);
        if (!head.SequenceEqual(Magic) || !tail[4..].SequenceEqual(Magic))
            throw new InvalidDataException($"not a Parquet file: the PAR1 magic bytes are missing");
        int footerLength = BinaryPrimitives.ReadInt32LittleEndian(tail);
        long dataEnd = length - 8 - footerLength;
        if (footerLength <= 0 || dataEnd < 4)
            throw new InvalidDataException($"Parquet footer length {footerLength} does not fit a {length}-byte file");
        var footer = new byte[footerLength];
        file.Position = dataEnd;
        file.ReadExactly(footer);
        var meta = new ParquetThriftReader(footer, 0, footer.Length, "footer").ReadStruct("FileMetaData");
        int g = 0;
        foreach (var rowGroup in meta.List<ThriftStruct>(4))
        {
            int c = 0;
            foreach (var chunk in rowGroup.List<ThriftStruct>(1))
            {
                if (chunk.Struct(3) is { } column) CheckPages(file, column, dataEnd, maxValues, $"row group {g} column {c}");
                c++;
            }
            g++;
        }
    }

    /// <summary>Follows the pages of one column chunk the way Parquet.Net's page loop does, checking each header.</summary>
    private static void CheckPages(Stream file, ThriftStruct column, long dataEnd, long maxValues, string where)
    {
        long numValues = column.Long(5) ?? 0;
        if (numValues < 0 || numValues > maxValues)
            throw new InvalidDataException($"Parquet {where} claims {numValues} values, more than a {file.Length}-byte file can hold (limit {maxValues})");
        long[] offsets = [column.Long(11) ?? 0, column.Long(9) ?? 0, column.Long(10) ?? 0];
        if (numValues == 0 || offsets.All(o => o == 0)) return;
        long pos = offsets.Where(o => o != 0).Min();
        long seen = 0;
        while (seen < numValues)
        {
            if (pos < 4 || pos >= dataEnd)
                throw new InvalidDataException($"Parquet {where}: a page starts at byte {pos}, outside the data region [4, {dataEnd}) (only {seen} of {numValues} values found before it)");
            var (header, headerEnd) = ReadPageHeader(file, pos, dataEnd, where);
            long compressed = header.Long(3) ?? 0, uncompressed = header.Long(2) ?? 0;
            if (compressed < 0 || headerEnd + compressed > dataEnd)
                throw new InvalidDataException($"Parquet {where}: the page at byte {pos} claims {compressed} compressed bytes; the data region ends at byte {dataEnd}");
            if (uncompressed < 0 || uncompressed > MaxUncompressedPage(compressed))
                throw new InvalidDataException($"Parquet {where}: the page at byte {pos} claims {uncompressed} bytes once decompressed, from {compressed} (limit {MaxUncompressedPage(compressed)})");
            long pageValues = (header.Long(1) ?? 0) switch
            {
                0 => header.Struct(5)?.Long(1) ?? 0,   // DATA_PAGE
                2 => header.Struct(7)?.Long(1) ?? 0,   // DICTIONARY_PAGE (entries, not rows)
                3 => header.Struct(8)?.Long(1) ?? 0,   // DATA_PAGE_V2
                _ => -1,                               // Parquet.Net refuses other page types itself
            };
            if (pageValues == -1) return;
            if (pageValues < 0 || pageValues > maxValues)
                throw new InvalidDataException($"Parquet {where}: the page at byte {pos} claims {pageValues} values (limit {maxValues})");
            if (header.Long(1) != 2) seen += pageValues;
            pos = headerEnd + compressed;
        }
    }

    /// <summary>Reads the page header at <paramref name="pos"/> (a window of the file, widened when the header is longer).</summary>
    private static (ThriftStruct Header, long End) ReadPageHeader(Stream file, long pos, long dataEnd, string where)
    {
        for (long window = 4096; ; window *= 8)
        {
            int n = (int)Math.Min(window, dataEnd - pos);
            var buf = new byte[n];
            file.Position = pos;
            file.ReadExactly(buf);
            var reader = new ParquetThriftReader(buf, 0, n, $"page header of {where} at byte {pos}");
            try
            {
                var header = reader.ReadStruct("PageHeader");
                return (header, pos + reader.Position);
            }
            catch (InvalidDataException) when (n == window && window < int.MaxValue / 8)
            {
                // the header may go on past this window: read a wider one (at most up to the data region's end)
            }
        }
    }
}
