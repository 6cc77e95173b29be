// The chat page: ask, stream the draft, show the verified answer with citation
// chips, open a cited passage highlighted in its document.

import { api, askStream, setKeyPrompt } from "./api.js";
import { initDocuments } from "./documents.js";
import { appendMarkedText, codePointRange, confidenceIndicator, el, refusalText, sourcesList } from "./render.js";

const $ = (selector) => document.querySelector(selector);

const thread = $(".thread");
const form = $(".composer");
const input = $("[data-testid=question-input]");
const sendButton = $("[data-testid=send]");
const banner = $("[data-testid=error-banner]");
const layout = $(".layout");
const sourcePanel = $("[data-testid=source-panel]");
const sourceBody = sourcePanel.querySelector(".source-body");
const sourceTitle = sourcePanel.querySelector(".source-title");
const sourceMeta = sourcePanel.querySelector(".source-meta");
const sourceNote = sourcePanel.querySelector(".source-note");
const docsPanel = $("[data-testid=documents-panel]");
const docsToggle = $("[data-testid=documents-toggle]");
const scrim = $(".scrim");
const keyDialog = $("[data-testid=api-key-dialog]");

// ---- error banner --------------------------------------------------------------

function showError(err, context) {
  if (err && err.name === "AbortError") return;
  const message = (err && err.message) || String(err);
  const status = err && err.status ? ` (HTTP ${err.status}${err.code ? `, ${err.code}` : ""})` : "";
  banner.querySelector(".error-text").replaceChildren(
    context ? el("strong", {}, `${context}: `) : "", message, el("span", { class: "error-code" }, status));
  banner.hidden = false;
}

function clearError() {
  banner.hidden = true;
}

banner.querySelector(".error-close").addEventListener("click", clearError);

// ---- API key dialog ------------------------------------------------------------

setKeyPrompt((reason) => new Promise((resolve) => {
  const field = keyDialog.querySelector("input");
  keyDialog.querySelector(".key-reason").textContent = reason;
  field.value = "";
  keyDialog.returnValue = "";
  keyDialog.addEventListener("close", () => {
    resolve(keyDialog.returnValue === "ok" && field.value.trim() ? field.value.trim() : null);
  }, { once: true });
  keyDialog.showModal();
  field.focus();
}));

// ---- source panel --------------------------------------------------------------

const documentCache = new Map(); // doc_id → Promise of the document
let openRequest = 0;
let openedFrom = null;

function loadDocument(docId) {
  if (!documentCache.has(docId)) {
    const pending = api.document(docId);
    pending.catch(() => documentCache.delete(docId));
    documentCache.set(docId, pending);
  }
  return documentCache.get(docId);
}

/** Show the whole document of `source` with [start, end) highlighted. */
async function openSource(source, trigger) {
  const request = ++openRequest;
  openedFrom = trigger || null;
  document.querySelectorAll(".chip.active, .source-row.active").forEach((n) => n.classList.remove("active"));
  if (trigger) trigger.classList.add("active");
  sourcePanel.hidden = false;
  layout.classList.add("has-source");
  sourcePanel.dataset.docId = source.doc_id;
  sourcePanel.dataset.state = "loading";
  sourceTitle.textContent = source.title || source.doc_id;
  sourceMeta.replaceChildren(el("code", {}, source.doc_id),
    ` · [${source.n}] characters ${source.start}–${source.end}`);
  sourceNote.hidden = true;
  sourceBody.replaceChildren(el("p", { class: "muted" }, "Loading the document…"));
  let doc;
  try {
    doc = await loadDocument(source.doc_id);
  } catch (err) {
    if (request !== openRequest) return;
    sourcePanel.dataset.state = "error";
    sourceBody.replaceChildren(el("p", { class: "muted" }, `Could not load ${source.doc_id}.`));
    showError(err, "Opening the source failed");
    return;
  }
  if (request !== openRequest) return;
  const text = doc.text || "";
  const [from, to] = codePointRange(text, source.start, source.end);
  const mark = el("mark", {
    dataset: { testid: "highlight", n: String(source.n) },
    tabindex: "-1",
  }, text.slice(from, to));
  sourceBody.replaceChildren(text.slice(0, from), mark, text.slice(to));
  if (doc.title) sourceTitle.textContent = doc.title;
  if (source.quote && text.slice(from, to) !== source.quote) {
    sourceNote.textContent = "This document has changed since the answer was given; the highlight may be off.";
    sourceNote.hidden = false;
  }
  sourcePanel.dataset.state = "ready";
  mark.scrollIntoView({ block: "center", inline: "nearest" });
  mark.focus({ preventScroll: true });
}

function closeSource() {
  if (sourcePanel.hidden) return;
  openRequest += 1;
  sourcePanel.hidden = true;
  layout.classList.remove("has-source");
  document.querySelectorAll(".chip.active, .source-row.active").forEach((n) => n.classList.remove("active"));
  if (openedFrom && openedFrom.isConnected) openedFrom.focus();
  openedFrom = null;
}

sourcePanel.querySelector(".source-close").addEventListener("click", closeSource);

// ---- documents panel (a drawer on narrow screens) -----------------------------

const documents = initDocuments({
  panel: docsPanel,
  showError,
  onChanged(docIds) {
    for (const id of docIds) documentCache.delete(id);
    if (docIds.includes(sourcePanel.dataset.docId)) closeSource();
  },
});

function setDrawer(open) {
  docsPanel.classList.toggle("open", open);
  docsToggle.setAttribute("aria-expanded", String(open));
  scrim.hidden = !open;
  if (open) docsPanel.querySelector("button, input")?.focus();
}

docsToggle.addEventListener("click", () => setDrawer(!docsPanel.classList.contains("open")));
docsPanel.querySelector(".docs-close").addEventListener("click", () => setDrawer(false));
scrim.addEventListener("click", () => setDrawer(false));

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || keyDialog.open) return;
  if (docsPanel.classList.contains("open")) setDrawer(false);
  else closeSource();
});

// ---- chat ----------------------------------------------------------------------

let busy = false;

function nearBottom() {
  return thread.scrollHeight - thread.scrollTop - thread.clientHeight < 120;
}

function scrollThread(force = false) {
  if (force || nearBottom()) thread.scrollTop = thread.scrollHeight;
}

function byNumber(items) {
  return new Map(items.map((item) => [item.n, item]));
}

class AssistantMessage {
  constructor() {
    this.passages = [];
    this.draft = "";
    this.body = el("div", { class: "answer-text" },
      el("span", { class: "typing", "aria-label": "Searching the documents" }, el("i"), el("i"), el("i")));
    this.sources = el("div", { class: "sources-slot" });
    this.meta = el("p", { class: "meta" });
    this.node = el("article", {
      class: "message assistant",
      dataset: { testid: "message-assistant", state: "retrieving" },
      "aria-busy": "true",
    }, this.body, this.sources, this.meta);
  }

  setState(state) {
    this.node.dataset.state = state;
    if (state === "final" || state === "error") this.node.removeAttribute("aria-busy");
  }

  onEvent(event, data) {
    if (event === "sources") {
      this.passages = data.passages || [];
      this.sources.replaceChildren(this.passages.length ? sourcesList(this.passages, {
        heading: "Retrieved passages",
        snippet: (p) => p.text,
        onOpen: openSource,
      }) : "");
    } else if (event === "delta") {
      this.draft += data.text || "";
      this.setState("streaming");
      this.body.classList.add("draft");
      this.body.replaceChildren();
      appendMarkedText(this.body, this.draft, byNumber(this.passages), openSource);
    } else if (event === "answer") {
      this.renderAnswer(data);
    }
    scrollThread();
  }

  renderAnswer(answer) {
    this.body.classList.remove("draft");
    this.node.classList.toggle("refusal", !answer.answerable);
    if (!answer.answerable) {
      this.body.replaceChildren(refusalText(answer.answer));
      this.sources.replaceChildren(el("p", { class: "muted small" },
        "No passage in the documents supports an answer, so nothing is cited."));
    } else {
      const citations = answer.citations || [];
      this.body.replaceChildren();
      appendMarkedText(this.body, answer.answer, byNumber(citations), openSource);
      this.sources.replaceChildren(citations.length ? sourcesList(citations, {
        heading: "Sources",
        snippet: (c) => `“${c.quote}”`,
        onOpen: openSource,
      }) : "");
    }
    const parts = [answer.mode];
    if (answer.timings_ms && typeof answer.timings_ms.total === "number") {
      parts.push(`${Math.round(answer.timings_ms.total)} ms`);
    }
    if (answer.dropped_citations) {
      parts.push(`${answer.dropped_citations} unsupported citation${answer.dropped_citations > 1 ? "s" : ""} removed`);
    }
    const indicator = confidenceIndicator(answer.confidence);
    // what did not go as asked, and why: a chat-model mode that failed answered extractively, or the
    // reading check could not run
    const fallback = answer.fallback
      ? el("span", { class: "meta-part fallback", dataset: { testid: "fallback" }, title: answer.fallback },
        answer.fallback)
      : null;
    this.meta.replaceChildren(...(indicator ? [indicator] : []),
      ...parts.filter(Boolean).map((part) => el("span", { class: "meta-part" }, part)), ...(fallback ? [fallback] : []));
    this.setState("final");
  }

  fail(err) {
    this.body.classList.remove("draft");
    this.body.replaceChildren(el("p", { class: "failure-text" }, `No answer: ${err.message}`));
    this.setState("error");
  }
}

async function ask(question) {
  busy = true;
  sendButton.disabled = true;
  clearError();
  thread.querySelector(".empty-state")?.remove();
  thread.append(el("article", { class: "message user", dataset: { testid: "message-user" } },
    el("p", {}, question)));
  const message = new AssistantMessage();
  thread.append(message.node);
  scrollThread(true);
  try {
    await askStream({ question }, (event, data) => message.onEvent(event, data));
  } catch (err) {
    message.fail(err);
    showError(err, "The question could not be answered");
  } finally {
    busy = false;
    sendButton.disabled = false;
    scrollThread();
  }
}

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const question = input.value.trim();
  if (!question || busy) return;
  input.value = "";
  autosize();
  ask(question);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});
input.addEventListener("input", autosize);

// ---- start ---------------------------------------------------------------------

documents.refresh();
input.focus();
