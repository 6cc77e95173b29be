"""The `rag` command as a user runs it (hash embedder: fast, offline)."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from kit import free_port
from api.cli import app
from rag.settings import BUNDLED_CORPUS, get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch):
    monkeypatch.setenv("RAG_EMBED_PROVIDER", "hash")


def test_ingest_then_reingest_is_a_no_op():
    first = runner.invoke(app, ["ingest", "-q"])
    assert first.exit_code == 0, first.output
    assert "added 5" in first.output
    second = runner.invoke(app, ["ingest", "-q"])
    assert second.exit_code == 0
    assert "unchanged 5" in second.output and "embedded 0" in second.output


def test_ask_json_prints_the_answer_object_with_exact_quotes(tmp_path):
    runner.invoke(app, ["ingest", "-q"])
    result = runner.invoke(app, ["ask", "--json", "Who met Xu Qiliang in Beijing in 2018?"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert set(answer) == {"question", "answer", "answerable", "sentences", "citations", "dropped_citations",
                           "mode", "timings_ms", "confidence", "fallback"}
    assert answer["answerable"] and "Mattis" in answer["answer"]
    for c in answer["citations"]:
        text = (BUNDLED_CORPUS / c["doc_id"]).read_text(encoding="utf-8")
        assert c["quote"] in text  # stored text keeps article sentences verbatim
        assert set(c) == {"n", "doc_id", "title", "chunk_id", "start", "end", "quote", "score"}


def test_ask_human_output_lists_numbered_sources():
    runner.invoke(app, ["ingest", "-q"])
    result = runner.invoke(app, ["ask", "Who met Xu Qiliang in Beijing in 2018?"])
    assert result.exit_code == 0
    assert "Sources:" in result.output
    assert re.search(r"^  \[1\] \d{3}_\w+\.txt \(chars \d+-\d+\)$", result.output, re.MULTILINE)
    assert re.search(r"^extractive · confidence (0\.\d\d|1\.00) · \d+ ms$", result.output, re.MULTILINE)


def test_ask_refusal_explains_itself():
    runner.invoke(app, ["ingest", "-q"])
    result = runner.invoke(app, ["ask", "What is the recipe for banana bread with walnuts?"])
    assert result.exit_code == 0
    assert result.output.startswith("The sources do not answer this question. The documents")
    assert "say nothing about" in result.output and "“banana”" in result.output
    assert "Sources:" not in result.output


@pytest.mark.parametrize("args, code, message", [
    (["ask", ""], 2, "the question is empty"),
    (["ask", "x" * 5000], 2, "limit is 2000"),
    (["ask", "--mode", "poetry", "hello there"], 2, "unknown answer mode"),
    (["ingest", "/definitely/not/here"], 2, "no such file or folder"),
])
def test_bad_input_is_one_line_and_non_zero(args, code, message):
    runner.invoke(app, ["ingest", "-q"])
    result = runner.invoke(app, args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_ask_before_ingest_says_so():
    result = runner.invoke(app, ["ask", "anything at all?"])
    assert result.exit_code == 3
    assert "rag ingest" in result.output


def test_reset_and_model_mismatch(monkeypatch):
    assert runner.invoke(app, ["ingest", "-q"]).exit_code == 0
    monkeypatch.setenv("RAG_EMBED_PROVIDER", "onnx")
    from rag.settings import get_settings

    get_settings.cache_clear()
    mismatch = runner.invoke(app, ["ask", "Who met Xu?"])
    assert mismatch.exit_code == 3 and "--reset" in mismatch.output
    monkeypatch.setenv("RAG_EMBED_PROVIDER", "hash")
    get_settings.cache_clear()
    assert "added 5" in runner.invoke(app, ["ingest", "-q", "--reset"]).output


def test_ingest_other_folder_keeps_bundled_documents(tmp_path):
    runner.invoke(app, ["ingest", "-q"])
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "note.md").write_text("# Budget note\n\nThe imaginary budget was 42 units in 2031.\n")
    (extra / "blob.bin").write_bytes(b"\x00\x01")
    result = runner.invoke(app, ["ingest", "-q", str(extra)])
    assert result.exit_code == 0
    assert "added 1" in result.output and "removed 0" in result.output and "skipped 1" in result.output
    shutil.rmtree(extra)
    extra.mkdir()
    assert "removed 1" in runner.invoke(app, ["ingest", "-q", str(extra)]).output


def test_ask_with_a_chat_model_that_is_down_answers_extractively_and_says_why(monkeypatch):
    monkeypatch.setenv("RAG_LLM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("RAG_LLM_MAX_RETRIES", "0")
    runner.invoke(app, ["ingest", "-q"])
    result = runner.invoke(app, ["ask", "--mode", "openai", "Who met Xu Qiliang in Beijing in 2018?"])
    assert result.exit_code == 0, result.output
    assert "Mattis" in result.output and "Sources:" in result.output
    assert re.search(r"^\(answered extractively: the openai model failed: chat model unreachable", result.output,
                     re.MULTILINE)
    monkeypatch.setenv("RAG_LLM_FALLBACK", "false")
    get_settings.cache_clear()  # the CLI reads the environment once per process
    strict = runner.invoke(app, ["ask", "--mode", "openai", "Who met Xu Qiliang in Beijing in 2018?"])
    assert strict.exit_code == 5 and "chat model unreachable" in strict.output


def test_llm_serve_names_what_to_install_or_fix():
    result = runner.invoke(app, ["llm", "serve", "--model", "7b"])
    assert result.exit_code == 2 and "unknown local model '7b'" in result.output
    result = runner.invoke(app, ["llm", "serve", "--model", "0.5b", "--threads", "-1"])
    assert result.exit_code == 2 and "threads" in result.output
