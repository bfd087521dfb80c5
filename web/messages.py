"""Every Chinese string the web pages show outside the templates: labels, error headlines, flashes."""
from __future__ import annotations

from kb.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    ZhikuError,
)

APP_NAME = "知库"

ROLE_LABELS = {"agent": "坐席", "expert": "业务专家", "reviewer": "合规审核", "admin": "管理员"}

STATE_LABELS = {
    "draft": "草稿", "submitted": "待审核", "approved": "已批准", "scheduled": "待生效",
    "published": "已发布", "rejected": "已驳回", "withdrawn": "已撤回",
}

OP_LABELS = {"create": "新增", "update": "修改", "retire": "下线"}

EVENT_LABELS = {"submit": "提交审核", "withdraw": "撤回", "revise": "退回草稿修改", "edit": "编辑"}

PRODUCT_TYPE_LABELS = {
    "account": "账户", "business_loan": "经营贷款", "consumer_loan": "消费贷款", "credit_card": "信用卡",
    "debit_card": "借记卡", "deposit": "存款", "e_banking": "电子银行", "e_cny": "数字人民币", "fund": "基金",
    "fx": "外汇", "general": "综合", "insurance": "保险", "large_cd": "大额存单", "mortgage": "房贷",
    "pension": "个人养老金", "precious_metal": "贵金属", "remittance": "汇款", "wealth": "理财",
}

FIELD_LABELS = {
    "id": "条目编号", "entry_id": "条目编号", "title": "标题", "body": "正文", "summary": "摘要", "category": "分类",
    "product_type": "产品类型", "risk_level": "风险等级", "facts": "关键事实", "script_template": "话术模板",
    "tags": "标签", "synonyms": "同义词", "related": "关联条目", "valid_from": "生效时间", "valid_to": "失效时间",
    "review_by": "复核日期", "product_code": "产品代码", "owner_department": "归属部门", "base_version": "基准版本",
    "reason": "下线原因", "comment": "意见", "override_reason": "豁免理由", "file": "文件", "items": "条目",
    "username": "用户名", "password": "密码", "role": "角色", "name": "名称", "scopes": "权限范围",
    "rate_per_minute": "每分钟限额", "query": "查询",
}

SEVERITY_LABELS = {"block": "阻断", "warn": "警告", "info": "提示"}

SCOPE_LABELS = {"search": "检索", "retrieve": "问答检索", "feedback": "反馈", "notices": "变更通知"}

REASON_LABELS = {"related": "关联条目", "synonym": "同义词命中"}

# Error pages: one headline per domain error class (the same classes api/errors.py maps to statuses).
ERROR_TITLES: dict[type[ZhikuError], str] = {
    NotFound: "未找到",
    Conflict: "操作冲突",
    InvalidTransition: "当前状态不允许此操作",
    ValidationFailed: "输入有误",
    PermissionDenied: "无权限",
    Unauthenticated: "请先登录",
    RateLimited: "请求过于频繁",
    Unavailable: "服务暂不可用",
}
HTTP_TITLES = {400: "请求无效", 401: "请先登录", 403: "无权访问", 404: "页面不存在", 405: "不支持的请求方式",
               413: "上传内容过大", 422: "输入有误", 429: "请求过于频繁", 500: "服务器内部错误", 503: "服务暂不可用"}
GENERIC_ERROR = "操作未能完成"
INTERNAL_ERROR = "服务器内部错误，请稍后重试或联系管理员。"
PAGE_NOT_FOUND = "您访问的页面不存在。"
FORBIDDEN_PAGE = "您的角色无权访问此页面。"
CSRF_FAILED = "表单已失效或来源不明（CSRF 校验失败），请刷新页面后重试。"
BODY_TOO_LARGE = "上传内容超过上限（{limit} 字节）。"

LOGIN_WRONG = "用户名或密码错误。"
LOGIN_LOCKED = "该账号因连续 5 次登录失败已被锁定，请于 {until} 之后再试，或联系管理员解锁。"
LOGIN_DISABLED = "该账号已停用，请联系管理员。"
LOGIN_REQUIRED = "请先登录。"
LOGGED_OUT = "您已安全退出。"

FOUR_EYES = "四眼原则：您是该更新包的提交人，不能审批或驳回自己的更新包，请由其他审核员处理。"
FEEDBACK_THANKS = "已记录您的反馈，谢谢！"
CHAIN_OK = "审计哈希链校验通过：共 {checked} 条记录，链条完整。"
CHAIN_BROKEN = "审计哈希链校验失败：第 {first} 条记录处断裂（{reason}）。已校验 {checked} 条。"
KEY_CREATED = "API 密钥已创建。请立即复制保存，密钥只显示这一次："
USER_CREATED = "用户 {username} 已创建。"
NO_RESULTS = "未找到相关知识，请换个说法或转人工处理。"
LOW_CONFIDENCE = "检索置信度较低，请核实后再答复客户，必要时转交专家。"

FLASHES = {
    "submitted": "更新包已提交审核，SLA 计时开始。",
    "withdrawn": "更新包已撤回。",
    "revised": "更新包已退回草稿，可继续修改。",
    "approved": "已批准该更新包。",
    "scheduled": "已批准，更新包将在生效时间自动上线。",
    "rejected": "已驳回该更新包，意见已通知提交人。",
    "created": "更新包草稿已保存。请检查预览后提交审核。",
    "item_added": "已添加条目。",
    "item_removed": "已删除条目。",
    "attachment_added": "附件已添加。",
    "attachment_removed": "附件已移除。",
    "published": "已立即发布。",
    "key_revoked": "API 密钥已吊销。",
    "conversation_closed": "会话已结束，卡片展示记录已留存备查。",
}

CHANNELS = {"phone": "电话", "app": "手机银行", "wechat": "微信", "web": "网页在线", "branch": "网点"}
SPEAKERS = {"customer": "客户", "agent": "坐席"}


def error_title(error: ZhikuError) -> str:
    for cls in type(error).__mro__:
        if cls in ERROR_TITLES:
            return ERROR_TITLES[cls]  # type: ignore[index]
    return GENERIC_ERROR


def file_size(size: int | None) -> str:
    """A byte count for people, binary units, one decimal below 10: 1 536 → "1.5 KB", 2 048 → "2 KB",
    52 428 800 → "50 MB"."""
    value = float(size or 0)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    shown = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
    return f"{shown} {unit}"


def too_large(limit: int) -> str:
    """What a page says when the browser sent more than the server takes (nothing was saved)."""
    return f"提交的内容超过上限 {file_size(limit)}，未保存任何内容。请拆分文件或压缩后重新上传。"


def chinese_part(message: str) -> str:
    """The Chinese lead of a bilingual service message ("更新包不存在 pack 'x' not found" → "更新包不存在")."""
    cut = len(message)
    for index in range(len(message) - 1, -1, -1):
        ch = message[index]
        if "\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef":
            cut = index + 1
            break
    else:
        return message
    head, tail = message[:cut], message[cut:]
    # Keep a short tail such as "第 3 版" digits; drop an English explanation.
    if tail.strip() and any(c.isascii() and c.isalpha() for c in tail):
        return head.rstrip(" ：:—-")
    return message
