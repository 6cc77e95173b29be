"""Readers: one llama-index ``BaseReader`` per file format.

Each returns a single llama-index ``Document`` whose ``text`` is the stored
(cleaned) text and whose metadata holds title, date and source URL. A file
that cannot be read raises :class:`UnreadableFileError`; the ingester turns
that into a warning and a "skipped" entry, never a crash.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

from llama_index.core import Document
from llama_index.core.readers.base import BaseReader

from index.cleaning import clean_text
from index.metadata import find_date, find_url, guess_title
from rag.errors import InvalidInputError


class UnreadableFileError(InvalidInputError):
    code = "unreadable_file"


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_bytes(data: bytes, name: str) -> str:
    """Text from bytes: a byte-order mark's encoding, else UTF-8, else the code page a detector
    (charset-normalizer) names when the text is not in Latin script (Cyrillic KOI8-R, Japanese
    Shift-JIS, …), else Windows-1252 (detectors confuse the Western code pages on short texts,
    and Windows-1252 is by far the most common of them). Binary data is refused."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise UnreadableFileError(f"{name}: starts with a {encoding.upper()} byte-order mark but is not "
                                          f"{encoding.upper()} text", file=name) from None
    if b"\x00" in data[:8192]:
        raise UnreadableFileError(f"{name}: looks like a binary file, not text", file=name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guess = from_bytes(data).best()
    if guess is not None and not _latin_script(str(guess)):
        return str(guess)
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise UnreadableFileError(f"{name}: not text in an encoding that could be recognised (send UTF-8)",
                                  file=name) from None


def _latin_script(text: str) -> bool:
    letters = [ch for ch in text[:20000] if ch.isalpha() and ord(ch) > 127]
    latin = sum(1 for ch in letters if unicodedata.name(ch, "").startswith("LATIN"))
    return latin >= 0.8 * len(letters)


def _document(text: str, title: str | None = None, url: str | None = None) -> Document:
    stored = clean_text(text)
    if not any(ch.isalnum() for ch in stored):
        raise UnreadableFileError("no text to index (empty, or only symbols and invisible characters)")
    return Document(
        text=stored,
        metadata={
            "title": (title or "").strip() or guess_title(stored),
            "date": find_date(stored),
            "url": url or find_url(stored),
        },
    )


class TextReader(BaseReader):
    def load_data(self, file: Path, extra_info: dict | None = None) -> list[Document]:
        return [_document(decode_bytes(Path(file).read_bytes(), Path(file).name))]


class MarkdownReader(BaseReader):
    """Markdown reduced to readable text: links keep their words, markup goes."""

    def load_data(self, file: Path, extra_info: dict | None = None) -> list[Document]:
        text = decode_bytes(Path(file).read_bytes(), Path(file).name)
        heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)            # images
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)        # links → their words
        text = re.sub(r"^#{1,6}\s+", "", text, flags=re.MULTILINE)  # heading marks
        text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)             # bold
        text = re.sub(r"^```.*$", "", text, flags=re.MULTILINE)     # code fences
        return [_document(text, title=heading.group(1).strip("# ") if heading else None)]


class HTMLReader(BaseReader):
    """Visible article text: scripts, navigation, headers, footers and forms dropped.

    The tree is walked once, iteratively, without changing it: time linear in
    the number of tags (inserting separators into the tree was quadratic in a
    parent's children: 200k paragraphs took minutes) and no recursion however
    deep the nesting."""

    _DROP = frozenset({"script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
                       "button", "template"})
    _BLOCKS = frozenset({"p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "section", "article",
                         "blockquote", "pre", "main", "ul", "ol", "table", "dd", "dt", "figcaption"})

    def load_data(self, file: Path, extra_info: dict | None = None) -> list[Document]:
        from bs4 import BeautifulSoup

        html = decode_bytes(Path(file).read_bytes(), Path(file).name)
        soup = BeautifulSoup(html, "html.parser")
        title = None
        if soup.title and soup.title.string:
            title = soup.title.string
        canonical = soup.find("link", rel="canonical") or soup.find("meta", property="og:url")
        url = (canonical.get("href") or canonical.get("content")) if canonical else None
        body = soup.find("article") or soup.find("main") or soup.body or soup
        raw, h1 = self._visible_text(body)
        if h1 is not None and h1.get_text(strip=True):
            title = h1.get_text(" ", strip=True)
        lines = [re.sub(r"[ \t]+", " ", line).strip() for line in raw.split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
        return [_document(text, title=title, url=url)]

    def _visible_text(self, root: Any) -> tuple[str, Any]:
        """The text of ``root`` outside dropped tags, each block on its own lines; and the first visible h1."""
        from bs4 import CData, NavigableString, Tag

        parts: list[str] = []
        first_h1 = None
        stack: list[Any] = [root]
        while stack:
            node = stack.pop()
            if node is None:  # the end of a block
                parts.append("\n")
            elif isinstance(node, Tag):
                if node.name in self._DROP:
                    continue
                if node.name == "h1" and first_h1 is None:
                    first_h1 = node
                if node.name in self._BLOCKS:
                    parts.append("\n")
                    stack.append(None)
                stack.extend(reversed(node.contents))
            elif type(node) in (NavigableString, CData):  # not comments, doctypes or processing instructions
                parts.append(str(node))
        return "".join(parts), first_h1


class PDFReader(BaseReader):
    def load_data(self, file: Path, extra_info: dict | None = None) -> list[Document]:
        from pypdf import PdfReader

        try:
            reader = PdfReader(str(file))
            if reader.is_encrypted:
                raise UnreadableFileError(f"{Path(file).name}: encrypted PDF")
            pages = [page.extract_text() or "" for page in reader.pages]
        except UnreadableFileError:
            raise
        except Exception as exc:  # pypdf raises many kinds on corrupt input (loops, limits, bad streams)
            raise UnreadableFileError(f"{Path(file).name}: unreadable PDF ({type(exc).__name__}: {exc})") from exc
        meta_title = (reader.metadata.title if reader.metadata else None) or None
        return [_document("\n\n".join(pages), title=meta_title)]


READERS: dict[str, BaseReader] = {
    ".txt": TextReader(),
    ".text": TextReader(),
    ".md": MarkdownReader(),
    ".markdown": MarkdownReader(),
    ".html": HTMLReader(),
    ".htm": HTMLReader(),
    ".pdf": PDFReader(),
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def load_file(path: Path) -> Document:
    """Read one file into a stored-text Document, or raise UnreadableFileError."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableFileError(f"{path.name}: unsupported file type {path.suffix or '(none)'}")
    try:
        return reader.load_data(path)[0]
    except UnreadableFileError as exc:
        if not exc.message.startswith(path.name):
            exc.message = f"{path.name}: {exc.message}"
            exc.args = (exc.message,)
        raise
    except OSError as exc:
        raise UnreadableFileError(f"{path.name}: {exc.strerror or exc}") from exc
