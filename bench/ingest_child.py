"""`python -m bench.ingest_child DIR`: ingest in a process of its own, print the report and peak RSS as JSON."""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from index.service import RagService
from rag.settings import get_settings

if __name__ == "__main__":
    started = time.perf_counter()
    service = RagService(get_settings())
    opened = time.perf_counter()
    report = service.ingest(Path(sys.argv[1]))
    print(json.dumps({
        "added": len(report.added), "unchanged": len(report.unchanged), "chunks_written": report.chunks_written,
        "chunks_embedded": report.chunks_embedded, "ingest_seconds": report.seconds,
        "open_seconds": opened - started, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
