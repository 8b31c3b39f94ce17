//! The one writer connection of an SQLite ledger file, driven in place rather than through
//! sqlx's connection thread.
//!
//! sqlx runs every SQLite statement on a thread of its own and hands each one over and back,
//! two thread switches per statement. A reservation is about six statements and a charge about
//! nine, so a proxy paid some forty switches per request before it could answer, and on a
//! small machine those switches, not SQLite, bounded its throughput. Here the statements of a
//! transaction run where the transaction's task runs (each is microseconds against the page
//! cache); only what may wait runs on tokio's blocking pool: a synced `COMMIT` (the sync to
//! disk, `synchronous = FULL`), SQLite's checkpoints of the WAL into the database file (which
//! sync too), and a `BEGIN IMMEDIATE` that finds the file locked by another process (the busy
//! timeout).
//!
//! A transaction the store does not wait on to the disk (reservations and releases alone,
//! `synchronous = NORMAL`) commits in place: its `COMMIT` only appends to the WAL, and never
//! touches the disk's sync. Two things would make it sync, and both are kept off the async
//! thread: a checkpoint, and the first commit after a checkpoint that emptied the WAL (SQLite
//! restarts the WAL and syncs its new header, at `NORMAL` too). So the automatic checkpoint is
//! off on the writer; the writer checkpoints itself (`PASSIVE`, as the automatic one does) after
//! a commit on the blocking pool once [`CHECKPOINT_EVERY`] commits have gone by, and the commit
//! after a checkpoint goes to the blocking pool too. Every synced commit, and every
//! [`IN_PLACE_BEFORE_CHECKPOINT`]th unsynced one in a row, commits on the blocking pool, so the
//! WAL stays about as short as SQLite's default (1,000 pages) keeps it.
//!
//! Same file, same SQL, same transactions and guarantees as through sqlx: sqlx still opens the
//! file, runs the migrations and serves the read connections.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;

/// Statements kept prepared (the ledger has a few dozen distinct ones).
const STATEMENT_CACHE: usize = 128;

/// Unsynced commits in a row made in place before one goes to the blocking pool, where the
/// writer may checkpoint.
const IN_PLACE_BEFORE_CHECKPOINT: u32 = 64;

/// Commits between two checkpoints (a ledger commit writes a few pages to the WAL).
const CHECKPOINT_EVERY: u32 = 64;

/// The writer connection and what it committed in place since its last commit on the blocking
/// pool.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Connection,
    in_place_in_a_row: u32,
    /// Commits since the last checkpoint.
    since_checkpoint: u32,
    /// A checkpoint ran: the next commit may restart the WAL, and sync.
    restart_pending: bool,
    /// The sync level set on the connection (`true`: `FULL`): set again only when it changes.
    applied: Option<bool>,
}

/// The writer, taken by one transaction at a time; `None` once the store is closed.
pub(crate) type SharedWriter = Arc<Mutex<Option<Writer>>>;

type Held = OwnedMutexGuard<Option<Writer>>;

/// Opens the writer on an existing, migrated database file: WAL, a full sync at every commit,
/// foreign keys on, `busy_timeout` for locks held by another process.
pub(crate) async fn open(path: &Path, busy_timeout: Duration) -> Result<SharedWriter, sqlx::Error> {
    let path = path.to_owned();
    let conn = tokio::task::spawn_blocking(move || -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(busy_timeout)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0;",
        )?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    })
    .await
    .map_err(joined)?
    .map_err(to_sqlx)?;
    Ok(Arc::new(Mutex::new(Some(Writer {
        conn,
        in_place_in_a_row: 0,
        since_checkpoint: 0,
        restart_pending: false,
        applied: Some(true),
    }))))
}

/// Closes the writer once the transaction in flight, if any, is over; later transactions fail.
pub(crate) async fn close(writer: &SharedWriter) {
    writer.lock().await.take();
}

/// An open transaction on the writer. Dropped without [`NativeTx::commit`] it is rolled back.
pub(crate) struct NativeTx {
    conn: Option<Held>,
    /// Whether its commit runs here rather than on the blocking pool.
    in_place: bool,
}

impl NativeTx {
    /// Takes the writer and starts a write transaction (`BEGIN IMMEDIATE`: the write lock at
    /// once, so a transaction never fails half-way on a lock upgrade). A `synced` transaction's
    /// commit waits until the file is on the disk (`synchronous = FULL`); another's (`NORMAL`)
    /// is written to the WAL and reaches the disk with the next synced commit or checkpoint,
    /// which syncs everything written before it.
    pub(crate) async fn begin(
        writer: &SharedWriter,
        busy_timeout: Duration,
        synced: bool,
    ) -> Result<Self, sqlx::Error> {
        let mut held = writer.clone().lock_owned().await;
        let writer = held
            .as_mut()
            .ok_or_else(|| to_sqlx_message("the ledger store is closed"))?;
        let in_place = !synced
            && !writer.restart_pending
            && writer.in_place_in_a_row < IN_PLACE_BEFORE_CHECKPOINT;
        // SQLite takes the level only outside a transaction, as here; set when it changes.
        if writer.applied != Some(synced) {
            writer.applied = None;
            writer
                .conn
                .execute_batch(if synced {
                    "PRAGMA synchronous = FULL"
                } else {
                    "PRAGMA synchronous = NORMAL"
                })
                .map_err(to_sqlx)?;
            writer.applied = Some(synced);
        }
        let conn = open_conn(&held)?;
        // The lock is ours unless another process writes the file: try without waiting first.
        conn.busy_timeout(Duration::ZERO).map_err(to_sqlx)?;
        let first = conn.execute_batch("BEGIN IMMEDIATE");
        conn.busy_timeout(busy_timeout).map_err(to_sqlx)?;
        let conn = match first {
            Ok(()) => held,
            Err(e) if is_busy(&e) => tokio::task::spawn_blocking(move || {
                open_conn(&held)?
                    .execute_batch("BEGIN IMMEDIATE")
                    .map_err(to_sqlx)?;
                Ok::<_, sqlx::Error>(held)
            })
            .await
            .map_err(joined)??,
            Err(e) => return Err(to_sqlx(e)),
        };
        Ok(Self {
            conn: Some(conn),
            in_place,
        })
    }

    fn conn(&self) -> Result<&Connection, sqlx::Error> {
        open_conn(
            self.conn
                .as_ref()
                .ok_or_else(|| to_sqlx_message("the transaction is already finished"))?,
        )
    }

    /// Runs a statement; answers the number of rows it changed.
    pub(crate) fn execute(
        &self,
        sql: &str,
        args: &[super::db::Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql).map_err(to_sqlx)?;
        bind(&mut stmt, args)?;
        stmt.raw_execute().map_err(to_sqlx)?;
        Ok(conn.changes())
    }

    /// Runs a query and answers its rows.
    pub(crate) fn fetch(
        &self,
        sql: &str,
        args: &[super::db::Arg<'_>],
        limit: Option<usize>,
    ) -> Result<Vec<NativeRow>, sqlx::Error> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql).map_err(to_sqlx)?;
        bind(&mut stmt, args)?;
        let columns: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(to_sqlx)? {
            if limit.is_some_and(|l| out.len() >= l) {
                // Still stepped to the end below, as sqlx does, so a RETURNING write completes.
                continue;
            }
            let values = (0..columns.len())
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(to_sqlx)?;
            out.push(NativeRow {
                columns: columns.clone(),
                values,
            });
        }
        Ok(out)
    }

    /// Commits (in place, or on the blocking pool where the commit may wait for the disk) and
    /// gives the writer back.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        let mut held = self
            .conn
            .take()
            .ok_or_else(|| to_sqlx_message("the transaction is already finished"))?;
        if self.in_place {
            if let Some(writer) = held.as_mut() {
                writer.in_place_in_a_row += 1;
                writer.since_checkpoint = writer.since_checkpoint.saturating_add(1);
            }
            return commit_now(&held);
        }
        tokio::task::spawn_blocking(move || {
            let committed = commit_now(&held);
            let Some(writer) = held.as_mut() else {
                return committed;
            };
            writer.in_place_in_a_row = 0;
            // This commit restarted the WAL if a checkpoint had emptied it.
            writer.restart_pending = false;
            writer.since_checkpoint = writer.since_checkpoint.saturating_add(1);
            if committed.is_ok() && writer.since_checkpoint >= CHECKPOINT_EVERY {
                // As SQLite's automatic checkpoint: whatever readers allow, never waiting.
                if writer
                    .conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    .is_ok()
                {
                    writer.since_checkpoint = 0;
                    writer.restart_pending = true;
                }
            }
            committed
        })
        .await
        .map_err(joined)?
    }

    /// Drops the transaction's changes.
    pub(crate) fn rollback(mut self) -> Result<(), sqlx::Error> {
        match self.conn.take() {
            Some(conn) => rollback(&conn),
            None => Ok(()),
        }
    }
}

impl Drop for NativeTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = rollback(&conn);
        }
    }
}

/// `COMMIT`; on failure, leaves no transaction open on the shared connection.
fn commit_now(held: &Held) -> Result<(), sqlx::Error> {
    let conn = open_conn(held)?;
    let committed = conn.execute_batch("COMMIT");
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    committed.map_err(to_sqlx)
}

fn open_conn(held: &Held) -> Result<&Connection, sqlx::Error> {
    held.as_ref()
        .map(|w| &w.conn)
        .ok_or_else(|| to_sqlx_message("the ledger store is closed"))
}

fn rollback(held: &Held) -> Result<(), sqlx::Error> {
    let Some(conn) = held.as_ref().map(|w| &w.conn) else {
        return Ok(());
    };
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("ROLLBACK").map_err(to_sqlx)
}

/// Binds `$N` parameters by their number, as sqlx does for SQLite.
fn bind(
    stmt: &mut rusqlite::Statement<'_>,
    args: &[super::db::Arg<'_>],
) -> Result<(), sqlx::Error> {
    use super::db::Arg;
    for index in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| to_sqlx_message("a ledger statement parameter is not $N"))?;
        let arg = n
            .checked_sub(1)
            .and_then(|i| args.get(i))
            .ok_or_else(|| to_sqlx_message("a ledger statement lacks an argument"))?;
        match *arg {
            Arg::I64(v) => stmt.raw_bind_parameter(index, v),
            Arg::Text(v) => stmt.raw_bind_parameter(index, v),
            Arg::Blob(v) => stmt.raw_bind_parameter(index, v),
        }
        .map_err(to_sqlx)?;
    }
    Ok(())
}

/// One result row, read by column name.
pub(crate) struct NativeRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl NativeRow {
    /// The value of `column`, or why there is none.
    pub(crate) fn value(&self, column: &str) -> Result<&Value, StoreError> {
        self.columns
            .iter()
            .position(|c| c == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::CorruptStore(format!("no column {column}")))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn joined(e: tokio::task::JoinError) -> sqlx::Error {
    to_sqlx_message(&format!("the ledger writer's blocking task failed: {e}"))
}

fn to_sqlx_message(message: &str) -> sqlx::Error {
    sqlx::Error::Database(Box::new(NativeError {
        code: None,
        message: message.to_owned(),
    }))
}

/// A rusqlite error as sqlx reports an SQLite one: its extended result code as the code, so
/// that [`is_transient`](super::db::is_transient) judges both alike.
pub(crate) fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.extended_code.to_string()),
        _ => None,
    };
    sqlx::Error::Database(Box::new(NativeError {
        code,
        message: e.to_string(),
    }))
}

#[derive(Debug)]
struct NativeError {
    code: Option<String>,
    message: String,
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NativeError {}

impl sqlx::error::DatabaseError for NativeError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.as_deref().map(Cow::Borrowed)
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.code.as_deref() {
            // SQLITE_CONSTRAINT_UNIQUE, _PRIMARYKEY, _FOREIGNKEY, _NOTNULL, _CHECK
            Some("2067" | "1555") => sqlx::error::ErrorKind::UniqueViolation,
            Some("787") => sqlx::error::ErrorKind::ForeignKeyViolation,
            Some("1299") => sqlx::error::ErrorKind::NotNullViolation,
            Some("275") => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}
