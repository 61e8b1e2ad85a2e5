"""Resumable console jobs over the full app: CRL regeneration for every CA, KEK rotation with
re-wrapping, a civil-servant roster import (GB 18030 CSV and an openpyxl-made XLSX, bad rows reported,
re-import idempotent);
a job whose runner died mid-way is taken over after its lease lapses; a failed job resumes from its
cursor; progress is served as JSON for the page's script; the thread started by the first console
request runs a job to completion."""
from __future__ import annotations

import dataclasses
import datetime as dt
import io
import time

import openpyxl
import pytest
from sqlalchemy import update

from store.db import transaction, utcnow
from ra.workflow import Actor
from racentre.console import jobs
from racentre.console.jobs import JobRunner
from racentre.console.models import ConsoleJob
from tests.unit.console.site import app_for, csrf_of, login, officer
from tests.unit.ra import helpers


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def _runner(app, services, batch=2) -> JobRunner:
    return JobRunner(services.db, app.extensions, batch)


def _job(services, job_id) -> ConsoleJob:
    with services.db() as session:
        return session.get(ConsoleJob, job_id)


def test_crl_and_kek_jobs_from_the_console(app, services):
    name, secret = officer(services, ["ra_admin"], password=True)
    client = app.test_client()
    login(client, name, secret)
    token = csrf_of(client.get("/console/jobs").get_data(as_text=True))
    resp = client.post("/console/jobs/crl", data={"csrf_token": token})
    assert resp.status_code == 303
    crl_job = int(resp.headers["Location"].rsplit("/", 1)[1])
    kek_job = int(client.post("/console/jobs/kek-rotation", data={"csrf_token": token}).headers["Location"].rsplit("/", 1)[1])
    assert client.get(f"/console/jobs/{crl_job}.json").json["state"] == "queued"
    before = {k["version"] for k in app.extensions["racentre.kms"].escrow.kek_status()}
    assert _runner(app, services).run_until_idle() >= 3
    status = client.get(f"/console/jobs/{crl_job}.json").json
    cas = len(services.ca.authorities())
    assert status["state"] == "done" and status["progress"] == status["total"] == cas
    assert _job(services, kek_job).state == "done"
    after = app.extensions["racentre.kms"].escrow.kek_status()
    assert {k["version"] for k in after} - before and [k["state"] for k in after].count("active") == 1
    assert "job-progress" in client.get(f"/console/jobs/{crl_job}").get_data(as_text=True)


def _roster(unit_name: str, good: int) -> bytes:
    lines = ["name,id_number,department,position"] + [f"公务员{i},{helpers.id_number()},办公室,科员" for i in range(good)]
    lines.append("坏数据,123,办公室,科员")
    return ("\n".join(lines) + "\n").encode("gb18030")


def test_roster_import_is_resumable(app, services):
    ra = app.extensions["racentre.ra"]
    operator, secret = officer(services, ["ra_operator"], password=True)
    unit, _ = ra.add_unit(Actor(operator, "ra_operator"), name=f"测试局{helpers.tag()}", uscc=helpers.uscc(),
                          legal_representative="李四")
    client = app.test_client()
    login(client, operator, secret)
    token = csrf_of(client.get("/console/jobs").get_data(as_text=True))
    roster = _roster(unit["name"], 5)
    resp = client.post("/console/jobs/import", data={"csrf_token": token, "unit_id": str(unit["id"]),
                                                     "roster": (io.BytesIO(roster), "roster.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    job_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    crashed = _runner(app, services)
    claimed = crashed._claim(utcnow())                   # a runner claims it and dies before saving
    assert claimed.id == job_id
    other = _runner(app, services)
    assert other.run_once() is False                     # the lease still holds
    with transaction(services.db) as session:
        session.execute(update(ConsoleJob).where(ConsoleJob.id == job_id)
                        .values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    assert other.run_once() is True
    assert _job(services, job_id).progress == 2 and _job(services, job_id).state == "running"
    with transaction(services.db) as session:            # break the payload: the next chunk fails
        session.execute(update(ConsoleJob).where(ConsoleJob.id == job_id).values(payload=b"\xff\xfe\x00garbage"))
    other.run_until_idle()
    assert _job(services, job_id).state == "failed"
    with transaction(services.db) as session:
        session.execute(update(ConsoleJob).where(ConsoleJob.id == job_id).values(payload=roster))
    token = csrf_of(client.get(f"/console/jobs/{job_id}").get_data(as_text=True))
    assert client.post(f"/console/jobs/{job_id}/resume", data={"csrf_token": token}).status_code == 303
    other.run_until_idle()
    job = _job(services, job_id)
    assert job.state == "done" and job.progress == job.total == 6
    assert job.result["created"] == 5 and [e["row"] for e in job.result["errors"]] == [6]
    assert len(ra.list_subjects("civil-servant", unit_id=unit["id"])) == 5
    again = jobs.submit(services.db, "import-civil-servants", actor=operator, role="ra_operator",
                        params={"unit_id": unit["id"]}, payload=roster)
    other.run_until_idle()
    assert _job(services, again).result["existing"] == 5 and _job(services, again).result["created"] == 0
    with pytest.raises(jobs.JobError):
        jobs.submit(services.db, "import-civil-servants", actor=operator, role="ra_operator",
                    params={"unit_id": unit["id"]}, payload=b"foo,bar\n1,2\n")


def _xlsx_roster(good: int) -> tuple[bytes, list[str]]:
    """A real workbook written by openpyxl: a title row above the header, typed cells (a phone number
    as an integer), a blank row, and one bad identity number."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "名册"
    sheet.append([])
    sheet.append(["Name", "ID_Number", "Department", "Position", "Contact"])
    ids = [helpers.id_number() for _ in range(good)]
    for i, number in enumerate(ids):
        sheet.append([f"表格公务员{i}", number, "办公室", "科员", 13800138000 + i])
        if i == 1:
            sheet.append([None, None, None])
    sheet.append(["坏数据", "123", "办公室", "科员", None])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue(), ids


def test_xlsx_roster_import_is_resumable_and_idempotent(app, services):
    ra = app.extensions["racentre.ra"]
    operator, secret = officer(services, ["ra_operator"], password=True)
    unit, _ = ra.add_unit(Actor(operator, "ra_operator"), name=f"表格局{helpers.tag()}", uscc=helpers.uscc(),
                          legal_representative="李四")
    roster, ids = _xlsx_roster(5)
    assert roster.startswith(b"PK\x03\x04")
    parsed = jobs.parse_roster(roster)
    assert [r["id_number"] for r in parsed[:5]] == ids and parsed[0]["contact"] == "13800138000"
    assert len(parsed) == 6 and parsed[5]["name"] == "坏数据"
    client = app.test_client()
    login(client, operator, secret)
    token = csrf_of(client.get("/console/jobs").get_data(as_text=True))
    resp = client.post("/console/jobs/import", data={"csrf_token": token, "unit_id": str(unit["id"]),
                                                     "roster": (io.BytesIO(roster), "roster.xlsx")},
                       content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    job_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    dead = _runner(app, services)
    assert dead.run_once() is True                       # one chunk of two rows, then the process dies
    assert _job(services, job_id).progress == 2
    assert dead._claim(utcnow()).id == job_id             # ... holding the lease
    other = _runner(app, services)
    assert other.run_once() is False
    with transaction(services.db) as session:
        session.execute(update(ConsoleJob).where(ConsoleJob.id == job_id)
                        .values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    other.run_until_idle()
    job = _job(services, job_id)
    assert job.state == "done" and job.progress == job.total == 6
    assert job.result["created"] == 5 and [e["row"] for e in job.result["errors"]] == [6]
    people = ra.list_subjects("civil-servant", unit_id=unit["id"])
    assert len(people) == 5
    again = jobs.submit(services.db, "import-civil-servants", actor=operator, role="ra_operator",
                        params={"unit_id": unit["id"]}, payload=roster)
    other.run_until_idle()
    assert _job(services, again).result["existing"] == 5 and _job(services, again).result["created"] == 0
    assert len(ra.list_subjects("civil-servant", unit_id=unit["id"])) == 5
    # the same refusals as for CSV, at submission
    workbook = openpyxl.Workbook()
    workbook.active.append(["序号", "备注"])         # neither 姓名 nor 身份证号 (nor name, id_number)
    workbook.active.append(["张三", helpers.id_number()])
    no_header = io.BytesIO()
    workbook.save(no_header)
    for bad, why in ((no_header.getvalue(), "header"), (b"PK\x03\x04" + b"\x00" * 64, "XLSX"),
                     (roster[: len(roster) // 2], "XLSX")):
        with pytest.raises(jobs.JobError, match=why):
            jobs.submit(services.db, "import-civil-servants", actor=operator, role="ra_operator",
                        params={"unit_id": unit["id"]}, payload=bad)


def test_first_console_request_starts_the_job_thread(services):
    """With ``job_thread`` on, the process's first console request starts the runner thread, which
    takes a queued CRL job to done by itself (polled with a deadline)."""
    app = app_for(services)
    config = services.config
    app.extensions["racentre.config"] = dataclasses.replace(
        config, console=dataclasses.replace(config.console, job_thread=True))
    runner = app.extensions["racentre.console.jobs"]
    assert runner._thread is None
    job_id = jobs.submit(services.db, "crl", actor="thread-test", role="ra_admin")
    try:
        assert app.test_client().get("/console/login").status_code == 200
        assert runner._thread is not None and runner._thread.is_alive()
        deadline = time.monotonic() + 120
        while _job(services, job_id).state in ("queued", "running"):
            assert time.monotonic() < deadline, f"job still {_job(services, job_id).state} after 120 s"
            time.sleep(0.2)
    finally:
        runner.stop()
        if runner._thread is not None:
            runner._thread.join(timeout=30)
    job = _job(services, job_id)
    assert job.state == "done" and job.progress == job.total == len(services.ca.authorities())
    assert job.lease_owner is None and not runner._thread.is_alive()
