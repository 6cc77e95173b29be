"""Bounded parsing: the worker process reads what the in-process reader reads, and a file over the time or
memory limit is refused with the reason while the next file is still read. Also the decoder's encodings and
the HTML reader on wide and deep trees (both once took minutes or a recursion error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.loaders import UnreadableFileError, decode_bytes, load_file
from index.parsing import InProcessParser, IsolatedParser, build_parser
from rag.settings import ParseSettings


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@pytest.fixture(scope="module")
def isolated():
    """One worker for the tests that do not break it (start-up is most of a small parse's cost)."""
    parser = IsolatedParser(ParseSettings(timeout_s=20, max_memory_mb=256))
    yield parser
    parser.close()


def test_build_parser_follows_the_setting():
    assert isinstance(build_parser(ParseSettings(isolate=False)), InProcessParser)
    parser = build_parser(ParseSettings())
    assert isinstance(parser, IsolatedParser)
    parser.close()


def test_worker_reads_what_the_in_process_reader_reads(tmp_path, isolated):
    files = [write(tmp_path, "a.txt", "The harbour of Quillport opened in 1821.\nIt closed in 1901."),
             write(tmp_path, "b.html", "<html><head><title>T</title></head><body><nav>menu</nav><article>"
                                       "<h1>Harbour News</h1><p>Ships came in 1822.</p></article></body></html>"),
             write(tmp_path, "c.md", "# Heading Here\n\nSome **bold** text with a [link](http://x).\n")]
    for path in files:
        here, there = load_file(path), isolated.load(path)
        assert (there.text, there.metadata) == (here.text, here.metadata)


def test_worker_passes_on_unreadable_files_and_goes_on(tmp_path, isolated):
    with pytest.raises(UnreadableFileError, match="bin.txt: looks like a binary file"):
        isolated.load(write(tmp_path, "bin.txt", bytes(range(256))))
    assert isolated.load(write(tmp_path, "ok.txt", "Still reading files after that.")).text.startswith("Still")


def test_memory_limit_refuses_the_file_and_the_next_one_is_read(tmp_path):
    parser = IsolatedParser(ParseSettings(timeout_s=60, max_memory_mb=64))
    try:
        big = write(tmp_path, "big.txt", "lorem ipsum dolor sit amet " * 350_000)  # 9.4 MB in one line
        with pytest.raises(UnreadableFileError, match="big.txt: .*64 MB parse memory limit"):
            parser.load(big)
        assert parser.load(write(tmp_path, "small.txt", "A small file after a big one.")).text
    finally:
        parser.close()


def test_time_limit_kills_the_parse_and_a_new_worker_reads_the_next_file(tmp_path):
    parser = IsolatedParser(ParseSettings(timeout_s=0.5, max_memory_mb=1024))
    try:
        parser.load(write(tmp_path, "warm.txt", "Start the worker first."))  # start-up is not the parse
        nested = write(tmp_path, "deep.html", "<html><body>" + "<div>" * 300_000 + "x" + "</div>" * 300_000)
        first = parser._worker
        with pytest.raises(UnreadableFileError, match="deep.html: took longer than the 0.5-second parse limit"):
            parser.load(nested)
        assert first is not None and first.poll() is not None  # killed
        assert parser.load(write(tmp_path, "next.txt", "The next file is read.")).text.startswith("The next")
    finally:
        parser.close()


def test_a_dead_worker_is_replaced(tmp_path, isolated):
    isolated.load(write(tmp_path, "one.txt", "First file."))
    isolated._worker.kill()
    isolated._worker.wait()
    assert isolated.load(write(tmp_path, "two.txt", "Second file.")).text.startswith("Second")


@pytest.mark.parametrize("text,encoding", [
    ("The harbour of Quillport opened in 1821.", "utf-16"),          # with its byte-order mark
    ("Der Hafen öffnete 1821.", "utf-32"),
    ("Москва - столица России. Город большой и старый.", "koi8_r"),
    ("日本語のテキストです。東京は日本の首都です。", "shift_jis"),
    ("Café crème, naïve façade — prices rose.", "cp1252"),          # Western: not mistaken for Central European
])
def test_decoder_reads_common_encodings(text, encoding):
    assert decode_bytes(text.encode(encoding), "f.txt").strip() == text


def test_decoder_refuses_a_lying_byte_order_mark():
    with pytest.raises(UnreadableFileError, match="UTF-16"):
        decode_bytes(b"\xff\xfe" + b"\x00\xd8", "f.txt")  # a lone surrogate after the UTF-16 mark


def test_html_with_many_paragraphs_keeps_each_on_its_line(tmp_path):
    html = "<html><body>" + "".join(f"<p>Paragraph {i} here.</p>" for i in range(50_000)) + "</body></html>"
    lines = [ln for ln in load_file(write(tmp_path, "wide.html", html)).text.split("\n") if ln]
    assert len(lines) == 50_000 and lines[0] == "Paragraph 0 here." and lines[-1] == "Paragraph 49999 here."


def test_html_nested_deeper_than_the_recursion_limit_is_read(tmp_path):
    html = ("<html><body>" + "<div>" * 5000 + "<script>hidden()</script>Deep words survive." + "</div>" * 5000
            + "</body></html>")
    doc = load_file(write(tmp_path, "deep.html", html))
    assert doc.text.strip() == "Deep words survive."


def test_worker_pipes_numbered_past_1024_are_waited_on(tmp_path, isolated):
    """A server holds many files: select() refused descriptors ≥ 1024 ("filedescriptor out of range")."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows only {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    isolated.close()
    held = [open(tmp_path / "held", "wb") for _ in range(1100)]  # push the next pipes past 1024
    try:
        assert isolated.load(write(tmp_path, "late.txt", "Read through a high descriptor.")).text.startswith("Read")
        assert isolated._worker.stdout.fileno() >= 1024
    finally:
        for f in held:
            f.close()
        isolated.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_worker_is_replaced_after_its_share_of_files(tmp_path, monkeypatch):
    import index.parsing

    monkeypatch.setattr(index.parsing, "FILES_PER_WORKER", 2)
    parser = IsolatedParser(ParseSettings())
    try:
        pids = []
        for i in range(3):
            parser.load(write(tmp_path, f"f{i}.txt", f"File number {i} is read."))
            pids.append(parser._worker.pid)
        assert pids[0] == pids[1] != pids[2]
    finally:
        parser.close()
