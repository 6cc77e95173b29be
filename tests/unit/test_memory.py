"""Giving freed malloc memory back to the system (api/memory.py), measured as RSS in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from api.memory import _libc

pytestmark = pytest.mark.skipif(_libc() is None, reason="glibc's malloc_trim is not available here")

# 150,000 blocks of 1 kB from malloc's heap, all freed but the last (which pins the heap's top, so malloc
# cannot shrink it by itself): ~150 MB that the process holds and does not use.
SCRIPT = textwrap.dedent("""
    import ctypes, json, sys, time
    from api.memory import MemoryTrimmer, release_free_memory

    def rss_mb():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = []
    for _ in range(150_000):
        p = libc.malloc(1024)
        libc.memset(p, 1, 1024)
        blocks.append(p)
    for p in blocks[:-1]:
        libc.free(p)
    before = rss_mb()
    how = sys.argv[1]
    released = None
    if how == "call":
        released = release_free_memory()
    elif how.startswith("trimmer"):
        trimmer = MemoryTrimmer(float(how.split(":")[1])).start()
        time.sleep(1.0)
        trimmer.stop()
    print(json.dumps({"before": before, "after": rss_mb(), "released": released}))
""")


def _measure(how: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_release_free_memory_returns_freed_heap_pages():
    kept = _measure("none")
    trimmed = _measure("call")
    assert kept["after"] > kept["before"] - 20  # freed but held: malloc keeps it
    assert trimmed["released"] is True
    assert trimmed["after"] < trimmed["before"] - 100


def test_trimmer_releases_on_its_interval_and_zero_turns_it_off():
    running = _measure("trimmer:0.05")
    assert running["after"] < running["before"] - 100
    off = _measure("trimmer:0")
    assert off["after"] > off["before"] - 20


MMAP_SCRIPT = textwrap.dedent("""
    import ctypes, json, sys
    from api.memory import tune_malloc

    class MallInfo(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                    "fsmblks", "uordblks", "fordblks", "keepcost")]

    if sys.argv[1] == "tuned":
        tune_malloc()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallinfo2.restype = MallInfo
    libc.free(libc.malloc(4 << 20))  # a 4 MB buffer, freed at once (an embedding batch)
    before = libc.mallinfo2().hblks
    again = libc.malloc(4 << 20)  # the next one
    print(json.dumps({"mmapped_blocks": libc.mallinfo2().hblks - before}))
""")


def _mmapped_blocks(how: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", MMAP_SCRIPT, how], capture_output=True, text=True, check=True,
                         timeout=60, env=env)
    return json.loads(out.stdout)["mmapped_blocks"]


def test_tuned_malloc_keeps_large_buffers_out_of_the_arenas():
    # glibc alone: freeing the first buffer raises its threshold, so the second one is carved from the heap
    assert _mmapped_blocks("default") == 0
    assert _mmapped_blocks("tuned") == 1  # straight from the system, and back to it when freed
