"""The services' words in Chinese on every console page: each refusal a console page can show (found in the
source by tests.unit.console.service_words) has Chinese in ``racentre.console.i18n.message``; and the console's
error paths, driven as an officer holding every console role through each of its routes with bad path values
and empty or hostile forms (SQLite and PostgreSQL), render no English sentence in their errors."""
from __future__ import annotations

import html
import re

import pytest

from racentre.console.i18n import message
from tests.unit.console import service_words
from tests.unit.console.site import app_for, csrf_of, logged_in

_WORD = r"(?<![\w-])[A-Za-z]{2,}(?![\w-])"          # a word, not part of an identifier (sm2-enveloped-key)
ENGLISH = re.compile(_WORD + r"(?:[ ,;:'()/]+" + _WORD + r"){3,}")      # four English words in a row
SHOWN = re.compile(r'class="(?:flash error|field-error)"[^>]*>(.*?)</(?:p|span|div|li)>', re.S)
ROLES = ["ra_operator", "ra_officer", "ra_admin", "auditor", "key_recovery_officer"]


def test_every_refusal_a_console_page_can_show_has_chinese():
    refusals = service_words.console_refusals()
    assert len(refusals) >= 300, len(refusals)          # the collector finds what it should
    missing = service_words.untranslated(refusals, message)
    assert not missing, "\n".join(f"{r.where} {r.error}: {r.sample}" for r in missing)


@pytest.mark.parametrize("text,expected", [
    ("unit name must not be empty", "单位名称不能为空"),
    ("identity number must have 18 characters, got 5", "身份证号须为 18 位，实际为 5 位"),
    ("CA issuing-sm2 has issued no certificate with serial 1a", "CA issuing-sm2 没有签发过序列号为 1a 的证书"),
    ("the signing certificate belongs to 甲局, not to the seal's unit 乙局", "签名证书属于 甲局，不属于印章所属单位 乙局"),
    ("dates are YYYY-MM-DD", "日期格式须为 YYYY-MM-DD"),
])
def test_samples_read_as_an_officer_expects(text, expected):
    assert message(text, "zh") == expected
    assert message(text, "en") == text


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def _english_in(page: str) -> list[str]:
    return [found.group(0) for shown in SHOWN.findall(page)
            if (found := ENGLISH.search(re.sub(r"<[^>]+>", " ", html.unescape(shown))))]


def _bad_values(rule, serial: str, ca_name: str) -> dict:
    """Path values naming nothing (an ``any(...)`` part takes its first choice)."""
    values = {}
    for name in rule.arguments:
        choices = getattr(rule._converters.get(name), "items", None)
        values[name] = sorted(choices)[0] if choices else {"serial": serial, "ca_name": ca_name}.get(name, "999999999")
    return values


def test_console_error_paths_render_no_english_sentence(app, services):
    """Every console route (GET, and POST with a valid CSRF token and empty, then hostile, form values) with
    path values naming nothing: whatever it refuses, it says it in Chinese; nothing answers 500."""
    client, _ = logged_in(app, services, ROLES)
    token = csrf_of(client.get("/console/").get_data(as_text=True))
    real_ca = next(iter(services.ca.authorities()))
    english, errors, driven, shown = [], [], 0, []
    hostile = {"name": "x" * 300, "id_number": "12345", "uscc": "abc", "csr": "not a csr", "reason": "r" * 3000,
               "justification": "", "status_reason": "长" * 600, "serial": "zz", "ca": "nope", "from": "yesterday",
               "to": "2020-13-40", "days": "0", "format": "zip", "kind": "sideways", "type": "nonsense",
               "unit_id": "abc", "width_mm": "-1", "height_mm": "1e9", "valid_days": "x", "host_name": "-bad-",
               "legal_representative": "", "documents_checked": "yes", "mode": "import", "principal": "",
               "recipient": "not pem", "page": "0", "x_mm": "NaN", "y_mm": "inf", "anchor": "", "lang": "zh"}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/console") or rule.endpoint in ("console.logout", "console.login"):
            continue
        paths = {rule.build(_bad_values(rule, serial, ca_name), append_unknown=False)[1]
                 for serial, ca_name in (("zz", "no-such-ca"), ("1a2b3c", real_ca))}
        for method, path in sorted((m, p) for m in rule.methods & {"GET", "POST"} for p in paths):
            forms = [{}] if method == "GET" else [{}, hostile]
            for form in forms:
                if method == "GET":
                    answer = client.get(path, query_string={"format": "zip", "from": "yesterday", "days": "0"})
                else:
                    answer = client.post(path, data={"csrf_token": token, **form})
                driven += 1
                if answer.status_code >= 500:
                    errors.append((method, path, answer.status_code))
                if answer.mimetype == "text/html":
                    page = answer.get_data(as_text=True)
                    shown += [re.sub(r"<[^>]+>", " ", html.unescape(m)).strip() for m in SHOWN.findall(page)]
                    english += [(method, path, e) for e in _english_in(page)]
    assert driven >= 85, driven
    assert len(set(shown)) >= 25, "\n".join(sorted(set(shown)))          # the refusals were reached, not just 404s
    assert not errors, errors
    assert not english, "\n".join(map(str, sorted(set(english))))
