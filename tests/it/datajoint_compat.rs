//! The compatibility test with the real client: datajoint 2.3.5 writes a
//! pipeline with all five codecs (plus a third-party schema codec and an
//! inline blob) and deletes rows; djgc must report exactly dj.gc's orphans and
//! counts, delete them, and leave a pipeline whose every row DataJoint loads
//! and in which dj.gc finds nothing more.
//!
//! Runs on a file store, on the S3 server (DataJoint writing through s3fs),
//! and on the GCS and Azure emulators (through gcsfs and adlfs), where dj.gc
//! 2.3.5 is wrong and the truth is made of its correct parts (see
//! `tests/compat/dj_pipeline.py`). Needs the venv made by
//! `scripts/python-env.sh` (or `DJGC_PYTHON`).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{
    datajoint, python, read_lines, report, strings, unique_schema, Env, Kind, BACKENDS, KINDS,
};
use djgc::config::Backend;

#[test]
fn djgc_matches_dj_gc_and_datajoint_loads_every_row_after_delete() {
    let cases = KINDS
        .into_iter()
        .flat_map(|kind| BACKENDS.map(|backend| (kind, backend)))
        .flat_map(|(kind, backend)| {
            // S3 uploads are slow here: one layout per backend is enough there.
            let layouts: &[Option<&[usize]>] = match kind {
                Kind::File => &[None, Some(&[2, 2])],
                Kind::S3 | Kind::Gcs | Kind::Azure => &[Some(&[2, 2])],
            };
            layouts
                .iter()
                .map(move |&subfolding| (kind, backend, subfolding))
        })
        // Unfolded hash sections: where dj.gc's defect on these stores shows.
        .chain([
            (Kind::Gcs, Backend::MySql, None),
            (Kind::Azure, Backend::PostgreSql, None),
        ]);
    for (kind, backend, subfolding) in cases {
        {
            let case = format!("{kind:?} {backend:?}, subfolding {subfolding:?}");
            let mut env = Env::with_store(backend, kind);
            let schema = unique_schema("compat");
            env.schemas.push(schema.clone());
            env.write_config(subfolding);

            let dj = datajoint(&env, "populate", &schema);
            let mut expected: Vec<String> = strings(&dj["orphaned_hash_paths"]);
            expected.extend(strings(&dj["orphaned_schema_paths"]));
            expected.sort();
            assert!(
                dj["hash_paths_orphaned"].as_u64().unwrap() > 0
                    && dj["schema_paths_orphaned"].as_u64().unwrap() > 0,
                "{case}: the pipeline must leave orphans of both kinds: {dj}"
            );
            if matches!(kind, Kind::Gcs | Kind::Azure) {
                // dj.gc's own answer here: every hash-addressed object orphaned.
                let wrong = &dj["dj_gc"];
                assert_eq!(
                    wrong["hash_paths_orphaned"], wrong["hash_paths_stored"],
                    "{case}: dj.gc's defect on this store is gone: {wrong}"
                );
                assert!(
                    wrong["hash_paths_orphaned"].as_u64() > dj["hash_paths_orphaned"].as_u64(),
                    "{case}: {wrong}"
                );
            }

            let listed = env.dir.path().join("orphans.txt");
            let ours = env.djgc_ok(&[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--json",
                "--schema-codec",
                "labcontainer",
                "--orphans-out",
                listed.to_str().unwrap(),
            ]);
            assert_eq!(read_lines(&listed), expected, "{case}: orphan lists differ");
            for (djgc_key, dj_key) in [
                ("hash_referenced", "hash_paths_referenced"),
                ("hash_stored", "hash_paths_stored"),
                ("hash_orphaned", "hash_paths_orphaned"),
                ("hash_orphaned_bytes", "hash_paths_orphaned_bytes"),
                ("schema_paths_referenced", "schema_paths_referenced"),
                ("schema_paths_stored", "schema_paths_stored"),
                ("schema_paths_orphaned", "schema_paths_orphaned"),
                ("schema_paths_orphaned_bytes", "schema_paths_orphaned_bytes"),
            ] {
                assert_eq!(
                    ours[djgc_key], dj[dj_key],
                    "{case}: {djgc_key} vs dj.gc's {dj_key}"
                );
            }

            // Without naming the custom codec, its files are still protected;
            // only the count moves from schema_paths_referenced to other_referenced.
            let out = env.djgc(&[
                "scan",
                &schema,
                "--min-age",
                "0s",
                "--json",
                "--orphans-out",
                listed.to_str().unwrap(),
            ]);
            let unnamed = report(&out);
            assert_eq!(
                read_lines(&listed),
                expected,
                "{case}: custom codec files misjudged"
            );
            assert!(unnamed["other_referenced"].as_u64().unwrap() > 0, "{case}");

            let deleted = env.djgc_ok(&[
                "collect",
                &schema,
                "--min-age",
                "0s",
                "--json",
                "--delete",
                "--schema-codec",
                "labcontainer",
            ]);
            assert_eq!(deleted["deleted"], expected.len(), "{case}");
            assert_eq!(deleted["errors"], 0, "{case}");

            let after = datajoint(&env, "verify", &schema);
            assert_eq!(
                after["rows_loaded"], 27,
                "{case}: DataJoint could not load every row"
            );
            // No object is left behind. On SeaweedFS, dj.gc (walking through
            // s3fs with delimiters) also reports the folders a deletion emptied,
            // as paths ending in `/`; they hold nothing, and djgc's flat listing
            // never sees them.
            let mut left = strings(&after["orphaned_hash_paths"]);
            left.extend(strings(&after["orphaned_schema_paths"]));
            left.retain(|p| !(kind == Kind::S3 && p.ends_with('/')));
            assert!(
                left.is_empty(),
                "{case}: dj.gc still finds orphans {left:?}"
            );
            assert_eq!(
                after["hash_paths_referenced"], dj["hash_paths_referenced"],
                "{case}"
            );
            assert_eq!(
                after["schema_paths_referenced"], dj["schema_paths_referenced"],
                "{case}"
            );
        }
    }
}

/// `pip install` of the project into the compatibility venv: maturin builds
/// the binary wheel (with the dev profile, where a user's install builds a
/// release) and pip installs it. The build has a target folder of its own
/// beside this build's, kept between runs: rebuilding the djgc binary that
/// the other tests are running would pull it from under them. Returns the
/// venv's `bin` folder.
fn pip_install_project() -> PathBuf {
    let python = python();
    let bin = python.parent().unwrap().to_path_buf();
    let path = std::env::var("PATH").unwrap_or_default();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--no-build-isolation"])
        .args(["--force-reinstall", "--no-deps", env!("CARGO_MANIFEST_DIR")])
        .env("MATURIN_PEP517_ARGS", "--profile dev")
        .env("CARGO_TARGET_DIR", target.join("python-wheel"))
        .env("PATH", format!("{}:{path}", bin.display())) // maturin, from the venv
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "pip install: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    bin
}

#[test]
fn python_users_swap_dj_gc_for_djgc_in_one_line() {
    let bin = pip_install_project();
    // The wheel put djgc on the environment's PATH.
    let version = Command::new(bin.join("djgc"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("djgc {}", env!("CARGO_PKG_VERSION"))
    );
    for backend in BACKENDS {
        let mut env = Env::new(backend);
        let schema = unique_schema("pyswap");
        env.schemas.push(schema.clone());
        env.write_config(Some(&[2, 2]));
        // An orphan whose name holds characters Python counts as line breaks.
        env.put(
            &format!("_schema/{schema}/odd/id=1/f\u{2028}x\u{85}y\u{1c}z"),
            "an orphan with an odd name",
        );
        let stats = datajoint(&env, "swap", &schema);
        let ours = &stats["djgc"];
        let mut compared = 0;
        for (key, theirs) in stats.as_object().unwrap() {
            if key == "djgc" || key == "djgc_check" {
                continue;
            }
            let mine = &ours[key];
            if theirs.is_array() {
                let (mut a, mut b) = (strings(mine), strings(theirs));
                a.sort();
                b.sort();
                assert_eq!(a, b, "{backend:?}: {key}");
            } else {
                assert_eq!(mine, theirs, "{backend:?}: {key}");
            }
            compared += 1;
        }
        assert!(
            compared >= 10,
            "{backend:?}: only {compared} of dj.gc's keys: {stats}"
        );
        assert_eq!(ours["dry_run"], true);
        assert!(ours["orphaned"].as_u64().unwrap() > 0);
        // `djgc.check` of the same intact pipeline: every object there.
        let checked = &stats["djgc_check"];
        assert_eq!(checked["rows_damaged"], 0, "{backend:?}: {checked}");
        assert!(
            checked["references_checked"].as_u64().unwrap() > 20,
            "{checked}"
        );
        assert_eq!(checked["damaged_rows"], serde_json::json!([]));
    }
}
