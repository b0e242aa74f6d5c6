"""The read API's documented walk-through, run as written: the shell block of docs/projections.md, "A token for
development" (its `ledger` commands, `export`s and `curl`s, line by line, in a folder of its own, against a generated
history on the test broker), then what docs/audit.md, "The access log", tells an operator and an auditor to do with
the reads it made: `ledger api publish-access`, `ledger audit access --kpj/--subject`, and the standalone checker
`check_access.py` fed by `kcat`, both as the documentation writes them.

The block is read from the document itself, so a change to it that no longer runs fails here. Its `curl` lines are
run by a small interpreter of the options the block uses (`-H`, the URL, curl's bounded `--retry` on the health
check) over urllib, so the tests need no curl; the one thing changed is the server's address (the documented
127.0.0.1:8000 becomes the test's free port)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import Cli
from tests.support.kafka_roles import AUDITOR, KafkaRoles
from tests.support.tokens import TokenKit

pytestmark = pytest.mark.e2e

DOCS = Path(__file__).resolve().parents[2] / "docs"
DOCUMENTED_ADDRESS = "127.0.0.1:8000"
KPJ = "17100000001"  # the generator's first member, whom the walk-through reads
SERVER_STOP_S_MAX = 30
PUBLISHED_WAIT_S_MAX = 60
HTTP_TIMEOUT_S = 10


def documented_block(document: str, heading: str, marker: str) -> list[str]:
    """The commands of the first fenced block under `heading` in docs/DOCUMENT that contains `marker`: one per
    command, continuation lines joined, comments kept (shlex drops them)."""
    text = (DOCS / document).read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    block = next(body for body in re.findall(r"```[a-z]*\n(.*?)```", section, re.DOTALL) if marker in body)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Walkthrough:
    """A shell for the documented block: its variables, the background server, and what each command answered."""
    cli: Cli
    port: int
    variables: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen[str] | None = None
    answers: list[tuple[int, Any]] = field(default_factory=list)  # each curl's (status, JSON)
    printed: list[str] = field(default_factory=list)  # each ledger command's stdout

    def expand(self, text: str) -> str:
        return re.sub(r"\$(\w+)", lambda found: self.variables[found.group(1)], text)

    def run(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            for assignment in words[1:]:
                name, value = assignment.split("=", 1)
                self.cli = self.cli.with_env(**{name: value})
        elif line.startswith("TOKEN=$(") and line.endswith(")"):
            self.variables["TOKEN"] = self.ledger(shlex.split(line[len("TOKEN=$("):-1])).strip()
        elif words[0] == "ledger" and words[-1] == "&":
            assert words[1:-1] == ["serve"], line
            self.server = self.cli.with_env(LEDGER_API_PORT=str(self.port)).start(
                "serve", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elif words[0] == "ledger":
            self.printed.append(self.ledger(words))
        elif words[0] == "curl":
            self.curl(words[1:])
        else:
            raise AssertionError(f"the walk-through has a line this test cannot run: {line}")

    def ledger(self, words: list[str]) -> str:
        assert words[0] == "ledger", words
        if words[1:3] == ["audit", "access"]:
            return self.audit_access(words[1:])
        return self.cli(*words[1:]).stdout

    def audit_access(self, args: list[str]) -> str:
        """`ledger audit access ...`: the server publishes within a second or so; ask again until the read is there
        (bounded), as a user would run it again."""
        deadline = time.monotonic() + PUBLISHED_WAIT_S_MAX
        while True:
            shown = self.cli(*args).stdout
            if "claim review" in shown or time.monotonic() > deadline:
                return shown
            time.sleep(0.5)

    def curl(self, options: list[str]) -> None:
        headers: dict[str, str] = {}
        retries, url = 0, None
        words = iter(options)
        for word in words:
            if word == "-H":
                name, value = self.expand(next(words)).split(":", 1)
                headers[name.strip()] = value.strip()
            elif word == "--retry":
                retries = int(next(words))
            elif word == "--retry-delay":
                next(words)
            elif word in ("-s", "--retry-connrefused"):
                pass
            else:
                assert word.startswith("http://"), f"curl option this test does not know: {word}"
                url = self.expand(word).replace(DOCUMENTED_ADDRESS, f"127.0.0.1:{self.port}")
        assert url is not None
        for attempt in range(retries + 1):
            try:
                self.answers.append(get(url, headers))
                return
            except urllib.error.URLError:  # not listening yet: what --retry-connrefused waits for
                if attempt == retries:
                    raise
                time.sleep(1)


def get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def walked(tmp_path_factory, kafka_roles: KafkaRoles) -> Walkthrough:
    """A fresh folder with a generated, relayed and projected history (as "A branch history to try it on" makes
    one; the relay and projections as their principals), then the documented block run in it, line by line."""
    folder = tmp_path_factory.mktemp("documented-api")
    unique = uuid.uuid4().hex[:10]
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("LEDGER_API_", "LEDGER_SQLITE", "LEDGER_PROJECTION_SQLITE", "LEDGER_ACCESS_LOG"))}
    cli = Cli(env={**env, "LEDGER_KAFKA_TOPIC_PREFIX": f"test-docs-{unique}",
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}", "LEDGER_ACCESS_LOG_TRANSACTIONAL_ID": f"a-{unique}"},
              folder=folder, kafka=kafka_roles, cwd=folder)
    cli("generate", "--employers", "4", "--members", "60", "--bpu", "6", "--months", "4")
    cli.kafka_init()
    cli("relay")
    cli("projections", "run")
    shell = Walkthrough(cli, free_port())
    try:
        for line in documented_block("projections.md", "### A token for development", "ledger serve &"):
            shell.run(line)
    except BaseException:
        if shell.server is not None:
            shell.server.kill()
        raise
    return shell


def test_the_walkthrough_serves_the_branch_and_logs_the_members_read(walked: Walkthrough) -> None:
    health, totals, balance = walked.answers
    assert health == (200, {"status": "ok"})
    assert totals == (200, walked.cli.json("report", "branch", "BEKASI-KOTA", "--as-of", "2017-09-30"))
    status, body = balance
    assert status == 200 and body["kpj"] == KPJ and body["as_of"] == "2017-09-30" and body["branch"] == "BEKASI-KOTA"
    # The keys and tokens are where the block says, in the folder it ran in, private.
    assert (walked.cli.cwd / ".run" / "token.key").stat().st_mode & 0o077 == 0
    assert json.loads((walked.cli.cwd / ".run" / "jwks.json").read_text())["keys"][0]["alg"] == "EdDSA"
    # `ledger audit access --kpj`, the block's last line: the one read of the member, who, through what, why.
    shown = walked.printed[-1]
    lines = shown.splitlines()
    assert re.fullmatch(r"access log test-docs-\w+\.access: 1 records checked, chain intact from seq 1 to 1", lines[0])
    assert lines[1] == f"1 read(s) of member {KPJ}"
    assert lines[2].split() == ["when", "(UTC)", "subject", "role", "member", "(KPJ)", "endpoint", "purpose"]
    assert lines[3].split()[2:] == ["ani", "branch-staff", KPJ, "GET", "/members/{kpj}/balance", "claim", "review"]


@pytest.fixture(scope="module")
def stopped(walked: Walkthrough) -> str:
    """The server stopped as an operator stops it (SIGTERM): what it said on stderr."""
    assert walked.server is not None
    walked.server.send_signal(signal.SIGTERM)
    try:
        _, stderr = walked.server.communicate(timeout=SERVER_STOP_S_MAX)
    except subprocess.TimeoutExpired:
        walked.server.kill()
        raise
    assert walked.server.returncode == 0, stderr
    return stderr


def test_serve_says_where_it_listens_and_stops_on_sigterm_with_exit_0(walked: Walkthrough, stopped: str) -> None:
    said = (f"ledger serve: the read API on http://127.0.0.1:{walked.port}/ (OpenAPI at /docs, the console at "
            "/console/); Ctrl-C or SIGTERM stops it")
    assert said in stopped
    assert "Traceback" not in stopped


def test_publish_access_by_hand_then_who_read_the_member_and_what_ani_read(walked: Walkthrough, stopped: str) -> None:
    """docs/audit.md: `ledger api publish-access` catches up (the server published the one entry already), and
    `ledger audit access` answers both questions, bounded by the UTC day of the reads."""
    cli, topic = walked.cli, f"{walked.cli.env['LEDGER_KAFKA_TOPIC_PREFIX']}.access"
    assert cli("api", "publish-access").stdout == f"published 0 access log entries to {topic}; last seq 1\n"
    assert cli.json("api", "publish-access") == {"published": 0, "seq": 1, "topic": topic}
    today = datetime.now(UTC).date().isoformat()
    by_member = cli.json("audit", "access", "--kpj", KPJ, "--from", today, "--to", today)
    by_ani = cli.json("audit", "access", "--subject", "ani")
    assert by_member["intact"] and by_member["reads"] == by_ani["reads"]
    (read,) = by_ani["reads"]
    assert {key: read[key] for key in ("seq", "subject", "role", "kpj", "endpoint", "purpose", "verified")} == {
        "seq": 1, "subject": "ani", "role": "branch-staff", "kpj": KPJ, "endpoint": "GET /members/{kpj}/balance",
        "purpose": "claim review", "verified": True}
    assert read["at"].startswith(today)
    assert "1 read(s) by subject ani" in cli("audit", "access", "--subject", "ani").stdout
    assert cli.json("audit", "access", "--subject", "nobody")["reads"] == []


def test_the_standalone_checker_reads_the_topic_from_kcat_as_documented(walked: Walkthrough, stopped: str,
                                                                       kafka_roles: KafkaRoles) -> None:
    """docs/audit.md's pipeline: kcat (as the auditor, by its certificate on a secured broker) | check_access.py."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: scripts/test installs it from Debian's packages"
    (pipeline,) = [line for line in documented_block("audit.md", "## The access log", "check_access.py")
                   if line.startswith("kcat")]
    documented = shlex.split(pipeline, comments=True)
    assert documented[documented.index("|") + 1:] == ["python3", "check_access.py"]
    options = documented[1:documented.index("|")]
    # The documented options, with the test's broker, principal and topic in place of kafka1:9092 and ledger.access.
    at = options.index("-b")
    del options[at:at + 2]
    options[options.index("-t") + 1] = f"{walked.cli.env['LEDGER_KAFKA_TOPIC_PREFIX']}.access"
    program = (DOCS / "audit.md").read_text(encoding="utf-8").split("```python\n# check_access.py", 1)[1]
    checker = walked.cli.cwd / "check_access.py"
    checker.write_text("# check_access.py" + program.split("```", 1)[0], encoding="utf-8")
    records = subprocess.run([kcat, *options, *kafka_roles.kcat(AUDITOR)], capture_output=True, timeout=60,
                             check=True).stdout
    checked = subprocess.run([sys.executable, str(checker)], input=records, capture_output=True, timeout=60,
                             check=False)
    assert (checked.returncode, checked.stdout) == (0, b"1 entries, 0 problems\n"), checked.stderr
    # The same program finds a changed record: it checks, it does not only count.
    forged = records.replace(b'"claim review"', b'"audit sample"')
    assert forged != records
    checked = subprocess.run([sys.executable, str(checker)], input=forged, capture_output=True, timeout=60,
                             check=False)
    assert checked.returncode == 1 and b"seq 1: its hash is not its content's" in checked.stdout


def test_serve_on_an_address_in_use_is_a_clear_error_naming_the_setting(tmp_path: Path) -> None:
    kit = TokenKit.create(tmp_path / "keys")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli = Cli(env={**os.environ, **kit.variables(), "LEDGER_API_PORT": str(port),
                       "LEDGER_PROJECTION_SQLITE_PATH": str(tmp_path / "views.db"),
                       "LEDGER_ACCESS_LOG_SQLITE_PATH": str(tmp_path / "access-log.db")}, folder=tmp_path)
        refused = cli("serve", expect=2)
    assert refused.stderr.startswith(f"error: ledger serve cannot listen on 127.0.0.1:{port} (LEDGER_API_HOST, "
                                     "LEDGER_API_PORT): ")
    assert "stop what listens there, or choose another LEDGER_API_PORT" in refused.stderr
    assert refused.stdout == ""
