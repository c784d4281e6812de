"""The DataJoint side of djgc's compatibility test (datajoint 2.3.5).

Run from a folder holding the test's datajoint.json, so DataJoint reads the
same configuration as djgc:

    python dj_pipeline.py populate SCHEMA OUT.json   # write a pipeline, delete rows, run dj.gc
    python dj_pipeline.py verify   SCHEMA OUT.json   # load every row, run dj.gc again
    python dj_pipeline.py swap     SCHEMA OUT.json   # populate, then dj.gc and djgc.collect

OUT.json receives dj.gc's stats (dry run), including its orphan lists, and in
verify mode the number of rows loaded, in swap mode under "djgc" what the
djgc Python module's collect() returns for the same call (and under
"djgc_check" what its check() finds of the same pipeline).

On GCS and Azure stores dj.gc 2.3.5 is wrong (its listing yields hash keys
with a doubled '/', so every hash-addressed object looks orphaned): there the
stats are the truth instead, made of dj.gc's parts that are right: the
references it reads from the rows, the stored keys as the provider's own SDK
lists them (google-cloud-storage, azure-storage-blob), and dj.gc's coverage
rules. dj.gc's own answer is kept under "dj_gc".
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import datajoint as dj
from datajoint.builtin_codecs.object import ObjectCodec

import mariadb_as_mysql  # noqa: F401  (patches DataJoint on import)


class LabContainerCodec(ObjectCodec):
    """A third-party schema-addressed codec (like a lab's NetCDF codec)."""

    name = "labcontainer"


dj.config["safemode"] = False
mode, schema_name, out_path = sys.argv[1:4]
schema = dj.Schema(schema_name)


@schema
class Recording(dj.Manual):
    definition = """
    rec_id : int32
    ---
    signal : <blob@main>
    raw : <hash@main>
    thumbnail : <blob>
    """


@schema
class Document(dj.Manual):
    definition = """
    doc_id : int32
    ---
    doc : <attach@main>
    """


@schema
class Waveform(dj.Manual):
    definition = """
    wf_id : int32
    ---
    wave : <npy@main>
    """


@schema
class Result(dj.Manual):
    definition = """
    res_id : int32
    ---
    results : <object@main>
    """


@schema
class Container(dj.Manual):
    definition = """
    c_id : int32
    ---
    payload : <labcontainer@main>
    """


TABLES = [Recording, Document, Waveform, Result, Container]


def populate():
    work = Path(tempfile.mkdtemp())
    for i in range(12):
        # Rows 2k and 2k+1 share content: one deduplicated object each pair.
        signal = np.arange(100, dtype="float64") * (i // 2)
        Recording.insert1(
            dict(rec_id=i, signal=signal, raw=f"raw bytes {i % 5}".encode(), thumbnail=np.zeros(3) + i)
        )
    for i in range(8):
        attachment = work / f"notes_{i}.txt"
        attachment.write_text(f"lab notes {i}")
        Document.insert1(dict(doc_id=i, doc=str(attachment)))
    for i in range(10):
        Waveform.insert1(dict(wf_id=i, wave=np.sin(np.arange(64) * (i + 1)).astype("float32")))
    for i in range(8):
        if i % 2:
            Result.insert1(dict(res_id=i, results=f"result file {i}".encode()))
        else:
            folder = work / f"zarr_{i}"
            (folder / "0").mkdir(parents=True)
            (folder / ".zarray").write_text('{"chunks": [4]}')
            (folder / "0" / "0").write_bytes(bytes(range(16)) * (i + 1))
            (folder / "0" / "1").write_bytes(bytes(range(8)) * (i + 1))
            Result.insert1(dict(res_id=i, results=str(folder)))
    for i in range(6):
        Container.insert1(dict(c_id=i, payload=f"container {i}".encode()))

    # Delete rows: whole shared pairs, half of a pair, and singles.
    (Recording & "rec_id in (0, 1, 2, 7, 9)").delete_quick()
    (Document & "doc_id in (1, 2, 5)").delete_quick()
    (Waveform & "wf_id in (0, 3, 4, 8)").delete_quick()
    (Result & "res_id in (0, 3, 4)").delete_quick()
    (Container & "c_id in (1, 4)").delete_quick()
    return {}


def verify():
    loaded = 0
    for table in TABLES:
        for row in table.to_dicts():
            for value in row.values():
                if hasattr(value, "verify"):  # ObjectRef: file or folder with manifest
                    value.verify()
                    if not value.is_dir:
                        value.read()
                elif hasattr(value, "load"):  # NpyRef
                    value.load()
            loaded += 1
    return {"rows_loaded": loaded}


def provider_listing(spec, prefix):
    """Every key (store-relative) and size under `prefix`, listed by the
    provider's SDK rather than the fsspec client DataJoint writes through."""
    location = spec["location"].strip("/")
    full = f"{location}/{prefix}" if location else prefix
    if spec["protocol"] == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="djgc", credentials=AnonymousCredentials())
        blobs = ((b.name, b.size) for b in client.list_blobs(spec["bucket"], prefix=full))
    else:
        from azure.storage.blob import ContainerClient

        container = ContainerClient.from_connection_string(spec["connection_string"], spec["container"])
        blobs = ((b.name, b.size) for b in container.list_blobs(name_starts_with=full))
    cut = len(location) + 1 if location else 0
    return {name[cut:]: size for name, size in blobs}


def truth(collector, spec):
    """dj.gc's stats as they would be with a correct listing."""
    from datajoint.gc import _BASE32_HASH, _is_covered

    hash_referenced = collector.hash_references()
    schema_referenced = collector.schema_references()
    hash_prefix = spec.get("hash_prefix", "_hash").strip("/")
    schema_prefix = spec.get("schema_prefix", "_schema").strip("/")
    hash_stored = {
        k: v
        for k, v in provider_listing(spec, f"{hash_prefix}/{schema_name}/").items()
        if not k.endswith(".manifest.json") and _BASE32_HASH.match(k.rsplit("/", 1)[-1])
    }
    schema_stored = provider_listing(spec, f"{schema_prefix}/{schema_name}/")
    orphaned_hash = sorted(set(hash_stored) - hash_referenced)
    orphaned_schema = sorted(p for p in schema_stored if not _is_covered(p, schema_referenced))
    return {
        "hash_paths_referenced": len(hash_referenced),
        "hash_paths_stored": len(hash_stored),
        "hash_paths_orphaned": len(orphaned_hash),
        "hash_paths_orphaned_bytes": sum(hash_stored[p] for p in orphaned_hash),
        "orphaned_hash_paths": orphaned_hash,
        "schema_paths_referenced": len(schema_referenced),
        "schema_paths_stored": len(schema_stored),
        "schema_paths_orphaned": len(orphaned_schema),
        "schema_paths_orphaned_bytes": sum(schema_stored[p] for p in orphaned_schema),
        "orphaned_schema_paths": orphaned_schema,
    }


extra = verify() if mode == "verify" else populate()
collector = dj.gc.GarbageCollector(schema, store="main")
stats = collector.collect(dry_run=True)
store_spec = dj.config["stores"]["main"]
if store_spec["protocol"] in ("gcs", "azure"):
    stats = {**truth(collector, store_spec), "dj_gc": stats}
if mode == "swap":
    import os

    import djgc

    # The caller's environment may point DataJoint elsewhere (the schema
    # object's connection was made earlier): djgc must use the configuration
    # the wrapper hands it, not these.
    os.environ["DJ_HOST"] = "wrong-host.invalid"
    os.environ["DJ_STORES"] = '{"main": {"protocol": "file", "location": "/nonexistent"}}'
    # The one-line swap: the same schema object, store and dry run.
    extra["djgc"] = djgc.collect(
        schema, store="main", dry_run=True, min_age="0s", schema_codec=["labcontainer"]
    )
    # And the other half of the question, as a Python user asks it.
    extra["djgc_check"] = djgc.check(schema, store="main", schema_codec=["labcontainer"])
stats.update(extra)
Path(out_path).write_text(json.dumps(stats, default=str))
