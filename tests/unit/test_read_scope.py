"""The read side's own rules, without a database: each role's scope (projections/access.py) and the rate limiter
(projections/queries.py). The same rules are tried end to end through the API in
tests/integration/test_api_access.py."""

from __future__ import annotations

import os
import pwd

import pytest

from ledger.errors import Forbidden, RateLimited
from projections.access import Reader, Role
from projections.queries import RateLimiter

BEKASI, BOGOR = "BEKASI-KOTA", "BOGOR"


def test_the_local_command_line_reads_as_an_auditor_under_its_user_name() -> None:
    local = Reader.local()
    assert (local.subject, local.role) == (f"local:{pwd.getpwuid(os.geteuid()).pw_name}", Role.AUDITOR)
    local.check_member("15000000001", None)
    local.check_branch(BOGOR)


@pytest.mark.parametrize("claimed", ["auditor-ani", "root", "x\ny", "a b", ""])
def test_the_local_user_name_is_the_systems_not_the_environments(monkeypatch: pytest.MonkeyPatch,
                                                                  claimed: str) -> None:
    """Whoever runs `ledger balance` sets LOGNAME, USER, LNAME and USERNAME as they like (getpass reads them first):
    the access log's subject is the name of the process's effective uid all the same."""
    expected = Reader.local().subject
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, claimed)
    assert Reader.local().subject == expected == f"local:{pwd.getpwuid(os.geteuid()).pw_name}"


def test_a_refusal_is_the_same_for_another_branch_and_for_no_member() -> None:
    staff = Reader("budi", Role.BRANCH_STAFF, frozenset({BEKASI}))
    staff.check_member("15000000001", BEKASI)
    refusals = set()
    for branch in (BOGOR, None):
        with pytest.raises(Forbidden) as caught:
            staff.check_member("15000000002", branch)
        refusals.add(str(caught.value))
    assert len(refusals) == 1 and "15000000002" not in refusals.pop()
    portal = Reader("portal", Role.MEMBER_SERVICE, kpj="15000000001")
    portal.check_member("15000000001", BEKASI)
    for branch in (BEKASI, None):
        with pytest.raises(Forbidden, match="the member it acts for only"):
            portal.check_member("15000000002", branch)
    for reader in (portal, Reader("ops", Role.OPERATOR)):
        with pytest.raises(Forbidden):
            reader.check_branch(BEKASI)
    with pytest.raises(Forbidden):
        Reader("ops", Role.OPERATOR).check_member("15000000001", BEKASI)


def test_only_a_reader_of_every_branch_reads_the_whole_funds_books() -> None:
    Reader.local().check_all_branches()
    Reader("ani", Role.AUDITOR).check_all_branches()
    staff = Reader("budi", Role.BRANCH_STAFF, frozenset({BEKASI, BOGOR}))
    for reader in (staff, Reader("portal", Role.MEMBER_SERVICE, kpj="15000000001"), Reader("ops", Role.OPERATOR)):
        with pytest.raises(Forbidden, match="may not read the whole fund's totals"):
            reader.check_all_branches()


def test_member_services_count_per_member_and_others_per_subject() -> None:
    assert Reader("portal", Role.MEMBER_SERVICE, kpj="15000000001").rate_key == ("portal", "15000000001")
    assert Reader("budi", Role.BRANCH_STAFF, frozenset({BEKASI})).rate_key == ("budi",)


def test_the_limiter_slides_its_window_and_refuses_without_counting() -> None:
    now = [0.0]
    limiter = RateLimiter(3, 60, clock=lambda: now[0])
    for second in (0, 10, 20):
        now[0] = second
        limiter.admit(("a",))
    now[0] = 30
    with pytest.raises(RateLimited) as caught:
        limiter.admit(("a",))
    assert caught.value.retry_after_s == 30  # the read at 0 leaves the window at 60
    limiter.admit(("b",))
    now[0] = 60
    limiter.admit(("a",))  # the read at 0 has left the window
    with pytest.raises(RateLimited) as caught:
        limiter.admit(("a",))
    assert caught.value.retry_after_s == 10


def test_the_limiter_keeps_a_bounded_number_of_subjects() -> None:
    now = [0.0]
    limiter = RateLimiter(5, 60, keys_max=2, clock=lambda: now[0])
    limiter.admit(("a",))
    limiter.admit(("b",))
    with pytest.raises(RateLimited, match="too many readers"):
        limiter.admit(("c",))
    limiter.admit(("a",))  # known subjects go on
    now[0] = 61  # a and b idle for a minute: forgotten to make room
    limiter.admit(("c",))
    limiter.admit(("d",))
