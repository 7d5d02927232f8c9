"""The torch N:M rule (accelsim.accuracy.masks) gives exactly the numpy rule's masks (accelsim.nm): random
data with many ties (integer-valued float16), K % m != 0, infinities, signed zeros, every pattern."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from accelsim import nm  # noqa: E402
from accelsim.accuracy import masks  # noqa: E402

PATTERNS = [(2, 4), (4, 8), (8, 16), (16, 32), (1, 2), (3, 7), (1, 1), (5, 5), (7, 8), (1, 32)]


def _both(scores: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    return nm.nm_mask(scores, n, m), masks.nm_mask(torch.from_numpy(scores), n, m).numpy()


@pytest.mark.parametrize(("n", "m"), PATTERNS)
@pytest.mark.parametrize("k", [64, 576, 37, 3, 1, 100])
def test_identical_masks_with_many_ties(n, m, k):
    rng = np.random.default_rng(1000 * n + 10 * m + k)
    for levels in (2, 4, 50):  # 2 levels: almost every group is decided by the tie rule
        scores = rng.integers(0, levels, size=(40, k)).astype(np.float16)
        a, b = _both(scores, n, m)
        assert a.dtype == b.dtype == np.bool_
        assert np.array_equal(a, b)


@pytest.mark.parametrize(("n", "m"), PATTERNS)
@pytest.mark.parametrize("k", [96, 45])
def test_identical_masks_on_continuous_data(n, m, k):
    """No ties: the fast path (keep = score >= n-th largest) must agree too."""
    rng = np.random.default_rng(n + m + k)
    x = rng.standard_normal((64, k)).astype(np.float32)
    a, b = _both(np.abs(x), n, m)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_identical_masks_signed_scores_infinities_and_zeros(dtype):
    rng = np.random.default_rng(7)
    scores = rng.integers(-3, 4, size=(50, 70)).astype(dtype)
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    scores[rng.random(scores.shape) < 0.05] = np.inf
    scores[rng.random(scores.shape) < 0.1] = -0.0  # equal to +0.0 for both rules
    for n, m in PATTERNS:
        a, b = _both(scores, n, m)
        assert np.array_equal(a, b), (n, m)


def test_unstructured_topk_identical():
    rng = np.random.default_rng(3)
    for k in (576, 1536, 37, 1):
        scores = rng.integers(0, 5, size=(20, k)).astype(np.float16)
        for density in (0.5, 0.25, 0.01, 0.999, 1.0, 0.3333):
            a = nm.topk_mask(scores, density)
            b = masks.topk_mask(torch.from_numpy(scores), density).numpy()
            assert np.array_equal(a, b), (k, density)
            assert (b.sum(axis=1) == masks.topk_n(k, density)).all()


def test_batched_shape_equals_flattened_rows():
    """``[B, T, K]`` tensors (a model's linear inputs) are masked row by row like ``[B*T, K]``."""
    rng = np.random.default_rng(5)
    s = rng.integers(0, 3, size=(3, 11, 40)).astype(np.float32)
    b = masks.nm_mask(torch.from_numpy(s), 4, 8).numpy()
    assert b.shape == s.shape
    assert np.array_equal(b.reshape(-1, 40), nm.nm_mask(s.reshape(-1, 40), 4, 8))


def test_rule_by_hand_ties_and_padding():
    t = torch.tensor
    assert masks.nm_mask(t([1.0, 1.0, 1.0, 1.0]), 2, 4).tolist() == [True, True, False, False]
    assert masks.nm_mask(t([0.0, 2.0, 2.0, 1.0]), 2, 4).tolist() == [False, True, True, False]
    # K = 6, m = 4: the padded last group has 2 real entries, both kept with n = 2 (pads never)
    assert masks.nm_mask(t([1.0, 2.0, 3.0, 4.0, 0.0, 0.0]), 2, 4).tolist() == [False, False, True, True, True, True]
    # K = 5: one real entry in the last group is kept even when it is -inf (a pad never wins)
    got = masks.nm_mask(t([1.0, 2.0, 3.0, 4.0, float("-inf")]), 2, 4).tolist()
    assert got == [False, False, True, True, True]
    # unstructured: n = round(density * K), at least 1
    assert masks.topk_mask(t([[3.0, 1.0, 2.0]]), 0.01).tolist() == [[True, False, False]]


def test_exactly_n_per_group():
    rng = np.random.default_rng(11)
    s = torch.from_numpy(rng.integers(0, 3, size=(30, 77)).astype(np.float16))
    for n, m in PATTERNS:
        keep = masks.nm_mask(s, n, m)
        for g0 in range(0, 77, m):
            real = min(m, 77 - g0)
            assert (keep[:, g0 : g0 + m].sum(1) == min(n, real)).all(), (n, m, g0)


def test_errors_match_numpy_rule():
    with pytest.raises(ValueError, match="NaN"):
        masks.nm_mask(torch.tensor([float("nan"), 1.0]), 1, 2)
    with pytest.raises(ValueError, match="1 <= n <= m"):
        masks.nm_mask(torch.ones(4), 3, 2)
    with pytest.raises(TypeError):
        masks.nm_mask(torch.ones(4), 2.0, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="density"):
        masks.topk_mask(torch.ones(4), 0.0)
