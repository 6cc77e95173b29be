// HTTP client for the /v1 API: the optional API key, the JSON error envelope,
// and the Server-Sent Events stream of POST /v1/ask/stream (read with fetch,
// since EventSource cannot POST).

const KEY_STORAGE = "rag-cited.apiKey";

export class ApiError extends Error {
  constructor(message, { status = 0, code = "error", details = {} } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

// ---- API key -----------------------------------------------------------------

let promptForKey = async () => null; // set by the page: (reason) => Promise<string | null>
let pendingPrompt = null;

export function setKeyPrompt(fn) {
  promptForKey = fn;
}

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null;
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key is asked for again next time */
  }
}

/** One prompt at a time: concurrent 401s share it. */
function askForKey(reason) {
  if (!pendingPrompt) {
    pendingPrompt = Promise.resolve(promptForKey(reason)).finally(() => {
      pendingPrompt = null;
    });
  }
  return pendingPrompt;
}

// ---- requests ----------------------------------------------------------------

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const err = body && body.error;
  const message = (err && err.message) || `${response.status} ${response.statusText || "error"}`.trim();
  return new ApiError(message, {
    status: response.status,
    code: (err && err.code) || "http_error",
    details: (err && err.details) || {},
  });
}

/** fetch() with the API key; a 401 asks for the key and retries. Throws ApiError unless 2xx. */
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  for (;;) {
    const key = storedKey();
    const h = new Headers(headers);
    if (key) h.set("Authorization", `Bearer ${key}`);
    let response;
    try {
      response = await fetch(path, { method, body, headers: h, signal });
    } catch (cause) {
      if (cause.name === "AbortError") throw cause;
      throw new ApiError("Could not reach the server. Check your connection and try again.",
        { code: "network_error", details: { cause: String(cause) } });
    }
    if (response.status !== 401) {
      if (!response.ok) throw await errorFrom(response);
      return response;
    }
    const current = storedKey();
    if (current && current !== key) continue; // another request already got a new key
    const rejected = await errorFrom(response);
    if (key) storeKey(null);
    const entered = await askForKey(key ? "The API key was not accepted. Enter it again."
                                        : "This server needs an API key.");
    if (!entered) throw new ApiError("An API key is required to use this server.", rejected);
    storeKey(entered.trim());
  }
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

export function docPath(docId) {
  return `/v1/documents/${docId.split("/").map(encodeURIComponent).join("/")}`;
}

export const api = {
  documents: () => getJSON("/v1/documents"),
  document: (docId) => getJSON(docPath(docId)),
  deleteDocument: (docId) => getJSON(docPath(docId), { method: "DELETE" }),
  /** Resolves to `{results}` (small uploads, ingested already) or `{job}` (202: follow it with api.job). */
  upload(files) {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    return getJSON("/v1/documents", { method: "POST", body: form });
  },
  job: (id) => getJSON(`/v1/jobs/${encodeURIComponent(id)}`),
};

// ---- streaming ---------------------------------------------------------------

/**
 * POST /v1/ask/stream and call onEvent(name, data) for each event.
 * Resolves after `done` (or the end of the stream); rejects with ApiError on an
 * HTTP error, an `error` event, or a stream that ends before the final answer.
 */
export async function askStream(payload, onEvent, { signal } = {}) {
  const response = await request("/v1/ask/stream", {
    method: "POST",
    body: JSON.stringify(payload),
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    signal,
  });
  if (!response.body) throw new ApiError("This browser cannot read streamed responses.");
  let answered = false;
  for await (const { event, data } of readEvents(response.body)) {
    if (event === "error") {
      const err = (data && data.error) || {};
      throw new ApiError(err.message || "The server failed while answering.",
        { status: response.status, code: err.code || "stream_error", details: err.details || {} });
    }
    if (event === "answer") answered = true;
    onEvent(event, data);
    if (event === "done") break;
  }
  if (!answered) throw new ApiError("The answer stream ended before the final answer arrived.",
    { code: "stream_incomplete" });
}

/** Parse a text/event-stream body into {event, data} objects (data parsed as JSON). */
export async function* readEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = false;
  try {
    while (!finished) {
      const { value, done } = await reader.read();
      finished = done;
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Normalise line ends; a trailing "\r" may be the first half of "\r\n".
      buffer = buffer.replace(/\r\n/g, "\n").replace(finished ? /\r/g : /\r(?!$)/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
    }
    const rest = parseBlock(buffer);
    if (rest) yield rest;
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}

function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return event === "message" ? null : { event, data: {} };
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    throw new ApiError(`The server sent an unreadable "${event}" event.`, { code: "bad_stream" });
  }
}
