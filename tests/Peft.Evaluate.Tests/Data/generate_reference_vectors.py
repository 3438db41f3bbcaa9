"""Writes reference_vectors.json: expected values produced by RUNNING the reference implementations' own source.

Provenance (recorded in the JSON): sacrebleu from github.com/mjpost/sacrebleu (the fixture's sacrebleu 2.6.0 values
are reproduced exactly by this checkout) and nltk/stem/porter.py from github.com/nltk/nltk. Neither package could be
installed from a registry here, so the sources are put on sys.path with inert stand-ins for the modules that only
the CLI/dataset code imports (portalocker, tabulate, colorama, lxml, numpy).

Usage: python3 generate_reference_vectors.py SACREBLEU_SRC_DIR STUBS_DIR NLTK_PORTER_PY OUT_JSON
"""
import json
import sys

sacre_dir, stubs_dir, porter_py, out = sys.argv[1:5]
sys.path[:0] = [stubs_dir, sacre_dir]
import sacrebleu  # noqa: E402
from sacrebleu.metrics import BLEU, CHRF  # noqa: E402

src = open(porter_py, encoding="utf-8").read().replace("from nltk.stem.api import StemmerI", "class StemmerI: pass")
ns = {}
exec(compile(src, "porter.py", "exec"), ns)
stemmer = ns["PorterStemmer"]()

# Held-out sentences: punctuation/number rules of 13a, HTML entities, <skipped>, hyphen-newline, NFC vs NFD
# (no normalisation anywhere), Python-only whitespace (U+001C, NBSP), CJK with full-width punctuation, curly quotes
# and em dash (inside the zh tokenizer's quirky U+2001..U+2A6D range), CJK Extension B and emoji (outside it).
pairs = [
    ("It costs $3.50, isn't it?", ["It costs 3,50 $ - isn't it ?", "Its price is $3.50, right?"]),
    ("Tom &amp; Jerry &quot;rock&quot; 1990-2000 <skipped>", ['Tom & Jerry "rock" 1990 - 2000', "Tom and Jerry rock, 1990-2000."]),
    ("well-\nknown line\nbreak", ["well-known line break", "a well known break"]),
    ("Caf\u00e9 na\u00efve r\u00e9sum\u00e9.", ["Cafe\u0301 nai\u0308ve re\u0301sume\u0301.", "Caf\u00e9, na\u00efve r\u00e9sum\u00e9!"]),
    ("\u201c\u5927\u6a21\u578b\u201d\u2014\u2014\u5fae\u8c03\uff0c\u5f88\u6709\u7528\uff01", ["\u5927\u6a21\u578b\u5fae\u8c03\u5f88\u6709\u7528\u3002", "\u201c\u5fae\u8c03\u201d\u5927\u6a21\u578b\uff0c\u975e\u5e38\u6709\u7528\uff01"]),
    ("\U00020000\u5b57 \U0001F44D ok 3.14", ["\U00020000\u5b57 \U0001F44D OK 3.14", "\u5b57 ok"]),
    ("", ["not empty", "also not empty"]),
    ("spaced\u00a0out\x1ctext  here", ["spaced out text here", "spaced\u00a0out text"]),
    ("The QUICK brown fox.", ["the quick brown fox .", "The quick, brown fox!"]),
]
hyps = [h for h, _ in pairs]
streams = [[refs[k] for _, refs in pairs] for k in range(2)]

out_json = {"provenance": {"sacrebleu": "mjpost/sacrebleu source, run directly", "porter": "nltk/stem/porter.py, NLTK_EXTENSIONS"},
            "hypotheses": hyps, "references_per_hypothesis": [refs for _, refs in pairs],
            "tokenized": {}, "bleu": [], "sentence_bleu": [], "chrf": [], "porter": {}}

from sacrebleu.metrics.bleu import _get_tokenizer  # noqa: E402
for tok in ["13a", "zh", "char", "none"]:
    t = _get_tokenizer(tok)()
    out_json["tokenized"][tok] = [t(s.rstrip()) for s in hyps + [r for _, refs in pairs for r in refs]]

for tok in ["13a", "zh", "char", "none"]:
    for smooth, value in [("exp", None), ("floor", None), ("floor", 0.5), ("add-k", None), ("add-k", 2), ("none", None)]:
        for nrefs in (1, 2):
            for eff in (False, True):
                for lc in (False, True):
                    b = BLEU(tokenize=tok, smooth_method=smooth, smooth_value=value, effective_order=eff, lowercase=lc)
                    s = b.corpus_score(hyps, streams[:nrefs])
                    out_json["bleu"].append({"tokenize": tok, "smooth_method": smooth, "smooth_value": value, "refs": nrefs,
                                             "effective_order": eff, "lowercase": lc, "score": s.score,
                                             "counts": list(map(float, s.counts)), "totals": list(map(float, s.totals)),
                                             "sys_len": s.sys_len, "ref_len": s.ref_len, "bp": s.bp})
for i, (h, refs) in enumerate(pairs):
    for tok in ["13a", "zh"]:
        out_json["sentence_bleu"].append({"index": i, "tokenize": tok, "score": sacrebleu.sentence_bleu(h, refs, tokenize=tok).score})

for kw in [{}, {"word_order": 2}, {"lowercase": True}, {"whitespace": True}, {"eps_smoothing": True}, {"beta": 3}, {"char_order": 4, "word_order": 1}]:
    for nrefs in (1, 2):
        out_json["chrf"].append({"kwargs": kw, "refs": nrefs, "score": CHRF(**kw).corpus_score(hyps, streams[:nrefs]).score})

words = ("caresses ponies ties cats feed agreed plastered bled motoring sing conflated troubled sized hopping tanned "
         "falling hissing fizzed failing filing happy sky relational conditional rational valenci hesitanci digitizer "
         "conformabli radicalli differentli vileli analogousli vietnamization predication operator feudalism decisiveness "
         "hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti electrical "
         "hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible irritant replacement "
         "adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize probate "
         "rate cease controll roll dying lying tying news innings outings cannings howe proceed exceed succeed skies "
         "generously enjoy enjoyment spy fly try tried flies spied oed on i github is was generalization archaeology "
         "analogies biology fully traditionally crying marketing summarization evaluation parameters efficient "
         "transformers tuning adapters quantized embeddings attention").split()
out_json["porter"] = {w: stemmer.stem(w) for w in words}

with open(out, "w", encoding="utf-8") as f:
    json.dump(out_json, f, ensure_ascii=True, indent=1)
print("wrote", out, len(out_json["bleu"]), "bleu cases")
