"""One settings object for the whole service.

Every field is read from an environment variable with the ``RAG_`` prefix; a
nested group's fields join the group name with ``_`` (``RAG_CHROMA_HOST`` is
``settings.chroma.host``). Only the edges (CLI, API app factory) call
:func:`get_settings`; the core receives a :class:`Settings` as an argument.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CORPUS = REPO_ROOT / "data" / "corpus"


class _Group(BaseModel):
    model_config = ConfigDict(validate_assignment=True)


class ChromaSettings(_Group):
    host: str | None = Field(None, description="Chroma server host; unset means an embedded PersistentClient in the data directory.")
    port: int = Field(8000, description="Chroma server port.")
    ssl: bool = Field(False, description="Use HTTPS for the Chroma server.")
    collection: str = Field("rag_chunks", description="Collection name; also names the docstore file.")
    search_ef: int = Field(500, ge=10, le=100_000, description="How many neighbours the HNSW search explores (Chroma's ef_search; its default is 100). At 100 a few near neighbours are missed, and which ones changes each time the index is loaded, so answers could change between restarts; 500 is exact up to about that many chunks, and cost 0.3 ms more per query on the 575-chunk SQuAD index (4.1 → 4.5 ms).")


class EmbedSettings(_Group):
    provider: Literal["onnx", "openai", "hash"] = Field(
        "onnx", description="onnx: bundled all-MiniLM-L6-v2 int8 (offline); openai: an OpenAI-compatible /embeddings endpoint; hash: hashed bag of words (tests, benchmarks).")
    model: str = Field("all-MiniLM-L6-v2", description="Model name sent to the openai provider.")
    base_url: str | None = Field(None, description="Base URL of the OpenAI-compatible embeddings server.")
    api_key: SecretStr | None = Field(None, description="Key for the embeddings server.")
    batch_size: int = Field(32, ge=1, le=1024, description="Passages per embedding call.")
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads (0: onnxruntime decides).")
    max_tokens: int = Field(256, ge=16, le=512, description="Word pieces kept per passage (MiniLM was trained on 256).")


class ChunkSettings(_Group):
    size: int = Field(120, ge=20, le=1000, description="Target chunk length in words (sentences are never cut).")
    overlap: int = Field(1, ge=0, le=5, description="Sentences repeated between neighbouring chunks.")


MAX_TOP_K = 50  # the most passages one question may retrieve (settings, API requests and the pipeline)


class RetrieveSettings(_Group):
    top_k: int = Field(6, ge=1, le=MAX_TOP_K, description="Passages handed to the answerer.")
    candidates: int = Field(30, ge=1, le=500, description="Candidates taken from each retriever before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(0.5, ge=0, description="Weight of the dense (Chroma) ranking in fusion.")
    keyword_weight: float = Field(1.0, ge=0, description="Weight of the keyword (BM25) ranking in fusion.")
    decisive_ratio: float = Field(3.0, ge=0, description="A keyword (BM25) hit scoring at least this many times the 5th keyword score is a decisive exact match and goes ahead of the fused ranking; 0 (or ≤ 1) turns it off.")


AnswerMode = Literal["extractive", "openai", "local"]


class AnswerSettings(_Group):
    mode: AnswerMode = Field("extractive", description="extractive: offline sentence selection; openai: an OpenAI-compatible chat model; local: a packaged GGUF model served in-process by llama.cpp (the `local` extra).")
    max_sentences: int = Field(3, ge=1, le=10, description="Most sentences an extractive answer uses (a factoid answer uses one, two when the runner-up is close, more only when another adds a part of the question).")
    min_confidence: float | None = Field(None, ge=0, le=1, description="Refuse when the calibrated confidence that the sources answer is below this (unset: the answerability model's recommended threshold).")
    relative_cutoff: float = Field(0.5, ge=0, le=1, description="Extractive: a further sentence must answer with at least this share of the best sentence's probability.")
    runner_up_share: float = Field(0.5, ge=0, le=1.01, description="Extractive: the second-best sentence joins the best one when its probability is at least this share of the best's (the best sentence alone answers about 80% of questions); above 1 turns it off.")
    gate_chat_model: bool = Field(True, description="openai mode: below the confidence threshold, refuse without calling the chat model.")
    check: Literal["off", "local", "openai"] = Field("off", description="Reading check: the model of this answer mode (the local one, or the OpenAI-compatible server) reads the sentences an answer would quote, before it is written, and refuses when they do not answer (a yes/no token and a reader's first token, ~2 s with the local 1.5B model; a written answer quoting other sentences is read again); off: no check.")
    check_threshold: float = Field(0.22, ge=0, le=1, description="Reading check: refuse when its probability that the quotes answer (its yes/no and its reader's readings combined; the yes/no one alone for a why-question) is below this (measured for the local 1.5B model).")


class VerifySettings(_Group):
    lexical_threshold: float = Field(0.6, ge=0, le=1, description="Share of a sentence's content words a passage must contain to support it.")
    semantic_threshold: float = Field(0.65, ge=0, le=1, description="Cosine similarity at which a passage sentence supports an answer sentence.")


class LLMSettings(_Group):
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://localhost:11434/v1 (unset: api.openai.com).")
    model: str = Field("gpt-4o-mini", description="Chat model name.")
    api_key: SecretStr | None = Field(None, description="Key for the chat server (local servers accept any value).")
    timeout: float = Field(60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(2, ge=0, le=10, description="Retries on connection errors, 429 and 5xx.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=16, description="Most tokens in a generated answer.")
    output: Literal["auto", "json", "text"] = Field("auto", description="json: ask for JSON sentences with passage numbers, enforced by a JSON schema (llama.cpp, vLLM, OpenAI, Ollama); text: plain text with [n] markers; auto: json, and text from then on if the server rejects the schema.")
    evidence: Literal["sentences", "passages"] = Field("sentences", description="What the model reads: sentences: the best sentences with their neighbours (short prompts, fast on a CPU); passages: the whole retrieved passages.")
    evidence_sentences: int = Field(4, ge=1, le=20, description="sentences evidence: how many of the best sentences (each with the sentence before and after it).")
    fallback: bool = Field(True, description="When the chat model fails or times out, answer extractively and say why in the answer's `fallback` (false: the request fails with 502/504).")


class LocalSettings(_Group):
    model: str = Field("1.5b", description="Local model: 1.5b (Qwen2.5-Coder-1.5B-Instruct, `local` extra), 0.5b (Qwen2.5-Coder-0.5B-Instruct, `local-small` extra) or a path to a .gguf file.")
    threads: int = Field(0, ge=0, le=256, description="CPU threads for the local model (0: all cores but one). Use 1 where other work shares two cores.")
    ctx: int = Field(4096, ge=512, le=32768, description="Context window in tokens (prompt + answer).")
    port: int = Field(0, ge=0, le=65535, description="Port of the in-process server (0: any free port).")
    log_verbosity: int = Field(0, ge=0, le=4, description="llama.cpp log level (0: errors only).")


class ParseSettings(_Group):
    isolate: bool = Field(True, description="Read each file in a worker process bounded by the limits below (false: in the ingesting process, unbounded; trusted files only).")
    timeout_s: float = Field(60.0, gt=0, description="Most seconds reading one file may take; a file over it is skipped with the reason.")
    max_memory_mb: int = Field(1024, ge=64, description="Most memory (MB) reading one file may add to the parser process; a file over it is skipped with the reason.")


class ApiSettings(_Group):
    key: SecretStr | None = Field(None, description="When set, every /v1 route needs `Authorization: Bearer <key>`.")
    max_upload_bytes: int = Field(10_000_000, ge=1, description="Largest file accepted by POST /v1/documents.")
    max_upload_files: int = Field(20, ge=1, description="Most files in one upload.")
    job_threshold_bytes: int = Field(1_000_000, ge=0, description="An upload larger than this in all (bytes) is a background job: 202 at once, progress at GET /v1/jobs/{id}; smaller ones are ingested before the response.")
    job_queue: int = Field(8, ge=1, le=1000, description="Upload jobs waiting at most (one runs at a time); beyond it uploads get 429 with Retry-After.")
    job_threads: int = Field(1, ge=1, le=64, description="Threads the upload jobs' embedder uses (the in-process model), so that serving keeps the other cores.")
    jobs_kept: int = Field(100, ge=1, description="Finished jobs remembered (GET /v1/jobs); older ones are forgotten.")


class Settings(BaseSettings):
    """Everything configurable. Env: ``RAG_<FIELD>`` or ``RAG_<GROUP>_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="_", env_nested_max_split=1, extra="ignore",
        validate_assignment=True,
    )

    data_dir: Path = Field(REPO_ROOT / ".rag-data", description="Chroma store (embedded mode), docstore and keyword index.")
    corpus_dir: Path = Field(BUNDLED_CORPUS, description="Default corpus for `rag ingest` with no path.")
    max_question_chars: int = Field(2000, ge=10, description="Longest question accepted.")
    log_format: Literal["text", "json"] = Field("text", description="`rag serve` log lines: text (with the request id) or json (one object per line).")
    database_url: SecretStr | None = Field(None, description="PostgreSQL URL (postgresql://user:password@host:port/db) for the docstore and keyword index that several API replicas share; unset: the embedded SQLite file in the data directory.")
    chroma: ChromaSettings = ChromaSettings()
    embed: EmbedSettings = EmbedSettings()
    chunk: ChunkSettings = ChunkSettings()
    retrieve: RetrieveSettings = RetrieveSettings()
    answer: AnswerSettings = AnswerSettings()
    verify: VerifySettings = VerifySettings()
    llm: LLMSettings = LLMSettings()
    local: LocalSettings = LocalSettings()
    parse: ParseSettings = ParseSettings()
    api: ApiSettings = ApiSettings()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
