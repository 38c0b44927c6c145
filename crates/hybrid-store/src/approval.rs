//! Approval requests: a tool call that needs a human's yes or no before it runs.
//!
//! The platform stores a request with [`Store::create_approval`](crate::Store::create_approval)
//! and waits; `hybrid approvals approve|reject`, possibly in another process
//! sharing the database, answers it with
//! [`Store::decide_approval`](crate::Store::decide_approval), and a timeout
//! answers it with [`Store::expire_approval`](crate::Store::expire_approval).
//! Every answer is a compare-and-set on `status = 'pending'`, so of two
//! answers racing for one request exactly one wins; the other gets
//! [`StoreError::ApprovalClosed`] naming the first.
//!
//! Ids are `ap_` and 10 characters of Crockford's base32 alphabet in lower
//! case (no `i`, `l`, `o`, `u`), e.g. `ap_7kq2m9x4zd`: short enough to type.
//! Lookups accept them in any case and with surrounding blanks.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use hybrid_core::TaskId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for an answer.
    Pending,
    /// Someone said yes.
    Approved,
    /// Someone said no.
    Rejected,
    /// Nobody answered in time (counts as a no).
    Expired,
}

impl ApprovalStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [ApprovalStatus; 4] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Rejected,
        ApprovalStatus::Expired,
    ];

    /// The name stored in the database and used in JSON: `pending`, `approved`, …
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// Whether the request has been answered (any status but `pending`).
    pub fn is_closed(self) -> bool {
        self != ApprovalStatus::Pending
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ApprovalStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!("unknown approval status `{s}` (expected pending, approved, rejected or expired)")
            })
    }
}

/// A request to store with [`Store::create_approval`](crate::Store::create_approval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApproval {
    /// The task that is waiting.
    pub task_id: TaskId,
    /// The model's tool call id.
    pub call_id: String,
    /// The agent that made the call.
    pub agent: String,
    /// The tool called, e.g. `bash` or `mcp:git:push`.
    pub tool: String,
    /// The command (or arguments) to approve, as shown to the approver.
    pub command: String,
    /// The policy rule that asked for approval.
    pub rule: String,
    /// Why the rule asked, in words.
    pub reason: String,
    /// When the request times out, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An approval request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// `ap_` and 10 base32 characters.
    pub id: String,
    /// The task that is waiting.
    pub task_id: TaskId,
    /// The model's tool call id.
    pub call_id: String,
    /// The agent that made the call.
    pub agent: String,
    /// The tool called.
    pub tool: String,
    /// The command (or arguments) to approve.
    pub command: String,
    /// The policy rule that asked for approval.
    pub rule: String,
    /// Why the rule asked.
    pub reason: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// When it was stored (to the microsecond).
    pub requested_at: DateTime<Utc>,
    /// When it times out, if it does (to the microsecond).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who answered (`timeout` for an expired request); `None` while pending.
    pub decided_by: Option<String>,
    /// When it was answered; `None` while pending.
    pub decided_at: Option<DateTime<Utc>>,
    /// The answerer's note, if any.
    pub note: Option<String>,
}

impl Approval {
    /// The error for deciding this (closed) request again.
    pub(crate) fn closed_error(&self) -> StoreError {
        StoreError::ApprovalClosed {
            id: self.id.clone(),
            status: self.status,
            decided_by: self.decided_by.clone().unwrap_or_else(|| "unknown".into()),
            decided_at: self.decided_at.unwrap_or(self.requested_at),
        }
    }
}

/// Which approvals [`Store::list_approvals`](crate::Store::list_approvals) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalFilter {
    /// Only approvals in this status.
    pub status: Option<ApprovalStatus>,
    /// Only approvals of this task.
    pub task_id: Option<TaskId>,
    /// At most this many (default [`ApprovalFilter::DEFAULT_LIMIT`]).
    pub limit: Option<u32>,
}

impl ApprovalFilter {
    /// How many approvals a listing returns when no limit is given.
    pub const DEFAULT_LIMIT: u32 = 50;

    /// The limit to apply.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(Self::DEFAULT_LIMIT)
    }

    /// Whether the listing is oldest first (pending only) or newest first.
    pub(crate) fn oldest_first(&self) -> bool {
        self.status == Some(ApprovalStatus::Pending)
    }
}

/// `decided_by` of an expired request.
pub const TIMEOUT_DECIDER: &str = "timeout";

/// The prefix of every approval id.
pub const ID_PREFIX: &str = "ap_";
/// Crockford's base32 alphabet, lower case.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Base32 characters after the prefix (50 random bits).
const ID_CHARS: usize = 10;
/// How many fresh ids an insert tries before giving up on collisions.
pub(crate) const ID_ATTEMPTS: u32 = 4;

/// A fresh approval id: 50 bits from the random part of a UUID v7, hashed.
pub(crate) fn new_id() -> String {
    let digest = Sha256::digest(TaskId::generate().as_str().as_bytes());
    let mut bits = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
    let mut id = String::with_capacity(ID_PREFIX.len() + ID_CHARS);
    id.push_str(ID_PREFIX);
    for _ in 0..ID_CHARS {
        id.push(char::from(ALPHABET[(bits >> 59) as usize]));
        bits <<= 5;
    }
    id
}

/// An id as typed, in the stored form: trimmed, lower case.
pub(crate) fn normalize_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

/// A new request as stored: `pending`, timestamps cut to the microsecond.
pub(crate) fn pending(new: &NewApproval, id: String, requested_at: DateTime<Utc>) -> Approval {
    Approval {
        id,
        task_id: new.task_id.clone(),
        call_id: new.call_id.clone(),
        agent: new.agent.clone(),
        tool: new.tool.clone(),
        command: new.command.clone(),
        rule: new.rule.clone(),
        reason: new.reason.clone(),
        status: ApprovalStatus::Pending,
        requested_at: crate::codec::micros(requested_at),
        expires_at: new.expires_at.map(crate::codec::micros),
        decided_by: None,
        decided_at: None,
        note: None,
    }
}

/// The SQL list of columns, in [`ApprovalParts`] order.
pub(crate) const COLUMNS: &str = "id, task_id, call_id, agent, tool, command, rule, reason, \
                                  status, requested_at, expires_at, decided_by, decided_at, note";

/// A row's columns, timestamps already decoded.
pub(crate) type ApprovalParts = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<String>,
);

/// A row as an [`Approval`].
pub(crate) fn from_parts(parts: ApprovalParts) -> Result<Approval, StoreError> {
    let (
        id,
        task_id,
        call_id,
        agent,
        tool,
        command,
        rule,
        reason,
        status,
        requested_at,
        expires_at,
        decided_by,
        decided_at,
        note,
    ) = parts;
    let status = status
        .parse()
        .map_err(|e| StoreError::decode(format!("status of approval {id}"), e))?;
    Ok(Approval {
        id,
        task_id: task_id.into(),
        call_id,
        agent,
        tool,
        command,
        rule,
        reason,
        status,
        requested_at,
        expires_at,
        decided_by,
        decided_at,
        note,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_short_typable_and_distinct() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in &ids {
            assert_eq!(id.len(), 13, "{id}");
            assert!(id.starts_with(ID_PREFIX), "{id}");
            assert!(id[3..].bytes().all(|b| ALPHABET.contains(&b)), "{id}");
            assert_eq!(normalize_id(&format!(" {} ", id.to_uppercase())), *id);
        }
    }

    #[test]
    fn status_names_round_trip() {
        for status in ApprovalStatus::ALL {
            assert_eq!(status.as_str().parse::<ApprovalStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert!("done".parse::<ApprovalStatus>().is_err());
        assert!(!ApprovalStatus::Pending.is_closed());
        assert!(ApprovalStatus::Expired.is_closed());
    }
}
