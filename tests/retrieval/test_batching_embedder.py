"""Concurrent query encodings share batches and still get exactly their own vectors."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from retrieval.embedding import BatchingEmbedder, HashingEmbedder


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.gate = threading.Event()

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        self.gate.wait(5)  # hold the first batch so the others queue behind it
        self.calls.append(len(texts))
        return super().encode_queries(texts)


def test_concurrent_queries_are_batched_and_answered_with_their_own_vectors():
    inner = CountingEmbedder()
    embedder = BatchingEmbedder(inner)
    texts = [[f"房贷提前还款 {i}", f"数字人民币 {i}"] for i in range(12)]
    results: dict[int, np.ndarray] = {}

    def ask(i: int) -> None:
        results[i] = embedder.encode_queries(texts[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    inner.gate.set()
    for t in threads:
        t.join(10)
    plain = HashingEmbedder()
    for i in range(12):
        np.testing.assert_allclose(results[i], plain.encode_queries(texts[i]))
    assert sum(inner.calls) == 24 and len(inner.calls) < 12  # fewer forward passes than requests


def test_an_error_reaches_every_waiting_caller_and_the_embedder_keeps_working():
    class Failing(HashingEmbedder):
        fail = True

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            if self.fail:
                self.fail = False
                raise RuntimeError("model crashed")
            return super().encode_queries(texts)

    embedder = BatchingEmbedder(Failing())
    with pytest.raises(RuntimeError, match="model crashed"):
        embedder.encode_queries(["你好"])
    assert embedder.encode_queries(["你好"]).shape == (1, 128)
    assert embedder.encode_passages(["段落"]).shape == (1, 128)


def test_recent_query_vectors_are_reused_and_the_cache_is_bounded():
    class Recording(HashingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            self.seen.extend(texts)
            return super().encode_queries(texts)

    inner = Recording()
    embedder = BatchingEmbedder(inner, cache=2)
    plain = HashingEmbedder()
    first = embedder.encode_queries(["房贷利率", "信用卡年费", "房贷利率"])
    np.testing.assert_allclose(first, plain.encode_queries(["房贷利率", "信用卡年费", "房贷利率"]))
    assert inner.seen == ["房贷利率", "信用卡年费"]  # a repeat inside one call is encoded once
    embedder.encode_queries(["信用卡年费", "房贷利率"])
    assert inner.seen == ["房贷利率", "信用卡年费"]  # both came from the cache
    embedder.encode_queries(["數字人民幣"])  # evicts the least recently used (房贷利率 was used last, so 信用卡年费 goes)
    embedder.encode_queries(["房贷利率"])
    assert inner.seen == ["房贷利率", "信用卡年费", "數字人民幣"]
    embedder.encode_queries(["信用卡年费"])
    assert inner.seen[-1] == "信用卡年费" and not embedder.busy
