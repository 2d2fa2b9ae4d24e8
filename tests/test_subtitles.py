"""Subtitle reading: every quirk with hand-written files in several encodings."""

from __future__ import annotations

import logging

import pytest

from dubcli.errors import InputError, OutputError
from dubcli.text.subtitles import Cue, format_srt_timestamp, parse_timestamp, read_cues, write_srt


@pytest.fixture
def warned(caplog):
    """Warnings logged under `dubcli` (attached directly: setup_logging may stop propagation)."""
    logger = logging.getLogger("dubcli")
    logger.addHandler(caplog.handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    yield lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    logger.removeHandler(caplog.handler)
    logger.setLevel(old)


def write(tmp_path, name, text, encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def srt_one(tmp_path, body):
    return read_cues(write(tmp_path, "one.srt", f"1\n00:00:01,000 --> 00:00:02,000\n{body}\n"))


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("00:00:01,500", 1.5),
        ("00:00:01.500", 1.5),
        ("01:02:03,004", 3723.004),
        ("123:00:00,000", 123 * 3600.0),  # hours > 99
        ("02:03.250", 123.25),  # VTT without hours
        ("0:00:05.20", 5.2),  # ASS centiseconds
        ("00:00:07", 7.0),
        (" 00:00:01,5 ", 1.5),  # short fraction = decimal fraction
    ],
)
def test_parse_timestamp(text, seconds):
    assert parse_timestamp(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["00:61:00,000", "00:00:60,000", "1.5", "aa:bb:cc", "", "-1:00"])
def test_parse_timestamp_rejects(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_format_srt_timestamp():
    assert format_srt_timestamp(3723.004) == "01:02:03,004"
    assert format_srt_timestamp(1.9996) == "00:00:02,000"  # rounding carries into seconds
    assert format_srt_timestamp(400_000.25) == "111:06:40,250"


# ---------------------------------------------------------------- SRT

SRT = """1
00:00:01,000 --> 00:00:02,500
<i>Hello</i> <b>there</b>,
<font color="#ff0000">my friend</font>.

2
00:00:03,000 --> 00:00:04,000
Second &amp; last.
"""


@pytest.mark.parametrize(
    "encoding, newline",
    [
        ("utf-8", "\n"),
        ("utf-8-sig", "\r\n"),  # BOM + CRLF
        ("utf-16", "\r\n"),  # Python writes a LE BOM
        ("utf-16-be-bom", "\n"),
        ("utf-16-be", "\n"),  # no BOM: detected from the NUL pattern
        ("utf-16-le", "\r"),  # no BOM, old Mac line ends
        ("cp1252", "\r\n"),
    ],
)
def test_srt_encodings_and_line_ends(tmp_path, encoding, newline):
    text = SRT.replace("Second", "Café’s second")
    if encoding == "utf-16-be-bom":
        data = b"\xfe\xff" + text.replace("\n", newline).encode("utf-16-be")
        path = tmp_path / "s.srt"
        path.write_bytes(data)
    else:
        path = write(tmp_path, "s.srt", text, encoding, newline)
    cues = read_cues(path)
    assert [c.text for c in cues] == ["Hello there, my friend.", "Café’s second & last."]
    assert (cues[0].start, cues[0].end) == (1.0, 2.5)
    assert [c.index for c in cues] == [1, 2]


def test_srt_missing_index_extra_blanks_dot_separator_big_hours(tmp_path):
    text = (
        "\n\n00:00:01.000 --> 00:00:02.000\nno index here\n\n\n\n"
        "7\n00:00:03,000-->00:00:04,000\nline one\n\nline two after a blank\n"
        "99\n100:00:00,000 --> 100:00:01,000 X1:10 X2:20 Y1:5 Y2:9\nlate\n\n\n"
    )
    cues = read_cues(write(tmp_path, "q.srt", text))
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 2.0, "no index here"),
        (3.0, 4.0, "line one line two after a blank"),  # the "99" index line is not text
        (360000.0, 360001.0, "late"),
    ]


def test_srt_order_overlap_and_bad_lengths(tmp_path, warned):
    text = (
        "1\n00:00:05,000 --> 00:00:06,000\nthird\n\n"
        "2\n00:00:01,000 --> 00:00:03,000\nfirst\n\n"
        "3\n00:00:02,000 --> 00:00:04,000\nsecond overlaps first\n\n"
        "4\n00:00:07,000 --> 00:00:07,000\nzero length\n\n"
        "5\n00:00:09,000 --> 00:00:08,000\nnegative length\n\n"
        "6\n00:00:10,000 --> 00:00:11,000\n<i></i>\n\n"
        "7\n00:00:12,000 --> 00:00:1x,000\nbad time\n"
    )
    cues = read_cues(write(tmp_path, "o.srt", text))
    assert [c.text for c in cues] == ["first", "second overlaps first", "third"]
    assert [c.index for c in cues] == [1, 2, 3]
    assert [c.start for c in cues] == [1.0, 2.0, 5.0]
    logged = " | ".join(warned())
    assert "2 cues with zero or negative length: dropped" in logged
    assert "1 cues with no text: dropped" in logged
    assert "1 blocks with invalid timestamps: skipped" in logged
    assert "1 cues out of order: sorted by start" in logged
    assert "1 overlapping cues: kept" in logged
    assert "o.srt" in logged


def test_ass_tags_inside_srt(tmp_path):
    assert srt_one(tmp_path, r"{\an8}{\i1}Top{\i0} line")[0].text == "Top line"


# ---------------------------------------------------------------- speakers


@pytest.mark.parametrize(
    "body, speaker, text",
    [
        ("[JOHN]: Hello.", "JOHN", "Hello."),
        ("[John] Hello.", "John", "Hello."),
        ("JOHN: Hello.", "JOHN", "Hello."),
        ("Mary Jane: Hello.", "Mary Jane", "Hello."),
        ("DR. SMITH: Sit down.", "DR. SMITH", "Sit down."),
        ("O'Brien: Hi.", "O'Brien", "Hi."),
        ("GUARD 2: Halt!", "GUARD 2", "Halt!"),
        (">> ANNA: We're live.", "ANNA", "We're live."),
        ("- BOB: Hey.\n- ALICE: Hi.", "BOB", "Hey. Hi."),
        ("<i>NARRATOR: Long ago</i>", "NARRATOR", "Long ago"),
        # not speakers:
        ("Note: this is prose.", None, "Note: this is prose."),
        ("WARNING: hot surface", None, "WARNING: hot surface"),
        ("Step 3: mix well", None, "Step 3: mix well"),
        ("10:30 is too late.", None, "10:30 is too late."),
        ("Meet at 10:30: sharp.", None, "Meet at 10:30: sharp."),
        ("the plan: run", None, "the plan: run"),
        ("[LAUGHS] Okay.", None, "[LAUGHS] Okay."),
        ("[SIREN WAILING] Get down!", None, "[SIREN WAILING] Get down!"),
        ("- Are you sure?\n- Yes.", None, "Are you sure? Yes."),
        ("A VERY LONG NAME INDEED FOR ANYONE: x", None, "A VERY LONG NAME INDEED FOR ANYONE: x"),
    ],
)
def test_speaker_tags(tmp_path, body, speaker, text):
    (cue,) = srt_one(tmp_path, body)
    assert (cue.speaker, cue.text) == (speaker, text)


def test_two_speakers_in_one_cue_are_logged(tmp_path, warned):
    srt_one(tmp_path, "- BOB: Hey.\n- ALICE: Hi.")
    assert any("1 cues with more than one speaker" in m for m in warned())


# ---------------------------------------------------------------- sound-only cues


@pytest.mark.parametrize(
    "body, sound_only, speech",
    [
        ("[music]", True, ""),
        ("♪ La la la ♪", True, ""),
        ("♪ La la la", True, ""),
        ("(APPLAUSE)", True, ""),
        ("(laughing softly)", True, ""),
        ("[door closes]\n[footsteps]", True, ""),
        ("[laughs] Okay, fine.", False, "Okay, fine."),
        ("I saw him (the tall one) leave.", False, "I saw him (the tall one) leave."),
    ],
)
def test_sound_only(tmp_path, body, sound_only, speech):
    (cue,) = srt_one(tmp_path, body)
    assert cue.is_sound_only is sound_only
    assert cue.speech_text == speech


# ---------------------------------------------------------------- WebVTT

VTT = """WEBVTT - Some title
Kind: captions
Language: en

NOTE This is a comment
that spans two lines

STYLE
::cue { color: yellow }

REGION
id:fred
width:40%

intro-1
00:01.000 --> 00:02.500 align:start position:10% line:0
<v Roger Bingham>We are in <c.place>New York</c> &amp; <b>more</b></v>

00:00:03.000 --> 00:00:04.000
<v.loud Neil deGrasse>No<00:00:03.500> way</v>
>> ANNA: overlap tag stays second

3
00:00:05.000 --> 00:00:06.000
- Plain line &lt;3
"""


def test_vtt(tmp_path, warned):
    cues = read_cues(write(tmp_path, "captions.vtt", VTT, "utf-8-sig", "\r\n"))
    assert [(c.start, c.end) for c in cues] == [(1.0, 2.5), (3.0, 4.0), (5.0, 6.0)]
    assert cues[0].text == "We are in New York & more"
    assert cues[0].speaker == "Roger Bingham"
    assert cues[1].text == "No way overlap tag stays second"
    assert cues[1].speaker == "Neil deGrasse"
    assert cues[2].text == "Plain line <3" and cues[2].speaker is None
    assert any("more than one speaker" in m for m in warned())


# ---------------------------------------------------------------- ASS / SSA

ASS = r"""[Script Info]
Title: test
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize
Style: Default,Arial,20

[Events]
Format: Layer, Style, Name, Start, End, MarginL, MarginR, MarginV, Effect, Text
Comment: 0,Default,,0:00:00.00,0:00:09.00,0,0,0,,this is a comment
Dialogue: 0,Default,Alice,0:00:03.00,0:00:04.50,0,0,0,,{\i1}Hi,{\i0} there\Nfriend,\hok
Dialogue: 0,Default,,0:00:01.00,0:00:02.00,0,0,0,,{\pos(10,20)\c&H00FF00&}BOB: Green{\p1}m 0 0 l 10 0 10 10{\p0} text
Dialogue: 0,Default,,0:00:05.00,0:00:05.00,0,0,0,,zero length
"""


def test_ass_format_order_comments_overrides(tmp_path, warned):
    cues = read_cues(write(tmp_path, "show.ass", ASS, "utf-8-sig", "\r\n"))
    assert [(c.start, c.end, c.text, c.speaker) for c in cues] == [
        (1.0, 2.0, "Green text", "BOB"),
        (3.0, 4.5, "Hi, there friend, ok", "Alice"),
    ]
    logged = " | ".join(warned())
    assert "1 ASS Comment lines: skipped" in logged
    assert "1 cues out of order" in logged
    assert "1 cues with zero or negative length" in logged


def test_ssa_v4_marked_format(tmp_path):
    ssa = (
        "[Script Info]\nScriptType: v4.00\n\n[Events]\n"
        "Format: Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
        "Dialogue: Marked=0,0:00:01.50,0:00:02.00,Default,Narrator,0000,0000,0000,,Old format\n"
    )
    (cue,) = read_cues(write(tmp_path, "old.ssa", ssa, "cp1252"))
    assert (cue.start, cue.text, cue.speaker) == (1.5, "Old format", "Narrator")


# ---------------------------------------------------------------- format sniffing


def test_sniffing_wrong_or_missing_extension(tmp_path, warned):
    assert read_cues(write(tmp_path, "really_vtt.srt", VTT))[0].speaker == "Roger Bingham"
    assert any("extension says srt but the content is vtt" in m for m in warned())
    assert read_cues(write(tmp_path, "noext", ASS))[0].text == "Green text"
    assert read_cues(write(tmp_path, "subs.txt", SRT))[1].text == "Second & last."


# ---------------------------------------------------------------- errors


def test_errors_name_the_file(tmp_path):
    cases = {
        "missing.srt": (None, "not found"),
        "folder.srt": ("dir", "is a directory"),
        "empty.srt": (b"", "empty subtitle file"),
        "blank.vtt": (b"\r\n \r\n", "empty subtitle file"),
        "bytes.srt": (b"1\n00:00:01,000 --> 00:00:02,000\n\x81\x8d\xff\xfe\x00", "undecodable"),
        "prose.srt": (b"just some text\nwithout any timing\n", "no valid cues .no timing"),
        "prose": (b"just some text\n", "not a subtitle file"),
    }
    for name, (data, words) in cases.items():
        path = tmp_path / name
        if data == "dir":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        with pytest.raises(InputError, match=words) as info:
            read_cues(path)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_no_valid_cues_message_counts_blocks(tmp_path):
    text = "".join(f"{i}\n00:00:0{i},000 --> 00:0x:00,000\nbad {i}\n\n" for i in (1, 2, 3))
    with pytest.raises(InputError) as info:
        read_cues(write(tmp_path, "subs.srt", text))
    assert str(info.value).endswith("subs.srt: no valid cues (3 blocks with invalid timestamps)")


# ---------------------------------------------------------------- writing


def test_write_srt_round_trip_and_force(tmp_path):
    cues = [
        Cue(1, 0.5, 1.25, "Hello there.", "JOHN"),
        Cue(2, 2.0, 3.0, "Café & more", None),
        Cue(3, 360000.0, 360001.5, "late", None),
    ]
    out = write_srt(cues, tmp_path / "out" / "dub.srt")
    assert out.read_text(encoding="utf-8").startswith("1\n00:00:00,500 --> 00:00:01,250\nHello")
    back = read_cues(out)
    assert [(c.index, c.start, c.end, c.text) for c in back] == [
        (c.index, c.start, c.end, c.text) for c in cues
    ]
    assert [p.name for p in out.parent.iterdir()] == ["dub.srt"]  # no temp file left
    with pytest.raises(OutputError, match="already exists"):
        write_srt(cues, out, force=False)
    write_srt(cues, out, with_speakers=True)
    assert read_cues(out)[0].speaker == "JOHN"
    with pytest.raises(ValueError):
        write_srt([Cue(1, 2.0, 1.0, "backwards", None)], tmp_path / "bad.srt")


# ---------------------------------------------------------------- formats read by pysubs2

TTML = """<?xml version="1.0" encoding="UTF-8"?>
<!-- made by hand --> <tt xmlns="http://www.w3.org/ns/ttml"
    xmlns:tts="http://www.w3.org/ns/ttml#styling" xml:lang="en">
  <head><styling><style xml:id="s1" tts:color="white"/></styling></head>
  <body><div>
    <p begin="00:00:01.000" end="00:00:02.500">Hello <span tts:fontStyle="italic">there</span>,<br/>friend &amp; co.</p>
    <p begin="3s" end="4.25s">JOHN: Second line</p>
    <p begin="00:00:05.000" end="00:00:06.000">[music]</p>
  </div></body>
</tt>
"""


@pytest.mark.parametrize("name, encoding", [("show.ttml", "utf-8"), ("show.xml", "utf-16")])
def test_ttml(tmp_path, name, encoding):
    # The XML comment's "-->" must not make it look like SRT; UTF-16 goes through our decoder.
    cues = read_cues(write(tmp_path, name, TTML, encoding))
    assert [(c.start, c.end, c.text, c.speaker) for c in cues] == [
        (1.0, 2.5, "Hello there, friend & co.", None),
        (3.0, 4.25, "Second line", "JOHN"),
        (5.0, 6.0, "[music]", None),
    ]
    assert cues[2].is_sound_only


def test_dfxp_namespace_and_unsupported_ttml_times(tmp_path):
    dfxp = TTML.replace("http://www.w3.org/ns/ttml", "http://www.w3.org/2006/10/ttaf1")
    assert len(read_cues(write(tmp_path, "old.dfxp", dfxp))) == 3
    ebu_tt = ('<tt:tt xmlns:tt="http://www.w3.org/ns/ttml"><tt:body><tt:div>'
              '<tt:p begin="1s" end="2s">Prefixed</tt:p></tt:div></tt:body></tt:tt>')  # fmt: skip
    assert read_cues(write(tmp_path, "ebu.xml", ebu_tt))[0].text == "Prefixed"
    frames = TTML.replace('begin="3s"', 'begin="00:00:03:12"')  # frames need ttp:frameRate
    with pytest.raises(InputError, match=r"frames.ttml: unsupported TTML feature"):
        read_cues(write(tmp_path, "frames.ttml", frames))
    with pytest.raises(InputError, match=r"broken.ttml: cannot read as TTML"):
        read_cues(write(tmp_path, "broken.ttml", TTML.replace("</div>", "")))


MICRODVD = "{25}{50}{y:i}Café|on two lines\n{75}{100}ANNA: Hi.\n{100}{125}(APPLAUSE)\n"


def test_microdvd_frame_rate_from_file_or_caller(tmp_path):
    # The rate comes from a "{1}{1}25" first line (the file wins), else from fps (the video's).
    expected = [(1.0, 2.0, "Café on two lines", None), (3.0, 4.0, "Hi.", "ANNA"),
                (4.0, 5.0, "(APPLAUSE)", None)]  # fmt: skip
    with_rate = write(tmp_path, "a.sub", "{1}{1}25\n" + MICRODVD, "cp1252", "\r\n")
    for fps in (None, 50.0):
        cues = read_cues(with_rate, fps=fps)
        assert [(c.start, c.end, c.text, c.speaker) for c in cues] == expected
    bare = write(tmp_path, "b.sub", MICRODVD)
    assert [c.end for c in read_cues(bare, fps=50.0)] == [1.0, 2.0, 2.5]
    with pytest.raises(InputError, match=r"b.sub: MicroDVD .* names no frame rate"):
        read_cues(bare)


def test_sami_captions_last_until_the_next_sync(tmp_path):
    sami = (
        "<SAMI><HEAD><STYLE TYPE='text/css'><!-- P { font-size: 20pt } --></STYLE></HEAD><BODY>\n"
        "<SYNC Start=1000><P Class=ENCC>NARRATOR: Long <i>ago</i><br>it began.\n"
        "<SYNC Start=4000><P Class=ENCC>&nbsp;\n"
        "<SYNC Start=5000><P Class=ENCC>Fish &amp; chips\n"
        "<SYNC Start=6500><P Class=ENCC>The end.\n"
        "</BODY></SAMI>\n"
    )
    cues = read_cues(write(tmp_path, "film.smi", sami))
    assert [(c.start, c.end, c.text, c.speaker) for c in cues][:3] == [
        (1.0, 4.0, "Long ago it began.", "NARRATOR"),  # not pysubs2's length-based guess
        (5.0, 6.5, "Fish & chips", None),
        (6.5, cues[2].end, "The end.", None),  # the last one: pysubs2's guess
    ]
    assert cues[2].end > 6.5


def test_mpl2_by_content_and_vobsub_refused(tmp_path):
    cues = read_cues(write(tmp_path, "movie.txt", "[10][25]Hello|/world\n[30][45]Bye.\n"))
    assert [(c.start, c.end, c.text) for c in cues] == [
        (1.0, 2.5, "Hello world"),
        (3.0, 4.5, "Bye."),
    ]
    vobsub = tmp_path / "movie.sub"
    vobsub.write_bytes(b"\x00\x00\x01\xba" + bytes(range(256)) * 8)
    with pytest.raises(InputError, match="movie.sub: VobSub image subtitles"):
        read_cues(vobsub)
