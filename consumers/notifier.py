"""A claims-paid notifier: one notification per paid claim, exactly once, in an outbox a mailer or SMS gateway drains.

It subscribes to `ClaimPaid` through the SDK. Each notification is written to the `notifications` table through the
SDK's idempotence transaction, in the same SQLite file that records the processed event ids. So a redelivered claim
(after a crash, a rebalance, or a replay from the beginning) never notifies twice. `claim_id` is the table's key as
well: even a second event about the same claim could not add a second row.

    ledger consumers notifier --db notifier.db [--start beginning] [--idle-exit 10]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from consumers.sdk import Delivery, ProcessedEvents, Subscriber
from ledger.events import Beneficiary, ClaimPaid
from ledger.settings import KafkaConnection

GROUP_ID = "claims-notifier"
OUTBOX_DDL = ("CREATE TABLE IF NOT EXISTS notifications (claim_id TEXT PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
              "kpj TEXT NOT NULL, program TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL, "
              "beneficiary TEXT NOT NULL, paid_on TEXT NOT NULL, message TEXT NOT NULL, sent_at TEXT)")


# The beneficiary's relationship to the member, as the message names it: the event carries no name.
BENEFICIARY_WORDS = {Beneficiary.SELF: "peserta", Beneficiary.SPOUSE: "pasangan peserta",
                     Beneficiary.CHILD: "anak peserta", Beneficiary.PARENT: "orang tua peserta",
                     Beneficiary.OTHER_HEIR: "ahli waris peserta"}


def message(event: ClaimPaid) -> str:
    """The text the member (or heir) receives, in Indonesian, amounts in whole rupiah."""
    amount = f"{event.amount:,}".replace(",", ".")  # Indonesian digit grouping: Rp1.234.567
    return (f"BPJS Ketenagakerjaan: klaim {event.program.value} ({event.kind.value}) peserta {event.kpj} sebesar "
            f"Rp{amount} telah dibayarkan kepada {BENEFICIARY_WORDS[event.beneficiary]} "
            f"pada {event.paid_on.isoformat()}.")


def notifier(kafka: KafkaConnection, topic: str, db: Path, *, group_id: str = GROUP_ID,
             start: str | datetime = "committed", log: Callable[[str], None] = lambda _: None) -> Subscriber:
    processed = ProcessedEvents(db)
    processed.connection.execute(OUTBOX_DDL)
    subscriber = Subscriber(kafka, topic=topic, group_id=group_id, start=start, processed=processed, log=log)

    @subscriber.on(ClaimPaid)
    def notify(event: ClaimPaid, delivery: Delivery) -> None:
        assert delivery.tx is not None  # a subscriber with a ProcessedEvents hands every handler its transaction
        delivery.tx.execute(
            "INSERT INTO notifications (claim_id, event_id, kpj, program, kind, amount, beneficiary, paid_on, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event.claim_id, delivery.envelope.event_id, event.kpj, event.program.value, event.kind.value,
             event.amount, event.beneficiary.value, event.paid_on.isoformat(), message(event)))

    return subscriber
