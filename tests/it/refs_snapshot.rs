//! Reference snapshots, end to end: `djgc refs snapshot` reads the database
//! once, then every shard judges by its part alone (the shards here run with
//! a database account that cannot log in, so any read of theirs would fail),
//! and what a snapshot cannot know (rows written after it) is caught by the
//! one `purge` that reads the database again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::{read_lines, report, stderr, unique_schema, Env, Kind};
use crate::shard::{comparable, fixture, merged, run_shards};
use djgc::config::Backend;
use djgc::fixture::FixtureSpec;
use serde_json::Value;

/// Takes a snapshot of `schema` cut for `count` shards into `dir/name`.
fn snapshot(env: &Env, schema: &str, count: usize, name: &str) -> PathBuf {
    let folder = env.dir.path().join(name);
    let out = env.djgc(&[
        "refs",
        "snapshot",
        schema,
        "--shards",
        &count.to_string(),
        "--out",
        folder.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = report(&out);
    assert_eq!(written["shards"], count);
    folder
}

/// Rewrites the env's `datajoint.json` so that djgc cannot log in to the
/// database (`locked`), or back. The snapshot's identity (host, port,
/// store) stays the same, so a snapshot still fits.
fn lock_database(env: &Env, locked: bool) {
    let path = env.dir.path().join("datajoint.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let user = env.database.user.clone().unwrap_or_default();
    config["database"]["user"] = match locked {
        true => "djgc_no_such_user".into(),
        false => user.into(),
    };
    std::fs::write(&path, config.to_string()).unwrap();
}

/// Writes a row that reuses the content of one of `orphans` (a hash
/// object), as a new row may at any time; returns its key.
fn reuse_a_hash_orphan(env: &Env, schema: &str, orphans: &[String]) -> String {
    let reused = orphans.iter().find(|k| k.starts_with("_hash/")).unwrap();
    env.sql(&format!(
        "INSERT INTO {}.{} (id, data) VALUES (90001, '{{\"path\": \"{reused}\", \"store\": \"main\"}}')",
        env.db.quote(schema),
        env.db.quote("#hash_item")
    ));
    reused.clone()
}

#[test]
fn shards_judged_by_one_snapshot_add_up_to_one_run_without_reading_the_database() {
    let cases = [
        (Backend::MySql, Kind::File, Some(vec![2, 2])),
        (Backend::PostgreSql, Kind::S3, None),
    ];
    for (backend, kind, subfolding) in cases {
        let mut env = Env::with_store(backend, kind);
        let schema = unique_schema("refsnap");
        let spec = FixtureSpec {
            subfolding: subfolding.clone(),
            ..fixture(&schema)
        };
        let truth = env.fixture(&spec);
        env.write_config(subfolding.as_deref());
        let case = format!("{backend:?} {kind:?}");
        let dir = env.dir.path();
        let single = env.djgc_ok(&["scan", &schema, "--min-age", "0s", "--json"]);
        let folders: Vec<(usize, PathBuf)> = [1, 3, 8]
            .into_iter()
            .map(|count| {
                (
                    count,
                    snapshot(&env, &schema, count, &format!("refs-{count}")),
                )
            })
            .collect();
        // What arrives after the snapshot was read is never judged by it
        // (a second later: S3 keeps whole seconds of LastModified).
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let late = format!("_hash/{schema}/zz/zz/zzzzzzzzzzzzzzzzzzzzzzzzzz");
        env.put(&late, "uploaded after the snapshot");

        lock_database(&env, true);
        for (count, folder) in &folders {
            let label = format!("snap{count}");
            let args = [
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--refs",
                folder.to_str().unwrap(),
            ];
            let files = run_shards(dir, *count, &args, &label);
            let mut union = Vec::new();
            for (report, orphans) in &files {
                union.extend(read_lines(Path::new(orphans)));
                let r: Value =
                    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
                assert_eq!(
                    r["shard"]["snapshot"]["folder"],
                    folder.display().to_string(),
                    "{case}"
                );
            }
            let distinct: BTreeSet<&String> = union.iter().collect();
            assert_eq!(
                distinct.len(),
                union.len(),
                "{case} N={count}: an orphan twice"
            );
            union.sort();
            assert_eq!(union, truth.orphans, "{case} N={count}");
            let mut merged = comparable(merged(&env, &files));
            // The late object is young to the snapshot, and counted as stored.
            assert_eq!(merged["young_skipped"], 1, "{case} N={count}");
            let mut single = comparable(single.clone());
            for report in [&mut merged, &mut single] {
                report.as_object_mut().unwrap().retain(|field, _| {
                    !field.contains("stored") && field != "young_skipped" && field != "sections"
                });
            }
            assert_eq!(merged, single, "{case} N={count}: the merged report");
        }

        // By a snapshot, never a delete: only a quarantine, for purge to judge.
        let eight = folders[2].1.to_str().unwrap().to_string();
        let out = env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--refs",
            &eight,
            "--shard",
            "0/8",
            "--delete",
        ]);
        assert_eq!(out.status.code(), Some(2), "{case}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--quarantine"),
            "{case}: {}",
            stderr(&out)
        );
        let before: BTreeSet<String> = env.keys().into_iter().collect();
        assert!(
            truth.orphans.iter().all(|k| before.contains(k)),
            "{case}: deleted"
        );

        // A row written after the snapshot reuses an orphan's content: the
        // shards move it (they cannot know), and purge puts it back.
        lock_database(&env, false);
        let reused = &reuse_a_hash_orphan(&env, &schema, &truth.orphans);
        lock_database(&env, true);
        let args = [
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--refs",
            &eight,
            "--delete",
            "--quarantine",
        ];
        let files = run_shards(dir, 8, &args, "quarantine");
        let moved = merged(&env, &files);
        assert_eq!(moved["quarantined"], truth.orphans.len(), "{case}");
        assert!(
            !env.exists(reused),
            "{case}: the snapshot cannot know of the new row"
        );

        lock_database(&env, false);
        let purged = env.djgc_ok(&["purge", "--older-than", "0s", "--delete", "--json"]);
        assert_eq!(purged["rescued"]["restored"], 1, "{case}: {purged}");
        assert_eq!(
            purged["purged"],
            truth.orphans.len() - 1,
            "{case}: {purged}"
        );
        let reads = purged["database_reads"].as_u64().unwrap();
        assert!((1..8).contains(&reads), "{case}: {reads} reads for 8 runs");
        let left: BTreeSet<String> = env.keys().into_iter().collect();
        assert!(
            left.contains(reused.as_str()),
            "{case}: the reused object is back"
        );
        for key in &truth.live_files {
            assert!(left.contains(key), "{case}: live {key} lost");
        }
        for key in truth.orphans.iter().filter(|k| *k != reused) {
            assert!(!left.contains(key), "{case}: orphan {key} left");
        }
    }
}

/// The 9-byte records of a snapshot part, and the header's figures of it.
fn part_records(folder: &Path, index: usize) -> Vec<[u8; 9]> {
    let bytes = std::fs::read(folder.join(format!("part-{index:05}.refs"))).unwrap();
    bytes.chunks(9).map(|c| c.try_into().unwrap()).collect()
}

/// Writes `records` as part `index` of `folder`, and with `fix_header`
/// makes the header's length and digest agree with them (as a forger
/// would); returns nothing.
fn forge_part(folder: &Path, index: usize, records: &[[u8; 9]], fix_header: bool) {
    let bytes: Vec<u8> = records.concat();
    std::fs::write(folder.join(format!("part-{index:05}.refs")), &bytes).unwrap();
    if fix_header {
        let path = folder.join("snapshot.json");
        let mut header: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        header["parts"][index]["entries"] = records.len().into();
        header["parts"][index]["digest"] =
            format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)).into();
        std::fs::write(&path, header.to_string()).unwrap();
    }
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused_and_moves_nothing() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("refsbad");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    let other = unique_schema("refsother");
    env.fixture(&FixtureSpec::small(&other, "main"));
    env.write_config(None);
    let folder = snapshot(&env, &schema, 2, "refs");
    let refs = folder.to_str().unwrap();
    let before = env.keys();
    let collect = |shard: &str| {
        env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--refs",
            refs,
            "--shard",
            shard,
            "--delete",
            "--quarantine",
        ])
    };

    // A part cut short, or with a byte changed: refused by name.
    let records = part_records(&folder, 1);
    forge_part(&folder, 1, &records[..records.len() - 1], false);
    let out = collect("1/2");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("part-00001.refs") && stderr(&out).contains("damaged"),
        "{}",
        stderr(&out)
    );
    let mut flipped = records.clone();
    flipped[0][3] ^= 1;
    forge_part(&folder, 1, &flipped, false);
    let out = collect("1/2");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    forge_part(&folder, 1, &records, false);

    // Another shard count, another store location, another schema set.
    let out = collect("1/3");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cut into 2 shards"),
        "{}",
        stderr(&out)
    );
    let out = env.djgc(&[
        "scan",
        &schema,
        &other,
        "--min-age",
        "0s",
        "--refs",
        refs,
        "--shard",
        "0/2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("schemas"), "{}", stderr(&out));
    let config = env.dir.path().join("datajoint.json");
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = env.store_root().display().to_string();
    std::fs::write(&config, text.replace(&moved, &format!("{moved}/elsewhere"))).unwrap();
    let out = collect("0/2");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("location"), "{}", stderr(&out));
    std::fs::write(&config, text).unwrap();
    assert_eq!(env.keys(), before, "a refused run moved something");

    // A snapshot is written into a new folder, never into or through one.
    let link = env.dir.path().join("link");
    std::os::unix::fs::symlink(env.store_root(), &link).unwrap();
    for taken in [&folder, &link] {
        let out = env.djgc(&[
            "refs",
            "snapshot",
            &schema,
            "--out",
            taken.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    }
    assert_eq!(env.keys(), before, "a snapshot was written into the store");
    assert!(truth.orphans.iter().all(|k| before.contains(k)));
}

#[test]
fn a_forged_snapshot_can_hide_a_reference_until_purge_but_loses_nothing() {
    let mut env = Env::new(Backend::PostgreSql);
    let schema = unique_schema("refsforge");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let folder = snapshot(&env, &schema, 1, "refs");
    // Whoever can write the snapshot drops the reference of a live object
    // and makes the header agree.
    let live = truth
        .live_files
        .iter()
        .find(|k| k.starts_with("_hash/"))
        .unwrap();
    let hidden = djgc::refs::refset::path_hash(live).to_le_bytes();
    let records = part_records(&folder, 0);
    let kept: Vec<[u8; 9]> = records
        .iter()
        .filter(|r| r[1..] != hidden)
        .copied()
        .collect();
    assert!(
        kept.len() < records.len(),
        "the live object's reference is in the part"
    );
    forge_part(&folder, 0, &kept, true);

    let moved = env.djgc_ok(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--refs",
        folder.to_str().unwrap(),
        "--delete",
        "--quarantine",
        "--json",
    ]);
    assert_eq!(moved["quarantined"], truth.orphans.len() + 1);
    assert!(!env.exists(live), "the forged snapshot hid it");
    let purged = env.djgc_ok(&["purge", "--older-than", "0s", "--delete", "--json"]);
    assert_eq!(purged["rescued"]["restored"], 1, "{purged}");
    assert_eq!(purged["purged"], truth.orphans.len(), "{purged}");
    for key in &truth.live_files {
        assert!(env.exists(key), "live {key} lost");
    }
}

#[test]
fn a_snapshot_with_read_problems_blocks_every_shard_judged_by_it() {
    let mut env = Env::new(Backend::PostgreSql);
    let schema = unique_schema("refsproblem");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    // A path of the wrong type: jsonb is always JSON, this is the damage.
    env.sql(&format!(
        "INSERT INTO {}.{} (id, arr) VALUES (9001, '{{\"path\": 17}}')",
        env.db.quote(&schema),
        env.db.quote("_npy_item")
    ));
    env.write_config(None);
    let folder = env.dir.path().join("refs");
    let out = env.djgc(&[
        "refs",
        "snapshot",
        &schema,
        "--shards",
        "2",
        "--out",
        folder.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("id=9001"), "{}", stderr(&out));
    let before = env.keys();
    for k in 0..2 {
        let shard = format!("{k}/2");
        let out = env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--refs",
            folder.to_str().unwrap(),
            "--shard",
            &shard,
            "--delete",
            "--quarantine",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(3), "{shard}: {}", stderr(&out));
        assert_eq!(report(&out)["quarantined"], 0, "{shard}");
    }
    assert_eq!(env.keys(), before, "a blocked shard moved something");
    assert!(!truth.orphans.is_empty());
}

#[test]
fn a_plan_judged_by_a_snapshot_is_applied_with_fresh_reads() {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("refsplan");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let folder = snapshot(&env, &schema, 1, "refs");
    let plan = env.dir.path().join("plan.jsonl");
    env.djgc_ok(&[
        "scan",
        &schema,
        "--min-age",
        "0s",
        "--refs",
        folder.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--json",
    ]);
    // After the snapshot, a row reuses an orphan's content.
    let reused = &reuse_a_hash_orphan(&env, &schema, &truth.orphans);
    let applied = env.djgc_ok(&[
        "apply",
        plan.to_str().unwrap(),
        "--min-age",
        "0s",
        "--delete",
        "--json",
    ]);
    assert_eq!(applied["rescued"], 1, "{applied}");
    assert_eq!(applied["deleted"], truth.orphans.len() - 1, "{applied}");
    assert!(env.exists(reused), "apply's fresh read kept it");
}
