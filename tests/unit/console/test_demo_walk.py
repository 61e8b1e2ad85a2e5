"""The parts of ``racentre.demo.walk`` that need no browser: what the demo says when the browser or its
driver is missing, and the index of the day's screenshots (who did what, escaped)."""
from __future__ import annotations

from racentre.demo import screenshots, walk


def test_the_demo_says_which_browser_part_is_missing(monkeypatch):
    monkeypatch.setattr(screenshots, "CHROMEDRIVER", "/nonexistent/chromedriver")
    missing = walk.browser_missing()
    assert missing is not None and "/nonexistent/chromedriver" in missing and "scripts/setup.sh" in missing


def test_index_names_each_officer_and_step():
    shots = [walk.Shot(1, "01-submit-unit-by-zhao.png", "zhao", "submit-unit", "受理：<单位> & 申请"),
             walk.Shot(2, "02-audit-export-by-wu.png", "wu", "audit-export", "审计：导出")]
    page = walk.index_html(shots, walk.DayFacts(downloads={"audit export (CSV)": "audit-export.csv"}))
    assert page.index('href="01-submit-unit-by-zhao.png"') < page.index('href="02-audit-export-by-wu.png"')
    assert "赵敏（zhao，ra_operator）" in page and "吴芳（wu，auditor）" in page
    assert "&lt;单位&gt; &amp; 申请" in page and "<单位>" not in page
    assert "../console-day/audit-export.csv" in page
