//! The shared engine: PostgreSQL, so that any number of gateways serve one index. Written for
//! the engines that speak its protocol too (CockroachDB, YugabyteDB); verified only on
//! PostgreSQL 15.
//!
//! **Schema.** One table per [`Table`], `cairn_<name> (key BYTEA, value BYTEA NOT NULL,
//! PRIMARY KEY (key))` (prefixed, so that Cairn can share a database with others), and
//! `cairn_schema (id, version)` holding [`SCHEMA_VERSION`]. `connect` creates what is missing
//! and refuses a database whose version is newer than this code's. BYTEA compares as unsigned
//! bytes (a shorter key before its extensions), which is the order [`Engine::scan`] promises.
//!
//! **Transactions.** `BEGIN ISOLATION LEVEL SERIALIZABLE`, sent with the transaction's first
//! read (pipelined, one round trip); reads are plain SELECTs inside it; writes are buffered in
//! the transaction (the last write of a key wins) and sent at commit as batched statements,
//! at most [`CHUNK_ROWS`] rows or [`CHUNK_BYTES`] bytes each, pipelined, then `COMMIT`.
//! SQLSTATE `40001` (serialization failure) or `40P01` (deadlock) from any statement or the
//! commit is [`Error::Conflict`], which [`super::transaction`] runs again; any other failure is
//! [`Error::Index`] with the server's message; no connection, or no answer within the deadline,
//! is [`Error::IndexUnavailable`] (503 to S3 clients, which retry it). A failure of the
//! `COMMIT` itself that is not an answer from the server (the connection broke, the deadline
//! passed) leaves the outcome unknown, and says so. Reads outside a transaction are single statements in the server's
//! default isolation (READ COMMITTED on PostgreSQL), so they see committed data only.
//! Durability is the server's: a `COMMIT` that returned is flushed when `synchronous_commit`
//! is on (the default).
//!
//! **Bounds.** The pool holds at most [`PostgresOptions::max_connections`]; waiting for one,
//! connecting (handshake, authentication and session settings included) and every statement
//! have a deadline. Each connection sets `statement_timeout`, so the server cancels a slow
//! statement itself; the gateway gives up [`DEADLINE_GRACE`] later (a server or network that
//! stopped answering) and then discards the connection, as it does any connection that
//! failed. A transaction dropped before its commit is rolled back on a spawned task before its
//! connection goes back to the pool, so no pooled connection is ever inside a transaction;
//! `idle_in_transaction_session_timeout` bounds what a stuck gateway can hold on the server.
//!
//! **SQL relied on**, chosen from what CockroachDB's and YugabyteDB's documentation list as
//! supported: `CREATE TABLE IF NOT EXISTS`; `BYTEA` and `BIGINT` columns; `BEGIN ISOLATION
//! LEVEL SERIALIZABLE`, `COMMIT`, `ROLLBACK`; `SET statement_timeout` and `SET
//! idle_in_transaction_session_timeout` (milliseconds); `SELECT … WHERE key >= $1 AND key < $2
//! ORDER BY key LIMIT $3`; `INSERT … SELECT * FROM unnest($1::BYTEA[], $2::BYTEA[]) ON
//! CONFLICT (key) DO UPDATE SET value = EXCLUDED.value` and `ON CONFLICT (id) DO NOTHING`;
//! `DELETE … WHERE key = ANY($1::BYTEA[])`; `SELECT version()`; prepared statements (the
//! extended protocol), so not behind a transaction-pooling PgBouncer older than 1.21. No
//! advisory locks, LISTEN/NOTIFY, `UPSERT`, `RETURNING` or server-side functions. The one
//! dialect difference: YugabyteDB hash-shards a primary key unless told `ASC`, which
//! PostgreSQL's grammar refuses, so its tables are created with `PRIMARY KEY (key ASC)`
//! (found from `version()`). No TLS yet (`NoTls`): a URL with `sslmode=require` is refused.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{Engine, EngineStat, Row, Table, Transaction};
use crate::error::{Error, Result};

/// The version of the tables this code reads and writes, kept in `cairn_schema`.
pub const SCHEMA_VERSION: i64 = 1;

/// Rows in one INSERT or DELETE of a commit, at most.
pub const CHUNK_ROWS: usize = 1000;

/// Bytes of keys and values in one INSERT or DELETE of a commit, at most (but one row always
/// fits).
pub const CHUNK_BYTES: usize = 4 << 20;

/// How long after the server's `statement_timeout` the gateway stops waiting for an answer.
pub const DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// Bounds of the pool and its connections.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections held open at most.
    pub max_connections: usize,
    /// Making a connection: TCP, startup, authentication and the session settings.
    pub connect_timeout: Duration,
    /// Waiting for a pooled connection when all are in use.
    pub pool_wait_timeout: Duration,
    /// One statement (the server cancels it then; see [`DEADLINE_GRACE`]).
    pub statement_timeout: Duration,
    /// A session left idle inside a transaction is ended by the server after this.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
            pool_wait_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// PostgreSQL (or an engine that speaks its protocol) under the index.
#[derive(Clone)]
pub struct PostgresEngine {
    pool: Pool,
    sql: Arc<HashMap<Table, TableSql>>,
    /// How long the gateway waits for one statement's answer.
    deadline: Duration,
    /// The server, without credentials, for messages.
    target: Arc<str>,
}

impl std::fmt::Debug for PostgresEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresEngine")
            .field("target", &self.target)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// The statements of one table.
#[derive(Debug)]
struct TableSql {
    get: String,
    scan_from: String,
    scan_range: String,
    upsert: String,
    delete: String,
}

impl TableSql {
    fn new(table: Table) -> Self {
        let t = table_name(table);
        Self {
            get: format!("SELECT value FROM {t} WHERE key = $1"),
            scan_from: format!("SELECT key, value FROM {t} WHERE key >= $1 ORDER BY key LIMIT $2"),
            scan_range: format!("SELECT key, value FROM {t} WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3"),
            upsert: format!(
                "INSERT INTO {t} (key, value) SELECT * FROM unnest($1::BYTEA[], $2::BYTEA[]) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {t} WHERE key = ANY($1::BYTEA[])"),
        }
    }
}

fn statements(sql: &HashMap<Table, TableSql>, table: Table) -> Result<&TableSql> {
    sql.get(&table).ok_or_else(|| Error::Index(format!("no statements for table {}", table.name())))
}

/// The SQL table holding `table`.
fn table_name(table: Table) -> String {
    format!("cairn_{}", table.name())
}

/// Which server speaks: the few statements that differ depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Postgres,
    CockroachDb,
    YugabyteDb,
}

impl Dialect {
    /// From what `SELECT version()` answers.
    fn of(version: &str) -> Self {
        if version.contains("CockroachDB") {
            Dialect::CockroachDb
        } else if version.contains("-YB-") {
            Dialect::YugabyteDb
        } else {
            Dialect::Postgres
        }
    }

    fn create_table(self, table: Table) -> String {
        // Range sharding keeps scans in key order on YugabyteDB; PostgreSQL's grammar has no
        // ordering in a primary key constraint, and CockroachDB's keys are ordered already.
        let order = if self == Dialect::YugabyteDb { " ASC" } else { "" };
        format!(
            "CREATE TABLE IF NOT EXISTS {} (key BYTEA NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (key{order}))",
            table_name(table)
        )
    }
}

/// Rows (the statistics collector's count, which lags commits by a moment) and bytes on disk
/// (with indexes) of each table named in `$1`, in that order.
const TABLE_STATS: &str = "SELECT t.name, COALESCE(s.n_live_tup, 0)::FLOAT8, \
     COALESCE(pg_total_relation_size(to_regclass(t.name)), 0)::FLOAT8 \
     FROM unnest($1::TEXT[]) WITH ORDINALITY AS t(name, n) \
     LEFT JOIN pg_stat_user_tables s ON s.relid = to_regclass(t.name) ORDER BY t.n";

const CREATE_SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS cairn_schema (id BIGINT NOT NULL, version BIGINT NOT NULL, PRIMARY KEY (id))";
const SELECT_VERSION: &str = "SELECT version FROM cairn_schema WHERE id = 1";
const INSERT_VERSION: &str = "INSERT INTO cairn_schema (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING";
const BEGIN: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";

impl PostgresEngine {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`)
    /// with the default [`PostgresOptions`], creating the tables if they are missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Like [`PostgresEngine::connect`], with other bounds.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| Error::Config(format!("index URL is not a PostgreSQL URL: {}", describe(&e))))?;
        let target: Arc<str> = describe_target(&config).into();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("cairn-gateway");
        }
        // Notice a peer that vanished without closing, even on an idle pooled connection.
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));

        let settings = format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
            options.statement_timeout.as_millis().max(1),
            options.idle_in_transaction_timeout.as_millis().max(1),
        );
        let settings_deadline = options.connect_timeout;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.pool_wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .post_create(Hook::async_fn(move |client, _| {
                let settings = settings.clone();
                Box::pin(async move {
                    match tokio::time::timeout(settings_deadline, client.batch_execute(&settings)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(err)) => Err(HookError::Backend(err)),
                        Err(_) => Err(HookError::message("no answer to the session settings")),
                    }
                })
            }))
            .build()
            .map_err(|e| Error::Config(format!("PostgreSQL pool: {e}")))?;
        let sql = Table::ALL.iter().map(|&table| (table, TableSql::new(table))).collect();
        let engine = Self {
            pool,
            sql: Arc::new(sql),
            deadline: options.statement_timeout + DEADLINE_GRACE,
            target: target.clone(),
        };
        engine.set_up_schema().await.map_err(|err| match err {
            Error::Index(why) => Error::Index(format!("{target}: {why}")),
            Error::IndexUnavailable(why) => Error::IndexUnavailable(format!("{target}: {why}")),
            other => other,
        })?;
        Ok(engine)
    }

    /// Creates the tables if they are missing, and checks the schema version.
    async fn set_up_schema(&self) -> Result<()> {
        let mut conn = self.connection().await?;
        let version: String = conn.query("server version", "SELECT version()", &[]).await?.first().map_or_else(
            || Ok(String::new()),
            |row| row.try_get(0).map_err(|e| Error::Index(format!("server version: {}", describe(&e)))),
        )?;
        let dialect = Dialect::of(&version);
        conn.create_if_missing("create cairn_schema", CREATE_SCHEMA_TABLE).await?;
        // Refuse a newer schema before touching anything else.
        check_version(self.schema_version(&mut conn).await?)?;
        for &table in &Table::ALL {
            conn.create_if_missing(&format!("create {}", table_name(table)), &dialect.create_table(table)).await?;
        }
        conn.execute("record the schema version", INSERT_VERSION, &[&SCHEMA_VERSION]).await?;
        match self.schema_version(&mut conn).await? {
            Some(SCHEMA_VERSION) => {}
            None => return Err(Error::Index("the schema version was recorded, then not found".into())),
            other => check_version(other)?,
        }
        tracing::info!(target = %self.target, server = %version, ?dialect, "index on PostgreSQL");
        Ok(())
    }

    async fn schema_version(&self, conn: &mut Conn) -> Result<Option<i64>> {
        let rows = conn.query("read the schema version", SELECT_VERSION, &[]).await?;
        rows.first()
            .map(|row| row.try_get(0).map_err(|e| Error::Index(format!("schema version: {}", describe(&e)))))
            .transpose()
    }

    /// A pooled connection.
    async fn connection(&self) -> Result<Conn> {
        let client = self.pool.get().await.map_err(|err| pool_error(&self.target, err))?;
        Ok(Conn { client: Some(client), deadline: self.deadline, broken: false, in_transaction: false })
    }

    fn sql(&self, table: Table) -> Result<&TableSql> {
        statements(&self.sql, table)
    }
}

fn check_version(version: Option<i64>) -> Result<()> {
    match version {
        None | Some(SCHEMA_VERSION) => Ok(()),
        Some(newer) if newer > SCHEMA_VERSION => Err(Error::Index(format!(
            "the index has schema version {newer}, newer than this gateway's {SCHEMA_VERSION}: \
             it was written by a newer Cairn; run that version (or newer)"
        ))),
        Some(older) => Err(Error::Index(format!(
            "the index has schema version {older}, which this gateway (version {SCHEMA_VERSION}) cannot read"
        ))),
    }
}

#[async_trait]
impl Engine for PostgresEngine {
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = &self.sql(table)?.get;
        let rows = self.connection().await?.query(&format!("get from {}", table.name()), sql, &[&key]).await?;
        rows.first().map(|row| column(row, 0)).transpose()
    }

    async fn scan(&self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = self.sql(table)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let what = format!("scan {}", table.name());
        let mut conn = self.connection().await?;
        let rows = match end {
            Some(end) => conn.query(&what, &sql.scan_range, &[&start, &end, &limit]).await?,
            None => conn.query(&what, &sql.scan_from, &[&start, &limit]).await?,
        };
        rows.iter().map(|row| Ok((column(row, 0)?, column(row, 1)?))).collect()
    }

    fn shared(&self) -> bool {
        true
    }

    async fn stats(&self) -> Result<Vec<EngineStat>> {
        let names: Vec<String> = Table::ALL.iter().map(|&table| table_name(table)).collect();
        let rows = self.connection().await?.query("read table statistics", TABLE_STATS, &[&names]).await?;
        let mut stats = Vec::with_capacity(2 * Table::ALL.len() + 2);
        for (table, row) in Table::ALL.into_iter().zip(&rows) {
            let number =
                |i| row.try_get::<_, f64>(i).map_err(|e| Error::Index(format!("table statistics: {}", describe(&e))));
            stats.push(EngineStat::table_rows(table, number(1)?));
            stats.push(EngineStat::table_bytes(table, number(2)?));
        }
        let pool = self.pool.status();
        let connections = |name, help, value: usize| EngineStat { name, help, table: None, value: value as f64 };
        stats.push(connections(
            "cairn_index_connections",
            "Connections to the database server, busy or idle",
            pool.size,
        ));
        stats.push(connections(
            "cairn_index_connections_idle",
            "Idle connections to the database server",
            pool.available,
        ));
        Ok(stats)
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(PgTransaction {
            conn: self.connection().await?,
            sql: self.sql.clone(),
            failed: None,
            writes: HashMap::new(),
        }))
    }
}

fn column(row: &tokio_postgres::Row, index: usize) -> Result<Vec<u8>> {
    row.try_get(index).map_err(|e| Error::Index(format!("reading column {index}: {}", describe(&e))))
}

/// A pooled connection that goes back to the pool only in a known, idle state: discarded when
/// a statement's answer was not seen (deadline, broken connection), rolled back (on a spawned
/// task) when dropped inside a transaction.
struct Conn {
    /// Always `Some` until dropped.
    client: Option<Object>,
    deadline: Duration,
    broken: bool,
    in_transaction: bool,
}

/// Why a statement failed.
enum Fault {
    /// The server or the connection said so.
    Db(tokio_postgres::Error),
    /// No answer within the deadline.
    Deadline(Duration),
}

impl From<tokio_postgres::Error> for Fault {
    fn from(err: tokio_postgres::Error) -> Self {
        Fault::Db(err)
    }
}

/// Runs `statement`, giving up after `deadline`.
async fn timed<T>(
    deadline: Duration,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Fault> {
    match tokio::time::timeout(deadline, statement).await {
        Ok(result) => result.map_err(Fault::Db),
        Err(_) => Err(Fault::Deadline(deadline)),
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Conn {
    fn client(&self) -> Result<&Object> {
        self.client.as_ref().ok_or_else(|| Error::Index("connection already given back".into()))
    }

    /// Turns a fault into the error, and marks the connection for discarding if its state is
    /// no longer known.
    fn fail(&mut self, what: &str, fault: Fault) -> Error {
        match fault {
            Fault::Db(err) => {
                // Not an answer to the statement, or the server ending the session.
                let session_over = err.as_db_error().is_none_or(|db| ["FATAL", "PANIC"].contains(&db.severity()));
                if session_over || self.client.as_ref().is_none_or(|c| c.is_closed()) {
                    self.broken = true;
                }
                pg_error(what, &err)
            }
            Fault::Deadline(deadline) => {
                self.broken = true;
                Error::IndexUnavailable(format!("{what}: no answer from PostgreSQL within {deadline:?}"))
            }
        }
    }

    fn check<T>(&mut self, what: &str, result: Result<T, Fault>) -> Result<T> {
        result.map_err(|fault| self.fail(what, fault))
    }

    async fn query(&mut self, what: &str, sql: &str, params: Params<'_>) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.client()?;
        let result = timed(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await;
        self.check(what, result)
    }

    /// Like `query`, inside the transaction, which it begins (in the same round trip) if this
    /// is its first statement.
    async fn query_in_transaction(
        &mut self,
        what: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let begin = !self.in_transaction;
        self.in_transaction = true;
        let client = self.client()?;
        let result = timed(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            if begin {
                let (begun, rows) = tokio::join!(client.batch_execute(BEGIN), client.query(&statement, params));
                begun?;
                rows
            } else {
                client.query(&statement, params).await
            }
        })
        .await;
        self.check(what, result)
    }

    async fn execute(&mut self, what: &str, sql: &str, params: Params<'_>) -> Result<u64> {
        let client = self.client()?;
        let result = timed(self.deadline, async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        })
        .await;
        self.check(what, result)
    }

    /// Runs a `CREATE … IF NOT EXISTS`, again if it raced with another gateway's: PostgreSQL
    /// fails one of two concurrent creations of a table (its row type, 42710, or its catalog
    /// entry, 23505 or 42P07) instead of waiting for the other.
    async fn create_if_missing(&mut self, what: &str, sql: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let client = self.client()?;
            let result = timed(self.deadline, client.batch_execute(sql)).await;
            let raced = matches!(&result, Err(Fault::Db(err)) if err.code().is_some_and(|code| {
                [
                    SqlState::UNIQUE_VIOLATION,
                    SqlState::DUPLICATE_TABLE,
                    SqlState::DUPLICATE_OBJECT,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                ]
                    .contains(code)
            }));
            if raced && attempt < 5 {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                continue;
            }
            return self.check(what, result);
        }
    }

    /// Ends the transaction without writing; on failure the connection is discarded.
    async fn rollback(&mut self) {
        if !self.in_transaction || self.broken {
            return;
        }
        let Ok(client) = self.client() else { return };
        match timed(self.deadline, client.batch_execute("ROLLBACK")).await {
            Ok(()) => self.in_transaction = false,
            Err(_) => self.broken = true,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if self.broken {
            drop(Object::take(client));
        } else if self.in_transaction {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(roll_back(Discard(Some(client)), self.deadline));
                }
                Err(_) => drop(Object::take(client)),
            }
        }
        // Otherwise the client goes back to the pool here.
    }
}

/// A connection that is closed, not pooled, when dropped: unless its rollback got through.
struct Discard(Option<Object>);

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

async fn roll_back(mut conn: Discard, deadline: Duration) {
    let Some(client) = conn.0.as_ref() else { return };
    // Queued behind a statement still running, if the transaction was dropped mid-statement.
    if let Ok(Ok(())) = tokio::time::timeout(deadline, client.batch_execute("ROLLBACK")).await {
        // Rolled back: back to the pool.
        drop(conn.0.take());
    }
}

/// Why an earlier statement of a transaction failed (the transaction is over on the server).
struct Failure {
    conflict: bool,
    message: String,
}

impl Failure {
    fn of(err: &Error) -> Self {
        match err {
            Error::Conflict(message) => Failure { conflict: true, message: message.clone() },
            Error::Index(message) => Failure { conflict: false, message: message.clone() },
            other => Failure { conflict: false, message: other.to_string() },
        }
    }

    fn error(&self) -> Error {
        let message = format!("an earlier statement of this transaction failed: {}", self.message);
        if self.conflict { Error::Conflict(message) } else { Error::Index(message) }
    }
}

/// A transaction on one pooled connection; see the module docs.
struct PgTransaction {
    conn: Conn,
    sql: Arc<HashMap<Table, TableSql>>,
    failed: Option<Failure>,
    /// The value each written key will have (`None`: deleted), in key order per table.
    writes: HashMap<Table, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl PgTransaction {
    /// Reads inside the transaction; a failure ends it (the server aborted it).
    async fn read(&mut self, what: &str, table: Table, pick: Pick<'_>) -> Result<Vec<tokio_postgres::Row>> {
        if let Some(failure) = &self.failed {
            return Err(failure.error());
        }
        let sql = self.sql.clone();
        let sql = statements(&sql, table)?;
        let result = match pick {
            Pick::Key(key) => self.conn.query_in_transaction(what, &sql.get, &[&key]).await,
            Pick::From(start, limit) => self.conn.query_in_transaction(what, &sql.scan_from, &[&start, &limit]).await,
            Pick::Range(start, end, limit) => {
                self.conn.query_in_transaction(what, &sql.scan_range, &[&start, &end, &limit]).await
            }
        };
        result.inspect_err(|err| self.failed = Some(Failure::of(err)))
    }

    /// Sends the buffered writes and commits.
    async fn write_and_commit(&mut self) -> Result<()> {
        let writes = std::mem::take(&mut self.writes);
        let sql = self.sql.clone();
        let mut batches = Vec::new();
        for table in Table::ALL {
            let Some(rows) = writes.get(&table) else { continue };
            let sql = statements(&sql, table)?;
            let puts = rows.iter().filter_map(|(key, value)| value.as_deref().map(|value| (key.as_slice(), value)));
            for chunk in chunks(puts) {
                let (keys, values): (Vec<&[u8]>, Vec<&[u8]>) = chunk.into_iter().unzip();
                batches.push((format!("write {}", table.name()), sql.upsert.as_str(), Batch::Upsert(keys, values)));
            }
            let deletes = rows.iter().filter(|(_, value)| value.is_none()).map(|(key, _)| (key.as_slice(), &[][..]));
            for chunk in chunks(deletes) {
                let keys = chunk.into_iter().map(|(key, _)| key).collect();
                batches.push((format!("delete from {}", table.name()), sql.delete.as_str(), Batch::Delete(keys)));
            }
        }
        if batches.is_empty() && !self.conn.in_transaction {
            // Nothing read, nothing to write.
            return Ok(());
        }
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = batches
            .iter()
            .map(|(_, _, batch)| match batch {
                Batch::Upsert(keys, values) => vec![keys as &(dyn ToSql + Sync), values],
                Batch::Delete(keys) => vec![keys as &(dyn ToSql + Sync)],
            })
            .collect();

        let begin = !self.conn.in_transaction;
        self.conn.in_transaction = true;
        let client = self.conn.client()?;
        // Each statement gets the deadline of one.
        let deadline = self.conn.deadline.saturating_mul(u32::try_from(2 * batches.len() + 1).unwrap_or(u32::MAX));
        let outcome = timed(deadline, async {
            let mut statements = Vec::with_capacity(batches.len());
            for (_, sql, _) in &batches {
                statements.push(client.prepare_cached(sql).await?);
            }
            // Every statement is sent at once (pipelined) and answered in order; the first
            // failure is the one to report (those after it only say the transaction aborted).
            let sends = statements.iter().zip(&params).map(|(statement, params)| client.execute(statement, params));
            let (begun, written) = tokio::join!(
                async { if begin { client.batch_execute(BEGIN).await } else { Ok(()) } },
                futures::future::join_all(sends)
            );
            begun?;
            Ok(written.into_iter().enumerate().find_map(|(index, result)| result.err().map(|err| (index, err))))
        })
        .await;
        let failure = match outcome {
            Ok(None) => None,
            Ok(Some((index, err))) => Some((batches[index].0.as_str(), Fault::Db(err))),
            Err(fault) => Some(("send the writes", fault)),
        };
        if let Some((what, fault)) = failure {
            let err = self.conn.fail(what, fault);
            self.conn.rollback().await;
            return Err(err);
        }

        let client = self.conn.client()?;
        match timed(self.conn.deadline, client.batch_execute("COMMIT")).await {
            Ok(()) => {
                self.conn.in_transaction = false;
                Ok(())
            }
            // The server answered: the transaction is over, and was not committed.
            Err(Fault::Db(err)) if err.as_db_error().is_some() => {
                self.conn.in_transaction = false;
                Err(pg_error("commit", &err))
            }
            Err(fault) => {
                let err = self.conn.fail("commit", fault);
                Err(Error::Index(format!("the outcome is unknown (it may have been committed): {err}")))
            }
        }
    }
}

/// The rows a read picks.
enum Pick<'a> {
    Key(&'a [u8]),
    From(&'a [u8], i64),
    Range(&'a [u8], &'a [u8], i64),
}

/// The parameters of one write statement.
enum Batch<'a> {
    Upsert(Vec<&'a [u8]>, Vec<&'a [u8]>),
    Delete(Vec<&'a [u8]>),
}

/// Splits rows into statements of at most [`CHUNK_ROWS`] rows and [`CHUNK_BYTES`] bytes (a
/// larger row alone).
fn chunks<'a>(rows: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<Vec<(&'a [u8], &'a [u8])>> {
    let mut chunks = Vec::new();
    let mut chunk: Vec<(&[u8], &[u8])> = Vec::new();
    let mut bytes = 0;
    for (key, value) in rows {
        let size = key.len() + value.len();
        if !chunk.is_empty() && (chunk.len() == CHUNK_ROWS || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        chunk.push((key, value));
        bytes += size;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

#[async_trait]
impl Transaction for PgTransaction {
    async fn get(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rows = self.read(&format!("get from {}", table.name()), table, Pick::Key(key)).await?;
        rows.first().map(|row| column(row, 0)).transpose()
    }

    async fn scan(&mut self, table: Table, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Row>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let pick = match end {
            Some(end) => Pick::Range(start, end, limit),
            None => Pick::From(start, limit),
        };
        let rows = self.read(&format!("scan {}", table.name()), table, pick).await?;
        rows.iter().map(|row| Ok((column(row, 0)?, column(row, 1)?))).collect()
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.writes.entry(table).or_default().insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, table: Table, key: &[u8]) {
        self.writes.entry(table).or_default().insert(key.to_vec(), None);
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(failure) = self.failed.take() {
            self.conn.rollback().await;
            return Err(failure.error());
        }
        self.write_and_commit().await
        // Dropped here: a connection still inside a transaction (a failure) is rolled back.
    }
}

/// `true` for the SQLSTATEs that mean "run the transaction again".
fn is_conflict(code: &SqlState) -> bool {
    *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
}

fn pg_error(what: &str, err: &tokio_postgres::Error) -> Error {
    let message = format!("{what}: {}", describe(err));
    match err.code() {
        Some(code) if is_conflict(code) => Error::Conflict(message),
        _ => Error::Index(format!("PostgreSQL: {message}")),
    }
}

fn pool_error(target: &str, err: PoolError) -> Error {
    match err {
        PoolError::Backend(err) => Error::IndexUnavailable(format!("{target}: cannot connect: {}", describe(&err))),
        PoolError::PostCreateHook(HookError::Backend(err)) => {
            Error::IndexUnavailable(format!("{target}: cannot set up a connection: {}", describe(&err)))
        }
        other => Error::IndexUnavailable(format!("{target}: no connection: {other}")),
    }
}

/// A driver error with the server's message and SQLSTATE, or its chain of causes.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `postgres://user@host:port/database`, never the password.
fn describe_target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let port = config.get_ports().get(index).or(config.get_ports().first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                tokio_postgres::config::Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let user = config.get_user().map(|user| format!("{user}@")).unwrap_or_default();
    format!("postgres://{user}{}/{}", hosts.join(","), config.get_dbname().unwrap_or(""))
}

#[cfg(test)]
#[path = "test_postgres.rs"]
pub(crate) mod test_postgres;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Instant;

    use futures::FutureExt as _;

    use super::test_postgres::TestPostgres;
    use super::*;
    use crate::engine::transaction;

    fn quick() -> PostgresOptions {
        PostgresOptions {
            statement_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            pool_wait_timeout: Duration::from_secs(5),
            ..PostgresOptions::default()
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn postgres_passes_the_engine_conformance_suite() {
        let Some(server) = TestPostgres::start("postgres_passes_the_engine_conformance_suite") else { return };
        let url = server.create_database();
        let started = Instant::now();
        super::super::conformance::run(|| {
            let url = url.clone();
            async move { Ok(Box::new(PostgresEngine::connect(&url).await?) as Box<dyn Engine>) }
        })
        .await;
        eprintln!("engine conformance suite on PostgreSQL: {:.2?}", started.elapsed());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_engines_on_one_database_share_commits_and_races() {
        let Some(server) = TestPostgres::start("two_engines_on_one_database_share_commits_and_races") else { return };
        let url = server.create_database();
        let a: Arc<dyn Engine> = Arc::new(PostgresEngine::connect(&url).await.unwrap());
        let b: Arc<dyn Engine> = Arc::new(PostgresEngine::connect(&url).await.unwrap());

        let mut tx = a.begin().await.unwrap();
        tx.put(Table::Objects, b"k", b"from a");
        tx.commit().await.unwrap();
        assert_eq!(b.get(Table::Objects, b"k").await.unwrap().as_deref(), Some(&b"from a"[..]));
        let mut tx = b.begin().await.unwrap();
        tx.delete(Table::Objects, b"k");
        tx.commit().await.unwrap();
        assert_eq!(a.get(Table::Objects, b"k").await.unwrap(), None);

        // Racing creators split over the two engines: exactly one wins, and both agree.
        super::super::conformance::of_racing_creators_exactly_one_wins(&[a.clone(), b.clone()]).await;

        // Racing read-modify-writes over both lose no update.
        let workers = (0..6).map(|n| {
            let engine = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                for _ in 0..10 {
                    transaction(engine.as_ref(), |tx| {
                        async move {
                            let now = tx
                                .get(Table::Meta, b"n")
                                .await?
                                .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
                            tx.put(Table::Meta, b"n", &(now + 1).to_le_bytes());
                            Ok(())
                        }
                        .boxed()
                    })
                    .await
                    .unwrap();
                }
            })
        });
        for worker in futures::future::join_all(workers).await {
            worker.unwrap();
        }
        let n = b.get(Table::Meta, b"n").await.unwrap().unwrap();
        assert_eq!(u64::from_le_bytes(n.try_into().unwrap()), 60);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_last_write_of_a_key_in_a_transaction_wins() {
        let Some(server) = TestPostgres::start("the_last_write_of_a_key_in_a_transaction_wins") else { return };
        let engine = PostgresEngine::connect(&server.create_database()).await.unwrap();
        let mut tx = engine.begin().await.unwrap();
        tx.put(Table::Keys, b"put then delete", b"x");
        tx.delete(Table::Keys, b"put then delete");
        tx.delete(Table::Keys, b"delete then put");
        tx.put(Table::Keys, b"delete then put", b"y");
        tx.put(Table::Keys, b"twice", b"1");
        tx.put(Table::Keys, b"twice", b"2");
        tx.commit().await.unwrap();
        let rows = engine.scan(Table::Keys, b"", None, 10).await.unwrap();
        assert_eq!(rows, vec![(b"delete then put".to_vec(), b"y".to_vec()), (b"twice".to_vec(), b"2".to_vec())]);
    }

    /// What a pooled connection says about itself: inside a transaction of ours, the isolation
    /// is serializable; outside one, the server's default.
    async fn pooled_isolation(engine: &PostgresEngine) -> String {
        let client = engine.pool.get().await.unwrap();
        let row = client.query_one("SHOW transaction_isolation", &[]).await.unwrap();
        row.get(0)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_dropped_or_failed_transaction_gives_its_connection_back_clean() {
        let Some(server) = TestPostgres::start("a_dropped_or_failed_transaction_gives_its_connection_back_clean")
        else {
            return;
        };
        let url = server.create_database();
        let options = PostgresOptions { max_connections: 1, ..quick() };
        let engine = PostgresEngine::connect_with(&url, options).await.unwrap();
        assert_eq!(pooled_isolation(&engine).await, "read committed");

        // Dropped after a read (inside the transaction on the server).
        let mut tx = engine.begin().await.unwrap();
        assert_eq!(tx.get(Table::Meta, b"x").await.unwrap(), None);
        tx.put(Table::Meta, b"x", b"never");
        drop(tx);
        assert_eq!(pooled_isolation(&engine).await, "read committed");
        assert_eq!(engine.get(Table::Meta, b"x").await.unwrap(), None);

        // Failed on a write at commit (a value the server refuses: NULL bytes are fine in
        // BYTEA, so break the table instead), then reused.
        server.psql(&url, "ALTER TABLE cairn_meta ADD CONSTRAINT short CHECK (length(value) < 4)");
        let mut tx = engine.begin().await.unwrap();
        tx.get(Table::Meta, b"x").await.unwrap();
        tx.put(Table::Meta, b"x", b"too long");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(&err, Error::Index(why) if why.contains("23514") && why.contains("write meta")), "{err}");
        assert_eq!(pooled_isolation(&engine).await, "read committed");

        // Dropped while its statement was still running (a lock held elsewhere), then the lock
        // goes away: the rollback waits for the statement, and the connection comes back clean.
        let (locker, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        locker.batch_execute("BEGIN; LOCK TABLE cairn_meta IN ACCESS EXCLUSIVE MODE").await.unwrap();
        let mut tx = engine.begin().await.unwrap();
        let cut_short = tokio::time::timeout(Duration::from_millis(100), tx.get(Table::Meta, b"x")).await;
        assert!(cut_short.is_err(), "the read waits for the lock");
        drop(tx);
        locker.batch_execute("ROLLBACK").await.unwrap();
        assert_eq!(pooled_isolation(&engine).await, "read committed");
        engine.get(Table::Meta, b"x").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn statements_have_deadlines_and_a_silent_server_costs_only_its_connection() {
        let Some(server) =
            TestPostgres::start("statements_have_deadlines_and_a_silent_server_costs_only_its_connection")
        else {
            return;
        };
        let url = server.create_database();
        let options = PostgresOptions { max_connections: 1, ..quick() };
        let engine = PostgresEngine::connect_with(&url, options).await.unwrap();

        // A statement the server cancels (statement_timeout): an error, in about that time.
        let (locker, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        locker.batch_execute("BEGIN; LOCK TABLE cairn_meta IN ACCESS EXCLUSIVE MODE").await.unwrap();
        let started = Instant::now();
        let err = engine.get(Table::Meta, b"x").await.unwrap_err();
        assert!(matches!(&err, Error::Index(why) if why.contains("57014")), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let mut tx = engine.begin().await.unwrap();
        tx.put(Table::Meta, b"x", b"y");
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(&err, Error::Index(why) if why.contains("57014")), "{err}");
        locker.batch_execute("ROLLBACK").await.unwrap();
        engine.get(Table::Meta, b"x").await.unwrap();

        // A server process that stops answering: the gateway gives up after its deadline and
        // drops that connection; the next statement gets a new one.
        let backend: i32 = {
            let client = engine.pool.get().await.unwrap();
            client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0)
        };
        let signal = |sig: &str| {
            let status = std::process::Command::new("kill").args([sig, &backend.to_string()]).status().unwrap();
            assert!(status.success(), "kill {sig} {backend}");
        };
        signal("-STOP");
        let started = Instant::now();
        let err = engine.get(Table::Meta, b"x").await.unwrap_err();
        signal("-CONT");
        assert!(matches!(&err, Error::IndexUnavailable(why) if why.contains("no answer")), "{err}");
        let waited = started.elapsed();
        assert!(waited >= DEADLINE_GRACE && waited < DEADLINE_GRACE + Duration::from_secs(10), "{waited:?}");
        let client = engine.pool.get().await.unwrap();
        let now: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        assert_ne!(now, backend, "the silent connection was discarded");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_transaction_left_idle_is_ended_by_the_server_and_its_connection_dropped() {
        let who = "a_transaction_left_idle_is_ended_by_the_server_and_its_connection_dropped";
        let Some(server) = TestPostgres::start(who) else { return };
        let options =
            PostgresOptions { max_connections: 1, idle_in_transaction_timeout: Duration::from_millis(200), ..quick() };
        let engine = PostgresEngine::connect_with(&server.create_database(), options).await.unwrap();
        let mut tx = engine.begin().await.unwrap();
        tx.get(Table::Meta, b"x").await.unwrap();
        tx.put(Table::Meta, b"x", b"late");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let err = tx.commit().await.unwrap_err();
        assert!(matches!(err, Error::Index(_)), "{err}");
        assert_eq!(engine.get(Table::Meta, b"x").await.unwrap(), None, "a new connection, nothing written");
    }

    #[tokio::test]
    async fn connecting_to_a_server_that_never_answers_times_out() {
        // Accepts the TCP connection, never says a word.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut sockets = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                sockets.push(socket);
            }
        });
        let options = PostgresOptions { connect_timeout: Duration::from_millis(300), ..PostgresOptions::default() };
        let started = Instant::now();
        let err = PostgresEngine::connect_with(&format!("postgres://cairn:secret@127.0.0.1:{port}/index"), options)
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        let message = err.to_string();
        assert!(message.contains(&format!("postgres://cairn@127.0.0.1:{port}/index")), "{message}");
        assert!(!message.contains("secret"), "{message}");
        held.abort();
    }

    #[tokio::test]
    async fn a_bad_url_is_a_config_error() {
        let err = PostgresEngine::connect("postgres://[nope").await.unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_newer_schema_is_refused_and_the_current_one_reopens() {
        let Some(server) = TestPostgres::start("a_newer_schema_is_refused_and_the_current_one_reopens") else { return };
        let url = server.create_database();
        drop(PostgresEngine::connect(&url).await.unwrap());
        assert_eq!(server.psql(&url, "SELECT version FROM cairn_schema"), SCHEMA_VERSION.to_string());
        drop(PostgresEngine::connect(&url).await.unwrap());
        server.psql(&url, "UPDATE cairn_schema SET version = 7");
        let err = PostgresEngine::connect(&url).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("schema version 7, newer than this gateway's 1"), "{message}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn gateways_starting_together_create_the_schema_once() {
        let Some(server) = TestPostgres::start("gateways_starting_together_create_the_schema_once") else { return };
        let url = server.create_database();
        let starts = (0..4).map(|_| PostgresEngine::connect(&url));
        for engine in futures::future::join_all(starts).await {
            engine.unwrap();
        }
        let tables = server.psql(&url, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cairn\\_%'");
        assert_eq!(tables, (Table::ALL.len() + 1).to_string());
    }

    #[test]
    fn writes_are_chunked_by_rows_and_bytes() {
        let small = vec![0u8; 10];
        let rows: Vec<(&[u8], &[u8])> = (0..2500).map(|_| (&small[..], &small[..])).collect();
        let sizes: Vec<usize> = chunks(rows.into_iter()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        let big = vec![0u8; CHUNK_BYTES / 2];
        let huge = vec![0u8; CHUNK_BYTES + 1];
        let rows: Vec<(&[u8], &[u8])> = vec![(&small, &big), (&small, &big), (&small, &huge), (&small, &small)];
        let sizes: Vec<usize> = chunks(rows.into_iter()).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1, 1, 1], "two halves and a key exceed the bound; a huge row goes alone");
        assert!(chunks(std::iter::empty()).is_empty());
    }

    #[test]
    fn the_dialect_decides_only_the_primary_key_order() {
        assert_eq!(Dialect::of("PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu"), Dialect::Postgres);
        assert_eq!(Dialect::of("PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64-pc-linux-gnu"), Dialect::YugabyteDb);
        assert_eq!(Dialect::of("CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu)"), Dialect::CockroachDb);
        assert_eq!(
            Dialect::Postgres.create_table(Table::GcKeys),
            "CREATE TABLE IF NOT EXISTS cairn_gc_keys (key BYTEA NOT NULL, value BYTEA NOT NULL, PRIMARY KEY (key))"
        );
        assert!(Dialect::YugabyteDb.create_table(Table::Objects).ends_with("PRIMARY KEY (key ASC))"));
        assert_eq!(Dialect::CockroachDb.create_table(Table::Objects), Dialect::Postgres.create_table(Table::Objects));
    }
}
