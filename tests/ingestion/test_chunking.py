"""Chinese-aware chunking: profile + start of the body first, then sentence-packed body chunks."""
from __future__ import annotations

from ingestion.chunking import chunk_version, split_sentences

ENTRY = {
    "title": "數字人民幣錢包",
    "synonyms": ["e-CNY", "数币"],
    "summary": "四类钱包，实名开通。",
    "facts": {"余额上限": {"value": "1", "unit": "万元"}},
    "body": "第一句说明开通渠道。第二句说明钱包等级！第三句？" + "很长的说明" * 100 + "。最后一句；",
}


def test_sentences_end_at_chinese_punctuation():
    assert split_sentences("甲。乙！丙？丁；戊\n己") == ["甲。", "乙！", "丙？", "丁；", "戊", "己"]


def test_first_chunk_is_the_profile_plus_the_body_start_in_simplified_chinese():
    chunks = chunk_version(ENTRY, max_chars=300)
    first = chunks[0].text
    assert first.startswith("数字人民币钱包\n又称：e-CNY、数币\n四类钱包，实名开通。\n余额上限：1万元")
    assert "第一句说明开通渠道。" in first
    assert all(len(c.text) <= 300 + len(ENTRY["title"]) + 1 for c in chunks)
    assert all(c.text.startswith("数字人民币钱包") for c in chunks)
    assert [c.number for c in chunks] == list(range(len(chunks)))
    text = "".join(c.text for c in chunks)
    assert "最后一句；" in text  # nothing dropped, even from a run-on sentence


def test_a_first_sentence_too_long_to_fit_is_cut_not_skipped():
    chunks = chunk_version({"title": "T", "body": "长" * 1000 + "。"}, max_chars=100)
    assert chunks[0].text.startswith("T\n长")
    assert sum(c.text.count("长") for c in chunks) == 1000


def test_title_only_entry_is_one_chunk():
    assert [c.text for c in chunk_version({"title": "花呗怎么还款", "body": "花呗怎么还款"})] == ["花呗怎么还款"]


def test_entry_names_are_title_synonyms_and_summary_normalised_like_queries():
    from ingestion.chunking import MAX_NAMES, entry_names

    names = entry_names({"title": "數字人民幣錢包開通", "synonyms": ["e-CNY", "数币钱包", "数币钱包", " "],
                         "summary": "在手机银行开通数字人民币钱包。", "body": "正文不是名字"})
    assert names == ["数字人民币钱包开通", "e-CNY", "数币钱包", "在手机银行开通数字人民币钱包。"]
    assert entry_names({"title": "Ｔ＋１到账", "synonyms": [f"别名{i}" for i in range(50)]})[0] == "T+1到账"
    assert len(entry_names({"title": "t", "synonyms": [f"别名{i}" for i in range(50)]})) == MAX_NAMES
