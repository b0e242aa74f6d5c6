"""The signed log over the events: pure building blocks, no I/O.

`merkle.py` is the RFC 6962 / RFC 9162 Merkle tree (hashes, proofs, their verification, the frontier the relay keeps),
`note.py` the C2SP signed-note format with Ed25519 keys, and `checkpoint.py` the C2SP checkpoint body, cosignature
and proof bundle built on them. The relay, `ledger audit` and the witness do the reading and writing; nothing here
touches Kafka, a file or the clock (a cosignature's time is passed in).
"""
