//! Re-check before delete: rows that start referencing an orphan between the
//! scan and the deletion keep it (counted as rescued). Through the library,
//! so the database can change between the two steps.

mod common;

use std::time::SystemTime;

use common::{unique_schema, Env, BACKENDS};
use djgc::config::Config;
use djgc::execute::{execute, DeleteOptions};
use djgc::fixture::FixtureSpec;
use djgc::progress::Silent;
use djgc::scan::{recheck, reference_query, scan, ScanOptions};
use djgc::store::FsStore;

#[test]
fn orphans_referenced_again_before_deletion_are_rescued() {
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("recheck");
        let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
        let config = Config::load(Some(env.write_config(None))).unwrap();
        let spec = config.store(None).unwrap();
        let store = FsStore::open(&spec, 2).unwrap();
        let options = ScanOptions {
            schemas: vec![schema.clone()],
            cutoff: SystemTime::now(),
            jobs: 2,
            schema_codecs: Vec::new(),
            shard: None,
            inventory: None,
        };
        let mut plan = scan(&config.database, &spec, true, &store, &options, &Silent).unwrap();
        assert_eq!(
            plan.report.totals(None).orphaned,
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

        recheck(
            &mut plan,
            &config.database,
            &reference_query(
                &spec,
                true,
                &options.schemas,
                &options.schema_codecs,
                options.jobs,
            )
            .unwrap(),
            &Silent,
        )
        .unwrap();
        let rescued = 1 + folder_files.len() as u64;
        assert_eq!(plan.report.rescued, rescued, "{backend:?}");
        let delete = DeleteOptions {
            workers: 2,
            max_orphan_fraction: 0.5,
            force: false,
        };
        execute(&mut plan, &store, &delete, None, &Silent).unwrap();
        assert_eq!(
            plan.report.deleted(),
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
