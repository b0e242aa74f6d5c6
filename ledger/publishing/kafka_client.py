"""The one module that imports kafka-python.

Everything else in the project asks this module for a producer, a consumer or a topic, so that every client option
is set here, explicitly, in one place, and a change of client library touches one file. Serialization is not done
here: callers hand over bytes and get bytes back.

Every function takes a `KafkaConnection` (built by `ledger.settings.Settings.kafka()`), and every client it makes gets
the connection's security options explicitly (`_options`): the address, the protocol (PLAINTEXT, SSL, SASL_PLAINTEXT,
SASL_SSL), the SCRAM credentials, the CA, and the client certificate for mutual TLS. A client that is refused
(wrong password, unknown CA) or not authorised (no ACL for what it asked) raises kafka-python's error unchanged, a
`KafkaError`: the callers name the principal and what it lacked (`ledger.cli.common.reporting`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    OffsetAndMetadata,
    TopicPartition,
)
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import (
    AuthorizationError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    RetriableError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    TransactionalIdNotFoundError,
)

from ledger.errors import ConfigurationError
from ledger.settings import KafkaConnection, Settings

__all__ = [
    "AuthorizationError",
    "Grant",
    "JoinWatch",
    "KafkaConnection",
    "KafkaError",
    "KafkaTimeoutError",
    "PartitionState",
    "ProducerFencedError",
    "RetriableError",
    "SaslAuthenticationFailedError",
    "StallWatch",
    "TopicPartition",
    "TransactionState",
    "abort_transaction",
    "assigned_consumer",
    "broker_count",
    "commit_offsets",
    "commit_transaction",
    "committed_ends",
    "committed_offsets",
    "consumer",
    "create_acls",
    "describe_acls",
    "describe_partitions",
    "describe_transaction",
    "end_offsets",
    "ensure_topic",
    "fenced",
    "in_group",
    "last_records",
    "offsets_for_time",
    "positions",
    "producer",
    "read_partition",
    "read_to_end",
    "readable_ends",
    "seek",
    "subscribe",
    "topic_partitions",
    "wait_until_ready",
]


def fenced(error: BaseException) -> bool:
    """Whether `error` says a newer producer with the same transactional id fenced this one off. kafka-python raises
    ProducerFencedError from the request that met it, but a later transactional call only a KafkaError whose text
    names it ("... in an error state: [Error 90] ProducerFencedError")."""
    return isinstance(error, ProducerFencedError) or ProducerFencedError.__name__ in str(error)

# Bounds on waiting for the cluster; named so a reader sees every limit in one place.
READY_POLL_INTERVAL_S = 0.5
REQUEST_TIMEOUT_MS = 30_000
ADMIN_TIMEOUT_MS = 30_000
# Forever: Kafka is the history that consumers and auditors replay.
RETENTION_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
# Whether a client checks that the broker's certificate names the host it dialled: always. A certificate that does not
# is a configuration error to fix on the broker, not a check to turn off.
SSL_CHECK_HOSTNAME = True


def _options(kafka: KafkaConnection) -> dict[str, Any]:
    """The connection options every client gets, spelt out: kafka-python's defaults are never relied on."""
    return {
        "bootstrap_servers": list(kafka.bootstrap_servers),
        "security_protocol": kafka.security_protocol,
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_plain_username": kafka.sasl_username,
        "sasl_plain_password": kafka.sasl_password,
        "ssl_cafile": kafka.ssl_cafile,
        "ssl_certfile": kafka.ssl_certfile,
        "ssl_keyfile": kafka.ssl_keyfile,
        "ssl_check_hostname": SSL_CHECK_HOSTNAME,
    }


def _admin(kafka: KafkaConnection) -> KafkaAdminClient:
    return KafkaAdminClient(**_options(kafka), request_timeout_ms=ADMIN_TIMEOUT_MS)


def wait_until_ready(kafka: KafkaConnection, timeout_s: float) -> None:
    """Return once the cluster answers a metadata request; raise TimeoutError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            probe = KafkaConsumer(
                **_options(kafka),
                request_timeout_ms=5_000,
                metadata_max_age_ms=5_000,
            )
            try:
                probe.topics()  # a metadata request
                return
            finally:
                probe.close()
        except (SaslAuthenticationFailedError, AuthorizationError):
            raise  # the broker answered, and refused: waiting longer will not change its mind
        except (KafkaError, OSError) as error:  # NoBrokersAvailable while the port is not yet open
            last_error = error
            time.sleep(READY_POLL_INTERVAL_S)
    raise TimeoutError(f"Kafka at {kafka.servers} did not answer within {timeout_s}s: {last_error}")


def ensure_topic(
    kafka: KafkaConnection,
    name: str,
    partitions: int,
    config: dict[str, str] | None = None,
    *,
    replication_factor: int,
) -> bool:
    """Create a topic if it does not exist. Returns True if this call created it. Idempotent."""
    admin = _admin(kafka)
    try:
        topic = NewTopic(name=name, num_partitions=partitions, replication_factor=replication_factor,
                         topic_configs=config or {})
        try:
            admin.create_topics([topic], timeout_ms=ADMIN_TIMEOUT_MS)
            return True
        except TopicAlreadyExistsError:
            return False
    finally:
        admin.close()


def describe_topic_config(kafka: KafkaConnection, name: str) -> dict[str, str]:
    """The topic's effective configuration, as the broker reports it."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = _admin(kafka)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        return {key: entry["value"] for key, entry in described["topic"][name].items()}
    finally:
        admin.close()


def broker_count(kafka: KafkaConnection) -> int:
    """How many brokers the cluster has now (the ones that answer in its metadata)."""
    admin = _admin(kafka)
    try:
        return len(admin.describe_cluster()["brokers"])
    finally:
        admin.close()


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL, in Kafka's own words (as `kafka-acls --list` prints them): `principal` such as `User:relay`,
    `operation` (READ, WRITE, DESCRIBE, ...), `resource` (TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER), `name`, and
    `pattern` (LITERAL: exactly this name; PREFIXED: every name that starts with it). Host: any."""

    principal: str
    operation: str
    resource: str
    name: str
    pattern: str = "LITERAL"

    def acl(self) -> ACL:
        return ACL(principal=self.principal, host="*", operation=ACLOperation[self.operation],
                   permission_type=ACLPermissionType.ALLOW,
                   resource_pattern=ResourcePattern(ResourceType[self.resource], self.name,
                                                    ACLResourcePatternType[self.pattern]))


def create_acls(kafka: KafkaConnection, grants: Sequence[Grant]) -> None:
    """Create the ALLOW ACLs (an ACL that exists already is left as it is: Kafka's own rule); raise the broker's
    error for the first one it refused."""
    if not grants:
        return
    admin = _admin(kafka)
    try:
        result = admin.create_acls([grant.acl() for grant in grants])
        if result["failed"]:
            error = result["failed"][0]
            raise error if isinstance(error, KafkaError) else error()
    finally:
        admin.close()


def describe_acls(kafka: KafkaConnection) -> list[Grant]:
    """Every ACL the cluster holds (DENY ones too, their operation prefixed `DENY `), sorted."""
    admin = _admin(kafka)
    try:
        every = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                          permission_type=ACLPermissionType.ANY,
                          resource_pattern=ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
        found, _ = admin.describe_acls(every)
    finally:
        admin.close()
    return sorted(Grant(principal=acl.principal,
                        operation=("DENY " if acl.permission_type == ACLPermissionType.DENY else "")
                        + acl.operation.name,
                        resource=acl.resource_pattern.resource_type.name, name=acl.resource_pattern.resource_name,
                        pattern=acl.resource_pattern.pattern_type.name) for acl in found)


@dataclass(frozen=True)
class PartitionState:
    """A partition as the cluster describes it: what an operator watches (docs/kafka.md, "What to monitor")."""

    partition: int
    leader: int  # the node leading it; -1 while it has no leader
    replicas: tuple[int, ...]
    in_sync: tuple[int, ...]


def describe_partitions(kafka: KafkaConnection, topics: Sequence[str]) -> dict[str, list[PartitionState]]:
    """Topic -> its partitions' leaders and replicas, by partition number; a topic that does not exist is left out.
    A new admin client each time, so no leader is remembered from before a broker was lost."""
    admin = _admin(kafka)
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    return {topic["name"]: sorted((PartitionState(p["partition_index"], p["leader_id"], tuple(p["replica_nodes"]),
                                                  tuple(p["isr_nodes"])) for p in topic["partitions"]),
                                  key=lambda state: state.partition)
            for topic in described if topic["error_code"] == 0}


@dataclass(frozen=True)
class TransactionState:
    """A transactional producer's transaction as its coordinator describes it."""

    state: str  # "Ongoing" while open; "CompleteCommit", "CompleteAbort", "Empty", ...
    coordinator: int  # the node that coordinates it
    partitions: tuple[tuple[str, int], ...]  # (topic, partition) it has written to


def describe_transaction(kafka: KafkaConnection, transactional_id: str) -> TransactionState | None:
    """The transaction of `transactional_id` (None: the cluster does not know the id yet)."""
    admin = _admin(kafka)
    try:
        seen = admin.describe_transactions([transactional_id])[transactional_id]
    except TransactionalIdNotFoundError:
        return None
    finally:
        admin.close()
    return TransactionState(seen.state, seen.coordinator_id, tuple(sorted(map(tuple, seen.topic_partitions))))


def topic_partitions(kafka: KafkaConnection, name: str) -> list[int]:
    probe = KafkaConsumer(**_options(kafka), request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        return sorted(probe.partitions_for_topic(name) or [])
    finally:
        probe.close()


def producer(
    kafka: KafkaConnection,
    *,
    transactional_id: str | None = None,
    compression_type: str | None = None,
    linger_ms: int = 5,
    batch_size: int = 256 * 1024,
) -> KafkaProducer:
    """An idempotent producer that waits for all in-sync replicas; transactional when given an id."""
    return KafkaProducer(
        **_options(kafka),
        acks="all",
        enable_idempotence=True,
        transactional_id=transactional_id,
        compression_type=compression_type,
        linger_ms=linger_ms,
        batch_size=batch_size,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        allow_auto_create_topics=False,
    )


# How long the group waits for a consumer that stopped heartbeating before it hands that consumer's partitions to the
# others. kafka-python 3 defaults to 45 s (the Java client's default since Kafka 3.0); 10 s (the earlier default)
# moves a crashed projection worker's or subscriber's partitions on four times sooner, and with a heartbeat every
# 3 s still allows three missed heartbeats before a live consumer is taken for dead. The broker accepts 6-1800 s.
GROUP_SESSION_TIMEOUT_MS = 10_000
GROUP_HEARTBEAT_INTERVAL_MS = 3_000
# How long a subscribed consumer may be out of its group (no coordinator known, or no assignment) before its owner
# replaces it (`JoinWatch`). A join legitimately waits for a dead member's session to time out (10 s above) and for
# the live members to rejoin, which takes a few seconds even on a loaded machine: 60 s is six sessions.
GROUP_JOIN_TIMEOUT_S = 60.0
GROUP_JOIN_TIMEOUT_MIN_S, GROUP_JOIN_TIMEOUT_MAX_S = 1.0, 3_600.0


def consumer(
    kafka: KafkaConnection,
    *,
    group_id: str | None,
    topics: Sequence[str] = (),
    isolation_level: str = "read_committed",
    auto_offset_reset: str = "earliest",
    enable_auto_commit: bool = False,
    max_poll_records: int = 2_000,
) -> KafkaConsumer:
    """A consumer with manual commits by default: offsets are committed only after the state that depends on them."""
    client = KafkaConsumer(
        **_options(kafka),
        group_id=group_id,
        isolation_level=isolation_level,
        auto_offset_reset=auto_offset_reset,
        enable_auto_commit=enable_auto_commit,
        max_poll_records=max_poll_records,
        session_timeout_ms=GROUP_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=GROUP_HEARTBEAT_INTERVAL_MS,
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=8 * 1_048_576,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
        allow_auto_create_topics=False,
    )
    if topics:
        client.subscribe(list(topics))
    return client


TRANSACTION_COMMIT_TIMEOUT_S = 30  # a relay transaction holds at most a few MB: seconds when the broker is well
TRANSACTION_ABORT_TIMEOUT_S = 5  # an abort is a courtesy: the next producer's init_transactions aborts anyway


def commit_transaction(client: KafkaProducer, timeout_s: float = TRANSACTION_COMMIT_TIMEOUT_S) -> None:
    """Commit the producer's transaction, waiting at most `timeout_s`; KafkaTimeoutError after that.

    kafka-python's own `commit_transaction()` waits without a limit. A broker that goes away in the middle of a
    commit therefore hangs it, which the relay's outage test caught under load. This is the same call with a bound.
    It uses the client's transaction manager, as `init_transactions` does with `max_block_ms`. After a timeout the
    caller drops the producer. The next producer's `init_transactions` completes or aborts what was pending, so the
    outcome stays all or nothing.
    """
    client.flush(timeout=timeout_s)  # raises KafkaTimeoutError if the records cannot be delivered in time
    result = client._transaction_manager.begin_commit()
    client._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):  # raises the commit's own error if it failed
        raise KafkaTimeoutError(f"the transaction did not commit within {timeout_s}s")


def abort_transaction(client: KafkaProducer, timeout_s: float = TRANSACTION_ABORT_TIMEOUT_S) -> None:
    """Abort the producer's transaction, waiting at most `timeout_s`, for the reason `commit_transaction` gives."""
    result = client._transaction_manager.begin_abort()
    client._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):
        raise KafkaTimeoutError(f"the transaction did not abort within {timeout_s}s")


def end_offsets(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    """Partition -> the offset after its last record (committed or not), as of now."""
    probe = KafkaConsumer(**_options(kafka), request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic) or [])]
        if not partitions:
            raise KafkaError(f"topic {topic} does not exist")
        found = probe.end_offsets(partitions, timeout_ms=REQUEST_TIMEOUT_MS)
        return {tp.partition: offset for tp, offset in found.items()}
    finally:
        probe.close()


def assigned_consumer(kafka: KafkaConnection, topic: str, start: dict[int, int | None], *, group_id: str,
                      max_poll_records: int) -> KafkaConsumer:
    """A read_committed consumer on the given partitions, each positioned at its offset (None: the beginning).

    Partitions are assigned, not subscribed: the caller (a projection runner) decides which partitions it owns and
    where it resumes, from offsets kept with its own state. The group id only names it for `commit_offsets` and for
    Kafka's own tools.
    """
    client = consumer(kafka, group_id=group_id, max_poll_records=max_poll_records)
    assigned = [TopicPartition(topic, p) for p in sorted(start)]
    client.assign(assigned)
    for tp in assigned:
        if start[tp.partition] is None:
            client.seek_to_beginning(tp)
        else:
            client.seek(tp, start[tp.partition])
    return client


# kafka-python's `position()` waits without a limit by default; after a partition's leader is lost it has been seen
# to wait for good (tests/integration/test_kafka_cluster.py). Every call here is bounded by this.
POSITION_TIMEOUT_S = 30


def _position(client: KafkaConsumer, tp: TopicPartition, deadline: float) -> int:
    left_ms = max(1, int((deadline - time.monotonic()) * 1000))
    offset = client.position(tp, timeout_ms=left_ms)
    if offset is None:
        raise KafkaTimeoutError(f"the position on partition {tp.partition} of {tp.topic} is not known "
                                f"after {POSITION_TIMEOUT_S}s (the partition has no reachable leader)")
    return int(offset)


def positions(client: KafkaConsumer, topic: str, partitions: Sequence[int]) -> dict[int, int]:
    """Partition -> the consumer's next offset; KafkaTimeoutError if one is not known within POSITION_TIMEOUT_S."""
    deadline = time.monotonic() + POSITION_TIMEOUT_S
    return {p: _position(client, TopicPartition(topic, p), deadline) for p in partitions}


def readable_ends(client: KafkaConsumer, topic: str) -> dict[int, int]:
    """Partition -> the end offset of every partition of `topic`, as this consumer can read them: for a
    read_committed consumer, the last stable offset (records of a transaction still open are not yet readable)."""
    partitions = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic) or [])]
    found = client.end_offsets(partitions, timeout_ms=REQUEST_TIMEOUT_MS)
    return {tp.partition: offset for tp, offset in found.items()}


def committed_ends(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    """Partition -> its last stable offset as of now (what a read_committed consumer can read up to), asked by a
    client of its own: the answer does not depend on the state of any other consumer."""
    probe = _reader(kafka)
    try:
        return readable_ends(probe, topic)
    finally:
        probe.close()


# How long a consumer may fetch nothing from a partition that has records to read before it is taken for stalled.
STALL_INTERVAL_S = 15.0
# Shorter than a second, a consumer still fetching a slow broker's answer would be replaced again and again; longer
# than an hour, a stalled one would hold its partitions for most of a working day.
STALL_INTERVAL_MIN_S, STALL_INTERVAL_MAX_S = 1.0, 3_600.0


class StallWatch:
    """Notices a consumer that stopped fetching a partition although it has records to read, so that its owner can
    close it and open a new one from its stored positions.

    kafka-python 3.0 can stop fetching a partition for good after the partition's leader moves: the position waits
    for an offset validation (KIP-320) that `poll()` never completes, and every poll returns nothing, without an
    error (reported upstream as dpkp/kafka-python#3106; seen here when a broker of the cluster was killed and came
    back). A new consumer starts without that state and fetches again.

    The rule, for a consumer whose positions did not move: after `interval_s` it asks for the readable end offsets;
    if after another `interval_s` the positions still have not moved and some partition is below the end it had then,
    that partition is stalled. Records that became readable a moment ago do not count: the consumer had a whole
    interval to fetch them. A caught-up consumer asks for the ends once per interval, and is never taken for stalled.
    """

    def __init__(self, ends: Callable[[], dict[int, int]], interval_s: float = STALL_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not STALL_INTERVAL_MIN_S <= interval_s <= STALL_INTERVAL_MAX_S:
            raise ValueError(f"the stall interval must be between {STALL_INTERVAL_MIN_S:g} and "
                             f"{STALL_INTERVAL_MAX_S:g} seconds, not {interval_s!r}")
        self._ends, self.interval_s, self._clock = ends, interval_s, clock
        self.reset()

    def reset(self) -> None:
        self._positions: dict[int, int] | None = None
        self._since = self._clock()
        self._owed: dict[int, int] | None = None  # the readable ends asked for when the positions last stood still

    def stalled(self, positions: dict[int, int]) -> list[int]:
        """The partitions stalled by the rule above, given the consumer's positions now (empty: none)."""
        now = self._clock()
        if positions != self._positions:
            self._positions, self._since, self._owed = dict(positions), now, None
            return []
        if now - self._since < self.interval_s:
            return []
        owed = self._owed
        if owed is not None:
            behind = sorted(p for p, offset in positions.items() if offset < owed.get(p, 0))
            if behind:
                return behind
        try:
            self._owed = self._ends()
        except KafkaError:  # the cluster is away: no answer, no verdict; ask again after another interval
            self._owed = None
        self._since = now
        return []


def in_group(client: KafkaConsumer) -> bool:
    """Whether a subscribed consumer knows its group coordinator and holds a settled assignment (possibly empty): the
    state `poll()` must reach before it fetches anything. Read from the client's coordinator, without side effects."""
    coordinator = client._coordinator
    return coordinator.coordinator_id is not None and bool(coordinator.stable())


class JoinWatch:
    """Notices a subscribed consumer that stays out of its group, so that its owner can close it and open a new one.

    kafka-python's `poll(timeout_ms)` first waits for the group coordinator and the group join, each bounded by the
    poll's timeout, and returns nothing while they are not done. Under heavy load a consumer has been seen never to
    get there: every poll spent its time in `ensure_coordinator_ready` and returned nothing, without an error, until
    a test's 300 s timeout. A new consumer starts with new connections and a new coordinator lookup.

    The rule: out of the group (`in_group` false) for `timeout_s` without a break, counted from `reset` (the
    consumer's opening) or from the moment it was last seen in the group.
    """

    def __init__(self, timeout_s: float = GROUP_JOIN_TIMEOUT_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not GROUP_JOIN_TIMEOUT_MIN_S <= timeout_s <= GROUP_JOIN_TIMEOUT_MAX_S:
            raise ValueError(f"the group join timeout must be between {GROUP_JOIN_TIMEOUT_MIN_S:g} and "
                             f"{GROUP_JOIN_TIMEOUT_MAX_S:g} seconds, not {timeout_s!r}")
        self.timeout_s, self._clock = timeout_s, clock
        self.reset()

    def reset(self) -> None:
        self._out_since: float | None = self._clock()

    def overdue(self, joined: bool) -> bool:
        """Given whether the consumer is in its group now: whether it has been out of it for `timeout_s` or longer."""
        now = self._clock()
        if joined:
            self._out_since = None
            return False
        if self._out_since is None:
            self._out_since = now
        return now - self._out_since >= self.timeout_s


def committed_offsets(client: KafkaConsumer, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
    """Partition -> the next offset the consumer's group has committed for it (None: never committed)."""
    return {p: client.committed(TopicPartition(topic, p), timeout_ms=REQUEST_TIMEOUT_MS) for p in partitions}


def commit_offsets(client: KafkaConsumer, topic: str, offsets: dict[int, int], *, wait: bool = True) -> None:
    """Commit next offsets to the consumer group. Without `wait`, the commit is sent and its answer (or error) is
    dropped: for a client that resumes from its own copy of the offsets and commits only for Kafka's tools."""
    committed = {TopicPartition(topic, p): OffsetAndMetadata(offset, "", -1) for p, offset in offsets.items()}
    if wait:
        client.commit(committed)
    else:
        client.commit_async(committed)


class _OnAssigned(ConsumerRebalanceListener):
    def __init__(self, assigned: Callable[[list[int]], None], revoked: Callable[[list[int]], None]) -> None:
        self.assigned, self.revoked = assigned, revoked

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned(sorted(tp.partition for tp in assigned))

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.revoked(sorted(tp.partition for tp in revoked))


def subscribe(client: KafkaConsumer, topic: str, *, on_assigned: Callable[[list[int]], None],
              on_revoked: Callable[[list[int]], None]) -> None:
    """Join the consumer's group on `topic`; the callbacks get partition numbers when the group rebalances."""
    client.subscribe([topic], listener=_OnAssigned(on_assigned, on_revoked))


def seek(client: KafkaConsumer, topic: str, partition: int, where: int | str) -> None:
    """Move one assigned partition to an offset, or to "beginning" or "end"."""
    tp = TopicPartition(topic, partition)
    if where == "beginning":
        client.seek_to_beginning(tp)
    elif where == "end":
        client.seek_to_end(tp)
    else:
        client.seek(tp, int(where))


def offsets_for_time(client: KafkaConsumer, topic: str, partitions: Sequence[int], timestamp_ms: int
                     ) -> dict[int, int | None]:
    """Per partition, the first offset whose record timestamp is at or after `timestamp_ms` (None: none is)."""
    found = client.offsets_for_times({TopicPartition(topic, p): timestamp_ms for p in partitions})
    return {tp.partition: (value.offset if value is not None else None) for tp, value in found.items()}


def _reader(kafka: KafkaConnection, **options: Any) -> KafkaConsumer:
    """A consumer outside any group, reading committed records only and committing nothing: what auditors read with."""
    return KafkaConsumer(**_options(kafka), group_id=None, isolation_level="read_committed",
                         enable_auto_commit=False, max_poll_records=5_000, request_timeout_ms=REQUEST_TIMEOUT_MS,
                         **options)


def read_to_end(
    kafka: KafkaConnection,
    topic: str,
    *,
    partitions: Sequence[int] | None = None,
    rounds_max: int = 600,
    poll_ms: int = 500,
) -> Iterator[Any]:
    """Every committed record of a topic (or some of its partitions), from the start to the end as of now.

    No consumer group: nothing is committed, so auditors and the relay can read without side effects. Yields
    records in partition order; stops at the end offsets taken when it began, or after `rounds_max` empty polls.
    """
    client = _reader(kafka, fetch_max_bytes=52_428_800, max_partition_fetch_bytes=8 * 1_048_576)
    try:
        numbers = list(partitions) if partitions is not None else sorted(client.partitions_for_topic(topic) or [])
        assigned = [TopicPartition(topic, p) for p in numbers]
        client.assign(assigned)
        client.seek_to_beginning(*assigned)
        ends = client.end_offsets(assigned, timeout_ms=REQUEST_TIMEOUT_MS)
        pending = {tp for tp in assigned if ends[tp] > 0}
        empty_rounds = 0
        while pending and empty_rounds < rounds_max:
            batches = client.poll(timeout_ms=poll_ms)
            empty_rounds = 0 if batches else empty_rounds + 1
            for records in batches.values():
                yield from records
            # Transaction markers take offsets too, so "done" is the consumer's position, not the last record seen.
            deadline = time.monotonic() + POSITION_TIMEOUT_S
            pending = {tp for tp in pending if _position(client, tp, deadline) < ends[tp]}
        if pending:
            raise TimeoutError(f"could not read {topic} to its end: "
                               f"partitions {sorted(tp.partition for tp in pending)}")
    finally:
        client.close()


def read_partition(
    kafka: KafkaConnection,
    topic: str,
    partition: int,
    offset: int,
    *,
    follow: bool = False,
    stop: Callable[[], bool] = lambda: False,
    rounds_max: int = 600,
    poll_ms: int = 500,
) -> Iterator[list[Any]]:
    """The committed records of one partition from `offset` on, a batch at a time, read_committed, no group.

    Without `follow`, it stops at the partition's end as of when it began (or raises TimeoutError after `rounds_max`
    empty polls before it). With `follow`, it keeps polling until `stop()` is true, and yields an empty batch after
    every poll that brought nothing, so that its caller is never kept waiting longer than `poll_ms` for its turn.
    """
    client = _reader(kafka)
    try:
        tp = TopicPartition(topic, partition)
        if partition not in (client.partitions_for_topic(topic) or set()):
            # A topic this principal may not describe looks absent: asking for its offsets gets the broker's refusal.
            client.end_offsets([tp], timeout_ms=REQUEST_TIMEOUT_MS)
            raise KafkaError(f"topic {topic} has no partition {partition}")
        client.assign([tp])
        client.seek(tp, offset)
        end = client.end_offsets([tp], timeout_ms=REQUEST_TIMEOUT_MS)[tp]
        empty_rounds = 0
        while not stop():
            if not follow:
                # Transaction markers take offsets too, so "done" is the consumer's position, not the last record.
                if _position(client, tp, time.monotonic() + POSITION_TIMEOUT_S) >= end:
                    return
                if empty_rounds >= rounds_max:
                    raise TimeoutError(f"could not read partition {partition} of {topic} to its end")
            records = client.poll(timeout_ms=poll_ms).get(tp, [])
            empty_rounds = 0 if records else empty_rounds + 1
            if not follow:
                records = [record for record in records if record.offset < end]  # not what came since
            if records or follow:
                yield records
    finally:
        client.close()


LAST_RECORDS_WINDOW_FIRST = 16  # offsets read back from a partition's end to find its last record; then 4x wider


def last_records(
    kafka: KafkaConnection,
    topic: str,
    *,
    rounds_max: int = 600,
    poll_ms: int = 500,
) -> dict[int, Any]:
    """Partition -> its last committed record as of now (None for a partition without one), read_committed.

    Reads a partition back from its end only as far as it must: the last offsets can be transaction markers or
    records of aborted transactions, which a read_committed consumer never returns, so a window that held no record
    is widened (4x) until it reaches the partition's beginning. No consumer group: nothing is committed.
    """
    client = _reader(kafka)
    try:
        assigned = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic) or [])]
        if not assigned:
            raise KafkaError(f"topic {topic} does not exist")
        client.assign(assigned)
        begins = client.beginning_offsets(assigned, timeout_ms=REQUEST_TIMEOUT_MS)
        ends = client.end_offsets(assigned, timeout_ms=REQUEST_TIMEOUT_MS)
        last: dict[int, Any] = {tp.partition: None for tp in assigned}
        window = LAST_RECORDS_WINDOW_FIRST
        pending = [tp for tp in assigned if ends[tp] > begins[tp]]
        while pending:
            for tp in pending:
                client.seek(tp, max(begins[tp], ends[tp] - window))
            reading = set(pending)
            empty_rounds = 0
            while reading and empty_rounds < rounds_max:
                batches = client.poll(timeout_ms=poll_ms)
                empty_rounds = 0 if batches else empty_rounds + 1
                for tp, records in batches.items():
                    before_end = [record for record in records if record.offset < ends[tp]]  # not what came since
                    if tp in reading and before_end:
                        last[tp.partition] = before_end[-1]
                deadline = time.monotonic() + POSITION_TIMEOUT_S
                reading = {tp for tp in reading if _position(client, tp, deadline) < ends[tp]}
            if reading:
                raise TimeoutError(f"could not read {topic} to its end: partitions "
                                   f"{sorted(tp.partition for tp in reading)}")
            pending = [tp for tp in pending if last[tp.partition] is None and ends[tp] - window > begins[tp]]
            window *= 4
        return last
    finally:
        client.close()


def _main(argv: list[str]) -> int:
    # `python -m ledger.publishing.kafka_client wait TIMEOUT_S`: used by scripts/kafka start. It connects as the
    # LEDGER_KAFKA_* settings of its environment say (scripts/kafka gives it the administrator's).
    match argv:
        case ["wait", timeout_s]:
            try:
                wait_until_ready(Settings().kafka(), float(timeout_s))
            except (TimeoutError, ConfigurationError, KafkaError) as error:
                print(f"{type(error).__name__}: {error}", file=sys.stderr)
                return 1
            return 0
        case _:
            print("usage: python -m ledger.publishing.kafka_client wait TIMEOUT_S", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
