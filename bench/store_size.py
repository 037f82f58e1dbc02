"""Bytes a `MemoryBackend` holds per record, for the reports."""

import sys

from fastapi_session_deps import MemoryBackend


def store_bytes_per_record(store: MemoryBackend) -> float:
    """Everything a MemoryBackend holds for its records, per record: its two tables, each
    key, each record's fields (names and values) and expiry."""
    records, expiry = store._records, store._expiry
    total = sys.getsizeof(records) + sys.getsizeof(expiry)
    for key, fields in records.items():
        total += sys.getsizeof(key) + sys.getsizeof(fields) + sys.getsizeof(expiry[key])
        total += sum(sys.getsizeof(n) + sys.getsizeof(v) for n, v in fields.items())
    return total / len(records)
