"""How the ONNX embedder cuts a batch into onnxruntime runs (rag/embeddings.py)."""

import numpy as np

from rag.embeddings import TOKENS_PER_RUN, run_slices


def _mask(lengths: list[int], width: int = 300) -> np.ndarray:
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return mask


def test_runs_keep_rows_times_longest_row_within_the_budget():
    lengths = [10, 256, 256, 3, 256]
    slices = run_slices(_mask(lengths), budget=600)
    assert slices == [slice(0, 2), slice(2, 4), slice(4, 5)]
    for s in slices:
        rows = lengths[s]
        assert len(rows) * max(rows) <= 600


def test_every_row_is_in_exactly_one_run_in_order_and_a_long_row_runs_alone():
    rng = np.random.default_rng(3)
    lengths = [int(n) for n in rng.integers(1, 257, 200)]
    slices = run_slices(_mask(lengths), budget=TOKENS_PER_RUN)
    assert [i for s in slices for i in range(len(lengths))[s]] == list(range(len(lengths)))
    assert run_slices(_mask([256, 256]), budget=100) == [slice(0, 1), slice(1, 2)]  # over budget alone: still run


def test_short_texts_share_a_run():
    assert run_slices(_mask([12] * 100)) == [slice(0, 100)]  # 1,200 pieces: one run
    assert len(run_slices(_mask([256] * 32))) == 4  # 32 full passages: runs of 8
