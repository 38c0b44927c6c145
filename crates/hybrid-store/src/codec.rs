//! Conversions shared by both backends: integers, JSON, status names, the
//! result columns, and turning raw aggregates into a [`MetricsSnapshot`].

use std::borrow::Borrow;
use std::collections::BTreeMap;

use chrono::{DateTime, SubsecRound, Utc};
use hybrid_core::{Event, Money, TaskResult, TaskStatus, TaskType, Usage};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{MetricsSnapshot, StoreError};

/// How often a status compare-and-set is retried before [`StoreError::Contention`].
pub(crate) const MAX_CAS_ATTEMPTS: u32 = 16;

/// A timestamp cut to the microsecond, the precision both backends store.
pub(crate) fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// A `u64` as a database `BIGINT`, saturating at `i64::MAX`.
pub(crate) fn db_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A database `BIGINT` as a `u64`; negative values are a decode error.
pub(crate) fn from_db_int(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::decode(what, format!("negative value {value}")))
}

/// A value as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::encode(what, e))
}

/// JSON text back into a value.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::decode(what, e))
}

/// Which events a batch holds, for error messages.
pub(crate) fn describe_events<E: Borrow<Event>>(events: &[E]) -> String {
    match events {
        [one] => {
            let one = one.borrow();
            format!("event {} of task {}", one.seq, one.task_id)
        }
        [first, ..] if single_task(events).is_some() => {
            let first = first.borrow();
            let seqs = || events.iter().map(|e| e.borrow().seq);
            let min = seqs().min().unwrap_or(first.seq);
            let max = seqs().max().unwrap_or(first.seq);
            format!("one of events {min}..={max} of task {}", first.task_id)
        }
        _ => format!("one of a batch of {} events", events.len()),
    }
}

/// The task all `events` belong to, if they belong to one.
pub(crate) fn single_task<E: Borrow<Event>>(events: &[E]) -> Option<&hybrid_core::TaskId> {
    let first = events.first()?.borrow();
    events
        .iter()
        .all(|e| e.borrow().task_id == first.task_id)
        .then_some(&first.task_id)
}

/// A status column.
pub(crate) fn status(text: &str, what: &str) -> Result<TaskStatus, StoreError> {
    text.parse().map_err(|e| StoreError::decode(what, e))
}

/// A task type column.
pub(crate) fn task_type(text: &str, what: &str) -> Result<TaskType, StoreError> {
    text.parse().map_err(|e| StoreError::decode(what, e))
}

/// `'completed', 'failed', …`: the terminal statuses as an SQL list, from the
/// core state machine so the two never disagree.
pub(crate) fn terminal_status_sql_list() -> String {
    TaskStatus::ALL
        .into_iter()
        .filter(|s| s.is_terminal())
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns [`Store::finish`](crate::Store::finish) writes besides the status.
#[derive(Debug)]
pub(crate) struct ResultColumns {
    pub json: String,
    pub platform: String,
    pub route_json: String,
    pub output: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_nanos: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl ResultColumns {
    /// Splits a result into its columns.
    pub(crate) fn new(result: &TaskResult) -> Result<Self, StoreError> {
        let what = format!("result of task {}", result.task_id);
        Ok(ResultColumns {
            json: to_json(result, &what)?,
            platform: result.platform.clone(),
            route_json: to_json(&result.route, &what)?,
            output: result.output.clone(),
            input_tokens: db_int(result.usage.input_tokens),
            output_tokens: db_int(result.usage.output_tokens),
            cache_read_tokens: db_int(result.usage.cache_read_tokens),
            cache_write_tokens: db_int(result.usage.cache_write_tokens),
            cost_nanos: result.cost_usd.map(Money::nanos),
            duration_ms: db_int(result.duration_ms),
            error: result.error.clone(),
        })
    }
}

/// What the metrics queries return, before percentages are worked out.
#[derive(Debug, Default)]
pub(crate) struct RawMetrics {
    /// `(status, count)` over all tasks.
    pub status_counts: Vec<(String, i64)>,
    /// `(platform, count)` over tasks in a terminal status with a platform.
    pub platform_counts: Vec<(String, i64)>,
    /// Mean `duration_ms` of tasks with a result.
    pub avg_duration_ms: Option<f64>,
    /// Token sums over tasks with a result.
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// Sum of known costs.
    pub cost_nanos: Option<i64>,
    /// Tasks with a result and no cost.
    pub unpriced: i64,
    /// `(guardrail, count)` of audited guardrail triggers.
    pub guardrail_triggers: Vec<(String, i64)>,
    /// `(kind or outcome, count)` of audited guardrail triggers.
    pub guardrail_kinds: Vec<(String, i64)>,
}

impl RawMetrics {
    /// The snapshot, with counts split into executed / in flight and percentages.
    pub(crate) fn into_snapshot(self) -> Result<MetricsSnapshot, StoreError> {
        let mut status_counts = BTreeMap::new();
        let (mut executed, mut in_flight, mut completed) = (0u64, 0u64, 0u64);
        for (name, count) in self.status_counts {
            let count = from_db_int(count, "task count")?;
            let s = status(&name, "task status")?;
            if s.is_terminal() {
                executed += count;
            } else {
                in_flight += count;
            }
            if s == TaskStatus::Completed {
                completed = count;
            }
            status_counts.insert(name, count);
        }
        let mut platform_counts = BTreeMap::new();
        let mut platform_distribution = BTreeMap::new();
        for (platform, count) in self.platform_counts {
            let count = from_db_int(count, "platform count")?;
            platform_distribution.insert(platform.clone(), percent(count, executed));
            platform_counts.insert(platform, count);
        }
        let sum = |v: Option<i64>, what: &str| from_db_int(v.unwrap_or(0), what);
        Ok(MetricsSnapshot {
            tasks_executed: executed,
            tasks_in_flight: in_flight,
            avg_execution_time: self.avg_duration_ms.unwrap_or(0.0) / 1000.0,
            platform_distribution,
            platform_counts,
            success_rate: percent(completed, executed),
            status_counts,
            tokens: Usage {
                input_tokens: sum(self.input_tokens, "input token sum")?,
                output_tokens: sum(self.output_tokens, "output token sum")?,
                cache_read_tokens: sum(self.cache_read_tokens, "cache read token sum")?,
                cache_write_tokens: sum(self.cache_write_tokens, "cache write token sum")?,
            },
            cost_usd: Money::from_nanos(self.cost_nanos.unwrap_or(0)),
            unpriced_tasks: from_db_int(self.unpriced, "unpriced task count")?,
            guardrail_triggers: counts(self.guardrail_triggers, "guardrail count")?,
            guardrail_kinds: counts(self.guardrail_kinds, "guardrail kind count")?,
        })
    }
}

/// `(name, count)` rows as a map.
fn counts(rows: Vec<(String, i64)>, what: &str) -> Result<BTreeMap<String, u64>, StoreError> {
    rows.into_iter()
        .map(|(k, n)| Ok((k, from_db_int(n, what)?)))
        .collect()
}

/// `part` as a percentage of `whole`, 0.0 when `whole` is 0.
#[allow(clippy::cast_precision_loss)]
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
