using System.Globalization;
using System.Text;

namespace Peft.Datasets;

/// <summary>Python-like text for values, dataset reprs and small tables.</summary>
internal static class Formatting
{
    /// <summary>Python <c>str(value)</c>-like text (used for ClassLabel names from values).</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        string s => s,
        bool b => b ? "True" : "False",
        double d => PyFloat(d),
        float f => PyFloat(f),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static string PyFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') ? s : s + ".0";
    }

    /// <summary>Python <c>repr(value)</c>-like text.</summary>
    public static string Repr(object? v) => v switch
    {
        null => "None",
        string s => "'" + s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n") + "'",
        Array a => "[" + string.Join(", ", a.Cast<object?>().Select(Repr)) + "]",
        _ => Str(v),
    };

    public static string DatasetRepr(Dataset ds, int indent)
    {
        var pad = new string(' ', indent);
        return $"Dataset({{\n{pad}    features: [{string.Join(", ", ds.ColumnNames.Select(n => $"'{n}'"))}],\n{pad}    num_rows: {ds.NumRows}\n{pad}}})";
    }

    public static string Table(Dataset ds, IReadOnlyList<int> rows, int maxWidth)
    {
        var names = ds.ColumnNames;
        var cells = new List<string[]>();
        foreach (var r in rows)
        {
            var row = ds[r];
            cells.Add(names.Select(n =>
            {
                var v = row[n];
                if (ds.Features[n] is ClassLabel cl && v is long id && id >= 0 && id < cl.NumClasses) v = cl.Names[(int)id];
                var s = v is string str ? str : Repr(v);
                s = s.Replace("\r", " ").Replace("\n", " ");
                return s.Length > maxWidth ? s[..Math.Max(0, maxWidth - 3)] + "..." : s;
            }).ToArray());
        }
        var idx = rows.Select(r => r.ToString(CultureInfo.InvariantCulture)).ToArray();
        int idxW = Math.Max(1, idx.Select(s => s.Length).DefaultIfEmpty(0).Max());
        var widths = names.Select((n, c) => Math.Max(n.Length, cells.Select(row => row[c].Length).DefaultIfEmpty(0).Max())).ToArray();
        var sb = new StringBuilder();
        sb.Append(new string(' ', idxW));
        for (int c = 0; c < names.Count; c++) sb.Append("  ").Append(names[c].PadRight(widths[c]));
        sb.AppendLine();
        for (int i = 0; i < cells.Count; i++)
        {
            sb.Append(idx[i].PadLeft(idxW));
            for (int c = 0; c < names.Count; c++) sb.Append("  ").Append(cells[i][c].PadRight(widths[c]));
            sb.AppendLine();
        }
        return sb.ToString();
    }
}
