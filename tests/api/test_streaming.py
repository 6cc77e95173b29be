"""Server-Sent Events: /v1/ask/stream and /v1/chat/completions with stream=true (hash embedder, in-process)."""

from __future__ import annotations

import json
import re

import pytest
from apiutil import assert_envelope, make_settings
from kit import free_port
from rag.citations import parse_cited_sentences
from rag.types import REFUSAL

MATTIS_Q = "Which US defense secretary met Xu Qiliang in Beijing in 2018?"
REFUSE_Q = "What is the recipe for banana bread with walnuts?"
QUESTIONS = [
    MATTIS_Q,
    "Why was China's refusal of the 2023 meeting seen as an unusually blunt signal?",
    "Where and when was the 2023 Shangri-La Dialogue held?",
    "Who did the Chinese ambassador meet at the Pentagon?",
    REFUSE_Q,
]


# ---- a small SSE parser ------------------------------------------------------------------


def parse_sse(text: str) -> list[tuple[str | None, str]]:
    """Messages of an event stream as (event name or None, data); data lines are joined with newlines."""
    messages = []
    for block in re.split(r"\r\n\r\n|\n\n|\r\r", text):
        event, data = None, []
        for line in re.split(r"\r\n|\n|\r", block):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if event is not None or data:
            messages.append((event, "\n".join(data)))
    return messages


def test_the_parser():
    text = "event: a\ndata: {\"x\": 1}\n\n: a comment\n\ndata: line one\ndata: line two\n\nevent: b\r\ndata:[DONE]\r\n\r\n"
    assert parse_sse(text) == [("a", '{"x": 1}'), (None, "line one\nline two"), ("b", "[DONE]")]


def stream_events(client, question: str | None = None, **body) -> tuple[object, list[tuple[str, dict]]]:
    if question is not None:
        body["question"] = question
    with client.stream("POST", "/v1/ask/stream", json=body) as r:
        text = "".join(r.iter_text())
    if r.status_code != 200:
        return r, []
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["cache-control"] == "no-cache"
    return r, [(event, json.loads(data)) for event, data in parse_sse(text)]


def without_timings(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def document_text(client, doc_id: str, cache: dict = {}) -> str:  # noqa: B006 (a per-module cache on purpose)
    key = (id(client), doc_id)
    if key not in cache:
        cache[key] = client.get(f"/v1/documents/{doc_id}").json()["text"]
    return cache[key]


# ---- /v1/ask/stream ------------------------------------------------------------------------


@pytest.mark.parametrize("question", QUESTIONS[:4])
def test_events_come_in_order_sources_deltas_answer_done(shared, question):
    r, events = stream_events(shared, question)
    assert r.status_code == 200
    names = [e for e, _ in events]
    assert names[0] == "sources"
    assert names[-2:] == ["answer", "done"]
    middle = names[1:-2]
    assert middle and set(middle) == {"delta"}, names
    assert names.count("answer") == 1 and names.count("done") == 1 and "error" not in names
    assert events[-1][1] == {}

    passages = events[0][1]["passages"]
    assert [p["n"] for p in passages] == list(range(1, len(passages) + 1)) and 1 <= len(passages) <= 6
    for p in passages:
        assert {"n", "chunk_id", "doc_id", "title", "start", "end", "text", "score"} <= set(p)
        assert p["end"] > p["start"] >= 0
        assert document_text(shared, p["doc_id"])[p["start"]:p["end"]] == p["text"]
    deltas = [d for e, d in events if e == "delta"]
    assert all(set(d) == {"text"} and d["text"] for d in deltas)

    answer = events[-2][1]
    assert answer["answerable"]
    # every citation quotes a passage the stream announced, exactly
    by_chunk = {p["chunk_id"]: p for p in passages}
    for c in answer["citations"]:
        p = by_chunk[c["chunk_id"]]
        assert p["start"] <= c["start"] < c["end"] <= p["end"]
        assert p["text"][c["start"] - p["start"]:c["end"] - p["start"]] == c["quote"]
        assert document_text(shared, c["doc_id"])[c["start"]:c["end"]] == c["quote"]


@pytest.mark.parametrize("question", QUESTIONS[:4])
def test_deltas_carry_the_sentences_of_the_answer(shared, question):
    _, events = stream_events(shared, question)
    draft = "".join(d["text"] for e, d in events if e == "delta")
    answer = events[-2][1]
    drafted = [s.text for s in parse_cited_sentences(draft)]
    final = [s["text"] for s in answer["sentences"]]
    assert final and final == [s for s in drafted if s in final]  # same sentences, same order
    assert set(drafted) == set(final)  # the extractive draft is fully supported: nothing dropped
    assert answer["dropped_citations"] == 0
    # markers in the draft point at announced passages
    n_passages = len(events[0][1]["passages"])
    for s in parse_cited_sentences(draft):
        assert s.markers and all(1 <= n <= n_passages for n in s.markers)


@pytest.mark.parametrize("body", [
    {"question": QUESTIONS[0]},
    {"question": QUESTIONS[1]},
    {"question": QUESTIONS[2], "top_k": 3},
    {"question": QUESTIONS[3], "mode": "extractive"},
    {"question": QUESTIONS[0], "top_k": 1},
    {"question": REFUSE_Q},
], ids=["mattis", "why", "top_k-3", "mode", "top_k-1", "refusal"])
def test_streamed_answer_equals_the_plain_answer(shared, body):
    _, events = stream_events(shared, **body)
    streamed = [d for e, d in events if e == "answer"]
    assert len(streamed) == 1
    plain = shared.post("/v1/ask", json=body)
    assert plain.status_code == 200
    assert without_timings(streamed[0]) == without_timings(plain.json())
    assert set(streamed[0]["timings_ms"]) == {"retrieve", "generate", "verify", "total"}
    if "top_k" in body:
        assert len(events[0][1]["passages"]) <= body["top_k"]


def test_refusal_streams_an_unanswerable_answer(shared):
    _, events = stream_events(shared, REFUSE_Q)
    names = [e for e, _ in events]
    assert names[0] == "sources" and names[-2:] == ["answer", "done"]
    assert set(names[1:-2]) <= {"delta"}
    answer = events[-2][1]
    assert answer["answerable"] is False and answer["answer"].startswith(REFUSAL)
    assert answer["citations"] == [] and answer["sentences"] == []


@pytest.mark.parametrize("body, status, code", [
    ({"question": ""}, 400, "invalid_input"),
    ({"question": "   \n"}, 400, "invalid_input"),
    ({"question": "x" * 1_000_000}, 400, "invalid_input"),
    ({"question": "ok?", "top_k": 0}, 422, "validation_error"),
    ({"question": "ok?", "top_k": "abc"}, 422, "validation_error"),
    ({"question": "ok?", "mode": "poetry"}, 422, "validation_error"),
    ({"question": "ok?", "stream": True}, 422, "validation_error"),
    ({}, 422, "validation_error"),
], ids=["empty", "whitespace", "1MB", "top_k-0", "top_k-abc", "mode", "extra-field", "missing"])
def test_bad_question_is_an_http_error_not_a_stream(shared, body, status, code):
    r = shared.post("/v1/ask/stream", json=body)
    assert not r.headers["content-type"].startswith("text/event-stream")
    assert_envelope(r, status, code)


def test_non_json_body_is_an_http_error_not_a_stream(shared):
    r = shared.post("/v1/ask/stream", content=b"question=hi", headers={"content-type": "application/json"})
    assert_envelope(r, 422, "validation_error")


# ---- an upstream failure in the middle of a stream ---------------------------------------------


@pytest.fixture()
def closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture()
def unreachable_llm(start_app, tmp_path, closed_port):
    settings = make_settings(tmp_path / "llm-down")
    settings.answer.mode = "openai"
    settings.llm.base_url = f"http://127.0.0.1:{closed_port}/v1"
    settings.llm.max_retries = 0
    settings.llm.timeout = 5
    settings.llm.fallback = False  # the strict setting: a failed chat model is an error (the default falls back)
    return start_app(settings=settings)


def test_upstream_failure_mid_stream_is_an_error_event(unreachable_llm):
    r, events = stream_events(unreachable_llm, MATTIS_Q)
    assert r.status_code == 200  # the stream had started: the error is in it
    names = [e for e, _ in events]
    assert names[0] == "sources" and events[0][1]["passages"]
    assert names[-1] == "error" and names.count("error") == 1
    assert "done" not in names and "answer" not in names
    assert set(names[1:-1]) <= {"delta"}
    error = events[-1][1]
    assert set(error) == {"error"} and set(error["error"]) == {"code", "message", "details"}
    assert error["error"]["code"] == "upstream_error" and error["error"]["message"]
    assert isinstance(error["error"]["details"], dict)


def test_upstream_failure_without_a_stream_is_502(unreachable_llm):
    assert_envelope(unreachable_llm.post("/v1/ask", json={"question": MATTIS_Q}), 502, "upstream_error")
    assert_envelope(unreachable_llm.post("/v1/chat/completions",
                                         json={"messages": [{"role": "user", "content": MATTIS_Q}]}),
                    502, "upstream_error")
    assert_envelope(unreachable_llm.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": MATTIS_Q}], "stream": True}), 502, "upstream_error")
    # the extractive mode still works per request, and the app stays up
    r = unreachable_llm.post("/v1/ask", json={"question": MATTIS_Q, "mode": "extractive"})
    assert r.status_code == 200 and "Mattis" in r.json()["answer"]
    assert unreachable_llm.get("/readyz").json()["status"] == "ready"


def test_openai_mode_per_request_fails_mid_stream_too(start_app, closed_port):
    client = start_app()
    client.settings.llm.base_url = f"http://127.0.0.1:{closed_port}/v1"
    client.settings.llm.max_retries = 0
    client.settings.llm.fallback = False
    _, events = stream_events(client, MATTIS_Q, mode="openai")
    assert [e for e, _ in events][0] == "sources"
    assert events[-1][0] == "error" and events[-1][1]["error"]["code"] == "upstream_error"
    _, ok = stream_events(client, MATTIS_Q)  # the default mode is untouched
    assert [e for e, _ in ok][-2:] == ["answer", "done"]


def test_a_chat_model_that_is_down_falls_back_on_every_route_without_a_5xx(start_app, closed_port):
    client = start_app()
    client.settings.answer.mode = "openai"  # the default fallback is on
    client.settings.llm.base_url = f"http://127.0.0.1:{closed_port}/v1"
    client.settings.llm.max_retries = 0
    extractive = client.post("/v1/ask", json={"question": MATTIS_Q, "mode": "extractive"}).json()

    r = client.post("/v1/ask", json={"question": MATTIS_Q})
    assert r.status_code == 200
    answer = r.json()
    assert answer["mode"] == "extractive" and "unreachable" in answer["fallback"]
    assert answer["answer"] == extractive["answer"] and extractive["fallback"] is None

    _, events = stream_events(client, MATTIS_Q)
    assert [e for e, _ in events][-2:] == ["answer", "done"]
    assert events[-2][1]["fallback"] == answer["fallback"] and events[-2][1]["answer"] == answer["answer"]

    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": MATTIS_Q}],
                                                      "stream": stream})
        assert r.status_code == 200
        if stream:
            chunks = [json.loads(d) for _, d in parse_sse(r.text) if d != "[DONE]"]
            last = chunks[-1]
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == answer["answer"]
        else:
            last = r.json()
            assert last["choices"][0]["message"]["content"] == answer["answer"]
        assert last["fallback"] == answer["fallback"]


# ---- /v1/chat/completions, stream=true ------------------------------------------------------------


def chat_stream(client, messages, **body) -> tuple[list[dict], str]:
    with client.stream("POST", "/v1/chat/completions", json={"messages": messages, "stream": True, **body}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    messages_ = parse_sse(text)
    assert all(event is None for event, _ in messages_)  # OpenAI streams carry data only
    datas = [data for _, data in messages_]
    assert datas[-1] == "[DONE]" and datas.count("[DONE]") == 1
    chunks = [json.loads(d) for d in datas[:-1]]
    return chunks, "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)


@pytest.mark.parametrize("question", QUESTIONS)
def test_chat_stream_joins_to_the_plain_completion(shared, question):
    messages = [{"role": "user", "content": question}]
    chunks, content = chat_stream(shared, messages, model="my-model")
    plain = shared.post("/v1/chat/completions", json={"messages": messages, "model": "my-model"}).json()
    assert content == plain["choices"][0]["message"]["content"]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "my-model" for c in chunks)
    assert all(len(c["choices"]) == 1 and c["choices"][0]["index"] == 0 for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["choices"][0]["delta"] == {}
    assert last["citations"] == plain["citations"]
    assert last["confidence"] == plain["confidence"]
    assert all("citations" not in c and "confidence" not in c for c in chunks[:-1])
    if question != REFUSE_Q:
        assert len(chunks) >= 3 and last["citations"] and "[1]" in content


@pytest.mark.parametrize("question", [MATTIS_Q, "Who met Xu Qiliang in Beijing in 2018?", REFUSE_Q],
                         ids=["mattis", "who-met", "refusal"])
def test_chat_confidence_equals_the_ask_confidence(shared, question):
    """`confidence` sits beside `citations`: on the message and the response, and on the stream's last chunk."""
    ask = shared.post("/v1/ask", json={"question": question}).json()
    assert isinstance(ask["confidence"], float) and 0.0 <= ask["confidence"] <= 1.0
    messages = [{"role": "user", "content": question}]
    plain = shared.post("/v1/chat/completions", json={"messages": messages}).json()
    assert plain["confidence"] == ask["confidence"]
    assert plain["choices"][0]["message"]["confidence"] == ask["confidence"]
    chunks, content = chat_stream(shared, messages)
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and "citations" in last
    assert last["confidence"] == ask["confidence"]
    assert content == ask["answer"]
    if question == REFUSE_Q:  # a refusal is reported with its (low) confidence and its reason sentence
        assert not ask["answerable"] and content.startswith(REFUSAL) and content != REFUSAL
        assert last["citations"] == [] and plain["citations"] == []
    else:
        assert ask["answerable"] and last["citations"]


def test_chat_stream_echoes_the_default_model(shared):
    chunks, content = chat_stream(shared, [{"role": "user", "content": MATTIS_Q}])
    assert {c["model"] for c in chunks} == {"rag-cited"} and "Mattis" in content


FOLLOW_UP = [
    {"role": "user", "content": "Which US defense secretary met Xu Qiliang in Beijing?"},
    {"role": "assistant", "content": "Jim Mattis met Xu Qiliang in Beijing [1]."},
    {"role": "user", "content": "When did he meet him?"},
]


def test_follow_up_question_uses_the_previous_turn(shared):
    r = shared.post("/v1/chat/completions", json={"messages": FOLLOW_UP})
    assert r.status_code == 200
    content = r.json()["choices"][0]["message"]["content"]
    assert "Mattis" in content and "2018" in content
    chunks, streamed = chat_stream(shared, FOLLOW_UP)
    assert streamed == content and chunks[-1]["citations"] == r.json()["citations"]
    # the same as asking the standalone question that rag.conversation builds
    standalone = "Which US defense secretary met Xu Qiliang in Beijing? When did he meet him?"
    assert shared.post("/v1/ask", json={"question": standalone}).json()["answer"] == content
    # and not what the follow-up alone gives
    alone = shared.post("/v1/chat/completions", json={"messages": FOLLOW_UP[-1:]}).json()
    assert "2018" not in alone["choices"][0]["message"]["content"]


def test_a_question_that_stands_alone_ignores_the_history(shared):
    messages = [{"role": "user", "content": "What is the recipe for banana bread?"},
                {"role": "assistant", "content": "The sources do not answer this question."},
                {"role": "user", "content": MATTIS_Q}]
    content = shared.post("/v1/chat/completions", json={"messages": messages}).json()["choices"][0]["message"]
    assert content["content"] == shared.post("/v1/ask", json={"question": MATTIS_Q}).json()["answer"]


@pytest.mark.parametrize("stream", [False, True])
def test_conversation_ending_with_the_assistant_is_400(shared, stream):
    r = shared.post("/v1/chat/completions", json={"messages": FOLLOW_UP[:2], "stream": stream})
    assert not r.headers["content-type"].startswith("text/event-stream")
    error = assert_envelope(r, 400, "invalid_input")
    assert error["details"] == {"field": "messages"}
