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
    run_and_stop(env, args, point, Stop::Kill);
}

/// How a run is stopped part-way.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// A scheduler's warning: the run must end cleanly, soon.
    Term,
    /// No warning at all.
    Kill,
}

/// Runs `djgc ARGS -v` and stops it with `stop` at `point`. Returns its
/// exit code and how long it took to end after the signal.
fn run_and_stop(env: &Env, args: &[&str], point: KillPoint, stop: Stop) -> (Option<i32>, Duration) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_djgc"))
        .args(args)
        .arg("-v")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    match point {
        KillPoint::After(delay) => std::thread::sleep(delay),
        KillPoint::AfterItems(n) => {
            let mut items = 0;
            while items < n {
                let Some(line) = lines.next() else { break };
                let line = line.unwrap();
                items +=
                    usize::from(line.starts_with("deleted ") || line.starts_with("quarantined "));
            }
        }
    }
    let signal = match stop {
        Stop::Term => "-TERM",
        Stop::Kill => "-KILL",
    };
    let sent = std::time::Instant::now();
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Drain the rest of its log, so it never blocks writing it.
    lines.for_each(drop);
    let code = child.wait().unwrap().code();
    (code, sent.elapsed())
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

/// How many of the orphans `now` (one listing of the store: a request per
/// orphan is slow on S3) still holds.
fn orphans_left(truth: &FixtureOutcome, now: &BTreeMap<String, u64>) -> usize {
    truth
        .orphans
        .iter()
        .filter(|k| now.contains_key(*k))
        .count()
}

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
        let mut left_before = orphans_left(&truth, &before);
        let mut landed_mid_delete = 0;
        for point in KILL_POINTS {
            let what = format!("{:?}/{:?} killed {point:?}", env.kind(), env.backend);
            run_and_kill(&env, &args, point);
            let now = env.sizes();
            assert_live_intact(&before, &now, &truth, &what);
            let left = orphans_left(&truth, &now);
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
        assert_eq!(orphans_left(&truth, &after), 0);
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

/// The overnight-job cycle: a `collect --plan P --delete` stopped by
/// SIGTERM ends within seconds, exit 1, with its report written and marked
/// partial; `apply P` goes on from it, again and again, stopped by SIGTERM
/// or SIGKILL at random points (five of each); the last run finishes.
/// Every orphan ends deleted, no live object is touched, and the final
/// report counts each orphan once (done by an earlier run, by the last,
/// or found gone after a run killed before it could record its batch).
#[test]
fn runs_stopped_by_sigterm_or_sigkill_go_on_from_their_plan_and_count_each_orphan_once() {
    let envs = [
        Env::with_store(djgc::config::Backend::MySql, Kind::File),
        Env::with_store(djgc::config::Backend::PostgreSql, Kind::S3),
    ];
    for mut env in envs {
        // Enough orphans for ten stops part-way: a dozen delete batches on a
        // file store, fewer on S3, whose batches take longer.
        let mut spec = FixtureSpec::small(&unique_schema("resume"), "main");
        spec.hash_rows = if env.kind() == Kind::File {
            40_000
        } else {
            15_000
        };
        spec.rows_per_content = 1;
        spec.npy_rows = 6000;
        spec.folder_rows = 300;
        spec.files_per_folder = 4;
        let truth = env.fixture(&spec);
        env.write_config(None);
        assert!(truth.orphans.len() > 5_000, "{}", truth.orphans.len());
        let schema = env.schemas[0].clone();
        let before = env.sizes();
        let plan = env.dir.path().join("plan.jsonl");
        let report_file = env.dir.path().join("report.json");
        let (plan, report_file) = (plan.to_str().unwrap(), report_file.to_str().unwrap());
        let common = [
            "--delete",
            "--delete-concurrency",
            "1",
            "--report",
            report_file,
        ];
        let collect: Vec<&str> = ["collect", &schema, "--min-age", "0s", "--plan", plan]
            .into_iter()
            .chain(common)
            .collect();
        let apply: Vec<&str> = ["apply", plan, "--min-age", "0s"]
            .into_iter()
            .chain(common)
            .collect();
        // A pseudo-random but repeatable order of stops and items.
        let mut stops = [Stop::Term, Stop::Kill].repeat(5);
        let mut seed = std::process::id() as usize;
        for i in (1..stops.len()).rev() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            stops.swap(i, (seed >> 33) % (i + 1));
        }
        let (mut termed_mid_delete, mut killed_mid_delete) = (0, 0);
        let mut left_before = truth.orphans.len();
        for (round, stop) in stops.into_iter().enumerate() {
            let what = format!("{:?}/{:?} round {round} {stop:?}", env.kind(), env.backend);
            let args = if round == 0 { &collect } else { &apply };
            let _ = std::fs::remove_file(report_file);
            let items = 1 + (seed >> 40) % 3;
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let (code, took) = run_and_stop(&env, args, KillPoint::AfterItems(items), stop);
            let now = env.sizes();
            assert_live_intact(&before, &now, &truth, &what);
            let left = orphans_left(&truth, &now);
            let mid_delete = left > 0 && left < left_before;
            left_before = left;
            if stop == Stop::Kill {
                killed_mid_delete += usize::from(mid_delete);
                continue;
            }
            assert!(took < Duration::from_secs(10), "{what}: took {took:?}");
            let report = || -> serde_json::Value {
                serde_json::from_str(&std::fs::read_to_string(report_file).unwrap()).unwrap()
            };
            if left == 0 {
                // Nothing was left for it, or it was done before the signal:
                // clean, or stopped after its last batch.
                if code != Some(0) {
                    assert_eq!(code, Some(1), "{what}");
                    assert_eq!(report()["partial"], true, "{what}");
                }
                continue;
            }
            assert_eq!(code, Some(1), "{what}");
            let r = report();
            assert_eq!(r["partial"], true, "{what}: {r}");
            assert_eq!(r["left"].as_u64().unwrap(), left as u64, "{what}: {r}");
            termed_mid_delete += usize::from(mid_delete);
        }
        let what = format!("{:?}/{:?}", env.kind(), env.backend);
        assert!(
            termed_mid_delete >= 2,
            "{what}: {termed_mid_delete} SIGTERMs mid-delete"
        );
        assert!(
            killed_mid_delete >= 2,
            "{what}: {killed_mid_delete} SIGKILLs mid-delete"
        );
        // The runs stopped by SIGTERM skipped their re-check after deleting;
        // the last run's re-check covers their deletions too.
        let r = env.djgc_ok(&["apply", plan, "--min-age", "0s", "--delete", "--json"]);
        assert_eq!(r["unverified"], false, "{r}");
        let after = env.sizes();
        assert!(truth.orphans.iter().all(|k| !after.contains_key(k)));
        assert_live_intact(&before, &after, &truth, "after the last run");
        let counted = ["deleted", "already_gone", "changed_skipped", "errors"]
            .map(|field| r[field].as_u64().unwrap());
        assert_eq!(counted[3], 0, "{r}");
        assert_eq!(
            counted.iter().sum::<u64>(),
            truth.orphans.len() as u64,
            "each orphan counted once: {r}"
        );
        assert!(r["resumed_after"].as_u64().unwrap() > 0, "{r}");
        assert_eq!(r["partial"], false);
    }
}
