"""``store.db.after_commit``: work owed once a unit of work has committed (the CA's GM/T 0014
RevokeKeyReq, ``ca_bridge.kmc_link``) runs after COMMIT, outside SQLAlchemy's hooks, in order; never after
a rollback, a failed commit or a released savepoint alone; and no listener on ``Session`` is left
installed globally for it."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import AuditEvent, record
from store.db import after_commit, reading, transaction


def _count(db, action: str) -> int:
    with reading(db) as session:
        return len(session.scalars(select(AuditEvent.id).where(AuditEvent.action == action)).all())


def test_callbacks_run_after_the_commit_in_order_and_see_its_rows(db):
    seen = []
    with transaction(db) as session:
        record(session, actor="t", role="test", action="test.after-commit", target_type="t", target_id="1")
        after_commit(session, lambda: seen.append(("first", _count(db, "test.after-commit"))))
        with session.begin_nested():
            after_commit(session, lambda: seen.append(("second", None)))
        assert seen == []                           # a released savepoint is not a commit
    assert seen[0][0] == "first" and seen[0][1] >= 1 and seen[1] == ("second", None)


def test_no_callback_after_a_rollback(db):
    seen = []
    with pytest.raises(RuntimeError):
        with transaction(db) as session:
            after_commit(session, lambda: seen.append("ran"))
            raise RuntimeError("the unit of work fails")
    with transaction(db) as session:               # and nothing is left over for the next one
        pass
    assert seen == []


def test_no_global_after_commit_listener_sends_anything():
    """The CA's outbox used to hang a listener on every Session of the process, sending over HTTP inside
    ``after_commit``; now only the audit trail's bookkeeping listens there (no I/O)."""
    import ca_bridge.kmc_link  # noqa: F401 - loaded, as the app loads it
    import kms.endpoint  # noqa: F401

    listeners = [f"{f.__module__}.{f.__name__}" for f in Session.dispatch.after_commit._clslevel[Session]]
    assert not [name for name in listeners if not name.startswith("audit.trail.")], listeners
