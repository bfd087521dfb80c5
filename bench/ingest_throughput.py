"""Ingest throughput: N entries from an update-pack file, end to end, against the raw embedding speed of
the model on the very same chunk texts (issue 5; goal ≥ 0.8×).

    .venv/bin/python bench/ingest_throughput.py --entries 10000 [--format xlsx|zip] [--json]

A fresh store in a temp data dir (SQLite + the embedded index) with the real offline model
(ZHIKU_EMBED_MODEL or data/models/multilingual-e5-small). The pack file (the XLSX template, or a ZIP of
Markdown files) holds realistic Chinese bank FAQ, product and process entries, about a tenth written in
traditional characters. Timed, end to end: parse → validate + lint → store the draft → submit → approve
(versions, audit chain, outbox) → the outbox worker chunks, embeds (dense + sparse) and upserts every
version. Then the same model (loaded once, warmed up before either clock) encodes the same chunk texts
in one call: the raw embedding throughput. The ratio is ingest chunks/s ÷ raw chunks/s.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.runtime import Runtime  # noqa: E402
from ingestion.chunking import chunk_version  # noqa: E402
from ingestion.indexer import _content  # noqa: E402
from ingestion.parsers import Limits  # noqa: E402
from kb import service as kb  # noqa: E402
from kb import users  # noqa: E402
from kb.db import make_engine, session_scope, upgrade  # noqa: E402
from kb.models import Actor  # noqa: E402
from kb.settings import Settings, get_settings  # noqa: E402
from retrieval.embedding import SentenceTransformerEmbedder  # noqa: E402
from review_workflow import service as wf  # noqa: E402
from review_workflow.upload import pack_from_upload  # noqa: E402

EXPERT, REVIEWER = Actor("expert", "expert"), Actor("reviewer", "reviewer")
_S2T = None


def to_traditional(text: str) -> str:
    global _S2T
    if _S2T is None:
        from opencc import OpenCC

        _S2T = OpenCC("s2t")
    return _S2T.convert(text)

# ---------------------------------------------------------------- realistic Chinese bank knowledge

PRODUCTS = [
    ("借记卡", "debit_card", None), ("信用卡", "credit_card", None), ("理财", "wealth", "R2"),
    ("基金定投", "fund", "R3"), ("大额存单", "deposit", None), ("个人住房贷款", "mortgage", None),
    ("数字人民币钱包", "e_cny", None), ("个人养老金", "pension", "R2"), ("代销保险", "insurance", None),
    ("积存金", "precious_metal", "R4"), ("手机银行", "mobile_banking", None), ("跨境汇款", "remittance", None),
]
BRANDS = ["云岭", "滇池", "彩云", "春城", "苍山", "洱海", "金沙", "玉龙"]
SERIES = ["稳享", "安心", "薪享通", "智盈", "悦享", "乐居", "惠民", "尊享", "易付", "双薪"]
QUESTIONS = [
    "{p}怎么办理？", "{p}有哪些费用？", "{p}的额度是多少？", "{p}如何挂失？", "{p}可以提前支取吗？",
    "{p}的办理条件是什么？", "{p}在手机银行上怎么操作？", "{p}到期后怎么处理？", "{p}被冻结了怎么办？",
    "{p}的利率是怎么定的？", "{p}可以线上注销吗？", "{p}境外能用吗？", "{p}的交易限额怎么调整？",
]
STEPS = [
    "客户本人携带有效身份证件到任一网点办理", "登录手机银行，在“{p}”栏目选择对应功能", "拨打客服热线并按语音提示转人工",
    "通过网上银行提交申请并完成短信验证", "在智能柜台刷身份证后按屏幕提示操作", "由客户经理预约上门服务",
]
FACTS = [
    ("起购金额", ["1", "1000", "1", "20"], ["元", "元", "万元", "万元"]), ("年费", ["0", "100", "200"], ["元/年"]),
    ("期限", ["30", "90", "180", "365"], ["天"]), ("单笔限额", ["5", "20", "50"], ["万元"]),
    ("日累计限额", ["20", "50", "100"], ["万元"]), ("手续费", ["0", "0.1%", "2"], ["元/笔", ""]),
    ("办理时长", ["1", "3", "5"], ["个工作日"]), ("年利率", ["1.55%", "1.9%", "2.15%", "3.45%"], [""]),
]
NOTES = [
    "如客户对办理结果有疑问，可告知其通过客服热线查询进度。", "办理过程中请提醒客户不要向任何人透露短信验证码。",
    "涉及资金变动的操作须由客户本人完成，坐席不得代为操作。", "若系统提示信息不符，请引导客户先更新身份证件有效期。",
    "节假日期间部分业务顺延至下一工作日处理。", "老年客户可优先安排爱心窗口或上门服务。",
    "办理结果将以短信形式通知客户，请核实预留手机号是否正确。", "对于反洗钱要求的补充材料，应向客户说明用途并妥善保管。",
]
DISCLOSURE = {"wealth": "理财非存款、产品有风险、投资须谨慎。", "fund": "基金有风险，投资须谨慎。",
              "pension": "个人养老金资金投资的理财、基金等产品有风险，投资须谨慎。",
              "insurance": "保险产品不是存款，不保证收益，投保须谨慎。", "precious_metal": "贵金属价格波动较大，投资有风险，入市须谨慎。"}


def make_entry(n: int, rng: random.Random) -> dict[str, object]:
    """One entry (FAQ, product or process), 80–700 characters of body, sometimes in traditional script."""
    product, ptype, risk = rng.choice(PRODUCTS)
    name = f"{rng.choice(BRANDS)}{rng.choice(SERIES)}{product}"
    kind = rng.choices(["faq", "product", "process"], weights=[5, 3, 2])[0]
    facts = {}
    for key, values, units in rng.sample(FACTS, rng.randint(1, 4)):
        facts[key] = (rng.choice(values), rng.choice(units))
    fact_text = "，".join(f"{k}为{v}{u}" for k, (v, u) in facts.items())
    steps = "；".join(s.format(p=name) for s in rng.sample(STEPS, rng.randint(1, 3)))
    sentences = [f"{name}{fact_text}。", f"办理方式：{steps}。"]
    sentences += rng.sample(NOTES, rng.randint(0, 6))
    if rng.random() < 0.3:
        sentences += [f"第{i}步，{rng.choice(STEPS).format(p=name)}，并核对{rng.choice(list(facts))}等信息。"
                      for i in range(1, rng.randint(3, 8))]
    if ptype in DISCLOSURE:
        sentences.append(DISCLOSURE[ptype])
    body = "".join(sentences)
    title = rng.choice(QUESTIONS).format(p=name) if kind == "faq" else (
        f"{name}产品说明（{n}）" if kind == "product" else f"{name}业务办理流程（{n}）")
    script = f"您好，{name}{fact_text}。" + (DISCLOSURE.get(ptype, ""))
    entry = {
        "id": f"BENCH-{n:05d}", "title": title, "category": {"faq": "常见问题", "product": "产品体系", "process": "业务流程"}[kind],
        "product_type": ptype, "risk_level": risk if kind == "product" else None, "summary": f"{name}：{fact_text}。",
        "body": body, "facts": facts, "script": script, "tags": [product, kind], "synonyms": [f"{name[:2]}{product}"],
    }
    if n % 10 == 3:  # a tenth written in traditional characters, as Hong Kong / Taiwan desks do
        for key in ("title", "summary", "body", "script"):
            entry[key] = to_traditional(str(entry[key]))
    return entry


def xlsx_pack(entries: list[dict[str, object]]) -> bytes:
    """The entries in the documented XLSX template (one row each)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("更新条目")
    sheet.append(["操作", "条目编号", "标题", "分类", "产品类型", "风险等级", "摘要", "正文", "关键事实", "话术模板", "标签", "同义词"])
    for e in entries:
        facts = "\n".join(f"{k}={v} {u}".rstrip() for k, (v, u) in e["facts"].items())  # type: ignore[union-attr]
        sheet.append(["新增", e["id"], e["title"], e["category"], e["product_type"], e["risk_level"] or "", e["summary"],
                      e["body"], facts, e["script"], "、".join(e["tags"]), "、".join(e["synonyms"])])  # type: ignore[arg-type]
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def markdown_zip(entries: list[dict[str, object]]) -> bytes:
    """The entries as Markdown files with YAML front matter, zipped."""
    import yaml

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            meta = {"id": e["id"], "title": e["title"], "category": e["category"], "product_type": e["product_type"],
                    "risk_level": e["risk_level"], "summary": e["summary"], "script_template": e["script"],
                    "tags": e["tags"], "synonyms": e["synonyms"],
                    "facts": {k: {"value": v, "unit": u or None} for k, (v, u) in e["facts"].items()}}  # type: ignore[union-attr]
            text = "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n" + str(e["body"]) + "\n"
            zf.writestr(f"知识条目/{e['category']}/{e['id']}.md", text.encode("utf-8"))
    return buffer.getvalue()


# ---------------------------------------------------------------- the run


def run(*, n: int, fmt: str, model: Path, seed: int = 5) -> dict[str, object]:
    rng = random.Random(seed)
    entries = [make_entry(i, rng) for i in range(1, n + 1)]
    data = xlsx_pack(entries) if fmt == "xlsx" else markdown_zip(entries)
    filename = f"周更新-{n}条.{fmt}"
    embedder = SentenceTransformerEmbedder(model)
    embedder.warm_up()
    embedder.encode_passages(["预热 warm-up"] * 16)
    with tempfile.TemporaryDirectory(prefix="zhiku-ingest-bench-") as tmp:
        settings = Settings(data_dir=Path(tmp), embed_model=str(model), _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        with session_scope(engine) as session:
            for user in (EXPERT, REVIEWER):
                users.create_user(session=session, username=user.username, password="bench-pass-1", role=user.role, actor="bench")
        engine.dispose()
        runtime = Runtime.open(settings, embedder=embedder)
        try:
            runtime.indexer.ensure_ready()
            phases: dict[str, float] = {}
            started = time.perf_counter()
            with session_scope(runtime.engine) as session:
                pack, _ = pack_from_upload(session=session, filename=filename, data=data, actor=EXPERT,
                                           limits=Limits(max_upload_bytes=1 << 30), data_dir=settings.resolved_data_dir)
                pack_id = pack.id
            phases["parse_validate_store_s"] = time.perf_counter() - started
            mark = time.perf_counter()
            with session_scope(runtime.engine) as session:
                wf.submit_pack(session=session, pack_id=pack_id, actor=EXPERT)
            with session_scope(runtime.engine) as session:
                wf.approve_pack(session=session, pack_id=pack_id, data={"override_reason": "基准测试 benchmark"},
                                actor=REVIEWER)
            phases["submit_approve_s"] = time.perf_counter() - mark
            mark = time.perf_counter()
            applied = runtime.drain_outbox()
            phases["chunk_embed_index_s"] = time.perf_counter() - mark
            total = time.perf_counter() - started
            with session_scope(runtime.engine) as session:
                windows = kb.all_windows(session=session)
            texts = [c.text for w in windows for c in chunk_version(_content(w.version))]
            points = sum(runtime.index.version_ids().values())
        finally:
            runtime.close()
    assert applied == n and len(windows) == n, (applied, len(windows))
    assert points == len(texts), (points, len(texts))
    mark = time.perf_counter()
    embedder.encode_passages(texts)
    raw = time.perf_counter() - mark
    ingest_cps, raw_cps = len(texts) / total, len(texts) / raw
    return {
        "entries": n, "chunks": len(texts), "format": fmt, "file_bytes": len(data),
        "chars_per_chunk": round(sum(map(len, texts)) / len(texts), 1),
        "ingest_s": round(total, 2), **{k: round(v, 2) for k, v in phases.items()},
        "entries_per_s": round(n / total, 2), "chunks_per_s": round(ingest_cps, 2),
        "raw_embed_s": round(raw, 2), "raw_chunks_per_s": round(raw_cps, 2),
        "ratio": round(ingest_cps / raw_cps, 3), "goal": 0.8, "model": model.name,
        "cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--format", choices=("xlsx", "zip"), default="xlsx")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    model = get_settings().model_path
    if not model.is_absolute():
        model = ROOT / model
    result = run(n=args.entries, fmt=args.format, model=model)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    verdict = "met" if float(result["ratio"]) >= 0.8 else "NOT met"  # type: ignore[arg-type]
    print(f"goal ≥ 0.8× raw embedding throughput: {verdict}")


if __name__ == "__main__":
    main()
