//! Reading DataJoint metadata from MySQL/MariaDB or PostgreSQL.
//!
//! Two jobs: find the codec columns of a schema's tables (from the column
//! comments DataJoint writes), and stream their values. Values are read as text
//! in the query (`CAST(col AS CHAR)`, `col::text`), so one decoder serves
//! MariaDB's `longtext`, MySQL's `json` and PostgreSQL's `jsonb` alike, and rows
//! are streamed: a table is never held in memory, whatever its size.
//!
//! The row-reading code is written once, generic over the sqlx driver; only the
//! SQL text (catalog queries, identifier quoting, casts) differs per backend.

use std::time::Duration;

use futures_util::{FutureExt, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{ColumnIndex, Decode, Executor, Row, Type};

use crate::config::{Backend, DatabaseConfig, TlsMode};
use crate::error::{Error, Result};
use crate::refs::codec::{classify, parse_comment, RefKind};

/// A column that may hold object references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecColumn {
    pub name: String,
    pub kind: RefKind,
    /// Whether the column is of a string type (`longtext`, the type
    /// DataJoint declares on MySQL/MariaDB), not `json`/`jsonb`: MySQL then
    /// sends its values as they are, and casting them to text would only
    /// copy each one (half the server's work in a large read).
    pub text_typed: bool,
}

/// A table with at least one codec column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecTable {
    pub schema: String,
    pub name: String,
    /// Primary-key columns, to name a row in error messages.
    pub primary_key: Vec<String>,
    pub columns: Vec<CodecColumn>,
    /// The first column of the primary key's index, when its values can
    /// be split into ranges ([`KeyOrder`]).
    pub leading_key: Option<LeadingKey>,
    /// The server's estimate of the table's rows (0 when it has none).
    pub estimated_rows: u64,
}

/// The column a large table is split by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadingKey {
    pub name: String,
    pub order: KeyOrder,
}

/// How a leading key's values are spread to guess where to split: the
/// guesses only need to be values of the column's type, since every cut
/// is then moved onto a value the table holds, in the server's own order
/// ([`Database::split_points`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOrder {
    /// An integer column: cuts spaced evenly between the least and the most.
    Integer,
    /// A string column: cuts spaced over the first character in which the
    /// least and the most differ (printable ASCII only).
    Text,
}

impl KeyOrder {
    /// The order of a column of this SQL type, if it is one djgc splits.
    fn of(data_type: &str) -> Option<KeyOrder> {
        match data_type.to_ascii_lowercase().as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "integer" => {
                Some(KeyOrder::Integer)
            }
            "varchar" | "char" | "text" => Some(KeyOrder::Text),
            t if t.starts_with("character varying") => Some(KeyOrder::Text),
            _ => None,
        }
    }

    /// Values between `least` and `most` that would cut their range into
    /// `parts` about even parts if the keys were spread evenly.
    fn guesses(self, least: &str, most: &str, parts: usize) -> Vec<String> {
        let steps = 1..parts as u32;
        match self {
            KeyOrder::Integer => {
                let (Ok(least), Ok(most)) = (least.parse::<i128>(), most.parse::<i128>()) else {
                    return Vec::new();
                };
                steps
                    .map(|i| least + (most - least) * i128::from(i) / parts as i128)
                    .map(|cut| cut.to_string())
                    .collect()
            }
            KeyOrder::Text => {
                let shared: String = least
                    .chars()
                    .zip(most.chars())
                    .take_while(|(a, b)| a == b)
                    .map(|(a, _)| a)
                    .collect();
                // The first character that differs, held to printable ASCII,
                // which every character set the column may have can hold.
                let after_shared = |s: &str| {
                    s[shared.len()..]
                        .chars()
                        .next()
                        .map_or(0x20, u32::from)
                        .clamp(0x20, 0x7e)
                };
                let (low, high) = (after_shared(least), after_shared(most));
                if high <= low {
                    return Vec::new();
                }
                steps
                    .filter_map(|i| {
                        char::from_u32(low + high.saturating_sub(low) * i / parts as u32)
                    })
                    .map(|c| format!("{shared}{c}"))
                    .collect()
            }
        }
    }

    /// `?`/`$n` as a value of this order, compared with the column by its
    /// own index: MySQL compares an integer with a decimal exactly (a string
    /// would go through a double), PostgreSQL needs a type with an index
    /// operator for the column's.
    fn parameter(self, backend: Backend, n: usize) -> String {
        match (backend, self) {
            (Backend::MySql, KeyOrder::Integer) => "CAST(? AS DECIMAL(65,0))".to_string(),
            (Backend::MySql, KeyOrder::Text) => "?".to_string(),
            (Backend::PostgreSql, KeyOrder::Integer) => format!("CAST(${n} AS bigint)"),
            (Backend::PostgreSql, KeyOrder::Text) => format!("CAST(${n} AS text)"),
        }
    }
}

/// A share of a table's rows: those whose leading key is at least `lower`
/// and below `upper` (a missing bound is open). The parts of a table are
/// cut at the same values, each the lower bound of one part and the upper
/// of the one before, so every row is in exactly one part whatever the
/// values are: `x < b` and `x >= b` are each other's complement in any
/// order the server compares by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePart<'a> {
    pub table: &'a CodecTable,
    pub lower: Option<String>,
    pub upper: Option<String>,
}

impl<'a> TablePart<'a> {
    /// The parts of `table` cut at `cuts` (ascending in the server's order).
    pub fn cut(table: &'a CodecTable, cuts: &[String]) -> Vec<TablePart<'a>> {
        let bounds: Vec<Option<String>> = std::iter::once(None)
            .chain(cuts.iter().cloned().map(Some))
            .chain(std::iter::once(None))
            .collect();
        bounds
            .windows(2)
            .map(|pair| TablePart {
                table,
                lower: pair[0].clone(),
                upper: pair[1].clone(),
            })
            .collect()
    }

    /// Describes the part in messages: the table, and its range if cut.
    fn describe(&self) -> String {
        let table = format!("{}.{}", self.table.schema, self.table.name);
        match (&self.table.leading_key, &self.lower, &self.upper) {
            (Some(key), lower, upper) if lower.is_some() || upper.is_some() => format!(
                "{table} (rows with {}{}{})",
                lower
                    .as_ref()
                    .map(|l| format!("{l:?} <= "))
                    .unwrap_or_default(),
                key.name,
                upper
                    .as_ref()
                    .map(|u| format!(" < {u:?}"))
                    .unwrap_or_default(),
            ),
            _ => table,
        }
    }
}

/// One row of the catalog query: every backend answers in this shape.
struct CatalogRow {
    table: String,
    column: String,
    comment: Option<String>,
    data_type: String,
    in_primary_key: bool,
    /// The first column of the primary key's index.
    leads_primary_key: bool,
    estimated_rows: u64,
}

/// A connection pool to the pipeline's database.
#[derive(Clone, Debug)]
pub enum Pool {
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// The pipeline's database: a pool, and the longest any wait on it may
/// take. Every call is bounded by that timeout, as a whole for a catalog
/// query and per row for a streamed read (a table may take hours to read,
/// but never waits that long for its next row), so a database that stops
/// answering (a dead host, a read queued behind a lock) ends the call with
/// an error instead of holding the run forever. The server is also told
/// to give up waiting for locks after the same time.
///
/// sqlx exposes no socket options, so there is no TCP keepalive on the
/// client's side; the per-row bound is what notices a silent peer. A
/// PostgreSQL server is asked for keepalive probes on its side.
#[derive(Clone, Debug)]
pub struct Database {
    pool: Pool,
    timeout: Duration,
}

/// Receives each non-null codec value of a row: the column's index in
/// [`CodecTable::columns`], the value as text, and a way to name the row.
pub type ValueVisitor<'a> = dyn FnMut(usize, &str, &dyn Fn() -> String) + Send + 'a;

impl Database {
    /// Connects with at most `connections` connections in the pool.
    pub async fn connect(config: &DatabaseConfig, connections: u32) -> Result<Database> {
        let user = config.user.clone().ok_or_else(|| {
            Error::Config(
                "database.user is not set (datajoint.json, DJ_USER or .secrets/database.user)"
                    .to_string(),
            )
        })?;
        // An empty password is no password (pymysql sends an empty auth
        // response; MariaDB's fresh root@127.0.0.1 has none).
        let password = config
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .filter(|p| !p.is_empty());
        let target = format!("{}:{}", config.host, config.port);
        let tls = &config.tls;
        let context = |what: &str| format!("{what} {user}@{target} ({})", tls.describe());
        let timeout = config.timeout;
        // Lock waits end on the server's side too, with an error that says so.
        let lock_seconds = timeout.as_secs().clamp(1, 31_536_000);
        let pool = match config.backend {
            Backend::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&config.host)
                    .port(config.port)
                    .username(&user)
                    .ssl_mode(match (tls.mode, &tls.ca) {
                        (TlsMode::Disable, _) => MySqlSslMode::Disabled,
                        (_, Some(_)) => MySqlSslMode::VerifyIdentity,
                        (TlsMode::Require, None) => MySqlSslMode::Required,
                        (TlsMode::Prefer, None) => MySqlSslMode::Preferred,
                    });
                if let Some(p) = &password {
                    options = options.password(p);
                }
                if let Some(ca) = &tls.ca {
                    options = options.ssl_ca(ca);
                }
                if let Some(cert) = &tls.client_cert {
                    options = options.ssl_client_cert(cert);
                }
                if let Some(key) = &tls.client_key {
                    options = options.ssl_client_key(key);
                }
                let limits = format!(
                    "SET SESSION lock_wait_timeout = {lock_seconds}, \
                     SESSION innodb_lock_wait_timeout = {}",
                    lock_seconds.min(1_073_741_824)
                );
                let pool = MySqlPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(timeout)
                    .after_connect(move |connection, _| {
                        let limits = limits.clone();
                        Box::pin(async move {
                            connection.execute(sqlx::raw_sql(&limits)).await.map(drop)
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(|e| Error::database(context("connecting to MySQL as"), e))?;
                Pool::MySql(pool)
            }
            Backend::PostgreSql => {
                let millis =
                    |d: Duration| format!("{}ms", d.as_millis().clamp(1, i32::MAX as u128));
                let mut options = PgConnectOptions::new()
                    .host(&config.host)
                    .port(config.port)
                    .username(&user)
                    .database(&config.name)
                    .options([
                        ("lock_timeout", millis(timeout)),
                        ("idle_in_transaction_session_timeout", millis(timeout)),
                        // A read that row-level security would filter fails
                        // instead: rows the account cannot see would make
                        // their objects look orphaned.
                        ("row_security", "off".to_string()),
                        ("tcp_keepalives_idle", "60".to_string()),
                        ("tcp_keepalives_interval", "10".to_string()),
                        ("tcp_keepalives_count", "6".to_string()),
                    ]);
                options = options.ssl_mode(match (tls.mode, &tls.ca) {
                    (TlsMode::Disable, _) => PgSslMode::Disable,
                    (_, Some(_)) => PgSslMode::VerifyFull,
                    (TlsMode::Require, None) => PgSslMode::Require,
                    (TlsMode::Prefer, None) => PgSslMode::Prefer,
                });
                if let Some(p) = &password {
                    options = options.password(p);
                }
                if let Some(ca) = &tls.ca {
                    options = options.ssl_root_cert(ca);
                }
                if let Some(cert) = &tls.client_cert {
                    options = options.ssl_client_cert(cert);
                }
                if let Some(key) = &tls.client_key {
                    options = options.ssl_client_key(key);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(connections)
                    .acquire_timeout(timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| Error::database(context("connecting to PostgreSQL as"), e))?;
                Pool::Postgres(pool)
            }
        };
        Ok(Database { pool, timeout })
    }

    /// The connection pool, for callers that run their own statements.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// `work`, given at most the database timeout; `what` names it in errors.
    async fn bounded<T>(
        &self,
        what: impl Fn() -> String,
        work: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => outcome.map_err(|e| Error::database(what(), e)),
            Err(_) => Err(Error::DatabaseSilent {
                context: what(),
                waited: self.timeout,
            }),
        }
    }

    /// Refuses a MySQL/MariaDB account that cannot read `schema` as a whole:
    /// those servers hide from `information_schema` every table and column
    /// the account has no privilege on, so a read with table-level grants
    /// only could miss whole tables of references and judge their objects
    /// orphaned. Reading every table needs SELECT on the schema or on all
    /// (`schema.*` or `*.*`, a wildcard pattern included), directly or
    /// through a role that SHOW GRANTS lists. PostgreSQL lists every table
    /// to every account; a table it may not read fails the read itself.
    pub async fn check_reads_whole_schema(&self, schema: &str) -> Result<()> {
        let Pool::MySql(pool) = &self.pool else {
            return Ok(());
        };
        let grants: Vec<(String,)> = self
            .bounded(
                || "reading the account's grants (SHOW GRANTS)".to_string(),
                sqlx::query_as("SHOW GRANTS").fetch_all(pool),
            )
            .await?;
        if grants
            .iter()
            .any(|(grant,)| grant_reads_whole_schema(grant, schema))
        {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "the database account cannot read schema {schema} as a whole (no SELECT on \
             `{schema}`.* or *.* among its grants): MySQL and MariaDB hide the tables and \
             columns an account has no privilege on, so references in them would be missed \
             and their objects judged orphaned. Grant SELECT ON `{schema}`.* to the account"
        )))
    }

    /// Whether `schema` exists (a database on MySQL, a schema on PostgreSQL).
    pub async fn schema_exists(&self, schema: &str) -> Result<bool> {
        let context = || format!("looking up schema {schema}");
        let found: Option<(i32,)> = match &self.pool {
            Pool::MySql(pool) => {
                let query = sqlx::query_as(
                    "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                );
                self.bounded(context, query.bind(schema).fetch_optional(pool))
                    .await?
            }
            Pool::Postgres(pool) => {
                let query = sqlx::query_as("SELECT 1 FROM pg_namespace WHERE nspname = $1");
                self.bounded(context, query.bind(schema).fetch_optional(pool))
                    .await?
            }
        };
        Ok(found.is_some())
    }

    /// The tables of `schema` that have codec columns worth reading.
    pub async fn codec_tables(
        &self,
        schema: &str,
        schema_codecs: &[String],
    ) -> Result<Vec<CodecTable>> {
        let rows = self
            .bounded(
                || format!("listing the columns of schema {schema}"),
                self.catalog(schema),
            )
            .await?;
        Ok(group_codec_tables(schema, rows, schema_codecs))
    }

    /// Every schema (database on MySQL) with a codec column that stores
    /// in `store`: one declared `@store`, or with `store_is_default` one
    /// declaring no store, sorted. What `--all-schemas` collects.
    pub async fn schemas_using_store(
        &self,
        store: &str,
        store_is_default: bool,
        schema_codecs: &[String],
    ) -> Result<Vec<String>> {
        type Raw = (String, Option<String>, String);
        let context = || format!("finding the schemas with codec columns for store {store:?}");
        let raw: Vec<Raw> = match &self.pool {
            Pool::MySql(pool) => {
                let query = sqlx::query_as(
                    "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(COLUMN_COMMENT AS CHAR), \
                        CAST(DATA_TYPE AS CHAR) \
                 FROM information_schema.COLUMNS \
                 WHERE COLUMN_COMMENT LIKE ':<%' \
                   AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', \
                                            'performance_schema', 'sys')",
                );
                self.bounded(context, query.fetch_all(pool)).await?
            }
            Pool::Postgres(pool) => {
                let query = sqlx::query_as(
                    "SELECT n.nspname::text, col_description(c.oid, a.attnum), \
                        format_type(a.atttypid, a.atttypmod) \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
                                      AND NOT a.attisdropped \
                 WHERE c.relkind IN ('r', 'p') \
                   AND col_description(c.oid, a.attnum) LIKE ':<%'",
                );
                self.bounded(context, query.fetch_all(pool)).await?
            }
        };
        let mut schemas: Vec<String> = raw
            .into_iter()
            .filter(|(_, comment, data_type)| {
                let Some(ty) = comment.as_deref().and_then(parse_comment) else {
                    return false;
                };
                let stores_here = match ty.store.as_deref() {
                    Some(name) if !name.is_empty() => name == store,
                    _ => store_is_default,
                };
                stores_here && classify(&ty, is_json_type(data_type), schema_codecs).is_some()
            })
            .map(|(schema, _, _)| schema)
            .collect();
        schemas.sort();
        schemas.dedup();
        Ok(schemas)
    }

    async fn catalog(&self, schema: &str) -> std::result::Result<Vec<CatalogRow>, sqlx::Error> {
        type Raw = (String, String, Option<String>, String, String, i64);
        let raw: Vec<Raw> = match &self.pool {
            Pool::MySql(pool) => {
                sqlx::query_as(
                    "SELECT CAST(c.TABLE_NAME AS CHAR), CAST(c.COLUMN_NAME AS CHAR), \
                            CAST(c.COLUMN_COMMENT AS CHAR), CAST(c.DATA_TYPE AS CHAR), \
                            CAST(CASE WHEN s.COLUMN_NAME IS NOT NULL THEN 'LEAD' \
                                      ELSE c.COLUMN_KEY END AS CHAR), \
                            CAST(COALESCE(t.TABLE_ROWS, 0) AS SIGNED) \
                     FROM information_schema.COLUMNS c \
                     JOIN information_schema.TABLES t \
                       ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
                     LEFT JOIN information_schema.STATISTICS s \
                       ON s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME \
                      AND s.COLUMN_NAME = c.COLUMN_NAME AND s.INDEX_NAME = 'PRIMARY' \
                      AND s.SEQ_IN_INDEX = 1 \
                     WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' \
                     ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION",
                )
                .bind(schema)
                .fetch_all(pool)
                .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT c.relname::text, a.attname::text, col_description(c.oid, a.attnum), \
                            format_type(a.atttypid, a.atttypmod), \
                            CASE WHEN pk.indkey IS NOT NULL AND a.attnum = pk.indkey[0] THEN 'LEAD' \
                                 WHEN pk.indkey IS NOT NULL AND a.attnum = ANY(pk.indkey::int2[]) \
                                 THEN 'PRI' ELSE '' END, \
                            GREATEST(c.reltuples, 0)::bigint \
                     FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace \
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                     LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') \
                     ORDER BY c.relname, a.attnum",
                )
                .bind(schema)
                .fetch_all(pool)
                .await?
            }
        };
        Ok(raw
            .into_iter()
            .map(
                |(table, column, comment, data_type, key, estimated_rows)| CatalogRow {
                    table,
                    column,
                    comment,
                    data_type,
                    in_primary_key: key == "PRI" || key == "LEAD",
                    leads_primary_key: key == "LEAD",
                    estimated_rows: estimated_rows.max(0) as u64,
                },
            )
            .collect())
    }

    /// Streams every non-null codec value of the rows of `part` to `visit`.
    pub async fn read_values(
        &self,
        part: &TablePart<'_>,
        visit: &mut ValueVisitor<'_>,
    ) -> Result<()> {
        let context = || format!("reading {}", part.describe());
        let backend = self.backend();
        let mut sql = select_values(part.table, backend);
        let mut bounds = Vec::new();
        if let Some(key) = &part.table.leading_key {
            let column = self.quote(&key.name);
            for (bound, comparison) in [(&part.lower, ">="), (&part.upper, "<")] {
                if let Some(value) = bound {
                    bounds.push(value.as_str());
                    let parameter = key.order.parameter(backend, bounds.len());
                    sql.push_str(&format!(" AND {column} {comparison} {parameter}"));
                }
            }
        }
        match &self.pool {
            Pool::MySql(pool) => {
                stream_values(pool, &sql, &bounds, part.table, self.timeout, visit).await
            }
            Pool::Postgres(pool) => {
                stream_values(pool, &sql, &bounds, part.table, self.timeout, visit).await
            }
        }
        .map_err(|e| match e {
            Streamed::Failed(e) => Error::database(context(), e),
            Streamed::Silent => Error::DatabaseSilent {
                context: context(),
                waited: self.timeout,
            },
        })
    }

    /// Where to cut `table` to read it as about `parts` parts at once:
    /// values of its leading key, each held by the table, ascending in the
    /// server's own order (each is the least value above the one before).
    /// None when the table has no key djgc splits by, or one value only.
    ///
    /// Each cut is a few index lookups (the least and most values, then one
    /// per cut), so a table costs no extra read however it is spread; a
    /// badly spread key makes uneven parts, never a row missed or read twice
    /// ([`TablePart`]).
    pub async fn split_points(&self, table: &CodecTable, parts: usize) -> Result<Vec<String>> {
        let Some(key) = table.leading_key.as_ref().filter(|_| parts > 1) else {
            return Ok(Vec::new());
        };
        let backend = self.backend();
        let column = self.quote(&key.name);
        let least_and_most = format!(
            "{}, {}",
            as_text(backend, &format!("MIN({column})")),
            as_text(backend, &format!("MAX({column})"))
        );
        let from = format!("{}.{}", self.quote(&table.schema), self.quote(&table.name));
        let what = || {
            format!(
                "choosing where to cut the read of {}.{}",
                table.schema, table.name
            )
        };
        let ends = self
            .first_row_as_text(what, &format!("SELECT {least_and_most} FROM {from}"), &[])
            .await?;
        let (Some(least), Some(most)) = (&ends[0], &ends[1]) else {
            return Ok(Vec::new()); // an empty table
        };
        let mut cuts: Vec<String> = Vec::new();
        for guess in key.order.guesses(least, most, parts) {
            let mut sql = format!(
                "SELECT {} FROM {from} WHERE {column} >= {}",
                as_text(backend, &format!("MIN({column})")),
                key.order.parameter(backend, 1)
            );
            let mut binds = vec![guess.as_str()];
            if let Some(previous) = cuts.last() {
                sql.push_str(&format!(
                    " AND {column} > {}",
                    key.order.parameter(backend, 2)
                ));
                binds.push(previous);
            }
            match self.first_row_as_text(what, &sql, &binds).await?.remove(0) {
                Some(cut) => cuts.push(cut),
                None => break,
            }
        }
        Ok(cuts)
    }

    /// The columns of the first row `sql` returns, as text, with `binds`
    /// bound in order.
    async fn first_row_as_text(
        &self,
        what: impl Fn() -> String,
        sql: &str,
        binds: &[&str],
    ) -> Result<Vec<Option<String>>> {
        match &self.pool {
            Pool::MySql(pool) => self.bounded(what, first_row(pool, sql, binds)).await,
            Pool::Postgres(pool) => self.bounded(what, first_row(pool, sql, binds)).await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::MySql(_) => Backend::MySql,
            Pool::Postgres(_) => Backend::PostgreSql,
        }
    }

    /// Quotes an identifier (schema, table or column name) for this backend.
    pub fn quote(&self, identifier: &str) -> String {
        match self.pool {
            Pool::MySql(_) => quote_mysql(identifier),
            Pool::Postgres(_) => quote_postgres(identifier),
        }
    }

    /// Runs one SQL statement that returns no rows.
    #[cfg(feature = "fixture")]
    pub(crate) async fn execute(&self, sql: &str) -> Result<()> {
        let head: String = sql.chars().take(80).collect();
        let context = || format!("running {head}");
        match &self.pool {
            Pool::MySql(pool) => self
                .bounded(context, sqlx::raw_sql(sql).execute(pool))
                .await
                .map(drop),
            Pool::Postgres(pool) => self
                .bounded(context, sqlx::raw_sql(sql).execute(pool))
                .await
                .map(drop),
        }
    }
}

/// Whether one line of MySQL's `SHOW GRANTS` gives SELECT on every table
/// of `schema`: `SELECT` or `ALL PRIVILEGES` on `*.*`, or on a database
/// pattern that matches the schema (`%` and `_` wildcards, `\` escapes).
fn grant_reads_whole_schema(grant: &str, schema: &str) -> bool {
    let Some((privileges, target)) = grant
        .strip_prefix("GRANT ")
        .and_then(|rest| rest.split_once(" ON "))
    else {
        return false; // a role granted, or no grant at all
    };
    let selects = privileges
        .split(',')
        .map(str::trim)
        .any(|p| p == "SELECT" || p.starts_with("ALL"));
    if !selects {
        return false;
    }
    if target.starts_with("*.*") {
        return true;
    }
    let Some(quoted) = target.strip_prefix('`') else {
        return false;
    };
    let mut pattern = String::new();
    let mut chars = quoted.chars();
    loop {
        match chars.next() {
            Some('`') if chars.as_str().starts_with('`') => {
                chars.next();
                pattern.push('`');
            }
            Some('`') => break,
            Some(c) => pattern.push(c),
            None => return false,
        }
    }
    chars.as_str().starts_with(".*") && grant_pattern_matches(&pattern, schema)
}

/// MySQL's matching of a database name against a grant's pattern.
fn grant_pattern_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    fn matches(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|skip| matches(rest, &n[skip..])),
            Some(('_', rest)) => !n.is_empty() && matches(rest, &n[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                n.first() == Some(&rest[0]) && matches(&rest[1..], &n[1..])
            }
            Some((c, rest)) => n.first() == Some(c) && matches(rest, &n[1..]),
        }
    }
    matches(&pattern, &name)
}

fn quote_mysql(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

fn quote_postgres(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Groups catalog rows into tables, keeping the codec columns that hold JSON.
/// Whether a column of this SQL type holds codec metadata (JSON, or JSON
/// kept as text).
fn is_json_type(data_type: &str) -> bool {
    let data_type = data_type.to_ascii_lowercase();
    matches!(
        data_type.as_str(),
        "json" | "jsonb" | "longtext" | "mediumtext" | "text" | "varchar"
    ) || data_type.starts_with("character varying")
}

fn group_codec_tables(
    schema: &str,
    rows: Vec<CatalogRow>,
    schema_codecs: &[String],
) -> Vec<CodecTable> {
    let mut tables: Vec<CodecTable> = Vec::new();
    for row in rows {
        if tables.last().is_none_or(|t| t.name != row.table) {
            tables.push(CodecTable {
                schema: schema.to_string(),
                name: row.table.clone(),
                primary_key: Vec::new(),
                columns: Vec::new(),
                leading_key: None,
                estimated_rows: row.estimated_rows,
            });
        }
        let table = tables.last_mut().expect("pushed above");
        if row.in_primary_key {
            table.primary_key.push(row.column.clone());
        }
        if row.leads_primary_key {
            table.leading_key = KeyOrder::of(&row.data_type).map(|order| LeadingKey {
                name: row.column.clone(),
                order,
            });
        }
        let json_typed = is_json_type(&row.data_type);
        let kind = row
            .comment
            .as_deref()
            .and_then(parse_comment)
            .and_then(|ty| classify(&ty, json_typed, schema_codecs));
        if let Some(kind) = kind {
            table.columns.push(CodecColumn {
                name: row.column,
                kind,
                text_typed: !matches!(
                    row.data_type.to_ascii_lowercase().as_str(),
                    "json" | "jsonb"
                ),
            });
        }
    }
    tables.retain(|t| !t.columns.is_empty());
    tables
}

/// `SELECT pk…, value… FROM schema.table WHERE any value IS NOT NULL`.
fn select_values(table: &CodecTable, backend: Backend) -> String {
    let quote = match backend {
        Backend::MySql => quote_mysql,
        Backend::PostgreSql => quote_postgres,
    };
    let pk = table
        .primary_key
        .iter()
        .map(|c| as_text(backend, &quote(c)));
    let values = table.columns.iter().map(|c| match backend {
        Backend::MySql if c.text_typed => quote(&c.name),
        _ => as_text(backend, &quote(&c.name)),
    });
    let any_set: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote(&c.name)))
        .collect();
    format!(
        "SELECT {} FROM {}.{} WHERE ({})",
        pk.chain(values).collect::<Vec<_>>().join(", "),
        quote(&table.schema),
        quote(&table.name),
        any_set.join(" OR ")
    )
}

/// How streaming a table's values ended, when it did not end well.
enum Streamed {
    Failed(sqlx::Error),
    /// No row (nor the end) came within the timeout.
    Silent,
}

/// `expression` read as text.
fn as_text(backend: Backend, expression: &str) -> String {
    match backend {
        Backend::MySql => format!("CAST({expression} AS CHAR)"),
        Backend::PostgreSql => format!("({expression})::text"),
    }
}

async fn first_row<DB>(
    pool: &sqlx::Pool<DB>,
    sql: &str,
    binds: &[&str],
) -> std::result::Result<Vec<Option<String>>, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> Option<String>: Decode<'r, DB> + Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let row = query.fetch_one(pool).await?;
    (0..row.len()).map(|i| row.try_get(i)).collect()
}

async fn stream_values<DB>(
    pool: &sqlx::Pool<DB>,
    sql: &str,
    binds: &[&str],
    table: &CodecTable,
    timeout: Duration,
    visit: &mut ValueVisitor<'_>,
) -> std::result::Result<(), Streamed>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> Option<&'r str>: Decode<'r, DB> + Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + Type<DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    let pk_len = table.primary_key.len();
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let mut rows = query.fetch(pool);
    loop {
        // A row already received is taken without a timer (setting one
        // per row cost more than the row's own decoding); only a wait is
        // bounded.
        let next = match rows.try_next().now_or_never() {
            Some(ready) => ready,
            None => tokio::time::timeout(timeout, rows.try_next())
                .await
                .map_err(|_| Streamed::Silent)?,
        };
        let row = match next {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Streamed::Failed(e)),
        };
        let name_row = || {
            table
                .primary_key
                .iter()
                .enumerate()
                .map(|(i, col)| {
                    let value: Option<&str> = row.try_get(i).ok().flatten();
                    format!("{col}={}", value.unwrap_or("NULL"))
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        for index in 0..table.columns.len() {
            // Unchecked: sqlx's check would refuse a MySQL `longtext` of a
            // `_bin` collation (flagged binary), whose bytes are text all
            // the same; bytes that are not UTF-8 still fail here.
            let value: Option<&str> = row
                .try_get_unchecked(pk_len + index)
                .map_err(Streamed::Failed)?;
            if let Some(value) = value {
                visit(index, value, &name_row);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(table: &str, column: &str, comment: &str, ty: &str, pk: bool) -> CatalogRow {
        CatalogRow {
            table: table.into(),
            column: column.into(),
            comment: Some(comment.into()),
            data_type: ty.into(),
            in_primary_key: pk,
            leads_primary_key: false,
            estimated_rows: 7,
        }
    }

    #[test]
    fn groups_tables_and_skips_inline_and_plain_columns() {
        let rows = vec![
            row("#lookup", "id", ":int32:", "int", true),
            row("#lookup", "inline", ":<blob>:", "longblob", false),
            CatalogRow {
                leads_primary_key: true,
                ..row("blob", "id", ":int32:", "int", true)
            },
            row("blob", "day", ":date:", "date", true),
            row("blob", "data", ":<blob@main>:", "longtext", false),
            row("blob", "arr", ":<npy@main>:", "jsonb", false),
            row("blob", "custom", ":<mine@main>:", "json", false),
            row("blob", "raw", ":<mine@main>:", "longblob", false),
        ];
        let tables = group_codec_tables("s", rows, &[]);
        assert_eq!(tables.len(), 1);
        let t = &tables[0];
        assert_eq!(t.primary_key, ["id", "day"]);
        assert_eq!(
            t.leading_key,
            Some(LeadingKey {
                name: "id".into(),
                order: KeyOrder::Integer
            })
        );
        assert_eq!(t.estimated_rows, 7);
        let cols: Vec<(&str, RefKind)> = t
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            cols,
            [
                ("data", RefKind::Hash),
                ("arr", RefKind::Schema),
                ("custom", RefKind::Other)
            ]
        );
    }

    #[test]
    fn grants_that_read_a_whole_schema() {
        let reads = |grant: &str, schema: &str| grant_reads_whole_schema(grant, schema);
        assert!(reads(
            "GRANT ALL PRIVILEGES ON *.* TO `djgc`@`127.0.0.1` WITH GRANT OPTION",
            "lab"
        ));
        assert!(reads("GRANT SELECT, INSERT ON `lab`.* TO `gc`@`%`", "lab"));
        assert!(reads("GRANT SELECT ON `lab\\_%`.* TO `rr`", "lab_ephys"));
        assert!(!reads("GRANT SELECT ON `lab\\_%`.* TO `rr`", "labxephys"));
        assert!(reads("GRANT SELECT ON `l_b`.* TO `rr`", "lab"));
        assert!(reads("GRANT SELECT ON `we``ird`.* TO `rr`", "we`ird"));
        assert!(!reads(
            "GRANT SELECT ON `lab`.`t1` TO `lp`@`127.0.0.1`",
            "lab"
        ));
        assert!(!reads("GRANT INSERT, UPDATE ON `lab`.* TO `w`@`%`", "lab"));
        assert!(!reads(
            "GRANT USAGE ON *.* TO `lp`@`127.0.0.1` IDENTIFIED BY PASSWORD '*BE'",
            "lab"
        ));
        assert!(!reads("GRANT SELECT (`id`) ON `lab`.`t` TO `c`@`%`", "lab"));
        assert!(!reads("GRANT `rr` TO `lr`@`127.0.0.1`", "lab"));
        assert!(!reads("GRANT SELECT ON `other`.* TO `o`@`%`", "lab"));
        assert!(!reads("GRANT PROCESS ON *.* TO `p`@`%`", "lab"));
    }

    #[test]
    fn guesses_spread_over_the_range_of_the_key() {
        assert_eq!(KeyOrder::Integer.guesses("-10", "30", 4), ["0", "10", "20"]);
        assert_eq!(
            KeyOrder::Integer.guesses("0", "18446744073709551615", 2),
            ["9223372036854775807"]
        );
        assert_eq!(
            KeyOrder::Text.guesses("mouse001", "mouse999", 3),
            ["mouse3", "mouse6"]
        );
        // Only printable ASCII is guessed, whatever the column holds.
        assert_eq!(KeyOrder::Text.guesses("a", "\u{65e5}", 2), ["o"]);
        assert_eq!(
            KeyOrder::Text.guesses("\u{65e5}a", "\u{65e5}c", 2),
            ["\u{65e5}b"]
        );
        // A least that ends where the most goes on.
        assert_eq!(KeyOrder::Text.guesses("m", "m~", 2), ["mO"]);
        assert!(KeyOrder::Text.guesses("same", "same", 4).is_empty());
        assert!(KeyOrder::Text.guesses("b", "a", 2).is_empty());
        assert!(KeyOrder::Integer.guesses("1.5", "3", 2).is_empty());
    }

    #[test]
    fn cuts_make_parts_that_meet() {
        let table = CodecTable {
            schema: "s".into(),
            name: "t".into(),
            primary_key: vec!["id".into()],
            columns: Vec::new(),
            leading_key: None,
            estimated_rows: 0,
        };
        let bounds = |cuts: &[&str]| -> Vec<(Option<String>, Option<String>)> {
            let cuts: Vec<String> = cuts.iter().map(|c| c.to_string()).collect();
            TablePart::cut(&table, &cuts)
                .into_iter()
                .map(|p| (p.lower, p.upper))
                .collect()
        };
        assert_eq!(bounds(&[]), [(None, None)]);
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            bounds(&["b", "m"]),
            [(None, some("b")), (some("b"), some("m")), (some("m"), None)]
        );
    }

    #[test]
    fn select_quotes_identifiers() {
        let table = CodecTable {
            schema: "my`db".into(),
            name: "~jobs".into(),
            primary_key: vec!["id".into()],
            columns: vec![
                CodecColumn {
                    name: "data".into(),
                    kind: RefKind::Hash,
                    text_typed: true,
                },
                CodecColumn {
                    name: "j".into(),
                    kind: RefKind::Other,
                    text_typed: false,
                },
            ],
            leading_key: None,
            estimated_rows: 0,
        };
        assert_eq!(
            select_values(&table, Backend::MySql),
            "SELECT CAST(`id` AS CHAR), `data`, CAST(`j` AS CHAR) FROM `my``db`.`~jobs` \
             WHERE (`data` IS NOT NULL OR `j` IS NOT NULL)"
        );
        assert_eq!(
            select_values(&table, Backend::PostgreSql),
            "SELECT (\"id\")::text, (\"data\")::text, (\"j\")::text FROM \"my`db\".\"~jobs\" \
             WHERE (\"data\" IS NOT NULL OR \"j\" IS NOT NULL)"
        );
    }
}
