"""RF grid search on calibration: the paper's grid, capped mtry, exact tree-count prefixes."""
import numpy as np

from trainer import baselines


def _data(n=80, f=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, f))
    y = np.tanh(0.8 * x[:, 0] - 0.5 * x[:, 1] + 0.1 * rng.normal(size=n))
    return x, y


def test_paper_grid_values():
    g = baselines.PAPER_GRID
    assert g.mtry == (6, 24) and g.min_node_size == (5, 10, 20, 50) and g.trees == (500, 1000, 1500)
    assert baselines.effective_mtry(g.mtry, 12) == (6, 12)
    assert baselines.effective_mtry(g.mtry, 4) == (4,)


def test_warm_start_prefix_equals_separate_forest():
    """Scoring 10 then 20 trees by growing one forest = fitting a 20-tree forest with the same seed."""
    x, y = _data()
    grown = baselines.make_forest(10, 6, 5, seed=4, n_jobs=1, warm_start=True).fit(x, y)
    grown.set_params(n_estimators=20).fit(x, y)
    fresh = baselines.make_forest(20, 6, 5, seed=4, n_jobs=1).fit(x, y)
    np.testing.assert_array_equal(grown.predict(x), fresh.predict(x))


def test_fit_rf_uses_r_nodesize():
    x, y = _data()
    rf = baselines.fit_rf(x, y, {"trees": 5, "mtry": 24, "min_node_size": 10}, seed=0, n_jobs=1)
    assert rf.max_features == 12 and rf.min_samples_split == 11 and rf.min_samples_leaf == 1


def test_select_rf_table_and_choice():
    x, y = _data()
    grid = baselines.RFGrid(mtry=(6, 24), min_node_size=(5, 50), trees=(10, 20))
    best, table = baselines.select_rf(x, y, grid, folds=3, seed=0, n_jobs=1)
    assert len(table) == 2 * 2 * 2
    assert {r["mtry"] for r in table} == {6, 12}
    winner = min(table, key=lambda r: r["cv_rmse"])
    assert best["mtry"] == winner["mtry"] and best["min_node_size"] == winner["min_node_size"]
    again, table2 = baselines.select_rf(x, y, grid, folds=3, seed=0, n_jobs=1)
    assert again == best and table2 == table


def test_grouped_folds_keep_a_point_in_one_fold():
    x, y = _data(90)
    groups = np.repeat(np.arange(30), 3)
    for tr, va in baselines._fold_iter(90, groups, 5, seed=0):
        assert not set(groups[tr]) & set(groups[va])


def test_per_date_batch_size_keeps_steps_per_epoch():
    assert baselines.per_date_batch_size(8, rows=20000, points=1000) == 160
    assert baselines.per_date_batch_size(8, rows=10, points=100) == 8
