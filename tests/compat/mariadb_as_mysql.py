"""Importing this makes datajoint 2.3 treat MariaDB's JSON columns as MySQL's.

DataJoint 2.3 reads MariaDB's JSON columns back as `longtext` and then fails
to insert into them; MySQL 8 reports `json`. This reports what MySQL would,
for the compatibility test (dj_pipeline.py) and the dj.gc benchmark
(scripts/bench/dj_gc_scan.py).
"""

from datajoint.adapters.mysql import MySQLAdapter

_parse_column_info = MySQLAdapter.parse_column_info


def _parse_column_info_as_mysql(self, row):
    info = _parse_column_info(self, row)
    if info["type"] == "longtext" and (info["comment"] or "").startswith(":<"):
        info["type"] = "json"
    return info


MySQLAdapter.parse_column_info = _parse_column_info_as_mysql
