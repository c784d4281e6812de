//! The command line around the collector: what djgc shows on stderr (bars
//! on a terminal, driven through tmux; nothing drawn without one; JSON log
//! lines), `ls`, help examples and shell completions.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{stderr, unique_schema, Env, Kind};
use djgc::config::Backend;
use djgc::fixture::FixtureSpec;
use serde_json::Value;

fn env_with_fixture(label: &str) -> (Env, String) {
    let mut env = Env::new(Backend::MySql);
    let schema = unique_schema(label);
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    (env, schema)
}

/// Whether `text` holds terminal control sequences or bar lines.
fn drawn(text: &str) -> bool {
    text.contains('\u{1b}') || text.contains(" objects (") || text.contains(" values")
}

#[test]
fn nothing_is_drawn_without_a_terminal_unless_forced() {
    let (env, schema) = env_with_fixture("nodraw");
    let out = env.djgc(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--delete",
        "--verbose",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(!drawn(&text), "drawn without a terminal: {text:?}");
    assert!(
        text.contains("deleted _"),
        "verbose lines still come: {text}"
    );

    let out = env.djgc(&["scan", &schema, "--min-age", "0s", "--progress"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("references") && text.contains(" objects ("),
        "{text:?}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (env, schema) = env_with_fixture("jsonlog");
    // A dry run the guard would object to logs a warning; a deletion logs
    // an event per object.
    let out = env.djgc(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--max-orphan-fraction",
        "0.01",
        "--log-format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line["time"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|l| l["level"] == "warning"
        && l["message"]
            .as_str()
            .unwrap()
            .contains("--delete would refuse")));

    let report_file = env.dir.path().join("run.json");
    let out = env.djgc(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--delete",
        "--verbose",
        "--log-format",
        "json",
        "--report",
        report_file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deleted: Vec<Value> = stderr(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "deleted")
        .collect();
    assert!(!deleted.is_empty());
    assert!(deleted
        .iter()
        .all(|l| l["key"].is_string() && l["bytes"].is_u64()));
    // The report file of an unattended run says what ran, when, on what.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(report["djgc_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(report["store"], "main");
    assert_eq!(report["schemas"][0], schema.as_str());
    assert_eq!(report["deleted"], deleted.len());
    let started = humantime::parse_rfc3339(report["started"].as_str().unwrap()).unwrap();
    let finished = humantime::parse_rfc3339(report["finished"].as_str().unwrap()).unwrap();
    assert!(started <= finished && finished <= std::time::SystemTime::now());
}

/// Runs `djgc args` in a detached tmux window of 150 columns and returns
/// the screen once the run has printed its report.
fn terminal_screen(env: &Env, args: &str) -> String {
    let socket = format!("djgc-{}", unique_schema("tmux"));
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .expect("tmux (installed by scripts/services.sh)")
    };
    let djgc = env!("CARGO_BIN_EXE_djgc");
    let command = format!(
        "cd {} && {djgc} {args}; echo DJGC-EXIT $?; sleep 60",
        env.dir.path().display()
    );
    let started = tmux(&["new-session", "-d", "-x", "150", "-y", "50", &command]);
    assert!(started.status.success(), "{}", stderr(&started));
    let deadline = Instant::now() + Duration::from_secs(60);
    let screen = loop {
        let shown = tmux(&["capture-pane", "-p"]);
        let screen = String::from_utf8_lossy(&shown.stdout).into_owned();
        if screen.contains("DJGC-EXIT") || Instant::now() > deadline {
            break screen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    tmux(&["kill-server"]);
    assert!(screen.contains("DJGC-EXIT 0"), "{screen}");
    screen
}

#[test]
fn a_terminal_run_shows_the_bars() {
    let (env, schema) = env_with_fixture("bars");
    let screen = terminal_screen(&env, &format!("collect {schema} --min-age 0s --delete"));
    println!("{screen}");
    let line = |start: &str| {
        screen
            .lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} bar:\n{screen}"))
            .to_string()
    };
    assert!(line("references").contains("values"));
    assert!(line("listed").contains(&format!("_hash/{schema}/")));
    assert!(line("orphans").contains('B'));
    let deleting = line("deleting");
    assert!(
        deleting.contains("objects") && deleting.contains('['),
        "{deleting}"
    );
    assert!(
        screen.contains("Deleted:"),
        "the report follows the bars:\n{screen}"
    );
}

#[test]
fn every_subcommand_has_an_example_and_shells_complete_them() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::common::djgc_in(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = [
        "scan",
        "collect",
        "apply",
        "restore",
        "purge",
        "merge-reports",
        "completions",
    ];
    for sub in subcommands {
        let help = run(&[sub, "--help"]);
        assert!(
            help.contains(&format!("Example: djgc {sub}")),
            "{sub}:\n{help}"
        );
    }
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_djgc()") && bash.contains("merge-reports"),
        "{bash}"
    );
    assert!(run(&["completions", "zsh"]).starts_with("#compdef djgc"));
    assert!(run(&["completions", "fish"]).contains("complete -c djgc"));
}

#[test]
fn ls_counts_what_the_store_holds_per_prefix() {
    for kind in [Kind::File, Kind::S3, Kind::Gcs, Kind::Azure] {
        let mut env = Env::with_store(Backend::PostgreSql, kind);
        let schema = unique_schema("ls");
        env.fixture(&FixtureSpec {
            subfolding: Some(vec![2, 2]),
            ..FixtureSpec::small(&schema, "main")
        });
        env.write_config(Some(&[2, 2]));
        let sizes = env.sizes();
        let expect = |prefix: &str| {
            let under: Vec<u64> = sizes
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, s)| *s)
                .collect();
            (under.len() as u64, under.iter().sum::<u64>())
        };
        let lines = |args: &[&str]| -> Vec<Value> {
            let out = env.djgc(args);
            assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let all = lines(&["ls", "--json"]);
        let prefixes: Vec<&str> = all.iter().map(|l| l["prefix"].as_str().unwrap()).collect();
        assert_eq!(prefixes, ["_hash/", "_schema/"], "{kind:?}");
        for line in &all {
            let (keys, bytes) = expect(line["prefix"].as_str().unwrap());
            assert_eq!(
                (line["keys"].as_u64(), line["bytes"].as_u64()),
                (Some(keys), Some(bytes))
            );
            assert!(keys > 0 && line["keys_per_second"].as_f64().unwrap() > 0.0);
        }
        let hash = format!("_hash/{schema}/");
        let one = lines(&[
            "ls",
            "main",
            "--section",
            "hash",
            "--schema",
            &schema,
            "--json",
        ]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["prefix"], hash.as_str());
        assert_eq!(one[0]["keys"], expect(&hash).0);
        let table = env.djgc(&["ls", "--section", "schema"]);
        let table = String::from_utf8(table.stdout).unwrap();
        assert!(
            table.starts_with("prefix") && table.contains("keys/s"),
            "{table}"
        );
    }
}

#[test]
fn all_schemas_are_those_with_codec_columns_for_the_store() {
    for backend in crate::common::BACKENDS {
        let mut env = Env::new(backend);
        // A store name of this test's own, so that schemas other tests
        // create meanwhile are not among the ones found.
        let store = unique_schema("store");
        let mine = [unique_schema("all"), unique_schema("all")];
        let mut orphans = 0;
        for schema in &mine {
            orphans += env
                .fixture(&FixtureSpec::small(schema, &store))
                .orphans
                .len();
        }
        let elsewhere = unique_schema("main");
        env.fixture(&FixtureSpec::small(&elsewhere, "main"));
        let config = env.write_config(None);
        let mut json: Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        json["stores"][&store] = json["stores"]["main"].clone();
        std::fs::write(&config, json.to_string()).unwrap();

        let r = env.djgc_ok(&[
            "scan",
            "--all-schemas",
            "--store",
            &store,
            "--min-age",
            "0s",
            "--json",
        ]);
        let mut expected = mine.to_vec();
        expected.sort();
        assert_eq!(r["schemas"], serde_json::json!(expected), "{backend:?}");
        assert_eq!(r["orphaned"], orphans, "{backend:?}");
        // The schema of another store in the same folder is named as a hint.
        assert_eq!(r["unscanned_schemas"], serde_json::json!([elsewhere]));
        let human = env.djgc(&["scan", &mine[0], "--store", &store]);
        let human = String::from_utf8(human.stdout).unwrap();
        assert!(
            human.contains("Not scanned:") && human.contains(&elsewhere),
            "{human}"
        );

        let out = env.djgc(&["scan", "--all-schemas", "--store", &store, "lab"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    }
}

#[test]
fn config_shows_every_value_with_its_source_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("datajoint.json");
    std::fs::write(
        &config,
        r#"{"database": {"host": "filehost", "user": "lab", "backend": "mysql"},
            "stores": {"default": "main",
              "main": {"protocol": "file", "location": "/data/store"},
              "lake": {"protocol": "s3", "endpoint": "127.0.0.1:8333", "bucket": "b",
                       "location": "l", "access_key": "AKIAEXAMPLE"}}}"#,
    )
    .unwrap();
    let secrets = dir.path().join(".secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("database.password"), "hunter2-password").unwrap();
    std::fs::write(secrets.join("stores.lake.secret_key"), "top-secret-key").unwrap();

    let run = |args: &[&str]| {
        let out = crate::common::djgc_command(dir.path(), args)
            .env("DJ_HOST", "envhost")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("top-secret"),
            "{text}"
        );
        text
    };
    let shown: Value = serde_json::from_str(&run(&["config", "--json"])).unwrap();
    let setting = |key: &str| {
        let all = shown["settings"].as_array().unwrap();
        let found = all.iter().find(|s| s["key"] == key);
        let found = found.unwrap_or_else(|| panic!("no {key}: {shown}"));
        (
            found["value"].as_str().unwrap().to_string(),
            found["source"].as_str().unwrap().to_string(),
        )
    };
    let file = format!("file {}", config.display());
    let secret = |name: &str| format!("secrets {}", secrets.join(name).display());
    assert_eq!(
        setting("database.host"),
        ("envhost".into(), "env DJ_HOST".into())
    );
    assert_eq!(setting("database.user"), ("lab".into(), file.clone()));
    assert_eq!(setting("database.port"), ("3306".into(), "default".into()));
    assert_eq!(
        setting("database.password"),
        ("****".into(), secret("database.password"))
    );
    assert_eq!(
        setting("stores.main.location"),
        ("/data/store".into(), file.clone())
    );
    assert_eq!(
        setting("stores.lake.secret_key"),
        ("****".into(), secret("stores.lake.secret_key"))
    );
    assert_eq!(setting("stores.default"), ("main".into(), file));
    assert_eq!(shown["stores"]["main"], "ok");
    assert_eq!(shown["stores"]["lake"], "ok");

    let text = run(&["config"]);
    assert!(
        text.contains("config file:") && text.contains("store main: ok"),
        "{text}"
    );
}
