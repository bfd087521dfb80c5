"""A model folder's fingerprint names its vector space: it follows the files that decide the vectors,
not where the folder lies, when it was copied, or what was made from it."""
from __future__ import annotations

import json
import os
import shutil

from retrieval.embedding import FINGERPRINT_FILE, model_fingerprint, same_vectors


def _model(folder):  # type: ignore[no-untyped-def]
    """A small folder shaped like a sentence-transformers model (the bytes stand in for the weights)."""
    (folder / "1_Pooling").mkdir(parents=True)
    (folder / "onnx").mkdir()
    (folder / "config.json").write_text('{"hidden_size": 384}', encoding="utf-8")
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "tokenizer.json").write_text('{"model": "unigram", "vocab": ["▁房贷", "利率"]}', encoding="utf-8")
    (folder / "onnx" / "model.onnx").write_bytes(b"export")
    (folder / "README.md").write_text("# 模型说明", encoding="utf-8")
    return folder


def test_the_same_model_elsewhere_has_the_same_fingerprint(tmp_path):
    original = _model(tmp_path / "multilingual-e5-small")
    fingerprint = model_fingerprint(original)
    assert len(fingerprint) == 12 and int(fingerprint, 16) >= 0
    copy = tmp_path / "elsewhere" / "e5"
    shutil.copytree(original, copy, copy_function=shutil.copy)  # new mtimes, same bytes
    assert model_fingerprint(copy) == fingerprint
    # what is made from the model or describes it is not the model
    (copy / "onnx" / "model_qint8.onnx").write_bytes(b"int8 export")
    (copy / "README.md").write_text("# 另一份说明", encoding="utf-8")
    (copy / "zhiku_model.json").write_text("{}", encoding="utf-8")
    assert model_fingerprint(copy) == fingerprint


def test_another_model_in_the_same_folder_changes_it(tmp_path):
    folder = _model(tmp_path / "model")
    before = model_fingerprint(folder)
    weights = bytearray((folder / "model.safetensors").read_bytes())
    weights[100] ^= 0xFF  # same size: only the content tells
    (folder / "model.safetensors").write_bytes(bytes(weights))
    assert model_fingerprint(folder) != before
    changed = model_fingerprint(folder)
    (folder / "tokenizer.json").write_text('{"model": "wordpiece"}', encoding="utf-8")  # a bge-style tokenizer
    assert model_fingerprint(folder) not in (before, changed)


def test_it_is_kept_in_the_folder_and_hashed_again_only_after_a_change(tmp_path):
    folder = _model(tmp_path / "model")
    fingerprint = model_fingerprint(folder)
    kept = json.loads((folder / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    assert kept["fingerprint"] == fingerprint and "model.safetensors" in kept["files"] and "README.md" not in kept["files"]
    # a stale cache is noticed from the stamps: the size or mtime of a file changed
    kept["fingerprint"] = "0" * 12
    (folder / FINGERPRINT_FILE).write_text(json.dumps(kept), encoding="utf-8")
    assert model_fingerprint(folder) == "0" * 12  # trusted while the files are as stamped
    stat = (folder / "config.json").stat()
    os.utime(folder / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert model_fingerprint(folder) == fingerprint


def test_a_missing_or_empty_folder_has_none(tmp_path):
    assert model_fingerprint(tmp_path / "absent") == ""
    (tmp_path / "empty").mkdir()
    assert model_fingerprint(tmp_path / "empty") == ""


def test_records_from_before_fingerprints_are_taken_for_the_folders_model():
    assert same_vectors("e5@0123456789ab", "e5@0123456789ab")
    assert same_vectors("e5", "e5@0123456789ab") and same_vectors("e5+int8", "e5@0123456789ab+int8")
    assert not same_vectors("e5@0123456789ab", "e5@ba9876543210")  # another model in the same folder
    assert not same_vectors("e5", "e5@0123456789ab+int8") and not same_vectors("e5+int8", "e5@0123456789ab")
    assert not same_vectors("bge-small-zh", "e5@0123456789ab") and not same_vectors("", "e5@0123456789ab")
    assert not same_vectors("e5", "e5+int8")  # names without fingerprints compare as they are
