"""Quantile regression forest (Meinshausen 2006, JMLR 7:983–999) on scikit-learn's random forest.

A fitted forest defines, for a new x, weights over the training points: in tree t, each training
point in x's leaf gets 1 / (number of training points in that leaf), and the weights are
averaged over trees, w_i(x) = (1/T) Σ_t 1{leaf_t(X_i) = leaf_t(x)} / |leaf_t(x)|. The
conditional distribution is F(y | x) = Σ_i w_i(x) 1{Y_i ≤ y}, and the α-quantile is
Q_α(x) = inf{y : F(y | x) ≥ α}. As in Meinshausen's algorithm (and R quantregForest), the
leaves are populated with every training point dropped down the fitted trees, not only each
tree's bootstrap sample. The forest itself is grown exactly like the paper's RF
(`trainer.baselines.make_forest`: mtry, R's nodesize rule, trees).

Co-membership weights are computed as a sparse product: (test × leaves indicator) @
(leaves × train, 1/leaf size), over every tree at once, in batches of test points so the dense
weight rows (batch × n_train) stay within a fixed memory budget; the weighted quantiles are then
one cumulative sum per row over the training targets sorted once.
"""
from __future__ import annotations

import numpy as np

QUANTILES: tuple[float, ...] = (0.05, 0.50, 0.95)
_BUDGET = 8_000_000        # float64 weights held at once (64 MB)


class QuantileForest:
    """A fitted RandomForestRegressor plus its training targets and leaf memberships.

    `predict` returns the conditional **median** Q_0.5(x), not the forest's mean: it is the
    point estimate of the same conditional distribution the 5–95 % quantiles come from (so the
    point and the interval are one model, and the median always lies inside it), it minimises
    absolute rather than squared error, which suits a right-skewed target such as clay %, and
    it is what quantregForest reports (`what = 0.5`). The conditional mean under these weights is
    the ordinary forest's prediction (up to bootstrap vs all-point leaf populations) and stays
    available as `mean`. Saved with joblib like the RF bags, so `predict` is what a caller
    re-predicting from saved forests (`trainer.predictions.rf_predictions`) gets.
    """

    def __init__(self, forest):
        self.forest = forest
        self._train_t = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> "QuantileForest":
        self.forest.fit(x, y)
        self.y_train = np.asarray(y, np.float64).ravel()
        self.train_leaves = self.forest.apply(x).astype(np.int32)          # (n, T)
        self._train_t = None
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_train_t"] = None             # rebuilt from train_leaves on demand
        return state

    @property
    def n_trees(self) -> int:
        return len(self.forest.estimators_)

    def _offsets(self) -> np.ndarray:
        counts = np.asarray([e.tree_.node_count for e in self.forest.estimators_], np.int64)
        return np.concatenate([[0], np.cumsum(counts)])

    def _train_matrix(self):
        """(all nodes of all trees) × n_train, entry 1/|leaf| where the point sits in the leaf."""
        if self._train_t is None:
            from scipy import sparse
            offsets = self._offsets()
            n, t = self.train_leaves.shape
            cols = (self.train_leaves + offsets[:-1][None, :]).ravel()
            size = np.bincount(cols, minlength=offsets[-1])
            m = sparse.csr_matrix((1.0 / size[cols], cols, np.arange(0, n * t + 1, t)), shape=(n, offsets[-1]))
            self._train_t = m.T.tocsr()
        return self._train_t

    def weights(self, x: np.ndarray) -> np.ndarray:
        """Dense (len(x), n_train) weights; each row sums to 1."""
        from scipy import sparse
        offsets = self._offsets()
        leaves = self.forest.apply(x).astype(np.int64)
        b, t = leaves.shape
        cols = (leaves + offsets[:-1][None, :]).ravel()
        test = sparse.csr_matrix((np.full(b * t, 1.0 / t), cols, np.arange(0, b * t + 1, t)), shape=(b, offsets[-1]))
        return (test @ self._train_matrix()).toarray()

    def quantiles(self, x: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> np.ndarray:
        """(len(qs), len(x)) conditional quantiles, in batches of at most `_BUDGET` weights."""
        x = np.asarray(x)
        out = np.empty((len(qs), len(x)))
        if not len(x):
            return out
        order = np.argsort(self.y_train, kind="stable")
        y_sorted = self.y_train[order]
        batch = max(1, _BUDGET // max(len(y_sorted), 1))
        q = np.asarray(qs, np.float64)
        for start in range(0, len(x), batch):
            cum = np.cumsum(self.weights(x[start:start + batch])[:, order], axis=1)
            out[:, start:start + batch] = weighted_quantile_index(cum, q, y_sorted)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The conditional median (see the class docstring for why not the mean)."""
        return self.quantiles(x, (0.5,))[0]

    def mean(self, x: np.ndarray) -> np.ndarray:
        return self.forest.predict(x)


def weighted_quantile_index(cum: np.ndarray, qs: np.ndarray, y_sorted: np.ndarray) -> np.ndarray:
    """Q_α = the smallest y_sorted[j] whose cumulative weight reaches α·total, per row: (len(qs), rows).

    `cum` is the row-wise cumulative sum of weights over y_sorted. A relative tolerance of 1e-9
    absorbs float rounding in the sums (a weight of exactly α would otherwise be missed).
    """
    total = cum[:, -1:]
    idx = (cum[None, :, :] < (qs[:, None, None] * total[None] * (1.0 - 1e-9))).sum(2)
    return y_sorted[np.minimum(idx, len(y_sorted) - 1)]


def fit_qrf(x: np.ndarray, y: np.ndarray, params: dict, seed: int, n_jobs: int = -1) -> QuantileForest:
    """A quantile forest grown with the RF's selected parameters (mtry, nodesize, trees)."""
    from trainer import baselines

    forest = baselines.make_forest(params["trees"], min(params["mtry"], x.shape[1]), params["min_node_size"],
                                   seed, n_jobs)
    return QuantileForest(forest).fit(x, y)
