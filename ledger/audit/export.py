"""`ledger audit export` writes a period's events and recomputed totals with a manifest of hashes;
`ledger audit verify-export` checks such a bundle."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from ledger.audit.recount import NO_SHARE, PROGRAMS, Flows
from ledger.audit.topic import (
    BRANCH_TOTALS_ONLY,
    current_data,
    envelope_of,
    in_period,
    read_topic,
)
from ledger.csv_lines import csv_line
from ledger.errors import ExportRefused
from ledger.events import (
    GENESIS_HASH,
    chain_hash,
)
from ledger.private_files import make_private_dir, open_private, write_private
from ledger.settings import KafkaConnection

# --- export: a period's events and totals, with a manifest of hashes ------------------------------------------------

EXPORT_FORMAT = "bpjs-ledger-audit-export"
EXPORT_FORMAT_VERSION = 1
EVENTS_JSONL, EVENTS_CSV, TOTALS_CSV, TOTALS_JSON, MANIFEST = (
    "events.jsonl", "events.csv", "totals.csv", "totals.json", "manifest.json")
EXPORT_FILES = (EVENTS_JSONL, EVENTS_CSV, TOTALS_CSV, TOTALS_JSON)
FILE_CHUNK_BYTES = 1 << 20  # read files in pieces of this size to hash them

EVENT_COLUMNS = ("position", "event_id", "type", "version", "aggregate_id", "aggregate_version", "effective_date",
                 "recorded_at", "branch", "kpj", "npp", "month", "program", "jht_contribution", "contributions",
                 "fine", "total", "amount", "prev_hash", "hash")
TOTALS_COLUMNS = ("branch", "events",
                  *(f"{p}_{side}" for p in PROGRAMS for side in ("employer", "worker", "contributions")),
                  "contributions_total", "late_fines",
                  *(f"{p}_claims_{what}" for p in PROGRAMS for what in ("count", "amount")),
                  "claims_count", "claims_amount")


def _blank(value: Any) -> Any:
    return "" if value is None else value


def event_row(env: dict[str, Any]) -> list[Any]:
    """One line of events.csv: where the event is, what it is about, its amounts, its hashes."""
    data = env["data"]
    shares = data.get("shares") if isinstance(data.get("shares"), dict) else None
    jht = shares.get("JHT", NO_SHARE) if shares is not None else None
    return [env["position"], env["event_id"], env["type"], env["version"], env["aggregate_id"],
            env["aggregate_version"], env["effective_date"], _blank(env.get("recorded_at")), env["branch"],
            _blank(data.get("kpj")), _blank(data.get("npp")), _blank(data.get("month")), _blank(data.get("program")),
            "" if jht is None else jht["employer"] + jht["worker"],
            "" if shares is None else sum(s["employer"] + s["worker"] for s in shares.values()),
            _blank(data.get("fine")), _blank(data.get("total")), _blank(data.get("amount")),
            env["prev_hash"], env["hash"]]


def totals_document(flows: Flows, start: date, end: date) -> dict[str, Any]:
    return {"period": {"from": start.isoformat(), "to": end.isoformat()},
            "branches": {code: flows.branches[code] for code in sorted(flows.branches)}}


def totals_csv(document: dict[str, Any]) -> bytes:
    lines = [csv_line(TOTALS_COLUMNS)]
    for code, t in document["branches"].items():
        lines.append(csv_line([
            code, t["events"],
            *(t["contributions"][p][side] for p in PROGRAMS for side in ("employer", "worker", "total")),
            t["contributions_total"], t["late_fines"],
            *(t["claims"][p][what] for p in PROGRAMS for what in ("count", "amount")),
            t["claims_total"]["count"], t["claims_total"]["amount"]]))
    return b"".join(lines)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def export_chain(head: str, event_hash: str) -> str:
    """The export's own chain over its events in position order: h0 = 64 zeros, h_i = SHA-256(h_{i-1} \\n hash_i).

    Its head pins which events the bundle holds and their order, whatever aggregates they belong to."""
    return hashlib.sha256(head.encode() + b"\n" + event_hash.encode()).hexdigest()


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 in hex) of a file, read in bounded pieces."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(FILE_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _refuse_unless_empty(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportRefused(f"--out {out} is a file, not a directory")
    if out.exists() and any(out.iterdir()):
        raise ExportRefused(f"--out {out} is not empty: an export goes into a new or empty directory, so that the "
                            f"bundle holds nothing but its own files")


def write_bundle(out: Path, topic: str, start: date, end: date, values: Iterable[bytes],
                 topic_last_position: int | None = None) -> dict[str, Any]:
    """Write the bundle of the events whose values are given (in position order) into `out`; return the manifest.

    The manifest is written last: a directory without one is an export that did not finish."""
    _refuse_unless_empty(out)
    make_private_dir(out)  # a bundle holds members' amounts: 0700 and 0600 (ledger.private_files)
    flows, head, count, first, last = Flows(), GENESIS_HASH, 0, None, None
    with open_private(out / EVENTS_JSONL, "wb") as jsonl, open_private(out / EVENTS_CSV, "wb") as table:
        table.write(csv_line(EVENT_COLUMNS))
        for value in values:
            env = orjson.loads(value)
            # The value exactly as Kafka holds it, one per line; the relay writes compact JSON, so this is only a
            # guard against a record written by another producer across several lines.
            jsonl.write((value if b"\n" not in value else orjson.dumps(env)) + b"\n")
            table.write(csv_line(event_row(env)))
            flows.add(env, current_data(env, BRANCH_TOTALS_ONLY))
            head = export_chain(head, env["hash"])
            count += 1
            first = env["position"] if first is None else first
            last = env["position"]
    document = totals_document(flows, start, end)
    write_private(out / TOTALS_JSON, _json_bytes(document))
    write_private(out / TOTALS_CSV, totals_csv(document))
    files = []
    for name in EXPORT_FILES:
        size, digest = file_digest(out / name)
        files.append({"name": name, "bytes": size, "sha256": digest})
    manifest = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "topic": topic,
                "period": {"from": start.isoformat(), "to": end.isoformat()},
                "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "events": count, "positions": {"first": first, "last": last},
                "topic_last_position": topic_last_position, "chain_head": head, "files": files}
    write_private(out / MANIFEST, _json_bytes(manifest))
    return manifest


def export_topic(kafka: KafkaConnection, topic: str, start: date, end: date, out: Path) -> dict[str, Any]:
    """Export the events whose effective date is in [start, end], in position order (held in memory to sort them:
    Kafka orders each partition, not the topic)."""
    _refuse_unless_empty(out)  # before reading the whole topic
    chosen: list[tuple[int, bytes]] = []
    topic_last = 0
    for value, env in read_topic(kafka, topic):
        topic_last = max(topic_last, env["position"])
        if in_period(env, start, end):
            chosen.append((env["position"], value))
    chosen.sort(key=lambda item: item[0])
    return write_bundle(out, topic, start, end, (value for _, value in chosen), topic_last or None)


# --- verify-export --------------------------------------------------------------------------------------------------

@dataclass
class ExportCheck:
    folder: str
    files: int = 0  # files whose size and hash matched the manifest
    events: int = 0
    problem_file: str | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "ok": self.ok, "files_checked": self.files, "events": self.events,
                "file": self.problem_file, "problem": self.problem}


class _Broken(Exception):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name, self.problem = name, problem


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise _Broken(MANIFEST, "missing")
    try:
        manifest: dict[str, Any] = json.loads(path.read_bytes())
        names = [entry["name"] for entry in manifest["files"]]
        for key in ("period", "events", "chain_head", "positions"):  # the fields the checks read must be there
            manifest[key]
        date.fromisoformat(manifest["period"]["from"]), date.fromisoformat(manifest["period"]["to"])
    except (ValueError, KeyError, TypeError) as error:
        raise _Broken(MANIFEST, f"not an export manifest ({error!r})") from None
    if manifest.get("format") != EXPORT_FORMAT or manifest.get("format_version") != EXPORT_FORMAT_VERSION:
        raise _Broken(MANIFEST, f"not an export manifest of format {EXPORT_FORMAT} {EXPORT_FORMAT_VERSION}")
    for name in names:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise _Broken(MANIFEST, f"lists {name!r}, which is not a file of the export's directory")
    return manifest


def _check_files(folder: Path, manifest: dict[str, Any], check: ExportCheck) -> None:
    listed = [entry["name"] for entry in manifest["files"]]
    for name in EXPORT_FILES:
        if name not in listed:
            raise _Broken(name, "not listed in the manifest")
    for entry in manifest["files"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise _Broken(entry["name"], "missing")
        size, digest = file_digest(path)
        if size != entry.get("bytes"):
            raise _Broken(entry["name"], f"{size:,} bytes, the manifest says {entry.get('bytes')}: altered")
        if digest != entry.get("sha256"):
            raise _Broken(entry["name"], "its SHA-256 differs from the manifest's: altered")
        check.files += 1
    extra = sorted(path.name for path in folder.iterdir() if path.name not in {*listed, MANIFEST})
    if extra:
        raise _Broken(extra[0], "not part of the export (not in the manifest)")


def _first_difference(ours: Any, theirs: Any, path: str = "") -> str:
    """Where two JSON values first differ, as a dotted path."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            if ours.get(key) != theirs.get(key):
                return _first_difference(ours.get(key), theirs.get(key), f"{path}.{key}" if path else key)
    return f"{path or '(whole document)'}: recomputed {ours!r}, file says {theirs!r}"


def _checked_line(number: int, line: bytes, last: int, start: date, end: date) -> dict[str, Any]:
    """Line `number` of events.jsonl: an envelope, after position `last`, in the period, and matching its hash."""
    env = envelope_of(line)
    if env is None:
        raise _Broken(EVENTS_JSONL, f"line {number} is not a ledger envelope")
    if env["position"] <= last:
        raise _Broken(EVENTS_JSONL, f"line {number}: position {env['position']} is not after {last}")
    if not in_period(env, start, end):
        raise _Broken(EVENTS_JSONL, f"line {number}: effective date {env['effective_date']} is outside the "
                                    f"period")
    expected = chain_hash(env["prev_hash"], aggregate_id=env["aggregate_id"],
                          aggregate_version=env["aggregate_version"], event_type=env["type"],
                          version=env["version"], effective_date=env["effective_date"], branch=env["branch"],
                          data=env["data"])
    if expected != env["hash"]:
        raise _Broken(EVENTS_JSONL, f"line {number}: event {env['event_id']}'s hash does not match its "
                                    f"content: altered")
    return env


def _check_contents(folder: Path, manifest: dict[str, Any], check: ExportCheck) -> None:
    """The files agree with each other: events.jsonl with its hashes and the manifest; the CSV and the totals with
    what events.jsonl recomputes to. Catches a bundle altered together with its manifest."""
    start, end = (date.fromisoformat(manifest["period"][key]) for key in ("from", "to"))
    flows, head, last = Flows(), GENESIS_HASH, 0
    first = None
    table = hashlib.sha256(csv_line(EVENT_COLUMNS))
    with (folder / EVENTS_JSONL).open("rb") as jsonl:
        for number, line in enumerate(jsonl, start=1):
            env = _checked_line(number, line, last, start, end)
            first = env["position"] if first is None else first
            last = env["position"]
            head = export_chain(head, env["hash"])
            table.update(csv_line(event_row(env)))
            flows.add(env, current_data(env, BRANCH_TOTALS_ONLY))
            check.events += 1
    if check.events != manifest["events"]:
        raise _Broken(EVENTS_JSONL, f"holds {check.events:,} events, the manifest says {manifest['events']}")
    if {"first": first, "last": last if first is not None else None} != manifest.get("positions"):
        raise _Broken(EVENTS_JSONL, f"positions {first}..{last} differ from the manifest's {manifest.get('positions')}")
    if head != manifest["chain_head"]:
        raise _Broken(EVENTS_JSONL, "the chain head of its events differs from the manifest's")
    if table.hexdigest() != file_digest(folder / EVENTS_CSV)[1]:
        raise _Broken(EVENTS_CSV, "does not match events.jsonl")
    document = totals_document(flows, start, end)
    try:
        written = json.loads((folder / TOTALS_JSON).read_bytes())
    except ValueError:
        raise _Broken(TOTALS_JSON, "not JSON") from None
    if written != document:
        raise _Broken(TOTALS_JSON, f"differs from the totals recomputed from events.jsonl at "
                                   f"{_first_difference(document, written)}")
    if (folder / TOTALS_CSV).read_bytes() != totals_csv(document):
        raise _Broken(TOTALS_CSV, "does not match the totals recomputed from events.jsonl")


def verify_bundle(folder: Path) -> ExportCheck:
    """Check an export: every file's size and SHA-256 against the manifest, then the files against each other.
    Reports the first file that is missing, altered or inconsistent."""
    check = ExportCheck(folder=str(folder))
    try:
        manifest = _manifest(folder)
        _check_files(folder, manifest, check)
        _check_contents(folder, manifest, check)
    except _Broken as broken:
        check.problem_file, check.problem = broken.name, broken.problem
    return check
