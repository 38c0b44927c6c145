//! Durability for resumable tasks: the journal of side effects, and leases
//! that let exactly one process run a task.
//!
//! ## The journal
//!
//! Every side effect of a task that must not happen twice (a tool call, a
//! runbook command) is written to the journal under a key the engine
//! chooses, free-form text unique within the task, e.g.
//! `stage:diagnostics/cmd:0/attempt:1` or `stage:execution/call:toolu_01…`.
//!
//! 1. Before running it, [`Store::journal_begin`](crate::Store::journal_begin).
//!    Only on [`JournalBegin::Started`] may the caller run it.
//! 2. After it ran, [`Store::journal_finish`](crate::Store::journal_finish)
//!    with its output (any JSON), which a resumed run reads back instead of
//!    running it again.
//!
//! | `journal_begin` finds | row afterwards | returns | the caller |
//! | --- | --- | --- | --- |
//! | no row for the key | `started`, `started_at` = now | [`JournalBegin::Started`] | runs the effect, then calls `journal_finish` |
//! | a `finished` row | unchanged | [`JournalBegin::Finished`] with the recorded output | uses that output; does not run it again |
//! | a `started` row | unchanged | [`JournalBegin::Interrupted`] with its `started_at` | must not run it blindly: it may have run (see below) |
//!
//! | `journal_finish` finds | does |
//! | --- | --- |
//! | a `started` row | moves it to `finished` with the output and `finished_at` = now |
//! | a `finished` row | [`StoreError::JournalFinished`] naming the key; the first output stands |
//! | no row | [`StoreError::JournalNotBegun`] naming the key |
//!
//! `journal_begin` is atomic across processes: it inserts with `INSERT … ON
//! CONFLICT DO NOTHING` and reads the row back in the same transaction, so of
//! any number of callers racing on one key exactly one gets `Started`; the
//! others see `Interrupted` (the winner has not finished yet) or `Finished`.
//!
//! An `Interrupted` entry is one whose attempt began and never finished: the
//! process died, or the effect failed without the engine recording it. The
//! effect may or may not have happened. The engine decides, per kind of
//! effect: record what it decided with `journal_finish` on the same key
//! (e.g. `{"skipped": "interrupted"}` — any caller may finish a started
//! entry), or, after checking or asking, try again under a new key (the
//! next `attempt:N`). Keys are never reused, so the journal keeps every
//! attempt. [`Store::journal`](crate::Store::journal) lists a task's entries
//! in begin order (for `hybrid tasks show`).
//!
//! Journal timestamps come from the application's clock, like every other
//! timestamp of the store; nothing compares them.
//!
//! ## Leases
//!
//! A task's row carries `lease_owner` and `lease_until`
//! ([`TaskRecord::lease_owner`](crate::TaskRecord::lease_owner),
//! [`TaskRecord::lease_until`](crate::TaskRecord::lease_until)). The process
//! running it (say `host:pid:random`) claims it first and renews the lease
//! well before it runs out (every `ttl / 3`, say); a process that died stops
//! renewing, and once `lease_until` has passed another may take the task over.
//!
//! | call | changes the lease when | then | returns |
//! | --- | --- | --- | --- |
//! | [`claim_task`](crate::Store::claim_task) | no lease, an expired one, or one held by `owner` | `owner`, now + `ttl` | `true`; `false` if another owner's lease has not expired |
//! | [`renew_lease`](crate::Store::renew_lease) | held by `owner` (even if expired: nobody took it) | now + `ttl` | `true`; `false` if lost to another owner or released |
//! | [`release_task`](crate::Store::release_task) | held by `owner` | no lease | nothing; a lease held by another stays |
//!
//! Each is one compare-and-set `UPDATE … WHERE`, so of claimers racing on one
//! task exactly one wins. All three return
//! [`StoreError::NotFound`] for an unknown task
//! and [`StoreError::InvalidLeaseTtl`] for
//! a `ttl` of zero or more than [`MAX_LEASE_TTL`]. Leases do not touch the
//! task's status or `updated_at`.
//!
//! **Which clock.** PostgreSQL computes and compares lease times with the
//! database's clock (`now()`): workers on several machines then agree on when
//! a lease expires however far apart their own clocks are. SQLite uses the
//! application's clock (`Utc::now()`): a SQLite database is only shared by
//! processes on one machine (it must not be used over a network file system),
//! so they all read the same clock, and SQLite's own `now` has only
//! millisecond precision. Either way, one clock both writes and compares
//! `lease_until`.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hybrid_core::TaskId;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The longest lease [`claim_task`](crate::Store::claim_task) and
/// [`renew_lease`](crate::Store::renew_lease) accept (100 years: any
/// longer overflows the timestamps).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// What [`Store::journal_begin`](crate::Store::journal_begin) found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalBegin {
    /// The entry is new, now `started`: the caller may run the effect, and
    /// then must [`journal_finish`](crate::Store::journal_finish) it.
    Started,
    /// It already ran and finished: the output `journal_finish` recorded.
    /// Do not run it again.
    Finished(serde_json::Value),
    /// An earlier attempt started it and never finished (or another caller
    /// is running it right now): it may have run. Do not run it blindly.
    Interrupted {
        /// When that attempt began.
        started_at: DateTime<Utc>,
    },
}

impl JournalBegin {
    /// Whether the caller may run the effect now.
    pub fn is_started(&self) -> bool {
        matches!(self, JournalBegin::Started)
    }
}

/// `started` or `finished`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalState {
    /// Begun; not (yet) finished.
    Started,
    /// Finished, with its output.
    Finished,
}

impl JournalState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalState::Started => "started",
            JournalState::Finished => "finished",
        }
    }

    pub(crate) fn parse(text: &str, what: &str) -> Result<Self, StoreError> {
        match text {
            "started" => Ok(JournalState::Started),
            "finished" => Ok(JournalState::Finished),
            other => Err(StoreError::decode(what, format!("journal state `{other}`"))),
        }
    }
}

impl fmt::Display for JournalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `journal` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The task.
    pub task_id: TaskId,
    /// The engine's key for the effect.
    pub key: String,
    /// Started or finished.
    pub state: JournalState,
    /// The recorded output, once finished.
    pub output: Option<serde_json::Value>,
    /// When it was begun (to the microsecond).
    pub started_at: DateTime<Utc>,
    /// When it was finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A journal row as read, before decoding: state, output JSON text and
/// `started_at`.
pub(crate) fn begin_outcome(
    task: &TaskId,
    key: &str,
    state: &str,
    output: Option<String>,
    started_at: DateTime<Utc>,
) -> Result<JournalBegin, StoreError> {
    let what = journal_what(task, key);
    match JournalState::parse(state, &what)? {
        JournalState::Started => Ok(JournalBegin::Interrupted { started_at }),
        JournalState::Finished => Ok(JournalBegin::Finished(
            decode_output(output, &what)?.unwrap_or(serde_json::Value::Null),
        )),
    }
}

/// A stored output column.
pub(crate) fn decode_output(
    output: Option<String>,
    what: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    output
        .map(|text| crate::codec::from_json(&text, what))
        .transpose()
}

/// `journal entry `key` of task ID`, for error contexts.
pub(crate) fn journal_what(task: &TaskId, key: &str) -> String {
    format!("journal entry `{key}` of task {task}")
}

/// How often `journal_finish` tries its `UPDATE … WHERE state = 'started'`
/// when the row it then reads is `started` (begun by another writer between
/// the two statements, which PostgreSQL's `READ COMMITTED` allows).
pub(crate) const FINISH_ATTEMPTS: u32 = 3;

/// Why a `journal_finish` whose update changed no row failed, from the state
/// of the row it then read (`None`: no row). `Ok(None)`: the row is
/// `started` now, so try the update again.
pub(crate) fn finish_error(
    task: &TaskId,
    key: &str,
    state: Option<&str>,
) -> Result<Option<StoreError>, StoreError> {
    let (task, key) = (task.clone(), key.to_owned());
    match state {
        None => Ok(Some(StoreError::JournalNotBegun { task, key })),
        Some(text) => match JournalState::parse(text, &journal_what(&task, &key))? {
            JournalState::Finished => Ok(Some(StoreError::JournalFinished { task, key })),
            JournalState::Started => Ok(None),
        },
    }
}

/// The error after [`FINISH_ATTEMPTS`] updates that each missed the row.
pub(crate) fn finish_gave_up(task: &TaskId, key: &str) -> StoreError {
    StoreError::decode(
        journal_what(task, key),
        format!("still `started` after {FINISH_ATTEMPTS} attempts to finish it"),
    )
}

/// `ttl` in microseconds, checked: more than zero, at most [`MAX_LEASE_TTL`].
pub(crate) fn ttl_micros(task: &TaskId, ttl: Duration) -> Result<i64, StoreError> {
    let invalid = || StoreError::InvalidLeaseTtl {
        task: task.clone(),
        ttl,
    };
    if ttl.is_zero() || ttl > MAX_LEASE_TTL {
        return Err(invalid());
    }
    i64::try_from(ttl.as_micros()).map_err(|_| invalid())
}

/// `now + ttl` on the application's clock, to the microsecond (SQLite).
pub(crate) fn lease_until(
    task: &TaskId,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<DateTime<Utc>, StoreError> {
    let micros = ttl_micros(task, ttl)?;
    now.checked_add_signed(chrono::Duration::microseconds(micros))
        .ok_or(StoreError::InvalidLeaseTtl {
            task: task.clone(),
            ttl,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        for state in [JournalState::Started, JournalState::Finished] {
            assert_eq!(JournalState::parse(state.as_str(), "t").unwrap(), state);
        }
        assert!(JournalState::parse("running", "t").is_err());
    }

    #[test]
    fn ttl_bounds() {
        let task = TaskId::from("t");
        assert_eq!(
            ttl_micros(&task, Duration::from_millis(250)).unwrap(),
            250_000
        );
        assert_eq!(
            ttl_micros(&task, MAX_LEASE_TTL).unwrap(),
            i64::try_from(MAX_LEASE_TTL.as_micros()).unwrap()
        );
        for bad in [Duration::ZERO, MAX_LEASE_TTL + Duration::from_secs(1)] {
            let err = ttl_micros(&task, bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidLeaseTtl { .. }), "{err}");
        }
        let now = Utc::now();
        assert_eq!(
            lease_until(&task, now, Duration::from_secs(2)).unwrap(),
            now + chrono::Duration::seconds(2)
        );
    }

    #[test]
    fn finish_errors_name_the_key() {
        let task = TaskId::from("t1");
        let never = finish_error(&task, "stage:a/cmd:0", None).unwrap().unwrap();
        assert_eq!(
            never.to_string(),
            "task t1: journal entry `stage:a/cmd:0` was never begun"
        );
        let twice = finish_error(&task, "stage:a/cmd:0", Some("finished"))
            .unwrap()
            .unwrap();
        assert_eq!(
            twice.to_string(),
            "task t1: journal entry `stage:a/cmd:0` is already finished"
        );
        assert!(finish_error(&task, "k", Some("started")).unwrap().is_none());
        assert!(finish_error(&task, "k", Some("bogus")).is_err());
    }

    #[test]
    fn begin_outcome_decodes() {
        let task = TaskId::from("t1");
        let at = Utc::now();
        assert_eq!(
            begin_outcome(&task, "k", "started", None, at).unwrap(),
            JournalBegin::Interrupted { started_at: at }
        );
        assert_eq!(
            begin_outcome(&task, "k", "finished", Some(r#"{"a":1}"#.into()), at).unwrap(),
            JournalBegin::Finished(serde_json::json!({"a": 1}))
        );
        assert!(begin_outcome(&task, "k", "finished", Some("{".into()), at).is_err());
    }
}
