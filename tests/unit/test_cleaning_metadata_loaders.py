"""Boilerplate cleaning, metadata guesses and the per-format file readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.cleaning import clean_text, is_boilerplate
from index.loaders import UnreadableFileError, load_file, supported
from index.metadata import find_date, find_url, guess_title
from rag.errors import InvalidInputError

# ---- clean_text -------------------------------------------------------------

BOILERPLATE_LINES = [
    "Source link",
    "your ad here",
    "Advertisement",
    "Leave a Reply",
    "Your email address will not be published.",
    "Your email address will not be published. Required fields are marked *",
    "More to explorer",
    "More to explore",
    "follow X On twitter",
    "Follow Jane Doe on Twitter",
    "Share this article on Facebook",
    "Posted by John Smith",
    "Posted by admin on May 30, 2023",
    "Click here to subscribe",
    "All rights reserved.",
    "Read more:",
]

KEPT_LINES = [
    "The minister said the talks were “productive”  and  would continue.",
    "The source link was broken, officials said.",
    "He posted by mail a letter to the court.",
    "Follow-up talks on Twitter policy are planned for June.",
    "Привет, мир. 中国代表团抵达日内瓦。 Emoji 🎉 stays.",
]


@pytest.mark.parametrize("line", BOILERPLATE_LINES)
def test_boilerplate_lines_are_detected(line):
    assert is_boilerplate(line)
    assert is_boilerplate("   " + line + "  ")


@pytest.mark.parametrize("line", KEPT_LINES)
def test_normal_sentences_are_not_boilerplate(line):
    assert not is_boilerplate(line)


def test_clean_text_drops_boilerplate_and_keeps_sentences_byte_identical():
    raw = "\n".join(["Talks Resume In Geneva"] + [KEPT_LINES[0]] + BOILERPLATE_LINES + KEPT_LINES[1:]) + "\n"
    out = clean_text(raw)
    lines = out.rstrip("\n").split("\n")
    assert lines == ["Talks Resume In Geneva"] + KEPT_LINES
    for line in KEPT_LINES:
        assert line in out  # inner double spaces, quotes and non-ASCII untouched


def test_clean_text_drops_repeated_headline_at_top():
    raw = ("Big News Headline Today\nBig News Headline Today\n  big news headline today  \n"
           "date 2023-05-30\nThe first real sentence of the story.\n")
    assert clean_text(raw) == "Big News Headline Today\ndate 2023-05-30\nThe first real sentence of the story.\n"


def test_clean_text_normalises_line_ends_bom_nbsp_and_blank_runs():
    raw = "\ufeffTitle line here\r\nFirst\u00a0sentence.\r\n\r\n\r\n\r\nSecond sentence.\rThird.\n\n\n"
    assert clean_text(raw) == "Title line here\nFirst sentence.\n\nSecond sentence.\nThird.\n"


def test_clean_text_of_only_boilerplate_is_empty():
    assert clean_text("Source link\n\nLeave a Reply\n   \n") == ""
    assert clean_text("") == ""


def test_clean_text_keeps_trailing_spaces_off_but_inner_spacing_on():
    out = clean_text("A line with   three spaces.   \n")
    assert out == "A line with   three spaces.\n"


# ---- metadata ---------------------------------------------------------------


def test_guess_title_skips_date_line_and_short_lines():
    text = "date 2023-05-30\nBy AP\nRussia And China Hold Talks In Beijing\nBody sentence here.\n"
    assert guess_title(text) == "Russia And China Hold Talks In Beijing"


def test_guess_title_strips_markdown_hashes_and_takes_first_sentence():
    assert guess_title("## The Long Title Of It. And a second sentence here.\n") == "The Long Title Of It."


def test_guess_title_shortens_long_lines_at_a_word():
    line = " ".join(["word"] * 60)
    title = guess_title(line, max_chars=50)
    assert title.endswith("…")
    assert len(title) <= 51
    assert title[:-1].strip() == title[:-1]
    assert set(title[:-1].split()) == {"word"}


def test_guess_title_empty_when_no_headline():
    assert guess_title("2023-05-30\nok\n") == ""


@pytest.mark.parametrize("text,expected", [
    ("date 2023-05-30\nTitle", "2023-05-30"),
    ("Published May 30, 2023 by staff", "2023-05-30"),
    ("Published may 3 2023", "2023-05-03"),
    ("Updated 30 May 2023.", "2023-05-30"),
    ("Dates: June 1, 2022 then 2023-05-30", "2022-06-01"),  # the first one stated wins
    ("Invalid 2023-02-30 but then March 1, 2021", "2021-03-01"),
    ("No date here at all.", None),
    ("WASHINGTON, May 30, 2023 — The Pentagon said on Tuesday that China had rejected a request for a meeting "
     "between the two defense chiefs.", "2023-05-30"),  # a dateline opening the first paragraph
    # a date in prose is something else's, not the document's
    ("Abraham Lincoln (February 12, 1809 – April 15, 1865) was an American lawyer, politician and statesman "
     "who served as the 16th president of the United States.", None),
    ("The talks, which began on May 30, 2023 in Singapore, were the first of their kind between the two "
     "defense chiefs in years.\nPublished June 2, 2023", "2023-06-02"),
])
def test_find_date(text, expected):
    assert find_date(text) == expected


def test_find_date_only_looks_at_the_head():
    text = "x" * 700 + " 2023-05-30"
    assert find_date(text) is None
    assert find_date(text, head_chars=800) == "2023-05-30"


def test_find_url():
    assert find_url("Source: https://example.com/a/b?c=1. Next sentence.") == "https://example.com/a/b?c=1"
    assert find_url("(see http://x.org/page)") == "http://x.org/page"
    assert find_url("no link here") is None


# ---- loaders ----------------------------------------------------------------


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def test_load_txt_cleans_and_reads_metadata(tmp_path):
    path = write(tmp_path, "a.txt", "Ministers Meet In Lisbon\nMinisters Meet In Lisbon\ndate 2023-05-30\n"
                                    "The ministers met on Tuesday. See https://news.example/lisbon for more.\n"
                                    "Source link\n")
    doc = load_file(path)
    assert doc.text == ("Ministers Meet In Lisbon\ndate 2023-05-30\n"
                        "The ministers met on Tuesday. See https://news.example/lisbon for more.\n")
    assert doc.metadata["title"] == "Ministers Meet In Lisbon"
    assert doc.metadata["date"] == "2023-05-30"
    assert doc.metadata["url"] == "https://news.example/lisbon"


def test_load_txt_windows_1252_fallback(tmp_path):
    path = write(tmp_path, "w.txt", "Caf\xe9 prices rose sharply. A second line here.".encode("cp1252"))
    assert load_file(path).text == "Café prices rose sharply. A second line here.\n"


def test_load_txt_utf8_bom_removed(tmp_path):
    path = write(tmp_path, "b.txt", "\ufeffПривет мир, это тест.\n".encode("utf-8"))
    assert load_file(path).text == "Привет мир, это тест.\n"


def test_load_markdown_heading_is_title_and_links_keep_words(tmp_path):
    md = ("# The Heading Of Doc\n\n"
          "See [the annual report](http://x.com/r) and **bold words** here. ![chart](i.png)\n\n"
          "## Second Section Heading\n\nMore text follows here.\n")
    doc = load_file(write(tmp_path, "m.md", md))
    assert doc.metadata["title"] == "The Heading Of Doc"
    assert "See the annual report and bold words here." in doc.text
    for markup in ("](", "**", "#", "![", "i.png", "http://x.com/r"):
        assert markup not in doc.text
    assert "Second Section Heading" in doc.text


def test_load_html_drops_chrome_and_keeps_article(tmp_path):
    html = """<html><head><title>Site Name | Page Title</title>
    <script>var tracking = "SCRIPTTEXT";</script><style>.x{color:red}</style>
    <link rel="canonical" href="https://ex.com/article"></head>
    <body><nav>Home About NAVTEXT</nav><header>HEADERTEXT banner</header>
    <article><h1>Article Main Heading</h1><p>First paragraph text is here.</p>
    <p>Second <b>bold</b> paragraph with <a href="/x">a link</a>.</p></article>
    <footer>FOOTERTEXT copyright</footer></body></html>"""
    doc = load_file(write(tmp_path, "h.html", html))
    assert doc.metadata["title"] == "Article Main Heading"
    assert doc.metadata["url"] == "https://ex.com/article"
    assert "First paragraph text is here." in doc.text
    assert "Second bold paragraph with a link." in doc.text
    for junk in ("SCRIPTTEXT", "NAVTEXT", "HEADERTEXT", "FOOTERTEXT", "color:red", "<p>"):
        assert junk not in doc.text
    # block elements become separate lines
    lines = [line.strip() for line in doc.text.split("\n")]
    assert "First paragraph text is here." in lines and "Second bold paragraph with a link." in lines


def test_load_html_title_tag_when_no_h1(tmp_path):
    html = "<html><head><title>Only The Title</title></head><body><p>Body text here.</p></body></html>"
    doc = load_file(write(tmp_path, "t.htm", html))
    assert doc.metadata["title"] == "Only The Title"
    assert doc.text == "Body text here.\n"


def test_binary_file_with_txt_extension_is_unreadable(tmp_path):
    path = write(tmp_path, "bin.txt", bytes(range(256)) * 4)
    with pytest.raises(UnreadableFileError) as info:
        load_file(path)
    assert info.value.message.startswith("bin.txt")
    assert isinstance(info.value, InvalidInputError)


def test_unknown_extension_is_unreadable(tmp_path):
    path = write(tmp_path, "x.docx", "Plain words in a docx-named file.")
    assert not supported(path)
    with pytest.raises(UnreadableFileError, match="unsupported file type .docx"):
        load_file(path)


@pytest.mark.parametrize("name,data", [("e.txt", b""), ("e.md", b"   \n\n"), ("e.html", b"<html><body></body></html>"),
                                       ("boiler.txt", b"Source link\nLeave a Reply\n")])
def test_empty_file_is_unreadable(tmp_path, name, data):
    with pytest.raises(UnreadableFileError) as info:
        load_file(write(tmp_path, name, data))
    assert info.value.message.startswith(name)


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(UnreadableFileError):
        load_file(tmp_path / "missing.txt")


def test_supported_extensions_case_insensitive(tmp_path):
    assert supported(Path("A.TXT")) and supported(Path("b.Md")) and supported(Path("c.HTM")) and supported(Path("d.pdf"))
    assert not supported(Path("noext"))


# ---- PDF --------------------------------------------------------------------


def make_pdf(text: str, *, catalog_type: bool = True, endstream: bool = True) -> bytes:
    """A minimal one-page PDF (Helvetica, one text line) with a correct xref table."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    catalog = b"<< /Type /Catalog /Pages 2 0 R >>" if catalog_type else b"<< /Pages 2 0 R >>"
    stream_end = b"\nendstream" if endstream else b"\n"
    objects = [
        catalog,
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + stream_end,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def test_load_pdf_extracts_text(tmp_path):
    doc = load_file(write(tmp_path, "a.pdf", make_pdf("The treaty was signed in Geneva by both parties.")))
    assert doc.text == "The treaty was signed in Geneva by both parties.\n"
    assert doc.metadata["title"] == "The treaty was signed in Geneva by both parties."


@pytest.mark.parametrize("data", [
    b"",
    b"not a pdf at all",
    b"%PDF-1.4 garbage garbage",
    b"%PDF-1.7\n",
], ids=["empty", "not-pdf", "garbage", "header-only"])
def test_corrupt_pdf_is_unreadable(tmp_path, data):
    with pytest.raises(UnreadableFileError) as info:
        load_file(write(tmp_path, "bad.pdf", data))
    assert info.value.message.startswith("bad.pdf")


def test_truncated_pdf_is_unreadable(tmp_path):
    good = make_pdf("The treaty was signed in Geneva by both parties.")
    with pytest.raises(UnreadableFileError):
        load_file(write(tmp_path, "half.pdf", good[: len(good) // 2]))


def test_pdf_without_text_is_unreadable(tmp_path):
    with pytest.raises(UnreadableFileError):
        load_file(write(tmp_path, "blank.pdf", make_pdf("")))


def test_pdf_that_makes_pypdf_loop_is_unreadable(tmp_path):
    # Catalog without /Type and a content stream missing `endstream`: pypdf raises LimitReachedError
    # ("Detected loop with self reference"), which the ingester does not catch.
    data = make_pdf("The treaty was signed in Geneva.", catalog_type=False, endstream=False)
    with pytest.raises(UnreadableFileError):
        load_file(write(tmp_path, "loop.pdf", data))
