// The documents panel: the corpus list, uploads with per-file status, deletion.

import { api } from "./api.js";
import { el, formatSize } from "./render.js";

const STATUS_TEXT = { added: "added", updated: "updated", unchanged: "unchanged", skipped: "skipped" };

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
      results.replaceChildren(...(body.results || []).map((r) => el("li", {
        class: `upload-result status-${r.status}`,
        dataset: { testid: "upload-result", status: r.status },
      },
      el("span", { class: "upload-name" }, r.filename || r.doc_id),
      el("span", { class: "badge" }, STATUS_TEXT[r.status] || r.status),
      r.reason ? el("span", { class: "upload-reason" }, r.reason) : null,
      r.chunks != null ? el("span", { class: "upload-reason" }, `${r.chunks} chunks`) : null)));
      onChanged((body.results || []).map((r) => r.doc_id).filter(Boolean));
    } catch (err) {
      results.replaceChildren(el("li", { class: "upload-result status-skipped" }, `Upload failed: ${err.message}`));
      showError(err, "Upload failed");
    } finally {
      input.value = "";
      input.disabled = false;
    }
    await refresh();
  });

  return { refresh };
}
