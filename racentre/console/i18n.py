"""The console's message catalogue: Chinese first, English available (``?lang=en`` or the lang cookie).
A key missing from a language falls back to Chinese, then to the key itself."""
from __future__ import annotations

import re

from racentre.console import formats, i18n_services

LANGUAGES = ("zh", "en")
DEFAULT = "zh"

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "recipient": "接收方证书", "database_unavailable": "数据库暂时不可用，请稍后重试", "verify_seal": "签章验证", "document_to_verify": "待验证文件（PDF、OFD 或印章 .esl）", "verify": "验证",
        "verify_policy_note": "按本中心的验证策略：受信任根证书、吊销状态、时间戳证明的签署时间、印章状态。",
        "signer": "签章人", "verdict": "结论", "signature_intact": "签名值完整", "signing_time": "签署时间",
        "reasons": "原因", "yes": "是", "no": "否", "time_proven": "时间戳证明", "time_claimed": "签章人自称",
        "app": "RA 中心管理台", "login": "登录", "logout": "退出", "name": "用户名", "password": "口令",
        "otp": "动态口令 (TOTP)", "login_cert": "使用客户端证书登录", "login_failed": "登录失败：请检查用户名、口令和动态口令",
        "login_throttled": "来自此地址的登录失败次数过多，请稍后再试",
        "dashboard": "概览", "requests": "申请队列", "certificates": "证书", "seals": "电子印章",
        "recovery": "密钥恢复审批", "audit": "审计日志", "jobs": "后台任务", "language": "English",
        "pending": "待处理", "submitted": "已提交", "vetted": "已审核", "approved": "已批准", "issued": "已签发",
        "rejected": "已拒绝", "revoked": "已吊销", "issuance_per_day": "每日签发证书数（近14天）", "health": "运行状态",
        "ok": "正常", "unavailable": "不可用", "type": "类型", "state": "状态", "unit": "单位", "age": "等待时间",
        "older_than_days": "超过天数", "filter": "筛选", "all": "全部", "id": "编号", "subject": "主体",
        "submitted_by": "提交人", "submitted_at": "提交时间", "detail": "详情", "identity": "身份信息",
        "csr": "证书请求 (CSR)", "checks": "审核检查", "passed": "通过", "failed": "未通过", "four_eyes": "双人审批",
        "approvals": "已批准", "of": "/", "approve": "批准", "reject": "拒绝", "reason": "原因", "vet": "审核",
        "documents_checked": "已核验身份证件", "note": "备注", "vetted_by": "审核人", "no_items": "没有记录",
        "serial": "序列号", "ca": "签发 CA", "profile": "模板", "status": "状态", "not_before": "生效",
        "not_after": "失效", "search": "搜索", "revoke": "吊销", "revocation_reason": "吊销原因",
        "pem": "证书 (PEM)", "fingerprint": "SHA-256 指纹", "key": "公钥", "issuer": "签发者",
        "extensions": "扩展", "ra_request": "RA 申请", "seal_name": "印章名称", "seal_type": "印章类型",
        "users": "授权人员", "make_seal": "制作印章", "picture": "印模图片", "key_label": "签名密钥标签",
        "certificate_file": "签章人证书", "authorise": "授权", "principal": "人员", "suspend": "暂停",
        "resume": "恢复", "validity": "有效期", "purpose": "用途", "requested_by": "申请人",
        "progress": "进度", "expires": "到期", "actor": "操作人", "role": "角色", "action": "操作",
        "target": "对象", "time": "时间", "chain": "链校验", "chain_ok": "哈希链完整", "chain_broken": "哈希链被破坏",
        "verify_chain": "校验哈希链与签名检查点", "rows": "条记录", "checkpoints": "个检查点", "start_crl": "重新生成全部 CRL", "start_kek": "轮换 KEK 并重新封装",
        "start_import": "导入公务员名册 (CSV/XLSX)", "roster": "名册文件", "kind": "任务类型", "created_by": "发起人",
        "errors": "错误", "forbidden": "没有权限执行此操作", "error": "出错了", "back": "返回",
        "not_found": "未找到", "csrf_failed": "表单已过期或来源不可信，请重新提交", "session_expired": "会话已过期，请重新登录",
        "approvals_required": "所需批准数", "you_cannot_approve": "您不能批准此申请（提交人、审核人或已批准）",
        "request_revocation": "提交吊销申请（需双人审批）", "revoke_now": "立即吊销（CA）", "days": "天",
        "hsm": "密码机 (HSM)", "tsa": "时间戳服务", "kms_pending": "待审批恢复请求", "jobs_running": "运行中的任务",
        "count": "数量", "next_page": "下一页", "from": "起始", "person": "人员", "department": "部门",
        "id_number": "身份证号", "uscc": "统一社会信用代码", "host": "主机名", "algorithm": "算法",
        "signature_algorithm": "签名算法", "key_usage": "密钥用法", "sign": "签名", "enc": "加密",
        "done": "完成", "running": "运行中", "queued": "排队中", "unit_id": "单位编号", "good": "有效",
        "approve_selected": "批准所选", "select_all": "全选本页", "select_request": "选择申请",
        "confirm_approve_selected": "批准所选申请？", "nothing_selected": "未选择任何申请，没有执行任何操作",
        "approve_results": "批量批准结果", "result": "结果", "failures": "未能批准的申请", "message": "原因",
        "back_to_queue": "返回申请队列", "result_issued": "已签发", "result_approved": "已批准（待其他审批人）",
        "result_revoked": "已吊销", "result_unchanged": "无变化（您已批准过）", "result_failed": "失败",
        "cert_search_hint": "姓名、身份证号、单位、主机名或序列号（部分）", "expiring_within": "天内到期",
        "sort": "排序", "sort_issued": "签发时间（新→旧）", "sort_expiry": "到期时间（近→远）", "sort_subject": "主体",
        "prev_page": "上一页", "page": "页码",
        "statistics": "统计", "issued_count": "签发证书数", "revoked_count": "吊销证书数", "pending_count": "待处理申请数",
        "total": "合计", "export_csv": "导出 CSV（Excel）", "period": "统计期间", "to": "至",
        "download": "下载", "with_chain": "含证书链", "recovery_lookup": "按姓名、身份证号或证书序列号（十六进制）查找",
        "open_recovery": "发起恢复申请", "key_holder": "密钥持有人与证书", "recover": "司法恢复", "destroy": "销毁",
        "export": "导出", "key_compromise": "密钥泄露", "ca_compromise": "CA 泄露", "affiliation_changed": "隶属关系变更",
        "superseded": "已被替代", "cessation_of_operation": "停止使用", "certificate_hold": "冻结",
        "unspecified": "未说明", "privilege_withdrawn": "权限撤销",
        "returned": "已退回补正", "awaiting_ca": "等待上级CA", "result_awaiting_ca": "等待上级CA签发",
        "return_for_correction": "退回补正", "return_reason": "需补正的内容",
        "resubmit": "补正后重新提交", "new_csr": "新的证书请求（PEM，可不填）",
        "vet_needs_documents": "须先勾选“已核验身份证件”才能审核",
        "emergency_revoke": "紧急吊销（密钥泄露，立即生效）", "justification": "紧急吊销理由（记入审计）",
        "emergency_note": "仅用于密钥泄露等紧急情况：由您一人立即吊销，理由记入审计日志，供审计员复核。",
    },
    "en": {
        "recipient": "Recipient", "database_unavailable": "The database is unavailable; try again later", "verify_seal": "Verify seals", "document_to_verify": "Document to verify (PDF, OFD or a seal .esl)",
        "verify": "Verify", "verify_policy_note": "Under this centre's policy: trusted roots, revocation, the signing "
        "time a timestamp proves, the seal's state.", "signer": "Signer", "verdict": "Verdict",
        "signature_intact": "Signature intact", "signing_time": "Signing time", "reasons": "Reasons", "yes": "yes",
        "no": "no", "time_proven": "proven by a timestamp", "time_claimed": "claimed by the signer",
        "app": "RA Centre Console", "login": "Log in", "logout": "Log out", "name": "User name", "password": "Password",
        "otp": "One-time code (TOTP)", "login_cert": "Log in with a client certificate",
        "login_failed": "Login failed: check the name, the password and the one-time code",
        "login_throttled": "Too many failed logins from this address; try again later",
        "dashboard": "Dashboard", "requests": "Request queue", "certificates": "Certificates", "seals": "Seals",
        "recovery": "Key recovery", "audit": "Audit log", "jobs": "Jobs", "language": "中文",
        "pending": "Pending", "submitted": "Submitted", "vetted": "Vetted", "approved": "Approved", "issued": "Issued",
        "rejected": "Rejected", "revoked": "Revoked", "issuance_per_day": "Certificates issued per day (14 days)",
        "health": "Health", "ok": "OK", "unavailable": "Unavailable", "type": "Type", "state": "State", "unit": "Unit",
        "age": "Waiting", "older_than_days": "Older than (days)", "filter": "Filter", "all": "All", "id": "ID",
        "subject": "Subject", "submitted_by": "Submitted by", "submitted_at": "Submitted at", "detail": "Detail",
        "identity": "Identity", "csr": "Certificate request (CSR)", "checks": "Vetting checks", "passed": "passed",
        "failed": "failed", "four_eyes": "Four-eyes approval", "approvals": "Approvals", "of": "of",
        "approve": "Approve", "reject": "Reject", "reason": "Reason", "vet": "Vet",
        "documents_checked": "Identity documents checked", "note": "Note", "vetted_by": "Vetted by",
        "no_items": "Nothing here", "serial": "Serial", "ca": "Issuing CA", "profile": "Profile", "status": "Status",
        "not_before": "Not before", "not_after": "Not after", "search": "Search", "revoke": "Revoke",
        "revocation_reason": "Revocation reason", "pem": "Certificate (PEM)", "fingerprint": "SHA-256 fingerprint",
        "key": "Public key", "issuer": "Issuer", "extensions": "Extensions", "ra_request": "RA request",
        "seal_name": "Seal name", "seal_type": "Seal type", "users": "Authorised staff", "make_seal": "Make a seal",
        "picture": "Seal picture", "key_label": "Signing key label", "certificate_file": "Signer certificate",
        "authorise": "Authorise", "principal": "Principal", "suspend": "Suspend", "resume": "Resume",
        "validity": "Validity", "purpose": "Purpose", "requested_by": "Requested by", "progress": "Progress",
        "expires": "Expires", "actor": "Actor", "role": "Role", "action": "Action", "target": "Target", "time": "Time",
        "chain": "Chain", "chain_ok": "hash chain intact", "chain_broken": "hash chain broken",
        "verify_chain": "Verify hash chains and signed checkpoints", "rows": "rows", "checkpoints": "checkpoints", "start_crl": "Regenerate every CRL",
        "start_kek": "Rotate the KEK and re-wrap", "start_import": "Import a civil-servant roster (CSV/XLSX)",
        "roster": "Roster file", "kind": "Kind", "created_by": "Started by", "errors": "Errors",
        "forbidden": "You are not allowed to do this", "error": "Something went wrong", "back": "Back",
        "not_found": "Not found", "csrf_failed": "The form expired or came from elsewhere; submit it again",
        "session_expired": "Your session has ended; log in again", "approvals_required": "Approvals required",
        "you_cannot_approve": "You cannot approve this request (submitter, vetter, or already approved)",
        "request_revocation": "Request revocation (four-eyes)", "revoke_now": "Revoke now (CA)", "days": "days",
        "hsm": "HSM", "tsa": "Time-stamping", "kms_pending": "Pending recovery requests", "jobs_running": "Running jobs",
        "count": "Count", "next_page": "Next page", "from": "From", "person": "Person", "department": "Department",
        "id_number": "ID number", "uscc": "Unified social credit code", "host": "Host name", "algorithm": "Algorithm",
        "signature_algorithm": "Signature algorithm", "key_usage": "Key usage", "sign": "signing", "enc": "encryption",
        "done": "done", "running": "running", "queued": "queued", "unit_id": "Unit ID", "good": "good",
        "approve_selected": "Approve selected", "select_all": "Select all on this page",
        "select_request": "Select request", "confirm_approve_selected": "Approve the selected requests?",
        "nothing_selected": "No request was selected; nothing was done", "approve_results": "Approval results",
        "result": "Result", "failures": "Requests not approved", "message": "Reason",
        "back_to_queue": "Back to the request queue", "result_issued": "issued",
        "result_approved": "approved (waiting for another officer)", "result_revoked": "revoked",
        "result_unchanged": "unchanged (you had approved it already)", "result_failed": "failed",
        "cert_search_hint": "name, ID number, unit, host name or serial (part)", "expiring_within": "expiring within days",
        "sort": "Sort", "sort_issued": "issued (newest first)", "sort_expiry": "expiry (soonest first)",
        "sort_subject": "subject", "prev_page": "Previous page", "page": "Page",
        "statistics": "Statistics", "issued_count": "Issued", "revoked_count": "Revoked", "pending_count": "Pending",
        "total": "Total", "export_csv": "Export CSV (Excel)", "period": "Period", "to": "to",
        "download": "Download", "with_chain": "with chain", "recovery_lookup": "Find by name, ID number or certificate serial (hex)",
        "open_recovery": "Open a recovery request", "key_holder": "Key holder and certificate", "recover": "recover",
        "returned": "Returned for correction", "awaiting_ca": "Awaiting the upstream CA",
        "result_awaiting_ca": "approved, awaiting the upstream CA", "return_for_correction": "Return for correction",
        "return_reason": "What to correct", "resubmit": "Resubmit corrected", "new_csr": "New CSR (PEM, optional)",
        "vet_needs_documents": "Tick \u201cidentity documents checked\u201d first",
        "emergency_revoke": "Emergency revocation (key compromise, at once)",
        "justification": "Justification (audited)",
        "emergency_note": "Key compromise only: you alone revoke at once; the justification goes to the audit trail.",
    },
}


def pick(requested: str | None, cookie: str | None) -> str:
    for lang in (requested, cookie):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def translate(key: str, lang: str) -> str:
    return MESSAGES.get(lang, {}).get(key) or MESSAGES[DEFAULT].get(key) or key


def _merge_desk() -> None:
    from racentre.console.i18n_desk import MESSAGES as DESK   # the counter pages' messages (pages_desk)
    for lang, messages in DESK.items():
        for key, text in messages.items():
            MESSAGES[lang].setdefault(key, text)


_merge_desk()

# --- the certificate lifecycle (冻结/解冻, 换发/补发, 即将过期, SM2 envelope) and the words of the services: request
# types and kinds, check names, job results
_LIFECYCLE = {
    "zh": {
        "hold": "已冻结", "suspended": "已冻结", "resumed": "已解冻", "remove_from_crl": "解除冻结",
        "aa_compromise": "属性机构泄露", "result_suspended": "已冻结", "result_resumed": "已解冻",
        "type_civil-servant-dual": "公务员双证书（签名+加密）", "type_unit": "单位证书", "type_server": "应用服务器证书",
        "kind_new": "新申请", "kind_renewal": "换发（原密钥更新）", "kind_rekey": "换发（更换密钥）",
        "kind_reissue": "补发（遗失后）", "kind_revocation": "吊销", "kind_suspend": "冻结", "kind_resume": "解冻",
        "check_documents": "证件核验", "check_identity": "身份信息", "check_csr": "证书请求", "check_subject": "主体一致性",
        "check_key": "公钥唯一性", "check_target": "原证书状态", "check_emergency": "紧急吊销理由",
        "lifecycle": "证书业务", "suspend_cert": "冻结（需双人审批）", "resume_cert": "解冻（需双人审批）",
        "open_request": "待办申请",
        "lifecycle_note": "冻结、解冻、换发和补发都作为申请经审核、双人审批后执行，全程记入审计日志；"
                          "冻结的证书在 CRL 和 OCSP 中显示为“证书冻结”，解冻后恢复有效。",
        "renew_note_renewal": "原密钥更新：沿用原签名密钥，不填写证书请求时使用原申请的证书请求。",
        "renew_note_rekey": "更换密钥：须提供用新密钥生成的证书请求。",
        "renew_note_reissue": "补发：USB Key 遗失或损坏后用新密钥补发（原证书冻结中亦可）。",
        "renew_supersedes": "新证书签发时，原证书随即以“已被替代”吊销。",
        "renew_csr_optional": "证书请求（PEM，可不填）", "renew_csr_required": "新的证书请求（PEM）",
        "renew_enc_csr": "加密证书请求（PEM）", "renew_enc_csr_kmc": "加密证书请求（PEM，可不填：由密钥管理中心生成加密密钥）",
        "submit_request": "提交申请", "expiring": "即将过期", "days_left": "剩余天数",
        "expiring_summary": "{days} 天内到期的有效证书：{n} 张", "expiry_notice": "{n} 张证书将在 {days} 天内到期，请安排换发",
        "expiring_truncated": "只列出了最早到期的 2000 张，请按单位筛选。",
        "envelope_sm2": "加密密钥数字信封（SM2，USB Key）", "envelope_p7": "加密密钥数字信封（GM/T 0010）",
        "job_crl": "重新生成 CRL", "job_kek-rotation": "轮换 KEK", "job_import-civil-servants": "导入公务员名册",
        "failed_job": "失败", "job_created": "新增", "job_existing": "已存在", "job_errors": "错误", "job_signed": "已签发 CRL 的 CA",
        "job_active_version": "当前 KEK 版本", "job_row": "行", "centre_own": "本中心自用证书",
        "status_reason": "原因说明", "status_reason_hint": "如：USB Key 遗失，本人电话挂失",
        "http_400": "请求无效", "http_404": "页面不存在", "http_405": "不支持此请求方式", "http_413": "上传内容过大",
        "http_415": "不支持此内容类型",
    },
    "en": {
        "hold": "On hold", "suspended": "Suspended", "resumed": "Resumed", "remove_from_crl": "removed from CRL",
        "aa_compromise": "AA compromise", "result_suspended": "suspended", "result_resumed": "resumed",
        "type_civil-servant-dual": "Civil servant (signing + encryption)", "type_unit": "Unit", "type_server": "Server",
        "kind_new": "New", "kind_renewal": "Renewal (same key)", "kind_rekey": "Re-key", "kind_reissue": "Re-issue (after loss)",
        "kind_revocation": "Revocation", "kind_suspend": "Suspension", "kind_resume": "Release",
        "check_documents": "Documents", "check_identity": "Identity", "check_csr": "CSR", "check_subject": "Subject",
        "check_key": "Key", "check_target": "Target certificates", "check_emergency": "Emergency justification",
        "lifecycle": "Lifecycle", "suspend_cert": "Suspend (four-eyes)", "resume_cert": "Resume (four-eyes)",
        "open_request": "Open request",
        "lifecycle_note": "Suspension, release, renewal and re-issue are requests, vetted and approved by two officers, "
                          "audited; a suspended certificate shows as certificateHold in the CRL and OCSP, good again "
                          "once released.",
        "renew_note_renewal": "Renewal keeps the signing key; without a CSR the original request's CSR is used.",
        "renew_note_rekey": "Re-key: paste a CSR made with the new key.",
        "renew_note_reissue": "Re-issue after the USB key was lost or broken, with a new key (also when on hold).",
        "renew_supersedes": "When the new certificates are issued the old ones are revoked (superseded).",
        "renew_csr_optional": "CSR (PEM, optional)", "renew_csr_required": "New CSR (PEM)",
        "renew_enc_csr": "Encryption CSR (PEM)", "renew_enc_csr_kmc": "Encryption CSR (PEM, optional: the KMC makes the key)",
        "submit_request": "Submit request", "expiring": "Expiring", "days_left": "Days left",
        "expiring_summary": "Certificates in force ending within {days} days: {n}",
        "expiry_notice": "{n} certificates end within {days} days: plan their renewal",
        "expiring_truncated": "Only the first 2000 are listed: filter by unit.",
        "envelope_sm2": "Encryption key envelope (SM2, USB key)", "envelope_p7": "Encryption key envelope (GM/T 0010)",
        "job_crl": "Regenerate CRLs", "job_kek-rotation": "KEK rotation", "job_import-civil-servants": "Roster import",
        "failed_job": "failed", "job_created": "created", "job_existing": "existing", "job_errors": "errors",
        "job_signed": "CAs with new CRLs", "job_active_version": "active KEK version", "job_row": "row",
        "centre_own": "the centre's own",
        "status_reason": "Reason (free text)", "status_reason_hint": "e.g. USB key reported lost by phone",
        "http_400": "Bad request", "http_404": "No such page", "http_405": "Method not allowed",
        "http_413": "Upload too large", "http_415": "Unsupported content type",
    },
}
for _lang, _extra in _LIFECYCLE.items():
    for _key, _text in _extra.items():
        MESSAGES[_lang].setdefault(_key, _text)

# What the services say (their public messages and check details are English), in Chinese: (pattern, text);
# {0}, {1}... are the pattern's groups, each translated again (a state name, a nested message).
_SERVICE_ZH = [
    (r"request (\d+) not found", "申请 {0} 不存在"),
    (r"(unit|civil servant|server) (\d+) not found", "{0} {1} 不存在"),
    (r"request (\d+) is (\w+), only vetted requests can be approved", "申请 {0} 当前为“{1}”，只有已审核的申请才能批准"),
    (r"request (\d+) is (\w+), only submitted requests can be vetted", "申请 {0} 当前为“{1}”，只有已提交的申请才能审核"),
    (r"request (\d+) is (\w+) and can no longer be rejected", "申请 {0} 当前为“{1}”，已不能拒绝"),
    (r"request (\d+) is (\w+); only submitted or vetted requests can be returned", "申请 {0} 当前为“{1}”，只有已提交或已审核的申请才能退回补正"),
    (r"request (\d+) is (\w+); only returned requests can be resubmitted", "申请 {0} 当前为“{1}”，只有已退回的申请才能重新提交"),
    (r"request (\d+) has no certificate in force", "申请 {0} 没有有效的证书"),
    (r"request (\d+) has no certificate on hold", "申请 {0} 没有处于冻结状态的证书"),
    (r"request (\d+) has no certificate in force to suspend", "申请 {0} 没有可冻结的有效证书"),
    (r"request (\d+) has no certificate on hold to resume", "申请 {0} 没有可解冻的冻结证书"),
    (r"request (\d+) has no issued certificates to (\w+)", "申请 {0} 没有已签发的证书"),
    (r"an officer cannot approve a request they submitted", "提交人不能批准自己提交的申请"),
    (r"an officer cannot approve a request they vetted", "审核人不能批准自己审核的申请"),
    (r"the submitter of a request cannot vet it", "提交人不能审核自己提交的申请"),
    (r"only the submitter or an RA operator can resubmit a returned request", "只有提交人或受理员可以重新提交退回的申请"),
    (r"confirm that the identity documents were checked.*", "请先确认已核验身份证件；申请未作更改"),
    (r"a rejection needs a reason", "拒绝须填写原因"),
    (r".* needs a reason", "须填写原因"),
    (r"the (rejection )?reason is longer than (\d+) characters", "原因不能超过 {1} 个字符"),
    (r"a (\w+) request is approved or rejected, not returned for correction", "此类申请只能批准或拒绝，不能退回补正"),
    (r"a renewal must keep the signing key of the certificate it renews", "原密钥更新须沿用原证书的签名密钥"),
    (r"a re-key needs a new signing key", "更换密钥或补发须使用新的签名密钥"),
    (r"the public key is already certified for another subject", "该公钥已为其他主体签发过证书"),
    (r"the public key is already certified; use a renewal or a new key", "该公钥已签发过证书：请办理原密钥更新或使用新密钥"),
    (r"a CSR is required", "须提供证书请求 (CSR)"),
    (r"a re-key or re-issue needs the subscriber's new certificate request \(CSR\)", "更换密钥或补发须提供用新密钥生成的证书请求"),
    (r"this certificate was not issued through an RA request", "此证书不是通过 RA 申请签发的"),
    (r"this certificate has no encryption key generated by the key-management centre", "此证书的加密密钥不是由密钥管理中心生成的，没有数字信封"),
    (r"(\w+) requests carry no CSR or public key", "此类申请不带证书请求或公钥"),
    (r"only revocation requests take a revocation reason", "只有吊销申请才填写吊销原因"),
    (r"only suspension, release and revocation requests take a status reason", "只有冻结、解冻和吊销申请才填写原因说明"),
    (r"the status reason is longer than (\d+) characters", "原因说明不能超过 {0} 个字符"),
    (r"the status reason contains control characters", "原因说明含有控制字符"),
    (r"status_reason must be text", "原因说明须为文本"),
    (r"the request was changed concurrently; reload and retry", "申请已被他人同时修改，请刷新后重试"),
    (r"the change conflicts with a concurrent one; reload and retry", "与他人同时进行的操作冲突，请刷新后重试"),
    (r"the CA failed to .*; nothing was recorded", "CA 处理失败，未作任何记录"),
    (r"kind is one of .*", "业务类型无效"),
    (r"days is a whole number from 1 to 3660", "天数须为 1 到 3660 的整数"),
    (r"CSR subject has (\w+)=(.+), the vetted record has none", "证书请求主体含 {0}={1}，登记信息中没有此项"),
    (r"CSR subject (\w+)=(.+) contradicts the vetted record", "证书请求主体 {0}={1} 与登记信息不符"),
    (r"vetting failed: (.+)", "审核未通过：{0}"),
    (r"(documents|identity|csr|subject|key|target): (.+)", "{0}：{1}"),
    (r"passed", "通过"),
    (r"identity documents checked by the operator", "受理员已核验身份证件"),
    (r"identity number and unit code valid", "身份证号与统一社会信用代码有效"),
    (r"host names, addresses and unit code valid", "主机名、IP 地址与统一社会信用代码有效"),
    (r"unit code valid", "统一社会信用代码有效"),
    (r"proof of possession verified \((.+)\)", "私钥持有证明已验证（{0}）"),
    (r"CSR subject consistent with (.+)", "证书请求主体与登记信息一致：{0}"),
    (r"key not certified for anyone else", "公钥未为他人签发过证书"),
    (r"certificates in force: (.+)", "有效证书：{0}"),
    (r"certificates on hold: (.+)", "冻结中的证书：{0}"),
    (r"internal error \(see the service log\)", "内部错误（详见服务日志）"),
]
_SERVICE_PATTERNS = [(re.compile(p + r"\Z", re.S), text) for p, text in _SERVICE_ZH + i18n_services.SERVICE_ZH]
_MAX_MESSAGE = 4000
_PAIRS = re.compile(r"[a-z_]+=[^,=]*(, [a-z_]+=[^,=]*)*\Z")


def message(text, lang: str) -> str:
    """A service's message (an error's public message, a vetting check's detail, a job's error) in ``lang``:
    the services speak English; Chinese officers read the Chinese of the first matching pattern (parts such as
    a request state or the failed checks of a rejection translated too), or the text itself when none matches."""
    if not isinstance(text, str) or lang != "zh" or len(text) > _MAX_MESSAGE:
        return text
    for pattern, template in _SERVICE_PATTERNS:
        found = pattern.match(text)
        if found and not ("; " in text and template.count("{") == 1 and template.startswith("{0}")):
            return template.format(*(_word(g, lang) for g in found.groups()))
    if "; " in text:
        return "；".join(message(part, lang) for part in text.split("; "))
    return text


def _word(part: str | None, lang: str) -> str:
    if part is None:
        return ""
    if part in i18n_services.FIELDS:
        return i18n_services.FIELDS[part]
    if part in MESSAGES["zh"] and " " not in part:
        return translate(part, lang)
    if part in ("documents", "identity", "csr", "subject", "key", "target"):
        return translate("check_" + part, lang)
    if part in ("civil servant", "unit", "server"):
        return {"civil servant": "公务员", "unit": "单位", "server": "服务器"}[part]
    if _PAIRS.match(part):          # a subject as the services list it: C=CN, O=…, CN=… (RFC 4514 short names)
        return ", ".join(f"{formats.SHORT.get(k, k)}={v}" for k, v in (p.split("=", 1) for p in part.split(", ")))
    return message(part, lang) if " " in part or ":" in part else part
