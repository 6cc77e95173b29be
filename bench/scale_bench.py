"""100k chunks: retrieval and answer latency with the store that large, embedded
and behind a `chroma run` server, and how soon an added document is answerable;
with ``backend="postgres"`` also on PostgreSQL + a `chroma run` server (the
shared stores of several replicas), and the throughput of one and of two
`rag serve` replicas on those servers.

The bulk chunks carry real text (for BM25) and cheap random unit vectors: this
measures the stores and the retrieval code, not the encoder. Questions use the
real model.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import numpy as np
from llama_index.core.schema import TextNode
from tqdm import tqdm

from bench.measure import chroma_server, pct, serving
from bench.questions import varied_questions
from bench.synthetic import corpus_sentences, unique_fact
from index.chunking import chunk_text
from rag.embeddings import OnnxMiniLMEmbedding
from index.service import RagService, open_stores
from rag.settings import Settings

BATCH = 2000


def build_store(settings: Settings, embedder: OnnxMiniLMEmbedding, chunks: int, progress: bool = True) -> int:
    """Fill the configured store with about ``chunks`` chunks of synthetic documents."""
    vectors, docstore = open_stores(settings, embedder.model_id)  # bulk rows with made-up vectors: below the service
    pool = corpus_sentences()
    rng = random.Random(11)
    np_rng = np.random.default_rng(11)
    written, doc, nodes = 0, 0, []
    bar = tqdm(total=chunks, desc="scale store", unit="chunk", disable=not progress, leave=False)
    while written < chunks:
        doc_id = f"scale/{doc:06d}.txt"
        text = f"Scale briefing {doc:06d}\n\n" + " ".join(rng.sample(pool, 14)) + "\n"
        parts = chunk_text(doc_id, text, settings.chunk.size, settings.chunk.overlap)
        made_up = np_rng.standard_normal((len(parts), 384)).astype(np.float32)
        made_up /= np.linalg.norm(made_up, axis=1, keepdims=True)
        nodes += [TextNode(id_=c.chunk_id, text=c.text, embedding=v.tolist(),
                           metadata={"doc_id": doc_id, "start": c.start, "end": c.end}) for c, v in zip(parts, made_up)]
        docstore.replace_document(doc_id=doc_id, source_root="/bench/scale", title=f"Scale briefing {doc}",
                                  date=None, url=None, content_hash=f"bench-{doc}", text=text, chunks=parts)
        if len(nodes) >= BATCH:
            vectors.add(nodes)
            nodes = []
        written += len(parts)
        bar.update(len(parts))
        doc += 1
    vectors.add(nodes)
    bar.close()
    count = docstore.chunk_count()
    docstore.close()
    return count


def measure(settings: Settings, embedder: OnnxMiniLMEmbedding, work: Path, quick: bool, env: dict) -> dict:
    service = RagService(settings, embedder=embedder)
    questions = varied_questions(50 if quick else 100)
    for q in questions[:10]:
        service.ask(q)
    retrieve_ms = []
    for q in questions:
        started = time.perf_counter()
        service.retrieve(q)
        retrieve_ms.append((time.perf_counter() - started) * 1000)
    # Add one document; how soon does the next question see it?
    new_doc = work / "fresh" / "added-report.txt"
    new_doc.parent.mkdir(parents=True, exist_ok=True)
    sentence, question, expected = unique_fact(987654)
    new_doc.write_text(f"Late addition\n\n{sentence} It was received after the main corpus.\n", encoding="utf-8")
    started = time.perf_counter()
    service.ingest(new_doc, prune=False)
    answer = service.ask(question)
    visible_s = time.perf_counter() - started
    out = {"chunks": service.chunk_count(), "retrieve_p50_ms": pct(retrieve_ms, 50),
           "retrieve_p95_ms": pct(retrieve_ms, 95), "add_visible_s": visible_s,
           "add_found": expected in answer.answer}
    service.close()
    with serving(settings.data_dir, **env) as server:
        server.first_answer_seconds(questions[0])
        import httpx

        times = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for q in questions:
                t = time.perf_counter()
                r = client.post("/v1/ask", json={"question": q})
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
        out["ask_http_p50_ms"], out["ask_http_p95_ms"] = pct(times, 50), pct(times, 95)
    return out


def throughput(urls: list[str], questions: list[str], seconds: float, clients: int = 4) -> dict:
    """Asks from ``clients`` threads spread over the replicas at ``urls`` for ``seconds``: req/s and p95."""
    import httpx
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.perf_counter() + seconds
    times: list[float] = []
    errors = 0

    def client(k: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=urls[k % len(urls)], timeout=60) as http:
            i = k
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                r = http.post("/v1/ask", json={"question": questions[i % len(questions)]})
                times.append((time.perf_counter() - t) * 1000)
                errors += r.status_code != 200
                i += clients

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - started
    return {"replicas": len(urls), "clients": clients, "requests": len(times), "errors": errors,
            "rps": len(times) / wall, "p95_ms": pct(times, 95)}


def run_postgres(chunks: int, quick: bool, embedder: OnnxMiniLMEmbedding, work: Path) -> dict:
    """The shared stores: PostgreSQL (docstore, BM25) + a `chroma run` server (vectors)."""
    from bench.processes import PostgresServer

    out: dict = {}
    pg = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-postgres-"))).start()
    try:
        with chroma_server(work / "chroma-pg") as port:
            settings = Settings(data_dir=work / "postgres", database_url=pg.url)
            settings.chroma.host, settings.chroma.port = "127.0.0.1", port
            env = {"RAG_DATABASE_URL": pg.url, "RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port)}
            started = time.perf_counter()
            build_store(settings, embedder, chunks)
            out["postgres_build_s"] = time.perf_counter() - started
            out["postgres"] = measure(settings, embedder, work / "postgres-extra", quick, env)
            questions = varied_questions(40)
            seconds = 10.0 if quick else 30.0
            with serving(work / "replica-a", **env) as a:
                a.first_answer_seconds(questions[0])
                out["replicas_1"] = throughput([a.url], questions, seconds)
                with serving(work / "replica-b", **env) as b:
                    b.first_answer_seconds(questions[1])
                    out["replicas_2"] = throughput([a.url, b.url], questions, seconds)
    finally:
        pg.stop(mode="immediate")
    return out


def run(chunks: int, quick: bool = False, server_mode: bool = True, backend: str = "sqlite") -> dict:
    embedder = OnnxMiniLMEmbedding()
    out: dict = {}
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    settings = Settings(data_dir=work / "embedded")
    started = time.perf_counter()
    build_store(settings, embedder, chunks)
    out["embedded_build_s"] = time.perf_counter() - started
    out["embedded"] = measure(settings, embedder, work / "embedded-extra", quick, {})
    if server_mode:
        with chroma_server(work / "chroma-server") as port:
            settings = Settings(data_dir=work / "server")
            settings.chroma.host, settings.chroma.port = "127.0.0.1", port
            started = time.perf_counter()
            build_store(settings, embedder, chunks)
            out["server_build_s"] = time.perf_counter() - started
            out["server"] = measure(settings, embedder, work / "server-extra", quick,
                                    {"RAG_CHROMA_HOST": "127.0.0.1", "RAG_CHROMA_PORT": str(port)})
    if backend == "postgres":
        out.update(run_postgres(chunks, quick, embedder, work))
    return out
