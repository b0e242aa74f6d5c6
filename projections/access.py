"""Who reads: the roles of the read side, the reader of one request, and the access-log entry of a read.

A `Reader` is what a verified bearer token (projections/tokens.py) or the local command line (`Reader.local()`) says
about who asks: a subject, one role, and the role's scope. The scope rules live here, as methods of `Reader`, and are
applied once, by the read side (`projections.queries.ReadSide`), for every endpoint, console page and command alike:

| role | members | branch totals |
|---|---|---|
| auditor | every member | every branch, and the whole fund's |
| branch-staff | members of the token's branches | the token's branches |
| member-service | the one member the token acts for (its `kpj`) | none |
| operator | none | none (the console's operator page and status only) |

A refusal never tells whether a KPJ exists elsewhere: a member outside the scope is refused the same way whether it
is in another branch or in none (the read side passes None as the branch of an unknown member).
"""

from __future__ import annotations

import os
import pwd
import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from ledger.errors import Forbidden

# The `X-Purpose` header a reader may give (why this read), kept with its access-log entry: bounded, one line.
PURPOSE_CHARS_MAX = 200
# A subject is an identity provider's user id or a service's client id: longer is not one.
SUBJECT_CHARS_MAX = 256
# Branches in one branch-staff token: a region's branches and their pioneer branches, with room to spare.
BRANCHES_PER_TOKEN_MAX = 400
# An operating-system user name as the access log keeps it (`Reader.local`): printable ASCII without spaces.
_SAFE_NAME = re.compile(r"[\x21-\x7e]{1,200}")


class Role(StrEnum):
    AUDITOR = "auditor"
    BRANCH_STAFF = "branch-staff"
    MEMBER_SERVICE = "member-service"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Reader:
    """Who asks, with the scope of their role. Built from a verified token or by `local()`; the invariants below are
    checked where a token is verified (an `Unauthenticated` there), so here they are programmer errors."""

    subject: str
    role: Role
    branches: frozenset[str] = field(default_factory=frozenset)  # branch-staff: the branches they may read
    kpj: str | None = None  # member-service: the one member it acts for
    purpose: str | None = None  # the request's `X-Purpose` header

    def __post_init__(self) -> None:
        assert self.subject and len(self.subject) <= SUBJECT_CHARS_MAX, "a reader has a subject"
        assert self.role is not Role.BRANCH_STAFF or self.branches, "branch staff have at least one branch"
        assert self.role is not Role.MEMBER_SERVICE or self.kpj, "a member service acts for one member"
        assert self.purpose is None or len(self.purpose) <= PURPOSE_CHARS_MAX

    @classmethod
    def local(cls, purpose: str | None = None) -> Reader:
        """The command line on this machine: whoever can run `ledger` here can read the view database itself, so it
        reads as an auditor, under the name of the operating-system user (`local:<user>`) in the access log.

        The name is the password database's for the process's effective uid, never the environment's: `getpass`
        reads LOGNAME or USER first, which anyone sets to anything (`USER=auditor-ani ledger balance ...` would
        write someone else's name into the log)."""
        uid = os.geteuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:  # a uid without a password-database entry (a bare container)
            user = f"uid-{uid}"
        if not _SAFE_NAME.fullmatch(user):  # a name the access log would refuse: the uid, which it takes
            user = f"uid-{uid}"
        return cls(subject=f"local:{user}"[:SUBJECT_CHARS_MAX], role=Role.AUDITOR, purpose=purpose)

    def check_member(self, kpj: str, branch: str | None) -> None:
        """Raise `Forbidden` unless this reader may read the member `kpj`, of `branch` (None: no such member). The
        message names neither the KPJ nor the member's branch: the caller may not know them."""
        if self.role is Role.AUDITOR:
            return
        if self.role is Role.BRANCH_STAFF:
            if branch is None or branch not in self.branches:
                raise Forbidden(f"this token may read members of {_listed(self.branches)} only")
            return
        if self.role is Role.MEMBER_SERVICE:
            if kpj != self.kpj:
                raise Forbidden("this token may read the member it acts for only")
            return
        raise Forbidden(f"the {self.role} role may read no member's data")

    def check_branch(self, branch: str) -> None:
        """Raise `Forbidden` unless this reader may read the branch's totals."""
        if self.role is Role.AUDITOR:
            return
        if self.role is Role.BRANCH_STAFF:
            if branch not in self.branches:
                raise Forbidden(f"this token may read the branches {_listed(self.branches)} only")
            return
        raise Forbidden(f"the {self.role} role may read no branch's totals")

    def check_all_branches(self) -> None:
        """Raise `Forbidden` unless this reader may read every branch's totals (the fund-wide trial balance)."""
        if self.role is not Role.AUDITOR:
            raise Forbidden(f"the {self.role} role may not read the whole fund's totals: ask for one branch's")

    @property
    def rate_key(self) -> tuple[str, ...]:
        """Whose reads count together towards the rate limit: the subject; for a member service (one portal, many
        members), the subject and the member it acts for, so one member's requests do not use up the others'."""
        return (self.subject, self.kpj or "") if self.role is Role.MEMBER_SERVICE else (self.subject,)


def _listed(branches: frozenset[str]) -> str:
    return ", ".join(sorted(branches))


@dataclass(frozen=True)
class AccessEntry:
    """One read of a member's data, as the access log keeps it (projections/access_log.py): who (subject, role), when
    (UTC), which member, through which endpoint or command, and why (the `X-Purpose` header, when given)."""

    at: datetime
    subject: str
    role: str  # a `Role`'s value
    kpj: str
    endpoint: str
    purpose: str | None
