"""A folder object uploaded by datajoint 2.3.5 while djgc collects (threat test).

DataJoint copies a folder into a file store with shutil.copy2/copytree, which
keep the source files' modification times, and inserts the row afterwards,
inside the caller's transaction. This script records week-old files as a
folder object inside an open transaction, runs `djgc collect --delete` with
its default --min-age while the row is still uncommitted, commits, and checks
that every file of the folder is still there and the row loads.

Run from a folder holding the test's datajoint.json:

    python folder_upload.py SCHEMA DJGC_EXECUTABLE OUT.json

OUT.json receives djgc's exit code and report, and whether the row loaded.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datajoint as dj

import mariadb_as_mysql  # noqa: F401  (patches DataJoint on import)

dj.config["safemode"] = False
schema_name, djgc, out_path = sys.argv[1:4]
schema = dj.Schema(schema_name)


@schema
class Volume(dj.Manual):
    definition = """
    volume_id : int32
    ---
    scan : <object@main>
    """


WEEK_AGO = time.time() - 7 * 86400


def recorded_last_week(label, files):
    """A local folder of `files` files (one in a subfolder), all a week old."""
    folder = Path(tempfile.mkdtemp()) / label
    (folder / "chunks").mkdir(parents=True)
    paths = [folder / f"meta_{i}.json" for i in range(files - 1)] + [folder / "chunks" / "0.0"]
    for i, path in enumerate(paths):
        path.write_bytes(f"{label} part {i} ".encode() * 50)
        os.utime(path, (WEEK_AGO, WEEK_AGO))
    return folder


# Committed rows first, so the schema looks like any healthy pipeline to the
# mass-deletion guard: this test is about age, not the guard.
for volume_id in range(12):
    Volume.insert1(dict(volume_id=volume_id, scan=recorded_last_week(f"old{volume_id}", 3)))

with dj.conn().transaction:
    Volume.insert1(dict(volume_id=100, scan=recorded_last_week("new", 4)))
    run = subprocess.run(
        [djgc, "collect", schema_name, "--delete", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )

result = {"exit": run.returncode, "stderr": run.stderr}
try:
    result["report"] = json.loads(run.stdout)
except ValueError:
    result["report"] = None
try:
    ref = (Volume & dict(volume_id=100)).fetch1("scan")
    ref.verify()
    target = Path(tempfile.mkdtemp()) / "download"
    ref.download(target)
    result["files_loaded"] = sorted(
        str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()
    )
    result["loaded"] = True
except Exception as error:  # noqa: BLE001  (reported to the test)
    result["loaded"] = False
    result["error"] = repr(error)
with open(out_path, "w") as out:
    json.dump(result, out)
