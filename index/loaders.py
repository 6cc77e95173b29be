"""Readers: one llama-index ``BaseReader`` per file format.

Each returns a single llama-index ``Document`` whose ``text`` is the stored
(cleaned) text and whose metadata holds title, date and source URL. A file
that cannot be read raises :class:`UnreadableFileError`; the ingester turns
that into a warning and a "skipped" entry, never a crash.
"""

from __future__ import annotations

import re
from pathlib import Path

from llama_index.core import Document
from llama_index.core.readers.base import BaseReader

from index.cleaning import clean_text
from index.metadata import find_date, find_url, guess_title
from rag.errors import InvalidInputError


class UnreadableFileError(InvalidInputError):
    code = "unreadable_file"


def decode_bytes(data: bytes, name: str) -> str:
    """UTF-8 (or Windows-1252) text; binary data is refused."""
    if b"\x00" in data[:8192]:
        raise UnreadableFileError(f"{name}: looks like a binary file, not text", file=name)
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UnreadableFileError(f"{name}: not UTF-8 text", file=name)


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
    """Visible article text: scripts, navigation, headers, footers and forms dropped."""

    _DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "button"]
    _BLOCKS = ["p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "br", "tr", "section", "article", "blockquote", "pre"]

    def load_data(self, file: Path, extra_info: dict | None = None) -> list[Document]:
        from bs4 import BeautifulSoup

        html = decode_bytes(Path(file).read_bytes(), Path(file).name)
        soup = BeautifulSoup(html, "html.parser")
        title = None
        if soup.title and soup.title.string:
            title = soup.title.string
        canonical = soup.find("link", rel="canonical") or soup.find("meta", property="og:url")
        url = (canonical.get("href") or canonical.get("content")) if canonical else None
        for tag in soup(self._DROP):
            tag.decompose()
        body = soup.find("article") or soup.find("main") or soup.body or soup
        h1 = body.find("h1")
        if h1 and h1.get_text(strip=True):
            title = h1.get_text(" ", strip=True)
        for tag in body.find_all(self._BLOCKS):
            tag.insert_before("\n")
            tag.insert_after("\n")
        lines = [re.sub(r"[ \t]+", " ", line).strip() for line in body.get_text().split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
        return [_document(text, title=title, url=url)]


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
