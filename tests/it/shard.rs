//! Sharded runs, end to end: N separate djgc processes on one fixture, as an
//! array job runs them, against a real database and a file, S3, GCS or
//! Azure store.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::common::{
    clean_command, djgc_command, python, read_lines, report, stderr, unique_schema, Env, Kind,
};
use djgc::config::Backend;
use djgc::fixture::FixtureSpec;
use serde_json::Value;

/// A fixture big enough that every one of 8 shards has work in every section.
pub(crate) fn fixture(schema: &str) -> FixtureSpec {
    FixtureSpec {
        hash_rows: 600,
        npy_rows: 400,
        folder_rows: 60,
        files_per_folder: 4,
        ..FixtureSpec::small(schema, "main")
    }
}

/// How shard `index` of `count` learns its shard: the flag, or for some
/// shards an array job's environment, as Slurm and Kubernetes set it.
fn shard_source(index: usize, count: usize) -> (Vec<String>, Vec<(String, String)>) {
    let var = |k: &str, v: String| (k.to_string(), v);
    match (count, index % 4) {
        (1, _) | (_, 0) => (vec!["--shard".into(), format!("{index}/{count}")], vec![]),
        (_, 1) => (vec![], vec![var("DJGC_SHARD", format!("{index}/{count}"))]),
        (_, 2) => (
            vec![],
            vec![
                var("SLURM_ARRAY_TASK_ID", (index + 1).to_string()),
                var("SLURM_ARRAY_TASK_MIN", "1".into()),
                var("SLURM_ARRAY_TASK_COUNT", count.to_string()),
            ],
        ),
        _ => (
            vec![],
            vec![
                var("JOB_COMPLETION_INDEX", index.to_string()),
                var("DJGC_SHARD_COUNT", count.to_string()),
            ],
        ),
    }
}

/// Runs `args` as `count` shards at once, each with `--report` and
/// `--orphans-out` files named after it, as one run (its id: `label`);
/// returns their paths.
pub(crate) fn run_shards(
    dir: &Path,
    count: usize,
    args: &[&str],
    label: &str,
) -> Vec<(String, String)> {
    let files: Vec<(String, String)> = (0..count)
        .map(|k| {
            let name = |what: &str| {
                dir.join(format!("{label}-{what}-{k}"))
                    .display()
                    .to_string()
            };
            (name("report"), name("orphans"))
        })
        .collect();
    let children: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(k, (report, orphans))| {
            let (flags, vars) = shard_source(k, count);
            let mut all: Vec<&str> = args.to_vec();
            all.extend(flags.iter().map(String::as_str));
            all.extend(["--report", report, "--orphans-out", orphans]);
            djgc_command(dir, &all)
                .envs(vars)
                .env("DJGC_RUN_ID", label)
                .spawn()
                .unwrap()
        })
        .collect();
    for (k, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{label}: shard {k}/{count}: {}",
            stderr(&out)
        );
    }
    files
}

/// A report without what differs between runs of the same work.
pub(crate) fn comparable(mut report: Value) -> Value {
    let object = report.as_object_mut().unwrap();
    for changing in ["seconds", "started", "finished", "run_id"] {
        object.remove(changing);
    }
    report
}

pub(crate) fn merged(env: &Env, files: &[(String, String)]) -> Value {
    let mut args = vec!["merge-reports"];
    args.extend(files.iter().map(|(report, _)| report.as_str()));
    let out = env.djgc(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    report(&out)
}

#[test]
fn shards_judge_every_object_once_and_add_up_to_one_run() {
    let cases = [
        (Backend::MySql, Kind::File, Some(vec![2, 2])),
        (Backend::PostgreSql, Kind::File, None),
        (Backend::MySql, Kind::S3, None),
        (Backend::MySql, Kind::Gcs, None),
        (Backend::PostgreSql, Kind::Azure, Some(vec![2, 2])),
    ];
    for (backend, kind, subfolding) in cases {
        let mut env = Env::with_store(backend, kind);
        let schema = unique_schema("shard");
        let spec = FixtureSpec {
            subfolding: subfolding.clone(),
            ..fixture(&schema)
        };
        let truth = env.fixture(&spec);
        env.write_config(subfolding.as_deref());
        let case = format!("{backend:?} {kind:?} {subfolding:?}");
        let dir = env.dir.path();
        let single_orphans = dir.join("single-orphans");
        let out = env.djgc(&[
            "scan",
            &schema,
            "--min-age",
            "0s",
            "--json",
            "--orphans-out",
            single_orphans.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
        let single = report(&out);
        assert_eq!(read_lines(&single_orphans), truth.orphans, "{case}");

        for count in [1, 3, 8] {
            let label = format!("scan{count}");
            let files = run_shards(dir, count, &["scan", &schema, "--min-age", "0s"], &label);
            let mut union = Vec::new();
            for (_, orphans) in &files {
                union.extend(read_lines(Path::new(orphans)));
            }
            let distinct: BTreeSet<&String> = union.iter().collect();
            assert_eq!(
                distinct.len(),
                union.len(),
                "{case} N={count}: an orphan twice"
            );
            union.sort();
            assert_eq!(union, truth.orphans, "{case} N={count}");
            let merged = merged(&env, &files);
            assert_eq!(
                comparable(merged),
                comparable(single.clone()),
                "{case} N={count}: the merged report"
            );
            if count == 8 {
                // Each shard listed only its share: no shard judged the
                // whole store, and every shard judged something.
                for (report, _) in &files {
                    let r: Value =
                        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
                    let stored = r["stored"].as_u64().unwrap();
                    let all = single["stored"].as_u64().unwrap();
                    assert!(
                        stored > all / 16 && stored < all / 4,
                        "{case}: {stored} of {all}: {}",
                        r["sections"]
                    );
                    let held = r["shard"]["references_held"].as_u64().unwrap();
                    let referenced = single["referenced"].as_u64().unwrap();
                    assert!(held < referenced / 4, "{case}: {held} of {referenced} held");
                }
            }
        }

        // Deleting across 8 shards at once: every orphan goes, nothing live.
        let files = run_shards(
            dir,
            8,
            &["collect", &schema, "--min-age", "0s", "--delete"],
            "delete",
        );
        let merged = merged(&env, &files);
        assert_eq!(merged["deleted"], truth.orphans.len(), "{case}");
        assert_eq!(merged["lost"], 0, "{case}");
        let left: BTreeSet<String> = env.keys().into_iter().collect();
        for key in &truth.live_files {
            assert!(left.contains(key), "{case}: live {key} deleted");
        }
        for key in &truth.orphans {
            assert!(!left.contains(key), "{case}: orphan {key} left");
        }
    }
}

#[test]
fn a_sharded_plan_is_applied_as_its_shard_only() {
    let mut env = Env::new(Backend::PostgreSql);
    let schema = unique_schema("shardplan");
    let truth = env.fixture(&fixture(&schema));
    env.write_config(None);
    let plan = env.dir.path().join("plan-1-of-3");
    let plan = plan.to_str().unwrap();
    let scanned = env.djgc_ok(&[
        "scan",
        &schema,
        "--min-age",
        "0s",
        "--json",
        "--shard",
        "1/3",
        "--plan",
        plan,
    ]);
    let mine = scanned["orphaned"].as_u64().unwrap();
    assert!(mine > 0 && mine < truth.orphans.len() as u64 / 2);

    let out = env.djgc(&[
        "apply",
        plan,
        "--min-age",
        "0s",
        "--shard",
        "2/3",
        "--delete",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not for shard 2/3"),
        "{}",
        stderr(&out)
    );

    let applied = env.djgc_ok(&["apply", plan, "--min-age", "0s", "--delete", "--json"]);
    assert_eq!(applied["deleted"], mine);
    assert_eq!(applied["shard"]["index"], 1);
    let left: BTreeSet<String> = env.keys().into_iter().collect();
    let gone = truth.orphans.iter().filter(|k| !left.contains(*k)).count();
    assert_eq!(gone as u64, mine);
    assert!(truth.live_files.iter().all(|k| left.contains(k)));
}

#[test]
fn bad_shards_are_refused_by_name() {
    let env = Env::new(Backend::MySql);
    env.write_config(None);
    for (args, vars, expected) in [
        (vec!["--shard", "3/3"], vec![], "--shard \"3/3\""),
        (vec![], vec![("DJGC_SHARD", "x")], "DJGC_SHARD \"x\""),
        (
            vec![],
            vec![("JOB_COMPLETION_INDEX", "2")],
            "DJGC_SHARD_COUNT is not",
        ),
    ] {
        let mut all = vec!["scan", "some_schema"];
        all.extend(args);
        let out = djgc_command(env.dir.path(), &all)
            .envs(vars)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    }
}

/// Runs `program args` as every shard of an array job example, each with
/// its array variables, and returns the merged report of their reports.
fn run_example(env: &Env, runs: Vec<Command>, reports: &Path) -> Value {
    let children: Vec<_> = runs
        .into_iter()
        .map(|mut run| run.spawn().unwrap())
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    // The reports only (the Slurm example writes its plans beside them).
    let mut files: Vec<String> = std::fs::read_dir(reports)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|path| path.ends_with(".json"))
        .collect();
    files.sort();
    let mut args = vec!["merge-reports"];
    args.extend(files.iter().map(String::as_str));
    env.djgc_ok(&args)
}

/// `program`, run in `dir` with the test binary first on the PATH, as a
/// batch job runs the installed djgc.
fn with_djgc_on_path(program: &str, dir: &Path) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_djgc")).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let mut run = clean_command(program, dir);
    run.env("PATH", format!("{}:{path}", bin.display()));
    run
}

#[test]
fn the_array_job_examples_run_as_they_are() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema("arrays");
    env.fixture(&fixture(&schema));
    env.write_config(None);
    let dir = env.dir.path();
    let single = comparable(env.djgc_ok(&["scan", &schema, "--min-age", "7d", "--json"]));

    // Slurm: the script as sbatch runs it, once per array task.
    let script = repo.join("scripts/slurm/djgc-array.sbatch");
    // The three tasks of array job `job`, with `more` variables.
    let tasks = |job: &str, more: &[(&str, &str)]| -> Vec<Command> {
        (0..3)
            .map(|task| {
                let mut run = with_djgc_on_path("bash", dir);
                run.arg(&script)
                    .envs([
                        ("DJGC_SCHEMAS", schema.as_str()),
                        ("DJGC_ARGS", "--min-age 7d --quiet"),
                        ("SLURM_ARRAY_JOB_ID", job),
                        ("SLURM_ARRAY_TASK_ID", &(task + 1).to_string()),
                        ("SLURM_ARRAY_TASK_MIN", "1"),
                        ("SLURM_ARRAY_TASK_COUNT", "3"),
                    ])
                    .envs(more.iter().copied());
                run
            })
            .collect()
    };
    let merged = run_example(&env, tasks("4242", &[]), &dir.join("djgc-reports/4242"));
    assert_eq!(comparable(merged), single, "Slurm example");
    // Submitted again to go on from the first array job: each task applies
    // its plan (a dry run here), and the reports add up to the same.
    let resumed = tasks("4243", &[("DJGC_RESUME", "djgc-reports/4242")]);
    let merged = run_example(&env, resumed, &dir.join("djgc-reports/4243"));
    assert_eq!(
        merged["orphaned"], single["orphaned"],
        "Slurm example resumed"
    );
    assert_eq!(merged["stored"], single["stored"], "Slurm example resumed");

    // Kubernetes: the Indexed Job's container command and environment, once
    // per completion index, with the test's schema and a local report folder.
    let manifest = repo.join("scripts/k8s/djgc-indexed-job.yaml");
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    let spec = &job["spec"];
    let container = &spec["template"]["spec"]["containers"][0];
    // Values the cluster fills in (the Job's uid, as the run id) get one here.
    let mut vars: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let value = match v["value"].as_str() {
                Some(value) => value.to_string(),
                None => {
                    assert!(v["valueFrom"]["fieldRef"].is_object(), "{v}");
                    "k8s-job-uid".to_string()
                }
            };
            (v["name"].as_str().unwrap().into(), value)
        })
        .collect();
    let var = |name: &str| vars.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let count: usize = var("DJGC_SHARD_COUNT").parse().unwrap();
    assert_eq!(
        spec["completions"], count as u64,
        "completions = DJGC_SHARD_COUNT"
    );
    assert_eq!(spec["parallelism"], count as u64);
    assert_eq!(spec["completionMode"], "Indexed");
    let reports = dir.join("k8s-reports");
    std::fs::create_dir(&reports).unwrap();
    for (name, value) in &mut vars {
        match name.as_str() {
            "DJGC_SCHEMAS" => *value = schema.clone(),
            "DJGC_REPORTS" => *value = reports.display().to_string(),
            "DJGC_ARGS" => value.push_str(" --quiet"),
            _ => {}
        }
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let command = strings(&container["command"]);
    let runs = (0..count)
        .map(|index| {
            let mut run = with_djgc_on_path(&command[0], dir);
            run.args(&command[1..])
                .args(strings(&container["args"]))
                .envs(vars.iter().cloned())
                .env("JOB_COMPLETION_INDEX", index.to_string());
            run
        })
        .collect();
    let merged = run_example(&env, runs, &reports);
    assert_eq!(comparable(merged), single, "Kubernetes example");
}
