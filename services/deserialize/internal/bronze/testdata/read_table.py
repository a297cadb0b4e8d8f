"""Reads a Delta table with delta-rs and prints its rows as JSON, one list sorted as read.

usage: read_table.py TABLE
Binary values are printed as hex, timestamps as Unix microseconds, dates as ISO text.
"""
import datetime
import json
import sys

from deltalake import DeltaTable


def value(v):
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            raise SystemExit("timestamp without time zone: %r" % v)
        delta = v - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


dt = DeltaTable(sys.argv[1])
rows = [{k: value(v) for k, v in r.items()} for r in dt.to_pyarrow_table().to_pylist()]
sys.stdout.write(json.dumps({"version": dt.version(), "rows": rows}))
sys.stdout.flush()
