"""Queries through the model's ONNX export: the same vectors as PyTorch, Chinese in both scripts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ingestion.onnx_export import export_onnx
from retrieval.embedding import ONNX_MARKER, SentenceTransformerEmbedder, onnx_is_current, onnx_path

pytestmark = pytest.mark.slow

QUERIES = ["房贷利率怎么算", "信用卡丢了怎么挂失？", "數字人民幣錢包怎麼升級", "我想問一下大額存單提前支取", "LPR 下调后月供会变吗",
           "你好", "那个 就是 我上个月买的那个理财 现在能卖了吗 钱几天到账"]


@pytest.fixture(scope="module")
def exported(model_path):
    export_onnx(model_path)  # `zhiku models prepare` made it already under make test; else now
    return model_path


def test_onnx_queries_match_pytorch(exported):
    onnx = SentenceTransformerEmbedder(exported, onnx_queries=True)
    torch = SentenceTransformerEmbedder(exported)
    assert onnx.query_backend == "onnx" and torch.query_backend == "torch"
    got, want = onnx.encode_queries(QUERIES), torch.encode_queries(QUERIES)
    assert got.shape == want.shape == (len(QUERIES), 384)
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # one at a time and in a batch of mixed lengths give the same vectors (padding never leaks in)
    single = np.stack([onnx.encode_queries([q])[0] for q in QUERIES])
    np.testing.assert_allclose(single, got, atol=1e-5)


def test_the_export_is_reused_and_a_changed_model_is_noticed(exported, tmp_path):
    assert onnx_is_current(exported) and onnx_path(exported).is_file()
    before = onnx_path(exported).stat().st_mtime_ns
    export_onnx(exported)
    assert onnx_path(exported).stat().st_mtime_ns == before  # nothing done twice
    marker = json.loads((exported / ONNX_MARKER).read_text(encoding="utf-8"))
    assert marker["weights"]  # tied to the weights it came from


def test_without_an_export_queries_fall_back_to_pytorch(model_path, tmp_path):
    """A bank's own model folder with no ONNX export still works (slower), it does not fail."""
    import shutil

    folder = tmp_path / "own-model"
    shutil.copytree(model_path, folder, ignore=shutil.ignore_patterns("onnx", "model.safetensors"))
    (folder / "model.safetensors").symlink_to(model_path / "model.safetensors")
    embedder = SentenceTransformerEmbedder(folder, onnx_queries=True)
    assert embedder.query_backend == "torch"
    assert embedder.encode_queries(["房贷利率"]).shape == (1, 384)
