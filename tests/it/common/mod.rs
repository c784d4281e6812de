//! Test environments: a fresh schema on a real database server, a file store
//! in a temporary folder, a `datajoint.json` pointing at both, and the real
//! `djgc` binary run against them.
//!
//! The servers are the ones `scripts/services.sh` starts (user and password
//! `djgc`). A test fails, not skips, when they are down: run that script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use djgc::config::{Backend, DatabaseConfig, Protocol, S3Spec, Secret, StoreSpec};
use djgc::fixture::{self, FixtureOutcome, FixtureSpec, Target};
use djgc::refs::db::{Database, Pool};
use djgc::store::{AzureStore, GcsStore, S3Store, Store};
use serde_json::Value;

pub const BACKENDS: [Backend; 2] = [Backend::MySql, Backend::PostgreSql];

/// The S3 server `scripts/services.sh` starts, and its test credentials.
pub const S3_ENDPOINT: &str = "127.0.0.1:8333";
pub const S3_ACCESS_KEY: &str = "djgc-test";
pub const S3_SECRET_KEY: &str = "djgc-test-secret";
/// The one bucket every S3 test uses; each test store has its own `location`
/// in it (SeaweedFS gives each bucket its own volumes, and runs out of them).
pub const S3_BUCKET: &str = "djgc-tests";

/// Which kind of store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    S3,
    Gcs,
    Azure,
}

pub const KINDS: [Kind; 2] = [Kind::File, Kind::S3];

/// The DataJoint spec of an S3 test store at `location` in the test bucket.
pub fn s3_spec(location: &str, endpoint: &str, secret: &str) -> StoreSpec {
    StoreSpec {
        name: "main".into(),
        protocol: Protocol::S3,
        location: location.into(),
        subfolding: None,
        hash_prefix: "_hash".into(),
        schema_prefix: "_schema".into(),
        filepath_prefix: None,
        partition_pattern: None,
        s3: Some(S3Spec {
            endpoint: endpoint.into(),
            bucket: S3_BUCKET.into(),
            secure: false,
            access_key: Some(Secret::new(S3_ACCESS_KEY)),
            secret_key: Some(Secret::new(secret)),
        }),
        gcs: None,
        azure: None,
        is_default: true,
    }
}

/// One fresh environment for every store kind and database backend.
pub fn all_envs() -> impl Iterator<Item = Env> {
    KINDS
        .into_iter()
        .flat_map(|kind| BACKENDS.map(move |backend| (kind, backend)))
        .map(|(kind, backend)| Env::with_store(backend, kind))
}

/// One fresh environment on each of the GCS and Azure emulators (one
/// database backend each): for the tests that every protocol must pass
/// beyond the conformance suite (quarantine, restore, purge, shards).
pub fn cloud_envs() -> impl Iterator<Item = Env> {
    [
        (Kind::Gcs, Backend::MySql),
        (Kind::Azure, Backend::PostgreSql),
    ]
    .into_iter()
    .map(|(kind, backend)| Env::with_store(backend, kind))
}

/// A store location in the test bucket that no other test uses; creates
/// the bucket on first use.
pub fn new_s3_location(label: &str) -> String {
    static CREATED: std::sync::Once = std::sync::Once::new();
    CREATED.call_once(|| {
        let rt = runtime();
        rt.block_on(async {
            let config = aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .endpoint_url(format!("http://{S3_ENDPOINT}"))
                .force_path_style(true)
                .credentials_provider(aws_sdk_s3::config::Credentials::new(
                    S3_ACCESS_KEY,
                    S3_SECRET_KEY,
                    None,
                    None,
                    "test",
                ))
                .build();
            let created = aws_sdk_s3::Client::from_conf(config)
                .create_bucket()
                .bucket(S3_BUCKET)
                .send()
                .await;
            if let Err(e) = created {
                let code = e.as_service_error().and_then(|s| s.meta().code()).unwrap_or("");
                assert!(
                    matches!(code, "BucketAlreadyExists" | "BucketAlreadyOwnedByYou"),
                    "creating bucket {S3_BUCKET}: {}\n(is the S3 server up? run scripts/services.sh)",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                );
            }
        });
    });
    format!("t/{}", unique_schema(label))
}

/// The GCS emulator of `scripts/services.sh` and its test bucket.
pub const GCS_EMULATOR: &str = "http://127.0.0.1:4443";
pub const GCS_BUCKET: &str = "djgc-tests";
/// Azurite, with the published development account, and its test container.
pub const AZURE_CONNECTION: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
     AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;\
     BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";
pub const AZURE_CONTAINER: &str = "djgc-tests";

/// The spec of a store at `location` on another protocol, with the shared
/// settings of [`s3_spec`].
fn cloud_spec(location: &str, protocol: Protocol) -> StoreSpec {
    StoreSpec {
        protocol,
        location: location.into(),
        s3: None,
        ..s3_spec(location, S3_ENDPOINT, S3_SECRET_KEY)
    }
}

/// The DataJoint spec of a GCS test store at `location` on the emulator.
pub fn gcs_spec(location: &str) -> StoreSpec {
    StoreSpec {
        gcs: Some(djgc::config::GcsSpec {
            bucket: GCS_BUCKET.into(),
            token: djgc::config::GcsToken::Anonymous,
            project: None,
            emulator: Some(GCS_EMULATOR.into()),
        }),
        ..cloud_spec(location, Protocol::Gcs)
    }
}

/// The DataJoint spec of an Azure test store at `location` on Azurite,
/// reached by its connection string.
pub fn azure_spec(location: &str) -> StoreSpec {
    StoreSpec {
        azure: Some(djgc::config::AzureSpec {
            container: AZURE_CONTAINER.into(),
            account_name: None,
            account_key: None,
            connection_string: Some(Secret::new(AZURE_CONNECTION)),
        }),
        ..cloud_spec(location, Protocol::Azure)
    }
}

/// Deletes every object of a test store (its whole location).
pub fn clear_store(store: &dyn Store) {
    for batch in store_keys(store, "").chunks(1000) {
        for outcome in store.delete("", batch) {
            outcome.unwrap();
        }
    }
}

/// Every key under `prefix` of a store, sorted.
pub fn store_keys(store: &dyn Store, prefix: &str) -> Vec<String> {
    djgc::store::collect_keys(store, prefix).unwrap_or_else(|e| panic!("listing {prefix}: {e}"))
}

pub fn database_config(backend: Backend) -> DatabaseConfig {
    DatabaseConfig {
        backend,
        host: "127.0.0.1".to_string(),
        port: match backend {
            Backend::MySql => 3306,
            Backend::PostgreSql => 5432,
        },
        user: Some("djgc".to_string()),
        password: Some(Secret::new("djgc")),
        name: "djgc".to_string(),
        timeout: djgc::config::DEFAULT_DB_TIMEOUT,
        tls: djgc::config::Tls::PREFER,
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A schema name no other test (or earlier run) uses at the same time.
pub fn unique_schema(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "djgct_{label}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's world: database, schemas created in it, a folder for the config,
/// and a store: a folder below it, or a new bucket.
pub struct Env {
    pub backend: Backend,
    /// The database server and account the env and its config use.
    pub database: DatabaseConfig,
    pub rt: tokio::runtime::Runtime,
    pub db: Database,
    pub dir: tempfile::TempDir,
    pub schemas: Vec<String>,
    /// The store location in the test bucket or container and an open
    /// store, for S3, GCS and Azure environments.
    pub remote: Option<(String, Box<dyn Store>)>,
    kind: Kind,
}

impl Env {
    /// A file-store environment.
    pub fn new(backend: Backend) -> Env {
        Env::with_store(backend, Kind::File)
    }

    pub fn with_store(backend: Backend, kind: Kind) -> Env {
        Env::on(database_config(backend), kind)
    }

    /// An environment on the database server `database` describes.
    pub fn on(database: DatabaseConfig, kind: Kind) -> Env {
        let backend = database.backend;
        let rt = runtime();
        let db = rt
            .block_on(Database::connect(&database, 4))
            .unwrap_or_else(|e| panic!("{e}\n(is the database up? run scripts/services.sh)"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let remote = match kind {
            Kind::File => None,
            Kind::S3 => {
                let location = new_s3_location("s3");
                let spec = s3_spec(&location, S3_ENDPOINT, S3_SECRET_KEY);
                let store: Box<dyn Store> = Box::new(S3Store::open(&spec, 8).unwrap());
                Some((location, store))
            }
            Kind::Gcs => {
                let location = format!("t/{}", unique_schema("gcs"));
                let store: Box<dyn Store> =
                    Box::new(GcsStore::open(&gcs_spec(&location), 8).unwrap());
                Some((location, store))
            }
            Kind::Azure => {
                let location = format!("t/{}", unique_schema("azure"));
                let store: Box<dyn Store> =
                    Box::new(AzureStore::open(&azure_spec(&location), 8).unwrap());
                Some((location, store))
            }
        };
        Env {
            backend,
            database,
            rt,
            db,
            dir,
            schemas: Vec::new(),
            remote,
            kind,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Every key in the store, sorted.
    pub fn keys(&self) -> Vec<String> {
        match &self.remote {
            Some((_, store)) => store_keys(store.as_ref(), ""),
            None => all_files(&self.store_root()),
        }
    }

    pub fn store_root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Writes `datajoint.json` with store `main` (the default) and returns its path.
    pub fn write_config(&self, subfolding: Option<&[usize]>) -> PathBuf {
        self.write_config_with(subfolding, "")
    }

    /// Like [`Env::write_config`], with `extra` (e.g. `, "partition_pattern": "{subject}"`)
    /// appended to store `main`.
    pub fn write_config_with(&self, subfolding: Option<&[usize]>, extra: &str) -> PathBuf {
        let db = &self.database;
        let backend = match self.backend {
            Backend::MySql => "mysql",
            Backend::PostgreSql => "postgresql",
        };
        let subfolding = match subfolding {
            Some(s) => format!("{s:?}"),
            None => "null".to_string(),
        };
        let location = self.remote.as_ref().map_or("", |(l, _)| l.as_str());
        let store = match self.kind {
            Kind::S3 => format!(
                r#""protocol": "s3", "endpoint": "{S3_ENDPOINT}", "bucket": "{S3_BUCKET}",
                   "location": "{location}", "access_key": "{S3_ACCESS_KEY}",
                   "secret_key": "{S3_SECRET_KEY}", "secure": false"#
            ),
            Kind::Gcs => format!(
                r#""protocol": "gcs", "bucket": "{GCS_BUCKET}", "location": "{location}",
                   "token": "anon""#
            ),
            Kind::Azure => format!(
                r#""protocol": "azure", "container": "{AZURE_CONTAINER}", "location": "{location}",
                   "connection_string": "{AZURE_CONNECTION}""#
            ),
            Kind::File => format!(
                r#""protocol": "file", "location": "{}""#,
                self.store_root().display()
            ),
        };
        let user = db.user.as_deref().unwrap_or_default();
        let password = db.password.as_ref().map_or("", |p| p.expose());
        let config = format!(
            r#"{{"database": {{"host": "{}", "port": {}, "user": "{user}", "password": "{password}",
                 "backend": "{backend}", "name": "{}"}},
               "stores": {{"default": "main",
                 "main": {{{store}, "subfolding": {subfolding}{extra}}}}}}}"#,
            db.host, db.port, db.name,
        );
        let path = self.dir.path().join("datajoint.json");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Generates a fixture schema in this env's database and store.
    pub fn fixture(&mut self, spec: &FixtureSpec) -> FixtureOutcome {
        self.schemas.push(spec.schema.clone());
        let root = self.store_root();
        let target = match &self.remote {
            Some((_, store)) => Target::Store(store.as_ref()),
            None => Target::Folder(&root),
        };
        self.rt
            .block_on(fixture::create(&self.db, target, spec))
            .unwrap()
    }

    pub fn sql(&self, sql: &str) {
        self.try_sql(sql).unwrap();
    }

    /// Runs one statement on the test database (djgc's own connection runs
    /// none: it only reads).
    pub fn try_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.rt.block_on(async {
            match self.db.pool() {
                Pool::MySql(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
                Pool::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            }
        })
    }

    /// The first column of every row `sql` returns, as text.
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        self.rt.block_on(async {
            match self.db.pool() {
                Pool::MySql(pool) => sqlx::query(sql)
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get_unchecked::<String, _>(0))
                    .collect(),
                Pool::Postgres(pool) => sqlx::query(sql)
                    .fetch_all(pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get_unchecked::<String, _>(0))
                    .collect(),
            }
        })
    }

    /// Removes the object at `key`.
    pub fn remove(&self, key: &str) {
        match &self.remote {
            Some((_, store)) => {
                let folder = &key[..key.rfind('/').map_or(0, |i| i + 1)];
                let outcome = store.delete(folder, &[key.to_string()]);
                assert!(outcome.iter().all(Result::is_ok), "{key}: {outcome:?}");
            }
            None => std::fs::remove_file(self.store_root().join(key)).unwrap(),
        }
    }

    /// Runs `djgc ARGS... --config <this env's config>`.
    pub fn djgc(&self, args: &[&str]) -> Output {
        djgc_in(self.dir.path(), args)
    }

    /// Runs djgc, which must exit 0, and returns its `--json` report.
    pub fn djgc_ok(&self, args: &[&str]) -> Value {
        let out = self.djgc(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "djgc {args:?}: {}",
            stderr(&out)
        );
        report(&out)
    }

    /// Writes an object (in a file store, with an old mtime).
    pub fn put(&self, key: &str, content: &str) {
        match &self.remote {
            Some((_, store)) => store.put(key, content.as_bytes().to_vec()).unwrap(),
            None => put_old_file(&self.store_root(), key, content),
        }
    }

    /// Every object of the store with its size, by key, from one listing.
    pub fn sizes(&self) -> std::collections::BTreeMap<String, u64> {
        let files;
        let store: &dyn Store = match &self.remote {
            Some((_, store)) => store.as_ref(),
            None => {
                files = djgc::store::FsStore::new("sizes", self.store_root(), 2);
                &files
            }
        };
        let sizes = std::sync::Mutex::new(std::collections::BTreeMap::new());
        store.list("", &|item| {
            match item {
                djgc::store::Listing::Objects(objects) => sizes
                    .lock()
                    .unwrap()
                    .extend(objects.into_iter().map(|o| (o.key, o.size))),
                djgc::store::Listing::Error(e) => panic!("listing the store: {e}"),
            }
            djgc::store::ControlFlow::Continue(())
        });
        sizes.into_inner().unwrap()
    }

    /// Every object of the store with its content, by key.
    pub fn contents(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        use rayon::prelude::*;
        // Reads wait on the network: many more than one per core.
        let readers = rayon::ThreadPoolBuilder::new()
            .num_threads(16)
            .build()
            .unwrap();
        let keys = self.keys();
        readers.install(|| {
            keys.into_par_iter()
                .map(|key| {
                    let body = match &self.remote {
                        Some((_, store)) => store.get(&key).unwrap().unwrap(),
                        None => std::fs::read(self.store_root().join(&key)).unwrap(),
                    };
                    (key, body)
                })
                .collect()
        })
    }

    pub fn exists(&self, key: &str) -> bool {
        match &self.remote {
            Some((_, store)) => store_keys(store.as_ref(), key).iter().any(|k| k == key),
            None => self.store_root().join(key).exists(),
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((_, store)) = &self.remote {
            if !std::thread::panicking() {
                clear_store(store.as_ref());
            }
        }
        for schema in &self.schemas {
            let sql = match self.backend {
                Backend::MySql => format!("DROP DATABASE IF EXISTS {}", self.db.quote(schema)),
                Backend::PostgreSql => {
                    format!("DROP SCHEMA IF EXISTS {} CASCADE", self.db.quote(schema))
                }
            };
            let _ = self.try_sql(&sql);
        }
    }
}

/// Writes `root/key`, creating folders, with modification time `modified`.
pub fn put_file(root: &Path, key: &str, content: &[u8], modified: std::time::SystemTime) {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

/// Writes `root/key` with a mtime 30 days ago (older than any `--min-age` used).
pub fn put_old_file(root: &Path, key: &str, content: &str) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86400);
    put_file(root, key, content.as_bytes(), old);
}

/// Runs the djgc binary in `dir` (so it finds `dir/datajoint.json`).
pub fn djgc_in(dir: &Path, args: &[&str]) -> Output {
    djgc_command(dir, args).output().unwrap()
}

/// The djgc command with `args`, run in `dir`, free of the caller's
/// DataJoint settings and of any array job's shard.
pub fn djgc_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = clean_command(env!("CARGO_BIN_EXE_djgc"), dir);
    command.args(args);
    command
}

/// `program`, run in `dir`, without the variables through which the
/// caller's DataJoint settings or an array job's shard would reach djgc.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(dir);
    // The GCS emulator of scripts/services.sh, where the tests' gcs stores are.
    command.env("STORAGE_EMULATOR_HOST", GCS_EMULATOR);
    for name in [
        "DJ_STORES",
        "DJ_HOST",
        "DJ_USER",
        "DJ_PASS",
        "DJGC_SHARD",
        "DJGC_SHARD_COUNT",
        "DJGC_RUN_ID",
        "DJGC_DB_TIMEOUT",
        "DJGC_TLS_CA",
        "DJ_USE_TLS",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    ] {
        command.env_remove(name);
    }
    command
}

/// The `--json` report of a successful run.
pub fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); exit {:?}\nstdout: {stdout}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The sorted lines of an `--orphans-out` file.
pub fn read_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Every file below `root`, as sorted store keys.
pub fn all_files(root: &Path) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            } else {
                keys.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    keys.sort();
    keys
}

/// The Python of the compatibility environment (datajoint 2.3.5, PyYAML).
pub fn python() -> PathBuf {
    let path = std::env::var_os("DJGC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-compat/bin/python")
        });
    assert!(
        path.exists(),
        "{} not found: run scripts/python-env.sh (or set DJGC_PYTHON)",
        path.display()
    );
    path
}

/// Runs the DataJoint side of the compatibility test
/// (`tests/compat/dj_pipeline.py MODE SCHEMA`) in `env`'s folder, with its
/// `datajoint.json`, and returns dj.gc's stats.
pub fn datajoint(env: &Env, mode: &str, schema: &str) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat/dj_pipeline.py");
    let out_file = env.dir.path().join(format!("dj-{mode}.json"));
    let out = Command::new(python())
        .arg(&script)
        .args([mode, schema])
        .arg(&out_file)
        .current_dir(env.dir.path())
        // Where gcsfs and google-cloud-storage find the GCS emulator.
        .env("STORAGE_EMULATOR_HOST", GCS_EMULATOR)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "datajoint {mode} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap()
}

/// The strings of a JSON array.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}
