"""Prints the version and the data file paths of a Delta table as delta-rs loads it, as JSON.

usage: dr_files.py TABLE
Prints {"version": v, "files": [relative paths, sorted]}.
"""
import json
import sys

import pyarrow as pa
from deltalake import DeltaTable

dt = DeltaTable(sys.argv[1])
adds = pa.table(dt.get_add_actions(flatten=True)).to_pydict()
print(json.dumps({"version": dt.version(), "files": sorted(adds["path"])}))
