"""Reads a Delta table with delta-rs and prints its rows, and checks its stats, as JSON.

usage: dr_read.py TABLE [--version V] [--timestamp ISO8601] [--check-stats]
                  [--filter COLUMN OP VALUE]...   (rows through delta-rs's pyarrow dataset)
Prints {"version": v, "rows": [...], "stats": {"checked": n, "violations": [...]}}.
"""
import argparse
import datetime
import json
import os
import sys
import urllib.parse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

import deltarows


def _leaves(table, prefix=""):
    """Yields (dotted name, array) of leaf columns under structs (no lists or maps)."""
    def walk(name, arr):
        t = arr.type
        if pa.types.is_struct(t):
            for i in range(t.num_fields):
                child = pc.struct_field(arr, [i])
                # A field under a null struct is null.
                yield from walk(name + "." + t.field(i).name, child)
        else:
            yield name, arr
    for name in table.column_names:
        yield from walk(name, table.column(name))


def check_stats(dt, root):
    """Compares each add's stats with the values in its file."""
    adds = pa.table(dt.get_add_actions(flatten=True)).to_pylist()
    checked, violations = 0, []
    for a in adds:
        path = a["path"]
        # add.path is a URI: Hive escapes are percent-encoded once more.
        data = pq.read_table(root + "/" + urllib.parse.unquote(path))
        if a.get("num_records") is not None:
            checked += 1
            if a["num_records"] != data.num_rows:
                violations.append(f"{path}: num_records {a['num_records']} != {data.num_rows}")
        for name, arr in _leaves(data):
            nulls = arr.null_count
            key = "null_count." + name
            if key in a and a[key] is not None:
                checked += 1
                if a[key] != nulls:
                    violations.append(f"{path}: {key} {a[key]} != {nulls}")
            if pa.types.is_binary(arr.type) or pa.types.is_list(arr.type) or pa.types.is_map(arr.type) or pa.types.is_boolean(arr.type):
                continue
            if nulls == len(arr):
                continue
            mm = pc.min_max(arr)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            smin, smax = a.get("min." + name), a.get("max." + name)
            if smin is not None:
                checked += 1
                if isinstance(smin, datetime.datetime) and isinstance(lo, datetime.datetime):
                    lo = lo if lo.tzinfo else lo.replace(tzinfo=datetime.timezone.utc)
                    smin = smin if smin.tzinfo else smin.replace(tzinfo=datetime.timezone.utc)
                if not smin <= lo:
                    violations.append(f"{path}: min.{name} {smin!r} > data min {lo!r}")
            if smax is not None:
                checked += 1
                if isinstance(smax, datetime.datetime) and isinstance(hi, datetime.datetime):
                    hi = hi if hi.tzinfo else hi.replace(tzinfo=datetime.timezone.utc)
                    smax = smax if smax.tzinfo else smax.replace(tzinfo=datetime.timezone.utc)
                if not smax >= hi:
                    violations.append(f"{path}: max.{name} {smax!r} < data max {hi!r}")
    return {"checked": checked, "violations": violations}


def _compare(t, col, op, raw):
    """Builds the dataset expression "col op value", the value parsed for the column's type."""
    import pyarrow.dataset as pds
    if pa.types.is_timestamp(t):
        v = pa.scalar(datetime.datetime.fromisoformat(raw.replace("Z", "+00:00")), t)
    elif pa.types.is_date(t):
        v = pa.scalar(datetime.date.fromisoformat(raw), t)
    elif pa.types.is_integer(t):
        v = pa.scalar(int(raw), t)
    elif pa.types.is_floating(t):
        v = pa.scalar(float(raw), t)
    else:
        v = pa.scalar(raw, t)
    f = pds.field(col)
    return {"=": f == v, "!=": f != v, "<": f < v, "<=": f <= v, ">": f > v, ">=": f >= v}[op]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--version", type=int)
    ap.add_argument("--timestamp")
    ap.add_argument("--check-stats", action="store_true")
    ap.add_argument("--filter", nargs=3, action="append", metavar=("COLUMN", "OP", "VALUE"))
    args = ap.parse_args()
    dt = DeltaTable(args.table, version=args.version)
    if args.timestamp:
        dt.load_as_version(datetime.datetime.fromisoformat(args.timestamp.replace("Z", "+00:00")))
    if args.filter:
        ds = dt.to_pyarrow_dataset()
        expr = None
        for col, op, raw in args.filter:
            e = _compare(ds.schema.field(col).type, col, op, raw)
            expr = e if expr is None else expr & e
        table = ds.to_table(filter=expr)
    else:
        table = dt.to_pyarrow_table()
    out = {"version": dt.version(), "rows": deltarows.rows(table)}
    if args.check_stats:
        out["stats"] = check_stats(dt, args.table)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
    # Leave without interpreter teardown: delta-rs and Arrow native thread pools torn down at
    # exit can abort the process ("terminate called without an active exception",
    # delta-io/delta-rs#2184) after all the output was written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
