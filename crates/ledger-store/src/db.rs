//! The two database backends behind one small interface, so the ledger's SQL and logic are
//! written once: both SQLite and PostgreSQL accept `$N` parameters, and every column the ledger
//! reads is a 64-bit integer, a text or a byte string.

use std::path::Path;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection as _, Postgres, Row as _, SqlSafeStr as _, Sqlite, Transaction};

use crate::StoreError;

/// How long a SQLite connection waits for the database lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Read connections kept beside the one SQLite writer (WAL lets them read while it writes).
const SQLITE_READERS: u32 = 4;

/// PostgreSQL connections in the pool.
const POSTGRES_CONNECTIONS: u32 = 16;

/// The ledger's schema on SQLite, version by version.
static SQLITE_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(&[(
        1,
        "ledger",
        include_str!("../migrations/sqlite/0001_ledger.sql"),
    )])
});
/// The ledger's schema on PostgreSQL, version by version.
static POSTGRES_MIGRATIONS: LazyLock<Migrator> = LazyLock::new(|| {
    migrator(&[(
        1,
        "ledger",
        include_str!("../migrations/postgres/0001_ledger.sql"),
    )])
});

/// The migrations `(version, description, SQL)`, each run in its own transaction, checksummed
/// (SHA-384 of its SQL) as sqlx records them in `_sqlx_migrations`. Built here rather than by
/// `sqlx::migrate!`, whose proc macro compiles a second copy of sqlx's SQLite (the C library
/// included) and PostgreSQL drivers for the build host.
fn migrator(versions: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        versions
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Which database a store URL names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendKind {
    /// An SQLite file (or `sqlite::memory:`).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Connection pools of one store.
#[derive(Clone, Debug)]
pub(crate) enum Pools {
    Sqlite {
        /// The only connection that writes: SQLite allows one writer at a time, and queueing
        /// writers on it is fairer and faster than letting them spin on the file lock.
        writer: SqliteWriter,
        /// Read-only connections (the writer itself for an in-memory database).
        reader: sqlx::SqlitePool,
    },
    Postgres(sqlx::PgPool),
}

/// The writer of an SQLite database.
#[derive(Clone, Debug)]
pub(crate) enum SqliteWriter {
    /// A file: one connection driven in place ([`super::native`]).
    File(super::native::SharedWriter),
    /// An in-memory database, which lives in its one sqlx connection (readers share it).
    Memory(sqlx::SqlitePool),
}

/// Maps a database error to the crate's error, naming what was being done.
pub(crate) fn db_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| StoreError::Storage {
        context,
        detail: e.to_string(),
    }
}

/// Whether a failed transaction may simply be run again: a PostgreSQL serialization failure or
/// deadlock, or SQLite's lock still being busy after the busy timeout.
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            Some("40001" | "40P01" | "5" | "6" | "517" | "261")
        ),
        _ => false,
    }
}

impl Pools {
    /// Opens the database `url` names, creating an SQLite file if missing and `create` is set,
    /// and runs the migrations of its backend.
    pub(crate) async fn connect(
        url: &str,
        create: bool,
    ) -> Result<(Self, BackendKind), StoreError> {
        match classify(url)? {
            Target::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::InvalidStoreUrl(e.to_string()))?;
                // One plain connection first: it fails at once on an unreachable server or bad
                // credentials, where the pool would keep retrying until its acquire timeout.
                PgConnection::connect_with(&options)
                    .await
                    .map_err(db_error("connecting to PostgreSQL"))?
                    .close()
                    .await
                    .map_err(db_error("connecting to PostgreSQL"))?;
                let pool = PgPoolOptions::new()
                    .max_connections(POSTGRES_CONNECTIONS)
                    .connect_with(options)
                    .await
                    .map_err(db_error("connecting to PostgreSQL"))?;
                POSTGRES_MIGRATIONS
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError::Storage {
                        context: "running the PostgreSQL migrations",
                        detail: e.to_string(),
                    })?;
                Ok((Self::Postgres(pool), BackendKind::Postgres))
            }
            Target::SqliteUrl(url) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::InvalidStoreUrl(e.to_string()))?;
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                if !create && in_memory {
                    return Err(StoreError::StoreNotFound(format!(
                        "{url} is a new, empty in-memory database"
                    )));
                }
                Self::open_sqlite(options, in_memory, create).await
            }
            Target::SqliteFile(path) => {
                if !create && !path.exists() {
                    return Err(StoreError::StoreNotFound(format!(
                        "no ledger file at {}",
                        path.display()
                    )));
                }
                // A first start needs no preparation: the file's directory is made too.
                if let Some(dir) = path
                    .parent()
                    .filter(|d| create && !d.as_os_str().is_empty())
                {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| StoreError::Storage {
                            context: "creating the ledger's directory",
                            detail: format!("{}: {e}", dir.display()),
                        })?;
                }
                Self::open_sqlite(SqliteConnectOptions::new().filename(path), false, create).await
            }
        }
    }

    async fn open_sqlite(
        options: SqliteConnectOptions,
        in_memory: bool,
        create: bool,
    ) -> Result<(Self, BackendKind), StoreError> {
        let options = options
            .create_if_missing(create)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let options = if in_memory {
            options
        } else {
            // WAL lets readers run beside the writer; FULL syncs every commit, so a charge whose
            // voucher was handed out is on disk even after a power loss.
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(db_error("opening the SQLite database"))?;
        SQLITE_MIGRATIONS
            .run(&writer)
            .await
            .map_err(|e| StoreError::Storage {
                context: "running the SQLite migrations",
                detail: e.to_string(),
            })?;
        if in_memory {
            let reader = writer.clone();
            let writer = SqliteWriter::Memory(writer);
            return Ok((Self::Sqlite { writer, reader }, BackendKind::Sqlite));
        }
        // The file is created and migrated: from here on one connection of our own writes it.
        writer.close().await;
        let writer = super::native::open(options.get_filename(), SQLITE_BUSY_TIMEOUT)
            .await
            .map_err(db_error("opening the SQLite database"))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(SQLITE_READERS)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error("opening SQLite read connections"))?;
        let writer = SqliteWriter::File(writer);
        Ok((Self::Sqlite { writer, reader }, BackendKind::Sqlite))
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so it never fails half-way on a lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Tx, StoreError> {
        self.begin_write_synced(true).await
    }

    /// [`Pools::begin_write`] for changes that need not survive a crash (reservations and
    /// their releases, which every open of the store clears anyway): on an SQLite file its
    /// commit does not wait for the disk, and the next durable commit syncs it along with its
    /// own changes. The other backends commit it as any other.
    pub(crate) async fn begin_write_unsynced(&self) -> Result<Tx, StoreError> {
        self.begin_write_synced(false).await
    }

    async fn begin_write_synced(&self, synced: bool) -> Result<Tx, StoreError> {
        match self {
            Self::Sqlite {
                writer: SqliteWriter::File(writer),
                ..
            } => super::native::NativeTx::begin(writer, SQLITE_BUSY_TIMEOUT, synced)
                .await
                .map(Tx::Native)
                .map_err(db_error("starting a write transaction")),
            Self::Sqlite {
                writer: SqliteWriter::Memory(writer),
                ..
            } => writer
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(Tx::Sqlite)
                .map_err(db_error("starting a write transaction")),
            Self::Postgres(pool) => pool
                .begin()
                .await
                .map(Tx::Postgres)
                .map_err(db_error("starting a write transaction")),
        }
    }

    /// Starts a transaction that only reads (one consistent snapshot for several statements).
    pub(crate) async fn begin_read(&self) -> Result<Tx, StoreError> {
        match self {
            Self::Sqlite { reader, .. } => reader
                .begin()
                .await
                .map(Tx::Sqlite)
                .map_err(db_error("starting a read transaction")),
            Self::Postgres(pool) => pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
                .map(Tx::Postgres)
                .map_err(db_error("starting a read transaction")),
        }
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite { writer, reader } => {
                reader.close().await;
                match writer {
                    SqliteWriter::Memory(pool) => pool.close().await,
                    SqliteWriter::File(writer) => super::native::close(writer).await,
                }
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

enum Target<'a> {
    Postgres,
    SqliteUrl(&'a str),
    SqliteFile(&'a Path),
}

fn classify(url: &str) -> Result<Target<'_>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Target::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Target::SqliteUrl(url))
    } else if url.is_empty() {
        Err(StoreError::InvalidStoreUrl("empty store URL".into()))
    } else if let Some((scheme, _)) = url.split_once("://") {
        Err(StoreError::InvalidStoreUrl(format!(
            "unsupported scheme {scheme:?}: use a file path, sqlite:PATH or postgres://…"
        )))
    } else {
        Ok(Target::SqliteFile(Path::new(url)))
    }
}

/// A statement parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    I64(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A statement whose PostgreSQL form also locks the rows it reads (`FOR UPDATE`); SQLite has no
/// row locks and needs none, its write transactions being exclusive.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Locking {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

/// Builds a [`Locking`] statement from one `SELECT`.
macro_rules! locking {
    ($($sql:tt)+) => {
        $crate::db::Locking {
            sqlite: concat!($($sql)+),
            postgres: concat!($($sql)+, " FOR UPDATE"),
        }
    };
}
pub(crate) use locking;

/// An open transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    /// A write transaction on an SQLite file's writer ([`super::native`]).
    Native(super::native::NativeTx),
    Postgres(Transaction<'static, Postgres>),
}

macro_rules! bind_all {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query($sql);
        for arg in $args {
            q = match *arg {
                Arg::I64(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Blob(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Tx {
    /// Which backend this transaction runs on.
    pub(crate) fn kind(&self) -> BackendKind {
        match self {
            Self::Sqlite(_) | Self::Native(_) => BackendKind::Sqlite,
            Self::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Runs a statement; answers the number of rows it changed.
    pub(crate) async fn execute(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        match self {
            Self::Sqlite(tx) => Ok(bind_all!(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
            Self::Native(tx) => tx.execute(sql, args),
            Self::Postgres(tx) => Ok(bind_all!(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected()),
        }
    }

    /// Runs a query that answers at most one row.
    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Option<DbRow>, sqlx::Error> {
        match self {
            Self::Sqlite(tx) => Ok(bind_all!(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(DbRow::Sqlite)),
            Self::Native(tx) => Ok(tx
                .fetch(sql, args, Some(1))?
                .into_iter()
                .next()
                .map(DbRow::Native)),
            Self::Postgres(tx) => Ok(bind_all!(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(DbRow::Postgres)),
        }
    }

    /// Runs a locking query that answers at most one row.
    pub(crate) async fn fetch_locked(
        &mut self,
        sql: Locking,
        args: &[Arg<'_>],
    ) -> Result<Option<DbRow>, sqlx::Error> {
        match self {
            Self::Sqlite(_) | Self::Native(_) => self.fetch_optional(sql.sqlite, args).await,
            Self::Postgres(_) => self.fetch_optional(sql.postgres, args).await,
        }
    }

    /// Runs a query and answers every row.
    pub(crate) async fn fetch_all(
        &mut self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<Vec<DbRow>, sqlx::Error> {
        match self {
            Self::Sqlite(tx) => Ok(bind_all!(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Sqlite)
                .collect()),
            Self::Native(tx) => Ok(tx
                .fetch(sql, args, None)?
                .into_iter()
                .map(DbRow::Native)
                .collect()),
            Self::Postgres(tx) => Ok(bind_all!(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(DbRow::Postgres)
                .collect()),
        }
    }

    /// Makes the transaction's changes durable.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Native(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    /// Drops the transaction's changes.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await,
            Self::Native(tx) => tx.rollback(),
            Self::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// One result row of either backend, read by column name.
pub(crate) enum DbRow {
    Sqlite(SqliteRow),
    Native(super::native::NativeRow),
    Postgres(PgRow),
}

impl DbRow {
    pub(crate) fn i64(&self, column: &'static str) -> Result<i64, StoreError> {
        self.get(column)
    }

    /// A column that holds a count or an amount: never negative.
    pub(crate) fn u64(&self, column: &'static str) -> Result<u64, StoreError> {
        let v = self.i64(column)?;
        u64::try_from(v).map_err(|_| StoreError::CorruptStore(format!("{column} is {v}")))
    }

    pub(crate) fn opt_u64(&self, column: &'static str) -> Result<Option<u64>, StoreError> {
        self.get::<Option<i64>>(column)?
            .map(|v| {
                u64::try_from(v).map_err(|_| StoreError::CorruptStore(format!("{column} is {v}")))
            })
            .transpose()
    }

    pub(crate) fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.get(column)
    }

    pub(crate) fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.get(column)
    }

    /// A column that holds exactly 32 bytes (request ids, hashes).
    pub(crate) fn bytes32(&self, column: &'static str) -> Result<[u8; 32], StoreError> {
        let v: Vec<u8> = self.get(column)?;
        <[u8; 32]>::try_from(v.as_slice()).map_err(|_| {
            StoreError::CorruptStore(format!("{column} holds {} bytes, not 32", v.len()))
        })
    }

    fn get<T>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T: FromNative
            + for<'r> sqlx::Decode<'r, Sqlite>
            + sqlx::Type<Sqlite>
            + for<'r> sqlx::Decode<'r, Postgres>
            + sqlx::Type<Postgres>,
    {
        let read = match self {
            Self::Sqlite(row) => row.try_get::<T, _>(column),
            Self::Postgres(row) => row.try_get::<T, _>(column),
            Self::Native(row) => {
                return row
                    .value(column)
                    .and_then(T::from_native)
                    .map_err(|e| match e {
                        StoreError::CorruptStore(m) => {
                            StoreError::CorruptStore(format!("reading {column}: {m}"))
                        }
                        other => other,
                    });
            }
        };
        read.map_err(|e| StoreError::CorruptStore(format!("reading {column}: {e}")))
    }
}

/// The column types the ledger reads, from a row of the native SQLite writer.
pub(crate) trait FromNative: Sized {
    fn from_native(value: &rusqlite::types::Value) -> Result<Self, StoreError>;
}

impl FromNative for i64 {
    fn from_native(value: &rusqlite::types::Value) -> Result<Self, StoreError> {
        match value {
            rusqlite::types::Value::Integer(v) => Ok(*v),
            other => Err(StoreError::CorruptStore(format!(
                "expected an integer, found {:?}",
                other.data_type()
            ))),
        }
    }
}

impl FromNative for String {
    fn from_native(value: &rusqlite::types::Value) -> Result<Self, StoreError> {
        match value {
            rusqlite::types::Value::Text(v) => Ok(v.clone()),
            other => Err(StoreError::CorruptStore(format!(
                "expected a text, found {:?}",
                other.data_type()
            ))),
        }
    }
}

impl FromNative for Vec<u8> {
    fn from_native(value: &rusqlite::types::Value) -> Result<Self, StoreError> {
        match value {
            rusqlite::types::Value::Blob(v) => Ok(v.clone()),
            other => Err(StoreError::CorruptStore(format!(
                "expected a blob, found {:?}",
                other.data_type()
            ))),
        }
    }
}

impl<T: FromNative> FromNative for Option<T> {
    fn from_native(value: &rusqlite::types::Value) -> Result<Self, StoreError> {
        match value {
            rusqlite::types::Value::Null => Ok(None),
            other => T::from_native(other).map(Some),
        }
    }
}

/// A count or amount as the database stores it (signed 64-bit).
pub(crate) fn to_db(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::StorageRange(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert!(matches!(
            classify("postgres://u@h/db"),
            Ok(Target::Postgres)
        ));
        assert!(matches!(
            classify("postgresql://u@h/db"),
            Ok(Target::Postgres)
        ));
        assert!(matches!(
            classify("sqlite::memory:"),
            Ok(Target::SqliteUrl(_))
        ));
        assert!(matches!(
            classify("/var/lib/cocoon/ledger.db"),
            Ok(Target::SqliteFile(_))
        ));
        assert!(matches!(
            classify("mysql://h/db"),
            Err(StoreError::InvalidStoreUrl(_))
        ));
        assert!(matches!(classify(""), Err(StoreError::InvalidStoreUrl(_))));
        assert_eq!(to_db(u64::MAX, "x"), Err(StoreError::StorageRange("x")));
        assert_eq!(to_db(7, "x"), Ok(7));
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    /// A migration edited after release would fail every ledger opened before: sqlx refuses a
    /// database whose recorded checksum differs. These are the checksums the ledgers hold.
    #[test]
    fn the_migrations_keep_their_recorded_checksums() {
        let recorded = [
            (
                &*SQLITE_MIGRATIONS,
                "fb5f9d1ecb832eb1c570256a20acf265cd85f8aee0ba47d2e8085b83604b1b3a\
                 f5e670156e8e2060f962d508a3de0426",
            ),
            (
                &*POSTGRES_MIGRATIONS,
                "5a3470a8df76fbed44b50e8981e56f91b7210499d8aeec6bc2f3633986518074\
                 d7b34fc04ad3c7489f1a1b19b8eea76c",
            ),
        ];
        for (migrator, checksum) in &recorded {
            let [first] = &migrator.migrations[..] else {
                panic!("one migration expected");
            };
            assert_eq!((first.version, &*first.description), (1, "ledger"));
            let hex: String = first.checksum.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, *checksum);
        }
    }

    /// A migration file added to `migrations/` must be listed in its migrator too, or no
    /// database would ever run it.
    #[test]
    fn every_migration_file_is_listed() {
        for (dir, migrator) in [
            ("sqlite", &*SQLITE_MIGRATIONS),
            ("postgres", &*POSTGRES_MIGRATIONS),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let files = std::fs::read_dir(&path)
                .map(|entries| entries.filter(|e| e.is_ok()).count())
                .unwrap_or_default();
            assert_eq!(files, migrator.migrations.len(), "{}", path.display());
        }
    }
}
