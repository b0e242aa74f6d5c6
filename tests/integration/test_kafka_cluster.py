"""Durability on a real cluster: three secured KRaft nodes on loopback, started for this module by
`scripts/kafka cluster start 3`, and the ledger's pieces run as the real CLI, each as its own principal.

The administrator makes the topics with `ledger kafka init` (the default three copies, min.insync.replicas 2, unclean
leader election off) and grants the roles their ACLs. The relay (`ledger relay --follow`, as `relay`) publishes a
branch's history in small transactions while a projection runner (`ledger projections run --follow`, as
`projections`) and a consumer team's SDK consumer (`ledger consumers warehouse`, as `warehouse-exporter`) follow.
In the middle of a relay transaction a broker is SIGKILLed (`scripts/kafka cluster kill`); later it is restarted
(`scripts/kafka cluster start`) and more history is written. Afterwards the books must be exactly what the write side
wrote (`assert_books_intact`):
- `ledger audit verify`: positions 1..N, none lost and none twice, chains intact (N: the store's publishable events);
- `ledger audit reconcile`: the store, the relay's saved state and the topic agree;
- `ledger audit as-of`, as the auditor: no difference from the projections; and the auditor's recount of every
  member's JHT balance equals the write side's;
- the consumer exported every event exactly once;
- every table of the projections equals the same table after a clean rebuild from offset 0.

"In the middle of a transaction" is made certain rather than hoped for (`kill_in_transaction`): the test freezes the
relay (SIGSTOP), asks the transaction coordinator about the relay's transaction, and kills the broker only if it is
Ongoing, then lets the relay go on (SIGCONT); otherwise it lets the relay run a moment and looks again. A relay paused
in a transaction is what a long pause of a busy machine does anyway; here it pins the moment down whatever the
machine's speed.

The cluster is the module's (starting three TLS brokers takes a minute on a busy machine); each test has topics, a
transactional id, a consumer group and files of its own. Every wait is for a condition, bounded by a named constant.
The administrator's view of the cluster (partition leaders, in-sync replicas, the transaction coordinator) comes from
kafka-python's admin client, made by `kafka_client._admin` so that this test too leaves `kafka` to the one module
that imports it.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.audit.recount import Recount
from ledger.audit.topic import read_topic
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing import kafka_client
from ledger.publishing.relay import read_state
from ledger.publishing.topics import Topics, dead_letter_topic
from ledger.settings import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR_DEFAULT, Settings
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "scripts" / "kafka"
CLUSTER_NODES = 3
WAREHOUSE = "warehouse-exporter"  # the consumer team's principal

# Bounds, for a busy 2-core machine shared with other work. Starting three TLS brokers takes about a minute there
# (scripts/kafka bounds each node at 90 s); a killed broker is noticed by the controller after its session timeout
# (9 s), then the relay retries with a backoff of up to 10 s and bounds a commit at 30 s.
CLUSTER_START_TIMEOUT_S = 600
CLUSTER_STOP_TIMEOUT_S = 180
NODE_KILL_TIMEOUT_S = 60
IN_SYNC_TIMEOUT_S = 240  # a restarted node catches up and is back in every in-sync replica set
PUBLISHED_TIMEOUT_S = 300  # the relay has published everything written, failover included
CAUGHT_UP_TIMEOUT_S = 180  # the projection runner and the consumer have everything the relay published
TRANSACTION_SEEN_TIMEOUT_S = 120  # the relay is seen in an open transaction
PROCESS_STOP_TIMEOUT_S = 60  # a follower stops after SIGTERM
TEST_TIMEOUT_S = 1_500  # one test, the module's cluster start included when it comes first
POLL_INTERVAL_S = 0.5
TRANSACTION_POLL_INTERVAL_S = 0.02  # the relay runs this long between two looks at its transaction (frozen)
RELAY_BATCH = 200  # events per relay transaction: many transactions, so a kill lands in one

TODAY = date(2026, 11, 23)  # the write side's clock
AS_OF = date(2017, 12, 31)  # after every effective date of the two parts below
# Two branches' histories, written one after the other (KPJ and NPP ranges apart): about 2,500 and 1,400 events.
FIRST_PART = BranchPlan(branch="BEKASI-KOTA", employers=6, members=300, bpu_members=20, first_month="2017-01",
                        months=6, seed=14)
SECOND_PART = BranchPlan(branch="CIKARANG", employers=4, members=160, bpu_members=12, first_month="2017-01",
                         months=6, seed=15, first_npp=30_000_001, first_kpj=17_200_000_001)
ONGOING = "Ongoing"  # the coordinator's name for an open transaction

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TEST_TIMEOUT_S)]


def say(what: str) -> None:
    """A line of the test's own log, timed: pytest shows it when a test fails, with the followers' output."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, *, interval_s: float = POLL_INTERVAL_S,
               watch: tuple[Follower, ...] = (), now: Callable[[], Any] | None = None) -> Any:
    """Poll `condition` until it returns something true, and return that; fail after `timeout_s`, or as soon as a
    watched follower has exited. The failure says what `now()` found last, and what the watched followers said."""
    deadline = time.monotonic() + timeout_s
    while True:
        for follower in watch:
            follower.check_running()
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            found = f" (found: {now()})" if now is not None else ""
            said = "".join(f"\n--- {follower.name}:\n{follower.output()}" for follower in watch)
            pytest.fail(f"not within {timeout_s}s: {what}{found}{said}")
        time.sleep(interval_s)


# --- the cluster -----------------------------------------------------------------------------------------------------

def cluster_script(folder: Path, *args: str, timeout_s: float) -> str:
    """`scripts/kafka cluster ARGS` on the cluster in `folder`; fails the test on a non-zero exit."""
    done = subprocess.run([str(KAFKA_SCRIPT), "cluster", *args], env={**os.environ, "KAFKA_CLUSTER_DIR": str(folder)},
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, (f"scripts/kafka cluster {' '.join(args)}: exit {done.returncode}\n"
                                  f"{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


@dataclass
class Cluster:
    """The module's three nodes, driven through `scripts/kafka cluster`, and the administrator's view of them."""

    folder: Path
    roles: KafkaRoles

    def start(self) -> None:
        """Start every node that does not run, each waited for until it answers."""
        cluster_script(self.folder, "start", str(CLUSTER_NODES), timeout_s=CLUSTER_START_TIMEOUT_S)

    def kill(self, node: int) -> None:
        cluster_script(self.folder, "kill", str(node), timeout_s=NODE_KILL_TIMEOUT_S)

    def partitions(self, topics: list[str]) -> dict[str, list[kafka_client.PartitionState]]:
        """Topic -> its partitions as the cluster describes them; a topic that does not exist is left out."""
        return kafka_client.describe_partitions(self.roles.admin, topics)

    def in_sync(self, topics: list[str]) -> bool:
        """Every partition of these topics (and of the internal ones that hold offsets and transactions) has a
        leader and all its replicas in sync."""
        try:
            described = self.partitions([*topics, "__transaction_state", "__consumer_offsets"])
        except kafka_client.KafkaError:
            return False
        return set(topics) <= set(described) and all(
            partition.leader >= 0 and len(partition.in_sync) == len(partition.replicas)
            == CLUSTER_NODES for partitions in described.values() for partition in partitions)

    def wait_in_sync(self, topics: list[str]) -> None:
        wait_until(lambda: self.in_sync(topics), IN_SYNC_TIMEOUT_S,
                   f"every partition of {topics} and of the internal topics with {CLUSTER_NODES} replicas in sync")

    def heal(self, topics: list[str]) -> None:
        """Every node running and every replica in sync: how each test starts, and how it leaves the cluster."""
        self.start()
        self.wait_in_sync(topics)
        say(f"{CLUSTER_NODES} nodes running, every replica in sync")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("kafka-cluster")
    try:
        cluster_script(folder, "start", str(CLUSTER_NODES), timeout_s=CLUSTER_START_TIMEOUT_S)
        yield Cluster(folder, KafkaRoles.from_environment(str(folder / "principals"), ""))
    finally:
        cluster_script(folder, "stop", timeout_s=CLUSTER_STOP_TIMEOUT_S)


# --- the ledger's pieces, each as its principal ----------------------------------------------------------------------

@dataclass
class Follower:
    """A `ledger` command running in the background as one role (`--follow` or a consumer); output in files."""

    name: str
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def check_running(self) -> None:
        assert self.process.poll() is None, f"{self.name} exited {self.process.returncode}:\n{self.output()}"

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it: it finishes the work in hand and exits 0. Returns its stdout."""
        self.check_running()
        self.thaw()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=PROCESS_STOP_TIMEOUT_S)
        assert code == 0, f"{self.name} exited {code} on SIGTERM:\n{self.output()}"
        assert "Traceback" not in self.output(), self.output()
        return self.out.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait(timeout=PROCESS_STOP_TIMEOUT_S)


@dataclass
class Books:
    """One test's ledger: its event store, views and consumer folder, its topics, transactional id and consumer team,
    the write side in this process, and each role's command line on them."""

    cluster: Cluster
    folder: Path
    partitions: int
    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    followers: list[Follower] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = Topics.for_prefix(f"test-cluster-{self.unique}")
        self.transactional_id = f"relay-{self.unique}"
        self.team = f"warehouse-{self.unique}"  # the consumer team's group id
        self.warehouse = self.folder / "warehouse"
        settings = Settings(sqlite_path=self.folder / "ledger.db")
        self.app = Ledger(env=settings.eventsourcing_env(), clock=lambda: TODAY, nik_key=settings.nik_hmac_key_bytes())

    @property
    def all_topics(self) -> list[str]:
        return [self.topics.events, self.topics.state, dead_letter_topic(self.team)]

    def env(self, role: str) -> dict[str, str]:
        """The process's environment without the single test broker's Kafka settings, then the role's own
        (`<role>.env` of the cluster), then this test's store, views and names."""
        inherited = {name: value for name, value in os.environ.items()
                     if not name.startswith("LEDGER_KAFKA_") and name != "LEDGER_DEVELOPMENT_MODE"}
        return {**inherited, **self.cluster.roles.env(role),
                "LEDGER_SQLITE_PATH": str(self.folder / "ledger.db"),
                "LEDGER_PROJECTION_SQLITE_PATH": str(self.folder / "views.db"),
                "LEDGER_KAFKA_TOPIC_PREFIX": self.topics.prefix,
                "LEDGER_KAFKA_PARTITIONS": str(self.partitions),
                "LEDGER_RELAY_TRANSACTIONAL_ID": self.transactional_id}

    def cli(self, role: str, **extra: str) -> Cli:
        return Cli(env={**self.env(role), **extra}, folder=self.folder)

    def init(self) -> None:
        """`ledger kafka init` as the administrator: the topics, with the default replication factor, and every
        role's ACLs on them."""
        self.cli(ADMIN)("kafka", "init", "--relay", RELAY, "--projections", PROJECTIONS_ROLE, "--auditor", AUDITOR,
                        "--consumer", f"{self.team}={WAREHOUSE}")

    def follow(self, role: str, *args: str) -> Follower:
        name = f"{role}: ledger {' '.join(args)}"
        out, err = (self.folder / f"{role}.{stream}" for stream in ("out", "err"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "ledger.cli", *args], env=self.env(role),
                                       stdout=stdout, stderr=stderr)
        follower = Follower(name, process, out, err)
        self.followers.append(follower)
        return follower

    def start_pieces(self) -> tuple[Follower, Follower, Follower]:
        """The relay, the projection runner and the consumer, each following as its own principal."""
        return (self.follow(RELAY, "relay", "--follow", "--batch", str(RELAY_BATCH)),
                self.follow(PROJECTIONS_ROLE, "projections", "run", "--follow"),
                self.follow(WAREHOUSE, "consumers", "warehouse", "--out", str(self.warehouse), "--group", self.team))

    def write(self, plan: BranchPlan) -> None:
        generate_branch(self.app, plan)

    def publishable(self) -> int:
        """N: the events the relay publishes from the store (all but the internal command records)."""
        return sum(1 for _ in self.app.stored_contract_notifications())

    def relay_position(self) -> int | None:
        """The relay's last committed position, read as the administrator; None while the cluster cannot say."""
        try:
            return read_state(self.cluster.roles.admin, self.topics).position
        except (kafka_client.KafkaError, TimeoutError):
            return None

    def wait_published(self, relay: Follower) -> int:
        """Wait until the relay has published everything written so far; returns N."""
        events = self.publishable()
        wait_until(lambda: self.relay_position() == events, PUBLISHED_TIMEOUT_S,
                   f"the relay has published all {events:,} events", watch=(relay,),
                   now=lambda: f"relay position {self.relay_position()}")
        say(f"the relay has published all {events:,} events")
        return events

    def projected(self) -> dict[str, int]:
        """Projection -> the events its live version has applied."""
        if not (self.folder / "views.db").exists():
            return {}
        views = ViewStore("sqlite", sqlite_path=self.folder / "views.db")
        try:
            with views.reading() as tx:
                versions = {name: ViewStore.live_version(tx, name) for name in PROJECTIONS}
                return {name: sum(events for _, events, _ in ViewStore.offsets(tx, name, version).values())
                        for name, version in versions.items() if version is not None}
        finally:
            views.close()

    def exported(self) -> int:
        """The events the consumer has recorded as processed."""
        state = self.warehouse / "_export.db"
        if not state.exists():
            return 0
        with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as connection:
            try:
                return connection.execute("SELECT COUNT(*) FROM processed_events").fetchone()[0]
            except sqlite3.OperationalError:  # the table is not made yet
                return 0

    def wait_caught_up(self, events: int, followers: tuple[Follower, ...]) -> None:
        wait_until(lambda: self.projected() == dict.fromkeys(PROJECTIONS, events), CAUGHT_UP_TIMEOUT_S,
                   f"the projections have applied all {events:,} events", watch=followers, now=self.projected)
        wait_until(lambda: self.exported() == events, CAUGHT_UP_TIMEOUT_S,
                   f"the consumer has exported all {events:,} events", watch=followers,
                   now=lambda: f"{self.exported():,} exported")


@pytest.fixture
def books_of(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[[int], Books]]:
    """Makes the test's `Books` (its events topic with the given partitions); stops whatever it left running."""
    made: list[Books] = []

    def make(partitions: int) -> Books:
        made.append(Books(cluster, tmp_path, partitions))
        return made[-1]

    try:
        yield make
    finally:
        for books in made:
            for follower in books.followers:
                follower.kill()


def kill_in_transaction(cluster: Cluster, books: Books, relay: Follower, choose: Callable[[Any], int]) -> int:
    """SIGKILL the node `choose(the relay's transaction, as its coordinator describes it)` names while a relay
    transaction is open. Returns the node killed.

    The relay is looked at frozen (SIGSTOP): a frozen relay can neither commit nor abort, so a transaction the
    coordinator reports Ongoing is still open when the node dies. Between looks the relay runs for
    TRANSACTION_POLL_INTERVAL_S only, so however fast the machine, it cannot publish its whole backlog unseen."""
    deadline = time.monotonic() + TRANSACTION_SEEN_TIMEOUT_S
    while True:
        relay.check_running()
        assert time.monotonic() < deadline, (f"the relay was not seen in a transaction within "
                                             f"{TRANSACTION_SEEN_TIMEOUT_S}s:\n{relay.output()}")
        relay.freeze()
        try:
            try:
                seen = kafka_client.describe_transaction(cluster.roles.admin, books.transactional_id)
            except kafka_client.KafkaError:  # e.g. the coordinator is still being elected
                seen = None
            if seen is not None and seen.state == ONGOING:
                node = choose(seen)
                cluster.kill(node)
                say(f"node {node} killed in a relay transaction (coordinator: node {seen.coordinator}, "
                    f"partitions {list(seen.partitions)})")
                return node
        finally:
            relay.thaw()
        time.sleep(TRANSACTION_POLL_INTERVAL_S)


def leader_of(cluster: Cluster, topic: str, partition: int) -> int:
    return next(p.leader for p in cluster.partitions([topic])[topic] if p.partition == partition)


# --- what must hold afterwards ---------------------------------------------------------------------------------------

def view_tables(books: Books) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of every projection's live version, its rows sorted: what a rebuild must reproduce exactly."""
    views = ViewStore("sqlite", sqlite_path=books.folder / "views.db")
    try:
        with views.reading() as tx:
            tables = {}
            for name, projection in PROJECTIONS.items():
                version = ViewStore.live_version(tx, name)
                assert version is not None, f"the {name} projection has no live version"
                for table in projection.tables:
                    rows = tx.all(f"SELECT * FROM {table_name(name, version, table.name)}")
                    tables[f"{name}.{table.name}"] = sorted(rows, key=repr)
            return tables
    finally:
        views.close()


def exported_rows(books: Books) -> list[dict[str, str]]:
    rows = []
    for path in sorted(books.warehouse.glob("month=*/events-p*.csv")):
        with path.open(newline="", encoding="utf-8") as file:
            rows += list(csv.DictReader(file))
    return rows


def assert_books_intact(books: Books, relay_output: str, events: int) -> None:
    """Everything the module's docstring lists, for a store of `events` publishable events."""
    auditor = books.cli(AUDITOR)
    assert f"published {events:,} events to {books.topics.events}; last position {events:,}" in relay_output

    # The topic: positions 1..N, none lost, none twice, the chains intact; and it agrees with the store and the
    # relay's saved state.
    verified = auditor.json("audit", "verify")
    assert verified["ok"] and verified["events"] == events and verified["positions"] == [1, events], verified
    reconciled = auditor.json("audit", "reconcile")
    assert reconciled["ok"] and reconciled["store"]["events"] == events, reconciled
    assert reconciled["relay_state"]["position"] == reconciled["topic"]["last_position"] == events, reconciled

    # The auditor's recount: the projections' answers (`audit as-of`), and every member's JHT balance as the write
    # side computes it.
    as_of = auditor.json("audit", "as-of", AS_OF.isoformat())
    assert as_of["ok"] and as_of["differences_found"] == 0 and as_of["events"] == events, as_of
    assert as_of["projection_events"] == dict.fromkeys(PROJECTIONS, events), as_of
    recount = Recount(AS_OF)
    on_topic = []
    for _, env in read_topic(books.cluster.roles.connection(AUDITOR), books.topics.events):
        recount.add(env)
        on_topic.append(env["event_id"])
    recount.finish()
    kpjs = [books.app.find(member_id).kpj for member_id in books.app.all_member_ids()]
    assert sorted(kpjs) == sorted(recount.members)
    written = {kpj: books.app.jht_balance(kpj, AS_OF) for kpj in kpjs}
    assert {kpj: recount.jht.get(kpj, 0) for kpj in kpjs} == written
    assert sum(written.values()) > 0

    # The consumer: each event exactly once.
    rows = exported_rows(books)
    assert sorted(int(row["position"]) for row in rows) == list(range(1, events + 1))
    assert Counter(row["event_id"] for row in rows) == Counter(on_topic) and len(set(on_topic)) == events

    # The views: the same as a clean rebuild from offset 0.
    before = view_tables(books)
    projections = books.cli(PROJECTIONS_ROLE)
    for name in PROJECTIONS:
        assert projections.json("projections", "rebuild", name)["events"] == events
    after = view_tables(books)
    assert after == before
    assert len(before["balances.members"]) == len(kpjs)


# --- the tests -------------------------------------------------------------------------------------------------------

def test_topics_keep_three_copies_and_init_refuses_a_factor_the_cluster_cannot_keep(
        cluster: Cluster, books_of: Callable[[int], Books]) -> None:
    books = books_of(3)
    cluster.heal([])
    books.init()
    described = cluster.partitions(books.all_topics)
    for topic in books.all_topics:
        assert [len(p.replicas) for p in described[topic]] == [REPLICATION_FACTOR_DEFAULT] * \
            len(described[topic]), topic
        config = kafka_client.describe_topic_config(cluster.roles.admin, topic)
        assert config["min.insync.replicas"] == str(MIN_INSYNC_REPLICAS), topic
        assert config["unclean.leader.election.enable"] == "false", topic
    assert len(described[books.topics.events]) == 3

    # Four copies on three brokers: refused before anything is made. One copy: refused outside development mode.
    for factor, message in (("4", (f"LEDGER_KAFKA_REPLICATION_FACTOR=4 is more copies than the cluster at "
                                   f"{cluster.roles.admin.servers} has brokers (3): nothing was created")),
                            ("1", "LEDGER_KAFKA_REPLICATION_FACTOR=1 keeps one copy of the history")):
        other = Topics.for_prefix(f"test-cluster-refused-{uuid.uuid4().hex[:10]}")
        refused = books.cli(ADMIN, LEDGER_KAFKA_REPLICATION_FACTOR=factor, LEDGER_KAFKA_TOPIC_PREFIX=other.prefix)(
            "kafka", "init", expect=2)
        assert message in refused.stderr, refused.stderr
        assert cluster.partitions([other.events, other.state]) == {}


def begin(cluster: Cluster, books: Books) -> tuple[Follower, Follower, Follower]:
    """A healthy cluster, the books' topics and ACLs, the first part written, and the pieces following it."""
    cluster.heal([])
    books.init()
    books.write(FIRST_PART)
    return books.start_pieces()


def finish(books: Books, pieces: tuple[Follower, Follower, Follower], events: int) -> None:
    """Wait until every piece has all `events`, stop them, and check that the books are intact."""
    relay, runner, consumer = pieces
    books.wait_caught_up(events, pieces)
    relay_output = relay.stop()
    runner.stop()
    consumer.stop()
    assert_books_intact(books, relay_output, events)


def test_a_broker_killed_while_the_relay_publishes_loses_and_repeats_nothing(
        cluster: Cluster, books_of: Callable[[int], Books]) -> None:
    books = books_of(3)
    relay, _, _ = pieces = begin(cluster, books)

    # A node that is not the relay's transaction coordinator: it leads one of the three partitions of the events
    # topic and follows the others, so the open transaction's records lose a leader.
    killed = kill_in_transaction(cluster, books, relay, lambda seen: min(
        node for node in range(1, CLUSTER_NODES + 1) if node != seen.coordinator))
    books.wait_published(relay)  # on two brokers

    cluster.heal(books.all_topics)  # the killed node restarted, and caught up
    books.write(SECOND_PART)
    events = books.wait_published(relay)
    finish(books, pieces, events)
    assert events > 3_000, f"node {killed} killed; {events} events"


def test_the_events_leader_and_the_transaction_coordinator_killed_in_relay_transactions(
        cluster: Cluster, books_of: Callable[[int], Books]) -> None:
    # One partition, so one broker leads every record of every relay transaction.
    books = books_of(1)
    relay, _, _ = pieces = begin(cluster, books)

    # 1. The leader of the events topic dies in a relay transaction; the relay goes on with the new leader.
    leader = kill_in_transaction(cluster, books, relay, lambda _: leader_of(cluster, books.topics.events, 0))
    books.wait_published(relay)
    cluster.heal(books.all_topics)

    # 2. The relay's transaction coordinator dies in a relay transaction. The relay is held while the second part is
    #    written, so it has a backlog of transactions when it goes on.
    relay.freeze()
    try:
        books.write(SECOND_PART)
    finally:
        relay.thaw()
    coordinator = kill_in_transaction(cluster, books, relay, lambda seen: seen.coordinator)
    events = books.wait_published(relay)
    cluster.heal(books.all_topics)

    finish(books, pieces, events)
    assert events > 3_000, f"leader {leader} and coordinator {coordinator} killed; {events} events"
