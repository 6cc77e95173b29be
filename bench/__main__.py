"""`python -m bench [--quick] [--only ingest,serve,scale,local,soak,jobs] [--model 1.5b] [--docs N] [--chunks N] [--soak-seconds S] [--json-out F]`

Measures every performance target of the service on this machine in one run,
beside the plain llama-index baseline where one exists, prints a table
(target, measured, pass/fail, baseline, ratio) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any, Callable

SECTIONS = ("ingest", "serve", "scale", "local", "soak", "jobs")
# local needs the `local` extra and takes minutes per configuration; soak takes ten minutes; jobs ~5 minutes
# (`--only soak --json-out bench/results/soak.json`)
DEFAULT_SECTIONS = ("ingest", "serve", "scale")


def targets(r: dict[str, Any]) -> list[tuple[str, str, Any, bool | None, Any, str]]:
    """(name, target, measured, passed, baseline, unit) for every measured figure."""
    rows: list[tuple[str, str, Any, bool | None, Any, str]] = []

    def add(name: str, target: str, value: Any, ok: Callable[[Any], bool] | None, baseline: Any = None,
            unit: str = "") -> None:
        rows.append((name, target, value, None if ok is None or value is None else bool(ok(value)), baseline, unit))

    if "ingest" in r:
        i = r["ingest"]
        add(f"ingest chunks/s ({i['documents']} docs, {i['chunks']} chunks)", "≥ 80% of encoder",
            i["product_chunks_per_s"], lambda v: v >= 0.8 * i["encoder_chunks_per_s"], i["baseline_chunks_per_s"])
        add("raw encoder chunks/s (same chunks, same batch)", "the limit", i["encoder_chunks_per_s"], None)
        add("ingest peak RSS", "≤ 1536 MB", i["peak_rss_mb"], lambda v: v <= 1536, unit="MB")
        add(f"re-ingest unchanged {i['documents']} docs (in process)", "≤ 10 s", i["reingest_seconds"],
            lambda v: v <= 10, unit="s")
        add("re-ingest unchanged, whole `rag ingest` process", "", i["reingest_wall_seconds"], None, unit="s")
        lat = i["synthetic_latency"]
        for p in ("p50", "p95"):
            add(f"answer {p} on the synthetic corpus (in process)", "", lat["product"][p], None,
                lat["baseline"][p], "ms")
        add("synthetic: unique fact found in the answer", "", lat["product"]["found"], None,
            lat["baseline"]["found"])
    if "serve" in r:
        s = r["serve"]
        add("cold start, existing store → first answer", "≤ 10 s", s["cold_start_existing_s"], lambda v: v <= 10,
            unit="s")
        add("cold start, empty data dir → first answer", "≤ 25 s", s["cold_start_empty_s"], lambda v: v <= 25,
            unit="s")
        add("/v1/ask p50 (HTTP, warm, sequential)", "≤ 150 ms", s["ask_p50_ms"], lambda v: v <= 150,
            s["baseline_in_process"]["p50"], "ms")
        add("/v1/ask p95 (HTTP, warm, sequential)", "≤ 300 ms", s["ask_p95_ms"], lambda v: v <= 300,
            s["baseline_in_process"]["p95"], "ms")
        c = s["concurrent"]
        add(f"throughput, {c['clients']} clients ({c['requests']} req, {c['errors']} errors)", "≥ 20 req/s, 0 errors",
            c["rps"], lambda v: v >= 20 and c["errors"] == 0, unit="req/s")
        add("stream: `sources` event p95", "≤ 150 ms", s["stream"]["sources_p95"], lambda v: v <= 150, unit="ms")
        add("stream: first `delta` p95", "≤ 300 ms", s["stream"]["delta_p95"], lambda v: v <= 300, unit="ms")
        add("serving RSS, bundled corpus", "≤ 800 MB", s["serve_rss_mb"], lambda v: v <= 800, unit="MB")
        add("answer p50 in process (product vs baseline)", "", s["product_in_process"]["p50"], None,
            s["baseline_in_process"]["p50"], "ms")
    if "scale" in r:
        for mode in ("embedded", "server", "postgres"):
            m = r["scale"].get(mode)
            if not m:
                continue
            limit = 60 if mode == "postgres" else 50  # the replicas issue's target for the shared stores
            add(f"{mode}: retrieval p95 at {m['chunks']} chunks", f"≤ {limit} ms", m["retrieve_p95_ms"],
                lambda v, limit=limit: v <= limit, unit="ms")
            add(f"{mode}: /v1/ask p95 at {m['chunks']} chunks", "≤ 400 ms", m["ask_http_p95_ms"], lambda v: v <= 400,
                unit="ms")
            add(f"{mode}: added document answerable after", "≤ 2 s", m["add_visible_s"],
                lambda v: v <= 2 and m["add_found"], unit="s")
        for n in (1, 2):
            t = r["scale"].get(f"replicas_{n}")
            if t:
                add(f"postgres: throughput, {n} replica(s), {t['clients']} clients ({t['requests']} req, "
                    f"{t['errors']} errors, p95 {t['p95_ms']:.0f} ms)", "report", t["rps"], None,
                    r["scale"]["replicas_1"]["rps"] if n == 2 else None, "req/s")
    if "local" in r:
        loc = r["local"]
        base = loc["passages_2_threads"]
        for name, label in (("sentences_2_threads", "2 threads"), ("sentences_1_thread", "1 thread")):
            m = loc[name]
            add(f"local {loc['model']}, {label}: answer p50 ({m['questions']} gated dev questions)", "≤ 15 s",
                m["total_p50_s"], lambda v: v <= 15, base["total_p50_s"], "s")
            add(f"local {loc['model']}, {label}: first streamed token p50", "≤ 5 s", m["first_token_p50_s"],
                lambda v: v <= 5, base["first_token_p50_s"], "s")
        add("local: answer p95, 2 threads", "", loc["sentences_2_threads"]["total_p95_s"], None, base["total_p95_s"],
            "s")
        add("extractive: answer p50, same questions", "", loc["extractive"]["total_p50_s"], None, None, "s")
        if "extractive_checked_2_threads" in loc:  # results written before the reading check lack it
            checked = loc["extractive_checked_2_threads"]
            add("extractive + reading check (local, 2 threads): answer p50", "", checked["total_p50_s"], None,
                loc["extractive"]["total_p50_s"], "s")
            add("extractive + reading check: answer p95", "", checked["total_p95_s"], None,
                loc["extractive"]["total_p95_s"], "s")
    if "jobs" in r:
        j = r["jobs"]
        for m in j["settings"]:
            label = f"{m['job_threads']} job thread{'s' if m['job_threads'] > 1 else ''}"
            add(f"/v1/ask p95 while a {j['upload_bytes'] / 1e6:.0f} MB upload is ingested, {label} "
                f"({m['asks_during']} asks, {m['errors']} errors)", "≤ 2× idle", m["during_p95_ms"],
                lambda v, m=m: v <= 2 * m["idle_p95_ms"] and m["errors"] == 0, m["idle_p95_ms"], "ms")
            add(f"upload job embedding rate, {label}", "", m["job_chunks_per_s"], None, unit="chunks/s")
    if "soak" in r:
        k = r["soak"]
        a, b, f = k["ask_start"], k["ask_end"], k["final"]
        add(f"soak: errors ({k['requests']} requests in {k['seconds']:.0f} s and {k['warm_up']['requests']} in the "
            f"warm-up, {k['clients']} clients, {k['backoffs_429']} 429s)", "0", k["errors"], lambda v: v == 0)
        add("soak: throughput, mixed traffic", "", k["rps"], None, unit="req/s")

        def change(ratio: float | None) -> float | None:
            """end/start as a change in percent."""
            return None if ratio is None else (ratio - 1) * 100

        for p in ("p50", "p95"):
            add(f"soak: /v1/ask {p} drift, end vs start ({a[p + '_ms'] or 0:.1f} → {b[p + '_ms'] or 0:.1f} ms)",
                "≤ +20%", change(k[f"drift_{p}"]), lambda v: v <= 20, unit="%")
        add(f"soak: RSS growth, end vs start window medians ({k['rss_start_mb']:.0f} → {k['rss_end_mb']:.0f} MB)", "≤ +10%",
            change(k["rss_growth"]), lambda v: v <= 10, unit="%")
        add("soak: RSS growth over the second half", "", change(k["rss_growth_second_half"]), None, unit="%")
        server_mb, children_mb = k["rss_server_mb"], k["rss_children_mb"]
        add(f"soak: … of it the server process alone ({server_mb['start']:.0f} → {server_mb['end']:.0f} MB)", "",
            change(k["rss_growth_server"]), None, unit="%")
        add(f"soak: … and its parse workers ({children_mb['start']:.0f} → {children_mb['end']:.0f} MB)", "",
            children_mb["end"] - children_mb["start"], None, unit="MB")
        add("soak: RSS idle → after the warm-up (every client on every path once)", "", k["rss_after_warm_up_mb"],
            None, k["rss_idle_mb"], "MB")
        add(f"soak: uploaded and not deleted, listed at the end (of {f['ledger']})", "all", f["present"],
            lambda v: v == f["ledger"] and not f["deleted_still_listed"])
        add(f"soak: … answering “Where is <code>?”, citing themselves (of {f['answer_checked']} asked)", "all",
            f["answerable"], lambda v: v == f["answer_checked"])
        add("soak: … answering “Where does the soak beacon <code> stand?” (every note has those words)", "",
            f["answerable_worded"], None)
        during = k["during"]
        add(f"soak: live notes' facts cited during the run (of {during.get('facts_asked', 0)} asked)", "",
            during.get("facts_cited", 0), None)
        add("soak: server log lines at WARNING or above", "", k["server_log"]["warnings_or_worse"], None)
    return rows


def render(rows: list[tuple]) -> str:
    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:,.1f}" if isinstance(v, float) else str(v)

    lines = ["| measure | target | measured | pass | baseline | ratio |", "|---|---|---|---|---|---|"]
    for name, target, value, ok, base, unit in rows:
        ratio = f"{value / base:.2f}×" if isinstance(value, (int, float)) and base else ""
        verdict = "–" if ok is None else "pass" if ok else "FAIL"
        lines.append(f"| {name} | {target} | {fmt(value)} {unit} | {verdict} | {fmt(base)} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole run in about two minutes")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated subset of {SECTIONS} (default: {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--model", default="1.5b", help="local section: 1.5b, 0.5b or a .gguf path")
    parser.add_argument("--docs", type=int, help="synthetic documents for the ingest run (default 2000; quick 24)")
    parser.add_argument("--chunks", type=int, help="chunks in the scale store (default 100000; quick 3000)")
    parser.add_argument("--no-server", action="store_true", help="skip the `chroma run` scale measurement")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite",
                        help="scale section: postgres also measures PostgreSQL + a `chroma run` server and 1 vs 2 "
                             "replicas (needs Debian's postgresql 15)")
    parser.add_argument("--soak-seconds", type=float,
                        help="soak section: seconds of mixed traffic (default 600; quick 60; at least 10)")
    parser.add_argument("--json-out", type=Path, help="write all figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    docs = args.docs or (24 if args.quick else 2000)
    soak_seconds = args.soak_seconds or (60.0 if args.quick else 600.0)
    if soak_seconds < 10:
        parser.error("--soak-seconds must be at least 10")
    chunks = args.chunks or (3000 if args.quick else 100_000)
    result: dict[str, Any] = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, "
                              f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
                              "quick": args.quick}
    started = time.perf_counter()
    if "ingest" in only:
        from bench import ingest_bench

        print(f"ingest: {docs} synthetic documents …", file=sys.stderr)
        result["ingest"] = ingest_bench.run(docs)
    if "serve" in only:
        from bench import serve_bench

        print("serve: cold starts, latency, throughput, streaming …", file=sys.stderr)
        result["serve"] = serve_bench.run(args.quick)
    if "scale" in only:
        from bench import scale_bench

        print(f"scale: {chunks} chunks …", file=sys.stderr)
        result["scale"] = scale_bench.run(chunks, args.quick, server_mode=not args.no_server, backend=args.backend)
    if "local" in only:
        from bench import local_bench

        print(f"local: the {args.model} model, streamed answers beside the extractive mode …", file=sys.stderr)
        result["local"] = local_bench.run(args.model, questions=4 if args.quick else 8)
    if "jobs" in only:
        from bench import jobs_bench

        print("jobs: asking while a big upload is ingested …", file=sys.stderr)
        result["jobs"] = jobs_bench.run(args.quick)
    if "soak" in only:
        from bench import soak_bench

        print(f"soak: {soak_seconds:.0f} s of mixed traffic from {soak_bench.CLIENTS} clients …", file=sys.stderr)
        result["soak"] = soak_bench.run(soak_seconds)
    result["seconds"] = time.perf_counter() - started
    rows = targets(result)
    result["table"] = [dict(zip(("measure", "target", "measured", "passed", "baseline", "unit"), r)) for r in rows]
    print(render(rows))
    print(f"\n{result['machine']}; {result['date']}; {result['seconds']:.0f} s")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
