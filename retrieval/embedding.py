"""Dense embedders behind one Protocol: a local sentence-transformers folder (through its int8 or fp32 ONNX
export when there is one), or a deterministic fake for tests."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from kb.errors import Unavailable
from kb.lru import Lru

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; queries and passages may be encoded differently."""

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


Encoder = Literal["int8", "onnx", "torch"]
#: What the int8 export adds to an embedder's name: the index records it, `encoder_for` reads it back.
INT8_SUFFIX = "+int8"

#: The model's ONNX exports (sentence-transformers' own `onnx/` layout), each with a marker written last by
#: `zhiku models prepare` naming the weights it came from: `fp32` gives the same vectors as PyTorch, `int8`
#: (dynamic quantisation of its matrix products) vectors of its own at half the cost.
ONNX_VARIANTS: dict[str, tuple[Path, Path]] = {
    "fp32": (Path("onnx") / "model.onnx", Path("onnx") / "zhiku_onnx.json"),
    "int8": (Path("onnx") / "model_qint8.onnx", Path("onnx") / "zhiku_int8.json"),
}
ONNX_FORMAT = 1


def onnx_path(model_dir: Path, variant: str = "fp32") -> Path:
    return Path(model_dir) / ONNX_VARIANTS[variant][0]


def onnx_marker(model_dir: Path, variant: str = "fp32") -> Path:
    return Path(model_dir) / ONNX_VARIANTS[variant][1]


def _stamp(model_dir: Path, files: list[Path]) -> dict[str, list[int]]:
    """Size and mtime of each file, by its path in the folder: cheap, and different whenever a file is rebuilt."""
    stamp = {}
    for path in files:
        st = path.stat()
        stamp[path.relative_to(model_dir).as_posix()] = [st.st_size, st.st_mtime_ns]
    return stamp


def weights_stamp(model_dir: Path) -> dict[str, list[int]]:
    """Size and mtime of the folder's weight files."""
    model_dir = Path(model_dir)
    weights = [model_dir / name for name in ("model.safetensors", "pytorch_model.bin")]
    return _stamp(model_dir, [path for path in weights if path.is_file()])


#: Where a model folder keeps its fingerprint, beside the stamps of the files it was computed from.
FINGERPRINT_FILE = "zhiku_fingerprint.json"
# Not part of what decides the vectors: exports and markers made from the model, and its documentation.
_NOT_MODEL_DIRS = {"onnx", "openvino"}
_NOT_MODEL_SUFFIXES = {".md"}


def _model_files(model_dir: Path) -> list[Path]:
    files = []
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if (not path.is_file() or rel.parts[0] in _NOT_MODEL_DIRS or any(p.startswith(".") for p in rel.parts)
                or rel.name.startswith("zhiku_") or path.suffix.lower() in _NOT_MODEL_SUFFIXES):
            continue
        files.append(path)
    return files


def model_fingerprint(model_dir: Path) -> str:
    """Twelve hex digits of SHA-256 over the files that decide the vectors (weights, tokenizer, configs;
    not the ONNX exports, Zhiku's markers or README): the same model copied or rebuilt elsewhere keeps
    it, another model dropped into the same folder changes it. Kept in the folder with the files' sizes
    and mtimes, so it is hashed again only when a file changes (≈ 1 s for e5-small's 470 MB); a
    read-only folder is hashed at each start. An empty or missing folder has none ("")."""
    model_dir = Path(model_dir)
    files = _model_files(model_dir) if model_dir.is_dir() else []
    if not files:
        return ""
    stamp = _stamp(model_dir, files)
    cache = model_dir / FINGERPRINT_FILE
    known = _read_json(cache)
    if known.get("files") == stamp and isinstance(known.get("fingerprint"), str):
        return known["fingerprint"]
    digest = hashlib.sha256()
    for rel in stamp:
        file_hash = hashlib.sha256()
        with (model_dir / rel).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                file_hash.update(block)
        digest.update(rel.encode() + b"\0" + file_hash.digest())
    fingerprint = digest.hexdigest()[:12]
    partial = cache.with_name(f".{cache.name}.{os.getpid()}")
    try:
        partial.write_text(json.dumps({"fingerprint": fingerprint, "files": stamp}, indent=2), encoding="utf-8")
        partial.replace(cache)
    except OSError:  # a read-only model folder: computed again next time
        partial.unlink(missing_ok=True)
    return fingerprint


def encoder_for(setting: str, recorded: str | None) -> Encoder:
    """The encoder to run for the `ZHIKU_ENCODER` setting: a named one as it is; `auto` follows the index —
    int8 for one recorded as int8's, fp32 (`onnx`) for any other and for a new one. An index switched once
    (`ZHIKU_ENCODER=int8 zhiku reindex`) is then served, indexed and checked with its own encoder by every
    process without the variable (a server or worker started without it used to refuse the index)."""
    if setting != "auto":
        return setting  # type: ignore[return-value]
    return "int8" if recorded and recorded.endswith(INT8_SUFFIX) else "onnx"


def same_vectors(recorded: str | None, current: str) -> bool:
    """Does an index recorded as built by `recorded` hold `current`'s vectors? Records from before
    fingerprints (`<folder>` or `<folder>+int8`, no `@`) are taken for the folder's present model — what
    those versions assumed too — and rewritten with the fingerprint."""
    if recorded == current:
        return True
    if not recorded or "@" in recorded or "@" not in current:
        return False
    folder, _, rest = current.partition("@")
    suffix = rest[rest.index("+"):] if "+" in rest else ""
    return recorded == folder + suffix


def onnx_is_current(model_dir: Path, variant: str = "fp32") -> bool:
    """True when the folder's ONNX export (`fp32` or `int8`) exists and was made from its current weights."""
    data = _read_json(onnx_marker(model_dir, variant))
    return (data.get("format_version") == ONNX_FORMAT and data.get("weights") == weights_stamp(model_dir)
            and onnx_path(model_dir, variant).is_file())


class OnnxEncoder:
    """The folder's transformer run by ONNX Runtime (an export made by `zhiku models prepare`), with the
    folder's own tokenizer, prompts and pooling: the fp32 export gives the same vectors as
    sentence-transformers, faster on short texts. Mean and CLS pooling are supported."""

    SUB_BATCH = 4  # texts sorted by length and run four at a time: less padding, measured fastest

    def __init__(self, path: Path, *, onnx_file: Path | None = None, threads: int | None = None) -> None:
        import onnxruntime

        path = Path(path)
        self.prompts = _read_json(path / "config_sentence_transformers.json").get("prompts") or {}
        pooling = _read_json(path / "1_Pooling" / "config.json")
        self.cls = bool(pooling.get("pooling_mode_cls_token"))
        if not self.cls and not pooling.get("pooling_mode_mean_tokens", True):
            raise ValueError(f"{path}: only mean or CLS pooling runs on ONNX")
        self.max_length = int(_read_json(path / "sentence_bert_config.json").get("max_seq_length") or 512)
        self.tokenizer = _fast_tokenizer(path, self.max_length)
        options = onnxruntime.SessionOptions()
        # Half the cores: the other half serve the requests around it (measured under the live-card load).
        options.intra_op_num_threads = threads or max(1, (os.cpu_count() or 2) // 2)
        options.inter_op_num_threads = 1
        # No busy-waiting between runs: on a small server the spinning threads took the cores the
        # request threads needed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(onnx_file or onnx_path(path)), options,
                                                    providers=["CPUExecutionProvider"])
        width = self.session.get_outputs()[0].shape[-1]  # static in an export: the hidden size
        self.dim = width if isinstance(width, int) else int(_read_json(path / "config.json")["hidden_size"])

    def encode(self, texts: list[str], prompt_name: str) -> np.ndarray:
        prefix = self.prompts.get(prompt_name, "")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.SUB_BATCH):
            part = order[start:start + self.SUB_BATCH]
            ids, mask = self.tokenizer([prefix + texts[i] for i in part])
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            if self.cls:
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[part] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


def _fast_tokenizer(path: Path, max_length: int) -> Callable[[list[str]], tuple[np.ndarray, np.ndarray]]:
    """The folder's tokenizer as a function of texts → (input ids, attention mask), padded to the longest
    and truncated to `max_length`. A `tokenizer.json` runs on the `tokenizers` library alone — importing
    `transformers` would import PyTorch, which the int8 encoder otherwise never needs (≈ 220 MB, seconds);
    a folder without one goes through `transformers`' AutoTokenizer."""
    file = path / "tokenizer.json"
    if not file.is_file():
        from transformers import AutoTokenizer

        slow = AutoTokenizer.from_pretrained(str(path), local_files_only=True)

        def by_transformers(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
            batch = slow(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
            return batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)

        return by_transformers
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(file))
    config = {**_read_json(path / "special_tokens_map.json"), **_read_json(path / "tokenizer_config.json")}
    pad = config.get("pad_token")
    pad = pad.get("content") if isinstance(pad, dict) else pad
    pad_id = tokenizer.token_to_id(pad) if pad else None
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pad_id or 0, pad_token=pad or "[PAD]")

    def by_tokenizers(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        encodings = tokenizer.encode_batch(texts)  # configured once above; encoding only reads it
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    return by_tokenizers


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder only; never reaches a hub.

    e5-style models carry `query` / `passage` prompts in their config and get them applied; models
    without prompts (bge, …) encode the raw text. `encoder` picks the runtime:

    - `int8`: queries and passages through the folder's int8 ONNX export — half the time of fp32 per query,
      retrieval a hair lower, live cards on a par (docs/BENCHMARKS.md); its vectors differ slightly from fp32, so the
      index records which encoder built it (`name`) and is rebuilt when that changes. Neither PyTorch nor
      `transformers` is loaded (the tokenizer runs on `tokenizers`).
    - `onnx`: queries through the fp32 export (the same vectors as PyTorch, faster on short texts),
      passages through PyTorch.
    - `torch`: PyTorch only.

    A missing export falls back to the next (int8 → onnx → torch) with a warning; `backend` says which
    runs, `name` names the vector space (`<folder>@<fingerprint>`, `+int8` for the int8 export's).
    """

    def __init__(self, path: Path, *, batch_size: int = 8, query_batch_size: int = 8, device: str = "cpu",
                 encoder: Encoder = "torch") -> None:
        self.path = Path(path)
        self.batch_size, self.query_batch_size = batch_size, query_batch_size
        self.device = device
        self.encoder = encoder
        self._backend: Encoder | None = None
        self._name: str | None = None
        self._model = None
        self._onnx: OnnxEncoder | None = None
        self._ready = False
        self._lock = threading.Lock()

    @property
    def backend(self) -> Encoder:
        """The runtime that encodes, decided once from the folder's files (loads nothing)."""
        if self._backend is None:
            self._backend = self._choose()
        return self._backend

    def _choose(self) -> Encoder:
        if self.encoder == "int8":
            if onnx_is_current(self.path, "int8"):
                return "int8"
            log.warning("no current int8 ONNX export in %s: falling back (`zhiku models prepare` makes it)", self.path)
        if self.encoder in ("int8", "onnx"):
            if onnx_is_current(self.path, "fp32"):
                return "onnx"
            log.warning("no current ONNX export in %s: queries run on PyTorch (`zhiku models prepare` makes it)", self.path)
        return "torch"

    @property
    def name(self) -> str:
        """The vector space: `<folder>@<fingerprint>`, `+int8` for the int8 export's (fp32 ONNX and
        PyTorch give the same vectors and share a name)."""
        if self._name is None:
            fingerprint = model_fingerprint(self.path)
            base = f"{self.path.name}@{fingerprint}" if fingerprint else self.path.name
            self._name = f"{base}{INT8_SUFFIX}" if self.backend == "int8" else base
        return self._name

    def warm_up(self) -> None:
        """Load the model once (idempotent); a missing folder names the command that makes it."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
                raise Unavailable(
                    f"嵌入模型不存在 embedding model not found at {self.path}: run `zhiku models prepare` "
                    "(or set ZHIKU_EMBED_MODEL to a local sentence-transformers folder)"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            if self.backend == "int8":
                try:
                    self._onnx = OnnxEncoder(self.path, onnx_file=onnx_path(self.path, "int8"))
                except Exception as exc:  # its vectors were promised (`name`): no silent switch
                    raise Unavailable(f"int8 ONNX encoder of {self.path} cannot run ({exc}); "
                                      "run `zhiku models prepare --force` or set ZHIKU_ENCODER=onnx") from exc
            else:
                from sentence_transformers import SentenceTransformer

                if self.backend == "onnx":
                    self._onnx = self._open_fp32()
                    self._backend = "onnx" if self._onnx is not None else "torch"
                self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            self._ready = True

    def _open_fp32(self) -> OnnxEncoder | None:
        try:
            return OnnxEncoder(self.path)
        except Exception as exc:  # the same vectors as PyTorch: a model ONNX cannot run stays usable
            log.warning("ONNX query encoder unavailable for %s (%s): queries run on PyTorch", self.path, exc)
            return None

    @property
    def dim(self) -> int:
        self.warm_up()
        if self._model is None:
            return self._onnx.dim  # type: ignore[union-attr]
        return int(self._model.get_embedding_dimension())

    def _encode(self, texts: list[str], prompt_name: str, batch_size: int) -> np.ndarray:
        self.warm_up()
        if self._model is None:
            return self._onnx.encode(texts, prompt_name)  # type: ignore[union-attr]
        model = self._model
        prompt = prompt_name if prompt_name in (model.prompts or {}) else None
        vectors = model.encode(
            texts, prompt_name=prompt, batch_size=batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        if self._onnx is not None and texts:
            return self._onnx.encode(texts, "query")
        return self._encode(texts, "query", self.query_batch_size)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, "passage", self.batch_size)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class BatchingEmbedder:
    """Query encodings from concurrent requests share forward passes: while the model runs one batch,
    new queries wait and go together in the next. An idle server adds no delay; a busy one encodes
    many queries for little more than the price of one. Recent query vectors are kept (LRU, `cache`
    texts): a live conversation reads each turn again as context of the next, and the same questions
    come back all day. Passages pass straight through."""

    def __init__(self, inner: Embedder, *, max_batch: int = 64, cache: int = 4096) -> None:
        self.inner, self.max_batch = inner, max_batch
        self._pending: queue.SimpleQueue[tuple[list[str], Future[np.ndarray]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._cache: Lru[str, np.ndarray] = Lru(cache)
        self._running = False

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

    @property
    def busy(self) -> bool:
        """Queries are waiting or being encoded: optional work (speech-recognition partials) can wait."""
        return self._running or not self._pending.empty()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return self.inner.encode_queries([])
        known = {t: v for t in dict.fromkeys(texts) if (v := self._cache.get(t)) is not None}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            done: Future[np.ndarray] = Future()
            self._pending.put((missing, done))
            self._ensure_thread()
            for t, v in zip(missing, done.result(), strict=True):
                self._cache.put(t, v)
                known[t] = v
        return np.stack([known[t] for t in texts])

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
            self._running = True
            try:
                vectors = self.inner.encode_queries([t for texts, _ in batch for t in texts])
            except Exception as exc:  # every waiting request gets the error, the thread lives on
                for _, done in batch:
                    done.set_exception(exc)
                continue
            finally:
                self._running = False
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
