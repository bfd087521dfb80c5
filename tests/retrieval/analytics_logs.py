"""Generated search logs for the analytics tests: three paraphrase groups of customers' questions
that the knowledge base answered badly, plus one-off noise and well-answered searches."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from kb.models import Feedback, SearchLog

# (group, question, times asked)
PARAPHRASES = {
    "数字人民币": [("数字人民币钱包怎么开通", 2), ("怎么开通数字人民币", 1), ("数字人民币钱包如何开立", 1),
               ("e-CNY钱包在哪里开通", 1), ("數字人民幣錢包怎麼開通？", 1)],
    "大额存单": [("大额存单利率是多少", 2), ("大额存单现在利息多少", 1), ("三年期大额存单利率多少", 1), ("大额存单年利率现在是多少", 1)],
    "信用卡年费": [("信用卡年费怎么收", 1), ("信用卡年费多少钱", 1), ("信用卡要交年费吗", 1), ("怎么免信用卡年费", 1)],
}
NOISE = ["你们营业厅几点关门", "外汇牌价今天多少", "手机银行登录不上去", "怎么挂失银行卡", "理财产品赎回多久到账"]
WELL_ANSWERED = ["房贷利率", "LPR是什么"]


def log(session: Session, query: str, ts: datetime, *, confidence: float | None = 0.2, results: list | None = None,
        kind: str = "search") -> None:
    hits = [{"entry_id": "KB-P001", "version": 1, "score": 0.3}] if results is None else results
    session.add(SearchLog(ts=ts, actor="agent", role="agent", kind=kind, query=query, results=hits, confidence=confidence))


def generate(session: Session, now: datetime) -> dict[str, int]:
    """Write the logs spread over the last two weeks; returns each group's expected count."""
    expected: dict[str, int] = {}
    step = 0
    for group, questions in PARAPHRASES.items():
        for question, times in questions:
            for _ in range(times):
                step += 1
                log(session, question, now - timedelta(hours=7 * step))
        expected[group] = sum(t for _, t in questions)
    for i, question in enumerate(NOISE):
        log(session, question, now - timedelta(hours=5 + 11 * i), results=[] if i % 2 else None, confidence=0.0 if i % 2 else 0.3)
    for question in WELL_ANSWERED * 5:
        log(session, question, now - timedelta(hours=3), confidence=0.93)
    session.add(Feedback(ts=now - timedelta(hours=1), actor="agent", entry_id="KB-P001", version=1, useful=True, query="房贷利率"))
    session.commit()
    return expected
