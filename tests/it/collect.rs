//! End to end: real databases, DataJoint-format tables, the real binary, on
//! file stores and on the S3 server. Every case runs on MariaDB and PostgreSQL.

use crate::common::{
    all_files, read_lines, report, stderr, unique_schema, Env, Kind, BACKENDS, KINDS,
};
use djgc::fixture::FixtureSpec;

/// Files that must survive any collection of `schema`.
fn add_user_content(env: &Env, schema: &str) -> Vec<String> {
    let survivors = vec![
        "datajoint_store.json".to_string(),
        "notes/readme.txt".to_string(),
        format!("_hash/{schema}/not-a-hash.txt"),
        format!("_hash/{schema}/ih23fsttfdzzbrgqrgnsup5b3i.manifest.json"),
        "_hash/someone_else/ih23fsttfdzzbrgqrgnsup5b3i".to_string(),
        "_schema/someone_else/t/id=1/f_x.npy".to_string(),
        format!("_schema/{schema}_suffix/t/id=1/f_x.npy"),
    ];
    for key in &survivors {
        env.put(key, "user content");
    }
    survivors
}

#[test]
fn same_orphans_then_delete_keeps_every_live_object() {
    for (kind, backend) in KINDS.into_iter().flat_map(|k| BACKENDS.map(|b| (k, b))) {
        for subfolding in [None, Some(&[2usize, 2][..])] {
            let mut env = Env::with_store(backend, kind);
            let schema = unique_schema("e2e");
            let mut spec = FixtureSpec::small(&schema, "main");
            spec.subfolding = subfolding.map(<[usize]>::to_vec);
            let truth = env.fixture(&spec);
            let survivors = add_user_content(&env, &schema);
            // An unreferenced file in the schema section counts like any other.
            let stray = format!("_schema/{schema}/npy_item/stray.bin");
            env.put(&stray, "left by a crashed insert");
            let mut expected = truth.orphans.clone();
            expected.push(stray);
            expected.sort();
            env.write_config(subfolding);

            let listed = env.dir.path().join("orphans.txt");
            let out = env.djgc(&[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--json",
                "--orphans-out",
                listed.to_str().unwrap(),
            ]);
            let case = format!("{kind:?} {backend:?} subfolding {subfolding:?}");
            assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
            let r = report(&out);
            assert_eq!(read_lines(&listed), expected, "{case}");
            assert_eq!(r["orphaned"], expected.len(), "{case}");
            assert_eq!(r["hash_referenced"], truth.hash_referenced, "{case}");
            assert_eq!(
                r["schema_paths_referenced"], truth.schema_referenced,
                "{case}"
            );
            let hash_orphans = expected.iter().filter(|k| k.starts_with("_hash/")).count();
            assert_eq!(r["hash_orphaned"], hash_orphans, "{case}");
            assert_eq!(
                r["schema_paths_orphaned"],
                expected.len() - hash_orphans,
                "{case}"
            );
            assert_eq!(r["stored"], truth.files + 1, "{case}");
            assert_eq!(r["deleted"], 0, "{case}: scan never deletes");
            assert_eq!(r["dry_run"], true);

            let before = env.keys();
            env.djgc_ok(&["collect", &schema, "--min-age", "0s", "--json"]);
            assert_eq!(env.keys(), before, "{case}: dry run deleted something");

            let r = env.djgc_ok(&[
                "collect",
                &schema,
                "--min-age",
                "0s",
                "--json",
                "--delete",
                "--jobs",
                "3",
            ]);
            assert_eq!(r["deleted"], expected.len(), "{case}");
            assert_eq!(r["errors"], 0, "{case}");
            let orphan_bytes = r["orphaned_bytes"].as_u64().unwrap();
            assert_eq!(r["bytes_freed"].as_u64().unwrap(), orphan_bytes, "{case}");

            let mut remaining = truth.live_files.clone();
            remaining.extend(survivors.clone());
            remaining.sort();
            assert_eq!(env.keys(), remaining, "{case}");
            // Folders of deleted rows are pruned; section roots stay.
            for orphan in truth.orphans.iter().filter(|_| kind == Kind::File) {
                if let Some(row_dir) = orphan.split("/id=").nth(1) {
                    let prefix = &orphan[..orphan.len() - row_dir.len()];
                    let id = row_dir.split('/').next().unwrap();
                    let dir = format!("{prefix}{id}");
                    if !truth
                        .live_files
                        .iter()
                        .any(|k| k.starts_with(&format!("{dir}/")))
                    {
                        assert!(!env.exists(&dir), "{case}: {dir} not pruned");
                    }
                }
            }
            if kind == Kind::File {
                let section_root = env.store_root().join("_schema").join(&schema);
                assert!(section_root.is_dir(), "{case}: section root removed");
            }

            let out = env.djgc(&["scan", &schema, "--min-age", "0s", "--json"]);
            let r = report(&out);
            assert_eq!(r["orphaned"], 0, "{case}: orphans after delete");
            assert_eq!(r["stored"], truth.live_files.len(), "{case}");
        }
    }
}

#[test]
fn several_schemas_are_each_judged_against_their_own_sections() {
    for (kind, backend) in [(Kind::File, BACKENDS[0]), (Kind::S3, BACKENDS[1])] {
        let mut env = Env::with_store(backend, kind);
        let a = unique_schema("multi_a");
        let b = unique_schema("multi_b");
        let truth_a = env.fixture(&FixtureSpec::small(&a, "main"));
        let mut spec_b = FixtureSpec::small(&b, "main");
        spec_b.seed = 7;
        let truth_b = env.fixture(&spec_b);
        env.write_config(None);

        let listed = env.dir.path().join("orphans.txt");
        let out = env.djgc(&[
            "scan",
            &a,
            &b,
            "--min-age",
            "0s",
            "--json",
            "--orphans-out",
            listed.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let mut expected: Vec<String> = truth_a
            .orphans
            .iter()
            .chain(&truth_b.orphans)
            .cloned()
            .collect();
        expected.sort();
        assert_eq!(read_lines(&listed), expected, "{backend:?}");

        // Collecting only `a` leaves `b`'s orphans alone.
        let out = env.djgc(&["collect", &a, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(report(&out)["deleted"], truth_a.orphans.len());
        assert!(truth_b.orphans.iter().all(|k| env.exists(k)), "{backend:?}");
    }
}

/// The object a fixture key belongs to: a hash file, or a row's field
/// (`_schema/{schema}/{table}/id=N/{field}_{token}`, a file or a folder
/// object with its manifest).
fn fixture_object(key: &str) -> String {
    if key.starts_with("_hash/") {
        return key.to_string();
    }
    let field: Vec<&str> = key.split('/').take(5).collect();
    field
        .join("/")
        .trim_end_matches(".manifest.json")
        .to_string()
}

#[test]
fn min_age_keeps_young_orphans_and_counts_them() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("young");
        let mut spec = FixtureSpec::small(&schema, "main");
        spec.young_fraction = 0.5;
        let truth = env.fixture(&spec);
        assert!(!truth.young_orphans.is_empty() && !truth.orphans.is_empty());
        // An unreferenced folder object of which one file arrives late.
        let folder = format!("_schema/{schema}/folder_item/id=999/obj_late");
        let late = format!("{folder}/2");
        for key in [format!("{folder}/0"), format!("{folder}/1"), late.clone()] {
            env.put(&key, "part");
        }
        env.put(&format!("{folder}.manifest.json"), "{}");
        env.write_config(None);

        // Just written, every file arrived now whatever its mtime says: the
        // default --min-age (24h) keeps them all.
        let r = env.djgc_ok(&["scan", &schema, "--json"]);
        let all = truth.orphans.len() + truth.young_orphans.len() + 4;
        assert_eq!(r["orphaned"], 0, "{backend:?}");
        assert_eq!(r["young_skipped"], all, "{backend:?}");

        // Later, some files arrive again (rewritten): they are young, and so
        // is every file of an object one of them belongs to.
        std::thread::sleep(std::time::Duration::from_secs(3));
        let mut young_files = truth.young_orphans.clone();
        young_files.push(late);
        for key in &young_files {
            let path = env.store_root().join(key);
            let content = std::fs::read(&path).unwrap();
            std::fs::write(&path, content).unwrap();
        }
        let young_objects: std::collections::BTreeSet<String> =
            young_files.iter().map(|k| fixture_object(k)).collect();
        let (kept, judged): (Vec<String>, Vec<String>) = truth
            .orphans
            .iter()
            .chain(&truth.young_orphans)
            .cloned()
            .chain(
                ["0", "1", "2"]
                    .iter()
                    .map(|f| format!("{folder}/{f}"))
                    .chain([format!("{folder}.manifest.json")]),
            )
            .partition(|k| young_objects.contains(&fixture_object(k)));
        assert!(kept.len() > young_files.len(), "no object was partly young");
        let r = env.djgc_ok(&["collect", &schema, "--min-age", "2s", "--delete", "--json"]);
        assert_eq!(r["young_skipped"], kept.len(), "{backend:?}");
        assert_eq!(r["deleted"], judged.len(), "{backend:?}");
        assert!(kept.iter().all(|k| env.exists(k)), "{backend:?}");
        assert!(!judged.iter().any(|k| env.exists(k)), "{backend:?}");

        let out = env.djgc(&["scan", &schema, "--min-age", "0s", "--json"]);
        assert_eq!(report(&out)["orphaned"], kept.len(), "{backend:?}");
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("jobs");
        let mut spec = FixtureSpec::small(&schema, "main");
        spec.hash_rows = 3000;
        spec.npy_rows = 1500;
        spec.subfolding = Some(vec![1]);
        let truth = env.fixture(&spec);
        env.write_config(Some(&[1]));
        for jobs in ["1", "2", "8"] {
            let listed = env.dir.path().join(format!("orphans-{jobs}.txt"));
            let out = env.djgc(&[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--jobs",
                jobs,
                "--json",
                "--orphans-out",
                listed.to_str().unwrap(),
            ]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert_eq!(
                read_lines(&listed),
                truth.orphans,
                "{backend:?} --jobs {jobs}"
            );
        }
    }
}

#[test]
fn malformed_json_blocks_deletion_and_names_the_row() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("badjson");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        match backend {
            djgc::config::Backend::MySql => {
                // DataJoint's CHECK (json_valid) would refuse it; damaged data gets past it.
                env.sql(&format!(
                    "SET STATEMENT check_constraint_checks=0 FOR \
                     INSERT INTO {table} (id, arr) VALUES (9001, '{{\"path\": \"_schema/x')"
                ));
            }
            djgc::config::Backend::PostgreSql => {
                // jsonb is always valid JSON; a path of the wrong type is the damage.
                env.sql(&format!(
                    "INSERT INTO {table} (id, arr) VALUES (9001, '{{\"path\": 17}}')"
                ));
            }
        }
        env.write_config(None);
        let before = all_files(&env.store_root());
        let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{schema}._npy_item.arr")) && err.contains("id=9001"),
            "{backend:?}: {err}"
        );
        assert_eq!(report(&out)["deleted"], 0);
        assert_eq!(
            all_files(&env.store_root()),
            before,
            "{backend:?}: something was deleted"
        );
        assert!(!truth.orphans.is_empty());
    }
}

#[test]
fn listing_error_blocks_deletion() {
    let mut env = Env::new(djgc::config::Backend::MySql);
    let schema = unique_schema("linkroot");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    // The hash section root replaced by a link to a folder elsewhere.
    let hash_dir = env.store_root().join("_hash").join(&schema);
    let moved = env.dir.path().join("elsewhere");
    std::fs::rename(&hash_dir, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &hash_dir).unwrap();
    env.write_config(None);

    let before = all_files(&env.store_root());
    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(all_files(&env.store_root()), before);
    assert!(truth.orphans.iter().any(|k| k.starts_with("_schema/")));
}

#[test]
fn symlinks_inside_a_section_are_never_followed() {
    let mut env = Env::new(djgc::config::Backend::PostgreSql);
    let schema = unique_schema("links");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    let precious = env.dir.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    crate::common::put_old_file(&precious, "data.bin", "not in the store");
    let link = env
        .store_root()
        .join(format!("_schema/{schema}/npy_item/link"));
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    env.write_config(None);

    let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(report(&out)["deleted"], truth.orphans.len());
    assert!(precious.join("data.bin").exists());
    assert!(link.symlink_metadata().is_ok());
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let mut env = Env::new(djgc::config::Backend::MySql);
    let schema = unique_schema("usage");
    env.fixture(&FixtureSpec::small(&schema, "main"));

    let out = env.djgc(&["scan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("At least one schema must be provided"));

    // No datajoint.json anywhere up to the .git boundary.
    std::fs::create_dir(env.dir.path().join(".git")).unwrap();
    let out = env.djgc(&["scan", &schema]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no datajoint.json found"),
        "{}",
        stderr(&out)
    );

    env.write_config(None);
    let cases: [(&[&str], &str); 4] = [
        (
            &["scan", &schema, "--store", "nope"],
            "unknown store \"nope\"",
        ),
        (&["scan", &schema, "--min-age", "soon"], "--min-age"),
        (&["scan", "djgc_no_such_schema"], "does not exist"),
        (
            &["scan", &schema, "--config", "/nonexistent/dj.json"],
            "does not exist",
        ),
    ];
    for (args, message) in cases {
        let out = env.djgc(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }

    let missing_location = env.dir.path().join("gone");
    std::fs::write(
        env.dir.path().join("datajoint.json"),
        format!(
            r#"{{"database": {{"host": "127.0.0.1", "user": "djgc", "password": "djgc"}},
                "stores": {{"default": "main", "main": {{"protocol": "file", "location": "{}"}},
                            "odd": {{"protocol": "ftp", "location": "/x"}}}}}}"#,
            missing_location.display()
        ),
    )
    .unwrap();
    let out = env.djgc(&["scan", &schema]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = env.djgc(&["scan", &schema, "--store", "odd"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown protocol \"ftp\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn human_report_shows_sections_and_totals() {
    let mut env = Env::new(djgc::config::Backend::MySql);
    let schema = unique_schema("human");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let out = env.djgc(&["scan", &schema, "--min-age", "0s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("_hash/{schema}/")), "{text}");
    assert!(text.contains(&format!("_schema/{schema}/")), "{text}");
    assert!(
        text.contains(&format!("Orphaned (unreferenced): {}", truth.orphans.len())),
        "{text}"
    );
    assert!(text.contains("[DRY RUN - no changes made]"), "{text}");
}

#[test]
fn references_without_a_store_count_for_the_default_store_only() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("nullstore");
        env.fixture(&FixtureSpec::small(&schema, "main"));
        let table = format!("{}.{}", env.db.quote(&schema), env.db.quote("_npy_item"));
        let null_store = format!("_schema/{schema}/npy_item/id=9001/arr_null.npy");
        let no_store = format!("_schema/{schema}/npy_item/id=9002/arr_none.npy");
        let other_store = format!("_schema/{schema}/npy_item/id=9003/arr_other.npy");
        for key in [&null_store, &no_store, &other_store] {
            env.put(key, "array");
        }
        env.sql(&format!(
            "INSERT INTO {table} (id, arr) VALUES \
             (9001, '{{\"path\": \"{null_store}\", \"store\": null}}'), \
             (9002, '{{\"path\": \"{no_store}\"}}'), \
             (9003, '{{\"path\": \"{other_store}\", \"store\": \"archive\"}}')"
        ));
        env.write_config(None);
        let listed = env.dir.path().join("orphans.txt");
        env.djgc_ok(&[
            "scan",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--orphans-out",
            listed.to_str().unwrap(),
        ]);
        let orphans = read_lines(&listed);
        assert!(
            orphans.contains(&other_store),
            "{backend:?}: another store's reference protected it"
        );
        assert!(
            !orphans.contains(&null_store) && !orphans.contains(&no_store),
            "{backend:?}"
        );

        // Collected by name while another store is the default, null-store references do not count.
        let config = env.write_config(None);
        let text = std::fs::read_to_string(&config).unwrap().replace(
            r#""default": "main""#,
            r#""default": "archive", "archive": {"protocol": "file", "location": "/nonexistent"}"#,
        );
        std::fs::write(&config, text).unwrap();
        env.djgc_ok(&[
            "scan",
            &schema,
            "--store",
            "main",
            "--min-age",
            "0s",
            "--json",
            "--orphans-out",
            listed.to_str().unwrap(),
        ]);
        let orphans = read_lines(&listed);
        assert!(
            orphans.contains(&null_store) && orphans.contains(&no_store),
            "{backend:?}"
        );
        assert!(orphans.contains(&other_store), "{backend:?}");
    }
}

#[test]
fn s3_objects_just_uploaded_are_too_young_by_default() {
    let mut env = Env::with_store(djgc::config::Backend::MySql, Kind::S3);
    let schema = unique_schema("s3young");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let before = env.keys();
    let r = env.djgc_ok(&["collect", &schema, "--delete", "--json"]);
    assert_eq!(r["deleted"], 0);
    assert_eq!(r["young_skipped"], truth.orphans.len());
    assert_eq!(env.keys(), before);
}

#[test]
fn s3_listing_concurrency_does_not_change_the_answer() {
    let mut env = Env::with_store(djgc::config::Backend::PostgreSql, Kind::S3);
    let schema = unique_schema("s3conc");
    let mut spec = FixtureSpec::small(&schema, "main");
    spec.hash_rows = 3000;
    spec.npy_rows = 1500;
    let truth = env.fixture(&spec);
    env.write_config(None);
    for concurrency in ["1", "4", "32"] {
        let listed = env.dir.path().join(format!("orphans-{concurrency}.txt"));
        let r = env.djgc_ok(&[
            "scan",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--list-concurrency",
            concurrency,
            "--orphans-out",
            listed.to_str().unwrap(),
        ]);
        assert_eq!(
            read_lines(&listed),
            truth.orphans,
            "--list-concurrency {concurrency}"
        );
        assert_eq!(r["stored"], truth.files, "--list-concurrency {concurrency}");
    }
}

#[test]
fn s3_configuration_errors_name_store_bucket_and_operation() {
    let mut env = Env::with_store(djgc::config::Backend::MySql, Kind::S3);
    let schema = unique_schema("s3err");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    let config = env.write_config(None);
    let original = std::fs::read_to_string(&config).unwrap();
    let bucket = crate::common::S3_BUCKET;
    let cases = [
        (
            original.replace(bucket, "djgc-no-such-bucket"),
            "does not exist",
            "djgc-no-such-bucket",
        ),
        (
            original.replace(crate::common::S3_SECRET_KEY, "wrong-secret-value"),
            "access denied",
            bucket,
        ),
        (
            original.replace(crate::common::S3_ENDPOINT, "127.0.0.1:9"),
            "cannot reach",
            bucket,
        ),
    ];
    for (text, reason, bucket_named) in cases {
        std::fs::write(&config, &text).unwrap();
        let out = env.djgc(&["scan", &schema, "--min-age", "0s"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{reason}: {err}");
        for needle in ["store \"main\"", "HeadBucket", bucket_named, reason] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
        assert!(
            !err.contains("wrong-secret-value") && !err.contains(crate::common::S3_SECRET_KEY),
            "{err}"
        );
    }
}

#[test]
fn the_mass_deletion_guard_refuses_unless_forced() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        // Most rows deleted: more than half of each section is orphaned.
        let schema = unique_schema("guard");
        let mut spec = FixtureSpec::small(&schema, "main");
        spec.deleted_fraction = 0.8;
        spec.rows_per_content = 1;
        let truth = env.fixture(&spec);
        env.write_config(None);
        let before = env.keys();
        let out = env.djgc(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--max-orphan-fraction") && stderr(&out).contains("--force"));
        assert_eq!(
            env.keys(),
            before,
            "{backend:?}: the guard let something through"
        );
        let out = env.djgc(&["scan", &schema, "--min-age", "0s"]);
        assert!(
            stderr(&out).contains("--delete would refuse"),
            "{}",
            stderr(&out)
        );
        let r = env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--delete",
            "--json",
            "--max-orphan-fraction",
            "0.95",
        ]);
        assert_eq!(r["deleted"], truth.orphans.len(), "{backend:?}");

        // Every row of a schema gone: no references at all.
        let empty = unique_schema("guardempty");
        env.fixture(&FixtureSpec::small(&empty, "main"));
        for table in ["#hash_item", "_npy_item", "__folder_item"] {
            env.sql(&format!(
                "DELETE FROM {}.{}",
                env.db.quote(&empty),
                env.db.quote(table)
            ));
        }
        let before = env.keys();
        let out = env.djgc(&[
            "collect",
            &empty,
            "--min-age",
            "0s",
            "--delete",
            "--json",
            "--max-orphan-fraction",
            "1",
        ]);
        assert_eq!(out.status.code(), Some(3), "{backend:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no references"), "{}", stderr(&out));
        assert_eq!(env.keys(), before);
        let r = env.djgc_ok(&[
            "collect",
            &empty,
            "--min-age",
            "0s",
            "--delete",
            "--json",
            "--force",
        ]);
        let left: Vec<String> = env
            .keys()
            .into_iter()
            .filter(|k| k.contains(&empty))
            .collect();
        assert!(
            left.is_empty() && r["deleted"].as_u64().unwrap() > 0,
            "{backend:?}: {left:?}"
        );
    }
}
