"""The reading check: a chat model's yes/no on an answer's quotes refuses what they do not answer.

The model here is scripted but reads its input: it says yes when the passage holds every capitalised word of
the question after its first word (the names it asks about), and no otherwise."""

from __future__ import annotations

import math
import re

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from rag.answerability.features import candidates_from
from rag.answering import Draft
from rag.answering.reading_check import ReadingCheck, check_refusal_reason, yes_probability
from rag.errors import UpstreamError
from rag.pipeline import AnswerEvent, DeltaEvent, SourcesEvent
from rag.types import REFUSAL
from test_answerability import FISH, RAIN
from test_extractive_answers import build_pipeline, embedder  # noqa: F401 — the fixture


def completion(reply: str, p_yes: float | None) -> ChatCompletion:
    """A chat completion of one token; with ``p_yes`` its top logprobs give yes and no those probabilities."""
    logprobs = None
    if p_yes is not None:
        tops = [{"token": word, "logprob": math.log(p), "bytes": None}
                for word, p in (("yes", p_yes), ("no", 1 - p_yes), ("Yes", 0.0)) if p > 0]
        logprobs = {"content": [{"token": reply, "logprob": -0.1, "bytes": None, "top_logprobs": tops}]}
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "reader",
        "choices": [{"index": 0, "finish_reason": "length", "logprobs": logprobs,
                     "message": {"role": "assistant", "content": reply}}]})


class NameReader:
    """A scripted model that answers the check's question by looking for the question's names in the passage."""

    model = "reader"

    def __init__(self, logprobs: bool = True, fail: bool = False) -> None:
        self.logprobs, self.fail = logprobs, fail
        self.calls: list[dict] = []
        self.client = self
        self.chat = self
        self.completions = self

    def create(self, **request) -> ChatCompletion:
        self.calls.append(request)
        if self.fail:
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
        text = request["messages"][-1]["content"]
        question, passage = re.search(r"Question: (.*)\nPassage: (.*)\n", text).groups()
        names = re.findall(r"\b[A-Z][a-z]+", question)[1:]
        answers = all(name in passage for name in names)
        return completion("yes" if answers else "no", (0.9 if answers else 0.05) if self.logprobs else None)


def test_yes_probability_reads_the_logprobs_and_else_the_reply():
    assert yes_probability(completion("yes", 0.8).choices[0]) == pytest.approx(0.8)
    assert yes_probability(completion("no", 0.1).choices[0]) == pytest.approx(0.1)
    assert yes_probability(completion("Yes.", None).choices[0]) == 1.0
    assert yes_probability(completion("no", None).choices[0]) == 0.0
    with pytest.raises(UpstreamError, match="neither yes nor no"):
        yes_probability(completion("maybe", None).choices[0])


def test_the_check_sends_the_question_and_the_quotes_and_asks_for_one_token():
    reader = NameReader()
    check = ReadingCheck(reader, timeout=5)
    assert check.p_answers("What did Portugal propose?", ["Portugal proposed a quota.", "Spain rejected it."]) == 0.9
    assert check.p_answers("What did Morocco propose?", ["Portugal proposed a quota."]) == pytest.approx(0.05)
    request = reader.calls[0]
    assert request["max_tokens"] == 1 and request["logprobs"] is True and request["temperature"] == 0.0
    assert "Passage: Portugal proposed a quota. Spain rejected it." in request["messages"][-1]["content"]


def test_a_refusal_by_the_check_names_the_closest_passage_shortened_at_a_word():
    reason = check_refusal_reason("word " * 100)
    assert reason.startswith("The closest passage says “word word") and "reading check" in reason
    assert "…”" in reason and len(reason) < 300


@pytest.fixture
def checked(tmp_path, embedder):  # noqa: F811 — the fixture imported above
    def make(reader: NameReader, **answer):
        pipe = build_pipeline(tmp_path, embedder, chat=reader, min_confidence=0.0, **answer)
        pipe.ingest("fish", FISH)
        pipe.ingest("rain", RAIN)
        return pipe
    yield make


def test_an_answer_whose_quotes_do_not_answer_is_refused_and_cites_nothing(checked):
    pipe = checked(NameReader(), check="openai")
    answer = pipe.ask("What quota did Morocco propose for sardines?")  # the gate (threshold 0) lets it through
    assert answer.answerable is False and answer.citations == [] and answer.sentences == []
    assert answer.answer.startswith(REFUSAL) and "reading check" in answer.answer
    assert "The closest passage says “" in answer.answer and "quota" in answer.answer
    assert answer.confidence is not None and answer.fallback is None


def test_an_answer_the_check_accepts_is_the_unchecked_answer(checked):
    question = "What quota did Portugal propose for sardines?"
    reader = NameReader(logprobs=False)  # a server without logprobs: its plain yes
    accepted = checked(reader, check="openai").ask(question)
    unchecked = checked(NameReader(), check="off").ask(question)
    assert accepted.answerable and accepted.answer == unchecked.answer
    assert [c.quote for c in accepted.citations] == [c.quote for c in unchecked.citations]
    assert "Portugal proposed" in reader.calls[0]["messages"][-1]["content"]


def test_the_check_is_off_by_default_and_never_asks_the_model(checked):
    reader = NameReader()
    pipe = checked(reader)
    assert pipe.settings.answer.check == "off" and pipe.reading_check is None
    assert pipe.ask("What quota did Morocco propose for sardines?").answerable
    assert reader.calls == []


def test_a_failed_check_leaves_the_answer_unchecked_and_says_so_or_fails_without_fallbacks(checked):
    pipe = checked(NameReader(fail=True), check="openai")
    answer = pipe.ask("What quota did Portugal propose for sardines?")
    assert answer.answerable and answer.citations
    assert answer.fallback is not None and answer.fallback.startswith("unchecked: the reading check failed")
    pipe.settings.llm.fallback = False
    with pytest.raises(UpstreamError):
        pipe.ask("What quota did Portugal propose for sardines?")


def test_the_threshold_decides(checked):
    question = "What quota did Morocco propose for sardines?"  # the scripted reader gives it 0.05
    assert not checked(NameReader(), check="openai", check_threshold=0.06).ask(question).answerable
    assert checked(NameReader(), check="openai", check_threshold=0.04).ask(question).answerable


class WritingReader(NameReader):
    """The same reader, also a chat answerer, whose written answer quotes the last sentence of passage 1."""

    mode = "openai"

    def __init__(self) -> None:
        super().__init__()
        self.drafts = 0

    def draft(self, question, retrieval, assessment=None) -> Draft:
        self.drafts += 1
        last = candidates_from(retrieval.hits[:1])[-1].text
        return Draft.of_text(f"{last} [1]", retrieval.hits)


def checked_passages(reader: NameReader) -> list[str]:
    return [re.search(r"\nPassage: (.*)\n", c["messages"][-1]["content"]).group(1) for c in reader.calls]


def test_a_chat_model_is_never_asked_to_write_what_the_check_refuses(checked):
    reader = WritingReader()
    answer = checked(reader, check="openai").ask("What quota did Morocco propose for sardines?", mode="openai")
    assert not answer.answerable and "reading check" in answer.answer and answer.citations == []
    assert reader.drafts == 0 and len(reader.calls) == 1  # one check of the best sentences, no generation


def test_a_chat_answer_quoting_sentences_the_check_has_not_read_is_read_as_written(checked):
    reader = WritingReader()
    answer = checked(reader, check="openai").ask("What quota did Portugal propose for sardines?", mode="openai")
    first, written = checked_passages(reader)
    assert "Portugal proposed" in first  # the evidence passed the check, so the model wrote
    assert reader.drafts == 1 and "Portugal" not in written  # but its answer quotes another sentence
    assert not answer.answerable and answer.citations == [] and "reading check" in answer.answer


def test_an_offline_answer_is_read_once_and_drafted_once(checked, monkeypatch):
    reader = NameReader()
    pipe = checked(reader, check="openai")
    extractive = pipe.answerer("extractive")
    drafts = []
    monkeypatch.setattr(extractive, "draft", lambda *args: drafts.append(args) or type(extractive).draft(
        extractive, *args))
    events = list(pipe.ask_stream("What quota did Portugal propose for sardines?"))
    answer = events[-1].answer
    assert answer.answerable and len(reader.calls) == 1
    assert all(c.quote.strip() in checked_passages(reader)[0] for c in answer.citations)
    assert len(drafts) == 1  # the draft the check read is the answer's draft
    assert "".join(e.text for e in events if isinstance(e, DeltaEvent)).startswith(answer.sentences[0].text[:40])


def test_a_stream_refused_by_the_check_sends_no_draft(checked):
    reader = WritingReader()
    events = list(checked(reader, check="openai").ask_stream("What quota did Morocco propose for sardines?",
                                                             mode="openai"))
    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], AnswerEvent)
    assert not any(isinstance(e, DeltaEvent) for e in events) and not events[-1].answer.answerable
    accepted = list(checked(WritingReader(), check="openai").ask_stream("What quota did Portugal propose for sardines?",
                                                                        mode="openai"))
    assert any(isinstance(e, DeltaEvent) for e in accepted)  # the model wrote, and its draft streamed


class FailingWriter(NameReader):
    """A chat answerer whose server is down: both its check and its answer fail."""

    mode = "openai"

    def draft(self, question, retrieval, assessment=None) -> Draft:
        raise UpstreamError("the chat server is down")


def test_when_the_check_and_the_chat_model_both_fail_the_fallback_says_both(checked):
    answer = checked(FailingWriter(fail=True), check="openai").ask("What quota did Portugal propose for sardines?",
                                                                  mode="openai")
    assert answer.answerable and answer.mode == "extractive" and answer.citations
    assert answer.fallback.startswith("unchecked: the reading check failed")
    assert "answered extractively: the openai model failed: the chat server is down" in answer.fallback
