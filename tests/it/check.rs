//! `djgc check` against a pipeline datajoint 2.3.5 wrote, on a file store
//! and on the S3 server, with both databases: an intact store reports
//! nothing; after a hash object, a schema file, one file of a folder
//! object and a folder's manifest are deleted and a file's size changed,
//! exactly the rows of those objects are reported, by primary key.

use std::collections::BTreeSet;

use crate::common::{datajoint, report, stderr, unique_schema, Env, Kind, BACKENDS};
use djgc::config::Backend;
use serde_json::Value;

/// The `path` of `column` in the row of `table` whose `key` is `value`.
fn path_of(env: &Env, schema: &str, table: &str, column: &str, key: &str, value: u32) -> String {
    let q = |id: &str| env.db.quote(id);
    let extract = match env.backend {
        Backend::MySql => format!("JSON_UNQUOTE(JSON_EXTRACT({}, '$.path'))", q(column)),
        Backend::PostgreSql => format!("{}->>'path'", q(column)),
    };
    let sql = format!(
        "SELECT {extract} FROM {}.{} WHERE {} = {value}",
        q(schema),
        q(table),
        q(key)
    );
    env.query_strings(&sql).pop().unwrap()
}

/// The damaged rows of a `check --json` report, as (table, key, problem).
fn damaged(report: &Value) -> BTreeSet<(String, String, String)> {
    report["damaged_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |field: &str| row[field].as_str().unwrap().to_string();
            (text("table"), text("key"), text("problem"))
        })
        .collect()
}

#[test]
fn check_reports_exactly_the_rows_whose_objects_were_damaged() {
    for kind in [Kind::File, Kind::S3] {
        for backend in BACKENDS {
            let case = format!("{kind:?} {backend:?}");
            let mut env = Env::with_store(backend, kind);
            let schema = unique_schema("check");
            env.schemas.push(schema.clone());
            env.write_config(Some(&[2, 2]));
            datajoint(&env, "populate", &schema);
            let codec = ["--schema-codec", "labcontainer"];
            let mut args = vec!["check", &schema, "--json"];
            args.extend(codec);

            let intact = env.djgc_ok(&args);
            assert_eq!(intact["rows_damaged"], 0, "{case}: {intact}");
            assert_eq!(intact["damaged_rows"], serde_json::json!([]), "{case}");
            assert!(
                intact["references_checked"].as_u64().unwrap() > 20,
                "{case}: {intact}"
            );
            assert!(
                intact["folders_verified"].as_u64().unwrap() >= 2,
                "{case}: {intact}"
            );

            // Rows 3 and 8 share `raw` content: one object, two rows.
            let raw = path_of(&env, &schema, "recording", "raw", "rec_id", 3);
            assert_eq!(raw, path_of(&env, &schema, "recording", "raw", "rec_id", 8));
            env.remove(&raw);
            env.remove(&path_of(&env, &schema, "waveform", "wave", "wf_id", 1));
            let folder = path_of(&env, &schema, "result", "results", "res_id", 2);
            env.remove(&format!("{folder}/0/1"));
            let other_folder = path_of(&env, &schema, "result", "results", "res_id", 6);
            env.remove(&format!("{other_folder}.manifest.json"));
            let file = path_of(&env, &schema, "result", "results", "res_id", 5);
            env.put(&file, "content of another length than DataJoint wrote");

            let out = env.djgc(&args);
            assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
            let found = report(&out);
            let row = |table: &str, key: &str, problem: &str| {
                (table.to_string(), key.to_string(), problem.to_string())
            };
            let expected: BTreeSet<_> = [
                row("recording", "rec_id=3", "missing"),
                row("recording", "rec_id=8", "missing"),
                row("waveform", "wf_id=1", "missing"),
                row("result", "res_id=2", "incomplete"),
                row("result", "res_id=6", "manifest_missing"),
                row("result", "res_id=5", "size_differs"),
            ]
            .into();
            assert_eq!(damaged(&found), expected, "{case}: {found}");
            assert_eq!(found["rows_damaged"], 6, "{case}");
            assert_eq!(found["objects_damaged"], 5, "{case}");
            assert_eq!(
                found["rows_by_table"][format!("{schema}.recording")],
                2,
                "{case}"
            );
            let incomplete = found["damaged_rows"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["problem"] == "incomplete")
                .unwrap();
            assert!(
                incomplete["detail"].as_str().unwrap().contains("0/1"),
                "{case}: the missing file is named: {incomplete}"
            );

            // Three shards find the same rows between them, each its own.
            let mut union = Vec::new();
            for k in 0..3 {
                let shard = format!("{k}/3");
                let mut sharded = args.clone();
                sharded.extend(["--shard", shard.as_str()]);
                let out = env.djgc(&sharded);
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "{case}: {}",
                    stderr(&out)
                );
                let part = report(&out);
                assert_eq!(part["shard"]["index"], k, "{case}");
                union.extend(damaged(&part));
            }
            assert_eq!(union.len(), expected.len(), "{case}: {union:?}");
            assert_eq!(
                union.into_iter().collect::<BTreeSet<_>>(),
                expected,
                "{case}"
            );

            // The same as text, and into a report file.
            let file_report = env.dir.path().join("check.json");
            let mut text_args = vec!["check", &schema, "--report", file_report.to_str().unwrap()];
            text_args.extend(codec);
            let out = env.djgc(&text_args);
            assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("MISSING") && text.contains("(rec_id=8)"),
                "{case}: {text}"
            );
            assert!(
                text.contains("6 rows damaged (5 objects)"),
                "{case}: {text}"
            );
            let written: Value =
                serde_json::from_str(&std::fs::read_to_string(&file_report).unwrap()).unwrap();
            assert_eq!(damaged(&written), expected, "{case}");
        }
    }
}

#[test]
fn collect_with_verify_proves_it_lost_nothing_or_fails() {
    let mut env = Env::new(Backend::PostgreSql);
    let schema = unique_schema("verify");
    env.schemas.push(schema.clone());
    env.write_config(None);
    datajoint(&env, "populate", &schema);
    let collect = [
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--schema-codec",
        "labcontainer",
        "--delete",
        "--verify",
        "--json",
    ];
    let clean = env.djgc_ok(&collect);
    assert!(clean["deleted"].as_u64().unwrap() > 0, "{clean}");
    assert_eq!(clean["verified"]["rows_damaged"], 0, "{clean}");
    assert!(clean["verified"]["references_checked"].as_u64().unwrap() > 20);

    // Something lost a live object (not this collection): the next
    // collection with --verify says so, by row, and fails.
    let wave = path_of(&env, &schema, "waveform", "wave", "wf_id", 2);
    env.remove(&wave);
    let out = env.djgc(&collect);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = report(&out);
    assert_eq!(found["verified"]["rows_damaged"], 1, "{found}");
    let rows = found["verified"]["damaged_rows"].to_string();
    assert!(
        rows.contains("(wf_id=2)") && rows.contains("Missing"),
        "{rows}"
    );
    assert!(stderr(&out).contains("verify: DAMAGED"), "{}", stderr(&out));

    // One shard would check the whole store again: refused.
    let mut sharded = collect.to_vec();
    sharded.extend(["--shard", "0/2"]);
    let out = env.djgc(&sharded);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("djgc check"), "{}", stderr(&out));
}

#[test]
fn partitioned_objects_are_checked_like_the_rest() {
    for mut env in [
        Env::new(Backend::MySql),
        Env::with_store(Backend::PostgreSql, Kind::S3),
    ] {
        let case = format!("{:?} {:?}", env.kind(), env.backend);
        let schema = unique_schema("checkpart");
        let truth = env.fixture(&djgc::fixture::FixtureSpec::small(&schema, "main"));
        let q = |id: &str| env.db.quote(id);
        let there = format!("_schema/subject=m1/session=2/{schema}/npy_item/id=9001/arr_a.npy");
        let gone = format!("_schema/subject=m1/session=3/{schema}/npy_item/id=9002/arr_b.npy");
        let folder = format!("_schema/subject=m2/{schema}/folder_item/id=9003/obj_c");
        env.put(&there, "partitioned");
        env.put(&format!("{folder}/.zarray"), "{}");
        env.put(
            &format!("{folder}.manifest.json"),
            r#"{"files": [{"path": ".zarray", "size": 2}, {"path": "0.0", "size": 4}]}"#,
        );
        env.sql(&format!(
            "INSERT INTO {}.{} (id, arr) VALUES \
             (9001, '{{\"path\": \"{there}\", \"store\": \"main\"}}'), \
             (9002, '{{\"path\": \"{gone}\", \"store\": \"main\"}}')",
            q(&schema),
            q("_npy_item")
        ));
        env.sql(&format!(
            "INSERT INTO {}.{} (id, obj) VALUES \
             (9003, '{{\"path\": \"{folder}\", \"store\": \"main\", \"is_dir\": true}}')",
            q(&schema),
            q("__folder_item")
        ));
        env.write_config_with(None, r#", "partition_pattern": "{subject}/{session}""#);
        let out = env.djgc(&["check", &schema, "--json"]);
        assert_eq!(out.status.code(), Some(1), "{case}: {}", stderr(&out));
        let found = report(&out);
        let expected: BTreeSet<_> = [
            (
                "_npy_item".to_string(),
                "id=9002".to_string(),
                "missing".to_string(),
            ),
            (
                "__folder_item".to_string(),
                "id=9003".to_string(),
                "incomplete".to_string(),
            ),
        ]
        .into();
        assert_eq!(damaged(&found), expected, "{case}: {found}");
        // Every referenced path was looked for: the fixture's (its folders,
        // with their manifests, among them, all whole) and the three rows above.
        assert_eq!(
            found["references_checked"].as_u64().unwrap(),
            truth.hash_referenced + truth.schema_referenced + 3,
            "{case}: {found}"
        );
        assert!(
            found["folders_verified"].as_u64().unwrap() > 1,
            "{case}: {found}"
        );
        assert_eq!(found["references_not_checked"], 0, "{case}: {found}");
    }
}
