"""What the relay puts on the events topic for each stored event: key, value (the envelope) and headers.

Envelope: event_id, type, version, aggregate_id, aggregate_version, position (1, 2, 3, ... over the published
events, contiguous), effective_date, recorded_at, branch, prev_hash, hash, and data: the event's public JSON.
Personal data never leaves the store: `data` omits the fields an event marks personal (the NIK and the name) and
keeps the keyed NIK hash (`nik_hmac`) that links one person's memberships without revealing the NIK.
"""

from __future__ import annotations

from typing import Any

import orjson

from ledger.events import public_data


def envelope(notification: Any, position: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of one stored event. The stored JSON already holds its hashes; personal fields go."""
    stored = orjson.loads(notification.state)
    meta = stored["meta"]
    timestamp = stored["timestamp"]
    recorded_at = timestamp["_data_"] if isinstance(timestamp, dict) else timestamp
    aggregate_id = str(notification.originator_id)
    value = {
        "event_id": f"{aggregate_id}.{notification.originator_version}",  # as ledger.domain.event_id, done once
        "type": stored["schema_type"],
        "version": stored["schema_version"],
        "aggregate_id": aggregate_id,
        "aggregate_version": notification.originator_version,
        "position": position,
        "effective_date": meta["effective_date"],
        "recorded_at": recorded_at,
        "branch": meta["branch"],
        "prev_hash": meta["prev_hash"],
        "hash": meta["hash"],
        "data": public_data(stored["schema_type"], stored["data"], stored["schema_version"]),
    }
    return aggregate_id.encode(), orjson.dumps(value), record_headers(stored["schema_type"], stored["schema_version"])


def record_headers(event_type: str, version: int) -> list[tuple[str, bytes]]:
    """The headers of an event's record: what consumers route on without parsing the value."""
    return [("type", event_type.encode()), ("version", str(version).encode())]
