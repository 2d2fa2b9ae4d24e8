"""Text normalization for speech: digits, symbols and abbreviations become the words a speaker says.

The output keeps sentence punctuation (, . ! ? ; : — ...) because the G2P turns it into pauses.
Rules are applied in a fixed order (see `_RULES`), most specific first: abbreviations, phone
numbers, currency, ranges, percentages, times, ordinals, fractions, years, units, plain numbers,
symbols.

Conventions (pinned by tests/test_normalize.py):
- cardinals are American, without "and": 101 -> "one hundred one", 2500 -> "two thousand five
  hundred"; "1,234,567" thousands separators; a leading "-" before a number -> "minus";
  integers over 10^18 or with a leading zero ("007") are read digit by digit.
- decimals are read digit by digit after "point": 3.14 -> "three point one four".
- years: a bare 4-digit number from 1100 to 2099 is read as a year (there is no reliable way
  to tell a year from a count without parsing; write "1,999" for the count):
  2000-2009 -> "two thousand (five)", 2010-2099 -> "twenty nineteen", XX00 -> "nineteen hundred",
  XX0Y -> "nineteen oh five", else pairs "nineteen ninety nine". "1990s" -> "nineteen nineties".
- times: "10:30" -> "ten thirty", "7:05" -> "seven oh five", "10:00" -> "ten o'clock",
  "7pm" / "7 p.m." -> "seven P M" (upper-case letters: the G2P spells runs of single capitals).
- letters the reader spells (a.m., U.S.A.) come out as upper-case single letters "U S A".
- currency: "$5.50" -> "five dollars and fifty cents", "$1.5 million" -> "one point five million
  dollars"; $ £ € ¥ and USD/EUR/GBP after a number.
`words_for_wer` is the one WER normalization: normalize_text, lower case, hyphens split words,
punctuation removed (in-word apostrophes kept), so reference and hypothesis compare as words.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion"]
_ORDINAL_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip


def _below_1000(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal: -1234 -> 'minus one thousand two hundred thirty four' (up to 10^21 - 1)."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 1000 ** len(_SCALES):
        return digits_to_words(str(n))
    if n == 0:
        return "zero"
    groups, words = [], []
    while n:
        n, rem = divmod(n, 1000)
        groups.append(rem)
    for scale, group in reversed(list(enumerate(groups))):
        if group:
            words += _below_1000(group) + ([_SCALES[scale]] if scale else [])
    return " ".join(words)


def ordinal_to_words(n: int) -> str:
    """22 -> 'twenty second', 100 -> 'one hundredth', 13 -> 'thirteenth'."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits_to_words(digits: str) -> str:
    """'007' -> 'zero zero seven' (non-digits are skipped)."""
    return " ".join(_ONES[int(d)] for d in digits if d.isdigit())


def year_to_words(year: int) -> str:
    """1999 -> 'nineteen ninety nine', 2005 -> 'two thousand five', 2019 -> 'twenty nineteen'."""
    if not 1000 <= year <= 9999 or 2000 <= year <= 2009 or year % 1000 == 0:
        return number_to_words(year)
    hi, lo = divmod(year, 100)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    if lo < 10:
        return f"{number_to_words(hi)} oh {_ONES[lo]}"
    return f"{number_to_words(hi)} {number_to_words(lo)}"


def _plural(words: str) -> str:
    """'nineteen ninety' -> 'nineteen nineties' (the 1990s), 'six' -> 'sixes'."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + ("es" if last[-1] in "sx" else "s")
    return f"{head} {last}".strip()


def _number(text: str) -> str:
    """'1,234.50' / '-3' / '.5' / '007' -> words."""
    sign = "minus " if text.startswith("-") else ""
    text = text.lstrip("-").replace(",", "")
    whole, _, frac = text.partition(".")
    if len(whole) > 1 and whole.startswith("0") or len(whole) > 21:
        words = digits_to_words(whole)
    else:
        words = number_to_words(int(whole)) if whole else ""
    if frac:
        words = f"{words} point {digits_to_words(frac)}".strip()
    return sign + words


# ---------------------------------------------------------------- rules

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_AMPM = r"(?P<ap>[aApP])\.?\s?[mM]\b\.?"
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
             "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen")}  # fmt: skip
_CODES = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
_SCALE_WORDS = {"k": "thousand", "thousand": "thousand", "m": "million", "million": "million",
                "bn": "billion", "b": "billion", "billion": "billion", "trillion": "trillion"}  # fmt: skip


def _sentence_end(m: re.Match) -> str:
    """Keep a full stop when a dotted abbreviation ends the sentence ('at 7 p.m.' + end)."""
    if not m.group(0).endswith("."):
        return ""
    rest = m.string[m.end() :]
    return "." if not rest.strip() or re.match(r"\s+[\"')\]]*[A-Z]", rest) else ""


def _money(m: re.Match) -> str:
    sym = m.group("sym") or _CODES[m.group("code").lower()]
    one, many, sub_one, sub_many = _CURRENCY[sym]
    amount = m.group("amt").replace(",", "")
    sign = "minus " if m.group("neg") else ""
    scale = m.group("scale")
    if scale:
        return f"{sign}{_number(amount)} {_SCALE_WORDS[scale.lower()]} {many}"
    whole, _, frac = amount.partition(".")
    whole_n = int(whole or 0)
    cents = int((frac + "0")[:2]) if frac else 0
    parts = []
    if whole_n or not cents:
        parts.append(f"{number_to_words(whole_n)} {one if whole_n == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return sign + " and ".join(parts)


def _clock(m: re.Match) -> str:
    hour, minute = int(m.group("h")), int(m.group("m") or 0)
    words = [number_to_words(hour)]
    if minute:
        words.append(number_to_words(minute) if minute >= 10 else f"oh {_ONES[minute]}")
    ap = m.group("ap")
    if ap:
        words.append(f"{ap.upper()} M")
    elif not minute:
        words.append("o'clock")
    return " ".join(words) + (_sentence_end(m) if ap else "")


def _year(m: re.Match) -> str:
    words = year_to_words(int(m.group(1)))
    return _plural(words) if m.group(2) else words


def _fraction(m: re.Match) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if den == 2:
        name = "half" if num == 1 else "halves"
    elif den == 4:
        name = "quarter" if num == 1 else "quarters"
    else:
        name = ordinal_to_words(den) + ("" if num == 1 else "s")
    return f"{number_to_words(num)} {name}"


def _letters(m: re.Match) -> str:
    # "U.S. Army": only the end of the text counts as a sentence end here (a.m./etc. guess more).
    end = "." if not m.string[m.end() :].strip() else ""
    return " ".join(c.upper() for c in m.group(0) if c.isalpha()) + end


_ABBREVIATIONS = [
    (r"\bMr\.", "mister"), (r"\bMrs\.", "missus"), (r"\bMs\.", "miz"), (r"\bDr\.", "doctor"),
    (r"\bProf\.", "professor"), (r"\bJr\.", "junior"), (r"\bSr\.", "senior"),
    (r"\bMt\.", "mount"),
    (r"\bCapt\.", "captain"), (r"\bLt\.", "lieutenant"), (r"\bSgt\.", "sergeant"),
    (r"\bCol\.", "colonel"), (r"\bRev\.", "reverend"), (r"\bGov\.", "governor"),
    (r"\bAve\.", "avenue"), (r"\bRd\.", "road"), (r"\bBlvd\.", "boulevard"),
    (r"\bvs\.?(?=\s)", "versus"), (r"\be\.g\.,?", "for example,"), (r"\bi\.e\.,?", "that is,"),
    (r"\ba\.k\.a\.", "also known as"), (r"\bapprox\.", "approximately"),
    (r"\bNo\.\s?(?=\d)", "number "), (r"\bno\.\s?(?=\d)", "number "),
    (r"\bInc\.", "incorporated"), (r"\bLtd\.", "limited"), (r"\bDept\.", "department"),
]  # fmt: skip
_UNITS = {"km": "kilometers", "kg": "kilograms", "cm": "centimeters", "mm": "millimeters",
          "mph": "miles per hour", "km/h": "kilometers per hour", "lbs": "pounds",
          "lb": "pounds", "ft": "feet", "°C": "degrees Celsius", "°F": "degrees Fahrenheit",
          "°": "degrees"}  # fmt: skip
_SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "%": " percent ",
            "×": " times ", "°": " degrees ", "/": " ", "*": " ", "_": " ", "~": " ",
            "#": " ", "<": " ", ">": " ", "|": " ", "^": " "}  # fmt: skip


def _saint_or_street(m: re.Match) -> str:
    """'St. Louis' -> saint; 'Main St.' / 'Main St. Then' -> street (a name before it wins)."""
    before = m.string[: m.start()].split()
    if before and before[-1][:1].isupper() and before[-1][-1:] not in ".!?":
        return "street" + _sentence_end(m)
    after = m.string[m.end() :]
    return "saint" if re.match(r"\s+[A-Z]", after) else "street" + _sentence_end(m)


def _etc(m: re.Match) -> str:
    return "et cetera" + _sentence_end(m)


_RULES: list[tuple[re.Pattern, object]] = [
    *[(re.compile(p), r) for p, r in _ABBREVIATIONS],
    (re.compile(r"\bSt\."), _saint_or_street),
    (re.compile(r"\betc\b\.?"), _etc),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"#(?=[A-Za-z])"), "hashtag "),
    # U.S.A.; a.m. without a time ("7 a.m." is left to the clock rules below)
    (re.compile(r"(?<!\d)(?<!\d )\b(?:[A-Za-z]\.){2,}(?![A-Za-z])"), _letters),
    # phone numbers: digit groups, with pauses between groups
    (re.compile(r"(?<![\d-])(\d{3})-(\d{3})-(\d{4})(?![\d-])"),
     lambda m: ", ".join(digits_to_words(g) for g in m.groups())),
    (re.compile(r"(?<![\d-])(\d{3})-(\d{4})(?![\d-])"),
     lambda m: ", ".join(digits_to_words(g) for g in m.groups())),
    (re.compile(rf"(?P<neg>-)?(?P<sym>[$£€¥])\s?(?P<amt>{_NUM})"
                r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|k|m|b)\b)?(?P<code>)", re.I),
     _money),
    (re.compile(rf"(?P<neg>-)?(?P<amt>{_NUM})\s?(?P<code>usd|eur|gbp|jpy)\b(?P<sym>)(?P<scale>)",
                re.I), _money),
    (re.compile(rf"(?<![\w.,-])({_NUM})\s?[-–]\s?(?=(?:{_NUM})(?![\w-]))"), r"\1 to "),
    (re.compile(rf"(?<![\w.])(-?(?:{_NUM}))\s?%"), lambda m: _number(m.group(1)) + " percent"),
    (re.compile(rf"\b(?P<h>[01]?\d|2[0-4]):(?P<m>[0-5]\d)(?:\s?{_AMPM})?"), _clock),
    (re.compile(rf"\b(?P<h>1[0-2]|0?\d)(?P<m>)\s?{_AMPM}"), _clock),
    (re.compile(r"\b(\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b", re.I),
     lambda m: ordinal_to_words(int(m.group(1).replace(",", "")))),
    (re.compile(r"(?<![\d/])([1-9])/(\d{1,2})(?![\d/])"), _fraction),
    (re.compile(r"(?<![\w.,$£€¥-])(1[1-9]\d\d|20\d\d)(s)?(?![\w%]|[.,]\d)"), _year),
    (re.compile(r"(?<![\w])'(\d0)s\b"), lambda m: _plural(number_to_words(int(m.group(1))))),
    (re.compile(rf"(?<=\d)\s?({'|'.join(map(re.escape, sorted(_UNITS, key=len)[::-1]))})(?!\w)"),
     lambda m: " " + _UNITS[m.group(1)]),
    (re.compile(r"(?<=[A-Za-z])-?(?=\d)|(?<=\d)(?=[A-Za-z])"), " "),  # MP3, 3D, COVID-19
    (re.compile(rf"(?:^|(?<=[\s(\[]))-(?=(?:{_NUM}))"), "minus "),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+){2,}"),  # versions: 1.2.3
     lambda m: " point ".join(_number(p) for p in m.group(0).split("."))),
    (re.compile(rf"(?<![\w.])(?:{_NUM})"), lambda m: _number(m.group(0))),
    (re.compile(r"\d+"), lambda m: f" {digits_to_words(m.group(0))} "),  # leftovers: "1.2.3"
    (re.compile("|".join(map(re.escape, _SYMBOLS))), lambda m: _SYMBOLS[m.group(0)]),
]  # fmt: skip

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'"})


def normalize_text(text: str) -> str:
    """Written text -> the words to say, punctuation kept for pauses. See the module docstring."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)  # type: ignore[arg-type]
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)  # "ten ." -> "ten." after symbol rules
    return re.sub(r"\s+", " ", text).strip()


_WER_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def words_for_wer(text: str) -> list[str]:
    """The WER normalization (eval reuses it): normalize_text, lower case, words only.

    "Dr. Smith paid $5, didn't he?" -> ['doctor', 'smith', 'paid', 'five', 'dollars', "didn't",
    'he']. Hyphens split words; apostrophes inside words stay; all other punctuation goes.
    """
    return _WER_TOKEN.findall(normalize_text(text).lower())
