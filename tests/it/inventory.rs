//! S3 Inventory reports in place of LIST, end to end: an inventory written
//! in AWS's format from a fixture bucket on the S3 server, read from the
//! bucket and from a local copy, before and after the bucket moves on.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{
    python, read_lines, report, s3_spec, stderr, unique_schema, Env, Kind, S3_BUCKET, S3_ENDPOINT,
    S3_SECRET_KEY,
};
use djgc::config::Backend;
use djgc::fixture::FixtureSpec;
use djgc::store::{Listing, ObjectMeta, S3Store, Store};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// What AWS leaves unencoded in inventory keys (and `+` for a space).
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

const CSV_SCHEMA: &str =
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag";

/// The `fileSchema` AWS writes in the manifest of a Parquet inventory.
const PARQUET_SCHEMA: &str = "message s3.inventory { required binary bucket (UTF8); \
    required binary key (UTF8); optional binary version_id (UTF8); optional boolean is_latest; \
    optional boolean is_delete_marker; optional int64 size; \
    optional int64 last_modified_date (TIMESTAMP_MILLIS); optional binary e_tag (UTF8);}";

/// Every object of a store, with size and modification time.
fn objects(store: &dyn Store) -> Vec<ObjectMeta> {
    let all = Mutex::new(Vec::new());
    store.list("", &|item| {
        match item {
            Listing::Objects(batch) => all.lock().unwrap().extend(batch),
            Listing::Error(e) => panic!("{e}"),
        }
        ControlFlow::Continue(())
    });
    all.into_inner().unwrap()
}

/// One row of an inventory: an object version as AWS lists it.
struct Row {
    key: String,
    version: &'static str,
    latest: bool,
    marker: bool,
    size: u64,
    modified: SystemTime,
}

impl Row {
    fn new(key: &str, version: &'static str, latest: bool, marker: bool, size: u64) -> Row {
        Row {
            key: key.to_string(),
            version,
            latest,
            marker,
            size,
            modified: SystemTime::now() - Duration::from_secs(3600),
        }
    }

    /// As a CSV inventory writes it: every field quoted, the key URL-encoded.
    fn csv(&self) -> String {
        let encoded = utf8_percent_encode(&self.key, KEEP)
            .to_string()
            .replace("%20", "+");
        let when = humantime::format_rfc3339_millis(self.modified);
        let Row {
            version,
            latest,
            marker,
            size,
            ..
        } = self;
        format!("\"{S3_BUCKET}\",\"{encoded}\",\"{version}\",\"{latest}\",\"{marker}\",\"{size}\",\"{when}\",\"\"\"etag\"\"\"\n")
    }

    /// As `tests/compat/parquet_inventory.py` takes it: the key as it is, no
    /// size for a delete marker.
    fn json(&self) -> Value {
        serde_json::json!({
            "bucket": S3_BUCKET,
            "key": self.key,
            "version_id": self.version,
            "is_latest": self.latest,
            "is_delete_marker": self.marker,
            "size": (!self.marker).then_some(self.size),
            "last_modified_ms": self.modified.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64,
            "e_tag": "\"etag\"",
        })
    }
}

/// The two formats djgc reads.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Csv,
    Parquet,
}

/// The data files of `rows` in `format`: for CSV one gzipped and one not,
/// for Parquet one Snappy (pyarrow's default), one gzip and one LZ4, written
/// by pyarrow.
fn data_files(dir: &Path, rows: &[Row], format: Format) -> Vec<(&'static str, Vec<u8>)> {
    let (first, second) = rows.split_at(rows.len() / 2);
    match format {
        Format::Csv => {
            let text = |rows: &[Row]| rows.iter().map(Row::csv).collect::<String>();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(text(first).as_bytes()).unwrap();
            vec![
                ("part-0.csv.gz", gz.finish().unwrap()),
                ("part-1.csv", text(second).into_bytes()),
            ]
        }
        Format::Parquet => [
            ("part-0.parquet", first, "snappy"),
            ("part-1.parquet", &second[..second.len() / 2], "gzip"),
            ("part-2.parquet", &second[second.len() / 2..], "lz4"),
        ]
        .into_iter()
        .map(|(name, rows, codec)| {
            let out = dir.join(name);
            let json: Vec<Value> = rows.iter().map(Row::json).collect();
            let mut child = Command::new(python())
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/compat/parquet_inventory.py"
                ))
                .arg(&out)
                .arg(codec)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            serde_json::to_writer(child.stdin.take().unwrap(), &json).unwrap();
            assert!(
                child.wait().unwrap().success(),
                "parquet_inventory.py {name}"
            );
            (name, std::fs::read(&out).unwrap())
        })
        .collect(),
    }
}

/// An inventory of `env`'s store as AWS writes it in `format`, taken at
/// `created`: in the bucket (its `s3://` manifest) and copied to a local
/// folder (its manifest path). Two data files; besides the store's objects
/// it lists an object outside the store, an old version and a delete marker.
fn write_inventory(
    env: &Env,
    created: SystemTime,
    label: &str,
    format: Format,
) -> (String, PathBuf) {
    let (location, store) = env.remote.as_ref().unwrap();
    let mut rows: Vec<Row> = objects(store.as_ref())
        .iter()
        .map(|o| Row {
            modified: o.modified,
            ..Row::new(&format!("{location}/{}", o.key), "v2", true, false, o.size)
        })
        .collect();
    assert!(!rows.is_empty());
    // Rows that are not current objects, in a folder the scan judges: taken
    // for objects, they would be orphans.
    let judged = objects(store.as_ref())
        .into_iter()
        .find_map(|o| {
            o.key
                .starts_with("_schema/")
                .then(|| o.key[..o.key.rfind('/').unwrap()].to_string())
        })
        .unwrap();
    let key = |k: &str| format!("{location}/{judged}/{k}");
    rows.push(Row::new(
        "elsewhere/not the store.bin",
        "v1",
        true,
        false,
        3,
    ));
    rows.push(Row::new(&key("old version"), "v1", false, false, 9));
    rows.push(Row::new(&key("deleted+marked"), "v3", true, true, 0));

    let home = crate::common::new_s3_location(label);
    let bucket_root = S3Store::open(&s3_spec("", S3_ENDPOINT, S3_SECRET_KEY), 4).unwrap();
    let config = format!("{home}/{S3_BUCKET}/config");
    let local = env.dir.path().join(label);
    let dated = local.join("2026-11-26T00-00Z");
    std::fs::create_dir_all(&dated).unwrap();
    std::fs::create_dir_all(local.join("data")).unwrap();
    let mut listed = Vec::new();
    for (name, body) in data_files(&local.join("data"), &rows, format) {
        let data_key = format!("{config}/data/{name}");
        bucket_root.put(&data_key, body.clone()).unwrap();
        std::fs::write(local.join("data").join(name), body).unwrap();
        listed.push(serde_json::json!({"key": data_key, "size": 0, "MD5checksum": ""}));
    }
    let millis = created.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let (file_format, file_schema) = match format {
        Format::Csv => ("CSV", CSV_SCHEMA),
        Format::Parquet => ("Parquet", PARQUET_SCHEMA),
    };
    let manifest = serde_json::json!({
        "sourceBucket": S3_BUCKET,
        "destinationBucket": format!("arn:aws:s3:::{S3_BUCKET}"),
        "version": "2016-11-30",
        "creationTimestamp": millis.to_string(),
        "fileFormat": file_format,
        "fileSchema": file_schema,
        "files": listed,
    })
    .to_string();
    let manifest_key = format!("{config}/2026-11-26T00-00Z/manifest.json");
    bucket_root
        .put(&manifest_key, manifest.clone().into_bytes())
        .unwrap();
    let manifest_path = dated.join("manifest.json");
    std::fs::write(&manifest_path, manifest).unwrap();
    (format!("s3://{S3_BUCKET}/{manifest_key}"), manifest_path)
}

/// A report without what differs between a listing and an inventory run.
fn comparable(mut report: Value) -> Value {
    let object = report.as_object_mut().unwrap();
    for changing in ["seconds", "started", "finished"] {
        object.remove(changing);
    }
    object.remove("inventory");
    report
}

fn scan(env: &Env, schema: &str, extra: &[&str], orphans: &str) -> (Value, Vec<String>) {
    let path = env.dir.path().join(orphans);
    let mut args = vec![
        "scan",
        schema,
        "--min-age",
        "0s",
        "--json",
        "--orphans-out",
        path.to_str().unwrap(),
    ];
    args.extend(extra);
    let out = env.djgc(&args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    (report(&out), read_lines(&path))
}

#[test]
fn a_csv_inventory_gives_the_listing_orphans_and_lags_safely() {
    an_inventory_gives_the_listing_orphans_and_lags_safely(Backend::MySql, Format::Csv);
}

#[test]
fn a_parquet_inventory_gives_the_listing_orphans_and_lags_safely() {
    an_inventory_gives_the_listing_orphans_and_lags_safely(Backend::PostgreSql, Format::Parquet);
}

fn an_inventory_gives_the_listing_orphans_and_lags_safely(backend: Backend, format: Format) {
    let mut env = Env::with_store(backend, Kind::S3);
    let schema = unique_schema("inventory");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let (listed, listed_orphans) = scan(&env, &schema, &[], "listed");
    assert_eq!(listed_orphans, truth.orphans);

    let (in_bucket, local) = write_inventory(
        &env,
        SystemTime::now() + Duration::from_secs(2),
        "inv",
        format,
    );
    for manifest in [in_bucket.as_str(), local.to_str().unwrap()] {
        let (r, orphans) = scan(&env, &schema, &["--inventory", manifest], "from-inventory");
        assert_eq!(orphans, truth.orphans, "{manifest}");
        assert_eq!(
            comparable(r.clone()),
            comparable(listed.clone()),
            "{manifest}"
        );
        assert_eq!(r["inventory"]["manifest"], manifest);
    }
    // Sharded inventory runs add up to the same orphans.
    let mut union = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let (_, orphans) = scan(
            &env,
            &schema,
            &["--inventory", &in_bucket, "--shard", &shard],
            "shard",
        );
        union.extend(orphans);
    }
    union.sort();
    assert_eq!(union, truth.orphans);

    // The bucket moves on: an orphan deleted, one rewritten, one object added.
    let (_, store) = env.remote.as_ref().unwrap();
    let deleted = &truth.orphans[0];
    let rewritten = &truth.orphans[1];
    let added = format!("_schema/{schema}/npy_item/late.bin");
    let section = |key: &str| key[..key.find(&schema).unwrap() + schema.len() + 1].to_string();
    store.delete(&section(deleted), std::slice::from_ref(deleted))[0]
        .as_ref()
        .unwrap();
    store
        .put(
            rewritten,
            b"a longer content written after the inventory".to_vec(),
        )
        .unwrap();
    store
        .put(&added, b"uploaded after the inventory".to_vec())
        .unwrap();

    let r = env.djgc_ok(&[
        "collect",
        &schema,
        "--min-age",
        "0s",
        "--inventory",
        &in_bucket,
        "--delete",
        "--json",
    ]);
    assert_eq!(r["changed_skipped"], 2, "{r}");
    assert_eq!(r["deleted"], truth.orphans.len() - 2, "{r}");
    let left = env.keys();
    assert!(
        left.contains(rewritten) && left.contains(&added),
        "{left:?}"
    );
    assert!(truth.live_files.iter().all(|k| left.contains(k)));
    let remaining: Vec<&String> = truth.orphans.iter().filter(|k| left.contains(k)).collect();
    assert_eq!(remaining, [rewritten]);
}

/// A plan judged from an S3 Inventory is applied only with that inventory
/// named again: djgc never takes an inventory's path from a plan file,
/// whose writer could point it at an inventory of their own.
#[test]
fn a_plan_judged_from_an_inventory_needs_it_named_again() {
    let mut env = Env::with_store(Backend::MySql, Kind::S3);
    let schema = unique_schema("invplan");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let (in_bucket, local) = write_inventory(
        &env,
        SystemTime::now() + Duration::from_secs(2),
        "invplan",
        Format::Csv,
    );
    let plan = env.dir.path().join("plan.jsonl");
    let plan = plan.to_str().unwrap();
    let args = ["--inventory", &in_bucket, "--plan", plan];
    let (planned, _) = scan(&env, &schema, &args, "planned");
    let before = env.keys();
    for wrong in [&[][..], &["--inventory", local.to_str().unwrap()][..]] {
        let mut args = vec!["apply", plan, "--min-age", "0s", "--delete"];
        args.extend(wrong);
        let out = env.djgc(&args);
        assert_eq!(out.status.code(), Some(2), "{wrong:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--inventory"), "{}", stderr(&out));
    }
    assert_eq!(env.keys(), before);
    let r = env.djgc_ok(&[
        "apply",
        plan,
        "--min-age",
        "0s",
        "--inventory",
        &in_bucket,
        "--delete",
        "--json",
    ]);
    assert_eq!(r["deleted"], truth.orphans.len(), "{r}");
    // The guard's figures, counted again from the inventory.
    assert_eq!(r["stored"], planned["stored"], "{r}");
}

#[test]
fn objects_newer_than_the_inventory_are_never_judged() {
    let mut env = Env::with_store(Backend::PostgreSql, Kind::S3);
    let schema = unique_schema("invyoung");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    // Taken a day before the objects were written: it cannot vouch for them.
    let (manifest, _) = write_inventory(
        &env,
        SystemTime::now() - Duration::from_secs(86_400),
        "young",
        Format::Parquet,
    );
    let (r, orphans) = scan(&env, &schema, &["--inventory", &manifest], "young-orphans");
    assert!(orphans.is_empty(), "{orphans:?}");
    assert_eq!(r["young_skipped"], truth.orphans.len());
}

#[test]
fn inventories_of_another_bucket_or_format_are_refused_by_name() {
    let mut env = Env::with_store(Backend::MySql, Kind::S3);
    let schema = unique_schema("invbad");
    env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    let (_, local) = write_inventory(&env, SystemTime::now(), "bad", Format::Csv);
    let text = std::fs::read_to_string(&local).unwrap();
    for (from, to, expected) in [
        (
            format!("\"sourceBucket\":\"{S3_BUCKET}\""),
            "\"sourceBucket\":\"other\"".to_string(),
            "lists bucket \"other\"",
        ),
        (
            "\"fileFormat\":\"CSV\"".to_string(),
            "\"fileFormat\":\"ORC\"".to_string(),
            "format is ORC",
        ),
        (
            "LastModifiedDate".to_string(),
            "Modified".to_string(),
            "no LastModifiedDate field",
        ),
    ] {
        let changed = text.replace(&from, &to);
        assert_ne!(changed, text, "{from}");
        std::fs::write(&local, changed).unwrap();
        let out = env.djgc(&["scan", &schema, "--inventory", local.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(local.to_str().unwrap()),
            "{}",
            stderr(&out)
        );
    }
    let missing = env.dir.path().join("nowhere/manifest.json");
    let out = env.djgc(&["scan", &schema, "--inventory", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A Parquet data file that cannot be read, or lacks a column djgc needs,
/// is a problem that names it and blocks deletion: never a shorter listing
/// (which would make its objects look absent, so never judged) passed off
/// as the bucket.
#[test]
fn an_unreadable_parquet_file_blocks_deletion_by_name() {
    let mut env = Env::with_store(Backend::PostgreSql, Kind::S3);
    let schema = unique_schema("invparq");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    assert!(!truth.orphans.is_empty());
    let (_, local) = write_inventory(&env, SystemTime::now(), "parq", Format::Parquet);
    let data = local.parent().unwrap().parent().unwrap().join("data");
    let before = env.keys();
    // A CSV file under a Parquet name, then a Parquet file without `size`.
    let mut damaged = vec![(
        "part-1.parquet",
        b"\"b\",\"k\",\"1\"\n".to_vec(),
        "part-1.parquet",
    )];
    let out = data.join("sizeless.parquet");
    let status = Command::new(python())
        .args([
            "-c",
            "import sys, pyarrow as pa, pyarrow.parquet as pq; \
             pq.write_table(pa.table({'bucket': ['b'], 'key': ['k'], \
             'last_modified_date': pa.array([0], pa.timestamp('ms'))}), sys.argv[1])",
            out.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    damaged.push((
        "part-1.parquet",
        std::fs::read(&out).unwrap(),
        "no size column",
    ));
    for (name, body, expected) in damaged {
        std::fs::write(data.join(name), body).unwrap();
        let out = env.djgc(&[
            "collect",
            &schema,
            "--min-age",
            "0s",
            "--inventory",
            local.to_str().unwrap(),
            "--delete",
        ]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert_eq!(env.keys(), before);
    }
}

#[test]
fn check_from_an_inventory_reads_its_objects_and_looks_again_at_what_it_lacks() {
    let mut env = Env::with_store(Backend::MySql, Kind::S3);
    let schema = unique_schema("invcheck");
    let truth = env.fixture(&FixtureSpec::small(&schema, "main"));
    env.write_config(None);
    // Two live objects: one deleted before the inventory is taken, one
    // written after it (a row whose object the inventory cannot know).
    let (gone, late) = (&truth.live_files[0], &truth.live_files[1]);
    env.remove(gone);
    let (_, store) = env.remote.as_ref().unwrap();
    let late_body = store.get(late).unwrap().unwrap();
    env.remove(late);
    let (manifest, _) = write_inventory(&env, SystemTime::now(), "check", Format::Csv);
    store.put(late, late_body).unwrap();

    let out = env.djgc(&["check", &schema, "--inventory", &manifest, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = report(&out);
    let paths: Vec<&str> = found["damaged_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.is_empty() && paths.iter().all(|p| *p == gone.as_str()),
        "{found}"
    );
    assert_eq!(found["objects_damaged"], 1, "{found}");
}
