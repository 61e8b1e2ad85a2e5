"""The approval rule, as one pure decision: what one officer's approval of one request comes to.

No database, no I/O: the input is the request's facts (type, kind, state, who submitted and who vetted
it), the officers who approved it already, the officer approving now and the thresholds of the
``[ra] approvals`` policy; the output is a ``Decision``. ``ra.workflow.approve`` (the one-request ORM
path), ``ra.bulk.approve_many`` (the set-based path), ``ra.workflow.escrow_needed`` (whether to reserve a
KMC key first) and the console's "may approve" both ask it, so the rule has one implementation.

The rule is the repository's README, "Roles and staffing" (its table's approve and revoke rows and the
paragraph "One officer is one identity"), with the thresholds of ``[ra] approvals``
(docs/racentre.example.toml):

1. an officer who approved the request already: ``UNCHANGED``, whatever its state now (a retried call
   never approves or issues twice);
2. only a ``vetted`` request can be approved: else ``REFUSED`` (``ConflictError``);
3. separation of duties: the submitter may not approve, nor the vetter (the person who checked the
   identity does not also authorise it): ``REFUSED`` (``DutiesNotSeparated``). An officer who asks for a
   revocation (or suspension, release) is its submitter *and* its first approval (``submitter_is_first_approver``), so rule 1
   answers them first;
4. persons, not credentials: officers are named by the person (a console login, an API token made
   ``--officer NAME`` and the CLI's ``--as NAME`` all resolve to ``NAME`` in ``access.auth``), and each
   counts once however often they appear among the prior approvals;
5. four eyes: the approvals counted with this one against the request type's threshold
   (``Policy.approvals``: civil-servant and unit 2, server 1 by default, ``[ra] approvals`` overrides).
   Below it: ``WAITING`` (n of m). At it the request is carried out: ``CHANGE_STATUS`` for the kinds that
   issue nothing (``STATUS_KINDS``: revocation, suspension 冻结, release 解冻 of the target's
   certificates), ``ISSUE`` for the others (new, renewal, re-key, re-issue; whether that issuance also
   supersedes the target's certificates is ``ra.workflow.supersedes``, a matter of carrying it out).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

from ra.errors import ConflictError, DutiesNotSeparated, RaError
from ra.models import RequestKind, RequestState


# kinds that issue nothing: they change the status of the target request's certificates (four-eyes as revocation)
STATUS_KINDS = (RequestKind.REVOCATION.value, RequestKind.SUSPEND.value, RequestKind.RESUME.value)


class Verdict(str, enum.Enum):
    ISSUE = "issue"                    # threshold reached: issue the certificates
    CHANGE_STATUS = "change-status"    # threshold reached: revoke / suspend / release the target's certificates
    WAITING = "waiting"        # approval recorded, n of m
    UNCHANGED = "unchanged"    # this officer approved already: nothing to do
    REFUSED = "refused"        # not allowed: ``Decision.error`` says why


class RequestFacts(Protocol):
    """What the rule reads of a request: an ORM ``CertRequest``, a Core row or ``Facts``."""

    id: int | None
    type: str
    kind: str
    state: str
    submitted_by: str | None
    vetted_by: str | None


@dataclass(frozen=True)
class Facts:
    """``RequestFacts`` from plain values (a request dict, a test case)."""

    type: str
    kind: str
    state: str
    submitted_by: str | None
    vetted_by: str | None
    id: int | None = None

    @classmethod
    def of(cls, request: Mapping) -> "Facts":
        """From a request dict of the RA service (``CertRequest.as_dict``)."""
        return cls(request["type"], request["kind"], request["state"], request["submitted_by"],
                   request["vetted_by"], request.get("id"))


@dataclass(frozen=True)
class Decision:
    """What one approval comes to. ``approvals`` and ``threshold``: the distinct officers counted with
    this one and the number required (both 0 when refused or unchanged)."""

    verdict: Verdict
    approvals: int = 0
    threshold: int = 0
    error: RaError | None = None

    @property
    def records(self) -> bool:
        """Whether this officer's approval is written (waiting or carrying the request out)."""
        return self.verdict in _RECORDED

    @property
    def completes(self) -> bool:
        """Whether this approval reaches the threshold and carries the request out."""
        return self.verdict in _COMPLETING

    @property
    def issues(self) -> bool:
        return self.verdict is Verdict.ISSUE

    @property
    def changes_status(self) -> bool:
        return self.verdict is Verdict.CHANGE_STATUS


_COMPLETING = frozenset((Verdict.ISSUE, Verdict.CHANGE_STATUS))
_RECORDED = _COMPLETING | {Verdict.WAITING}
_UNCHANGED = Decision(Verdict.UNCHANGED)


def decide(request: RequestFacts, approved_by: Iterable[str], officer: str,
           thresholds: Mapping[str, int]) -> Decision:
    """The decision of ``officer`` approving ``request`` that ``approved_by`` approved already, under
    ``thresholds`` (request type -> approvals required): the module docstring's rules 1-5, in order."""
    prior = set(approved_by)
    if officer in prior:
        return _UNCHANGED
    if request.state != RequestState.VETTED.value:
        return Decision(Verdict.REFUSED, error=ConflictError(
            f"request {request.id} is {request.state}, only vetted requests can be approved"))
    if officer == request.submitted_by:
        return Decision(Verdict.REFUSED, error=DutiesNotSeparated("an officer cannot approve a request they submitted"))
    if officer == request.vetted_by:
        return Decision(Verdict.REFUSED, error=DutiesNotSeparated("an officer cannot approve a request they vetted"))
    count, threshold = len(prior) + 1, thresholds[request.type]
    if count < threshold:
        return Decision(Verdict.WAITING, count, threshold)
    return Decision(Verdict.CHANGE_STATUS if request.kind in STATUS_KINDS else Verdict.ISSUE, count, threshold)


def submitter_is_first_approver(kind: str, role: str) -> bool:
    """An RA officer who asks for a revocation, suspension or release (``STATUS_KINDS``) is its first
    approval (README "Roles and staffing": with two officers it reaches 2 of 2 when the other approves;
    the submitter cannot approve again)."""
    return kind in STATUS_KINDS and role == "ra_officer"
