namespace Peft.Transformers.Tokenization.ChatTemplates;

/// <summary>Binary operators with Python semantics (int/float promotion, floor division and modulo, str/list concatenation and repetition).</summary>
internal static class JinjaOperators
{
    public static object? Binary(string op, object? a, object? b, int line)
    {
        switch (op)
        {
            case "~": return Py.Str(a) + Py.Str(b);
            case "==": return Py.Eq(a, b);
            case "!=": return !Py.Eq(a, b);
            case "<": return Py.Compare(a, b) < 0;
            case ">": return Py.Compare(a, b) > 0;
            case "<=": return Py.Compare(a, b) <= 0;
            case ">=": return Py.Compare(a, b) >= 0;
            case "in": return Contains(b, a, line);
            case "not in": return !Contains(b, a, line);
        }
        if (a is Undefined ua) throw new TemplateException($"line {line}: '{ua.Name}' is undefined");
        if (b is Undefined ub) throw new TemplateException($"line {line}: '{ub.Name}' is undefined");
        if (Py.IsNumber(a) && Py.IsNumber(b)) return Numeric(op, a, b, line);
        switch (op)
        {
            case "+" when a is string sa && b is string sb: return sa + sb;
            case "+" when a is List<object?> la && b is List<object?> lb: return la.Concat(lb).ToList();
            case "+" when a is object?[] ta && b is object?[] tb: return ta.Concat(tb).ToArray();
            case "*" when a is string s && b is long or bool: return string.Concat(Enumerable.Repeat(s, RepeatCount(b, s.Length, line)));
            case "*" when b is string s2 && a is long or bool: return string.Concat(Enumerable.Repeat(s2, RepeatCount(a, s2.Length, line)));
            case "*" when a is List<object?> l && b is long or bool: return Enumerable.Repeat(l, RepeatCount(b, l.Count, line)).SelectMany(x => x).ToList();
        }
        throw new TemplateException($"line {line}: unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'");
    }

    // A template comes from a downloaded file: 'x' * 10**12 must fail (Python: MemoryError) instead of allocating
    // without bound or, through an int cast, silently repeating a wrong number of times.
    private const long MaxRepeatItems = 1L << 26;

    private static int RepeatCount(object? times, long unit, int line)
    {
        long count = Math.Max(0, Py.ToLong(times));
        if (count > MaxRepeatItems || (unit > 0 && count > MaxRepeatItems / unit))
            throw new TemplateException($"line {line}: repeating {unit} items {count} times would exceed {MaxRepeatItems} items");
        return (int)count;
    }

    private static long IntPow(long x, long y)
    {
        long result = 1;
        for (; y > 0; y >>= 1)
        {
            if ((y & 1) != 0) result = checked(result * x);
            if (y > 1) x = checked(x * x);
        }
        return result;
    }

    private static object Numeric(string op, object? a, object? b, int line)
    {
        bool ints = a is not double && b is not double;
        if (ints)
        {
            long x = Py.ToLong(a), y = Py.ToLong(b);
            // Python's ints are unbounded, ours are Int64: a result outside that range is an error, never a wrapped value
            try
            {
                switch (op)
                {
                    case "+": return checked(x + y);
                    case "-": return checked(x - y);
                    case "*": return checked(x * y);
                    case "/": return y == 0 ? throw ZeroDiv(line) : (double)x / y;
                    case "//": return y == 0 ? throw ZeroDiv(line) : FloorDiv(x, y);
                    case "%": return y == 0 ? throw ZeroDiv(line) : checked(x - FloorDiv(x, y) * y);
                    case "**": return y >= 0 ? (object)IntPow(x, y) : Math.Pow(x, y);
                }
            }
            catch (OverflowException)
            {
                throw new TemplateException($"line {line}: the integer result of {x} {op} {y} is outside the 64-bit range");
            }
        }
        double p = Py.ToDouble(a), q = Py.ToDouble(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw ZeroDiv(line) : p / q,
            "//" => q == 0 ? throw ZeroDiv(line) : Math.Floor(p / q),
            "%" => q == 0 ? throw ZeroDiv(line) : p - Math.Floor(p / q) * q,
            "**" => Math.Pow(p, q),
            _ => throw new TemplateException($"line {line}: unknown operator {op}"),
        };
    }

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static TemplateException ZeroDiv(int line) => new($"line {line}: division by zero");

    public static bool Contains(object? container, object? item, int line) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw new TemplateException($"line {line}: 'in <string>' requires string as left operand, not {Py.TypeName(item)}"),
        OrderedDictionary<string, object?> d => item is string k && d.ContainsKey(k),
        Undefined => false,
        JinjaNamespace ns => item is string k2 && ns.Attrs.ContainsKey(k2),
        _ => Py.AsSequence(container) is { } seq ? seq.Any(x => Py.Eq(x, item))
            : throw new TemplateException($"line {line}: argument of type '{Py.TypeName(container)}' is not iterable"),
    };
}
