"""Bagging without replacement: 80 % of calibration per bag, different bags, seeded."""
import numpy as np

from trainer import bagging


def test_bags_are_80_percent_without_replacement():
    bags = bagging.draw_bags(4901, 5, 0.8, seed=3)
    assert len(bags) == 5
    for b in bags:
        assert b.size == 3920                      # the paper's 3920 of 4901
        assert np.unique(b).size == b.size         # no replacement
        assert b.min() >= 0 and b.max() < 4901


def test_bags_differ_and_are_seeded():
    a = bagging.draw_bags(500, 5, seed=1)
    b = bagging.draw_bags(500, 5, seed=1)
    c = bagging.draw_bags(500, 5, seed=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert len({tuple(x) for x in a}) == 5
    # adding bags does not change the earlier ones
    assert all(np.array_equal(x, y) for x, y in zip(bagging.draw_bags(500, 7, seed=1)[:5], a))


def test_out_of_bag_complements():
    bag = bagging.draw_bags(10, 1, seed=0)[0]
    oob = bagging.out_of_bag(10, bag)
    assert sorted(np.concatenate([bag, oob]).tolist()) == list(range(10))
    assert oob.size == 2


def test_combine_mean_and_population_std():
    mean, std = bagging.combine(np.array([[10.0, 20.0], [14.0, 20.0]]))
    assert mean.tolist() == [12.0, 20.0]
    assert std.tolist() == [2.0, 0.0]
