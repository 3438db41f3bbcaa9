namespace Peft.Evaluate.Classification;

/// <summary>scikit-learn's <c>zero_division</c>: <c>"warn"</c> (value 0.0 and a warning), 0.0, 1.0 or NaN.</summary>
internal readonly record struct ZeroDivision(bool Warn, double Value)
{
    public static ZeroDivision Parse(object? raw, string metric)
    {
        switch (raw)
        {
            case null: return new(true, 0.0);
            case string s when s == "warn": return new(true, 0.0);
            case string s when s is "nan" or "NaN": return new(false, double.NaN);
            case bool: break;
            case IConvertible c when raw is not string:
                var d = c.ToDouble(System.Globalization.CultureInfo.InvariantCulture);
                if (d == 0.0 || d == 1.0 || double.IsNaN(d)) return new(false, d);
                break;
        }
        throw new ArgumentException(
            $"Metric '{metric}': zero_division must be \"warn\", 0.0, 1.0 or NaN (scikit-learn's options), got {Kwargs.Describe(raw)}.", "zero_division");
    }
}
