// The documents panel: the corpus list, uploads with per-file status, deletion.

import { api } from "./api.js";
import { el, formatSize } from "./render.js";

const STATUS_TEXT = { added: "added", updated: "updated", unchanged: "unchanged", skipped: "skipped",
  failed: "failed", queued: "waiting", running: "ingesting" };
const JOB_POLL_MS = 700;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One upload's row: name, status badge, reason or chunk count, and a progress bar while it is a job's. */
function resultRow(r, progress) {
  return el("li", {
    class: `upload-result status-${r.status}`,
    dataset: { testid: "upload-result", status: r.status },
  },
  el("span", { class: "upload-name" }, r.filename || r.doc_id),
  el("span", { class: "badge" }, STATUS_TEXT[r.status] || r.status),
  progress || null,
  r.reason ? el("span", { class: "upload-reason" }, r.reason) : null,
  r.chunks != null ? el("span", { class: "upload-reason" }, `${r.chunks} chunks`) : null);
}

function jobFileProgress(f, job) {
  if (f.state !== "running" && f.state !== "queued") return null;
  const share = f.chunks_total ? f.chunks_embedded / f.chunks_total : 0;
  const left = f.state === "running" && job.progress.seconds_left != null
    ? ` · about ${Math.max(1, Math.round(job.progress.seconds_left))} s left` : "";
  const label = f.state === "queued" ? "waiting for the files before it"
    : f.chunks_total ? `${f.chunks_embedded} of ${f.chunks_total} chunks embedded${left}` : "reading the file…";
  return el("span", { class: "upload-progress" },
    el("progress", { max: "1", value: String(share), dataset: { testid: "upload-progress" },
      "aria-label": `${f.filename}: ${label}` }),
    el("span", { class: "upload-reason" }, label));
}

export function initDocuments({ panel, showError, onChanged }) {
  const list = panel.querySelector(".document-list");
  const count = panel.querySelector(".doc-count");
  const input = panel.querySelector("[data-testid=upload-input]");
  const results = panel.querySelector(".upload-results");

  async function refresh() {
    list.setAttribute("aria-busy", "true");
    try {
      const { documents } = await api.documents();
      render(documents || []);
    } catch (err) {
      list.replaceChildren(el("li", { class: "muted" }, "Could not load the documents."));
      count.textContent = "";
      showError(err, "Loading documents failed");
    } finally {
      list.removeAttribute("aria-busy");
    }
  }

  function render(documents) {
    count.textContent = `(${documents.length})`;
    if (!documents.length) {
      list.replaceChildren(el("li", { class: "muted" }, "No documents yet. Upload some to start."));
      return;
    }
    list.replaceChildren(...documents.map((doc) => el("li", {
      class: "document",
      dataset: { testid: "document", docId: doc.doc_id },
    },
    el("div", { class: "document-main" },
      el("span", { class: "document-title" }, doc.title || doc.doc_id),
      el("span", { class: "document-meta" },
        el("code", {}, doc.doc_id),
        [doc.date, doc.chunks != null ? `${doc.chunks} chunks` : null, formatSize(doc.size)]
          .filter(Boolean).map((part) => ` · ${part}`).join(""))),
    deleteButton(doc))));
  }

  // Two clicks delete: the first arms the button for a few seconds.
  function deleteButton(doc) {
    let armed = null;
    const button = el("button", {
      type: "button",
      class: "delete-button",
      dataset: { testid: "delete-document" },
      "aria-label": `Delete ${doc.title || doc.doc_id}`,
    }, "Delete");
    button.addEventListener("click", async () => {
      if (!armed) {
        button.textContent = "Confirm";
        button.classList.add("armed");
        armed = setTimeout(() => {
          armed = null;
          button.textContent = "Delete";
          button.classList.remove("armed");
        }, 4000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      button.textContent = "Deleting…";
      try {
        await api.deleteDocument(doc.doc_id);
        onChanged([doc.doc_id]);
      } catch (err) {
        showError(err, `Deleting ${doc.doc_id} failed`);
      }
      await refresh();
    });
    return button;
  }

  input.addEventListener("change", async () => {
    const files = Array.from(input.files || []);
    if (!files.length) return;
    input.disabled = true;
    results.replaceChildren(el("li", { class: "muted" },
      `Uploading ${files.length} file${files.length > 1 ? "s" : ""}…`));
    try {
      const body = await api.upload(files);
      const outcomes = body.job ? await followJob(body.job) : body.results || [];
      results.replaceChildren(...outcomes.map((r) => resultRow(r)));
      onChanged(outcomes.filter((r) => r.status !== "skipped" && r.status !== "failed").map((r) => r.doc_id));
    } catch (err) {
      results.replaceChildren(el("li", { class: "upload-result status-skipped" }, `Upload failed: ${err.message}`));
      showError(err, "Upload failed");
    } finally {
      input.value = "";
      input.disabled = false;
    }
    await refresh();
  });

  /** Show a big upload's job with a progress bar per file until it ends; resolve to its files' outcomes. */
  async function followJob(job) {
    for (;;) {
      const rows = job.files.map((f) => resultRow({ ...f, status: f.state, chunks: null }, jobFileProgress(f, job)));
      results.replaceChildren(...rows);
      if (job.state === "done" || job.state === "failed") break;
      await sleep(JOB_POLL_MS);
      ({ job } = await api.job(job.id));
    }
    return job.files.map((f) => ({ filename: f.filename, doc_id: f.doc_id, status: f.state,
      reason: f.reason || (job.state === "failed" ? job.reason : null), chunks: f.chunks }));
  }

  return { refresh };
}
