"""Ingest throughput: the product against the raw encoder (the physical limit) and
the llama-index baseline, plus peak memory and the cost of an unchanged re-ingest."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import random

from bench.measure import bench_env, warm_latency
from bench.synthetic import unique_fact, write_corpus
from eval.runner import baseline_system
from index.docstore import DocStore
from index.service import RagService, docstore_path
from rag.embeddings import OnnxMiniLMEmbedding
from rag.settings import REPO_ROOT, Settings

ENCODER_SAMPLE = 1000  # chunks the raw encoder and the baseline are timed on


def _child_ingest(corpus: Path, data_dir: Path) -> dict:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench.ingest_child", str(corpus)], cwd=REPO_ROOT,
                         env=bench_env(data_dir), capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def raw_encoder_rate(texts: list[str], batch_size: int) -> float:
    """Chunks/s of the bare ONNX encoder over ``texts`` in batches of ``batch_size`` (warm)."""
    model = OnnxMiniLMEmbedding()
    model.encode(texts[:batch_size])
    started = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        model.encode(texts[i:i + batch_size])
    return len(texts) / (time.perf_counter() - started)


def baseline_rate(corpus: Path, files: int, work: Path) -> tuple[float, int]:
    """Chunks/s of a plain llama-index ingest (SentenceSplitter 256, same embedder) into Chroma."""
    import chromadb
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    paths = sorted(corpus.glob("*.txt"))[:files]
    client = chromadb.PersistentClient(path=str(work / "baseline-chroma"))
    collection = client.get_or_create_collection("baseline", metadata={"hnsw:space": "cosine"},
                                                 embedding_function=None)
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
    model = OnnxMiniLMEmbedding()
    model.encode(["warm up"])
    started = time.perf_counter()
    documents = SimpleDirectoryReader(input_files=[str(p) for p in paths]).load_data()
    VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=model,
                                    transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=20)])
    return collection.count() / (time.perf_counter() - started), collection.count()


def synthetic_latency(data: Path, documents: int, questions: int = 50) -> dict:
    """Answer latency (in process, warm) on the synthetic corpus: the product beside llama-index's
    ``VectorStoreIndex`` over the same stored chunks; and how often each finds the document's unique fact."""
    service = RagService(Settings(data_dir=data))
    picked = random.Random(3).sample(range(documents), min(questions, documents))
    facts = [unique_fact(i) for i in picked]
    baseline = baseline_system(service, over_stored_chunks=True)
    out = {}
    for name, ask in (("product", service.ask), ("baseline", baseline.ask)):
        out[name] = warm_latency(ask, [q for _, q, _ in facts])
        out[name]["found"] = sum(expected in ask(q).answer for _, q, expected in facts) / len(facts)
    service.close()
    return out


def run(documents: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    corpus = work / "corpus"
    write_corpus(corpus, documents)
    data = work / "data"
    first = _child_ingest(corpus, data)
    again = _child_ingest(corpus, data)
    settings = Settings(data_dir=data)
    store = DocStore(docstore_path(settings), OnnxMiniLMEmbedding().model_id)
    texts = [c.text for d in store.documents()[: max(1, ENCODER_SAMPLE // 5)] for c in store.chunks_of(d.doc_id)]
    texts = texts[:ENCODER_SAMPLE]
    encoder = raw_encoder_rate(texts, settings.embed.batch_size)
    product_rate = first["chunks_written"] / first["ingest_seconds"]
    files_for_sample = max(1, round(len(texts) / max(1, first["chunks_written"] / documents)))
    baseline, baseline_chunks = baseline_rate(corpus, files_for_sample, work)
    latency = synthetic_latency(data, documents)
    return {
        "documents": documents, "chunks": first["chunks_written"], "synthetic_latency": latency,
        "product_chunks_per_s": product_rate, "encoder_chunks_per_s": encoder,
        "baseline_chunks_per_s": baseline, "baseline_chunks": baseline_chunks,
        "product_vs_encoder": product_rate / encoder, "product_vs_baseline": product_rate / baseline,
        "ingest_seconds": first["ingest_seconds"], "ingest_wall_seconds": first["wall_seconds"],
        "peak_rss_mb": first["peak_rss_mb"],
        "reingest_seconds": again["ingest_seconds"], "reingest_wall_seconds": again["wall_seconds"],
        "reingest_embedded": again["chunks_embedded"], "encoder_sample": len(texts),
    }
