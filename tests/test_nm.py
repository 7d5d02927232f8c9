"""The numpy selection rule: n per group, ties to the lower channel, padding never kept."""

from __future__ import annotations

import numpy as np
import pytest

from accelsim.nm import compressed_length, metadata_bits_per_group, nm_mask, parse_pattern, topk_mask


def _brute(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    t, k = scores.shape
    out = np.zeros_like(scores, dtype=bool)
    for r in range(t):
        for g0 in range(0, k, m):
            idx = list(range(g0, min(g0 + m, k)))
            idx.sort(key=lambda j: (-scores[r, j], j))
            out[r, idx[:n]] = True
    return out


@pytest.mark.parametrize(("n", "m"), [(1, 2), (2, 4), (4, 8), (8, 16), (16, 32), (3, 7), (5, 5)])
@pytest.mark.parametrize("k", [32, 37, 3])
def test_matches_brute_force_with_ties_and_padding(n, m, k):
    rng = np.random.default_rng(n * 100 + m + k)
    scores = rng.integers(0, 4, size=(6, k)).astype(np.float16)  # many ties
    got = nm_mask(scores, n, m)
    assert np.array_equal(got, _brute(scores.astype(np.float64), n, m))
    per_group = [got[:, g : g + m].sum(axis=1) for g in range(0, k, m)]
    for g, cnt in zip(range(0, k, m), per_group, strict=True):
        assert (cnt == min(n, min(m, k - g))).all()


def test_ties_keep_lower_index():
    assert nm_mask(np.ones(4), 2, 4).tolist() == [True, True, False, False]


def test_nan_is_rejected_and_bad_patterns():
    with pytest.raises(ValueError, match="NaN"):
        nm_mask(np.array([np.nan, 1.0]), 1, 2)
    with pytest.raises(ValueError, match="1 <= n <= m"):
        nm_mask(np.ones(4), 5, 4)
    with pytest.raises(ValueError, match="n:m"):
        parse_pattern("8-16")
    assert parse_pattern("8:16") == (8, 16)


def test_topk_is_one_group_over_the_row():
    x = np.array([[0.1, 5, 3, 3, -7, 0]])
    assert topk_mask(np.abs(x), 0.5).tolist() == [[False, True, True, False, True, False]]


def test_metadata_and_compressed_length():
    assert metadata_bits_per_group(2, 4, "index") == 4
    assert metadata_bits_per_group(8, 16, "index") == 32
    assert metadata_bits_per_group(16, 32, "index") == 80
    assert metadata_bits_per_group(8, 16, "bitmask") == 16
    assert compressed_length(576, 2, 4) == 288
    assert compressed_length(37, 4, 8) == 20
