"""The projection runner: consumes the events topic and keeps a projection's tables, exactly once.

Exactly once, from at-least-once delivery: every batch of records is applied and the next offsets of its partitions
are saved in one database transaction (`ViewStore.save_offsets`). A crash before the commit loses the batch and its
offsets together, so the restarted runner reads the batch again; a crash after it finds the offsets saved and goes on
from there. On start the runner seeks to the offsets stored with the view, never to Kafka's committed offsets, which
it commits afterwards for Kafka's own tools and for `ledger projections status`.

`Runner.step` runs one batch for the live runner (`ledger projections run`), which follows the version readers use:
when a rebuild switches versions, the runner re-seeks to the new version's offsets and carries on there.
`rebuild` fills a new version from offset 0 beside the live one (in N worker processes that share the partitions),
checks the invariants, indexes it and switches readers to it in one transaction, then drops the old version. In that
transaction, on the new version, the books' ties (`queries.rebuild_ties`) are checked too, when the four projections
have read the same offsets: the general ledger against the members' balances, the branch totals and the collections;
one that does not hold rolls the switch back before any reader sees it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ledger.errors import NotProjected, ProjectionError
from ledger.events import EVENT_TYPES
from ledger.memory import collector_paused
from ledger.publishing import kafka_client
from ledger.publishing.envelope import record_headers
from ledger.settings import Settings
from projections import queries
from projections.catalog import PROJECTIONS, projection
from projections.store import ViewStore
from projections.views import JsonRefused, Projection

__all__ = ["Runner", "rebuild", "run", "status"]

POLL_RECORDS_MAX = 2_000  # measured: bigger polls leave the fetcher idle longer
POLL_TIMEOUT_MS = 200
CATCH_UP_EMPTY_POLLS_MAX = 300  # a catch-up that sees nothing new for this many polls (about a minute) gives up
WORKERS_MAX = 32
WORKER_JOIN_TIMEOUT_S = 3_600
PROGRESS_INTERVAL_S = 0.5


def group_id(settings: Settings, name: str, version: int) -> str:
    # Under the prefix the projections' principal may use (ledger.publishing.topics.role_grants).
    from ledger.publishing.topics import Topics

    return f"{Topics.for_prefix(settings.kafka_topic_prefix).projection_groups}{name}.v{version}"


def events_topic(settings: Settings) -> str:
    from ledger.publishing.topics import Topics

    return Topics.for_prefix(settings.kafka_topic_prefix).events


@dataclass
class Runner:
    """Applies one projection's batches from some partitions of the events topic into one version of its tables."""

    settings: Settings
    store: ViewStore
    view: Projection
    version: int
    partitions: list[int]
    follow_live: bool = False  # the live runner moves to whatever version readers use
    log: Callable[[str], None] = lambda _: None
    stall_interval_s: float = kafka_client.STALL_INTERVAL_S

    def __post_init__(self) -> None:
        self.batch_max = self.settings.projection_batch_max
        self.topic = events_topic(self.settings)
        self.client: Any = None
        self.saved: dict[int, int | None] = {}  # partition -> the next offset stored with the view
        self.stall = kafka_client.StallWatch(self._readable_ends, self.stall_interval_s)
        # Records whose headers match these go to the view's JSON path (SQLite only; see projections.views).
        self.json_headers = {tuple(record_headers(t, EVENT_TYPES[t].VERSION)) for t in self.view.json_types
                             } if self.store.dialect == "sqlite" else set()

    def _open(self) -> None:
        self.close()
        with self.store.reading() as tx:
            stored = ViewStore.offsets(tx, self.view.name, self.version)
        start = {p: stored[(self.topic, p)][0] if (self.topic, p) in stored else None for p in self.partitions}
        self.saved = {p: start[p] for p in self.partitions}
        self.client = kafka_client.assigned_consumer(
            self.settings.kafka(), self.topic, start,
            group_id=group_id(self.settings, self.view.name, self.version), max_poll_records=POLL_RECORDS_MAX)
        self.stall.reset()

    def close(self) -> None:
        if self.client is not None:
            self.client.close(autocommit=False)
            self.client = None

    def positions(self) -> dict[int, int]:
        if self.client is None:
            self._open()
        return kafka_client.positions(self.client, self.topic, self.partitions)

    def step(self) -> int:
        """Poll up to one batch and apply it with its offsets in one transaction. Returns the records applied."""
        if self.client is None:
            self._open()
        with collector_paused():  # see ledger.memory: a quarter of the rebuild time otherwise
            applied = self._step()
        if not applied and self.client is not None:
            self._reopen_if_stalled()
        return applied

    def _reopen_if_stalled(self) -> None:
        """A consumer that fetches nothing while its partitions have records to read is replaced by a new one, which
        resumes from the offsets stored with the view (see `kafka_client.StallWatch` for why this happens)."""
        stalled = self.stall.stalled(self.positions())
        if stalled:
            self.log(f"{self.view.name}: partitions {stalled} of {self.topic} fetched nothing for "
                     f"{self.stall.interval_s:g}s although they have records to read; reopening the consumer")
            self.close()

    def _readable_ends(self) -> dict[int, int]:
        ends = kafka_client.committed_ends(self.settings.kafka(), self.topic)
        return {p: end for p, end in ends.items() if p in self.partitions}

    def _step(self) -> int:
        polled, count = self._poll()
        # The consumer's positions, not the last records' offsets + 1: a transaction's commit marker takes an offset
        # after its last record, and the position steps over it, so a caught-up view shows no lag.
        positions = self.positions()
        moved = {p: position for p, position in positions.items() if position != self.saved.get(p)}
        if not count and not moved:
            return 0
        envelopes, values, counts = self._decode(polled, positions)
        offsets = {(self.topic, p): (position, counts.get(p, 0)) for p, position in moved.items()}
        with self.store.transaction() as tx:
            if self.follow_live and self._moved_to_live(tx):
                return 0
            if values and not self._apply_json(tx, values):
                envelopes = [self._envelope(record) for part in polled for record in part]  # the whole batch
            try:
                self.view.apply(tx, self.version, envelopes)
            except Exception as error:
                self.close()
                raise ProjectionError(f"{self.view.name}: could not apply the batch ending at partition "
                                      f"{polled[-1][-1].partition} offset {polled[-1][-1].offset}: {error}"
                                      ) from error
            ViewStore.save_offsets(tx, self.view.name, self.version, offsets)
        self.saved.update(moved)
        # Kafka's copy of the offsets is informational (tools, lag); the one stored with the view decides.
        with contextlib.suppress(kafka_client.KafkaError):
            kafka_client.commit_offsets(self.client, self.topic, {p: o for (_, p), (o, _) in offsets.items()},
                                        wait=False)  # a round trip per batch otherwise: 2 s of a rebuild
        return count

    def _poll(self) -> tuple[list[list[Any]], int]:
        """Up to `batch_max` records: what each poll gave, one list per partition, in order; and their number."""
        polled: list[list[Any]] = []
        count = 0
        while count < self.batch_max:
            got = self.client.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=min(POLL_RECORDS_MAX,
                                                                               self.batch_max - count))
            if not got:
                break
            for part in got.values():
                polled.append(part)
                count += len(part)
        return polled, count

    def _decode(self, polled: list[list[Any]], positions: dict[int, int]
                ) -> tuple[list[dict[str, Any]], list[bytes], dict[int, int]]:
        """The envelopes to apply, the values for the view's JSON path, and the records per partition."""
        envelopes, values = [], []
        counts: dict[int, int] = {}
        json_headers = self.json_headers
        for part in polled:
            last = part[-1]  # offsets rise within one partition's records
            if last.offset >= positions[last.partition]:
                self.close()
                raise ProjectionError(f"{self.view.name}: consumer position {positions[last.partition]} is not "
                                      f"past record {last.offset} of partition {last.partition}")
            counts[last.partition] = counts.get(last.partition, 0) + len(part)
            for record in part:
                if json_headers and tuple(record.headers) in json_headers:
                    values.append(record.value)
                else:
                    envelopes.append(self._envelope(record))
        return envelopes, values, counts

    def _moved_to_live(self, tx: Any) -> bool:
        """Whether a rebuild switched readers to a new version: then this runner follows it, and that version's
        offsets say where to go on."""
        live = ViewStore.live_version(tx, self.view.name, lock=True)
        assert live is not None, self.view.name  # `ensure_live` made one, and a switch only ever replaces it
        if live == self.version:
            return False
        self.version = live
        self.close()
        return True

    def _envelope(self, record: Any) -> dict[str, Any]:
        try:
            envelope: dict[str, Any] = orjson.loads(record.value)
            envelope["type"], envelope["event_id"]  # an envelope has both: a KeyError here means it is not one
        except (orjson.JSONDecodeError, TypeError, KeyError) as error:
            self.close()
            raise ProjectionError(f"{self.view.name}: the record at {record.topic} partition {record.partition} "
                                  f"offset {record.offset} is not a ledger event ({error}); stopped before it"
                                  ) from None
        return envelope

    def _apply_json(self, tx: Any, values: list[bytes]) -> bool:
        """The view's JSON path for `values`; False (and nothing of it written) if it refused a record."""
        try:
            with tx.savepoint("json_path"):
                self.view.apply_json(tx, self.version, values)
        except JsonRefused:
            return False
        return True

    def catch_up(self, until: dict[int, int], *, stop: Callable[[], bool] = lambda: False,
                 progress: Callable[[int], None] = lambda _: None) -> int:
        """Apply batches until every partition's position reaches `until` (end offsets taken by the caller).
        `progress` gets the sum of the positions (the offsets consumed) before each batch and at the end."""
        total = 0
        empty = 0
        while not stop():
            positions = self.positions()
            progress(sum(positions.values()))
            behind = {p for p, position in positions.items() if position < until.get(p, 0)}
            if not behind:
                break
            applied = self.step()
            total += applied
            empty = 0 if applied else empty + 1
            if empty > CATCH_UP_EMPTY_POLLS_MAX:
                raise ProjectionError(f"{self.view.name}: no progress towards the end of partitions {sorted(behind)}")
        return total


def ensure_live(store: ViewStore, view: Projection) -> int:
    """The live version of a projection, creating an empty version 1 (filled by the runner) on first use."""
    with store.transaction() as tx:
        live = ViewStore.live_version(tx, view.name)
        if live is None:
            live = ViewStore.new_version(tx, view.name)
            view.create(tx, live, indexes=True)
            ViewStore.switch(tx, view.name, live)
        elif (why := view.outdated(tx, live)) is not None:
            raise NotProjected(why)
        return live


def run(settings: Settings, names: list[str], *, follow: bool, stop: Callable[[], bool] = lambda: False,
        log: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """`ledger projections run`: catch the live versions up (and with `follow`, keep them up)."""
    store = ViewStore.open(settings)
    partitions = sorted(kafka_client.end_offsets(settings.kafka(), events_topic(settings)))
    runners = []
    for name in names:
        view = projection(name)
        runners.append(Runner(settings, store, view, ensure_live(store, view), partitions, follow_live=True, log=log))
    applied = dict.fromkeys(names, 0)
    try:
        ends = kafka_client.end_offsets(settings.kafka(), events_topic(settings))
        for runner in runners:
            applied[runner.view.name] += runner.catch_up(ends, stop=stop)
            log(f"{runner.view.name}: caught up, version {runner.version}")
        while follow and not stop():
            if sum(_follow_step(runner) for runner in runners) == 0:
                time.sleep(POLL_TIMEOUT_MS / 1000)
    finally:
        for runner in runners:
            runner.close()
    return applied


def _follow_step(runner: Runner) -> int:
    """One step of a following runner, which outlives a cluster that does not answer: a step that fails for a reason
    that passes (a timeout, a broker lost) drops its consumer, and the next step opens a new one from the offsets
    stored with the view."""
    try:
        return runner.step()
    except kafka_client.RetriableError as error:
        runner.log(f"{runner.view.name}: {error}; trying again with a new consumer")
        runner.close()
        return 0


def _worker(settings: Settings, name: str, version: int, partitions: list[int], until: dict[int, int]) -> None:
    runner = Runner(settings, ViewStore.open(settings), projection(name), version, partitions)
    try:
        runner.catch_up(until)
    finally:
        runner.close()


@dataclass
class RebuildResult:
    name: str
    version: int
    replaced: int | None
    events: int
    seconds: float
    ties: str  # checked (as of when), or why not (`queries.rebuild_ties`)


def rebuild(settings: Settings, name: str, *, workers: int = 1,
            progress: Callable[[int, int], None] = lambda _done, _total: None) -> RebuildResult:
    """Build a new version from offset 0 beside the live one, check it, and switch readers to it atomically."""
    if not 1 <= workers <= WORKERS_MAX:
        raise ValueError(f"--workers must be between 1 and {WORKERS_MAX}, got {workers}")
    view = projection(name)
    store = ViewStore.open(settings)
    topic = events_topic(settings)
    ends = kafka_client.end_offsets(settings.kafka(), topic)
    partitions = sorted(ends)
    with store.transaction() as tx:
        version = ViewStore.new_version(tx, name)
        live = ViewStore.live_version(tx, name)
        for leftover in range(1, version + 1):  # versions of rebuilds killed half-way (SIGKILL skips the clean-up)
            if leftover != live:
                view.drop(tx, leftover)
                ViewStore.drop_offsets(tx, name, leftover)
        view.create(tx, version, indexes=False)  # indexes come after the bulk load: much faster to build once
    started = time.perf_counter()
    total = sum(ends.values())
    try:
        if workers == 1:
            runner = Runner(settings, store, view, version, partitions)
            try:
                runner.catch_up(ends, progress=lambda done: progress(done, total))
            finally:
                runner.close()
        else:
            _build_in_workers(settings, store, name, version, ends, workers,
                              progress=lambda done: progress(done, total))
        progress(_done(store, name, version), total)
        # Events that arrived during the build, then check, index and switch.
        runner = Runner(settings, store, view, version, partitions)
        try:
            runner.catch_up(kafka_client.end_offsets(settings.kafka(), topic))
        finally:
            runner.close()
        with store.transaction() as tx:
            view.create_indexes(tx, version)
            view.complete(tx, version)
            view.check(tx, version)
            replaced = ViewStore.switch(tx, name, version)
            # The books' ties with the other projections, on the new version: a failure rolls the switch back.
            ties = queries.rebuild_ties(tx, name)
        if replaced is not None and replaced != version:
            with store.transaction() as tx:
                view.drop(tx, replaced)
                ViewStore.drop_offsets(tx, name, replaced)
    except BaseException:
        with store.transaction() as tx:  # the live version is untouched; the half-built one goes
            view.drop(tx, version)
            ViewStore.drop_offsets(tx, name, version)
        raise
    with store.reading() as tx:
        events = sum(count for _, count, _ in ViewStore.offsets(tx, name, version).values())
    return RebuildResult(name, version, replaced, events, time.perf_counter() - started, ties)


def _build_in_workers(settings: Settings, store: ViewStore, name: str, version: int, ends: dict[int, int],
                      workers: int, *, progress: Callable[[int], None]) -> None:
    """Build `version` up to `ends` in `workers` processes, each over its share of the partitions."""
    context = multiprocessing.get_context("spawn")
    shares = [[p for p in sorted(ends) if p % workers == i] for i in range(workers)]
    processes = [context.Process(target=_worker, args=(settings, name, version, share, ends), daemon=True)
                 for share in shares if share]
    for process in processes:
        process.start()
    deadline = time.monotonic() + WORKER_JOIN_TIMEOUT_S
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        progress(_done(store, name, version))
        time.sleep(PROGRESS_INTERVAL_S)
    for process in processes:
        process.join(timeout=1)
        if process.exitcode != 0:
            raise ProjectionError(f"rebuild of {name}: a worker failed (exit code {process.exitcode})")


def _done(store: ViewStore, name: str, version: int) -> int:
    with store.reading() as tx:
        return sum(offset for offset, _, _ in ViewStore.offsets(tx, name, version).values())


def status(settings: Settings) -> list[dict[str, Any]]:
    """Per projection: live version, events applied, per-partition offsets and lag, and the last update."""
    store = ViewStore.open(settings)
    topic = events_topic(settings)
    ends = kafka_client.end_offsets(settings.kafka(), topic)
    rows = []
    for name in PROJECTIONS:
        with store.reading() as tx:
            live = ViewStore.live_version(tx, name)
            stored = ViewStore.offsets(tx, name, live) if live is not None else {}
        partitions: list[dict[str, Any]] = []
        for partition, end in sorted(ends.items()):
            offset, events, updated = stored.get((topic, partition), (0, 0, None))
            partitions.append({"partition": partition, "offset": offset, "end": end, "lag": max(0, end - offset),
                               "events": events, "updated_at": updated})
        updates = [p["updated_at"] for p in partitions if p["updated_at"]]
        rows.append({"name": name, "live_version": live, "events": sum(p["events"] for p in partitions),
                     "lag": sum(p["lag"] for p in partitions), "last_update": max(updates) if updates else None,
                     "partitions": partitions})
    return rows
