"""The demo knowledge base of the fictional 云岭银行 (written by the Zhiku team) and its labelled questions."""
from pathlib import Path

DEMO_DIR = Path(__file__).parent
DEMO_ENTRIES = DEMO_DIR / "entries"
DEMO_QUESTIONS = DEMO_DIR / "questions.jsonl"
DEMO_PASSWORD = "zhiku-demo"
# username -> (role, department, display name)
DEMO_USERS = {
    "agent": ("agent", "客户服务中心", "坐席 小王"),
    "expert": ("expert", "财富管理部", "业务专家 李老师"),
    "reviewer": ("reviewer", "合规部", "合规审核 张经理"),
    "reviewer2": ("reviewer", "合规部", "合规审核 陈经理"),
    "admin": ("admin", "信息技术部", "系统管理员"),
}
