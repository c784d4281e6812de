//! Crash safety: djgc killed with SIGKILL at many points of a delete and of
//! a quarantine loses no live object; a rerun finishes the job; every
//! quarantine run it leaves can be restored, and restoring them all gives
//! back the store byte for byte. Real databases and stores, the real binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{all_envs, stderr, unique_schema, Env, Kind};
use djgc::fixture::{FixtureOutcome, FixtureSpec};

/// A fixture with several delete batches of orphans on a file store (a
/// batch is the unit of S3 deletion, so fewer suffice there).
fn fixture(env: &mut Env, label: &str) -> FixtureOutcome {
    let mut spec = FixtureSpec::small(&unique_schema(label), "main");
    let scale = if env.kind() == Kind::File { 3 } else { 1 };
    spec.hash_rows = 6000 * scale;
    spec.npy_rows = 3000 * scale;
    spec.folder_rows = 300 * scale;
    spec.files_per_folder = 4;
    let truth = env.fixture(&spec);
    env.write_config(None);
    truth
}

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// This long after it starts (while scanning or writing a manifest).
    After(Duration),
    /// Once it has logged this many deletions or moves.
    AfterItems(usize),
}

/// Runs `djgc ARGS -v` and kills it with SIGKILL at `point`.
fn run_and_kill(env: &Env, args: &[&str], point: KillPoint) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_djgc"))
        .args(args)
        .arg("-v")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    match point {
        KillPoint::After(delay) => std::thread::sleep(delay),
        KillPoint::AfterItems(n) => {
            let mut items = 0;
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                if line.starts_with("deleted ") || line.starts_with("quarantined ") {
                    items += 1;
                    if items >= n {
                        break;
                    }
                }
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

/// Kills while scanning or writing the manifest, then right after the
/// first logged item (the next batch is under way by then), again and again.
const KILL_POINTS: [KillPoint; 6] = [
    KillPoint::After(Duration::from_millis(20)),
    KillPoint::After(Duration::from_millis(120)),
    KillPoint::AfterItems(1),
    KillPoint::AfterItems(1),
    KillPoint::AfterItems(1),
    KillPoint::AfterItems(1),
];

/// Asserts every object but the orphans is still there with its size.
fn assert_live_intact(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
    truth: &FixtureOutcome,
    what: &str,
) {
    for (key, size) in before {
        if truth.orphans.binary_search(key).is_err() {
            assert_eq!(now.get(key), Some(size), "{what}: {key} lost or changed");
        }
    }
}

#[test]
fn sigkill_during_a_delete_loses_no_live_object_and_a_rerun_finishes() {
    for mut env in all_envs() {
        let truth = fixture(&mut env, "killdel");
        let schema = env.schemas[0].clone();
        let before = env.sizes();
        let args = [
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--delete",
            "--delete-concurrency",
            "1",
        ];
        // One listing per check: a request per orphan is slow on S3.
        let orphans_left = |now: &BTreeMap<String, u64>| {
            truth
                .orphans
                .iter()
                .filter(|k| now.contains_key(*k))
                .count()
        };
        let mut left_before = orphans_left(&before);
        let mut landed_mid_delete = 0;
        for point in KILL_POINTS {
            let what = format!("{:?}/{:?} killed {point:?}", env.kind(), env.backend);
            run_and_kill(&env, &args, point);
            let now = env.sizes();
            assert_live_intact(&before, &now, &truth, &what);
            let left = orphans_left(&now);
            if left > 0 && left < left_before {
                landed_mid_delete += 1;
            }
            left_before = left;
        }
        assert!(
            landed_mid_delete >= 1,
            "{:?}/{:?}: only {landed_mid_delete} kills landed mid-delete",
            env.kind(),
            env.backend
        );
        let r = env.djgc_ok(&["collect", &schema, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(r["errors"], 0);
        let after = env.sizes();
        assert_eq!(orphans_left(&after), 0);
        assert_live_intact(&before, &after, &truth, "after the rerun");
    }
}

#[test]
fn sigkill_during_a_quarantine_leaves_runs_that_restore_exactly() {
    for mut env in all_envs() {
        let truth = fixture(&mut env, "killquar");
        let schema = env.schemas[0].clone();
        let before = env.contents();
        let before_sizes = env.sizes();
        let args = [
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--delete",
            "--quarantine",
            "--delete-concurrency",
            "1",
        ];
        for point in KILL_POINTS {
            let what = format!("{:?}/{:?} killed {point:?}", env.kind(), env.backend);
            run_and_kill(&env, &args, point);
            assert_live_intact(&before_sizes, &env.sizes(), &truth, &what);
        }
        // A rerun finishes the job: no orphan left in place.
        env.djgc_ok(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--delete",
            "--quarantine",
            "--json",
        ]);
        let after = env.sizes();
        assert!(truth.orphans.iter().all(|k| !after.contains_key(k)));

        let mut runs: Vec<String> = env
            .keys()
            .into_iter()
            .filter_map(|k| Some(k.strip_prefix("_trash/")?.split('/').next()?.to_string()))
            .collect();
        runs.dedup();
        assert!(runs.len() >= 2, "{runs:?}");
        for run in &runs {
            let out = env.djgc(&["restore", run]);
            let header = format!("_trash/{run}/djgc-run.json");
            match out.status.code() {
                Some(0) => {}
                // Killed before its header: a run that moved nothing.
                Some(2) if !before.contains_key(&header) => {
                    let left: Vec<String> = env
                        .keys()
                        .into_iter()
                        .filter(|k| k.starts_with(&format!("_trash/{run}/")))
                        .collect();
                    assert!(
                        left.iter().all(|k| k.contains("/djgc-manifest/")),
                        "run {run} has no header but holds objects: {left:?}"
                    );
                }
                _ => panic!("restore {run}: {}", stderr(&out)),
            }
        }
        let out = env.djgc(&["purge", "--older-than", "0s", "--delete"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            env.contents(),
            before,
            "{:?}/{:?}: restoring every run did not give the store back",
            env.kind(),
            env.backend
        );
        if env.kind() == Kind::File {
            assert!(!env
                .store_root()
                .join("_trash")
                .read_dir()
                .unwrap()
                .any(|_| true));
        }
    }
}
