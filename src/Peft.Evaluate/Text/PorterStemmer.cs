namespace Peft.Evaluate.Text;

/// <summary>
/// NLTK's <c>PorterStemmer</c> in its default <c>NLTK_EXTENSIONS</c> mode (<c>nltk/stem/porter.py</c>), the stemmer
/// rouge_score uses for <c>use_stemmer=True</c>: Porter (1980) with Martin Porter's published departures and NLTK's
/// additions (irregular forms, <c>ies</c>/<c>ied</c> on four-letter words, <c>y→i</c> only after a consonant,
/// <c>alli</c>, <c>fulli</c>, <c>logi</c>, two-letter cvc). Input is lowercased.
/// </summary>
internal sealed class PorterStemmer
{
    private static readonly Dictionary<string, string> Pool = BuildPool();

    private static Dictionary<string, string> BuildPool()
    {
        var irregular = new (string Stem, string[] Forms)[]
        {
            ("sky", ["sky", "skies"]), ("die", ["dying"]), ("lie", ["lying"]), ("tie", ["tying"]), ("news", ["news"]),
            ("inning", ["innings", "inning"]), ("outing", ["outings", "outing"]), ("canning", ["cannings", "canning"]),
            ("howe", ["howe"]), ("proceed", ["proceed"]), ("exceed", ["exceed"]), ("succeed", ["succeed"]),
        };
        var pool = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (stem, forms) in irregular) foreach (var f in forms) pool[f] = stem;
        return pool;
    }

    /// <summary>Stems one word (NLTK <c>stem(word)</c> with <c>to_lowercase=True</c>).</summary>
    public string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        string stem = PythonText.Lower(word);
        if (Pool.TryGetValue(word, out var irregular)) return irregular;
        if (word.Length <= 2) return stem;
        stem = Step1a(stem);
        stem = Step1b(stem);
        stem = Step1c(stem);
        stem = Step2(stem);
        stem = Step3(stem);
        stem = Step4(stem);
        stem = Step5a(stem);
        stem = Step5b(stem);
        return stem;
    }

    private static bool IsVowelLetter(char c) => c is 'a' or 'e' or 'i' or 'o' or 'u';

    private static bool IsConsonant(string word, int i)
    {
        if (IsVowelLetter(word[i])) return false;
        if (word[i] == 'y') return i == 0 || !IsConsonant(word, i - 1);
        return true;
    }

    /// <summary>m in [C](VC){m}[V].</summary>
    private static int Measure(string stem)
    {
        int m = 0;
        for (int i = 1; i < stem.Length; i++)
            if (!IsConsonant(stem, i - 1) && IsConsonant(stem, i)) m++;
        return m;
    }

    private static bool PositiveMeasure(string stem) => Measure(stem) > 0;

    private static bool ContainsVowel(string stem)
    {
        for (int i = 0; i < stem.Length; i++) if (!IsConsonant(stem, i)) return true;
        return false;
    }

    private static bool EndsDoubleConsonant(string w) => w.Length >= 2 && w[^1] == w[^2] && IsConsonant(w, w.Length - 1);

    private static bool EndsCvc(string w) =>
        (w.Length >= 3 && IsConsonant(w, w.Length - 3) && !IsConsonant(w, w.Length - 2) && IsConsonant(w, w.Length - 1) && w[^1] is not ('w' or 'x' or 'y'))
        || (w.Length == 2 && !IsConsonant(w, 0) && IsConsonant(w, 1));

    private static string Cut(string word, string suffix) => word[..^suffix.Length];

    /// <summary>A rule: suffix ("*d" = any double consonant), replacement, condition on the stem (null = always).</summary>
    private readonly record struct Rule(string Suffix, string Replacement, Func<string, bool>? Condition);

    /// <summary>The first rule whose suffix matches decides: apply it if its condition holds, otherwise keep the word.</summary>
    private static string ApplyRules(string word, IEnumerable<Rule> rules)
    {
        foreach (var (suffix, replacement, condition) in rules)
        {
            if (suffix == "*d" && EndsDoubleConsonant(word))
            {
                var s = word[..^2];
                return condition is null || condition(s) ? s + replacement : word;
            }
            if (word.EndsWith(suffix, StringComparison.Ordinal))
            {
                var s = Cut(word, suffix);
                return condition is null || condition(s) ? s + replacement : word;
            }
        }
        return word;
    }

    private static string Step1a(string word)
    {
        if (word.EndsWith("ies", StringComparison.Ordinal) && word.Length == 4) return Cut(word, "ies") + "ie";
        return ApplyRules(word, [new("sses", "ss", null), new("ies", "i", null), new("ss", "ss", null), new("s", "", null)]);
    }

    private static string Step1b(string word)
    {
        if (word.EndsWith("ied", StringComparison.Ordinal))
            return word.Length == 4 ? Cut(word, "ied") + "ie" : Cut(word, "ied") + "i";
        if (word.EndsWith("eed", StringComparison.Ordinal))
        {
            var stem = Cut(word, "eed");
            return Measure(stem) > 0 ? stem + "ee" : word;
        }
        string? intermediate = null;
        foreach (var suffix in new[] { "ed", "ing" })
        {
            if (word.EndsWith(suffix, StringComparison.Ordinal))
            {
                var s = Cut(word, suffix);
                if (ContainsVowel(s)) { intermediate = s; break; }
            }
        }
        if (intermediate is null) return word;
        var im = intermediate;
        return ApplyRules(im,
        [
            new("at", "ate", null), new("bl", "ble", null), new("iz", "ize", null),
            new("*d", im.Length > 0 ? im[^1].ToString() : "", _ => im[^1] is not ('l' or 's' or 'z')),
            new("", "e", s => Measure(s) == 1 && EndsCvc(s)),
        ]);
    }

    private static string Step1c(string word) =>
        ApplyRules(word, [new("y", "i", s => s.Length > 1 && IsConsonant(s, s.Length - 1))]);

    private static string Step2(string word)
    {
        if (word.EndsWith("alli", StringComparison.Ordinal) && PositiveMeasure(Cut(word, "alli")))
            return Step2(Cut(word, "alli") + "al");
        Func<string, bool> pm = PositiveMeasure;
        return ApplyRules(word,
        [
            new("ational", "ate", pm), new("tional", "tion", pm), new("enci", "ence", pm), new("anci", "ance", pm),
            new("izer", "ize", pm), new("bli", "ble", pm), new("alli", "al", pm), new("entli", "ent", pm),
            new("eli", "e", pm), new("ousli", "ous", pm), new("ization", "ize", pm), new("ation", "ate", pm),
            new("ator", "ate", pm), new("alism", "al", pm), new("iveness", "ive", pm), new("fulness", "ful", pm),
            new("ousness", "ous", pm), new("aliti", "al", pm), new("iviti", "ive", pm), new("biliti", "ble", pm),
            new("fulli", "ful", pm), new("logi", "log", _ => PositiveMeasure(word[..^3])),
        ]);
    }

    private static string Step3(string word)
    {
        Func<string, bool> pm = PositiveMeasure;
        return ApplyRules(word,
        [
            new("icate", "ic", pm), new("ative", "", pm), new("alize", "al", pm), new("iciti", "ic", pm),
            new("ical", "ic", pm), new("ful", "", pm), new("ness", "", pm),
        ]);
    }

    private static string Step4(string word)
    {
        Func<string, bool> gt1 = s => Measure(s) > 1;
        return ApplyRules(word,
        [
            new("al", "", gt1), new("ance", "", gt1), new("ence", "", gt1), new("er", "", gt1), new("ic", "", gt1),
            new("able", "", gt1), new("ible", "", gt1), new("ant", "", gt1), new("ement", "", gt1), new("ment", "", gt1),
            new("ent", "", gt1), new("ion", "", s => Measure(s) > 1 && s.Length > 0 && s[^1] is 's' or 't'),
            new("ou", "", gt1), new("ism", "", gt1), new("ate", "", gt1), new("iti", "", gt1), new("ous", "", gt1),
            new("ive", "", gt1), new("ize", "", gt1),
        ]);
    }

    private static string Step5a(string word)
    {
        if (word.EndsWith('e'))
        {
            var stem = Cut(word, "e");
            int m = Measure(stem);
            if (m > 1) return stem;
            if (m == 1 && !EndsCvc(stem)) return stem;
        }
        return word;
    }

    private static string Step5b(string word) =>
        ApplyRules(word, [new("ll", "l", _ => Measure(word[..^1]) > 1)]);
}
