//! The PostgreSQL dialect: one database shared by several workers. Only what
//! differs from SQLite lives here; the store itself is
//! [`SqlStore`](crate::sql::SqlStore).
//!
//! Status changes use a compare-and-set (`UPDATE … WHERE status = $old`) in
//! a `READ COMMITTED` transaction: a writer that loses a race updates no row,
//! rolls back, re-reads and checks the state machine again. Metrics read in one
//! `REPEATABLE READ` snapshot. A write of one statement runs without a
//! transaction of its own (autocommit): one round trip.
//!
//! Values: timestamps are `TIMESTAMPTZ`, JSON is `JSON` (never `JSONB`, which
//! reorders keys), bound with the `json` type so statements need no casts.
//! Leases use the database's clock, `now()` (see [`journal`](crate::journal)).
//!
//! [`connect_postgres_in_schema`] puts every table in one schema (created if
//! missing), which is how tests isolate themselves in a shared database;
//! [`drop_postgres_schema`] removes it again.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow,
    PgTypeInfo,
};
use sqlx::{Connection, Row as _};

use crate::StoreError;
use crate::codec::micros;
use crate::sql::{
    Arg, Atomic, BoxFuture, Cell, Dialect, EventRow, Job, Outcome, Row, SqlStore, row_cells,
};

const BACKEND: &str = "postgres";
const MAX_CONNECTIONS: u32 = 10;
/// The `json` type's OID.
const JSON_OID: Oid = Oid(114);

/// A [`Store`](crate::Store) on PostgreSQL.
pub type PostgresStore = SqlStore<Postgres>;

/// The PostgreSQL [`Dialect`]: its pool.
#[derive(Debug, Clone)]
pub struct Postgres {
    pool: PgPool,
}

/// Connects to PostgreSQL at `url` with every table in `schema`: creates the
/// schema if it does not exist, sets `search_path` to it on every pooled
/// connection, and runs the migrations there.
///
/// For tests sharing one database: use a fresh schema per test (say
/// `hs_<random>`) and [`drop_postgres_schema`] it afterwards. `schema` must be
/// a plain lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes), else
/// [`StoreError::InvalidSchema`].
pub async fn connect_postgres_in_schema(
    url: &str,
    schema: &str,
) -> Result<PostgresStore, StoreError> {
    check_schema_name(schema)?;
    let mut conn = admin_connection(url).await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::query(format!("creating schema {schema}"), e))?;
    // Closing is best effort: the schema exists either way.
    let _ = conn.close().await;
    PostgresStore::connect_with(options(url)?.options([("search_path", schema)])).await
}

/// Drops `schema` and everything in it (`DROP SCHEMA IF EXISTS … CASCADE`).
/// The counterpart of [`connect_postgres_in_schema`] for test clean-up.
pub async fn drop_postgres_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema_name(schema)?;
    let mut conn = admin_connection(url).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::query(format!("dropping schema {schema}"), e))?;
    let _ = conn.close().await;
    Ok(())
}

/// Only plain lower-case identifiers: they need no quoting rules and cannot
/// smuggle SQL into the `CREATE SCHEMA` / `search_path` text.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(StoreError::InvalidSchema(schema.to_owned()))
    }
}

fn options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(StoreError::connection(BACKEND))
}

async fn admin_connection(url: &str) -> Result<PgConnection, StoreError> {
    PgConnection::connect_with(&options(url)?)
        .await
        .map_err(StoreError::connection(BACKEND))
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(options(url)?).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(StoreError::connection(BACKEND))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(StoreError::migration(BACKEND))?;
        Ok(SqlStore::new(Postgres { pool }))
    }

    /// The connection pool, for callers that need SQL this trait does not offer.
    pub fn pool(&self) -> &PgPool {
        &self.d.pool
    }
}

/// JSON text bound as the `json` type (its binary form is the text itself).
struct JsonText<'a>(&'a str);

impl sqlx::Type<sqlx::Postgres> for JsonText<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for JsonText<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// `sql` with `args` bound: `TEXT`, `BIGINT`, `TIMESTAMPTZ`, `JSON`.
fn query<'q>(sql: &'q str, args: &'q [Arg]) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    args.iter().fold(sqlx::query(sql), |q, arg| match arg {
        Arg::Text(t) => q.bind(t.as_deref()),
        Arg::Int(n) => q.bind(*n),
        Arg::Time(t) => q.bind(*t),
        Arg::Json(j) => q.bind(j.as_deref().map(JsonText)),
    })
}

/// A row's values by their column types.
fn cells(row: &PgRow) -> Result<Row, sqlx::Error> {
    row_cells(row, |row, i, column| {
        Ok(match column {
            "INT8" => Cell::Int(row.try_get_unchecked(i)?),
            "INT4" => Cell::Int(i64::from(row.try_get_unchecked::<i32, _>(i)?)),
            "INT2" => Cell::Int(i64::from(row.try_get_unchecked::<i16, _>(i)?)),
            "FLOAT8" => Cell::Float(row.try_get_unchecked(i)?),
            "TIMESTAMPTZ" => Cell::Time(row.try_get_unchecked(i)?),
            // Binary `json` is the text as stored.
            "JSON" => Cell::Text(
                row.try_get_raw(i)?
                    .as_str()
                    .map_err(|source| sqlx::Error::ColumnDecode {
                        index: i.to_string(),
                        source,
                    })?
                    .to_owned(),
            ),
            _ => Cell::Text(row.try_get(i)?),
        })
    })
}

impl Dialect for Postgres {
    const BACKEND: &'static str = BACKEND;
    // `seq` is an identity column: the begin order across all tasks.
    const JOURNAL_BEGIN: &'static str = "INSERT INTO journal (task_id, key, state, started_at) \
         VALUES ($1, $2, 'started', $3) ON CONFLICT (task_id, key) DO NOTHING";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    // Self-conflicting and conflicting with plain INSERTs; plain reads do
    // not wait.
    const AUDIT_LOCK: Option<&'static str> =
        Some("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE");
    // The database's clock, for every worker alike.
    const LEASE_NOW: &'static str = "now()";
    const LEASE_UNTIL: &'static str = "now() + $3 * INTERVAL '1 microsecond'";
    const MAX_BIND_PARAMS: usize = 65_535;

    const SNAPSHOT: &'static str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    const DML_IN_CTE: bool = true;

    type Conn = PgConnection;

    fn lease_clock(_now: DateTime<Utc>, _until: DateTime<Utc>, ttl_micros: i64) -> Vec<Arg> {
        vec![Arg::Int(Some(ttl_micros))]
    }

    crate::sql::run_statements!(PgConnection);

    fn read<T: Send + 'static>(
        &self,
        context: String,
        job: Job<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(|e| StoreError::query(&context, e))?;
            Ok(job(&mut conn).await?.into_inner())
        })
    }

    fn read_snapshot<T: Send + 'static>(
        &self,
        context: String,
        job: Job<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let err = |e| StoreError::query(&context, e);
            let mut tx = self.pool.begin_with(Self::SNAPSHOT).await.map_err(err)?;
            let value = job(&mut tx).await?.into_inner();
            tx.commit().await.map_err(err)?;
            Ok(value)
        })
    }

    /// One statement runs in autocommit (a job answering
    /// [`Outcome::Rollback`] there has written nothing); more in a
    /// `READ COMMITTED` transaction.
    fn write<T: Send + 'static>(
        &self,
        atomic: Atomic,
        context: String,
        job: Job<PgConnection, T>,
    ) -> BoxFuture<'_, Result<T, StoreError>> {
        Box::pin(async move {
            let err = |e| StoreError::query(&context, e);
            if atomic == Atomic::Statement {
                let mut conn = self.pool.acquire().await.map_err(err)?;
                return match job(&mut conn).await? {
                    Outcome::Commit(v) | Outcome::Rollback(v) => Ok(v),
                };
            }
            let mut tx = self.pool.begin().await.map_err(err)?;
            match job(&mut tx).await? {
                Outcome::Commit(v) => {
                    tx.commit().await.map_err(err)?;
                    Ok(v)
                }
                // Rolled back on drop: what it wrote goes too.
                Outcome::Rollback(v) => Ok(v),
            }
        })
    }

    /// One statement (arrays unnested into rows): five bind parameters
    /// whatever the batch size, so PostgreSQL's limit of 65,535 parameters
    /// per statement never needs a chunked batch, and one prepared statement
    /// serves every batch size.
    fn insert_events<'a>(
        conn: &'a mut PgConnection,
        rows: Vec<EventRow>,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let mut task_ids = Vec::with_capacity(rows.len());
            let mut seqs = Vec::with_capacity(rows.len());
            let mut types = Vec::with_capacity(rows.len());
            let mut ats = Vec::with_capacity(rows.len());
            let mut bodies = Vec::with_capacity(rows.len());
            for r in rows {
                task_ids.push(r.task_id);
                seqs.push(r.seq);
                types.push(r.event_type);
                ats.push(micros(r.at));
                bodies.push(r.body);
            }
            sqlx::query(
                "INSERT INTO events (task_id, seq, event_type, at, body) \
                 SELECT t, s, k, a, b::json \
                 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::text[]) \
                 AS u(t, s, k, a, b)",
            )
            .bind(task_ids)
            .bind(seqs)
            .bind(types)
            .bind(ats)
            .bind(bodies)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    }
}
