"""``answer.mode="openai"`` end to end: the real ``openai`` client talks HTTP to
a local OpenAI-compatible server (``http.server`` in a thread) that plays
back scripted replies and records what it was sent. The stores are real
(embedded Chroma + SQLite in ``tmp_path``); the embedder is the hash one."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from kit import free_port
from rag.errors import UpstreamError, UpstreamTimeoutError
from rag.text import sentence_spans
from rag.types import REFUSAL

QUESTION = "Who proposed a phone call with the Chinese defense minister?"
MODEL = "scripted-model-7b"


@dataclass
class Reply:
    content: str | None = None
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] | None = None  # a whole JSON body, instead of content


class ScriptedChatServer:
    """POST /v1/chat/completions answers with the next scripted :class:`Reply`."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                request = json.loads(body)  # this request's own, whatever the next test scripts meanwhile
                with server.lock:
                    server.requests.append(request)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    reply = server.replies.popleft() if server.replies else Reply(
                        status=500, content="test did not script a reply")
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    payload = {"error": {"message": reply.content or "scripted failure", "type": "server_error",
                                         "code": None, "param": None}}
                else:
                    payload = reply.raw or completion(reply.content, model=request.get("model"))
                try:
                    if reply.status == 200 and request.get("stream"):
                        self._send_stream(reply.content or "")
                    else:
                        self._send(reply.status, payload, reply.headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def _send_stream(self, content: str) -> None:
                """The content as server-sent chunks of 5 characters, then [DONE]."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for i in range(0, len(content), 5):
                    chunk = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": MODEL,
                             "choices": [{"index": 0, "delta": {"content": content[i:i + 5]}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="scripted-chat", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply | str) -> None:
        with self.lock:
            self.replies.clear()
            self.replies.extend(r if isinstance(r, Reply) else Reply(content=r) for r in replies)
            self.requests.clear()
            self.headers.clear()

    def start(self) -> "ScriptedChatServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content: str | None, model: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or MODEL,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


@pytest.fixture(scope="module")
def chat_server():
    server = ScriptedChatServer().start()
    yield server
    server.stop()


@pytest.fixture
def openai_service(chat_server, make_settings, make_service, corpus_dir):
    def make(**llm: Any):
        settings = make_settings()
        settings.answer.mode = "openai"
        settings.llm.base_url = chat_server.base_url
        settings.llm.model = MODEL
        settings.llm.api_key = SecretStr("test")
        settings.llm.max_retries = 0
        settings.llm.timeout = 10.0
        settings.llm.output = "text"  # these tests script [n]-marked text over whole passages;
        settings.llm.evidence = "passages"  # JSON replies and sentence evidence have their own tests below
        settings.llm.fallback = False  # failures surface as errors here; the fallback has its own tests
        for key, value in llm.items():
            setattr(settings.llm, key, value)
        service = make_service(settings)
        report = service.ingest(corpus_dir)
        assert len(report.added) == 5
        return service

    chat_server.script()
    return make


def sentence_with(hit_text: str, needle: str) -> str:
    """The sentence of ``hit_text`` (as the project splits sentences) that contains ``needle``."""
    for start, end in sentence_spans(hit_text):
        if needle in hit_text[start:end]:
            return hit_text[start:end]
    raise AssertionError(f"{needle!r} not in passage: {hit_text!r}")


def passage_number(hits, needle: str) -> int:
    for n, hit in enumerate(hits, 1):
        if needle in hit.text:
            return n
    raise AssertionError(f"no retrieved passage contains {needle!r}")


def assert_quotes_exact(service, answer) -> None:
    for citation in answer.citations:
        document = service.docstore.document(citation.doc_id)
        assert document is not None
        assert citation.quote == document.text[citation.start:citation.end]
        assert citation.quote.strip()
        chunk = service.docstore.get_chunks([citation.chunk_id])[citation.chunk_id]
        assert chunk.start <= citation.start < citation.end <= chunk.end


AUSTIN = "Austin has proposed a phone call"


def austin_passage(service) -> tuple[list, int, str]:
    """The passages retrieved for QUESTION, the number of the one that says AUSTIN, and that sentence."""
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    n = passage_number(hits, AUSTIN)
    return hits, n, sentence_with(hits[n - 1].text, AUSTIN)


def test_copied_sentence_is_cited_with_exact_quote(openai_service, chat_server):
    service = openai_service()
    hits, n, sentence = austin_passage(service)
    chat_server.script(f"{sentence} [{n}]")

    answer = service.ask(QUESTION)

    assert answer.mode == "openai"
    assert answer.answerable
    assert answer.dropped_citations == 0
    assert len(answer.citations) == 1 and len(answer.sentences) == 1
    citation = answer.citations[0]
    assert citation.n == 1 and answer.sentences[0].citations == [1]
    assert citation.chunk_id == hits[n - 1].chunk_id
    assert citation.doc_id == hits[n - 1].doc_id
    assert AUSTIN in citation.quote
    assert_quotes_exact(service, answer)
    assert answer.answer.endswith("[1].")
    assert len(chat_server.requests) == 1


def test_paraphrased_sentence_is_cited_to_the_supporting_sentence(openai_service, chat_server):
    service = openai_service()
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    n = passage_number(hits, AUSTIN)
    chat_server.script(f"Defense Secretary Austin proposed a phone call with the Chinese defense minister [{n}].")

    answer = service.ask(QUESTION)

    assert answer.answerable
    assert [c.chunk_id for c in answer.citations] == [hits[n - 1].chunk_id]
    assert AUSTIN in answer.citations[0].quote
    # The quote is the supporting sentence, not the whole passage.
    assert len(answer.citations[0].quote) < len(hits[n - 1].text)
    assert_quotes_exact(service, answer)


def test_citations_are_renumbered_in_order_of_appearance(openai_service, chat_server):
    service = openai_service()
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    first = passage_number(hits, AUSTIN)
    other = next(n for n, h in enumerate(hits, 1) if h.doc_id != hits[first - 1].doc_id)
    spans = sentence_spans(hits[other - 1].text)
    longest = max((hits[other - 1].text[s:e] for s, e in spans), key=len)
    austin = sentence_with(hits[first - 1].text, AUSTIN)
    # The same claim twice (one quote, one citation), then a claim from another document.
    chat_server.script(f"{austin} [{first}] {austin} [{first}] {longest} [{other}]")

    answer = service.ask(QUESTION)

    assert answer.answerable and answer.dropped_citations == 0
    assert [c.n for c in answer.citations] == [1, 2]
    assert [c.chunk_id for c in answer.citations] == [hits[first - 1].chunk_id, hits[other - 1].chunk_id]
    assert [s.citations for s in answer.sentences] == [[1], [1], [2]]
    assert longest.rstrip(".") in answer.answer
    assert re.findall(r"\[(\d+)\]", answer.answer) == ["1", "1", "2"]
    assert_quotes_exact(service, answer)


def test_marker_beyond_the_passages_is_dropped(openai_service, chat_server):
    service = openai_service()
    hits, n, sentence = austin_passage(service)
    assert len(hits) < 9
    chat_server.script(f"{sentence} [{n}][9]")

    answer = service.ask(QUESTION)

    assert answer.answerable
    assert answer.dropped_citations == 1
    assert len(answer.citations) == 1
    assert answer.citations[0].chunk_id == hits[n - 1].chunk_id
    assert "[9]" not in answer.answer and "[2]" not in answer.answer
    assert_quotes_exact(service, answer)


def test_a_wrong_number_is_dropped_and_the_sentence_cited_to_the_passage_that_supports_it(openai_service,
                                                                                         chat_server):
    service = openai_service()
    hits, n, sentence = austin_passage(service)
    wrong = next(i for i in range(1, len(hits) + 1) if AUSTIN not in hits[i - 1].text)
    chat_server.script(f"{sentence} [{n}] China has not yet given a clear response [9]. "
                       f"{sentence} [{wrong}] The moon is made of green cheese [{n}].")

    answer = service.ask(QUESTION)

    assert answer.dropped_citations == 3  # [9], [wrong] and the cheese's [n]
    assert "[9]" not in answer.answer and "cheese" not in answer.answer
    assert len(answer.sentences) == 3  # renumbered to the passage that says it, never invented
    assert {c.chunk_id for c in answer.citations} == {hits[n - 1].chunk_id}
    assert_quotes_exact(service, answer)


def test_a_sentence_without_any_marker_is_never_given_one(openai_service, chat_server):
    service = openai_service()
    _, _, sentence = austin_passage(service)
    chat_server.script(sentence)

    answer = service.ask(QUESTION)

    assert not answer.answerable and answer.citations == []


def test_unsupported_sentence_is_removed(openai_service, chat_server):
    service = openai_service()
    _, n, sentence = austin_passage(service)
    chat_server.script(f"{sentence} [{n}] The moon is made of cheese [{n}].")

    answer = service.ask(QUESTION)

    assert answer.answerable
    assert "moon" not in answer.answer and "cheese" not in answer.answer
    assert [s.text for s in answer.sentences] == [sentence]
    assert answer.dropped_citations == 1
    assert len(answer.citations) == 1
    assert_quotes_exact(service, answer)


def test_all_unsupported_is_a_refusal(openai_service, chat_server):
    service = openai_service()
    chat_server.script("The moon is made of cheese [1]. Penguins secretly run the central bank [2].")

    answer = service.ask(QUESTION)

    assert not answer.answerable
    assert answer.answer.startswith(REFUSAL)
    assert answer.citations == [] and answer.sentences == []
    assert answer.dropped_citations == 2


@pytest.mark.parametrize("reply", [
    "The sources do not answer the question.",  # uncited text is not an answer
    "",
    None,
])
def test_uncited_or_empty_reply_is_a_refusal(openai_service, chat_server, reply):
    service = openai_service()
    chat_server.script(Reply(content=reply))

    answer = service.ask(QUESTION)

    assert not answer.answerable
    assert answer.answer.startswith(REFUSAL)
    assert answer.citations == []
    assert answer.dropped_citations == 0


def test_request_carries_numbered_passages_question_and_model(openai_service, chat_server):
    service = openai_service(temperature=0.3, max_tokens=77)
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    chat_server.script("The moon is made of cheese [1].")

    service.ask(QUESTION)

    assert len(chat_server.requests) == 1
    body = chat_server.requests[0]
    assert body["model"] == MODEL
    assert body["temperature"] == pytest.approx(0.3)
    assert body.get("max_tokens", body.get("max_completion_tokens")) == 77
    assert chat_server.headers[0]["authorization"] == "Bearer test"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]
    user = body["messages"][-1]["content"]
    assert QUESTION in user
    for n, hit in enumerate(hits, 1):
        assert f"[{n}] ({hit.title}) {hit.text}" in user
    assert f"[{len(hits) + 1}]" not in user
    assert user.index("[1]") < user.index(QUESTION)
    assert "[1]" in body["messages"][0]["content"]  # the system prompt asks for markers


def test_top_k_limits_the_passages_sent(openai_service, chat_server):
    service = openai_service()
    chat_server.script("Nothing [1].")

    service.ask(QUESTION, top_k=2)

    user = chat_server.requests[0]["messages"][-1]["content"]
    assert "[1] (" in user and "[2] (" in user and "[3] (" not in user


def test_mode_argument_switches_to_openai(openai_service, chat_server):
    service = openai_service()
    service.settings.answer.mode = "extractive"
    extractive = service.ask(QUESTION)
    assert extractive.mode == "extractive" and chat_server.requests == []

    chat_server.script("The moon is made of cheese [1].")
    answer = service.ask(QUESTION, mode="openai")
    assert answer.mode == "openai" and len(chat_server.requests) == 1


def test_http_500_raises_upstream_error(openai_service, chat_server):
    service = openai_service(max_retries=0)
    chat_server.script(*[Reply(status=500, content="boom") for _ in range(3)])

    with pytest.raises(UpstreamError) as info:
        service.ask(QUESTION)

    assert not isinstance(info.value, UpstreamTimeoutError)
    assert info.value.code == "upstream_error"
    assert info.value.details.get("status") == 500
    assert len(chat_server.requests) == 1  # max_retries=0: one try


def test_http_500_is_retried_max_retries_times(openai_service, chat_server):
    service = openai_service(max_retries=2)
    fast = {"retry-after-ms": "1"}
    chat_server.script(*[Reply(status=500, content="boom", headers=fast) for _ in range(5)])

    with pytest.raises(UpstreamError):
        service.ask(QUESTION)

    assert len(chat_server.requests) == 3


def test_retry_recovers_after_one_500(openai_service, chat_server):
    service = openai_service(max_retries=1)
    _, n, sentence = austin_passage(service)
    chat_server.script(Reply(status=503, headers={"retry-after-ms": "1"}), f"{sentence} [{n}]")

    answer = service.ask(QUESTION)

    assert answer.answerable and len(answer.citations) == 1
    assert len(chat_server.requests) == 2


def test_client_error_is_not_retried(openai_service, chat_server):
    service = openai_service(max_retries=2)
    chat_server.script(Reply(status=401, content="bad key"), "unused")

    with pytest.raises(UpstreamError) as info:
        service.ask(QUESTION)

    assert info.value.details.get("status") == 401
    assert len(chat_server.requests) == 1


def test_no_choices_raises_upstream_error(openai_service, chat_server):
    service = openai_service()
    body = completion("x")
    body["choices"] = []
    chat_server.script(Reply(raw=body))

    with pytest.raises(UpstreamError, match="no choices"):
        service.ask(QUESTION)


def test_slow_server_raises_upstream_timeout(openai_service, chat_server):
    service = openai_service(timeout=0.5, max_retries=0)
    chat_server.script(Reply(content="too late [1].", delay=2.0))

    started = time.perf_counter()
    with pytest.raises(UpstreamTimeoutError) as info:
        service.ask(QUESTION)
    elapsed = time.perf_counter() - started

    assert info.value.code == "upstream_timeout"
    assert isinstance(info.value, UpstreamError)
    assert elapsed < 1.9  # gave up at the timeout, did not wait for the reply


def test_unreachable_server_raises_upstream_error_or_falls_back(make_settings, make_service, corpus_dir):
    port = free_port()
    settings = make_settings()
    settings.answer.mode = "openai"
    settings.llm.base_url = f"http://127.0.0.1:{port}/v1"
    settings.llm.api_key = SecretStr("test")
    settings.llm.max_retries = 0
    settings.llm.timeout = 2.0
    settings.llm.fallback = False
    service = make_service(settings)
    service.ingest(corpus_dir)

    with pytest.raises(UpstreamError) as info:
        service.ask(QUESTION)
    assert not isinstance(info.value, UpstreamTimeoutError)

    settings.llm.fallback = True  # the default: the extractive answer, saying why
    answer = service.ask(QUESTION)
    extractive = service.ask(QUESTION, mode="extractive")
    assert answer.mode == "extractive" and answer.fallback and "unreachable" in answer.fallback
    assert "openai" in answer.fallback
    assert answer.answer == extractive.answer and answer.citations == extractive.citations
    assert extractive.fallback is None


def test_no_passages_means_no_request_and_a_refusal(openai_service, chat_server):
    service = openai_service()
    service.settings.retrieve.dense_weight = 0
    service.settings.retrieve.keyword_weight = 0
    assert service.pipeline.retriever.retrieve(QUESTION).hits == []
    chat_server.script("Austin proposed a call [1].")

    answer = service.ask(QUESTION)

    assert chat_server.requests == []
    assert not answer.answerable and answer.answer.startswith(REFUSAL)


def test_same_quote_from_overlapping_chunks_is_one_citation(openai_service, chat_server):
    service = openai_service()
    hits = service.pipeline.retriever.retrieve(QUESTION).hits
    pair = next(((i, j) for i, a in enumerate(hits, 1) for j, b in enumerate(hits, 1)
                 if i < j and a.doc_id == b.doc_id and a.start < b.end and b.start < a.end), None)
    if pair is None:
        pytest.skip("no two retrieved chunks overlap for this question")
    i, j = pair
    a, b = hits[i - 1], hits[j - 1]
    text = service.docstore.document(a.doc_id).text
    shared = text[max(a.start, b.start):min(a.end, b.end)]
    sentence = max((shared[s:e] for s, e in sentence_spans(shared)), key=len)
    chat_server.script(f"{sentence} [{i}][{j}]")

    answer = service.ask(QUESTION)

    assert answer.answerable
    assert_quotes_exact(service, answer)
    quotes = [(c.doc_id, c.start, c.end) for c in answer.citations]
    assert len(quotes) == len(set(quotes)), answer.citations


# ---- JSON replies over sentence evidence (the defaults) ------------------------------------------


def evidence_for(service, question: str):
    """What the chat model is shown for ``question``: the numbered evidence windows."""
    retrieval = service.pipeline.retriever.retrieve(question)
    assessment = service.pipeline.assessor.assess(question, retrieval)
    return service.pipeline.answerer("openai").evidence(retrieval, assessment), retrieval.hits


def json_reply(*sentences: tuple[str, list[int]], answerable: bool = True) -> str:
    return json.dumps({"answerable": answerable,
                       "sentences": [{"text": t, "sources": n} for t, n in sentences]})


@pytest.fixture
def json_service(openai_service):
    return lambda **llm: openai_service(**{"output": "json", "evidence": "sentences", **llm})


def test_json_reply_over_sentence_evidence_is_cited_exactly(json_service, chat_server):
    service = json_service(evidence_sentences=3)
    evidence, passages = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    chat_server.script(json_reply((sentence_with(evidence[n - 1].text, AUSTIN), [n])))

    answer = service.ask(QUESTION)

    assert answer.answerable and answer.mode == "openai" and answer.dropped_citations == 0
    assert len(answer.citations) == 1 and AUSTIN in answer.citations[0].quote
    assert_quotes_exact(service, answer)
    body = chat_server.requests[0]
    schema = body["response_format"]["json_schema"]["schema"]
    assert body["response_format"]["type"] == "json_schema"
    numbers = schema["properties"]["sentences"]["items"]["properties"]["sources"]["items"]["enum"]
    assert numbers == list(range(1, len(evidence) + 1))
    user = body["messages"][-1]["content"]
    for i, window in enumerate(evidence, 1):
        assert f"[{i}] ({window.title}) {window.text}" in user
    # the model reads sentences, not whole passages: a shorter prompt
    assert len(user) < sum(len(h.text) for h in passages)
    assert '"answerable"' in body["messages"][0]["content"]


def test_evidence_windows_are_exact_cuts_of_retrieved_passages(json_service):
    service = json_service(evidence_sentences=4)
    evidence, passages = evidence_for(service, QUESTION)
    by_chunk = {h.chunk_id: h for h in passages}
    assert 1 <= len(evidence) <= 4
    for window in evidence:
        passage = by_chunk[window.chunk_id]
        assert passage.start <= window.start < window.end <= passage.end
        assert window.text == passage.text[window.start - passage.start:window.end - passage.start]
    # sentences with their neighbours, not whole passages (a short passage may be one window)
    assert any(len(w.text) < len(by_chunk[w.chunk_id].text) for w in evidence)


def test_json_not_answerable_is_a_refusal_even_with_sentences(json_service, chat_server):
    service = json_service()
    evidence, _ = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    chat_server.script(json_reply((sentence_with(evidence[n - 1].text, AUSTIN), [n]), answerable=False))

    answer = service.ask(QUESTION)

    assert not answer.answerable and answer.citations == [] and answer.answer.startswith(REFUSAL)


@pytest.mark.parametrize("reply", ['{"answerable": true, "sentences": [{"text": "Austin propo',
                                   '{"answerable": true, "sentences": "Austin [1]"}', "Austin proposed it."])
def test_malformed_json_is_read_as_text_and_nothing_unverified_survives(json_service, chat_server, reply):
    service = json_service()
    chat_server.script(reply)

    answer = service.ask(QUESTION)

    assert not answer.answerable and answer.citations == []


def test_json_sentence_citing_a_number_beyond_the_evidence_is_dropped(json_service, chat_server):
    service = json_service(evidence_sentences=2)
    evidence, _ = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    sentence = sentence_with(evidence[n - 1].text, AUSTIN)
    chat_server.script(json_reply((sentence, [n, len(evidence) + 5])))

    answer = service.ask(QUESTION)

    assert answer.answerable and answer.dropped_citations == 1 and len(answer.citations) == 1


def test_auto_output_falls_back_to_text_when_the_schema_is_rejected(json_service, chat_server):
    service = json_service(output="auto")
    evidence, _ = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    sentence = sentence_with(evidence[n - 1].text, AUSTIN)
    chat_server.script(Reply(status=400, content="response_format json_schema is not supported"),
                       f"{sentence} [{n}]", f"{sentence} [{n}]")

    first = service.ask(QUESTION)
    second = service.ask(QUESTION)

    assert first.answerable and second.answerable
    assert "response_format" in chat_server.requests[0]
    assert "response_format" not in chat_server.requests[1]  # asked again as text
    assert "response_format" not in chat_server.requests[2]  # and text from then on
    assert '"answerable"' not in chat_server.requests[1]["messages"][0]["content"]


def test_a_failing_chat_model_falls_back_to_the_extractive_answer(json_service, chat_server):
    service = json_service(fallback=True)
    chat_server.script(Reply(status=500, content="model crashed"))

    answer = service.ask(QUESTION)

    assert answer.mode == "extractive" and answer.answerable
    assert "500" in answer.fallback and "openai" in answer.fallback
    assert answer.answer == service.ask(QUESTION, mode="extractive").answer


def test_a_slow_chat_model_falls_back_at_the_timeout(json_service, chat_server):
    service = json_service(fallback=True, timeout=0.5)
    chat_server.script(Reply(content=json_reply(("late", [1])), delay=3))

    started = time.perf_counter()
    answer = service.ask(QUESTION)

    assert time.perf_counter() - started < 2.5
    assert answer.mode == "extractive" and "timed out" in answer.fallback


def test_a_streamed_json_answer_shows_its_words_with_passage_numbers(json_service, chat_server):
    from rag.pipeline import AnswerEvent, DeltaEvent, SourcesEvent

    service = json_service()
    evidence, passages = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    sentence = sentence_with(evidence[n - 1].text, AUSTIN)
    chat_server.script(json_reply((sentence, [n])))

    events = list(service.pipeline.ask_stream(QUESTION))

    assert isinstance(events[0], SourcesEvent) and isinstance(events[-1], AnswerEvent)
    deltas = [e.text for e in events if isinstance(e, DeltaEvent)]
    passage = next(i for i, h in enumerate(passages, 1) if h.chunk_id == evidence[n - 1].chunk_id)
    assert len(deltas) > 3  # word by word, not one lump
    assert "".join(deltas) == f"{sentence} [{passage}]"  # the sources event's number, not the evidence's
    answer = events[-1].answer
    assert answer.answerable and AUSTIN in answer.citations[0].quote
    assert chat_server.requests[0]["stream"] is True


def test_a_stream_whose_schema_is_rejected_continues_as_text(json_service, chat_server):
    from rag.pipeline import AnswerEvent, DeltaEvent

    service = json_service(output="auto")
    evidence, _ = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    sentence = sentence_with(evidence[n - 1].text, AUSTIN)
    chat_server.script(Reply(status=400, content="json_schema not supported"), f"{sentence} [{n}]")

    events = list(service.pipeline.ask_stream(QUESTION))

    assert sentence in "".join(e.text for e in events if isinstance(e, DeltaEvent))
    assert events[-1].answer.answerable and isinstance(events[-1], AnswerEvent)
    assert "response_format" not in chat_server.requests[1]


def test_chat_completions_stream_the_draft_as_reasoning_then_the_verified_answer(json_service, chat_server):
    from fastapi.testclient import TestClient
    from openai import OpenAI

    from api.app import create_app

    service = json_service()
    evidence, _ = evidence_for(service, QUESTION)
    n = passage_number(evidence, AUSTIN)
    sentence = sentence_with(evidence[n - 1].text, AUSTIN)
    chat_server.script(json_reply((sentence, [n]), ("The moon is made of green cheese.", [n])))

    with TestClient(create_app(service.settings, service=service)) as http:
        client = OpenAI(base_url=f"{http.base_url}/v1", api_key="unused", http_client=http, max_retries=0)
        chunks = list(client.chat.completions.create(model="rag", stream=True,
                                                     messages=[{"role": "user", "content": QUESTION}]))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "green cheese" in reasoning and sentence in reasoning  # the draft, live
    assert "cheese" not in content and sentence[:-1] in content  # the verified answer only
    first_content = next(i for i, c in enumerate(chunks) if c.choices[0].delta.content)
    last_reasoning = max(i for i, c in enumerate(chunks) if (c.choices[0].delta.model_extra or {}).get("reasoning_content"))
    assert last_reasoning < first_content
    assert chunks[-1].model_extra["citations"] and chunks[-1].model_extra["fallback"] is None
