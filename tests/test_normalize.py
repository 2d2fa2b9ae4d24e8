"""Normalization for speech: a table of inputs and the exact words we expect."""

from __future__ import annotations

import pytest

from dubcli.text.normalize import (
    digits_to_words,
    normalize_text,
    number_to_words,
    ordinal_to_words,
    words_for_wer,
    year_to_words,
)


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (42, "forty two"),
        (100, "one hundred"),
        (101, "one hundred one"),
        (999, "nine hundred ninety nine"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (2500, "two thousand five hundred"),
        (1_000_000, "one million"),
        (1_234_567, "one million two hundred thirty four thousand five hundred sixty seven"),
        (10**12 + 5, "one trillion five"),
        (-15, "minus fifteen"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize(
    "n, words",
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (4, "fourth"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (11, "eleventh"),
        (12, "twelfth"),
        (20, "twentieth"),
        (22, "twenty second"),
        (101, "one hundred first"),
        (1000, "one thousandth"),
    ],
)
def test_ordinal_to_words(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize(
    "year, words",
    [
        (1999, "nineteen ninety nine"),
        (1900, "nineteen hundred"),
        (1905, "nineteen oh five"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (2019, "twenty nineteen"),
        (1066, "ten sixty six"),
        (1200, "twelve hundred"),
    ],
)
def test_year_to_words(year, words):
    assert year_to_words(year) == words


def test_digits_to_words():
    assert digits_to_words("007") == "zero zero seven"


@pytest.mark.parametrize(
    "text, spoken",
    [
        # cardinals, separators, negatives, decimals
        ("I have 3 cats.", "I have three cats."),
        (
            "1,234,567 people",
            "one million two hundred thirty four thousand five hundred sixty seven people",
        ),
        ("It was -5 outside.", "It was minus five outside."),
        ("pi is 3.14", "pi is three point one four"),
        ("only .5 left", "only point five left"),
        ("agent 007", "agent zero zero seven"),
        ("version 1.2.3", "version one point two point three"),
        # ordinals
        ("the 1st, 2nd, 3rd and 22nd", "the first, second, third and twenty second"),
        ("his 101st birthday", "his one hundred first birthday"),
        # currency
        ("$5", "five dollars"),
        ("$1", "one dollar"),
        ("$5.50", "five dollars and fifty cents"),
        ("$0.99", "ninety nine cents"),
        ("$1.01", "one dollar and one cent"),
        ("$1,000", "one thousand dollars"),
        ("$1.5 million", "one point five million dollars"),
        ("£3", "three pounds"),
        ("€10", "ten euros"),
        ("5 dollars", "five dollars"),
        ("20 USD", "twenty dollars"),
        ("-$5", "minus five dollars"),
        # percentages
        ("50% off", "fifty percent off"),
        ("3.5 % more", "three point five percent more"),
        ("5-10% of it", "five to ten percent of it"),
        # times
        ("at 10:30.", "at ten thirty."),
        ("at 7:05", "at seven oh five"),
        ("at 10:00", "at ten o'clock"),
        ("at 7pm", "at seven P M"),
        ("at 7 PM today", "at seven P M today"),
        ("at 7:05 a.m. sharp", "at seven oh five A M sharp"),
        ("Come at 7 a.m.", "Come at seven A M."),
        ("at 7 a.m. Then we left.", "at seven A M. Then we left."),
        # years and decades
        ("In 1999 we met.", "In nineteen ninety nine we met."),
        ("In 2005", "In two thousand five"),
        ("In 2019", "In twenty nineteen"),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("from 1990-1995", "from nineteen ninety to nineteen ninety five"),
        ("5000 runners", "five thousand runners"),
        ("1,999 runners", "one thousand nine hundred ninety nine runners"),
        # abbreviations
        ("Mr. Smith and Mrs. Jones", "mister Smith and missus Jones"),
        ("Dr. Who", "doctor Who"),
        ("St. Louis on Main St.", "saint Louis on Main street."),
        ("Main St. Then left.", "Main street. Then left."),
        ("at St. Mary's", "at saint Mary's"),
        ("cats vs. dogs", "cats versus dogs"),
        ("pens, paper, etc.", "pens, paper, et cetera."),
        ("pets, e.g. cats", "pets, for example, cats"),
        ("one thing, i.e. this", "one thing, that is, this"),
        ("No. 5", "number five"),
        ("No, thanks.", "No, thanks."),
        ("The U.S.A.", "The U S A."),
        ("The U.S. Army", "The U S Army"),
        # symbols
        ("Tom & Jerry", "Tom and Jerry"),
        ("2 + 2 = 4", "two plus two equals four"),
        ("me @ home", "me at home"),
        ("#1 fan", "number one fan"),
        ("#blessed", "hashtag blessed"),
        # ranges, phone numbers, fractions, units, mixed tokens
        ("pages 5-10", "pages five to ten"),
        ("ages 5 – 10", "ages five to ten"),
        ("call 555-1234", "call five five five, one two three four"),
        ("1/2 cup, 3/4 done, 2/3 left", "one half cup, three quarters done, two thirds left"),
        ("30°C and 5 km", "thirty degrees Celsius and five kilometers"),
        ("COVID-19 and MP3", "COVID nineteen and MP three"),
        # punctuation and typography kept / unified
        ("Wait… what?!", "Wait... what?!"),
        ("It’s “fine” — really.", 'It\'s "fine" — really.'),
        ("  spaced   out  ", "spaced out"),
        ("", ""),
    ],
)
def test_normalize_text(text, spoken):
    assert normalize_text(text) == spoken


def test_normalize_leaves_no_digits():
    text = "On 12/25/2020 at 23:59 I paid $3.50 for 2 items (10% tax), ref #42-7."
    out = normalize_text(text)
    assert not any(c.isdigit() for c in out), out


@pytest.mark.parametrize(
    "text, words",
    [
        (
            "Dr. Smith paid $5, didn't he?",
            ["doctor", "smith", "paid", "five", "dollars", "didn't", "he"],
        ),
        ("Well-known; 7pm!", ["well", "known", "seven", "p", "m"]),
        ("“Quoted” ‘text’ — here...", ["quoted", "text", "here"]),
        ("It's 10:00.", ["it's", "ten", "o'clock"]),
        ("Café 3rd", ["café", "third"]),
    ],
)
def test_words_for_wer(text, words):
    assert words_for_wer(text) == words


def test_words_for_wer_makes_written_and_spoken_forms_equal():
    assert words_for_wer("I owe you $20 by the 3rd.") == words_for_wer(
        "i owe you twenty dollars by the third"
    )
