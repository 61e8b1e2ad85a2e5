"""``racentre.demo.screenshots.write_screenshots(services, out)`` as ``racentre demo`` calls it: the console
served over the site's services on a loopback port, a throw-away account logged in through headless
Debian Chromium, one PNG per main page, the account disabled afterwards."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from audit.trail import AuditEvent
from racentre import accounts
from racentre.demo import screenshots

if not (Path(screenshots.CHROMIUM).is_file() and Path(screenshots.CHROMEDRIVER).is_file()):
    pytest.skip("Debian chromium and chromium-driver are not installed (scripts/setup.sh installs them)",
                allow_module_level=True)


def test_write_screenshots_from_services(services, tmp_path):
    os.environ.setdefault("SE_OFFLINE", "1")            # Selenium Manager must not try to download
    with services.db() as session:
        before = {a["name"] for a in accounts.list_accounts(session)}
    written = screenshots.write_screenshots(services, tmp_path / "demo-out")
    with services.db() as session:
        made = [a for a in accounts.list_accounts(session) if a["name"] not in before]
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.actor == made[0]["name"])))
    assert sorted(Path(p).name for p in written) == sorted(f"{label}.png" for label, _ in screenshots.PAGES)
    assert all(Path(p).parent == tmp_path / "demo-out" / "screenshots" for p in written)
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 1000
    assert len(made) == 1 and made[0]["name"].startswith("demo-screens-") and made[0]["disabled"]
    assert "console.login" in actions and "console.login_failed" not in actions
