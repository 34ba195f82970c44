"""Kennard–Stone against worked examples and a brute-force reference."""
import numpy as np
import pytest

from s2mos_transforms.dataset import split


def reference_kennard_stone(x, k):
    """Textbook version on the full distance matrix (lowest index on ties)."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    i, j = np.unravel_index(np.argmax(d), d.shape)
    sel = [min(i, j), max(i, j)]
    while len(sel) < k:
        rest = [r for r in range(len(x)) if r not in sel]
        score = d[np.ix_(rest, sel)].min(axis=1)
        sel.append(rest[int(np.argmax(score))])
    return sel[:k]


def test_worked_example():
    # A(0,0) B(10,0) C(5,0) D(5,4) E(1,0) F(9,1)
    # 1. farthest pair A–B (10). 2. nearest-selected distances C 5, D 6.40, E 1, F 1.41 → D.
    # 3. with D: C min(5, 4) = 4, E 1, F 1.41 → C.  4. F (1.41) before E (1).
    x = np.array([[0, 0], [10, 0], [5, 0], [5, 4], [1, 0], [9, 1]], float)
    assert split.kennard_stone(x, 6).tolist() == [0, 1, 3, 2, 5, 4]
    # 6 points, 0.34 test → round(2.04) = 2 test points: the last two selected.
    assert split.kennard_stone_split(x, 0.34).tolist() == [False, False, False, False, True, True]


def test_ties_go_to_lowest_index():
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    assert split.kennard_stone(square, 4).tolist() == [0, 3, 1, 2]


@pytest.mark.parametrize("n, d, k", [(60, 10, 48), (200, 3, 150), (7, 2, 7)])
def test_matches_reference(n, d, k):
    x = np.random.default_rng(n).normal(size=(n, d))
    assert split.kennard_stone(x, k).tolist() == reference_kennard_stone(x, k)


def test_sizes_and_edges():
    assert split.n_test_for(6136, 0.2) == 1227
    assert split.n_test_for(1, 0.2) == 0
    x = np.random.default_rng(0).random((10, 3))
    assert split.kennard_stone(x, 0).tolist() == []
    assert len(split.kennard_stone(x, 1)) == 1
    assert split.kennard_stone_split(x, 0.0).sum() == 0
    with pytest.raises(ValueError):
        split.kennard_stone_split(x, 1.0)
    with pytest.raises(ValueError):
        split.kennard_stone(np.array([[0.0, np.nan], [1.0, 1.0]]), 2)


def test_held_out_site_goes_to_test_and_is_deterministic():
    rng = np.random.default_rng(1)
    x = rng.random((25, 10))
    held = np.zeros(25, bool)
    held[20:] = True
    labels = split.assign_splits(x, held, 0.2)
    assert (labels[20:] == split.TEST).all()
    assert (labels[:20] == split.CALIBRATION).sum() == 16
    # The main points are split exactly as on their own.
    alone = split.kennard_stone_split(x[:20], 0.2)
    assert ((labels[:20] == split.TEST) == alone).all()
    assert (split.assign_splits(x, held, 0.2) == labels).all()
    # test fraction 0: every main point is calibration, the site is the test set.
    labels0 = split.assign_splits(x, held, 0.0)
    assert (labels0[:20] == split.CALIBRATION).all() and (labels0[20:] == split.TEST).all()


def test_scales_to_thousands_quickly():
    import time
    x = np.random.default_rng(2).random((8400, 10))
    t = time.perf_counter()
    sel = split.kennard_stone(x, 6720)
    assert len(set(sel.tolist())) == 6720
    assert time.perf_counter() - t < 10
