"""The reading check: a chat model's yes/no and its reader's answer-or-none on an answer's quotes refuse what
they do not answer.

The model here is scripted but reads its input: it says yes (and copies a name as the reader) when the passage
holds every capitalised word of the question after its first word (the names it asks about), and no (and
"none") otherwise."""

from __future__ import annotations

import math
import re

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion

from rag.answerability.features import candidates_from
from rag.answering import Draft
from rag.answering.reading_check import (READER, YES_NO, ReadingCheck, answer_probability, check_refusal_reason,
                                         combined, yes_probability)
from rag.errors import UpstreamError
from rag.pipeline import AnswerEvent, DeltaEvent, SourcesEvent
from rag.types import REFUSAL
from test_answerability import FISH, RAIN
from test_extractive_answers import build_pipeline, embedder  # noqa: F401 — the fixture


def completion(reply: str, p_yes: float | None, tokens: tuple[str, str] = ("yes", "no")) -> ChatCompletion:
    """A chat completion of one token; with ``p_yes`` its top logprobs give ``tokens`` (yes and no) those
    probabilities."""
    logprobs = None
    if p_yes is not None:
        first, second = tokens
        tops = [{"token": word, "logprob": math.log(p), "bytes": None}
                for word, p in ((first, p_yes), (second, 1 - p_yes), (first.title(), 0.0)) if p > 0]
        logprobs = {"content": [{"token": reply, "logprob": -0.1, "bytes": None, "top_logprobs": tops}]}
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "reader",
        "choices": [{"index": 0, "finish_reason": "length", "logprobs": logprobs,
                     "message": {"role": "assistant", "content": reply}}]})


P_YES, P_NO = 0.9, 0.05  # the scripted yes/no reading of a passage that answers, and of one that does not
P_FOUND, P_MISSED = 0.8, 0.02  # the scripted reader's P(an answer) for the same two (a sure "none")


class NameReader:
    """A scripted model that answers the check's question by looking for the question's names in the passage;
    as the reader it copies the first name, or replies none. ``reader_finds`` overrides what the reader finds."""

    model = "reader"

    def __init__(self, logprobs: bool = True, fail: bool = False, reader_finds: bool | None = None) -> None:
        self.logprobs, self.fail, self.reader_finds = logprobs, fail, reader_finds
        self.calls: list[dict] = []
        self.client = self
        self.chat = self
        self.completions = self

    def create(self, **request) -> ChatCompletion:
        self.calls.append(request)
        if self.fail:
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
        text = request["messages"][-1]["content"]
        passage, question = re.search(r"Passage: (.*)\nQuestion: (.*)\n\n", text).groups()
        names = re.findall(r"\b[A-Z][a-z]+", question)[1:]
        answers = all(name in passage for name in names)
        if not is_reader(request):
            return completion("yes" if answers else "no", (P_YES if answers else P_NO) if self.logprobs else None)
        finds = answers if self.reader_finds is None else self.reader_finds
        copied = names[0] if names else "it"
        return completion(copied if finds else "none", (P_FOUND if finds else P_MISSED) if self.logprobs else None,
                          (copied, "none"))


def is_reader(request: dict) -> bool:
    return request["messages"][-1]["content"].endswith(READER)


ANSWERS, DOES_NOT = combined(P_YES, P_FOUND), combined(P_NO, P_MISSED)


def test_yes_probability_reads_the_logprobs_and_else_the_reply():
    assert yes_probability(completion("yes", 0.8).choices[0]) == pytest.approx(0.8)
    assert yes_probability(completion("no", 0.1).choices[0]) == pytest.approx(0.1)
    assert yes_probability(completion("Yes.", None).choices[0]) == 1.0
    assert yes_probability(completion("no", None).choices[0]) == 0.0
    with pytest.raises(UpstreamError, match="neither yes nor no"):
        yes_probability(completion("maybe", None).choices[0])


def test_the_reader_probability_is_one_minus_a_reply_of_none():
    assert answer_probability(completion("Portugal", 0.7, ("Portugal", "none")).choices[0]) == pytest.approx(0.7)
    assert answer_probability(completion("none", 0.2, ("Portugal", "none")).choices[0]) == pytest.approx(0.2)
    assert answer_probability(completion("None", None).choices[0]) == 0.0  # no logprobs: the reply itself
    assert answer_probability(completion("a sardine quota", None).choices[0]) == 1.0


def test_the_two_readings_multiply_their_odds():
    assert combined(0.5, 0.5) == pytest.approx(0.5)
    assert combined(0.9, 0.5) == pytest.approx(0.9) and combined(0.5, 0.2) == pytest.approx(0.2)
    assert combined(0.9, 0.9) > 0.9 and combined(0.2, 0.2) < 0.2  # two readings that agree say it more surely
    assert combined(0.6, 0.3) < 0.5 < combined(0.6, 0.45)  # a sure "none" outweighs a lukewarm yes
    assert combined(1.0, 0.0) == pytest.approx(0.5)  # plain replies that disagree: even odds, not an error
    assert 0.0 < combined(0.0, 0.0) < 1e-6 and 1 - 1e-6 < combined(1.0, 1.0) < 1.0
    assert combined(0.3, None) == pytest.approx(0.3) and combined(1.0, None) < 1.0  # the yes/no reading alone


def test_the_check_sends_the_question_and_the_quotes_and_asks_for_one_token_per_reading():
    reader = NameReader()
    check = ReadingCheck(reader, timeout=5)
    assert check.p_answers("What did Portugal propose?", ["Portugal proposed a quota.", "Spain rejected it."]) == \
        pytest.approx(ANSWERS)
    assert check.p_answers("What did Morocco propose?", ["Portugal proposed a quota."]) == pytest.approx(DOES_NOT)
    assert len(reader.calls) == 4  # a yes/no and a reader's token per check
    yes_no, reading = reader.calls[:2]
    for request in (yes_no, reading):
        assert request["max_tokens"] == 1 and request["logprobs"] is True and request["temperature"] == 0.0
        assert "Passage: Portugal proposed a quota. Spain rejected it." in request["messages"][-1]["content"]
    assert is_reader(reading) and yes_no["messages"][-1]["content"].endswith(YES_NO)
    # the instruction comes last: everything before it is the same in both readings
    assert yes_no["messages"][0] == reading["messages"][0]
    assert yes_no["messages"][-1]["content"].removesuffix(YES_NO) == reading["messages"][-1]["content"].removesuffix(
        READER)


def test_a_why_question_is_read_only_as_yes_or_no():
    reader = NameReader()
    check = ReadingCheck(reader, timeout=5)
    assert check.readings("Why did Portugal propose a quota?", ["Portugal proposed a quota to save sardines."]) == \
        (pytest.approx(P_YES), None)
    assert check.p_answers("Why did Morocco propose a quota?", ["Portugal proposed a quota."]) == pytest.approx(P_NO)
    assert len(reader.calls) == 2 and not any(is_reader(c) for c in reader.calls)  # no reader for a clause answer
    assert check.readings("What did Portugal propose?", ["Portugal proposed a quota."]) == \
        (pytest.approx(P_YES), pytest.approx(P_FOUND))


def test_a_reader_that_finds_nothing_to_copy_refuses_what_the_yes_no_reading_would_pass(checked):
    question = "What quota did Portugal propose for sardines?"  # the yes/no reading says yes (0.9)
    answer = checked(NameReader(reader_finds=False), check="openai").ask(question)
    assert not answer.answerable and "reading check" in answer.answer and answer.citations == []
    assert checked(NameReader(reader_finds=True), check="openai").ask(question).answerable


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
    question = "What quota did Morocco propose for sardines?"  # the scripted readings give it DOES_NOT
    assert not checked(NameReader(), check="openai", check_threshold=DOES_NOT * 1.1).ask(question).answerable
    assert checked(NameReader(), check="openai", check_threshold=DOES_NOT * 0.9).ask(question).answerable


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
    """The passage of each check (its yes/no reading; the reader's reading of the same passage follows it)."""
    return [re.search(r"Passage: (.*)\nQuestion", c["messages"][-1]["content"]).group(1) for c in reader.calls
            if not is_reader(c)]


def test_a_chat_model_is_never_asked_to_write_what_the_check_refuses(checked):
    reader = WritingReader()
    answer = checked(reader, check="openai").ask("What quota did Morocco propose for sardines?", mode="openai")
    assert not answer.answerable and "reading check" in answer.answer and answer.citations == []
    assert reader.drafts == 0 and len(checked_passages(reader)) == 1  # one check of the best sentences, no generation
    assert len(reader.calls) == 2  # its two readings


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
    assert answer.answerable and len(checked_passages(reader)) == 1 and len(reader.calls) == 2
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
