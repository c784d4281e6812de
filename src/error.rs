//! The library's error type.
//!
//! Rules: every variant names the thing at fault (a config file and key, a store
//! and object key, a schema, table, column and row); no variant ever carries a
//! password or secret key (secrets live in [`crate::config::Secret`], whose
//! `Display` and `Debug` are masked). The binary maps variants to exit codes, so
//! the split between configuration errors and run-time errors matters.

use std::path::PathBuf;

/// Anything that stops djgc before or while it works.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is missing, unreadable or invalid (exit code 2).
    #[error("configuration error: {0}")]
    Config(String),

    /// A command-line value is not acceptable (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// A database operation failed.
    #[error("database error while {context}: {source}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },

    /// The database gave no answer within the timeout: a dead host, or a
    /// read queued behind a lock.
    #[error(
        "database error while {context}: no answer within {} (the database timeout)",
        humantime::format_duration(*waited)
    )]
    DatabaseSilent {
        context: String,
        waited: std::time::Duration,
    },

    /// The run was asked to stop (a signal) while it waited on the
    /// database; a run that ends with it has deleted nothing (exit code 1,
    /// as any interrupted run).
    #[error("interrupted while {0}")]
    Interrupted(String),

    /// A safety check refused to delete (exit code 3).
    #[error("refused to delete: {0}")]
    Refused(String),

    /// A row's metadata could not be read: this blocks deletion.
    #[error("malformed JSON in {schema}.{table}.{column} at row ({row}): {detail}")]
    MalformedMetadata {
        schema: String,
        table: String,
        column: String,
        row: String,
        detail: String,
    },

    /// A store operation failed.
    #[error("store {store}: {source}")]
    Store {
        store: String,
        #[source]
        source: StoreError,
    },

    /// Reading or writing one of djgc's own files (orphan list, plan spool).
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn database(context: impl Into<String>, source: sqlx::Error) -> Self {
        Error::Database {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File {
            path: path.into(),
            source,
        }
    }

    /// True for errors caused by what the user supplied (flags, config files),
    /// as opposed to failures while the run was under way.
    pub fn is_usage_or_config(&self) -> bool {
        matches!(self, Error::Config(_) | Error::Usage(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed store operation on one key or prefix.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {key}: {source}")]
pub struct StoreError {
    pub operation: &'static str,
    pub key: String,
    /// What kind of failure, for callers that act on it (a denial is not
    /// worth retrying; a throttled request is).
    pub kind: StoreErrorKind,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The kinds of store failure a caller may treat differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The key or a folder on its path is not there (any more).
    NotFound,
    /// The credentials or the file permissions do not allow it.
    AccessDenied,
    /// The store asked djgc to slow down, and retrying did not help.
    Throttled,
    Other,
}

impl StoreError {
    /// An error of the kind its source tells (an I/O error's kind), else
    /// [`StoreErrorKind::Other`].
    pub fn new(
        operation: &'static str,
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let source = source.into();
        let kind = match source
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
        {
            Some(std::io::ErrorKind::NotFound) => StoreErrorKind::NotFound,
            Some(std::io::ErrorKind::PermissionDenied) => StoreErrorKind::AccessDenied,
            _ => StoreErrorKind::Other,
        };
        StoreError {
            operation,
            key: key.into(),
            kind,
            source,
        }
    }

    /// The same error, of `kind`.
    pub fn with_kind(self, kind: StoreErrorKind) -> Self {
        StoreError { kind, ..self }
    }
}
