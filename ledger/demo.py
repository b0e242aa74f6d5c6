"""The main job that `scripts/demo` runs: a small Bekasi Kota branch scenario, written and then sent through Kafka.

1. It writes the scenario through the ledger's commands into a fresh SQLite event store: a company and the city
   government register; the government enrolls its 7,000 contract staff (TKK) in one command and pays a quarter
   from the regional budget; a company worker dies in a work accident and the JKK benefit goes to her husband.
2. The relay publishes every event to a topic of its own, exactly once, in Kafka transactions.
3. The auditor's check replays that topic from Kafka alone: positions 1..N, every hash chain intact.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger import audit, kafka_client, relay
from ledger.application import Ledger
from ledger.cli import describe
from ledger.generator import member_rows
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
CITY_NPP, COMPANY_NPP = "10000017", "10004430"


def write_scenario(app: Ledger) -> list[str]:
    lines = []

    def run(command: Any) -> dict[str, Any]:
        result = app.execute(command)
        lines.append(f"  {describe(result)}")
        return result

    run(RegisterEmployer.build(npp=CITY_NPP, name="Pemerintah Kota Bekasi", branch="BEKASI-KOTA", kind="government",
                               risk_class="very-low", registered_on=date(2017, 9, 1)))
    run(RegisterEmployer.build(npp=COMPANY_NPP, name="PT Bekasi Baja", branch="BEKASI-KOTA", kind="company",
                               risk_class="high", registered_on=date(2016, 1, 4)))
    run(EnrollMembers.build(npp=CITY_NPP, effective=date(2017, 10, 1), members=member_rows(
        90_000_000_001, TKK_STAFF, name="Tenaga Kerja Kontrak", first_birth_year=1985, wage_base=4_500_000,
        wage_step=100_000, wage_steps=5)))
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


def run_demo(settings: Settings) -> int:
    db = Path(settings.sqlite_path)
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    app = Ledger(env=settings.model_copy(update={"persistence": "sqlite"}).eventsourcing_env(),
                 nik_key=settings.nik_hmac_key.get_secret_value().encode())

    print(f"1. Writing the Bekasi Kota scenario into {db}")
    for line in write_scenario(app):
        print(line)

    # Each demo run starts a new store, so it gets topics (and a relay identity) of its own.
    run_id = uuid.uuid4().hex[:8]
    topics = relay.Topics.for_prefix(f"{settings.kafka_topic_prefix}.demo-{run_id}")
    bootstrap = settings.bootstrap_servers
    expected = sum(1 for _ in app.stored_contract_notifications())
    print(f"2. Relaying {expected:,} events to {topics.events} at {','.join(bootstrap)} (exactly once, in Kafka "
          f"transactions)")
    relay.init_topics(bootstrap, topics, settings.kafka_partitions)
    publisher = relay.Relay(app.recorder, bootstrap, topics, transactional_id=f"demo-relay-{run_id}")
    started = time.perf_counter()
    published = publisher.run()
    publisher.close()
    print(f"   published {published:,} events in {time.perf_counter() - started:.1f}s; "
          f"last position {publisher.state.position:,}")

    print("3. Auditing the topic from Kafka alone (ledger audit verify)")
    report = audit.verify_topic(bootstrap, topics.events)
    print(f"   checked {report.events:,} events: positions {'contiguous' if report.positions_ok else 'NOT contiguous'}"
          f" 1..{report.last_position or 0:,}, hash chains {'intact' if report.chains_ok else 'BROKEN'}")
    kinds = Counter(orjson.loads(r.value)["type"] for r in kafka_client.read_to_end(bootstrap, topics.events))
    print("   by type: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items())))
    return 0 if report.ok and report.events == expected == published else 1
