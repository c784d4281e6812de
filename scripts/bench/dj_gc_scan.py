"""dj.gc's dry run on one schema, as a user would call it (datajoint 2.3.5).

Run from the folder holding the benchmark's datajoint.json:

    python dj_gc_scan.py SCHEMA [STORE]

Prints dj.gc's stats as one JSON line, orphan lists left out.
"""

import json
import sys
from pathlib import Path

import datajoint as dj

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "compat"))
import mariadb_as_mysql  # noqa: E402,F401  (patches DataJoint on import)

schema_name = sys.argv[1]
store = sys.argv[2] if len(sys.argv) > 2 else "main"
schema = dj.Schema(schema_name, create_schema=False, create_tables=False)
stats = dj.gc.GarbageCollector(schema, store=store).collect(dry_run=True)
print(json.dumps({k: v for k, v in stats.items() if not isinstance(v, list)}))
