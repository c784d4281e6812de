"""Writes S3 Inventory data files in Parquet as AWS does, for djgc's tests.

Usage: parquet_inventory.py OUT.parquet CODEC < rows.json
rows.json: [{"bucket", "key", "version_id", "is_latest", "is_delete_marker",
"size" (null for a delete marker), "last_modified_ms", "e_tag"}, ...].
The schema is AWS's (`message s3.inventory { required binary bucket (UTF8);
required binary key (UTF8); ... optional int64 last_modified_date
(TIMESTAMP_MILLIS); ... }`), written by pyarrow with the codec given.
"""

import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        pa.field("bucket", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("version_id", pa.string()),
        pa.field("is_latest", pa.bool_()),
        pa.field("is_delete_marker", pa.bool_()),
        pa.field("size", pa.int64()),
        pa.field("last_modified_date", pa.timestamp("ms", tz="UTC")),
        pa.field("e_tag", pa.string()),
    ]
)


def main():
    out, codec = sys.argv[1], sys.argv[2]
    rows = json.load(sys.stdin)
    columns = {name: [row[name] for row in rows] for name in SCHEMA.names if name != "last_modified_date"}
    columns["last_modified_date"] = [row["last_modified_ms"] for row in rows]
    table = pa.table(
        [pa.array(columns[f.name], type=f.type) for f in SCHEMA], schema=SCHEMA
    )
    # Small row groups, so a file of a test's size still has several.
    pq.write_table(table, out, compression=codec, row_group_size=64)


if __name__ == "__main__":
    main()
