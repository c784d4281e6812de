//! The threat tests (issue 13): each one is an attack on the data djgc must
//! not touch, made by someone who can write where djgc reads or works (the
//! store and its trash, a plan file, the database catalog, a table's
//! privileges) or who just uses DataJoint, run against the real binary, the
//! real file system and real database servers. SECURITY.md names the threat
//! each test stands for.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{all_files, djgc_command, put_old_file, stderr, unique_schema, Env, BACKENDS};
use djgc::config::Backend;
use djgc::fixture::{FixtureSpec, FOLDER_TABLE, HASH_TABLE, NPY_TABLE};
use djgc::refs::db::Pool;
use djgc::store::{FsStore, Store};
use serde_json::Value;

/// Runs `command`, killing it and failing the test if it has not ended
/// after `limit`: the attacks below used to make djgc wait forever.
fn output_within(mut command: Command, limit: Duration, what: &str) -> Output {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_of(child, limit, what)
}

/// The output of `child` (its stdout and stderr piped), as [`output_within`].
fn output_of(mut child: std::process::Child, limit: Duration, what: &str) -> Output {
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Output {
                status,
                stdout: stdout.join().unwrap(),
                stderr: stderr.join().unwrap(),
            };
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            let told = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{what}: djgc did not end within {limit:?}; it said:\n{told}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

/// Every folder below `dir`.
fn folders(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                found.push(entry.path());
                stack.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// Every file below `dir` with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|key| {
            let body = std::fs::read(dir.join(&key)).unwrap();
            (key, body)
        })
        .collect()
}

// --- 1. links in the trash and folders swapped for links --------------------

/// A small fixture of `schema` whose orphans were moved into quarantine;
/// the fixture's truth and the quarantine run's id.
fn quarantined_fixture(env: &mut Env, schema: &str) -> (djgc::fixture::FixtureOutcome, String) {
    let truth = env.fixture(&FixtureSpec::small(schema, "main"));
    env.write_config(None);
    let r = env.djgc_ok(&[
        "collect",
        schema,
        "--min-age",
        "0s",
        "--json",
        "--delete",
        "--quarantine",
    ]);
    (truth, r["quarantine_run"].as_str().unwrap().to_string())
}

/// Someone who can write the trash replaces two folders of a quarantine run
/// with links to folders outside the store that hold files of the same names.
/// `restore` must not pull those files into the store, `purge` must not
/// delete them; both report the links as errors.
#[test]
fn links_planted_in_the_trash_lead_restore_and_purge_nowhere() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("trashlink");
    let (truth, run) = quarantined_fixture(&mut env, &schema);
    let root = env.store_root();
    let outside = env.dir.path().join("outside");
    for (section, folder) in [("_hash", "hash"), ("_schema", "schema")] {
        let prefix = format!("{section}/{schema}/");
        for key in truth.orphans.iter().filter(|k| k.starts_with(&prefix)) {
            put_old_file(&outside.join(folder), &key[prefix.len()..], "precious");
        }
        let in_trash = root.join(format!("_trash/{run}/{section}/{schema}"));
        std::fs::remove_dir_all(&in_trash).unwrap();
        symlink(outside.join(folder), &in_trash).unwrap();
    }
    let precious = tree(&outside);
    assert!(precious.len() >= 10);
    let store_before = env.keys();

    let out = env.djgc(&["restore", &run, "--json"]);
    assert_eq!(out.status.code(), Some(1), "restore: {}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        tree(&outside),
        precious,
        "restore touched files outside the store"
    );
    assert_eq!(
        env.keys(),
        store_before,
        "restore moved files into the store"
    );

    let out = env.djgc(&["purge", "--older-than", "0s", "--delete", "--json"]);
    assert_eq!(out.status.code(), Some(1), "purge: {}", stderr(&out));
    assert_eq!(
        tree(&outside),
        precious,
        "purge deleted files outside the store"
    );
}

/// Someone who can write the trash plants runs that sort before a real one:
/// one whose header is a FIFO (opening it would wait for a writer forever),
/// one whose header is a sparse terabyte. `purge` reports both, leaves them,
/// and purges the real run.
#[test]
fn a_fifo_or_a_huge_file_in_the_trash_holds_up_no_purge() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("trashfifo");
    let (_, run) = quarantined_fixture(&mut env, &schema);
    let trash = env.store_root().join("_trash");
    for (planted, header) in [
        ("20000101T000000Z-000000", "fifo"),
        ("20000101T000001Z-000000", "huge"),
    ] {
        let folder = trash.join(planted);
        put_old_file(&folder, "djgc-manifest/part-000000.jsonl", "");
        let header_path = folder.join("djgc-run.json");
        match header {
            "fifo" => assert!(Command::new("mkfifo")
                .arg(&header_path)
                .status()
                .unwrap()
                .success()),
            _ => std::fs::File::create(&header_path)
                .unwrap()
                .set_len(1 << 40)
                .unwrap(),
        }
    }
    let command = djgc_command(
        env.dir.path(),
        &["purge", "--older-than", "0s", "--delete", "--json"],
    );
    let out = output_within(command, Duration::from_secs(60), "purge");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let told = stderr(&out);
    assert!(
        told.contains("not a regular file") && told.contains("larger than"),
        "{told}"
    );
    let purged = crate::common::report(&out);
    assert_eq!(purged["runs"], serde_json::json!([run]), "{purged}");
    assert!(!trash.join(&run).exists(), "the real run was not purged");
}

/// Between listing and deleting, a folder of a section is replaced with a
/// link to a folder outside the store holding files of the same names: the
/// delete, the quarantine move, and the pruning of emptied folders must not
/// reach through it. Store calls on the real file system.
#[test]
fn folders_swapped_for_links_after_listing_are_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let outside = dir.path().join("outside");
    let store = FsStore::new("main", &root, 2);
    let orphan = "_schema/s/t/id=1/f_tok.npy";
    let deep = "_schema/s/u/id=2/obj_tok/0.0";
    put_old_file(&root, orphan, "orphan");
    put_old_file(&root, deep, "orphan");
    let listed = djgc::store::collect_keys(&store, "_schema/s/").unwrap();
    assert_eq!(listed, [orphan, deep]);

    // The row folder of `orphan`, and a folder above `deep`, become links.
    put_old_file(&outside, "f_tok.npy", "precious");
    put_old_file(&outside, "id=2/obj_tok/0.0", "precious");
    std::fs::remove_dir_all(root.join("_schema/s/t/id=1")).unwrap();
    symlink(&outside, root.join("_schema/s/t/id=1")).unwrap();
    std::fs::remove_dir_all(root.join("_schema/s/u")).unwrap();
    symlink(&outside, root.join("_schema/s/u")).unwrap();
    // Pruning the folders emptied by a delete through the link would
    // remove these (and the one left empty beside them) outside the store.
    std::fs::create_dir_all(outside.join("id=2/empty")).unwrap();
    let precious = tree(&outside);
    let outside_folders = folders(&outside);

    for outcome in store.delete("_schema/s/", &listed) {
        let error = outcome.expect_err("a delete through a link").to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }
    assert_eq!(tree(&outside), precious, "delete reached outside the store");

    let moves: Vec<(String, String)> = listed
        .iter()
        .map(|k| (k.clone(), format!("_trash/r/{k}")))
        .collect();
    for outcome in store.rename("_schema/s/", &moves) {
        assert!(outcome.is_err(), "a move through a link");
    }
    assert_eq!(tree(&outside), precious, "a move reached outside the store");
    assert_eq!(
        folders(&outside),
        outside_folders,
        "folders outside were pruned"
    );
    assert!(!root.join("_trash/r/_schema/s/t").exists());

    // The move's target side: the trash itself is a link out of the store.
    std::fs::remove_file(root.join("_schema/s/t/id=1")).unwrap();
    put_old_file(&root, orphan, "orphan");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, root.join("_trash")).unwrap();
    let moved = store.rename("_schema/s/", &moves[..1]);
    assert!(moved[0].is_err(), "{moved:?}");
    assert!(
        all_files(&elsewhere).is_empty(),
        "a move wrote outside the store"
    );
    assert!(
        root.join(orphan).exists(),
        "the object left without arriving"
    );

    // djgc's own small files: written, read and looked at through the same
    // folders, never through a link (the trash is still a link here).
    assert!(store.put("_trash/r/djgc-run.json", b"{}".to_vec()).is_err());
    assert!(
        all_files(&elsewhere).is_empty(),
        "a put wrote outside the store"
    );
    std::fs::remove_file(root.join("_trash")).unwrap();
    put_old_file(&elsewhere, "secret.txt", "not the store's");
    std::fs::create_dir_all(root.join("_trash/r")).unwrap();
    symlink(
        elsewhere.join("secret.txt"),
        root.join("_trash/r/djgc-run.json"),
    )
    .unwrap();
    let read = store.get("_trash/r/djgc-run.json");
    assert!(read.is_err(), "a get read through a link: {read:?}");
    let headed = store.head(&["_trash/r/djgc-run.json".to_string()]);
    assert!(matches!(headed[0], Ok(None)), "{headed:?}");
}

/// Someone who can write the trash adds an entry to a run's manifest (and
/// the file it names) for another schema's key: `restore` must not create it
/// in that schema's section, nor `purge` act on it; both report it.
#[test]
fn a_manifest_entry_outside_the_runs_schemas_is_refused() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("forged");
    let (truth, run) = quarantined_fixture(&mut env, &schema);
    let root = env.store_root();
    let foreign = unique_schema("bystander");
    let planted = format!("_schema/{foreign}/t/id=1/f_planted");
    put_old_file(&root, &format!("_trash/{run}/{planted}"), "planted");
    let part = root.join(format!("_trash/{run}/djgc-manifest/part-000000.jsonl"));
    let mut manifest = std::fs::read_to_string(&part).unwrap();
    manifest.push_str(&format!(
        "{{\"key\":\"{planted}\",\"size\":7,\"mtime_ns\":0}}\n"
    ));
    std::fs::write(&part, manifest).unwrap();

    let out = env.djgc(&["restore", &run, "--json"]);
    assert_eq!(out.status.code(), Some(1), "restore: {}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(
        !env.exists(&planted),
        "restore created another schema's key"
    );
    // The run's own objects went back.
    assert!(truth.orphans.iter().all(|k| env.exists(k)));
    assert!(env.exists(&format!("_trash/{run}/{planted}")));

    let out = env.djgc(&["purge", "--older-than", "0s", "--delete", "--json"]);
    assert_eq!(out.status.code(), Some(1), "purge: {}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(
        env.exists(&format!("_trash/{run}/{planted}")),
        "purge acted on it"
    );
}

// --- 2. schema names that are not one plain folder -------------------------

/// A PostgreSQL schema named `..` with a codec column: its sections would be
/// the store root. Named on the command line it is refused (exit 2); found
/// by --all-schemas it is skipped with a warning. Nothing is deleted.
#[test]
fn a_schema_named_dot_dot_is_refused_and_skipped() {
    let mut env = Env::new(Backend::PostgreSql);
    let store = unique_schema("dotstore");
    let schema = unique_schema("dotlive");
    env.fixture(&FixtureSpec::small(&schema, &store));
    let config = env.write_config(None);
    let mut json: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["stores"][&store] = json["stores"]["main"].clone();
    std::fs::write(&config, json.to_string()).unwrap();
    env.put("datajoint_store.json", "{}");
    env.put("user/notes.txt", "a user's own file");
    env.sql(r#"DROP SCHEMA IF EXISTS ".." CASCADE"#);
    env.sql(r#"CREATE SCHEMA "..""#);
    env.schemas.push("..".into());
    env.sql(r#"CREATE TABLE "..".t (id integer PRIMARY KEY, data jsonb)"#);
    env.sql(&format!(
        r#"COMMENT ON COLUMN "..".t.data IS ':<blob@{store}>:'"#
    ));
    env.sql(&format!(
        r#"INSERT INTO "..".t VALUES (1, '{{"path": "_hash/../x", "store": "{store}"}}')"#
    ));
    let before = env.keys();

    let out = env.djgc(&[
        "collect",
        "..",
        "--store",
        &store,
        "--min-age",
        "0s",
        "--delete",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"..\""), "{}", stderr(&out));
    assert_eq!(env.keys(), before, "something was deleted");

    let out = env.djgc(&[
        "collect",
        "--all-schemas",
        "--store",
        &store,
        "--min-age",
        "0s",
        "--json",
        "--delete",
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = crate::common::report(&out);
    assert_eq!(r["schemas"], serde_json::json!([schema]), "{r}");
    assert!(stderr(&out).contains("\"..\""), "{}", stderr(&out));
    // Only the live schema's own sections were collected.
    let elsewhere = |keys: Vec<String>| -> Vec<String> {
        keys.into_iter()
            .filter(|k| !k.starts_with(&format!("_hash/{schema}/")))
            .filter(|k| !k.starts_with(&format!("_schema/{schema}/")))
            .collect()
    };
    let untouched = elsewhere(before.clone());
    assert!(untouched.contains(&"user/notes.txt".to_string()));
    assert_eq!(
        elsewhere(env.keys()),
        untouched,
        "keys outside its sections"
    );
}

// --- 3. DataJoint's folder uploads keep old modification times --------------

/// datajoint 2.3.5 records a folder of week-old files inside an open
/// transaction while `djgc collect --delete` runs with its default
/// --min-age; after the commit, every file is there and the row loads.
#[test]
fn a_folder_uploaded_with_old_mtimes_survives_a_collect_before_its_row_commits() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("copy2");
        env.schemas.push(schema.clone());
        env.write_config(None);
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat/folder_upload.py");
        let out_file = env.dir.path().join("upload.json");
        let out = Command::new(crate::common::python())
            .arg(&script)
            .args([schema.as_str(), env!("CARGO_BIN_EXE_djgc")])
            .arg(&out_file)
            .current_dir(env.dir.path())
            .env("PYTHONPATH", script.parent().unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{backend:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
        assert!(
            result["exit"].as_i64().is_some_and(|c| c <= 1),
            "{backend:?}: {result}"
        );
        assert_eq!(result["loaded"], true, "{backend:?}: {result}");
        assert_eq!(
            result["files_loaded"].as_array().map(Vec::len),
            Some(4),
            "{backend:?}: {result}"
        );
    }
}

// --- 4. an edited plan -----------------------------------------------------

/// Rewrites a plan's header with `edit`.
fn edit_plan(plan: &Path, edit: impl FnOnce(&mut Value)) {
    let text = std::fs::read_to_string(plan).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut header: Value = serde_json::from_str(&lines[0]).unwrap();
    edit(&mut header);
    lines[0] = header.to_string();
    std::fs::write(plan, lines.join("\n") + "\n").unwrap();
}

/// A plan edited to name another schema's section, listing that schema's
/// live objects as orphans with their true sizes and times, is refused
/// before anything is read or deleted; so is one whose sections no longer
/// match the config. A plan whose statistics were edited to pass the
/// mass-deletion guard is judged by what the store holds now.
#[test]
fn an_edited_plan_cannot_widen_what_apply_deletes() {
    for kind in crate::common::KINDS {
        let mut env = Env::with_store(Backend::MySql, kind);
        let what = format!("{kind:?}");
        let victim = unique_schema("victim");
        let own = unique_schema("planner");
        let victim_truth = env.fixture(&FixtureSpec::small(&victim, "main"));
        env.fixture(&FixtureSpec::small(&own, "main"));
        env.write_config(None);
        let plan = env.dir.path().join("plan.jsonl");
        let plan_arg = plan.to_str().unwrap();
        env.djgc_ok(&[
            "scan",
            &own,
            "--min-age",
            "0s",
            "--json",
            "--plan",
            plan_arg,
        ]);

        // The victim's live hash objects, with the size and time a listing gives.
        let listing = djgc::store::FsStore::new("l", env.store_root(), 2);
        let listed: Vec<djgc::store::ObjectMeta> = match &env.remote {
            Some((_, store)) => objects(store.as_ref(), &format!("_hash/{victim}/")),
            None => objects(&listing, &format!("_hash/{victim}/")),
        };
        let live: Vec<&djgc::store::ObjectMeta> = listed
            .iter()
            .filter(|o| victim_truth.live_files.contains(&o.key))
            .collect();
        assert!(live.len() > 5, "{what}");
        let text = std::fs::read_to_string(&plan).unwrap();
        let header = text.lines().next().unwrap().to_string();
        let mut forged = vec![header];
        forged.extend(live.iter().map(|object| plan_line(0, object)));
        std::fs::write(&plan, forged.join("\n") + "\n").unwrap();
        edit_plan(&plan, |h| {
            h["sections"][0]["prefix"] = format!("_hash/{victim}/").into();
            h["report"]["sections"][0]["stored"] = 1_000_000.into();
        });
        let before = env.keys();
        let out = env.djgc(&[
            "apply",
            plan_arg,
            "--min-age",
            "0s",
            "--delete",
            "--force",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stderr(&out).contains("section"), "{what}: {}", stderr(&out));
        assert_eq!(env.keys(), before, "{what}: an edited plan deleted objects");

        // Statistics edited to slip past the guard: in the store, the
        // planner's sections are now wholly orphaned (every row deleted).
        for table in [HASH_TABLE, NPY_TABLE, FOLDER_TABLE] {
            env.sql(&format!(
                "DELETE FROM {}.{}",
                env.db.quote(&own),
                env.db.quote(table)
            ));
        }
        env.djgc_ok(&[
            "scan",
            &own,
            "--min-age",
            "0s",
            "--json",
            "--plan",
            plan_arg,
        ]);
        edit_plan(&plan, |h| {
            for section in h["report"]["sections"].as_array_mut().unwrap() {
                section["stored"] = 1_000_000.into();
                section["orphaned"] = 1.into();
            }
            h["report"]["references_by_schema"][&own] = 1000.into();
        });
        let before = env.keys();
        let out = env.djgc(&["apply", plan_arg, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(out.status.code(), Some(3), "{what}: {}", stderr(&out));
        assert_eq!(
            env.keys(),
            before,
            "{what}: the guard read the edited figures"
        );

        // A folder object being uploaded for a row not yet committed, listed
        // in a plan with its true sizes and times: apply judges age again
        // (its own --min-age, 24h by default), so a plan cannot make a
        // fresh upload old.
        let upload = format!("_schema/{own}/folder_item/id=777/obj_uploading");
        for name in ["0.0", "0.1"] {
            env.put(&format!("{upload}/{name}"), "being uploaded");
        }
        env.djgc_ok(&[
            "scan",
            &own,
            "--min-age",
            "0s",
            "--json",
            "--plan",
            plan_arg,
        ]);
        let text = std::fs::read_to_string(&plan).unwrap();
        let mut forged = vec![text.lines().next().unwrap().to_string()];
        let section = serde_json::from_str::<Value>(&forged[0]).unwrap()["sections"]
            .as_array()
            .unwrap()
            .iter()
            .position(|s| s["prefix"] == format!("_schema/{own}/"))
            .unwrap();
        let listed = match &env.remote {
            Some((_, store)) => objects(store.as_ref(), &format!("{upload}/")),
            None => objects(&listing, &format!("{upload}/")),
        };
        assert_eq!(listed.len(), 2, "{what}");
        forged.extend(listed.iter().map(|object| plan_line(section, object)));
        std::fs::write(&plan, forged.join("\n") + "\n").unwrap();
        let out = env.djgc(&["apply", plan_arg, "--delete", "--force", "--json"]);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(crate::common::report(&out)["deleted"], 0, "{what}");
        for object in &listed {
            assert!(
                env.exists(&object.key),
                "{what}: {} was deleted",
                object.key
            );
        }
    }
}

/// A plan file's line naming `object` (as listed) as an orphan of `section`.
fn plan_line(section: usize, object: &djgc::store::ObjectMeta) -> String {
    let mtime_ns = djgc::judge::plan::mtime_ns(object.modified);
    serde_json::json!({"section": section, "key": object.key, "size": object.size,
                       "mtime_ns": mtime_ns})
    .to_string()
}

fn objects(store: &dyn Store, prefix: &str) -> Vec<djgc::store::ObjectMeta> {
    let all = std::sync::Mutex::new(Vec::new());
    store.list(prefix, &|item| {
        if let djgc::store::Listing::Objects(objects) = item {
            all.lock().unwrap().extend(objects);
        }
        djgc::store::ControlFlow::Continue(())
    });
    all.into_inner().unwrap()
}

// --- 5. a database that stops answering -------------------------------------

/// Holds a lock that blocks every read of `table`, from a connection of
/// its own, until dropped.
struct TableLock {
    _connection: Box<dyn std::any::Any>,
}

fn lock_table(env: &Env, schema: &str, table: &str) -> TableLock {
    let name = format!("{}.{}", env.db.quote(schema), env.db.quote(table));
    env.rt.block_on(async {
        let connection: Box<dyn std::any::Any> = match env.db.pool() {
            Pool::MySql(pool) => {
                let mut c = pool.acquire().await.unwrap();
                sqlx::raw_sql(&format!("LOCK TABLES {name} WRITE"))
                    .execute(&mut *c)
                    .await
                    .unwrap();
                Box::new(c.detach())
            }
            Pool::Postgres(pool) => {
                let mut c = pool.acquire().await.unwrap();
                sqlx::raw_sql(&format!(
                    "BEGIN; LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"
                ))
                .execute(&mut *c)
                .await
                .unwrap();
                Box::new(c.detach())
            }
        };
        TableLock {
            _connection: connection,
        }
    })
}

/// A reference read blocked behind a lock (MySQL's lock_wait_timeout is a
/// year by default, PostgreSQL's lock_timeout forever) ends the run within
/// the database timeout, exit 3, nothing deleted.
#[test]
fn a_read_blocked_behind_a_lock_ends_the_run_and_deletes_nothing() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("locked");
        env.fixture(&FixtureSpec::small(&schema, "main"));
        env.write_config(None);
        let before = env.keys();
        let lock = lock_table(&env, &schema, NPY_TABLE);
        let mut command = djgc_command(
            env.dir.path(),
            &["collect", &schema, "--min-age", "0s", "--delete"],
        );
        command.env("DJGC_DB_TIMEOUT", "3s");
        let out = output_within(command, Duration::from_secs(60), &format!("{backend:?}"));
        drop(lock);
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(NPY_TABLE),
            "{backend:?}: {}",
            stderr(&out)
        );
        assert_eq!(env.keys(), before, "{backend:?}: something was deleted");
    }
}

/// Starts `djgc ARGS` with the reads of `schema`'s npy table held behind a
/// lock (and a database timeout far beyond any test), and gives it two
/// seconds to get stuck there. The lock holds while its guard lives.
fn start_blocked(env: &Env, schema: &str, args: &[&str]) -> (std::process::Child, TableLock) {
    let lock = lock_table(env, schema, NPY_TABLE);
    let child = djgc_command(env.dir.path(), args)
        .env("DJGC_DB_TIMEOUT", "300s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    (child, lock)
}

/// Sends `child` SIGTERM, as a scheduler does at a time limit, and returns
/// its output; fails the test if it has not ended 30 s later.
fn terminate(child: std::process::Child, what: &str) -> Output {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    output_of(child, Duration::from_secs(30), what)
}

/// A scheduler's SIGTERM while the reference read waits on the database
/// (here behind a lock, as behind a slow server or a billion rows): the
/// run abandons the read and ends cleanly, exit 1, its report marked
/// partial, nothing deleted; it does not wait out the database timeout
/// while Slurm's SIGKILL approaches.
#[test]
fn sigterm_during_a_blocked_reference_read_ends_the_run_cleanly() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("termed");
        env.fixture(&FixtureSpec::small(&schema, "main"));
        env.write_config(None);
        let before = env.keys();
        let args = ["collect", &schema, "--min-age", "0s", "--delete", "--json"];
        let (child, lock) = start_blocked(&env, &schema, &args);
        let out = terminate(child, &format!("{backend:?}"));
        drop(lock);
        assert_eq!(out.status.code(), Some(1), "{backend:?}: {}", stderr(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["partial"], true, "{backend:?}: {report}");
        // Nothing judged against a read cut short.
        let sections = report["sections"].as_array().unwrap();
        assert!(sections.iter().all(|s| s["orphaned"] == 0), "{report}");
        assert!(!report["scan_errors"].as_array().unwrap().is_empty());
        assert!(
            stderr(&out).contains("interrupted"),
            "{backend:?}: {}",
            stderr(&out)
        );
        assert_eq!(env.keys(), before, "{backend:?}: something was deleted");
    }
}

/// A plan applied twice at once (a job submitted twice, a retry while the
/// first still runs): the second run is refused before it reads anything,
/// as is a scan that would rewrite the plan, while the first holds it; once
/// the first has ended, however it ended, the plan can be applied again.
#[test]
fn a_plan_is_worked_on_by_one_run_at_a_time() {
    let backend = BACKENDS[0];
    let mut env = Env::new(backend);
    let schema = unique_schema("twice");
    let outcome = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let plan = env.dir.path().join("plan.jsonl");
    let plan = plan.to_str().unwrap();
    env.djgc_ok(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--plan",
        plan,
        "--json",
    ]);
    let before = env.keys();
    // The first run waits behind a lock on a table, holding the plan.
    let args = ["apply", plan, "--min-age", "0s", "--delete", "--json"];
    let (first, lock) = start_blocked(&env, &schema, &args);
    for second in [
        vec!["apply", plan, "--min-age", "0s", "--delete"],
        vec!["collect", &schema, "--min-age", "0s", "--plan", plan],
    ] {
        let out = output_within(
            djgc_command(env.dir.path(), &second),
            Duration::from_secs(60),
            "second",
        );
        assert_eq!(out.status.code(), Some(2), "{second:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("another djgc run is working on this plan"),
            "{second:?}: {}",
            stderr(&out)
        );
    }
    let out = terminate(first, "first");
    drop(lock);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(env.keys(), before, "nothing was deleted yet");
    // The lock went with the first run.
    let r = env.djgc_ok(&["apply", plan, "--min-age", "0s", "--delete", "--json"]);
    let orphans = outcome.orphans.len() + outcome.young_orphans.len();
    assert_eq!(r["deleted"], orphans, "{r}");
}

/// A database host that takes connections and never answers (a dead
/// server behind a live port): a signal abandons connecting at once, not
/// after the database timeout.
#[test]
fn an_interrupt_abandons_connecting_to_a_silent_database() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().flatten().collect();
        drop(held);
    });
    let env = Env::new(BACKENDS[0]);
    let mut database = env.database.clone();
    database.port = port;
    database.timeout = Duration::from_secs(120);
    let interrupt = djgc::interrupt::Interrupt::default();
    let raiser = interrupt.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        raiser.request();
    });
    let started = Instant::now();
    match djgc::refs::Reader::connect(&database, 1, interrupt) {
        Err(djgc::error::Error::Interrupted(what)) => {
            assert!(what.contains("connecting"), "{what}")
        }
        Err(e) => panic!("not abandoned on the signal: {e}"),
        Ok(_) => panic!("connected to a server that never answers"),
    }
    // Not the 120 s of the database timeout.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// A TCP proxy to a database server that, once frozen, passes nothing more
/// either way and holds every connection open: a host that died.
fn start_freezing_proxy(upstream: u16) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            for (from, to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let frozen = flag.clone();
                std::thread::spawn(move || relay_until_frozen(from, to, &frozen));
            }
        }
    });
    (port, frozen)
}

fn relay_until_frozen(mut from: TcpStream, mut to: TcpStream, frozen: &AtomicBool) {
    let mut buffer = [0u8; 8192];
    while let Ok(n) = from.read(&mut buffer) {
        while frozen.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if n == 0 || to.write_all(&buffer[..n]).is_err() {
            return;
        }
    }
}

/// The database stops answering while orphans are being deleted: the run
/// must not delete on an ever older read, nor wait forever for the next
/// one. It ends within the database timeout, exit 1 (it deleted some), with
/// an error naming the database.
#[test]
fn a_database_that_stops_answering_mid_deletion_ends_the_run() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("frozen");
        let mut spec = FixtureSpec::small(&schema, "main");
        spec.hash_rows = 6000;
        spec.rows_per_content = 1;
        spec.deleted_fraction = 0.4;
        env.fixture(&spec);
        let config = env.write_config(None);
        let port = match backend {
            Backend::MySql => 3306,
            Backend::PostgreSql => 5432,
        };
        let (proxy_port, frozen) = start_freezing_proxy(port);
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("\"port\": {port}"),
            &format!("\"port\": {proxy_port}"),
        );
        std::fs::write(&config, text).unwrap();

        let mut child = djgc_command(
            env.dir.path(),
            &[
                "collect",
                &schema,
                "--min-age",
                "0s",
                "--delete",
                "--verbose",
                "--json",
                "--delete-concurrency",
                "1",
            ],
        )
        .env("DJGC_DB_TIMEOUT", "3s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let report = drain(child.stdout.take().unwrap());
        let lines = BufReader::new(child.stderr.take().unwrap());
        let watcher = {
            let frozen = frozen.clone();
            std::thread::spawn(move || {
                let mut told = String::new();
                for line in lines.lines().map_while(Result::ok) {
                    if line.contains("deleted") {
                        frozen.store(true, Ordering::Relaxed);
                    }
                    told.push_str(&line);
                    told.push('\n');
                }
                told
            })
        };
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(90) {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("{backend:?}: djgc did not end after the database stopped answering");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let told = watcher.join().unwrap();
        assert!(frozen.load(Ordering::Relaxed), "{backend:?}: never froze");
        frozen.store(false, Ordering::Relaxed);
        assert_eq!(status.code(), Some(1), "{backend:?}: {told}");
        assert!(told.contains("database"), "{backend:?}: {told}");
        // Stopped mid-deletion, or unable to make the final re-check: either
        // way the report says the run could not vouch for what it did.
        let r: Value = serde_json::from_slice(&report.join().unwrap()).unwrap();
        assert!(
            r["stopped"].is_string() || r["unverified"] == true,
            "{backend:?}: {r}"
        );
    }
}

// --- 6. references written as DataJoint resolves them -----------------------

/// References with `.` segments, repeated or trailing `/` name the objects
/// DataJoint reads through them; those objects are live.
#[test]
fn references_protect_what_they_name_however_they_are_written() {
    for mut env in crate::common::all_envs() {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let schema = unique_schema("spelled");
        env.fixture(&FixtureSpec::small(&schema, "main"));
        let hash_table = format!("{}.{}", env.db.quote(&schema), env.db.quote(HASH_TABLE));
        let npy_table = format!("{}.{}", env.db.quote(&schema), env.db.quote(NPY_TABLE));
        let folder_table = format!("{}.{}", env.db.quote(&schema), env.db.quote(FOLDER_TABLE));
        let dotted = format!("_hash/{schema}/aaaaaaaaaaaaaaaaaaaaaaaaaa");
        let doubled = format!("_hash/{schema}/bbbbbbbbbbbbbbbbbbbbbbbbbb");
        let npy = format!("_schema/{schema}/npy_item/id=9003/arr_tok.npy");
        let folder = format!("_schema/{schema}/folder_item/id=9004/obj_tok");
        for key in [&dotted, &doubled, &npy] {
            env.put(key, "live");
        }
        env.put(&format!("{folder}/0.0"), "live");
        env.put(&format!("{folder}.manifest.json"), "{}");
        let row = |table: &str, id: u32, column: &str, path: String| {
            format!(
                "INSERT INTO {table} (id, {column}) VALUES \
                 ({id}, '{{\"path\": \"{path}\", \"store\": \"main\"}}')"
            )
        };
        env.sql(&row(
            &hash_table,
            9001,
            "data",
            dotted.replace(&format!("{schema}/"), &format!("{schema}/./")),
        ));
        env.sql(&row(
            &hash_table,
            9002,
            "data",
            doubled.replace(&format!("{schema}/"), &format!("{schema}//")),
        ));
        env.sql(&row(
            &npy_table,
            9003,
            "arr",
            npy.replace("/id=", "//./id="),
        ));
        env.sql(&row(&folder_table, 9004, "obj", format!("{folder}/")));
        env.write_config(None);
        let out = env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--delete",
            "--force",
        ]);
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "{what}: {}",
            stderr(&out)
        );
        for key in [
            dotted.clone(),
            doubled.clone(),
            npy.clone(),
            format!("{folder}/0.0"),
            format!("{folder}.manifest.json"),
        ] {
            assert!(
                env.exists(&key),
                "{what}: {key} was deleted though a row names it"
            );
        }
    }
}

// --- 7. tables the account cannot read ---------------------------------------

/// A datajoint.json for `env`'s store and database, connecting as `user`.
fn config_as(env: &Env, user: &str, password: &str) {
    let path = env.write_config(None);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "\"user\": \"djgc\", \"password\": \"djgc\"",
        &format!("\"user\": \"{user}\", \"password\": \"{password}\""),
    );
    assert!(text.contains(user));
    std::fs::write(&path, text).unwrap();
}

/// A least-privilege account that may read only some of a schema's tables
/// (MariaDB hides the others from it) or that a row-level security policy
/// shows only some rows (PostgreSQL) must get exit 3 naming what it cannot
/// read, never a deletion.
#[test]
fn an_account_that_cannot_read_every_table_or_row_deletes_nothing() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("privs");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let user = unique_schema("lp");
        let table = |name: &str| format!("{}.{}", env.db.quote(&schema), env.db.quote(name));
        match backend {
            Backend::MySql => {
                env.sql(&format!("DROP USER IF EXISTS '{user}'@'127.0.0.1'"));
                env.sql(&format!(
                    "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw'"
                ));
                env.sql(&format!(
                    "GRANT SELECT ON {} TO '{user}'@'127.0.0.1'",
                    table(HASH_TABLE)
                ));
            }
            Backend::PostgreSql => {
                env.sql(&format!("DROP ROLE IF EXISTS {user}"));
                env.sql(&format!("CREATE ROLE {user} LOGIN PASSWORD 'pw'"));
                env.sql(&format!(
                    "GRANT USAGE ON SCHEMA {} TO {user}",
                    env.db.quote(&schema)
                ));
                env.sql(&format!(
                    "GRANT SELECT ON {}, {} TO {user}",
                    table(HASH_TABLE),
                    table(FOLDER_TABLE)
                ));
            }
        }
        config_as(&env, &user, "pw");
        let before = env.keys();
        let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--force"]);
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        let told = stderr(&out);
        assert!(
            told.contains(&schema) || told.contains(NPY_TABLE),
            "{backend:?}: {told}"
        );
        assert_eq!(env.keys(), before, "{backend:?}: something was deleted");

        if backend == Backend::PostgreSql {
            // Every table readable, but a policy hides most rows of one.
            env.sql(&format!("GRANT SELECT ON {} TO {user}", table(NPY_TABLE)));
            env.sql(&format!(
                "ALTER TABLE {} ENABLE ROW LEVEL SECURITY",
                table(NPY_TABLE)
            ));
            env.sql(&format!(
                "CREATE POLICY few ON {} FOR SELECT TO {user} USING (id < 3)",
                table(NPY_TABLE)
            ));
            let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--force"]);
            assert_eq!(out.status.code(), Some(3), "RLS: {}", stderr(&out));
            assert!(stderr(&out).contains(NPY_TABLE), "RLS: {}", stderr(&out));
            assert_eq!(env.keys(), before, "RLS: something was deleted");
        }
        let _ = &truth;
        match backend {
            Backend::MySql => env.sql(&format!("DROP USER IF EXISTS '{user}'@'127.0.0.1'")),
            Backend::PostgreSql => {
                env.sql(&format!("DROP OWNED BY {user}"));
                env.sql(&format!("DROP ROLE IF EXISTS {user}"));
            }
        }
    }
}

// --- 8. the smaller ones ------------------------------------------------------

/// A schema named twice is collected once; an age beyond the calendar and a
/// shard of a store folded past the hash length are answered, not panicked on.
#[test]
fn odd_but_valid_arguments_are_answered_not_doubled_or_panicked_on() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("twice");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let once = env.djgc_ok(&["scan", &schema, "--min-age", "0s", "--json"]);
    let twice = env.djgc_ok(&["scan", &schema, &schema, "--min-age", "0s", "--json"]);
    assert_eq!(twice["orphaned"], truth.orphans.len());
    assert_eq!(twice["stored"], once["stored"]);
    assert_eq!(twice["schemas"], serde_json::json!([schema]));
    let out = env.djgc(&[
        "collect",
        &schema,
        &schema,
        "--min-age",
        "0s",
        "--delete",
        "--json",
    ]);
    assert_eq!(crate::common::report(&out)["deleted"], truth.orphans.len());

    let out = env.djgc(&["scan", &schema, "--min-age", "500000000000y", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(crate::common::report(&out)["orphaned"], 0);

    env.write_config(Some(&[7, 7]));
    let out = env.djgc(&[
        "scan",
        &schema,
        "--min-age",
        "0s",
        "--shard",
        "1/3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// In the legacy root layout (`schema_prefix: ""`) a schema's folder is a
/// top-level folder: a schema whose folder is the hash root, or holds the
/// `filepath_prefix` content, is refused.
#[test]
fn legacy_layout_schemas_may_not_overlap_other_prefixes() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("legacy");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config_with(
        None,
        &format!(r#", "schema_prefix": "", "filepath_prefix": "{schema}/files""#),
    );
    env.put(&format!("{schema}/files/raw.dat"), "a user's own file");
    let before = env.keys();
    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("filepath_prefix"), "{}", stderr(&out));
    assert_eq!(env.keys(), before);
}

/// `djgc config` masks every secret DataJoint's stores can hold, including
/// credentials inside a URL, and a wrongly typed secret is not echoed.
#[test]
fn config_never_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("datajoint.json"),
        r#"{"database": {"host": "db", "user": "lab", "password": "pw-in-file"},
            "stores": {"default": "main",
              "main": {"protocol": "file", "location": "/data"},
              "blob": {"protocol": "azure", "container": "c", "location": "l",
                       "account_name": "acct", "account_key": "azure-account-key-secret",
                       "connection_string": "DefaultEndpointsProtocol=https;AccountKey=conn-string-secret"},
              "lake": {"protocol": "s3", "endpoint": "https://ak:url-secret@s3.example.org",
                       "bucket": "b", "location": "l", "proxy_server": "http://u:proxy-secret@proxy:3128"},
              "typed": {"protocol": "s3", "endpoint": "e", "bucket": "b", "location": "l",
                        "access_key": "a", "secret_key": 123456789}}}"#,
    )
    .unwrap();
    for args in [&["config"][..], &["config", "--json"]] {
        let out = djgc_command(dir.path(), args).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for secret in [
            "pw-in-file",
            "azure-account-key-secret",
            "conn-string-secret",
            "url-secret",
            "proxy-secret",
            "123456789",
        ] {
            assert!(!all.contains(secret), "{args:?} printed {secret}:\n{all}");
        }
    }
}

/// `merge-reports` refuses a shard's report from another run: the shards of
/// one run share its run id.
#[test]
fn merge_reports_refuses_a_shard_of_another_run() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("runid");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let shard = |index: usize, run: &str| {
        let path = env.dir.path().join(format!("{run}-{index}.json"));
        let out = djgc_command(
            env.dir.path(),
            &[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--quiet",
                "--shard",
                &format!("{index}/2"),
                "--report",
                path.to_str().unwrap(),
            ],
        )
        .env("DJGC_RUN_ID", run)
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        path
    };
    let (old, today, today_too) = (shard(1, "monday"), shard(0, "friday"), shard(1, "friday"));
    let merge = |files: &[&PathBuf]| {
        let mut args = vec!["merge-reports".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        env.djgc(&args)
    };
    let out = merge(&[&today, &old]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("monday"), "{}", stderr(&out));
    let out = merge(&[&today, &today_too]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(crate::common::report(&out)["run_id"], "friday");
}
