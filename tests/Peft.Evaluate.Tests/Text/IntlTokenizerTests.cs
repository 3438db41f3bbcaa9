using Peft.Evaluate.Text;

namespace Peft.Evaluate.Tests.Text;

/// <summary>Hand-derived checks of sacrebleu's <c>intl</c> tokenizer (mteval-v14 rules, tokenizer_intl.py), which needs the
/// Python <c>regex</c> module and so is not in the generated vectors (its corpus/sentence scores are in SacreBleuSuiteTests).</summary>
public class IntlTokenizerTests
{
    [Theory]
    // Rule 1 (\P{N})(\p{P}) -> "\1 \2 ": "a," and "x." split; "1," has a digit before the comma, so not.
    // Rule 2 (\p{P})(\P{N}) -> " \1 \2": ", " and ". " split again; ",2" is followed by a digit, so "1,2" stays.
    // Whitespace collapsed -> "a , b 1,2 x ."
    [InlineData("a,b 1,2 x.", "a , b 1,2 x .")]
    // Rule 3 (\p{S}) -> " \1 ": '$' (Sc) and the emoji (So, one code point, a surrogate pair in UTF-16); '!' by rule 1.
    [InlineData("costs $5 \U0001F600!", "costs $ 5 \U0001F600 !")]
    // The documented mteval-v14 quirk: a number followed by a final period keeps it ("2019." is not split).
    [InlineData("in 2019.", "in 2019.")]
    // Unicode punctuation: curly quotes (Pi/Pf) and the em dash (Pd) are split off words.
    [InlineData("\u201cHi\u201d\u2014ok", "\u201c Hi \u201d \u2014 ok")]
    public void Tokenizes_like_mteval_v14(string input, string expected) => Assert.Equal(expected, SacreBleuTokenizers.TokenizeIntl(input));
}
