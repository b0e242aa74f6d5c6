"""The auditor's tools, which read Kafka, not the ledger's database (`ledger audit ...`, docs/audit.md).

Every tool reads the events topic read_committed with no consumer group (it changes nothing); all but `reconcile`
replay it from the beginning. A module per tool, each saying what it checks: `topic.py` (reading the topic),
`verify.py` (positions and hash chains), `history.py` (a timeline), `recount.py` (an independent recount, and
`as-of` against the projections), `export.py` (export and verify-export), `reconcile.py` (Kafka against the event
store).
"""
