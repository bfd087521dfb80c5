"""The model's ONNX encoders: fp32 gives PyTorch's vectors, int8 close ones at half the cost; Chinese in both scripts."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingestion.onnx_export import export_onnx, quantize_int8
from retrieval.embedding import (SentenceTransformerEmbedder, encoder_for, model_fingerprint, onnx_is_current, onnx_marker,
                                 onnx_path)

pytestmark = pytest.mark.slow

QUERIES = ["房贷利率怎么算", "信用卡丢了怎么挂失？", "數字人民幣錢包怎麼升級", "我想問一下大額存單提前支取", "LPR 下调后月供会变吗",
           "你好", "那个 就是 我上个月买的那个理财 现在能卖了吗 钱几天到账"]
PASSAGES = ["个人住房贷款提前还款须提前 5 个工作日预约，可部分或全部提前还款，违约金按合同约定收取。" * 6,
            "數字人民幣錢包分為四類，實名程度越高，單筆與日累計支付限額越高。", "过往业绩不代表未来收益，理财非存款，投资须谨慎。"]


@pytest.fixture(scope="module")
def exported(model_path):
    quantize_int8(model_path)  # `zhiku models prepare` made both already under make test; else now
    return model_path


def test_onnx_queries_match_pytorch(exported):
    onnx = SentenceTransformerEmbedder(exported, encoder="onnx")
    torch = SentenceTransformerEmbedder(exported)
    # the same vectors, one name: the folder and its model's fingerprint
    assert onnx.backend == "onnx" and torch.backend == "torch"
    assert onnx.name == torch.name == f"{exported.name}@{model_fingerprint(exported)}"
    got, want = onnx.encode_queries(QUERIES), torch.encode_queries(QUERIES)
    assert got.shape == want.shape == (len(QUERIES), 384)
    assert float(np.min(np.sum(got * want, axis=1))) > 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # one at a time and in a batch of mixed lengths give the same vectors (padding never leaks in)
    single = np.stack([onnx.encode_queries([q])[0] for q in QUERIES])
    np.testing.assert_allclose(single, got, atol=1e-5)


def test_int8_encodes_both_sides_close_to_fp32_and_names_its_vectors(exported):
    int8 = SentenceTransformerEmbedder(exported, encoder="int8")
    torch = SentenceTransformerEmbedder(exported)
    assert int8.backend == "int8" and int8.name == f"{exported.name}@{model_fingerprint(exported)}+int8"  # the index records it
    assert int8.dim == 384
    for got, want in ((int8.encode_queries(QUERIES), torch.encode_queries(QUERIES)),
                      (int8.encode_passages(PASSAGES), torch.encode_passages(PASSAGES))):
        cosines = np.sum(got * want, axis=1)
        assert float(cosines.min()) > 0.98 and float(cosines.max()) < 0.99999  # close, not the same
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert int8._model is None  # PyTorch is never loaded for int8
    assert int8.encode_queries([]).shape == (0, 384)
    # retrieval keeps its order: each query's own answer stays nearest
    queries = int8.encode_queries(["提前还房贷要预约吗", "数字人民币钱包限额", "理财有风险吗"])
    assert list(np.argmax(queries @ int8.encode_passages(PASSAGES).T, axis=1)) == [0, 1, 2]


def test_exports_are_reused_and_tied_to_the_weights(exported):
    for variant, make in (("fp32", export_onnx), ("int8", quantize_int8)):
        assert onnx_is_current(exported, variant) and onnx_path(exported, variant).is_file()
        before = onnx_path(exported, variant).stat().st_mtime_ns
        make(exported)
        assert onnx_path(exported, variant).stat().st_mtime_ns == before  # nothing done twice
        assert json.loads(onnx_marker(exported, variant).read_text(encoding="utf-8"))["weights"]
    assert json.loads(onnx_marker(exported, "int8").read_text(encoding="utf-8"))["min_cosine_to_fp32"] > 0.98


def _own_model(model_path, tmp_path, keep: str):  # type: ignore[no-untyped-def]
    """A copy of the model folder (weights linked) with only the ONNX files matching `keep`."""
    folder = tmp_path / "own-model"
    shutil.copytree(model_path, folder, ignore=shutil.ignore_patterns("onnx", "model.safetensors"))
    (folder / "model.safetensors").symlink_to(model_path / "model.safetensors")
    if keep:
        (folder / "onnx").mkdir()
        for name in keep.split():
            (folder / "onnx" / name).symlink_to(model_path / "onnx" / name)
    return folder


def test_without_an_int8_export_int8_falls_back_to_fp32_onnx(exported, tmp_path):
    folder = _own_model(exported, tmp_path, "model.onnx zhiku_onnx.json")
    embedder = SentenceTransformerEmbedder(folder, encoder="int8")
    # fp32's name, so an int8 index is rebuilt, not mixed (the weights are the same: so is the fingerprint)
    assert embedder.backend == "onnx" and embedder.name == f"{folder.name}@{model_fingerprint(exported)}"
    assert embedder.encode_queries(["房贷利率"]).shape == (1, 384)


def test_without_an_export_queries_fall_back_to_pytorch(exported, tmp_path):
    """A bank's own model folder with no ONNX export still works (slower), it does not fail."""
    embedder = SentenceTransformerEmbedder(_own_model(exported, tmp_path, ""), encoder="int8")
    assert embedder.backend == "torch"
    assert embedder.encode_queries(["房贷利率"]).shape == (1, 384)


def test_int8_runs_without_pytorch_or_transformers(exported):
    """The int8 encoder needs ONNX Runtime and the folder's tokenizer.json only: a server on it does not
    import PyTorch (≈ 220 MB, seconds of start-up)."""
    probe = (
        "import sys; from pathlib import Path; from retrieval.embedding import SentenceTransformerEmbedder; "
        f"e = SentenceTransformerEmbedder(Path({str(exported)!r}), encoder='int8'); "
        "v = e.encode_queries(['數字人民幣錢包怎麼升級']); p = e.encode_passages(['过往业绩不代表未来收益']); "
        "print(e.backend, v.shape, p.shape, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.split() == ["int8", "(1,", "384)", "(1,", "384)", "False", "False"], done.stderr


def test_the_tokenizer_matches_transformers_on_both_scripts_and_long_text(exported):
    from transformers import AutoTokenizer

    from retrieval.embedding import _fast_tokenizer

    reference = AutoTokenizer.from_pretrained(str(exported), local_files_only=True)
    ours = _fast_tokenizer(exported, 512)
    for batch in (QUERIES, PASSAGES, ["", "ＡＢＣ１２３ 全角", "长" * 2000]):
        want = reference(batch, padding=True, truncation=True, max_length=512, return_tensors="np")
        ids, mask = ours(batch)
        np.testing.assert_array_equal(ids, want["input_ids"])
        np.testing.assert_array_equal(mask, want["attention_mask"])


@pytest.mark.parametrize(("setting", "recorded", "runs"), [
    ("auto", None, "onnx"),  # a new index, or points from before the index recorded its encoder (fp32's)
    ("auto", "multilingual-e5-small@fd54b5af1e9e", "onnx"),
    ("auto", "multilingual-e5-small@fd54b5af1e9e+int8", "int8"),  # switched once by `ZHIKU_ENCODER=int8 zhiku reindex`
    ("auto", "multilingual-e5-small+int8", "int8"),  # recorded before fingerprints
    ("onnx", "multilingual-e5-small+int8", "onnx"), ("int8", None, "int8"), ("torch", None, "torch"),  # named: as named
])
def test_the_encoder_setting_auto_follows_the_index(setting, recorded, runs):
    assert encoder_for(setting, recorded) == runs


def test_a_runtime_on_auto_serves_an_int8_index_with_int8_without_the_variable(exported, tmp_path, monkeypatch):
    from api.runtime import Runtime
    from kb.settings import Settings
    from retrieval.index.edge import EdgeIndex

    for variable in ("ZHIKU_ENCODER", "ZHIKU_QUERY_ENCODER"):
        monkeypatch.delenv(variable, raising=False)

    def opened(name: str) -> str:
        settings = Settings(data_dir=tmp_path / name, embed_model=str(exported), _env_file=None)  # type: ignore[call-arg]
        assert settings.encoder == "auto"  # the default
        runtime = Runtime.open(settings, require_schema=False, index=EdgeIndex(tmp_path / name / "index"))
        try:
            return runtime.embedder.name
        finally:
            runtime.close()

    fingerprint = f"{exported.name}@{model_fingerprint(exported)}"
    assert opened("new") == fingerprint  # fp32 stays the default
    index = EdgeIndex(tmp_path / "switched" / "index")
    index.ensure_collection(dim=384)
    index.set_embedder(f"{fingerprint}+int8")  # what `ZHIKU_ENCODER=int8 zhiku reindex` recorded
    index.close()
    assert opened("switched") == f"{fingerprint}+int8"
