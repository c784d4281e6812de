//! Re-check before delete: rows that start referencing an orphan between the
//! scan and the deletion keep it (counted as rescued). Through the library's
//! entry points (a plan written by `scan`, carried out by `apply`), so the
//! database can change between the two steps.

use std::time::Duration;

use crate::common::{unique_schema, Env, BACKENDS};
use djgc::config::Config;
use djgc::fixture::FixtureSpec;
use djgc::progress::Silent;
use djgc::run::{self, Action, ApplyRequest, Disposal, Guard, ScanRequest, Schemas, Session};

#[test]
fn orphans_referenced_again_before_deletion_are_rescued() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("recheck");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let config = Config::load(Some(env.write_config(None))).unwrap();
        let session = Session::open(config, None, Default::default()).unwrap();
        let plan_file = env.dir.path().join("plan.jsonl");
        let scan = ScanRequest {
            min_age: Duration::ZERO,
            plan_out: Some(plan_file.clone()),
            ..ScanRequest::new(Schemas::Named(vec![schema.clone()]))
        };
        let scanned = run::scan(&session, &scan, Guard::default(), &Silent).unwrap();
        assert_eq!(
            scanned.report.totals(None).orphaned,
            truth.orphans.len() as u64
        );

        // Meanwhile a new row reuses orphaned content, another an orphaned folder's path.
        let hash_orphan = truth
            .orphans
            .iter()
            .find(|k| k.starts_with("_hash/"))
            .unwrap();
        let folder_file = truth
            .orphans
            .iter()
            .find(|k| k.contains("/folder_item/"))
            .unwrap();
        let folder = &folder_file[..folder_file.rfind('/').unwrap()];
        let folder_files: Vec<&String> = truth
            .orphans
            .iter()
            .filter(|k| {
                k.starts_with(&format!("{folder}/")) || **k == format!("{folder}.manifest.json")
            })
            .collect();
        let q = |id: &str| env.db.quote(id);
        env.sql(&format!(
            "INSERT INTO {}.{} (id, data) VALUES (90001, '{{\"path\": \"{hash_orphan}\", \"store\": \"main\"}}')",
            q(&schema),
            q("#hash_item")
        ));
        env.sql(&format!(
            "INSERT INTO {}.{} (id, obj) VALUES (90002, '{{\"path\": \"{folder}\", \"store\": \"main\"}}')",
            q(&schema),
            q("__folder_item")
        ));

        let apply = ApplyRequest {
            plan: plan_file,
            shard: None,
            min_age: Duration::ZERO,
            inventory: None,
            run_id: None,
        };
        let delete = Disposal {
            action: Action::Delete,
            ..Disposal::dry_run(Guard::default())
        };
        let applied = run::apply(&session, &apply, &delete, &Silent).unwrap();
        let rescued = 1 + folder_files.len() as u64;
        assert_eq!(applied.report.rescued, rescued, "{backend:?}");
        assert_eq!(applied.verdict, run::Verdict::Clean, "{backend:?}");
        assert_eq!(
            applied.report.deleted(),
            truth.orphans.len() as u64 - rescued,
            "{backend:?}"
        );
        assert!(
            env.exists(hash_orphan),
            "{backend:?}: rescued hash object deleted"
        );
        assert!(
            folder_files.iter().all(|k| env.exists(k)),
            "{backend:?}: rescued folder deleted"
        );
    }
}

/// A library caller can open its session on any store: a plan made for
/// another is refused before anything is read or deleted, even where the
/// other store's layout would take the plan's keys.
#[test]
fn a_plan_is_applied_only_to_the_store_it_was_made_for() {
    let backend = BACKENDS[0];
    let mut env = Env::new(backend);
    let schema = unique_schema("planstore");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    let path = env.write_config(None);
    let other = env.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace(
        r#""stores": {"default": "main","#,
        &format!(
            r#""stores": {{"default": "main", "other": {{"protocol": "file", "location": "{}"}},"#,
            other.display()
        ),
    );
    std::fs::write(&path, text).unwrap();
    let plan_file = env.dir.path().join("plan.jsonl");
    let main = Session::open(
        Config::load(Some(path.clone())).unwrap(),
        None,
        Default::default(),
    );
    let scan = ScanRequest {
        min_age: Duration::ZERO,
        plan_out: Some(plan_file.clone()),
        ..ScanRequest::new(Schemas::Named(vec![schema.clone()]))
    };
    run::scan(&main.unwrap(), &scan, Guard::default(), &Silent).unwrap();

    let elsewhere = Session::open(
        Config::load(Some(path)).unwrap(),
        Some("other"),
        Default::default(),
    );
    let apply = ApplyRequest {
        plan: plan_file,
        shard: None,
        min_age: Duration::ZERO,
        inventory: None,
        run_id: None,
    };
    let delete = Disposal {
        action: Action::Delete,
        ..Disposal::dry_run(Guard::default())
    };
    let refused = run::apply(&elsewhere.unwrap(), &apply, &delete, &Silent).unwrap_err();
    assert!(
        refused.to_string().contains("made for another store")
            && refused
                .to_string()
                .contains("store: plan \"main\", config \"other\""),
        "{refused}"
    );
    assert!(truth.orphans.iter().all(|k| env.exists(k)), "{backend:?}");
}
