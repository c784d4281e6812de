"""djgc from Python: a one-line replacement for DataJoint's ``dj.gc``.

The wheel installs the ``djgc`` executable beside this module; ``collect``
runs it with the caller's DataJoint configuration and returns the same stats
dict as ``dj.gc.collect`` (djgc's report, which carries dj.gc's keys)::

    import datajoint as dj
    import djgc

    # was: stats = dj.gc.collect(ephys, imaging, store="main", dry_run=False)
    stats = djgc.collect(ephys, imaging, store="main", dry_run=False)

Options are djgc's flags with underscores: ``min_age="7d"``, ``jobs=8``,
``quarantine=True``, ``schema_codec=["labcontainer"]``.

``check`` asks the other half of the question: which rows reference objects
that are missing, of another size, or (folders) incomplete::

    report = djgc.check(ephys, store="main")
    for row in report["damaged_rows"]:
        print(row["table"], row["key"], row["column"], row["problem"])
"""

import json
import os
import shutil
import subprocess
import sysconfig
import tempfile

__all__ = ["check", "collect", "executable", "DjgcError"]


class DjgcError(RuntimeError):
    """djgc refused or failed; ``exit_code`` and ``stats`` (if any) tell why."""

    def __init__(self, message, exit_code, stats=None):
        super().__init__(message)
        self.exit_code = exit_code
        self.stats = stats


def executable():
    """The djgc executable: ``DJGC_EXECUTABLE``, the one installed with this
    module, or the first on the PATH."""
    explicit = os.environ.get("DJGC_EXECUTABLE")
    if explicit:
        return explicit
    name = "djgc.exe" if os.name == "nt" else "djgc"
    beside = os.path.join(sysconfig.get_path("scripts"), name)
    if os.path.isfile(beside):
        return beside
    found = shutil.which("djgc")
    if found:
        return found
    raise FileNotFoundError("the djgc executable is not installed (pip install djgc)")


def _schema_name(schema):
    """A schema name, from a name or a DataJoint schema object."""
    if isinstance(schema, str):
        return schema
    name = getattr(schema, "database", None)
    if isinstance(name, str) and name:
        return name
    raise TypeError(f"{schema!r} is neither a schema name nor a DataJoint schema")


def _plain(value):
    """A config value as JSON holds it (pydantic secrets revealed)."""
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return value


def _use_tls(connection, config):
    """How the caller's connection uses TLS: what ``dj.conn(use_tls=...)``
    was given (``True``, ``False``, or pymysql's dict with ``ca``, ``cert``,
    ``key``), else ``database.use_tls`` of the config (``None``: try TLS)."""
    conn_info = getattr(connection, "conn_info", None) or {}
    if "ssl_input" in conn_info:
        return conn_info["ssl_input"]
    return getattr(config.database, "use_tls", None)


def _datajoint_json(config, use_tls=None):
    """The caller's resolved DataJoint settings, as datajoint.json holds them,
    with ``use_tls`` (djgc reads the dict form too)."""
    database = config.database
    fields = ("host", "port", "user", "password", "backend", "name")
    settings = {f: _plain(getattr(database, f, None)) for f in fields}
    if isinstance(use_tls, dict):
        # Whole, so that djgc refuses what it cannot honour (say `capath`)
        # instead of connecting with less than the caller asked for.
        settings["use_tls"] = {
            k: v if isinstance(v, (bool, type(None))) else str(v) for k, v in use_tls.items()
        }
    else:
        settings["use_tls"] = use_tls
    stores = _plain(dict(config.stores))
    return {
        "database": {k: v for k, v in settings.items() if v is not None},
        "stores": stores,
    }


def _add_orphan_lists(stats, orphans):
    """dj.gc's ``orphaned_hash_paths`` and ``orphaned_schema_paths``."""
    hash_prefixes = tuple(
        s["prefix"] for s in stats.get("sections", []) if s.get("kind") == "hash"
    )
    stats["orphaned_hash_paths"] = [p for p in orphans if p.startswith(hash_prefixes)]
    stats["orphaned_schema_paths"] = [p for p in orphans if not p.startswith(hash_prefixes)]


def _flags(options):
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                flags += [flag, str(item)]
        else:
            flags += [flag, str(value)]
    return flags


def _environment():
    """This process's environment without DataJoint's ``DJ_*`` settings:
    those would override the configuration ``collect`` hands djgc (the
    schema's own connection settings), and point it at another database
    or store than the one the caller's schema object lives in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}


def _run(command, schemas, store, config, options, folder, extra=()):
    """Runs ``djgc COMMAND SCHEMA... --json`` with the configuration of the
    first schema's connection (else ``config``, else ``dj.config``), as
    dj.gc takes it, written to a file only its owner can read in ``folder``."""
    if not schemas:
        raise ValueError("At least one schema must be provided")
    names = [_schema_name(s) for s in schemas]
    connection = getattr(schemas[0], "connection", None)
    if config is None:
        config = getattr(connection, "_config", None)
    if config is None:
        import datajoint as dj

        config = dj.config
    args = [executable(), command, *names, "--json", "--quiet"]
    if store is not None:
        args += ["--store", store]
    args += [*extra, *_flags(options)]
    path = os.path.join(folder, "datajoint.json")
    # The password goes to a file only its owner can read, removed after.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(_datajoint_json(config, _use_tls(connection, config)), out)
    run = subprocess.run(
        args + ["--config", path],
        capture_output=True,
        text=True,
        check=False,
        env=_environment(),
    )
    return run, json.loads(run.stdout) if run.stdout.strip() else None


def _failed(run, stats):
    return DjgcError(f"djgc exited {run.returncode}: {run.stderr.strip()}", run.returncode, stats)


def collect(*schemas, store=None, dry_run=True, config=None, **options):
    """Find (and unless ``dry_run``, delete) the orphans of ``schemas`` in
    ``store`` (default: ``stores.default``), as ``dj.gc.collect`` does.

    ``schemas`` are DataJoint schema objects or names; ``config`` is a
    DataJoint config (default: ``dj.config``, the caller's). Returns the
    stats dict; raises :class:`DjgcError` when djgc refuses (exit 3, scan
    problems or the mass-deletion guard) or on bad input (exit 2). Deletion
    failures of single objects (exit 1) are reported in the stats.
    """
    with tempfile.TemporaryDirectory(prefix="djgc-") as folder:
        orphans = os.path.join(folder, "orphans.txt")
        extra = ["--orphans-out", orphans] + ([] if dry_run else ["--delete"])
        run, stats = _run("collect", schemas, store, config, options, folder, extra)
        if stats is not None and os.path.exists(orphans):
            # One key per line: keys hold no "\n", but may hold what
            # str.splitlines() also splits at ("\r", "\x1c", "\u2028", ...).
            with open(orphans, encoding="utf-8", newline="") as lines:
                _add_orphan_lists(stats, lines.read().split("\n")[:-1])
    if run.returncode in (0, 1) and stats is not None:
        return stats
    raise _failed(run, stats)


def check(*schemas, store=None, config=None, **options):
    """The rows of ``schemas`` whose objects in ``store`` are missing, of
    another size, or (folders) empty, without their manifest or missing a
    file it lists. Reads only.

    Returns djgc's report: ``damaged_rows`` (each with ``schema``,
    ``table``, ``key``, ``column``, ``path``, ``problem``, ``detail``) and
    the totals (``rows_damaged`` 0 when all is well). Raises
    :class:`DjgcError` when the check could not be completed (exit 3: a
    listing or a read failed, so no damage proves nothing) or on bad input
    (exit 2).
    """
    with tempfile.TemporaryDirectory(prefix="djgc-") as folder:
        run, report = _run("check", schemas, store, config, options, folder)
    if run.returncode in (0, 1) and report is not None:
        return report
    raise _failed(run, report)
