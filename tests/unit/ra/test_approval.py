"""ra.approval.decide, the one approval rule (README "Roles and staffing"): a table of the named cases,
then every combination of state, kind, type, officer position and prior approvals checked against the
rule as the README states it, and the console/service facts built from a request dict."""
from __future__ import annotations

import itertools

import pytest

from ra.approval import Facts, Verdict, decide, submitter_is_first_approver
from ra.errors import ConflictError, DutiesNotSeparated
from ra.models import RequestKind, RequestState, RequestType

DEFAULT = {"civil-servant-dual": 2, "unit": 2, "server": 1}
SUB, VET, A, B, C = "zhao", "qian", "sun", "wang", "li"


def facts(type="unit", kind="new", state="vetted", submitted_by=SUB, vetted_by=VET, id=7) -> Facts:
    return Facts(type, kind, state, submitted_by, vetted_by, id)


CASES = [
    # (name, request, prior approvals, officer, thresholds, verdict, approvals, threshold, error type)
    ("first of two waits", facts(), [], A, DEFAULT, Verdict.WAITING, 1, 2, None),
    ("second of two issues", facts(), [A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("server: one approval issues", facts("server"), [], A, DEFAULT, Verdict.ISSUE, 1, 1, None),
    ("dual: second issues", facts("civil-servant-dual"), [A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("renewal issues", facts(kind="renewal"), [A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("re-key issues", facts(kind="rekey"), [A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("re-issue issues", facts(kind="reissue"), [A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("revocation changes status", facts(kind="revocation"), [A], B, DEFAULT, Verdict.CHANGE_STATUS, 2, 2, None),
    ("suspension changes status", facts(kind="suspend"), [A], B, DEFAULT, Verdict.CHANGE_STATUS, 2, 2, None),
    ("release changes status", facts(kind="resume"), [A], B, DEFAULT, Verdict.CHANGE_STATUS, 2, 2, None),
    ("server revocation: one approval", facts("server", "revocation"), [], A, DEFAULT, Verdict.CHANGE_STATUS,
     1, 1, None),
    ("revocation waits below the threshold", facts(kind="revocation"), [], A, DEFAULT, Verdict.WAITING, 1, 2, None),
    ("officer who asked for a revocation: unchanged",
     facts(kind="revocation", submitted_by=A), [A], A, DEFAULT, Verdict.UNCHANGED, 0, 0, None),
    ("second officer completes an officer's revocation",
     facts(kind="revocation", submitted_by=A), [A], B, DEFAULT, Verdict.CHANGE_STATUS, 2, 2, None),
    ("approved already: unchanged", facts(), [A], A, DEFAULT, Verdict.UNCHANGED, 0, 0, None),
    ("approved already, issued since: unchanged", facts(state="issued"), [A, B], A, DEFAULT,
     Verdict.UNCHANGED, 0, 0, None),
    ("submitted, not vetted", facts(state="submitted", vetted_by=None), [], A, DEFAULT, Verdict.REFUSED, 0, 0,
     ConflictError),
    ("issued already", facts(state="issued"), [A, B], C, DEFAULT, Verdict.REFUSED, 0, 0, ConflictError),
    ("rejected", facts(state="rejected"), [], A, DEFAULT, Verdict.REFUSED, 0, 0, ConflictError),
    ("returned", facts(state="returned"), [], A, DEFAULT, Verdict.REFUSED, 0, 0, ConflictError),
    ("submitter may not approve", facts(), [], SUB, DEFAULT, Verdict.REFUSED, 0, 0, DutiesNotSeparated),
    ("vetter may not approve", facts(), [], VET, DEFAULT, Verdict.REFUSED, 0, 0, DutiesNotSeparated),
    ("state is checked before duties", facts(state="submitted"), [], SUB, DEFAULT, Verdict.REFUSED, 0, 0,
     ConflictError),
    ("a person counts once however often listed", facts(), [A, A, A], B, DEFAULT, Verdict.ISSUE, 2, 2, None),
    ("configured threshold 3: second waits", facts("server"), [A], B, {**DEFAULT, "server": 3},
     Verdict.WAITING, 2, 3, None),
    ("configured threshold 3: third issues", facts("server"), [A, B], C, {**DEFAULT, "server": 3},
     Verdict.ISSUE, 3, 3, None),
    ("more approvals than the threshold (lowered since): issues", facts(), [A, B], C, {**DEFAULT, "unit": 1},
     Verdict.ISSUE, 3, 1, None),
]


@pytest.mark.parametrize("name,request_facts,prior,officer,thresholds,verdict,approvals,threshold,error",
                         CASES, ids=[c[0] for c in CASES])
def test_decision_table(name, request_facts, prior, officer, thresholds, verdict, approvals, threshold, error):
    decision = decide(request_facts, prior, officer, thresholds)
    assert (decision.verdict, decision.approvals, decision.threshold) == (verdict, approvals, threshold)
    if error is None:
        assert decision.error is None
    else:
        assert type(decision.error) is error
    assert decision.records == (verdict in (Verdict.WAITING, Verdict.ISSUE, Verdict.CHANGE_STATUS))
    assert decision.completes == (verdict in (Verdict.ISSUE, Verdict.CHANGE_STATUS))
    assert decision.issues == (verdict is Verdict.ISSUE)
    assert decision.changes_status == (verdict is Verdict.CHANGE_STATUS)


def test_refusal_messages_are_the_ones_the_api_has_always_given():
    assert decide(facts(state="issued", id=41), [], A, DEFAULT).error.public_message == \
        "request 41 is issued, only vetted requests can be approved"
    assert decide(facts(), [], SUB, DEFAULT).error.public_message == \
        "an officer cannot approve a request they submitted"
    assert decide(facts(), [], VET, DEFAULT).error.public_message == \
        "an officer cannot approve a request they vetted"


def _readme_rule(request: Facts, prior: list[str], officer: str, thresholds: dict) -> Verdict | type:
    """The README's table row by row, written independently of ra.approval (its order of checks aside)."""
    if officer in prior:
        return Verdict.UNCHANGED
    if request.state != "vetted":
        return ConflictError
    if officer in (request.submitted_by, request.vetted_by):
        return DutiesNotSeparated
    persons = len(set(prior) | {officer})
    if persons < thresholds[request.type]:
        return Verdict.WAITING
    return {"new": Verdict.ISSUE, "renewal": Verdict.ISSUE, "rekey": Verdict.ISSUE, "reissue": Verdict.ISSUE,
            "revocation": Verdict.CHANGE_STATUS, "suspend": Verdict.CHANGE_STATUS,
            "resume": Verdict.CHANGE_STATUS}[request.kind]


PEOPLE = (SUB, VET, A, B, C)
PRIORS = [list(p) for n in range(4) for p in itertools.combinations((A, B, C, SUB), n)] + [[A, A], [A, B, A]]


def test_every_combination_follows_the_readme_rule():
    checked = set()
    for state, kind, rtype, officer, prior, (t_dual, t_unit, t_server) in itertools.product(
            [s.value for s in RequestState], [k.value for k in RequestKind], [t.value for t in RequestType],
            PEOPLE, PRIORS, [(2, 2, 1), (1, 1, 1), (3, 2, 2)]):
        thresholds = {"civil-servant-dual": t_dual, "unit": t_unit, "server": t_server}
        request = facts(rtype, kind, state, SUB, None if state == "submitted" else VET)
        decision = decide(request, prior, officer, thresholds)
        want = _readme_rule(request, prior, officer, thresholds)
        if isinstance(want, Verdict):
            assert decision.verdict is want and decision.error is None, (request, prior, officer)
        else:
            assert decision.verdict is Verdict.REFUSED and type(decision.error) is want, (request, prior, officer)
        if decision.records:
            assert decision.approvals == len(set(prior)) + 1
            assert decision.threshold == thresholds[rtype]
        checked.add(decision.verdict)
    assert checked == set(Verdict)          # the product reaches every verdict


def test_prior_approvals_may_be_any_iterable_and_are_read_once():
    once = iter([A])
    assert decide(facts(), once, B, DEFAULT).verdict is Verdict.ISSUE


def test_facts_from_a_request_dict():
    req = {"id": 9, "type": "server", "kind": "new", "state": "vetted", "submitted_by": SUB, "vetted_by": VET,
           "approvals": [], "checks": {}}
    assert Facts.of(req) == Facts("server", "new", "vetted", SUB, VET, 9)
    assert decide(Facts.of(req), [], A, DEFAULT).verdict is Verdict.ISSUE


@pytest.mark.parametrize("kind,role,first", [
    ("revocation", "ra_officer", True), ("suspend", "ra_officer", True), ("resume", "ra_officer", True),
    ("revocation", "ra_operator", False), ("revocation", "applicant", False), ("suspend", "ra_operator", False),
    ("new", "ra_officer", False), ("rekey", "ra_officer", False), ("renewal", "ra_officer", False),
    ("reissue", "ra_officer", False)])
def test_an_officer_asking_for_a_revocation_is_its_first_approver(kind, role, first):
    assert submitter_is_first_approver(kind, role) is first
