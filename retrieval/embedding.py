"""Dense embedders behind one Protocol: a local sentence-transformers folder, or a deterministic fake for tests."""
from __future__ import annotations

import hashlib
import os
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kb.errors import Unavailable


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; queries and passages may be encoded differently."""

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder only; never reaches a hub.

    e5-style models carry `query` / `passage` prompts in their config and get them applied; models
    without prompts (bge, …) encode the raw text.
    """

    def __init__(self, path: Path, *, batch_size: int = 8, query_batch_size: int = 8, device: str = "cpu") -> None:
        self.path = Path(path)
        self.batch_size, self.query_batch_size = batch_size, query_batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.path.name

    def warm_up(self) -> None:
        """Load the model once (idempotent); a missing folder names the command that makes it."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
                raise Unavailable(
                    f"嵌入模型不存在 embedding model not found at {self.path}: run `zhiku models prepare` "
                    "(or set ZHIKU_EMBED_MODEL to a local sentence-transformers folder)"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)

    @property
    def dim(self) -> int:
        self.warm_up()
        return int(self._model.get_embedding_dimension())  # type: ignore[union-attr]

    def _encode(self, texts: list[str], prompt_name: str, batch_size: int) -> np.ndarray:
        self.warm_up()
        model = self._model
        prompt = prompt_name if prompt_name in (model.prompts or {}) else None  # type: ignore[union-attr]
        vectors = model.encode(  # type: ignore[union-attr]
            texts, prompt_name=prompt, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query", self.query_batch_size)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "passage", self.batch_size)


class BatchingEmbedder:
    """Query encodings from concurrent requests share forward passes: while the model runs one batch,
    new queries wait and go together in the next. An idle server adds no delay; a busy one encodes
    many queries for little more than the price of one. Passages pass straight through."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64) -> None:
        self.inner, self.max_batch = inner, max_batch
        self._pending: queue.SimpleQueue[tuple[list[str], Future[np.ndarray]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def name(self) -> str:
        return self.inner.name

    def warm_up(self) -> None:
        warm = getattr(self.inner, "warm_up", None)
        if warm is not None:
            warm()

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.encode_passages(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.inner.encode_queries([])
        done: Future[np.ndarray] = Future()
        self._pending.put((list(texts), done))
        self._ensure_thread()
        return done.result()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="zhiku-query-embedder", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            size = len(batch[0][0])
            while size < self.max_batch:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
                size += len(batch[-1][0])
            try:
                vectors = self.inner.encode_queries([t for texts, _ in batch for t in texts])
            except Exception as exc:  # every waiting request gets the error, the thread lives on
                for _, done in batch:
                    done.set_exception(exc)
                continue
            start = 0
            for texts, done in batch:
                done.set_result(vectors[start:start + len(texts)])
                start += len(texts)


class HashingEmbedder:
    """Deterministic bag-of-character-n-grams vectors: no model, for tests of the plumbing only."""

    def __init__(self, dim: int = 128) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(self._dim, dtype=np.float32)
        grams = [text[i : i + n] for n in (1, 2) for i in range(len(text) - n + 1)]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "big") % self._dim] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vector))
        if norm == 0:
            vector[0] = 1.0
            return vector
        return vector / norm

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self._dim), np.float32)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.encode_queries(texts)
