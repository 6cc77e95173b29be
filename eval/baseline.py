"""The baseline: a plain llama-index pipeline over the same stored documents.

``VectorStoreIndex`` with llama-index's ``SentenceSplitter`` (256 tokens, the
chunk size at which retrieval recall means something on this corpus; the
1024-token default makes ~6 chunks of five articles), the same embedding
model, and the default retriever (dense top-k). Answers use the same answer
mode and the same citation verification as the product, so the two differ
only in chunking and retrieval.
"""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import QueryBundle
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from rag.retrieval import Retrieval
from rag.types import Hit

BASELINE_CHUNK_TOKENS = 256
BASELINE_OVERLAP_TOKENS = 20


class LlamaIndexBaseline:
    def __init__(self, documents: list[tuple[str, str, str]], embedder: BaseEmbedding,
                 index: VectorStoreIndex | None = None) -> None:
        """``documents``: (doc_id, title, stored text); ``index``: an existing one instead of building it."""
        self.embedder = embedder
        self._text = {doc_id: text for doc_id, _, text in documents}
        self._title = {doc_id: title for doc_id, title, _ in documents}
        if index is None:
            docs = [Document(text=text, id_=doc_id, metadata={"doc_id": doc_id}) for doc_id, _, text in documents]
            splitter = SentenceSplitter(chunk_size=BASELINE_CHUNK_TOKENS, chunk_overlap=BASELINE_OVERLAP_TOKENS)
            index = VectorStoreIndex.from_documents(docs, embed_model=embedder, transformations=[splitter])
        self.index = index
        self.passages: dict[str, Hit] = {}

    @classmethod
    def over_vector_store(cls, documents: list[tuple[str, str, str]], embedder: BaseEmbedding,
                          vector_store: BasePydanticVectorStore) -> "LlamaIndexBaseline":
        """The variant over already-stored chunks (no re-embedding): llama-index's
        ``VectorStoreIndex.from_vector_store`` and its default retriever."""
        return cls(documents, embedder, VectorStoreIndex.from_vector_store(vector_store, embed_model=embedder))

    def retrieve(self, question: str, top_k: int | None = None) -> Retrieval:
        top_k = top_k or 6
        retriever = self.index.as_retriever(similarity_top_k=top_k)
        embedding = self.embedder.get_query_embedding(question)  # once, shared with the answerer
        hits = []
        for scored in retriever.retrieve(QueryBundle(query_str=question, embedding=embedding)):
            hit = self._hit(scored.node, scored.score or 0.0)
            if hit is not None:
                self.passages[hit.chunk_id] = hit
                hits.append(hit)
        return Retrieval(hits=hits, query_embedding=embedding)

    def _hit(self, node, score: float) -> Hit | None:
        doc_id = node.metadata.get("doc_id") or node.ref_doc_id
        text = self._text.get(doc_id)
        if text is None:
            return None
        content = node.get_content()
        start = node.start_char_idx if node.start_char_idx is not None else node.metadata.get("start")
        if start is None or text[start:start + len(content)] != content:
            start = text.find(content)  # llama-index offsets can drift; the citation promise cannot
            if start < 0:
                return None
        return Hit(chunk_id=node.node_id, doc_id=doc_id, title=self._title.get(doc_id, doc_id), start=start,
                   end=start + len(content), text=content, score=round(float(score), 4))

    def passage(self, chunk_id: str) -> Hit | None:
        return self.passages.get(chunk_id)
