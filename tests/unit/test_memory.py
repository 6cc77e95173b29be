"""glibc malloc set up for a long-running server (api/memory.py), observed in a fresh process."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from api.memory import _libc

pytestmark = pytest.mark.skipif(_libc() is None, reason="glibc malloc is not available here")

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
