"""Reads a Delta table with delta-rs and prints its rows as JSON.

usage: read_rows.py TABLE [COLUMN...]
Binary values are printed as hex, timestamps as Unix microseconds, dates as ISO text.
"""
import datetime
import json
import sys

from deltalake import DeltaTable


def value(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            raise SystemExit("timestamp without time zone: %r" % v)
        d = v - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (d.days * 86400 + d.seconds) * 1000000 + d.microseconds
    if isinstance(v, datetime.date):
        return v.isoformat()
    return v


dt = DeltaTable(sys.argv[1])
cols = sys.argv[2:] or None
table = dt.to_pyarrow_table(columns=cols)
rows = [{k: value(v) for k, v in r.items()} for r in table.to_pylist()]
sys.stdout.write(json.dumps({"version": dt.version(), "rows": rows}))
sys.stdout.flush()
