"""The demo team's day in the console (README "Demo", issue 17 "Must show"): headless Debian Chromium at
1366×768 drives the console's own pages and forms, each step logged in as the officer whose role does it
(password + TOTP, ``racentre.demo.team``), and one numbered screenshot per step goes to
``OUT/screenshots/NN-step-by-NAME.png`` with ``OUT/screenshots/index.html`` saying who did what.

The day, in order: 受理 (a unit, a civil servant with a KMC-escrowed encryption key, three servers), 审核 (each
vetted with its documents ticked), 批准 (a first approval, one bulk approval of several, the four-eyes second
approver), 冻结 and its approval, 解冻, 换发, 吊销 (asked, vetted, approved), 密钥恢复 (opened, 2 of 3 approvals,
executed and downloaded), 签章 (preview, seal, download) and 签章验证, 审计 (filter, CSV export). Files the
browser downloads (the sealed PDF, the recovered key envelope, the audit CSV) go to ``OUT/console-day/``.

Each officer logs in once (a one-time code is good for one login, ``racentre.accounts``); switching officer
puts that officer's session cookie back into the browser, as a second browser window would keep it.
"""
from __future__ import annotations

import html
import json
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import waitress
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from racentre import accounts
from racentre.app import build_app
from racentre.demo import screenshots
from racentre.demo.team import TEAM, create_team, new_password
from store.db import transaction

SIZE = (1366, 768)
DISTID = "distid:1234567812345678"


class WalkError(RuntimeError):
    """A step of the day did not end as the console should show it."""


@dataclass(frozen=True)
class Shot:
    number: int
    file: str
    officer: str
    step: str
    what: str


@dataclass
class DayFacts:
    """What the day made (request numbers, certificates as "CA/serial"), for the index and the tests."""
    requests: dict[str, int] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    recovery: int | None = None
    downloads: dict[str, str] = field(default_factory=dict)


def _csr(work: Path, name: str, subject_cn: str) -> str:
    """A subscriber's own SM2 key and CSR (OpenSSL, default SM2 ID, GB/T 35276), as a USB key makes them."""
    key = work / f"{name}.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(key)],
                   check=True, capture_output=True)
    return subprocess.run(["openssl", "req", "-new", "-utf8", "-key", str(key), "-subj", f"/CN={subject_cn}", "-sm3",
                           "-sigopt", DISTID], check=True, capture_output=True).stdout.decode()


def _gone(element) -> bool:
    """The page ``element`` belonged to has been replaced (Chromium may say so in more than one way)."""
    try:
        element.is_enabled()
    except WebDriverException:         # stale element, or "node does not belong to the document"
        return True
    return False


class Day:
    """One browser, the team's logins, and the screenshots of the day."""

    def __init__(self, driver, base: str, logins: dict[str, tuple[str, str]], target: Path, downloads: Path):
        self.d, self.base, self.logins = driver, base, logins
        self.target, self.downloads = target, downloads
        self.sessions: dict[str, list[dict]] = {}
        self.current: str | None = None
        self.shots: list[Shot] = []
        self.facts = DayFacts()
        driver.set_window_size(*SIZE)
        # the page itself at 1366×768 (the window's size would include the browser's own frame)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": SIZE[0], "height": SIZE[1],
                                                                       "deviceScaleFactor": 1, "mobile": False})
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})

    # ------------------------------------------------------------------ browser helpers
    def act_as(self, name: str) -> None:
        if name == self.current:
            return
        self.d.delete_all_cookies()
        if name in self.sessions:
            self.d.get(f"{self.base}/console/login")
            for cookie in self.sessions[name]:
                self.d.add_cookie(cookie)
        else:
            password, secret = self.logins[name]
            screenshots.login(self.d, self.base, name, password, secret)
            self.sessions[name] = self.d.get_cookies()
        self.current = name

    def log_out_all(self) -> None:
        """Each officer's 退出 at the end of the day: no console session outlives the walk's browser."""
        for name in list(self.sessions):
            self.act_as(name)
            self.open("/console/")
            self.click(self.d.find_element(By.CSS_SELECTOR, "form[action$='/logout'] button"))
            del self.sessions[name]
            self.current = None

    def open(self, path: str) -> None:
        self.d.get(self.base + path)

    def by_id(self, element_id: str):
        return self.d.find_element(By.ID, element_id)

    def click(self, element, confirm: bool = False) -> None:
        """Click and wait for the next page (answering the console's ``data-confirm`` dialogue)."""
        page = self.d.find_element(By.TAG_NAME, "html")
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()
        if confirm:
            WebDriverWait(self.d, 10).until(ec.alert_is_present()).accept()
        WebDriverWait(self.d, 60).until(lambda _: _gone(page))
        self.d.find_element(By.TAG_NAME, "body")

    def text(self, element_id: str) -> str:
        return self.by_id(element_id).text

    def rid_here(self) -> int:
        tail = self.d.current_url.rstrip("/").rsplit("/", 1)[1]
        if not tail.isdigit():
            raise WalkError(f"expected a request page, got {self.d.current_url}")
        return int(tail)

    def expect(self, element_id: str, wanted: str, step: str) -> None:
        found = self.text(element_id)
        if wanted not in found:
            raise WalkError(f"{step}: #{element_id} says {found!r}, not {wanted!r} ({self.d.current_url})")

    def shot(self, step: str, what: str, focus=None) -> None:
        if focus is not None:
            self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", focus)
        number = len(self.shots) + 1
        name = f"{number:02d}-{step}-by-{self.current}.png"
        self.d.save_screenshot(str(self.target / name))
        self.shots.append(Shot(number, name, self.current or "", step, what))

    def recovery_row(self, rid: int):
        for row in self.d.find_elements(By.CSS_SELECTOR, "#recovery-list tr"):
            cells = row.find_elements(By.TAG_NAME, "td")
            if cells and cells[0].text.strip() == str(rid):
                return row
        raise WalkError(f"密钥恢复: request {rid} is not in the list")

    def wait_download(self, pattern: str, before: set[Path], label: str) -> Path:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = [p for p in self.downloads.glob(pattern) if p not in before and p.stat().st_size]
            if done:
                self.facts.downloads[label] = done[0].name
                return done[0]
            time.sleep(0.2)
        raise WalkError(f"the browser did not download {label} ({pattern}) within 60 s")

    # ------------------------------------------------------------------ 受理 / 审核 / 批准
    def intake(self, rtype: str, fields: dict[str, str], csr: str, unit: str | None = None) -> int:
        self.open(f"/console/intake?type={rtype}")
        if unit is not None:
            Select(self.by_id("f-unit_id")).select_by_visible_text(unit)
        for name, value in fields.items():
            self.by_id(f"f-{name}").send_keys(value)
        for box in self.d.find_elements(By.CSS_SELECTOR, "#documents input[type=checkbox]"):
            if not box.is_selected():
                box.click()
        self.d.execute_script("document.getElementById('f-sign_csr').value = arguments[0]", csr)
        self.click(self.by_id("submit-request"))
        if "/console/requests/" not in self.d.current_url:
            errors = [e.text for e in self.d.find_elements(By.CSS_SELECTOR, ".field-error, #intake-message")]
            raise WalkError(f"受理 of a {rtype} request refused: {errors}")
        self.expect("state", "已提交", "受理")
        return self.rid_here()

    def vet(self, rid: int) -> None:
        self.open(f"/console/requests/{rid}")
        self.by_id("documents-checked").click()
        self.click(self.by_id("vet"))
        self.expect("state", "已审核", f"审核 of request {rid}")

    def approve(self, rid: int) -> None:
        self.open(f"/console/requests/{rid}")
        self.click(self.by_id("approve"), confirm=True)

    def certificate_of(self, rid: int) -> str:
        """The first certificate the request page links to, as "CA/serial"."""
        self.open(f"/console/requests/{rid}")
        links = self.d.find_elements(By.CSS_SELECTOR, "#issued a.cert-link")
        if not links:
            raise WalkError(f"request {rid} shows no certificate")
        return links[0].text.strip()

    def lifecycle_request(self, cert: str, button_id: str) -> int:
        """冻结/解冻 asked from the certificate page (any reason field the form has gets its first choice)."""
        self.open(f"/console/certificates/{cert}")
        button = self.by_id(button_id)
        form = button.find_element(By.XPATH, "./ancestor::form")
        for select in form.find_elements(By.TAG_NAME, "select"):
            Select(select).select_by_index(min(1, len(Select(select).options) - 1))
        for box in form.find_elements(By.CSS_SELECTOR, "input[required]:not([type=hidden])"):
            if not box.get_attribute("value"):
                box.send_keys("演示：单位申请")
        self.click(button, confirm=True)
        self.expect("state", "已提交", button_id)
        return self.rid_here()


def walk(day: Day, *, tag: str, id_number: str, uscc: str, recipient_pem: str, seal_id: int,
         unsealed_pdf: Path, work: Path) -> DayFacts:
    """The day itself; raises WalkError when a page does not show the outcome a step should have."""
    f = day.facts
    unit_name = f"示范市公安局-{tag}"
    person = "李明"
    hosts = [f"www{i}-{tag}.demo.gov.cn" for i in (1, 2, 3)]

    # 受理: zhao enters a unit, a civil servant (encryption key from the KMC) and three servers
    day.act_as("zhao")
    f.requests["unit"] = day.intake("unit", {"unit_name": unit_name, "uscc": uscc, "legal_representative": "周正"},
                                    _csr(work, "unit", unit_name))
    day.shot("submit-unit", f"受理：登记单位“{unit_name}”并提交单位证书申请 #{f.requests['unit']}（身份材料已勾选）",
             day.by_id("documents-received"))
    f.requests["person"] = day.intake("civil-servant-dual", {"name": person, "id_number": id_number,
                                                             "mobile": "13800138000", "department": "办公室"},
                                      _csr(work, "person", person), unit=unit_name)
    day.shot("submit-civil-servant", f"受理：公务员“{person}”的双证书申请 #{f.requests['person']}（加密密钥由 KMC 生成并托管）")
    for i, host in enumerate(hosts, 1):
        f.requests[f"server{i}"] = day.intake("server", {"host_name": host}, _csr(work, f"server{i}", host), unit=unit_name)
    day.open("/console/requests?state=submitted")
    day.shot("submit-servers", "受理：三台服务器的证书申请；队列中五份待审核的申请", day.by_id("request-list"))

    # 审核: qian (not the submitter) vets each, ticking "documents checked"
    day.act_as("qian")
    for key in ("unit", "server1", "server2", "server3", "person"):
        day.vet(f.requests[key])
    day.shot("vet", f"审核：核验身份证件并勾选后审核通过（申请 #{f.requests['person']} 的各项检查均通过）", day.by_id("checks"))

    # 批准: sun approves the civil servant (1 of 2), then several at once; wang is the second approver
    day.act_as("sun")
    day.approve(f.requests["person"])
    day.expect("state", "已审核", "first approval")
    day.shot("approve-first", f"批准：第一批准人批准申请 #{f.requests['person']}（双人复核 1/2）", day.by_id("four-eyes"))
    day.open("/console/requests?state=vetted")
    bulk = [f.requests[k] for k in ("unit", "server1", "server2", "server3")]
    for rid in bulk:
        day.by_id(f"select-{rid}").click()
    day.click(day.by_id("approve-selected"), confirm=True)
    day.expect("count-issued", "3", "bulk approval")
    day.shot("approve-bulk", f"批量批准：一次勾选批准 {len(bulk)} 份申请（服务器证书签发，单位证书等待第二批准人）")
    day.act_as("wang")
    day.approve(f.requests["unit"])
    day.expect("state", "已签发", "second approval of the unit")
    day.approve(f.requests["person"])
    day.expect("state", "已签发", "second approval of the civil servant")
    day.shot("approve-second", f"双人复核：第二批准人批准，公务员双证书已签发（申请 #{f.requests['person']}）",
             day.by_id("issued"))
    for key in ("person", "unit", "server1"):
        f.certificates[key] = day.certificate_of(f.requests[key])

    # 冻结 and its approval, then 解冻: sun asks (counts as first approver), qian vets, wang approves
    person_cert = f.certificates["person"]
    for action, button, state, status, who in (("suspend", "suspend-cert", "已冻结", "已冻结", "冻结"),
                                               ("resume", "resume-cert", "已解冻", "有效", "解冻")):
        day.act_as("sun")
        rid = day.lifecycle_request(person_cert, button)
        f.requests[action] = rid
        day.shot(f"{action}-request", f"{who}：批准人从证书页发起{who}申请 #{rid}", day.by_id("request-type"))
        day.act_as("qian")
        day.vet(rid)
        day.act_as("wang")
        day.approve(rid)
        day.expect("state", state, f"{who} approval")
        day.open(f"/console/certificates/{person_cert}")
        day.expect("cert-status", status, f"certificate after {who}")
        day.shot(f"{action}-approve", f"{who}：经审核、第二批准人批准，证书状态为“{status}”", day.by_id("cert-status"))

    # 换发: zhao opens the renewal from the server certificate, qian vets, sun approves
    day.act_as("zhao")
    day.open(f"/console/certificates/{f.certificates['server1']}")
    day.click(day.by_id("renew-cert"))
    day.click(day.by_id("renew-submit"), confirm=True)
    f.requests["renewal"] = day.rid_here()
    day.expect("request-type", "换发", "换发")
    day.shot("renew-request", f"换发：受理员从证书页为服务器证书发起换发申请 #{f.requests['renewal']}", day.by_id("request-type"))
    day.act_as("qian")
    day.vet(f.requests["renewal"])
    day.act_as("sun")
    day.approve(f.requests["renewal"])
    day.expect("state", "已签发", "换发 approval")
    day.shot("renew-approve", "换发：审核、批准后新证书已签发，原证书将被替代", day.by_id("issued"))

    # 吊销: sun asks for the unit certificate's revocation, qian vets, wang approves
    day.act_as("sun")
    day.open(f"/console/certificates/{f.certificates['unit']}")
    form = day.d.find_element(By.CSS_SELECTOR, "form[action$='/request-revocation']")
    Select(form.find_element(By.NAME, "reason")).select_by_value("key_compromise")
    day.click(form.find_element(By.CSS_SELECTOR, "button[type=submit]"), confirm=True)
    f.requests["revocation"] = day.rid_here()
    day.shot("revoke-request", f"吊销：批准人发起吊销申请 #{f.requests['revocation']}（原因：密钥泄露）", day.by_id("request-type"))
    day.act_as("qian")
    day.vet(f.requests["revocation"])
    day.act_as("wang")
    day.approve(f.requests["revocation"])
    day.expect("state", "已吊销", "吊销 approval")
    day.open(f"/console/certificates/{f.certificates['unit']}")
    day.expect("cert-status", "已吊销", "certificate after 吊销")
    day.shot("revoke-approve", "吊销：第二批准人批准，证书已吊销（CRL 与 OCSP 随即反映）", day.by_id("cert-status"))

    # 密钥恢复: zhou finds the civil servant's escrowed key and opens a recovery to the court's certificate;
    # zheng and feng approve (2 of 3); chen executes it and the envelope is downloaded
    day.act_as("zhou")
    day.open("/console/recovery")
    day.by_id("recovery-q").send_keys(id_number)
    day.click(day.by_id("recovery-search"))
    rows = day.d.find_elements(By.CSS_SELECTOR, "#recovery-found tr")
    row = next((r for r in rows if r.find_elements(By.CSS_SELECTOR, "details")), None)
    if row is None:
        raise WalkError(f"密钥恢复: no escrowed key found for {id_number}")
    before = {int(c.text) for c in day.d.find_elements(By.CSS_SELECTOR, "#recovery-list tr td:first-child")
              if c.text.isdigit()}
    row.find_element(By.TAG_NAME, "summary").click()
    row.find_element(By.CSS_SELECTOR, ".open-reason").send_keys("演示：法院协助执行通知书（2026）示法执字第 1 号")
    day.d.execute_script("arguments[0].value = arguments[1]", row.find_element(By.CSS_SELECTOR, ".open-recipient"),
                         recipient_pem)
    day.click(row.find_element(By.CSS_SELECTOR, ".open-submit"))
    made = {int(c.text) for c in day.d.find_elements(By.CSS_SELECTOR, "#recovery-list tr td:first-child")
            if c.text.isdigit()} - before
    if len(made) != 1:
        raise WalkError(f"密钥恢复: the request did not appear in the list ({made})")
    f.recovery = made.pop()
    day.shot("recovery-request", f"密钥恢复：管理员按身份证号查到托管密钥，发起司法恢复申请 #{f.recovery}",
             day.recovery_row(f.recovery))
    for officer in ("zheng", "feng"):
        day.act_as(officer)
        day.open("/console/recovery")
        form = day.d.find_element(By.CSS_SELECTOR, f"form[action$='/recovery/{f.recovery}/approve']")
        day.click(form.find_element(By.TAG_NAME, "button"), confirm=True)
        day.shot("recovery-approve", f"密钥恢复：密钥恢复员批准（3 人中 2 人）申请 #{f.recovery}",
                 day.recovery_row(f.recovery))
    day.act_as("chen")
    day.open("/console/recovery")
    before_files = set(day.downloads.iterdir())
    button = day.by_id(f"recover-{f.recovery}")
    button.click()
    WebDriverWait(day.d, 10).until(ec.alert_is_present()).accept()
    day.wait_download(f"recovery-{f.recovery}-*.der", before_files, "recovered key envelope")
    day.open("/console/recovery")
    if "已执行" not in day.recovery_row(f.recovery).text:
        raise WalkError(f"密钥恢复: request {f.recovery} is not shown as executed")
    day.shot("recovery-execute", f"密钥恢复：执行恢复，密钥以数字信封交付给法院证书并下载（{f.downloads['recovered key envelope']}）",
             day.recovery_row(f.recovery))

    # 签章: zhou authorises zhao on the unit's seal; zhao previews the position, seals and downloads
    day.act_as("zhou")
    day.open("/console/seals")
    form = day.d.find_element(By.CSS_SELECTOR, f"form[action$='/seals/{seal_id}/users']")
    form.find_element(By.NAME, "principal").send_keys("zhao")
    day.click(form.find_element(By.TAG_NAME, "button"))
    day.act_as("zhao")
    day.open("/console/seals/sign")
    day.by_id("seal-document").send_keys(str(unsealed_pdf))
    Select(day.by_id("seal-id")).select_by_value(str(seal_id))
    day.click(day.by_id("seal-preview"))
    before_files = set(day.downloads.iterdir())
    day.shot("seal", "签章：上传公文，选择印章和位置，预览后盖章并下载", day.by_id("seal-preview-card"))
    day.by_id("seal-apply").click()
    sealed = day.wait_download("*-sealed.pdf", before_files, "sealed PDF")

    # 签章验证: qian verifies the sealed document
    day.act_as("qian")
    day.open("/console/seals/verify")
    day.d.find_element(By.CSS_SELECTOR, "input[type=file][name=document]").send_keys(str(sealed))
    day.click(day.d.find_element(By.CSS_SELECTOR, "form[enctype] button[type=submit]"))
    day.expect("verify-report", "TOTAL_PASSED", "签章验证 of the sealed PDF")
    day.shot("verify", f"签章验证：上传盖章后的文件，验证结论与印章位置（{sealed.name}）", day.by_id("verify-report"))

    # 审计: wu filters the day's RA actions and exports them; the export itself is in the trail
    day.act_as("wu")
    day.open("/console/audit")
    day.d.find_element(By.CSS_SELECTOR, "form.filters input[name=action]").send_keys("ra.request")
    day.click(day.by_id("audit-filter"))
    day.shot("audit-filter", "审计：按操作类型筛选当天的申请处理记录", day.by_id("audit-list"))
    before_files = set(day.downloads.iterdir())
    day.by_id("audit-csv").click()
    day.wait_download("audit-export*.csv", before_files, "audit export (CSV)")
    day.open("/console/audit?action=audit.export")
    day.shot("audit-export", "审计：导出筛选结果（CSV），导出操作本身也记入审计日志", day.by_id("audit-list"))
    return f


def index_html(shots: list[Shot], facts: DayFacts) -> str:
    """``screenshots/index.html``: each screenshot with the officer (name, role, duty) and what they did."""
    people = {m.name: m for m in TEAM}
    rows = []
    for s in shots:
        m = people.get(s.officer)
        who = f"{html.escape(m.display_name)}（{s.officer}，{html.escape('、'.join(m.roles))}）" if m else html.escape(s.officer)
        rows.append(f'<tr><td>{s.number:02d}</td><td>{who}</td><td>{html.escape(s.what)}</td>'
                    f'<td><a href="{s.file}"><img src="{s.file}" alt="{s.file}" width="341" height="192"></a></td></tr>')
    downloads = "".join(f"<li>{html.escape(k)}: ../console-day/{html.escape(v)}</li>" for k, v in facts.downloads.items())
    return ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>RA 中心 — 演示团队的一天</title>"
            "<h1>演示团队的一天 / the demo team's day</h1><p>racentre demo 在无头 Chromium（1366×768）中以各角色登录管理台完成"
            "以下步骤，每步一张截图。</p><table border=\"1\" cellpadding=\"4\"><tr><th>#</th><th>操作人</th><th>做了什么</th>"
            f"<th>截图</th></tr>{''.join(rows)}</table><h2>下载的文件</h2><ul>{downloads}</ul></html>\n")


def browser_missing() -> str | None:
    """Why the walk cannot run here (None: Debian chromium and chromium-driver are installed)."""
    missing = [p for p in (screenshots.CHROMIUM, screenshots.CHROMEDRIVER) if not Path(p).is_file()]
    return f"{' and '.join(missing)} not installed (scripts/setup.sh installs Debian chromium and chromium-driver)" \
        if missing else None


def run_day(base: str, logins: dict[str, tuple[str, str]], out: Path, **inputs) -> tuple[list[Shot], DayFacts]:
    """Walk the day against the console at ``base``; screenshots and index in ``out/screenshots``, downloads in
    ``out/console-day``. Earlier screenshots of the folder are replaced."""
    target, downloads = out / "screenshots", out / "console-day"
    for folder in (target, downloads):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    profile = tempfile.mkdtemp(prefix="racentre-chromium-")
    work = Path(tempfile.mkdtemp(prefix="racentre-day-"))
    try:
        driver = screenshots.chromium(profile)
    except WebDriverException as exc:
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        raise WalkError(f"headless Chromium did not start: {exc.msg}") from exc
    try:
        day = Day(driver, base, logins, target, downloads)
        try:
            facts = walk(day, work=work, **inputs)
            day.log_out_all()
            blocked = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
            if blocked:       # a script or style the console's CSP refused: some page did not work as shown
                raise WalkError(f"the console's Content Security Policy blocked: {blocked[:3]}")
        except (WalkError, WebDriverException) as exc:
            day.shot("failed", f"失败：{exc}")
            raise WalkError(f"the console day stopped at step {len(day.shots)} as {day.current} "
                            f"({driver.current_url}): {exc}") from exc
        (target / "index.html").write_text(index_html(day.shots, facts), encoding="utf-8")
        (downloads / "day.json").write_text(json.dumps({"shots": [asdict(s) for s in day.shots], **asdict(facts)},
                                                       ensure_ascii=False, indent=2), encoding="utf-8")
        return day.shots, facts
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def console_day(services, out: Path, url: str | None = None, **inputs) -> list[str]:
    """``racentre demo``'s walk: the demo team (``racentre.demo.team``, created or reset here with a fresh
    password that `racentre console demo-team` replaces for the people who use the demo) logs in to the
    console of the running service at ``url`` (scripts/demo.sh), or without one to the console served over
    ``services`` on a loopback port. Returns the files written, relative to ``out``."""
    password = new_password()
    try:
        with transaction(services.db) as session:
            creds = create_team(session, accounts.totp_box(services.key_manager), password)
    except accounts.AccountError as exc:      # e.g. a site's own officer is called zhao
        raise WalkError(f"the demo team cannot be made here: {exc.public_message}") from exc
    logins = {c.member.name: (password, c.totp_secret) for c in creds}
    if url:
        shots, facts = run_day(url.rstrip("/"), logins, out, **inputs)
    else:
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)   # one browser's pages are not an overload
        server = waitress.create_server(build_app(services), host="127.0.0.1", port=0, threads=4)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            shots, facts = run_day(f"http://127.0.0.1:{server.effective_port}", logins, out, **inputs)
        finally:
            server.close()
    return ([f"screenshots/{s.file}" for s in shots] + ["screenshots/index.html"]
            + [f"console-day/{name}" for name in facts.downloads.values()] + ["console-day/day.json"])
