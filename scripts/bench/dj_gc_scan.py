"""dj.gc's dry run on one schema, as a user would call it (datajoint 2.3.5).

Run from the folder holding the benchmark's datajoint.json:

    python dj_gc_scan.py SCHEMA [STORE]

Prints dj.gc's stats as one JSON line, orphan lists left out.
"""

import json
import sys

import datajoint as dj
from datajoint.adapters.mysql import MySQLAdapter

# DataJoint 2.3 reads MariaDB's JSON columns back as `longtext`; MySQL 8
# reports `json`. Report what MySQL would (as tests/compat/dj_pipeline.py does).
_parse_column_info = MySQLAdapter.parse_column_info


def _parse_column_info_as_mysql(self, row):
    info = _parse_column_info(self, row)
    if info["type"] == "longtext" and (info["comment"] or "").startswith(":<"):
        info["type"] = "json"
    return info


MySQLAdapter.parse_column_info = _parse_column_info_as_mysql

schema_name = sys.argv[1]
store = sys.argv[2] if len(sys.argv) > 2 else "main"
schema = dj.Schema(schema_name, create_schema=False, create_tables=False)
stats = dj.gc.GarbageCollector(schema, store=store).collect(dry_run=True)
print(json.dumps({k: v for k, v in stats.items() if not isinstance(v, list)}))
