// DOM builders for chat messages: answer text with [n] chips, sources lists,
// and the code-point → UTF-16 conversion for citation offsets.

/** Create an element: el("p", {class: "x", dataset: {n: 1}}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/**
 * The server's offsets count Unicode code points; JavaScript strings index
 * UTF-16 code units. Return [start, end) as UTF-16 indices into `text`.
 */
export function codePointRange(text, start, end) {
  let unit = 0;
  let point = 0;
  let from = text.length;
  let to = text.length;
  for (;;) {
    if (point === start) from = unit;
    if (point === end) {
      to = unit;
      break;
    }
    if (unit >= text.length) break;
    unit += text.codePointAt(unit) > 0xffff ? 2 : 1;
    point += 1;
  }
  return [Math.min(from, to), to];
}

// [1], [2, 3] and glued [1][2]: each number becomes a chip when it is known.
const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

/**
 * Append `text` to `container`, turning [n] markers into citation chips.
 * `sources` maps n → {doc_id, title, start, end, ...}; unknown numbers stay text.
 */
export function appendMarkedText(container, text, sources, onOpen) {
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(",").map((s) => Number.parseInt(s.trim(), 10));
    if (!numbers.every((n) => sources.has(n))) continue;
    container.append(text.slice(last, match.index).replace(/[ \t]+$/, ""));
    for (const n of numbers) container.append(chip(n, sources.get(n), onOpen));
    last = match.index + match[0].length;
  }
  container.append(text.slice(last));
}

function chip(n, source, onOpen) {
  return el("button", {
    type: "button",
    class: "chip",
    dataset: { testid: "citation-chip", n: String(n) },
    title: `${source.title || source.doc_id} (${source.doc_id})`,
    "aria-label": `Source ${n}: ${source.title || source.doc_id}`,
    onclick: (event) => onOpen(source, event.currentTarget),
  }, String(n));
}

/** The list of sources under a message: final citations or retrieved passages. */
export function sourcesList(items, { heading, snippet, onOpen }) {
  const list = el("ol", { class: "sources-list", dataset: { testid: "sources-list" } });
  for (const item of items) {
    const row = el("button", {
      type: "button",
      class: "source-row",
      onclick: (event) => onOpen(item, event.currentTarget),
    },
    el("span", { class: "source-n" }, String(item.n)),
    el("span", { class: "source-main" },
      el("span", { class: "source-name" }, item.title || item.doc_id),
      el("span", { class: "source-sub" },
        el("code", {}, item.doc_id),
        typeof item.score === "number" ? ` · score ${item.score.toFixed(3)}` : ""),
      snippet ? el("span", { class: "source-snippet" }, shorten(snippet(item), 220)) : null));
    list.append(el("li", { dataset: { n: String(item.n) } }, row));
  }
  return el("section", { class: "sources" }, el("h3", {}, heading), list);
}

export const REFUSAL = "The sources do not answer this question.";

/**
 * A refusal: the fixed first sentence, then the reason built from the evidence
 * ("The documents mention … but say nothing about …") on a line of its own.
 * The paragraph's text is the answer's text, unchanged.
 */
export function refusalText(text) {
  const full = text || REFUSAL;
  const lead = full.startsWith(REFUSAL) ? REFUSAL : full;
  const reason = full.slice(lead.length);
  return el("p", { class: "refusal-text", dataset: { testid: "refusal" } },
    el("span", { class: "refusal-lead" }, lead),
    reason.trim() ? el("span", { class: "refusal-reason" }, reason) : null);
}

/**
 * A quiet confidence label with a thin bar: the calibrated probability (0..1)
 * that the sources answer the question. Null when the answer carries none.
 */
export function confidenceIndicator(confidence) {
  if (typeof confidence !== "number" || !Number.isFinite(confidence)) return null;
  const value = Math.min(1, Math.max(0, confidence));
  const shown = value > 0 && value < 0.005 ? "< 0.01" : value.toFixed(2);
  return el("span", {
    class: "confidence",
    dataset: { testid: "confidence", value: String(confidence) },
    title: `Calibrated probability that the sources answer this question: ${value.toFixed(3)}`,
  },
  el("span", { class: "confidence-label" }, `confidence ${shown}`),
  el("span", { class: "confidence-bar", "aria-hidden": "true" },
    el("span", { class: "confidence-fill", style: `width: ${(value * 100).toFixed(1)}%` })));
}

export function shorten(text, max) {
  const clean = (text || "").replace(/\s+/g, " ").trim();
  return clean.length <= max ? clean : `${clean.slice(0, max - 1).trimEnd()}…`;
}

export function formatSize(bytes) {
  if (typeof bytes !== "number") return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
