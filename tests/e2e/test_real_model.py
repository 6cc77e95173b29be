"""Acceptance with the real embedding model and real embedded Chroma (slow tier)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.embeddings import OnnxMiniLMEmbedding
from rag.service import RagService
from rag.settings import BUNDLED_CORPUS, REPO_ROOT, Settings

pytestmark = pytest.mark.slow

GOLD_DEV = REPO_ROOT / "eval" / "data" / "gold_dev.jsonl"


class CountingMiniLM(OnnxMiniLMEmbedding):
    """The real model, counting the passages it is asked to embed."""

    calls: int = 0

    def encode(self, texts):
        self.calls += len(texts)
        return super().encode(texts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for f in BUNDLED_CORPUS.glob("*.txt"):
        shutil.copy(f, folder / f.name)
    return folder


@pytest.fixture(scope="module")
def service(tmp_path_factory, corpus):
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), corpus_dir=corpus)
    svc = RagService(settings, embedder=CountingMiniLM())
    report = svc.ingest()
    assert len(report.added) == 5 and report.chunks_embedded == svc.docstore.chunk_count() > 20
    yield svc
    svc.close()


def assert_quotes_exact(svc: RagService, answer) -> None:
    for c in answer.citations:
        assert svc.docstore.document(c.doc_id).text[c.start:c.end] == c.quote
        assert len(c.quote) < len(svc.docstore.get_chunks([c.chunk_id])[c.chunk_id].text) + 1


def test_why_did_china_decline_cites_the_2023_articles(service):
    answer = service.ask("Why did China decline in 2023?")
    assert answer.answerable
    assert {c.doc_id for c in answer.citations} & {"002_f14e525a7fdb3016.txt", "003_fa1d9f4716c12055.txt"}
    assert "rejected" in answer.answer and "meeting" in answer.answer
    assert_quotes_exact(service, answer)
    assert all(s.citations for s in answer.sentences)


def test_why_did_china_decline_mentions_the_sanctions_on_li(service):
    answer = service.ask("Why did China decline in 2023?")
    assert "sanction" in answer.answer.lower() and "Li Shangfu" in answer.answer
    sanction_citations = [c for c in answer.citations if "sanction" in c.quote]
    assert sanction_citations and sanction_citations[0].doc_id in {"002_f14e525a7fdb3016.txt",
                                                                   "003_fa1d9f4716c12055.txt"}


def test_unanswerable_question_is_refused_without_citations(service):
    answer = service.ask("What is China's official defense budget for 2024?")
    assert answer.answerable is False
    assert answer.citations == [] and answer.sentences == []


def test_factoid_answers_carry_the_fact(service):
    answer = service.ask("How long did the Austin–Wei Fenghe phone call last?")
    assert "45 minutes" in answer.answer
    assert_quotes_exact(service, answer)


def test_dev_set_quality_floor(service):
    """A regression gate: must-include coverage and refusals on the development set."""
    gold = [json.loads(line) for line in GOLD_DEV.read_text().splitlines() if line.strip()]
    covered = refused_right = answerable = 0
    for item in gold:
        answer = service.ask(item["question"])
        assert_quotes_exact(service, answer)
        if item["answerable"]:
            answerable += 1
            text = answer.answer.lower()
            covered += all(any(alt.lower() in text for alt in group) for group in item["must_include"])
        else:
            refused_right += not answer.answerable
    assert covered / answerable >= 0.82  # measured 25/28 answerable fully covered on 2026-11-22
    assert refused_right >= 1


def test_reingest_embeds_nothing_and_keeps_ids(service):
    ids_before = sorted(service.docstore.chunk_ids())
    calls = service.embedder.calls
    report = service.ingest()
    assert len(report.unchanged) == 5 and report.chunks_embedded == 0
    assert service.embedder.calls == calls
    assert sorted(service.docstore.chunk_ids()) == ids_before


def test_modified_then_deleted_file(service, corpus):
    target = corpus / "003_fa1d9f4716c12055.txt"
    others = {d: service.docstore.chunk_ids(d) for d in ["000_5a42b30724503348.txt", "004_b3537baf186e6fe8.txt"]}
    old_ids = set(service.docstore.chunk_ids(target.name))
    target.write_text(target.read_text() + "\nThe zebra attaché quietly resigned in Oslo on Tuesday.\n")
    report = service.ingest()
    assert report.updated == [target.name] and report.chunks_reused > 0
    new_ids = set(service.docstore.chunk_ids(target.name))
    assert new_ids != old_ids and new_ids & old_ids  # the untouched leading chunks keep their ids
    assert {d: service.docstore.chunk_ids(d) for d in others} == others
    assert service.vectors.count() == service.docstore.chunk_count()
    answer = service.ask("Where did the zebra attaché resign?")
    assert "Oslo" in answer.answer and answer.citations[0].doc_id == target.name

    target.unlink()
    report = service.ingest()
    assert report.removed == [target.name]
    assert service.docstore.chunk_ids(target.name) == []
    assert not set(service.vectors.all_ids()) & new_ids
