//! The safety model end to end (issue 4): partitioned objects, references
//! and keys that point where DataJoint never writes, quarantine, plans, and
//! runs killed part-way. Real databases, the real binary, file and S3 stores.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{all_envs, cloud_envs, read_lines, stderr, unique_schema, Env};
use djgc::fixture::FixtureSpec;

#[test]
fn partitioned_objects_are_judged_and_collected_like_the_rest() {
    for mut env in all_envs() {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let schema = unique_schema("part");
        env.fixture(&FixtureSpec::small(&schema, "main"));
        let table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        let live = format!("_schema/subject=m1/session=2/{schema}/npy_item/id=9001/arr_a.npy");
        let live_one_attr = format!("_schema/session=4/{schema}/npy_item/id=9002/arr_b.npy");
        let orphan = format!("_schema/subject=m1/session=3/{schema}/npy_item/id=9003/arr_c.npy");
        let orphan_folder = format!("_schema/subject=m2/{schema}/npy_item/id=9004/obj_d/0.0");
        let other_schema = "_schema/subject=m1/session=3/someone_else/t/id=1/f".to_string();
        let not_partition = format!("_schema/subject=m1/mouse=3/{schema}/t/id=1/f");
        for key in [
            &live,
            &live_one_attr,
            &orphan,
            &orphan_folder,
            &other_schema,
            &not_partition,
        ] {
            env.put(key, "partitioned");
        }
        env.sql(&format!(
            "INSERT INTO {table} (id, arr) VALUES \
             (9001, '{{\"path\": \"{live}\", \"store\": \"main\"}}'), \
             (9002, '{{\"path\": \"{live_one_attr}\", \"store\": \"main\"}}')"
        ));
        env.write_config_with(None, r#", "partition_pattern": "{subject}/{session}""#);
        let listed = env.dir.path().join("orphans.txt");
        let r = env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--orphans-out",
            listed.to_str().unwrap(),
        ]);
        let partitioned: Vec<String> = read_lines(&listed)
            .into_iter()
            .filter(|k| k.contains('='))
            .filter(|k| !k.starts_with(&format!("_schema/{schema}/")))
            .collect();
        let mut expected = vec![orphan.clone(), orphan_folder.clone()];
        expected.sort();
        assert_eq!(partitioned, expected, "{what}");
        assert!(r["warnings"].as_array().unwrap().is_empty(), "{what}: {r}");

        let r = env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--delete",
            "--force",
        ]);
        assert_eq!(r["errors"], 0, "{what}");
        for key in [&live, &live_one_attr, &other_schema, &not_partition] {
            assert!(env.exists(key), "{what}: {key} was deleted");
        }
        for key in [&orphan, &orphan_folder] {
            assert!(!env.exists(key), "{what}: {key} was not collected");
        }
        if env.kind() == crate::common::Kind::File {
            assert!(
                !env.store_root().join("_schema/subject=m2").exists(),
                "{what}: emptied partition folder left behind"
            );
        }
    }
}

#[test]
fn references_outside_their_sections_are_reported_and_protect_nothing_else() {
    for mut env in all_envs() {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let schema = unique_schema("badref");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        let elsewhere = "_schema/someone_else/t/id=1/f_x.npy";
        env.put(elsewhere, "another schema's object");
        env.sql(&format!(
            "INSERT INTO {table} (id, arr) VALUES \
             (9001, '{{\"path\": \"../../x\", \"store\": \"main\"}}'), \
             (9002, '{{\"path\": \"/etc/passwd\", \"store\": \"main\"}}'), \
             (9003, '{{\"path\": \"{elsewhere}\", \"store\": \"main\"}}')"
        ));
        env.write_config(None);
        let r = env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--delete",
            "--force",
        ]);
        let warnings = r["warnings"].to_string();
        for path in ["../../x", "/etc/passwd", elsewhere] {
            assert!(
                warnings.contains(path),
                "{what}: {path} not reported: {warnings}"
            );
        }
        assert_eq!(r["deleted"], truth.orphans.len(), "{what}");
        assert!(env.exists(elsewhere), "{what}");
        assert!(std::path::Path::new("/etc/passwd").exists());
    }
}

/// Keys of the store under `prefix`.
fn keys_under(env: &Env, prefix: &str) -> Vec<String> {
    env.keys()
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// Makes a small fixture and quarantines its orphans; returns the schema,
/// the fixture's truth, the store's contents before, and djgc's report.
fn quarantine_a_fixture(
    env: &mut Env,
    label: &str,
) -> (
    String,
    djgc::fixture::FixtureOutcome,
    BTreeMap<String, Vec<u8>>,
    serde_json::Value,
) {
    let schema = unique_schema(label);
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let before = env.contents();
    let args = [
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--json",
        "--delete",
        "--quarantine",
    ];
    let report = env.djgc_ok(&args);
    (schema, truth, before, report)
}

#[test]
fn quarantine_moves_orphans_aside_and_restore_puts_them_back_byte_for_byte() {
    for mut env in all_envs().chain(cloud_envs()) {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let (schema, truth, before, r) = quarantine_a_fixture(&mut env, "quar");
        assert_eq!(r["quarantined"], truth.orphans.len(), "{what}: {r}");
        assert_eq!(
            (r["deleted"].as_u64(), r["errors"].as_u64()),
            (Some(0), Some(0))
        );
        let run = r["quarantine_run"].as_str().unwrap().to_string();
        let run_prefix = format!("_trash/{run}/");
        let mut expected: Vec<String> = truth
            .orphans
            .iter()
            .map(|k| format!("{run_prefix}{k}"))
            .collect();
        expected.push(format!("{run_prefix}djgc-manifest/part-000000.jsonl"));
        expected.push(format!("{run_prefix}djgc-run.json"));
        expected.sort();
        assert_eq!(keys_under(&env, &run_prefix), expected, "{what}");
        let contents = env.contents();
        for name in ["djgc-manifest/part-000000.jsonl", "djgc-run.json"] {
            let text = String::from_utf8(contents[&format!("{run_prefix}{name}")].clone()).unwrap();
            for secret in [
                crate::common::S3_SECRET_KEY,
                crate::common::S3_ACCESS_KEY,
                "password",
            ] {
                assert!(!text.contains(secret), "{what}: {name} holds {secret}");
            }
        }
        for key in &truth.orphans {
            assert!(!env.exists(key), "{what}: {key} still in place");
        }
        for key in &truth.live_files {
            assert_eq!(env.contents().get(key), before.get(key), "{what}: {key}");
        }
        // A second scan no longer sees the quarantined objects, nor the trash.
        let again = env.djgc_ok(&["scan", &schema, "--min-age", "0s", "--json"]);
        assert_eq!(again["orphaned"], 0, "{what}");
        // With nothing to move, no run is made.
        let args = [
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--delete",
            "--quarantine",
        ];
        let empty = env.djgc_ok(&args);
        assert!(empty["quarantine_run"].is_null(), "{what}: {empty}");
        assert_eq!(keys_under(&env, "_trash/"), expected, "{what}");

        let out = env.djgc(&["restore", &run, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        let restored = crate::common::report(&out);
        assert_eq!(restored["restored"], truth.orphans.len(), "{what}");
        assert_eq!(env.contents(), before, "{what}: restore is not exact");

        // Restoring again finds nothing to do.
        let out = env.djgc(&["restore", &run]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no quarantine run"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn purge_waits_for_the_grace_period_then_deletes_and_puts_back_what_is_referenced() {
    for mut env in all_envs().chain(cloud_envs()) {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let (schema, truth, before, r) = quarantine_a_fixture(&mut env, "purge");
        let run = r["quarantine_run"].as_str().unwrap().to_string();

        // While quarantined, a row comes to reference an orphaned npy file,
        // and a writer re-uploads an orphaned hash that a new row reuses.
        let npy = truth
            .orphans
            .iter()
            .find(|k| k.ends_with(".npy"))
            .unwrap()
            .clone();
        let hash = truth
            .orphans
            .iter()
            .find(|k| k.starts_with("_hash/"))
            .unwrap()
            .clone();
        let npy_table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        let hash_table = format!("{}.{}", env.db.quote(&schema), env.db.quote("#hash_item"));
        env.sql(&format!(
            "INSERT INTO {npy_table} (id, arr) VALUES \
             (9001, '{{\"path\": \"{npy}\", \"store\": \"main\"}}')"
        ));
        env.sql(&format!(
            "INSERT INTO {hash_table} (id, data) VALUES \
             (9002, '{{\"path\": \"{hash}\", \"store\": \"main\"}}')"
        ));
        env.put(&hash, std::str::from_utf8(&before[&hash]).unwrap());

        let young = crate::common::report(&env.djgc(&[
            "purge",
            "--older-than",
            "1h",
            "--json",
            "--delete",
        ]));
        assert_eq!(
            (young["runs_kept"].as_u64(), young["purged"].as_u64()),
            (Some(1), Some(0)),
            "{what}"
        );
        let dry = crate::common::report(&env.djgc(&["purge", "--older-than", "0s", "--json"]));
        assert_eq!(dry["purged"], truth.orphans.len() - 2, "{what}: {dry}");
        assert!(
            !keys_under(&env, &format!("_trash/{run}/")).is_empty(),
            "{what}"
        );

        let out = env.djgc(&["purge", "--older-than", "0s", "--json", "--delete"]);
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        let done = crate::common::report(&out);
        assert_eq!(done["purged"], truth.orphans.len() - 2, "{what}: {done}");
        assert_eq!(done["rescued"]["restored"], 1, "{what}: {done}");
        assert_eq!(done["rescued"]["already_in_place"], 1, "{what}: {done}");
        assert!(
            keys_under(&env, "_trash/").is_empty(),
            "{what}: trash left behind"
        );
        assert_eq!(env.contents().get(&npy), before.get(&npy), "{what}");
        assert_eq!(env.contents().get(&hash), before.get(&hash), "{what}");
        for key in truth.orphans.iter().filter(|k| **k != npy && **k != hash) {
            assert!(!env.exists(key), "{what}: {key}");
        }
        for key in &truth.live_files {
            assert!(env.exists(key), "{what}: {key}");
        }
    }
}

#[test]
fn a_trash_prefix_that_overlaps_a_section_is_refused() {
    let mut env = Env::new(crate::common::BACKENDS[0]);
    let schema = unique_schema("trashclash");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let before = env.keys();
    for prefix in ["_hash", "_schema/x", "/", "../up"] {
        let out = env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--delete",
            "--quarantine",
            "--trash-prefix",
            prefix,
        ]);
        assert_eq!(out.status.code(), Some(2), "{prefix}: {}", stderr(&out));
        assert!(stderr(&out).contains("trash"), "{}", stderr(&out));
    }
    assert_eq!(env.keys(), before);
}

#[test]
fn apply_deletes_exactly_the_plan_skipping_what_changed_and_refuses_another_store() {
    for mut env in all_envs() {
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        let schema = unique_schema("apply");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let config = env.write_config(None);
        let plan = env.dir.path().join("plan.jsonl");
        let plan_arg = plan.to_str().unwrap();
        env.djgc_ok(&[
            "scan",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--plan",
            plan_arg,
        ]);
        let text = std::fs::read_to_string(&plan).unwrap();
        assert_eq!(text.lines().count(), truth.orphans.len() + 1, "{what}");
        for secret in [
            crate::common::S3_SECRET_KEY,
            "\"password\"",
            "secret_key",
            "access_key",
        ] {
            assert!(!text.contains(secret), "{what}: the plan holds {secret}");
        }

        // Since the scan: one orphan rewritten, one deleted by someone
        // else, one referenced by a new row, one new orphan.
        let schema_orphans: Vec<&String> = truth
            .orphans
            .iter()
            .filter(|k| k.ends_with(".npy"))
            .collect();
        let (changed, vanished, reused) = (schema_orphans[0], schema_orphans[1], schema_orphans[2]);
        env.put(changed, "rewritten with another size");
        match env.kind() {
            crate::common::Kind::File => {
                std::fs::remove_file(env.store_root().join(vanished)).unwrap()
            }
            _ => {
                let (_, store) = env.remote.as_ref().unwrap();
                djgc::store::Store::delete(
                    store.as_ref(),
                    "_schema/",
                    std::slice::from_ref(vanished),
                );
            }
        }
        let table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        env.sql(&format!(
            "INSERT INTO {table} (id, arr) VALUES \
             (9001, '{{\"path\": \"{reused}\", \"store\": \"main\"}}')"
        ));
        let newcomer = format!("_schema/{schema}/npy_item/id=9999/arr_new.npy");
        env.put(&newcomer, "not in the plan");

        let before = env.keys();
        let dry = env.djgc_ok(&["apply", plan_arg, "--min-age", "0s", "--json"]);
        assert_eq!(dry["changed_skipped"], 2, "{what}: {dry}");
        assert_eq!(env.keys(), before, "{what}: a dry run changed the store");

        let r = env.djgc_ok(&["apply", plan_arg, "--min-age", "0s", "--json", "--delete"]);
        assert_eq!(r["changed_skipped"], 2, "{what}: {r}");
        assert_eq!(r["rescued"], 1, "{what}: {r}");
        assert_eq!(r["deleted"], truth.orphans.len() - 3, "{what}: {r}");
        for key in [changed, reused, &newcomer] {
            assert!(env.exists(key), "{what}: {key}");
        }
        for key in &truth.live_files {
            assert!(env.exists(key), "{what}: {key}");
        }

        // The same plan against a config naming another location is refused.
        let text = std::fs::read_to_string(&config).unwrap();
        let moved = match env.kind() {
            crate::common::Kind::File => text.replace("/store\"", "/elsewhere\""),
            _ => text.replace("\"location\": \"t/", "\"location\": \"u/"),
        };
        assert_ne!(moved, text);
        std::fs::create_dir_all(env.dir.path().join("elsewhere")).unwrap();
        std::fs::write(&config, moved).unwrap();
        let out = env.djgc(&["apply", plan_arg, "--min-age", "0s", "--delete"]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("location: plan"),
            "{what}: {}",
            stderr(&out)
        );
    }
}

/// What a writer did while djgc ran: rows it committed and the object each
/// needs, with its content.
struct Written {
    rows: Vec<(String, Vec<u8>)>,
    reused: usize,
}

/// Acts like a DataJoint client while `running` holds: inserts rows with
/// freshly uploaded objects, and rows whose content equals an orphaned
/// hash object (uploading it only if it is missing, as DataJoint does).
fn write_while(
    env: &Env,
    schema: &str,
    hash_orphans: &[(String, Vec<u8>)],
    running: &dyn Fn() -> bool,
) -> Written {
    let npy = format!("{}.{}", env.db.quote(schema), env.db.quote("_npy_item"));
    let hash = format!("{}.{}", env.db.quote(schema), env.db.quote("#hash_item"));
    let mut written = Written {
        rows: Vec::new(),
        reused: 0,
    };
    let mut i = 0;
    while running() {
        let id = 20_000 + i;
        let key = format!("_schema/{schema}/npy_item/id={id}/arr_w{i}.npy");
        let body = format!("written while collecting {i}").into_bytes();
        match &env.remote {
            Some((_, store)) => {
                djgc::store::Store::put(store.as_ref(), &key, body.clone()).unwrap()
            }
            None => crate::common::put_file(
                &env.store_root(),
                &key,
                &body,
                std::time::SystemTime::now(),
            ),
        }
        env.sql(&format!(
            "INSERT INTO {npy} (id, arr) VALUES ({id}, '{{\"path\": \"{key}\", \"store\": \"main\"}}')"
        ));
        written.rows.push((key, body));

        if let Some((key, body)) = hash_orphans.get(i) {
            if !env.exists(key) {
                env.put(key, std::str::from_utf8(body).unwrap());
            }
            env.sql(&format!(
                "INSERT INTO {hash} (id, data) VALUES ({id}, '{{\"path\": \"{key}\", \"store\": \"main\"}}')"
            ));
            written.rows.push((key.clone(), body.clone()));
            written.reused += 1;
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    written
}

#[test]
fn a_writer_inserting_rows_during_collect_loses_nothing_unreported() {
    for quarantine in [false, true] {
        for mut env in all_envs() {
            let what = format!("{:?}/{:?} quarantine={quarantine}", env.kind(), env.backend);
            let schema = unique_schema("writer");
            let mut spec = FixtureSpec::small(&schema, "main");
            spec.hash_rows = 4000;
            spec.npy_rows = 3000;
            spec.folder_rows = 100;
            let truth = env.fixture(&spec);
            env.write_config(None);
            let before = env.contents();
            let hash_orphans: Vec<(String, Vec<u8>)> = truth
                .orphans
                .iter()
                .filter(|k| k.starts_with("_hash/"))
                .map(|k| (k.clone(), before[k].clone()))
                .collect();
            // The fixture was just written (a file's age counts from its
            // arrival, its ctime): let it age past --min-age, which protects
            // objects uploaded for rows not yet inserted.
            std::thread::sleep(Duration::from_secs(3));
            let mut args = vec![
                "collect",
                &schema,
                "--min-age",
                "2s",
                "--delete",
                "--json",
                "--delete-concurrency",
                "1",
            ];
            if quarantine {
                args.push("--quarantine");
            }
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_djgc"))
                .args(&args)
                .current_dir(env.dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let done = std::sync::atomic::AtomicBool::new(false);
            let written = std::thread::scope(|scope| {
                let writer = scope.spawn(|| {
                    write_while(&env, &schema, &hash_orphans, &|| {
                        !done.load(std::sync::atomic::Ordering::Relaxed)
                    })
                });
                let status = child.wait().unwrap();
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                let written = writer.join().unwrap();
                assert!(status.code().is_some_and(|c| c <= 1), "{what}: {status:?}");
                written
            });
            let out = child.wait_with_output().unwrap();
            let r = crate::common::report(&out);
            assert!(written.reused > 0, "{what}: the writer reused nothing");

            if quarantine {
                let purge = env.djgc(&["purge", "--older-than", "0s", "--delete"]);
                assert_eq!(purge.status.code(), Some(0), "{what}: {}", stderr(&purge));
            }
            let lost: Vec<String> = serde_json::from_value(r["lost_keys"].clone()).unwrap();
            assert!(r["lost"].as_u64().unwrap() <= 100, "{what}: {r}");
            if quarantine {
                assert!(lost.is_empty(), "{what}");
            }
            let now = env.contents();
            for (key, body) in &written.rows {
                assert!(
                    now.get(key) == Some(body) || lost.contains(key),
                    "{what}: the row for {key} does not load, and no loss was reported"
                );
            }
            for key in &truth.live_files {
                assert_eq!(now.get(key), before.get(key), "{what}: {key}");
            }
            eprintln!(
                "{what}: {} rows written ({} reusing orphans); rescued {}, lost {}",
                written.rows.len(),
                written.reused,
                r["rescued"],
                r["lost"]
            );
        }
    }
}
