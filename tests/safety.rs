//! The safety model end to end (issue 4): partitioned objects, references
//! and keys that point where DataJoint never writes, quarantine, plans, and
//! runs killed part-way. Real databases, the real binary, file and S3 stores.

mod common;

use common::{read_lines, unique_schema, Env, BACKENDS, KINDS};
use djgc::fixture::FixtureSpec;

fn all_envs() -> impl Iterator<Item = Env> {
    KINDS
        .into_iter()
        .flat_map(|k| BACKENDS.map(move |b| (k, b)))
        .map(|(kind, backend)| Env::with_store(backend, kind))
}

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
        if env.kind() == common::Kind::File {
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
