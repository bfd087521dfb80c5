"""Fusion as pure functions: RRF and the convex score combination."""
from __future__ import annotations

import pytest

from retrieval.fuse import convex, rrf


def test_rrf_sums_reciprocal_ranks_with_weights():
    scores = rrf([["a", "b"], ["b", "c"]], k=60, weights=[2.0, 1.0])
    assert scores["a"] == pytest.approx(2 / 61)
    assert scores["b"] == pytest.approx(2 / 62 + 1 / 61)
    assert scores["c"] == pytest.approx(1 / 62)
    with pytest.raises(ValueError):
        rrf([["a"]], weights=[1.0, 2.0])


def test_convex_scales_both_signals_and_fills_missing_ids():
    scores = convex({"a": 0.9, "b": 0.8, "c": 0.7}, {"b": 10.0, "d": 5.0}, dense_weight=0.5)
    assert scores["a"] == pytest.approx(0.5)          # best cosine, no shared term
    assert scores["b"] == pytest.approx(0.25 + 0.5)   # middle cosine, best BM25
    assert scores["c"] == pytest.approx(0.0)
    assert scores["d"] == pytest.approx(0.0 + 0.25)   # not returned by dense: that list's minimum
    assert max(scores, key=scores.get) == "b"


def test_convex_edge_cases():
    assert convex({}, {}) == {}
    assert convex({"a": 0.5}, {}) == {"a": pytest.approx(0.5)}  # a single candidate is the best one
    assert convex({}, {"a": 0.0}) == {"a": 0.0}
    with pytest.raises(ValueError):
        convex({"a": 1.0}, {}, dense_weight=1.5)


def test_convex_with_names_gives_them_their_share_scaled_like_dense():
    dense, sparse = {"a": 0.9, "b": 0.7}, {"b": 4.0}
    names = {"a": 0.80, "b": 0.95, "n": 0.85}
    scores = convex(dense, sparse, dense_weight=0.5, names=names, name_weight=0.4)
    assert scores["a"] == pytest.approx(0.6 * 0.5 + 0.4 * 0.0)        # best cosine, worst name
    assert scores["b"] == pytest.approx(0.6 * 0.5 + 0.4 * 1.0)        # best BM25 and best name
    assert scores["n"] == pytest.approx(0.6 * 0.0 + 0.4 * (0.05 / 0.15))  # found by its name alone
    # no names (a store whose names are not indexed yet): exactly the two-signal fusion
    assert convex(dense, sparse, names={}, name_weight=0.4) == convex(dense, sparse)
    with pytest.raises(ValueError):
        convex(dense, sparse, names=names, name_weight=-0.1)
