"""The ``rag`` command: ingest, ask, serve. A thin edge over ``index.service``:
domain errors become one-line messages and non-zero exit codes."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Optional

import typer

from api.memory import tune_malloc
from api.outcomes import outcome_for
from rag.errors import RagError
from rag.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Question answering with every sentence cited to its source passage.")

def _fail(exc: RagError) -> None:
    typer.echo(f"error: {exc.message}", err=True)
    raise typer.Exit(outcome_for(exc).exit_code)


def _service():
    from index.service import RagService

    return RagService(get_settings())


@app.command()
def ingest(
    path: Optional[Path] = typer.Argument(None, help="File or folder to ingest (default: the configured corpus)."),
    prune: bool = typer.Option(True, help="Remove indexed documents whose files are gone from this folder."),
    reset: bool = typer.Option(False, "--reset", help="Delete the whole index first."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Load, clean, chunk and embed documents; unchanged files cost nothing."""
    try:
        if reset:
            from index.service import reset_index

            reset_index(get_settings())
        svc = _service()
        report = svc.ingest(path, prune=prune, progress=not quiet and sys.stderr.isatty())
    except RagError as exc:
        _fail(exc)
        return
    for doc_id, reason in report.skipped:
        typer.echo(f"skipped {doc_id}: {reason}", err=True)
    typer.echo(report.summary())


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question."),
    as_json: bool = typer.Option(False, "--json", help="Print the Answer object as JSON."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Passages to retrieve."),
    mode: Optional[str] = typer.Option(None, "--mode", help="extractive, openai or local."),
) -> None:
    """Answer a question from the index, with numbered sources."""
    try:
        answer = _service().ask(question, top_k=top_k, mode=mode)
    except RagError as exc:
        _fail(exc)
        return
    if as_json:
        typer.echo(json.dumps(answer.model_dump(), ensure_ascii=False, indent=2))
        return
    typer.echo(textwrap.fill(answer.answer, width=100))
    if answer.citations:
        typer.echo("\nSources:")
        for c in answer.citations:
            typer.echo(f"  [{c.n}] {c.doc_id} (chars {c.start}-{c.end})")
            typer.echo(textwrap.indent(textwrap.fill(f"“{c.quote}”", width=94), "      "))
    if answer.dropped_citations:
        typer.echo(f"\n({answer.dropped_citations} unsupported citation(s) removed)")
    if answer.fallback:
        typer.echo(f"\n({answer.fallback})")
    confidence = "" if answer.confidence is None else f" · confidence {answer.confidence:.2f}"
    typer.echo(f"\n{answer.mode}{confidence} · {answer.timings_ms.total:.0f} ms")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Run the HTTP API (ingests the corpus first if the index is empty)."""
    tune_malloc()
    import uvicorn

    from api.app import create_app

    from api.tracing import configure_logging

    configure_logging(logging.INFO, get_settings().log_format)
    try:
        application = create_app(get_settings())
    except RagError as exc:
        _fail(exc)
        return
    uvicorn.run(application, host=host, port=port, log_level="info", access_log=False)  # ours: api.tracing


@app.command()
def migrate(
    to: str = typer.Option(..., "--to", help="The PostgreSQL database to move the docstore and keyword index to "
                           "(postgresql://user:password@host:port/db)."),
    chroma_host: Optional[str] = typer.Option(None, help="Also copy the vectors to this Chroma server "
                                              "(default: they stay where RAG_CHROMA_* says)."),
    chroma_port: int = typer.Option(8000, help="Port of that Chroma server."),
    chroma_collection: Optional[str] = typer.Option(None, help="Collection there (default: RAG_CHROMA_COLLECTION)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Copy the embedded index (RAG_DATA_DIR) to PostgreSQL, and its vectors to a Chroma server, without
    embedding again; re-running finishes an interrupted copy. Exits 1 when the counts differ at the end."""
    from index.migrate import migrate_index

    settings = get_settings()
    target_chroma = None
    if chroma_host is not None:
        target_chroma = settings.chroma.model_copy(update={"host": chroma_host, "port": chroma_port,
                                                          "collection": chroma_collection or settings.chroma.collection})
    try:
        report = migrate_index(settings, to, target_chroma, progress=not quiet and sys.stderr.isatty())
    except RagError as exc:
        _fail(exc)
        return
    typer.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)
    typer.echo(f"now serve from it: RAG_DATABASE_URL={report.target}"
               + (f" RAG_CHROMA_HOST={chroma_host} RAG_CHROMA_PORT={chroma_port}" if chroma_host else ""), err=True)


llm_app = typer.Typer(no_args_is_help=True, help="The local model (the `local` extra): llama.cpp in this process.")
app.add_typer(llm_app, name="llm")


@llm_app.command("serve")
def llm_serve(
    model: Optional[str] = typer.Option(None, "--model", help="1.5b, 0.5b or a path to a .gguf file "
                                        "(default: RAG_LOCAL_MODEL)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port on 127.0.0.1 (default: RAG_LOCAL_PORT; 0: any)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: RAG_LOCAL_THREADS)."),
    ctx: Optional[int] = typer.Option(None, "--ctx", help="Context window in tokens (default: RAG_LOCAL_CTX)."),
) -> None:
    """Serve the local model as an OpenAI-compatible server (assembling it on first use) until Ctrl-C."""
    import signal

    from rag.local_server import start_local_server

    settings = get_settings()
    updates = {k: v for k, v in {"model": model, "port": port, "threads": threads, "ctx": ctx}.items() if v is not None}
    try:
        local = settings.local.model_copy(update=updates)
        type(local).model_validate(local.model_dump())  # the same limits as the environment variables
        server = start_local_server(local, settings.data_dir)
    except RagError as exc:
        _fail(exc)
        return
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{server.model_path.name} ({server.threads} threads, context {server.ctx}) "
               f"ready in {server.started_in_s:.1f} s")
    typer.echo(server.base_url, err=False)
    typer.echo(f"use it: RAG_ANSWER_MODE=openai RAG_LLM_BASE_URL={server.base_url} rag serve", err=True)
    sys.stdout.flush()
    signal.sigwait({signal.SIGINT, signal.SIGTERM})


@app.command("eval")
def eval_command(
    gold: Path = typer.Option(..., "--gold", help="Gold set (JSONL: question, answer, must_include, sources, type, answerable)."),
    json_out: Optional[Path] = typer.Option(None, "--json-out", help="Write the full result as JSON."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write an HTML report."),
    gates: list[str] = typer.Option([], "--min", help="METRIC=VALUE gate, e.g. retrieval.recall@5=0.8 "
                                    "(latency_ms.*, answer.false_refusal, decisions.confidently_wrong, "
                                    "decisions.wrong_among_answered, calibration.ece and calibration.brier "
                                    "are maxima)."),
    baseline: bool = typer.Option(True, help="Also measure the plain llama-index baseline."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Answer mode to evaluate."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="Ingest this folder into its own index "
                                          "(under RAG_DATA_DIR/eval-corpora/) and evaluate over it."),
) -> None:
    """Measure retrieval, answers, citations and latency on a gold set, beside the baseline."""
    from eval.gold import load_gold
    from eval.report import render_report
    from eval.suite import parse_gate, run_suite, service_for_corpus, unmet_gates

    progress = sys.stderr.isatty()
    try:
        parsed_gates = [parse_gate(g) for g in gates]
        if corpus is None:
            service = _service()
        else:
            load_gold(gold)  # a bad gold file fails before anything is ingested
            service, ingested = service_for_corpus(get_settings(), corpus, progress=progress)
            for doc_id, reason in ingested.skipped:
                typer.echo(f"skipped {doc_id}: {reason}", err=True)
            typer.echo(f"corpus {corpus} → {service.settings.data_dir}: {ingested.summary()}", err=True)
        result = run_suite(service, gold, baseline=baseline, mode=mode, progress=progress)
        unmet = unmet_gates(result["metrics"], parsed_gates)
    except RagError as exc:
        _fail(exc)
        return
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_report(result), encoding="utf-8")
    _print_summary(result)
    for problem in result["gold_problems"]:
        typer.echo(f"gold-set problem: {problem}", err=True)
    if unmet:
        for line in unmet:
            typer.echo(f"gate failed: {line}", err=True)
        raise typer.Exit(6)


def _print_summary(result: dict) -> None:
    from eval.report import SELF_JUDGED_NOTE, decision_table, is_self_judged, label, metric_rows

    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    metrics, base_metrics = result["metrics"], result["baseline"]
    rows = [row for row in metric_rows(metrics, base_metrics) if not row[0].endswith(".n")]
    typer.echo(f"{'metric':<48}{'rag-cited':>12}{'baseline':>12}{'ratio':>8}")
    for name, value, base, ratio in [r for r in rows if not is_self_judged(r[0])]:
        typer.echo(f"{name:<48}{fmt(value):>12}{fmt(base):>12}{ratio:>8}")
    typer.echo(f"-- {SELF_JUDGED_NOTE}")
    for name, value, base, ratio in [r for r in rows if is_self_judged(r[0])]:
        typer.echo(f"{label(name):<48}{fmt(value):>12}{fmt(base):>12}{ratio:>8}")
    if "decisions" in metrics:
        typer.echo(f"\n{'right answer-or-refuse decisions by type':<48}{'n':>5}{'answerable':>12}"
                   f"{'rag-cited':>12}{'baseline':>12}")
        for kind, n, answerable, correct, base in decision_table(metrics, base_metrics):
            typer.echo(f"{kind:<48}{n:>5}{answerable:>12}{fmt(correct):>12}{fmt(base):>12}")
        other = (base_metrics or {}).get("decisions") or {}
        for key, text in (("confidently_wrong", "confidently wrong (unanswerable answered)"),
                          ("wrong_among_answered", "wrong among answered")):
            typer.echo(f"{text:<48}{'':>17}{fmt(metrics['decisions'][key]):>12}{fmt(other.get(key)):>12}")
        cal, other_cal = metrics["calibration"], (base_metrics or {}).get("calibration") or {}
        ece_label = f"calibration ECE (n={cal['n']} with a confidence)"
        typer.echo(f"{ece_label:<48}{'':>17}{fmt(cal['ece']):>12}{fmt(other_cal.get('ece')):>12}")
        typer.echo(f"{'calibration Brier':<48}{'':>17}{fmt(cal['brier']):>12}{fmt(other_cal.get('brier')):>12}")
    failing = [i for i in result["items"] if i["failed"]]
    typer.echo(f"{len(failing)} of {len(result['items'])} questions failing: "
               + ", ".join(f"{i['id']} ({i['why']})" for i in failing))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
