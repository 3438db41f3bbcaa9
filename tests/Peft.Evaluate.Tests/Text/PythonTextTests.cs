using Peft.Evaluate.Text;

namespace Peft.Evaluate.Tests.Text;

/// <summary>The Python <c>str</c> behaviours the reference tools depend on (expected values are what CPython 3 prints).</summary>
public class PythonTextTests
{
    [Fact]
    public void Lower_applies_final_sigma_and_dotted_capital_i()
    {
        // 'ΟΔΟΣ ΣΑ ΟΔΟΣ.'.lower() == 'οδος σα οδος.' ; 'İ'.lower() == 'i̇'
        Assert.Equal("\u03bf\u03b4\u03bf\u03c2 \u03c3\u03b1 \u03bf\u03b4\u03bf\u03c2.", PythonText.Lower("\u039f\u0394\u039f\u03a3 \u03a3\u0391 \u039f\u0394\u039f\u03a3."));
        Assert.Equal("i\u0307", PythonText.Lower("\u0130"));
    }

    [Fact]
    public void Split_and_strip_use_python_whitespace()
    {
        // 'a\x1cb\xa0c\u200bd'.split() == ['a', 'b', 'c\u200bd'] (U+200B is not whitespace; U+001C is, unlike char.IsWhiteSpace)
        Assert.Equal(["a", "b", "c\u200bd"], PythonText.Split("a\u001cb\u00a0c\u200bd"));
        Assert.Equal(" x", PythonText.RStrip(" x \u001c"));
        Assert.Empty(PythonText.Split(" \t\n "));
    }

    [Fact]
    public void Code_points_not_utf16_units()
    {
        // len('👍a') == 2 in Python; the char tokenizer splits per code point.
        Assert.Equal(2, PythonText.CodePoints("\U0001F44Da").Length);
        Assert.Equal("\U0001F44D a", SacreBleuTokenizers.TokenizeChar("\U0001F44Da"));
    }
}
