//! Large tables are read as several parts at once, cut by their leading key.
//! The parts of a table hold each row exactly once, whatever the key's type,
//! its values and the order the server compares them in; and a scan read in
//! parts finds what a scan read table by table finds.

use crate::common::{unique_schema, Env, BACKENDS};
use djgc::config::{Backend, Config};
use djgc::progress::Silent;
use djgc::refs::db::{CodecTable, TablePart};
use djgc::refs::{Reader, ReferenceQuery, ReferenceScan};

/// Leading keys that sort differently by byte, by code point and by a
/// case-insensitive collation, with quotes, a backslash, a leading space,
/// the empty string and characters outside ASCII.
const SUBJECTS: &[&str] = &[
    "mouse001",
    "mouse002",
    "mouse010",
    "mouse100",
    "Mouse003",
    "Zeta",
    "alpha",
    "ALPHA2",
    "Ärger",
    "o'brien",
    "back\\slash",
    " lead",
    "日本",
    "~tilde",
    "",
    "zz",
];
/// Integer leading keys across the range of a signed 64-bit column.
const IDS: &[i64] = &[i64::MIN, -5, 0, 7, 8, 1 << 40, i64::MAX];
const SESSIONS: i64 = 6;

/// A string literal of `backend`'s SQL.
fn literal(backend: Backend, value: &str) -> String {
    match backend {
        Backend::MySql => format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''")),
        Backend::PostgreSql => format!("'{}'", value.replace('\'', "''")),
    }
}

/// Two tables: `_session` keyed by (subject, session) with a hash and a
/// schema-addressed column, each null in some rows; `_count` keyed by a
/// bigint.
fn create_tables(env: &mut Env, schema: &str) {
    let q = |id: &str| env.db.quote(id);
    let (s, session, count) = (q(schema), q("_session"), q("_count"));
    match env.backend {
        Backend::MySql => {
            env.sql(&format!("CREATE DATABASE {s}"));
            env.sql(&format!(
                "CREATE TABLE {s}.{session} (\
                   subject varchar(16) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL \
                     COMMENT ':varchar(16):', \
                   session int NOT NULL COMMENT ':int32:', \
                   data longtext COMMENT ':<blob@main>:', \
                   arr longtext COMMENT ':<npy@main>:', \
                   PRIMARY KEY (subject, session)) ENGINE=InnoDB"
            ));
            env.sql(&format!(
                "CREATE TABLE {s}.{count} (id bigint NOT NULL COMMENT ':int64:', \
                   arr longtext NOT NULL COMMENT ':<npy@main>:', PRIMARY KEY (id)) ENGINE=InnoDB"
            ));
        }
        Backend::PostgreSql => {
            env.sql(&format!("CREATE SCHEMA {s}"));
            env.sql(&format!(
                "CREATE TABLE {s}.{session} (subject varchar(16) NOT NULL, session integer NOT NULL, \
                   data jsonb, arr jsonb, PRIMARY KEY (subject, session))"
            ));
            env.sql(&format!(
                "COMMENT ON COLUMN {s}.{session}.data IS ':<blob@main>:'; \
                 COMMENT ON COLUMN {s}.{session}.arr IS ':<npy@main>:'"
            ));
            env.sql(&format!(
                "CREATE TABLE {s}.{count} (id bigint NOT NULL PRIMARY KEY, arr jsonb NOT NULL); \
                 COMMENT ON COLUMN {s}.{count}.arr IS ':<npy@main>:'"
            ));
        }
    }
    env.schemas.push(schema.to_string());
    let npy = |path: &str| format!(r#"{{"path": "{path}", "store": "main", "shape": [4]}}"#);
    let mut rows = Vec::new();
    for (i, subject) in SUBJECTS.iter().enumerate() {
        for n in 1..=SESSIONS {
            let hash = format!("h{i:02}s{n}aaaaaaaaaaaaaaaaaaaaa");
            let data = (n % 3 != 0).then(|| {
                format!(
                    r#"{{"hash": "{hash}", "path": "_hash/{schema}/{hash}", "store": "main", "size": 4}}"#
                )
            });
            let arr =
                (n % 2 == 0).then(|| npy(&format!("_schema/{schema}/session/i={i}/n={n}/arr.npy")));
            let value =
                |v: Option<String>| v.map_or("NULL".to_string(), |v| literal(env.backend, &v));
            rows.push(format!(
                "({}, {n}, {}, {})",
                literal(env.backend, subject),
                value(data),
                value(arr)
            ));
        }
    }
    env.sql(&format!(
        "INSERT INTO {s}.{session} (subject, session, data, arr) VALUES {}",
        rows.join(", ")
    ));
    let rows: Vec<String> = IDS
        .iter()
        .map(|id| {
            let arr = npy(&format!("_schema/{schema}/count/id={id}/arr.npy"));
            format!("({id}, {})", literal(env.backend, &arr))
        })
        .collect();
    env.sql(&format!(
        "INSERT INTO {s}.{count} (id, arr) VALUES {}",
        rows.join(", ")
    ));
    // The estimates a scan decides by.
    match env.backend {
        Backend::MySql => env.sql(&format!("ANALYZE TABLE {s}.{session}, {s}.{count}")),
        Backend::PostgreSql => env.sql(&format!("ANALYZE {s}.{session}, {s}.{count}")),
    }
}

/// Every value the parts hold, with its row and column, sorted.
fn values(env: &Env, parts: &[TablePart<'_>]) -> Vec<(String, usize, String)> {
    let mut all = Vec::new();
    for part in parts {
        let mut visit = |column: usize, value: &str, row: &dyn Fn() -> String| {
            all.push((row(), column, value.to_string()));
        };
        env.rt
            .block_on(env.db.read_values(part, &mut visit))
            .unwrap();
    }
    all.sort();
    all
}

/// An environment on `backend` with the two tables in a new schema.
fn with_tables(backend: Backend, label: &str) -> (Env, String) {
    let mut env = Env::new(backend);
    let schema = unique_schema(label);
    create_tables(&mut env, &schema);
    (env, schema)
}

#[test]
fn the_parts_of_a_table_hold_each_row_once() {
    for backend in BACKENDS {
        let (env, schema) = with_tables(backend, "parts");
        let tables: Vec<CodecTable> = env.rt.block_on(env.db.codec_tables(&schema, &[])).unwrap();
        assert_eq!(tables.len(), 2, "{backend:?}");
        for table in &tables {
            assert!(table.leading_key.is_some(), "{backend:?} {}", table.name);
            let whole = values(&env, &TablePart::cut(table, &[]));
            let rows = if table.name == "_count" {
                IDS.len()
            } else {
                // A row with both columns null is not read.
                SUBJECTS.len() * (SESSIONS as usize - 1)
            };
            let mut read_rows: Vec<&String> = whole.iter().map(|(row, _, _)| row).collect();
            read_rows.dedup();
            assert_eq!(read_rows.len(), rows, "{backend:?} {}", table.name);
            for wanted in [2, 3, 5, 16] {
                let cuts = env.rt.block_on(env.db.split_points(table, wanted)).unwrap();
                assert!(
                    !cuts.is_empty() && cuts.len() < wanted,
                    "{backend:?} {}: {cuts:?}",
                    table.name
                );
                let parts = TablePart::cut(table, &cuts);
                let read: Vec<Vec<(String, usize, String)>> = parts
                    .iter()
                    .map(|p| values(&env, std::slice::from_ref(p)))
                    .collect();
                assert!(
                    read.iter().filter(|values| !values.is_empty()).count() >= 2,
                    "{backend:?} {}: {cuts:?} cut nothing off",
                    table.name
                );
                let mut together: Vec<_> = read.into_iter().flatten().collect();
                together.sort();
                assert_eq!(
                    together, whole,
                    "{backend:?} {} cut at {cuts:?}",
                    table.name
                );
            }
        }
    }
}

#[test]
fn a_scan_read_in_parts_finds_what_a_scan_read_whole_finds() {
    for backend in BACKENDS {
        let (env, schema) = with_tables(backend, "partscan");
        let config = Config::load(Some(env.write_config(None))).unwrap();
        let spec = config.store(Some("main")).unwrap();
        // The server's estimates, which rows_per_part 1 cuts by, are there.
        let tables: Vec<CodecTable> = env.rt.block_on(env.db.codec_tables(&schema, &[])).unwrap();
        assert!(
            tables
                .iter()
                .all(|t| t.estimated_rows > 1 && t.leading_key.is_some()),
            "{backend:?}: {tables:?}"
        );
        let reader = Reader::connect(&env.database, 4, Default::default()).unwrap();
        let query =
            djgc::judge::reference_query(&spec, std::slice::from_ref(&schema), &[], 4).unwrap();
        let scan = |rows_per_part: u64| -> ReferenceScan {
            let query = ReferenceQuery {
                rows_per_part,
                ..query.clone()
            };
            let scan = reader.scan(&query, &Silent).unwrap();
            assert!(scan.errors.is_empty(), "{backend:?}: {:?}", scan.errors);
            // No table fell back to one stream.
            assert!(scan.warnings.is_empty(), "{backend:?}: {:?}", scan.warnings);
            scan
        };
        let whole = scan(u64::MAX);
        let parts = scan(1);
        assert_eq!(parts.values, whole.values, "{backend:?}");
        assert_eq!(parts.counted, whole.counted, "{backend:?}");
        assert_eq!(parts.by_schema, whole.by_schema, "{backend:?}");
        assert_eq!(parts.references.len(), whole.references.len());
        let expected_values = SUBJECTS.len() as u64 * (4 + 3) + IDS.len() as u64;
        assert_eq!(whole.values, expected_values, "{backend:?}");
        for (i, _) in SUBJECTS.iter().enumerate() {
            for n in 1..=SESSIONS {
                let hash = format!("_hash/{schema}/h{i:02}s{n}aaaaaaaaaaaaaaaaaaaaa");
                let arr = format!("_schema/{schema}/session/i={i}/n={n}/arr.npy");
                for scan in [&whole, &parts] {
                    assert_eq!(
                        scan.references.covers(&hash),
                        n % 3 != 0,
                        "{backend:?} {hash}"
                    );
                    assert_eq!(
                        scan.references.covers(&arr),
                        n % 2 == 0,
                        "{backend:?} {arr}"
                    );
                }
            }
        }
        for id in IDS {
            let arr = format!("_schema/{schema}/count/id={id}/arr.npy");
            assert!(parts.references.covers(&arr), "{backend:?} {arr}");
        }
    }
}
