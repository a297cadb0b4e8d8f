"""Rows of a pyarrow table as JSON values in the form plantlake's reader.RecordRows uses.

Timestamps with a zone: "YYYY-MM-DDTHH:MM:SS.ffffffZ"; without: no "Z"; dates "YYYY-MM-DD";
binary as base64; decimals as numbers; maps with string keys as objects.
"""
import base64
import datetime
import decimal
import math

import pyarrow as pa


def _value(v, t):
    if v is None:
        return None
    if pa.types.is_timestamp(t):
        if isinstance(v, datetime.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                return v.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
            return v.strftime("%Y-%m-%dT%H:%M:%S.%f") + ("Z" if t.tz else "")
    if pa.types.is_date(t):
        return v.isoformat()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return base64.b64encode(v).decode()
    if pa.types.is_decimal(t):
        return float(v) if not isinstance(v, decimal.Decimal) else str(v)
    if pa.types.is_floating(t):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if pa.types.is_struct(t):
        return {t.field(i).name: _value(v.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_map(t):
        if pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type):
            return {k: _value(x, t.item_type) for k, x in v}
        return [{"key": _value(k, t.key_type), "value": _value(x, t.item_type)} for k, x in v]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_value(x, t.value_type) for x in v]
    return v


def rows(table):
    """Returns the rows of a pyarrow table as a list of dicts of JSON values."""
    out = []
    cols = table.column_names
    types = [table.schema.field(c).type for c in cols]
    pyl = table.to_pylist()
    for r in pyl:
        out.append({c: _value(r[c], t) for c, t in zip(cols, types)})
    return out
