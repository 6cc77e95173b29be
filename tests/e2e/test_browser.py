"""The web chat UI in a real browser (Debian's Chromium driven by Playwright) against the real server.

Each key configuration gets one ``rag serve`` subprocess (real embedding model, bundled corpus ingested on
start). Screenshots land in ``test-artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from kit import clean_env, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
READY_TIMEOUT_S = 120
ANSWER_TIMEOUT_MS = 60_000

# Questions far from the refusal threshold (about 0.07 with the real model), so retrieval tuning does not flip them.
ANSWERED = "Who met Xu Qiliang in Beijing in 2018?"
UNANSWERABLE = "What is the recipe for banana bread with walnuts?"
REFUSAL = "The sources do not answer this question."
CONFIDENCE_TEXT = re.compile(r"^confidence ([01]\.\d\d)$")  # "< 0.01" below that
API_KEY = "secret-key"

# Astral characters (emoji, math letters) before the cited sentence: the server counts code points, the
# browser UTF-16 units, so a naive highlight would land 8 units early.
ZEPHYR = ("🚀🚀 Zephyr mission log 😀🛰️\n\n𝒵 Notes 🧪🧪🧪 from the launch team.\n\n"
          "The Zephyr probe reached orbit on 12 March after a nine-day delay caused by faulty fuel pumps. 🎉 "
          "Engineers replaced both pumps before the second launch attempt.\n")


# ---- fixtures ------------------------------------------------------------------------------------------------


def _require_browser():
    if CHROMIUM.exists():
        try:
            import playwright.sync_api  # noqa: F401
            return
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[test]')"
    else:
        reason = f"{CHROMIUM} is missing (scripts/setup-browser.sh installs Debian's chromium)"
    if os.environ.get("CI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (CI_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"browser tests need Chromium: {reason}")


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    api_key: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _start_server(folder: Path, api_key: str | None = None, **settings: str) -> Server:
    env = clean_env(RAG_DATA_DIR=str(folder / "data"), **settings)
    if api_key:
        env["RAG_API_KEY"] = api_key
    port = free_port()
    log = folder / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log, api_key)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before it was ready:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    _stop(process)
    pytest.fail(f"the server was not ready within {READY_TIMEOUT_S} s:\n{server.log_tail()}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly (closes the stores)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory, request):
    srv = _start_server(tmp_path_factory.mktemp("ui-server"))
    request.addfinalizer(lambda: _stop(srv.process))
    return srv


@pytest.fixture(scope="module")
def keyed_server(browser, tmp_path_factory, request):
    srv = _start_server(tmp_path_factory.mktemp("ui-server-key"), api_key=API_KEY)
    request.addfinalizer(lambda: _stop(srv.process))
    return srv


@pytest.fixture(scope="module")
def model_down_server(browser, tmp_path_factory, request):
    """Written answers from a chat model that is not there: every answer falls back to the extractive one."""
    srv = _start_server(tmp_path_factory.mktemp("ui-server-model-down"), RAG_ANSWER_MODE="openai",
                        RAG_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1", RAG_LLM_MAX_RETRIES="0")
    request.addfinalizer(lambda: _stop(srv.process))
    return srv


@pytest.fixture(scope="module")
def jobs_server(browser, tmp_path_factory, request):
    """Every upload over 1 kB is a background job."""
    srv = _start_server(tmp_path_factory.mktemp("ui-server-jobs"), RAG_API_JOB_THRESHOLD_BYTES="1000")
    request.addfinalizer(lambda: _stop(srv.process))
    return srv


@pytest.fixture()
def page(browser, request):
    """A fresh browser context (own localStorage) per test; `page.errors` collects uncaught page errors."""
    viewport = getattr(request, "param", None) or {"width": 1366, "height": 860}
    context = browser.new_context(viewport=viewport)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.errors = []
    pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
    yield pg
    context.close()


# ---- helpers -------------------------------------------------------------------------------------------------


def _ask(page, question: str):
    """Type a question, press Enter, and return the new assistant message (not yet final)."""
    from playwright.sync_api import expect

    messages = page.get_by_test_id("message-assistant")
    before = messages.count()
    box = page.get_by_test_id("question-input")
    box.fill(question)
    box.press("Enter")
    expect(messages).to_have_count(before + 1)
    return messages.nth(before)


def _record_states(page) -> None:
    """Record every data-state an assistant message passes through (streaming is too fast to poll)."""
    page.evaluate("""() => {
        window.__states = [];
        new MutationObserver((records) => {
            for (const r of records) {
                const node = r.target;
                if (node.dataset && node.dataset.testid === 'message-assistant') window.__states.push(node.dataset.state);
                for (const added of r.addedNodes || []) {
                    if (added.dataset && added.dataset.testid === 'message-assistant') window.__states.push(added.dataset.state);
                }
            }
        }).observe(document.querySelector('[data-testid=thread]'),
                   {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
    }""")


def _final(message):
    from playwright.sync_api import expect

    expect(message).to_have_attribute("data-state", "final", timeout=ANSWER_TIMEOUT_MS)
    return message


def _open_chip_and_check(page, message, citation: dict) -> None:
    """Click chip n and check the source panel highlights exactly the citation's quote, in view."""
    from playwright.sync_api import expect

    message.locator(f"[data-testid=citation-chip][data-n='{citation['n']}']").first.click()
    panel = page.get_by_test_id("source-panel")
    expect(panel).to_be_visible()
    highlight = panel.get_by_test_id("highlight")
    expect(highlight).to_have_count(1)
    assert highlight.evaluate("node => node.textContent") == citation["quote"]
    expect(highlight).to_be_in_viewport()


# ---- tests ---------------------------------------------------------------------------------------------------


def test_streamed_answer_and_citation_chip_highlight_the_quoted_passage(server, page):
    from playwright.sync_api import expect

    expected = httpx.post(f"{server.url}/v1/ask", json={"question": ANSWERED}, timeout=60).json()
    assert expected["answerable"] and expected["citations"]

    page.goto(server.url)
    expect(page.get_by_test_id("documents-panel").get_by_test_id("document")).to_have_count(5)
    _record_states(page)
    message = _final(_ask(page, ANSWERED))

    states = page.evaluate("window.__states")
    assert "streaming" in states and states[-1] == "final", states  # the draft was shown before the answer
    chips = message.get_by_test_id("citation-chip")
    expect(chips).to_have_count(sum(len(s["citations"]) for s in expected["sentences"]))
    assert {int(n) for n in chips.evaluate_all("cs => cs.map(c => c.dataset.n)")} == \
        {c["n"] for c in expected["citations"]}
    for sentence in expected["sentences"]:
        expect(message).to_contain_text(sentence["text"][:60])
    sources = message.get_by_test_id("sources-list").locator("li")
    expect(sources).to_have_count(len(expected["citations"]))
    expect(sources.first).to_contain_text(expected["citations"][0]["doc_id"])

    first = next(c for c in expected["citations"] if c["n"] == int(chips.first.get_attribute("data-n")))
    _open_chip_and_check(page, message, first)
    page.screenshot(path=str(ARTIFACTS / "browser-answer.png"))

    last = expected["citations"][-1]  # another document or another place: the panel follows
    _open_chip_and_check(page, message, last)
    page.get_by_test_id("source-close").click()
    expect(page.get_by_test_id("source-panel")).to_be_hidden()
    assert page.errors == []


@pytest.mark.parametrize("page", [{"width": 375, "height": 740}], indirect=True)
def test_mobile_refusal_has_no_chips_and_source_panel_is_full_screen(server, page):
    from playwright.sync_api import expect

    page.goto(server.url)
    expected = httpx.post(f"{server.url}/v1/ask", json={"question": UNANSWERABLE}, timeout=60).json()
    assert not expected["answerable"] and expected["answer"].startswith(f"{REFUSAL} The documents")
    message = _final(_ask(page, UNANSWERABLE))
    refusal = message.get_by_test_id("refusal")
    text = refusal.text_content()
    assert text.startswith(REFUSAL) and "The documents" in text, text  # the reason sentence is shown
    assert text == expected["answer"]  # the whole refusal, unchanged
    expect(refusal.locator(".refusal-reason")).to_be_visible()
    expect(refusal.locator(".refusal-reason")).to_contain_text("The documents")
    indicator = message.get_by_test_id("confidence")  # a refusal reports its (low) confidence too
    expect(indicator).to_be_visible()
    assert float(indicator.get_attribute("data-value")) == expected["confidence"]
    assert re.match(r"^confidence (< 0\.01|0\.\d\d)$", " ".join(indicator.text_content().split()))
    box = indicator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    expect(message.get_by_test_id("citation-chip")).to_have_count(0)
    expect(message.get_by_test_id("sources-list")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing sticks out sideways
    expect(page.get_by_test_id("send")).to_be_in_viewport()
    page.screenshot(path=str(ARTIFACTS / "browser-mobile-refusal.png"))

    answer = _final(_ask(page, ANSWERED))
    answer.get_by_test_id("citation-chip").first.click()
    panel = page.get_by_test_id("source-panel")
    expect(panel.get_by_test_id("highlight")).to_be_in_viewport()
    box = panel.bounding_box()
    assert box is not None and box["x"] == 0 and box["y"] == 0 and box["width"] == 375 and box["height"] == 740
    page.screenshot(path=str(ARTIFACTS / "browser-mobile-source.png"))
    panel.get_by_test_id("source-close").click()
    expect(panel).to_be_hidden()
    expect(answer).to_be_visible()
    assert page.errors == []


def test_answer_shows_a_quiet_confidence_indicator_matching_the_api(server, page):
    from playwright.sync_api import expect

    expected = httpx.post(f"{server.url}/v1/ask", json={"question": ANSWERED}, timeout=60).json()
    assert expected["answerable"] and isinstance(expected["confidence"], float)
    assert 0.0 < expected["confidence"] <= 1.0

    page.goto(server.url)
    message = _final(_ask(page, ANSWERED))
    indicator = message.get_by_test_id("confidence")
    expect(indicator).to_have_count(1)
    expect(indicator).to_be_visible()
    text = " ".join(indicator.text_content().split())
    match = CONFIDENCE_TEXT.match(text)
    assert match, text
    shown = float(match.group(1))  # two decimals of the API's number
    assert 0.0 <= shown <= 1.0 and abs(shown - expected["confidence"]) <= 0.005 + 1e-9, (shown, expected)
    assert float(indicator.get_attribute("data-value")) == expected["confidence"]
    assert "probability" in indicator.get_attribute("title")
    # the bar's fill is the same share of the bar
    fill = indicator.evaluate("""node => {
        const bar = node.querySelector('.confidence-bar'), fill = node.querySelector('.confidence-fill');
        return bar ? fill.getBoundingClientRect().width / bar.getBoundingClientRect().width : null;
    }""")
    assert fill is not None and abs(fill - expected["confidence"]) < 0.05, fill
    # quiet: small, in the muted meta colour, smaller than the answer's text
    style = indicator.evaluate("""node => {
        const s = getComputedStyle(node), answer = getComputedStyle(node.closest('article').querySelector('.answer-text'));
        const meta = getComputedStyle(node.closest('.meta'));
        return {size: parseFloat(s.fontSize), answerSize: parseFloat(answer.fontSize), color: s.color,
                metaColor: meta.color, weight: s.fontWeight};
    }""")
    assert style["size"] < style["answerSize"] and style["size"] <= 13, style
    assert style["color"] == style["metaColor"] and int(style["weight"]) < 600, style
    message.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "browser-confidence.png"))
    message.screenshot(path=str(ARTIFACTS / "browser-confidence-message.png"))
    assert page.errors == []


def test_a_failed_chat_model_shows_the_extractive_answer_and_why(model_down_server, page):
    from playwright.sync_api import expect

    expected = httpx.post(f"{model_down_server.url}/v1/ask", json={"question": ANSWERED}, timeout=60).json()
    assert expected["mode"] == "extractive" and "unreachable" in expected["fallback"]

    page.goto(model_down_server.url)
    message = _final(_ask(page, ANSWERED))
    fallback = message.get_by_test_id("fallback")
    expect(fallback).to_have_count(1)
    expect(fallback).to_be_visible()
    assert "answered extractively" in fallback.text_content() and "unreachable" in fallback.text_content()
    assert message.locator(".answer-text").text_content().startswith(expected["answer"].split(" [")[0][:40])
    expect(message.locator("[data-testid=citation-chip]").first).to_be_visible()
    message.screenshot(path=str(ARTIFACTS / "browser-fallback-message.png"))
    assert page.errors == []


def test_upload_astral_text_highlights_exactly_then_delete(server, page, tmp_path):
    from playwright.sync_api import expect

    upload = tmp_path / "zephyr-log.txt"
    upload.write_text(ZEPHYR, encoding="utf-8")
    page.goto(server.url)
    docs = page.get_by_test_id("documents-panel")
    expect(docs.get_by_test_id("document")).to_have_count(5)
    page.get_by_test_id("upload-input").set_input_files(str(upload))
    expect(docs.get_by_test_id("upload-result")).to_have_attribute("data-status", "added", timeout=30_000)
    expect(docs.get_by_test_id("document")).to_have_count(6)

    question = "Why was the launch of the Zephyr probe delayed?"
    expected = httpx.post(f"{server.url}/v1/ask", json={"question": question}, timeout=60).json()
    citation = next(c for c in expected["citations"] if c["doc_id"] == "zephyr-log.txt")
    assert ZEPHYR[citation["start"]:citation["end"]] == citation["quote"]  # code points on the server
    message = _final(_ask(page, question))
    _open_chip_and_check(page, message, citation)

    delete = docs.locator("[data-testid=document][data-doc-id='zephyr-log.txt'] [data-testid=delete-document]")
    delete.click()
    expect(delete).to_have_text("Confirm")  # the first click only arms it
    delete.click()
    expect(docs.get_by_test_id("document")).to_have_count(5)
    expect(page.get_by_test_id("source-panel")).to_be_hidden()  # it showed the deleted document
    assert httpx.get(f"{server.url}/v1/documents/zephyr-log.txt").status_code == 404
    assert page.errors == []


def test_a_big_upload_shows_its_progress_bar_then_its_outcome(jobs_server, page, tmp_path):
    from playwright.sync_api import expect

    upload = tmp_path / "harbour-ledger.txt"
    upload.write_text("\n".join(f"Ledger line {i}: the barge Tessaly-{i} brought {i % 89} bales of wool to "
                                f"quay {i % 13} of Orrin Harbour." for i in range(1500)), encoding="utf-8")
    page.goto(jobs_server.url)
    docs = page.get_by_test_id("documents-panel")
    expect(docs.get_by_test_id("document")).to_have_count(5)
    page.get_by_test_id("upload-input").set_input_files(str(upload))
    bar = docs.get_by_test_id("upload-progress")
    expect(bar).to_be_visible()
    page.wait_for_function("() => Number(document.querySelector('[data-testid=upload-progress]')?.value) > 0",
                           timeout=60_000)  # it moves as chunks are embedded
    expect(bar).to_have_attribute("aria-label", re.compile(r"harbour-ledger\.txt: \d+ of \d+ chunks embedded"))
    result = docs.get_by_test_id("upload-result")
    expect(result).to_have_attribute("data-status", "added", timeout=180_000)
    expect(result).to_contain_text("chunks")
    expect(bar).to_have_count(0)
    expect(docs.get_by_test_id("document")).to_have_count(6)
    jobs = httpx.get(f"{jobs_server.url}/v1/jobs", timeout=10).json()["jobs"]
    assert jobs[0]["state"] == "done" and jobs[0]["files"][0]["doc_id"] == "harbour-ledger.txt"
    assert page.errors == []


def test_api_key_is_asked_for_remembered_and_errors_show_a_banner(keyed_server, page):
    from playwright.sync_api import expect

    assert httpx.get(f"{keyed_server.url}/v1/documents").status_code == 401
    page.goto(keyed_server.url)
    dialog = page.get_by_test_id("api-key-dialog")
    expect(dialog).to_be_visible()  # the documents list asked first
    page.get_by_test_id("api-key-input").fill("wrong-key")
    page.get_by_test_id("api-key-submit").click()
    expect(dialog).to_be_visible()  # 401 again: asked again
    expect(dialog).to_contain_text("not accepted")
    page.get_by_test_id("api-key-input").fill(API_KEY)
    page.get_by_test_id("api-key-submit").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("documents-panel").get_by_test_id("document")).to_have_count(5)

    message = _final(_ask(page, ANSWERED))
    expect(message.get_by_test_id("citation-chip").first).to_be_visible()
    message.get_by_test_id("citation-chip").first.click()  # GET /v1/documents/{id} carries the key too
    expect(page.get_by_test_id("highlight")).to_be_in_viewport()
    expect(page.get_by_test_id("error-banner")).to_be_hidden()

    # A bad request: the server answers 400 before streaming; the banner shows its message.
    failed = _ask(page, "x" * 3000)
    expect(failed).to_have_attribute("data-state", "error")
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("3000 characters long; the limit is 2000")
    page.screenshot(path=str(ARTIFACTS / "browser-error-banner.png"))

    # The key is remembered: a reload does not ask again.
    assert page.evaluate("Object.values(localStorage)") == [API_KEY]
    page.reload()
    expect(page.get_by_test_id("documents-panel").get_by_test_id("document")).to_have_count(5)
    expect(dialog).to_be_hidden()

    # A key that stops working (rotated) is asked for again on the next request.
    page.evaluate("k => localStorage.setItem(Object.keys(localStorage)[0], k)", "rotated-away")
    _ask(page, ANSWERED)
    expect(dialog).to_be_visible()
    page.get_by_test_id("api-key-input").fill(API_KEY)
    page.get_by_test_id("api-key-submit").click()
    expect(page.get_by_test_id("message-assistant").last).to_have_attribute("data-state", "final",
                                                                           timeout=ANSWER_TIMEOUT_MS)
    assert page.errors == []


def test_network_failure_shows_the_banner(server, page):
    from playwright.sync_api import expect

    page.goto(server.url)
    expect(page.get_by_test_id("documents-panel").get_by_test_id("document")).to_have_count(5)
    page.route("**/v1/ask/stream", lambda route: route.abort("connectionrefused"))
    failed = _ask(page, ANSWERED)
    expect(failed).to_have_attribute("data-state", "error")
    expect(page.get_by_test_id("error-banner")).to_contain_text("Could not reach the server")

    # A failure after streaming began arrives as an `error` event.
    page.unroute("**/v1/ask/stream")
    body = ('event: sources\ndata: {"passages": []}\n\n'
            'event: error\ndata: {"error": {"code": "upstream_error", "message": "the chat model timed out", '
            '"details": {}}}\n\n')
    page.route("**/v1/ask/stream", lambda route: route.fulfill(status=200, content_type="text/event-stream",
                                                               body=body))
    failed = _ask(page, ANSWERED)
    expect(failed).to_have_attribute("data-state", "error")
    expect(page.get_by_test_id("error-banner")).to_contain_text("the chat model timed out")
    assert page.errors == []


def test_event_stream_parser_handles_crlf_comments_multiline_data_and_split_bytes(server, page):
    page.goto(server.url)
    events = page.evaluate(r"""async () => {
        const { readEvents } = await import('/static/api.js');
        const text = 'event: sources\r\ndata: {"passages": []}\r\n\r\n: keep-alive\n\n' +
                     'event: delta\ndata: {"text":\ndata: "a😀【b】"}\n\nevent: done\ndata: {}\n\n';
        const bytes = new TextEncoder().encode(text);
        const stream = new ReadableStream({ start(c) {
            for (let i = 0; i < bytes.length; i += 3) c.enqueue(bytes.slice(i, i + 3));  // splits \r\n and 😀
            c.close();
        } });
        const out = [];
        for await (const e of readEvents(stream)) out.push(e);
        return out;
    }""")
    assert events == [{"event": "sources", "data": {"passages": []}},
                      {"event": "delta", "data": {"text": "a😀【b】"}},
                      {"event": "done", "data": {}}]
