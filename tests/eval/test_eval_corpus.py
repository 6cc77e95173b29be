"""``rag eval --corpus DIR``: its own index under ``RAG_DATA_DIR/eval-corpora/``, reused between runs
(hash embedder, fast tier); and the decision, calibration and self-judged lines of the printed summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kit import hash_settings
from api.cli import app
from eval.suite import corpus_data_dir, service_for_corpus
from rag.errors import InvalidInputError
from rag.settings import BUNDLED_CORPUS, REPO_ROOT, get_settings

DEV_SET = REPO_ROOT / "eval" / "data" / "gold_dev.jsonl"


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A copy of the bundled corpus (5 documents) in a folder of its own."""
    folder = tmp_path / "somewhere" / "news"
    shutil.copytree(BUNDLED_CORPUS, folder)
    return folder


def test_corpus_data_dir_is_named_by_folder_and_path_hash(tmp_path):
    settings = hash_settings(tmp_path / "data")
    one, two = tmp_path / "a" / "docs", tmp_path / "b" / "docs"
    first = corpus_data_dir(settings, one)
    assert first.parent == tmp_path / "data" / "eval-corpora"
    assert first.name.startswith("docs-") and len(first.name) > len("docs-") + 6
    assert corpus_data_dir(settings, one) == first  # stable
    assert corpus_data_dir(settings, tmp_path / "a" / "x" / ".." / "docs") == first  # resolved path
    assert corpus_data_dir(settings, two) != first  # same name, another folder


def test_service_for_corpus_ingests_into_its_own_index_and_reuses_it(tmp_path, corpus):
    settings = hash_settings(tmp_path / "data")
    service, report = service_for_corpus(settings, corpus)
    try:
        assert Path(service.settings.data_dir) == corpus_data_dir(settings, corpus)
        assert Path(service.settings.corpus_dir) == corpus.resolve()
        assert len(report.added) == 5 and service.docstore.document_count() == 5
    finally:
        service.close()
    assert settings.data_dir == tmp_path / "data"  # the caller's settings are left alone
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["eval-corpora"]  # nothing in the main index
    removed = sorted(corpus.iterdir())[0]
    removed.unlink()
    service, report = service_for_corpus(settings, corpus)
    try:
        assert report.added == [] and report.updated == [] and report.chunks_embedded == 0
        assert len(report.unchanged) == 4 and report.removed == [removed.name]  # pruned
        assert service.docstore.document_count() == 4
    finally:
        service.close()
    assert len(list((tmp_path / "data" / "eval-corpora").iterdir())) == 1


def test_service_for_corpus_rejects_a_missing_folder_or_a_file(tmp_path):
    settings = hash_settings(tmp_path / "data")
    with pytest.raises(InvalidInputError, match="no such folder"):
        service_for_corpus(settings, tmp_path / "absent")
    (tmp_path / "file.txt").write_text("text", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not a folder"):
        service_for_corpus(settings, tmp_path / "file.txt")
    assert not (tmp_path / "data").exists()


# ---- the command ------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch, tmp_path):
    data_dir = tmp_path / "rag-data"
    monkeypatch.setenv("RAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("RAG_EMBED_PROVIDER", "hash")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        outcome = runner.invoke(app, ["eval", *args])
        assert isinstance(outcome.exception, (SystemExit, type(None))), repr(outcome.exception)
        assert "Traceback" not in outcome.output
        return outcome

    invoke.data_dir = data_dir
    return invoke


def test_cli_eval_corpus_ingests_into_its_own_data_dir_and_reuses_it(cli, corpus, tmp_path):
    out = tmp_path / "out.json"
    first = cli("--gold", str(DEV_SET), "--corpus", str(corpus), "--no-baseline", "--json-out", str(out))
    assert first.exit_code == 0, first.output
    own = corpus_data_dir(get_settings(), corpus)
    assert own.parent == cli.data_dir / "eval-corpora" and own.is_dir()
    assert f"→ {own}: added 5, updated 0, unchanged 0" in first.stderr
    assert sorted(p.name for p in cli.data_dir.iterdir()) == ["eval-corpora"]  # the default index is untouched
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["system"]["documents"] == 5 and result["gold_problems"] == []
    assert len(result["items"]) == 30

    second = cli("--gold", str(DEV_SET), "--corpus", str(corpus), "--no-baseline", "--json-out", str(out))
    assert second.exit_code == 0, second.output
    assert f"→ {own}: added 0, updated 0, unchanged 5" in second.stderr
    assert "embedded 0" in second.stderr
    assert [p.name for p in (cli.data_dir / "eval-corpora").iterdir()] == [own.name]
    again = json.loads(out.read_text(encoding="utf-8"))
    assert again["system"]["documents"] == 5
    assert again["metrics"]["retrieval"] == result["metrics"]["retrieval"]  # the same index, the same ranking


def test_cli_eval_missing_corpus_exits_2(cli, tmp_path):
    outcome = cli("--gold", str(DEV_SET), "--corpus", str(tmp_path / "absent"), "--no-baseline")
    assert outcome.exit_code == 2, outcome.output
    assert outcome.stderr.startswith("error: --corpus ") and "no such folder" in outcome.stderr
    assert not cli.data_dir.exists() or not any(cli.data_dir.iterdir())


def test_cli_eval_corpus_that_is_a_file_exits_2(cli, tmp_path):
    (tmp_path / "file.txt").write_text("text", encoding="utf-8")
    outcome = cli("--gold", str(DEV_SET), "--corpus", str(tmp_path / "file.txt"), "--no-baseline")
    assert outcome.exit_code == 2 and "not a folder" in outcome.stderr


def test_cli_eval_bad_gold_with_corpus_fails_before_ingesting(cli, corpus, tmp_path):
    outcome = cli("--gold", str(tmp_path / "absent.jsonl"), "--corpus", str(corpus), "--no-baseline")
    assert outcome.exit_code == 2 and "no gold file" in outcome.stderr
    assert not (cli.data_dir / "eval-corpora").exists()


def test_cli_summary_prints_decisions_calibration_and_self_judged_labels(cli):
    outcome = cli("--gold", str(DEV_SET))
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("right answer-or-refuse decisions")):]
    types = sorted({json.loads(line)["type"] for line in DEV_SET.read_text(encoding="utf-8").splitlines()
                    if line.strip()}) + ["all"]
    assert len(types) > 3
    rows = [line.split() for line in table[1:len(types) + 1]]
    assert [r[0] for r in rows] == types
    unanswerable = rows[types.index("unanswerable")]
    assert unanswerable[1:3] == ["2", "no"]
    assert all(float(v) <= 1 for r in rows for v in r[-2:])  # this system and the baseline
    assert any(line.startswith("confidently wrong (unanswerable answered)") for line in lines)
    assert any(line.startswith("wrong among answered") for line in lines)
    assert any(line.startswith("calibration ECE (n=") for line in lines)
    for name in ("citations.recall", "citations.precision_lenient", "faithfulness.supported_sentences"):
        assert any(line.startswith(f"{name} (self-judged) ") for line in lines), name
        assert not any(line.startswith(f"{name} ") and "(self-judged)" not in line for line in lines), name
    assert any(line.startswith("citations.precision_strict ") for line in lines)


def test_with_a_chroma_server_the_corpus_gets_its_own_collection(tmp_path, corpus, monkeypatch):
    import eval.suite

    built = []

    class FakeService:
        def __init__(self, settings):
            self.settings = settings
            built.append(settings)

        def ingest(self, path, *, prune, progress):
            assert path == corpus.resolve() and prune is True
            return "report"

    monkeypatch.setattr(eval.suite, "RagService", FakeService)
    settings = hash_settings(tmp_path / "data")
    settings.chroma.host = "chroma.example"
    service, report = service_for_corpus(settings, corpus)
    own = corpus_data_dir(settings, corpus)
    assert report == "report" and service.settings.data_dir == own
    assert service.settings.chroma.collection == f"rag_chunks-{own.name.rsplit('-', 1)[1]}"
    assert service.settings.chroma.host == "chroma.example"
    assert settings.chroma.collection == "rag_chunks"  # the served collection's settings are unchanged
    embedded, _ = service_for_corpus(hash_settings(tmp_path / "data"), corpus)
    assert embedded.settings.chroma.collection == "rag_chunks"  # embedded: the folder is already its own
