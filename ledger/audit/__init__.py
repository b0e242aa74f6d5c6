"""The auditor's tools, which read Kafka, not the ledger's database: `ledger audit verify`, `history`, `as-of`, `export`,
and `reconcile`, which compares Kafka with the database.

Every tool reads the events topic read_committed with no consumer group (it changes nothing); all but `reconcile`
replay it from the beginning.

Verification checks what a tamperer would have to break:
1. positions are exactly 1..N: nothing lost, nothing duplicated;
2. within each partition, positions increase: nothing reordered;
3. per aggregate, versions are 1, 2, 3, ... and every record's hash is the SHA-256 chain over its predecessor
   (`ledger.events.chain_hash`): nothing altered, removed or inserted in an aggregate's history.
It reports the number of events checked and, on failure, the first breach with its partition, offset and event.

`history` prints the events of one member, employer or branch as a timeline. `as-of` recomputes every member's JHT
balance and every branch's figures from the envelopes alone, with code of its own (a second implementation, so that a
bug or a tampered row in the projections shows as a difference), and compares them with the projections' answers.
`export` writes a period's events and recomputed totals with a manifest of hashes; `verify-export` checks a bundle.
`reconcile` compares the event store's head, the relay's saved state and the topic's last record, and names every way
they disagree: an intact topic can still stop short of the store, or end past the relay's state.

The code: `topic.py` (reading the topic), `verify.py`, `history.py`, `recount.py` (the recount and as-of), `export.py`
(export and verify-export), `reconcile.py`.
"""
