"""Dense embedders behind one Protocol: a local sentence-transformers folder, or a deterministic fake for tests."""
from __future__ import annotations

import hashlib
import os
import threading
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

    def __init__(self, path: Path, *, batch_size: int = 8, device: str = "cpu") -> None:
        self.path = Path(path)
        self.batch_size = batch_size
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

    def _encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        self.warm_up()
        model = self._model
        prompt = prompt_name if prompt_name in (model.prompts or {}) else None  # type: ignore[union-attr]
        vectors = model.encode(  # type: ignore[union-attr]
            texts, prompt_name=prompt, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "passage")


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
