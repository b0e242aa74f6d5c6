"""The main job that `scripts/demo` runs: a small Bekasi Kota branch scenario, written and then sent through Kafka.

1. It writes the scenario through the ledger's commands into a fresh SQLite event store: a company and the city
   government register; the government enrolls its 7,000 contract staff (TKK) in one command and pays a quarter
   from the regional budget; a company worker dies in a work accident and the JKK benefit goes to her husband.
2. It reads the store's notification log and produces every event to a topic of its own (acks=all, idempotent).
3. It consumes the topic back with a fresh read_committed consumer group and checks that what came back is what
   the store holds, event for event.

Until the relay lands (issue 4) step 2 is a plain publisher here; the relay will replace it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from ledger import kafka_client
from ledger.application import Ledger
from ledger.commands import (
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
)
from ledger.settings import Settings

TKK_STAFF = 7_000
NOTIFICATION_PAGE_SIZE = 1_000
POLL_TIMEOUT_MS = 1_000
POLL_ROUNDS_MAX = 120
CITY_NPP, COMPANY_NPP = "10000017", "10004430"


def tkk_rows(count: int) -> list[MemberRow]:
    # NIK 327501 (Bekasi), born 15 May 1985..1994, serial from the row number; KPJ from 90000000001 up.
    return [MemberRow(kpj=f"{90_000_000_001 + i}", nik=f"3275011505{85 + i % 10:02d}{i % 9_999 + 1:04d}",
                      name=f"Tenaga Kerja Kontrak {i + 1}", birth_date=date(1985 + i % 10, 5, 15),
                      wage=4_500_000 + (i % 5) * 100_000) for i in range(count)]


def write_scenario(app: Ledger) -> list[str]:
    lines = []

    def run(command: Any) -> dict[str, Any]:
        result = app.execute(command)
        shown = {k: v for k, v in result.items() if k not in ("command", "command_id", "repeated", "kpjs")}
        lines.append(f"  {command.NAME:<18} {json.dumps(shown)[:150]}")
        return result

    run(RegisterEmployer.build(npp=CITY_NPP, name="Pemerintah Kota Bekasi", branch="BEKASI-KOTA", kind="government",
                               risk_class="very-low", registered_on=date(2017, 9, 1)))
    run(RegisterEmployer.build(npp=COMPANY_NPP, name="PT Bekasi Baja", branch="BEKASI-KOTA", kind="company",
                               risk_class="high", registered_on=date(2016, 1, 4)))
    run(EnrollMembers.build(npp=CITY_NPP, effective=date(2017, 10, 1), members=tkk_rows(TKK_STAFF)))
    worker = MemberRow(kpj="17000000001", nik="3275015203880002", name="Siti Rahayu", birth_date=date(1988, 3, 12),
                       wage=6_000_000)
    run(EnrollMember.build(member=worker, npp=COMPANY_NPP, effective=date(2016, 2, 1)))
    run(PayContribution.build(npp=COMPANY_NPP, month="2017-07", months=1, paid_on=date(2017, 8, 10)))
    run(PayContribution.build(npp=CITY_NPP, month="2017-10", months=3, paid_on=date(2017, 10, 12),
                              payer="APBD Kota Bekasi"))
    run(ExitMember.build(kpj=worker.kpj, reason="work-death", exit_date=date(2017, 8, 21)))
    run(PayClaim.build(kpj=worker.kpj, program="JKK", kind="death", incident_date=date(2017, 8, 21),
                       paid_on=date(2017, 9, 20), beneficiary="Ahmad Rahayu (husband)"))
    return lines


def stored_notifications(app: Ledger) -> list[Any]:
    notifications, start = [], 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=NOTIFICATION_PAGE_SIZE)
        notifications.extend(page)
        if len(page) < NOTIFICATION_PAGE_SIZE:
            return notifications
        start = page[-1].id + 1


def run_demo(settings: Settings) -> int:
    db = Path(settings.sqlite_path)
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    app = Ledger(env=settings.model_copy(update={"persistence": "sqlite"}).eventsourcing_env())

    print(f"1. Writing the Bekasi Kota scenario into {db}")
    for line in write_scenario(app):
        print(line)

    notifications = stored_notifications(app)
    topic = f"{settings.kafka_topic_prefix}.demo.{uuid.uuid4().hex[:8]}"
    bootstrap = settings.bootstrap_servers
    print(f"2. Producing {len(notifications):,} stored events to Kafka topic {topic} at {','.join(bootstrap)}")
    kafka_client.ensure_topic(bootstrap, topic, partitions=settings.kafka_partitions,
                              config=kafka_client.RETENTION_FOREVER)
    producer = kafka_client.producer(bootstrap)
    for n in notifications:
        producer.send(topic, key=str(n.originator_id).encode(), value=n.state,
                      headers=[("topic", n.topic.encode()), ("position", str(n.id).encode())])
    producer.flush(timeout=60)
    producer.close()

    print("3. Consuming it back with a fresh read_committed consumer group")
    consumer = kafka_client.consumer(bootstrap, group_id=f"demo-{uuid.uuid4().hex[:8]}", topics=[topic])
    received: dict[int, bytes] = {}
    for _ in range(POLL_ROUNDS_MAX):
        for records in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).values():
            for record in records:
                received[int(dict(record.headers)["position"])] = record.value
        if len(received) >= len(notifications):
            break
    consumer.close()

    # Command records (idempotency) have no contract type: they are internal and the relay will not publish them.
    kinds = Counter(json.loads(value).get("schema_type", "(command record)") for value in received.values())
    identical = all(received.get(n.id) == n.state for n in notifications)
    print(f"   received {len(received):,} of {len(notifications):,} events; "
          f"identical to the store: {'yes' if identical else 'NO'}")
    print("   by kind: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items())))
    return 0 if identical and len(received) == len(notifications) else 1
