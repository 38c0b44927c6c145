//! The tamper-evident audit trail: what is appended ([`AuditEntry`]), what is
//! stored ([`AuditRecord`]), the hash chain, and verification
//! ([`AuditVerification`]).
//!
//! # The chain
//!
//! Records are numbered `seq` = 1, 2, 3 … without gaps. Each record stores the
//! previous record's `hash` as its `prev_hash` (record 1: [`GENESIS_HASH`],
//! 64 zeros) and its own `hash`, so editing, deleting, inserting or
//! reordering any record breaks the chain at that record (or, for a deleted
//! one, at the record after it). [`Store::verify_audit`](crate::Store::verify_audit)
//! walks the chain in pages of [`VERIFY_PAGE`] records and names the first
//! bad one.
//!
//! A hash chain without a key proves order and integrity *relative to its
//! head*: someone who can write the database and recompute SHA-256 can still
//! cut records off the end or append well-formed forgeries. Keep the head
//! ([`AuditVerification::head_hash`]) somewhere else (a ticket, a log
//! shipper) to detect that too.
//!
//! # Hash encoding (version 1)
//!
//! `hash` = lowercase hex of SHA-256 over the bytes
//!
//! ```text
//! "hybrid-audit-v1" 0x00
//! field(seq) field(timestamp) field(task_id) field(agent) field(action)
//! field(command) field(output) field(user) field(approved_by) field(detail)
//! field(prev_hash)
//! ```
//!
//! where `field(absent)` = the byte `0x00`, and `field(text)` = the byte
//! `0x01`, the text's UTF-8 length as an 8-byte big-endian integer, then the
//! UTF-8 bytes. The texts are:
//!
//! | field | text |
//! | --- | --- |
//! | `seq` | decimal, no sign or leading zeros (`"42"`) |
//! | `timestamp` | RFC 3339 in UTC with exactly 6 fractional digits and `Z` (`"2025-10-15T23:47:00.000000Z"`) |
//! | `task_id`, `command`, `output`, `approved_by` | as stored; absent when `None` / SQL `NULL` |
//! | `agent`, `action`, `user` | as stored |
//! | `detail` | canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace, serde_json's string escaping; this is also the exact stored text |
//! | `prev_hash` | 64 lowercase hex digits |
//!
//! An external tool re-verifies by selecting the rows by `seq` and
//! recomputing; in Python:
//!
//! ```text
//! def field(v):
//!     if v is None: return b"\x00"
//!     b = v.encode(); return b"\x01" + len(b).to_bytes(8, "big") + b
//! h = hashlib.sha256(b"hybrid-audit-v1\x00" + b"".join(field(v) for v in
//!     [str(seq), ts, task_id, agent, action, command, output, user,
//!      approved_by, detail, prev_hash])).hexdigest()
//! ```
//!
//! # Redaction
//!
//! [`Store::append_audit`](crate::Store::append_audit) always runs the
//! built-in secret patterns of [`Redactor`](crate::Redactor) over the entry
//! before hashing and writing it, whichever way the store was opened. A store
//! from [`connect`](crate::connect()) also removes the configured secret
//! values it was opened with ([`RedactingStore`](crate::RedactingStore)); a
//! caller holding others can pass entries through
//! [`Redact::redacted`](hybrid_secrets::Redact::redacted) first.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use hybrid_core::TaskId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::StoreError;

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Records read per query while verifying.
pub const VERIFY_PAGE: u32 = 1000;

/// Domain separator at the start of every hashed encoding.
const HASH_DOMAIN: &[u8] = b"hybrid-audit-v1\0";

/// How far from its position verification looks for the `seq` a record was
/// written with, to tell a moved record from an edited one.
const MOVED_SEARCH: i64 = 64;

/// One action to record, as a caller builds it (the seed's fields, plus
/// `detail` for anything else).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The task the action belongs to, if any.
    pub task_id: Option<TaskId>,
    /// Who acted, e.g. `claude_executor`.
    pub agent: String,
    /// What kind of action: `model_call`, `bash_command`, `tool_call`,
    /// `policy_decision`, `approval` ….
    pub action: String,
    /// The command or tool call, if any.
    pub command: Option<String>,
    /// What it produced, if anything.
    pub output: Option<String>,
    /// On whose behalf (`system` for unattended runs).
    pub user: String,
    /// Who approved it, if it needed approval.
    pub approved_by: Option<String>,
    /// Extra fields (decision rule, exit code, tokens …); `null` if none.
    #[serde(default)]
    pub detail: Value,
}

impl AuditEntry {
    /// An entry with just the required fields; set the rest directly.
    pub fn new(
        agent: impl Into<String>,
        action: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        AuditEntry {
            task_id: None,
            agent: agent.into(),
            action: action.into(),
            command: None,
            output: None,
            user: user.into(),
            approved_by: None,
            detail: Value::Null,
        }
    }
}

/// One stored record of the audit trail.
///
/// Serializes with the seed's field names (`task_id`, `timestamp`, `agent`,
/// `action`, `command`, `output`, `user`, `approved_by`) plus `seq`,
/// `detail`, `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The task the action belongs to, if any.
    pub task_id: Option<TaskId>,
    /// When it was appended (UTC, to the microsecond).
    pub timestamp: DateTime<Utc>,
    /// Who acted.
    pub agent: String,
    /// What kind of action.
    pub action: String,
    /// The command or tool call, if any.
    pub command: Option<String>,
    /// What it produced, if anything.
    pub output: Option<String>,
    /// On whose behalf.
    pub user: String,
    /// Who approved it, if anyone.
    pub approved_by: Option<String>,
    /// Extra fields.
    pub detail: Value,
    /// The previous record's `hash` ([`GENESIS_HASH`] for record 1).
    pub prev_hash: String,
    /// SHA-256 of this record, lowercase hex (see the [module docs](self)).
    pub hash: String,
}

impl AuditRecord {
    /// What this record's content (everything but `hash`) hashes to, by the
    /// encoding in the [module docs](self).
    pub fn compute_hash(&self) -> Result<String, StoreError> {
        let detail = canonical_json(
            &self.detail,
            &format!("detail of audit record {}", self.seq),
        )?;
        Ok(RawAudit::from_record(self, detail).compute_hash(None))
    }

    /// Whether `hash` is what this record's content hashes to.
    pub fn hash_is_valid(&self) -> Result<bool, StoreError> {
        Ok(self.hash == self.compute_hash()?)
    }
}

/// Which records [`Store::audit_records`](crate::Store::audit_records) returns,
/// by `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only this task's records.
    pub task_id: Option<TaskId>,
    /// Only records with a larger `seq` (for paging).
    pub after_seq: Option<u64>,
    /// At most this many; `None`: all.
    pub limit: Option<u32>,
}

/// The outcome of [`Store::verify_audit`](crate::Store::verify_audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditVerification {
    /// How many records were read (all of them, even after a bad one).
    pub records: u64,
    /// The first record that breaks the chain; `None` if the chain is intact.
    pub first_bad: Option<BadRecord>,
    /// The last record's `hash` (`None` for an empty trail): record it
    /// elsewhere to detect a cut-off tail later.
    pub head_hash: Option<String>,
}

impl AuditVerification {
    /// Whether the chain is intact.
    pub fn is_valid(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// The first record verification rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRecord {
    /// Its `seq` (0 if the stored seq is not a positive number).
    pub seq: u64,
    /// Why, e.g. `hash mismatch: content edited`.
    pub reason: String,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.seq, self.reason)
    }
}

/// An audit row exactly as stored, every hashed field as text.
#[derive(Debug, Clone)]
pub(crate) struct RawAudit {
    pub seq: i64,
    pub timestamp: String,
    pub task_id: Option<String>,
    pub agent: String,
    pub action: String,
    pub command: Option<String>,
    pub output: Option<String>,
    pub user: String,
    pub approved_by: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl RawAudit {
    /// The next record of the chain: `entry` (already redacted) at `seq`,
    /// appended at `now`, after a record whose hash is `prev_hash`.
    pub(crate) fn seal(
        entry: &AuditEntry,
        seq: i64,
        now: DateTime<Utc>,
        prev_hash: String,
    ) -> Result<Self, StoreError> {
        let mut raw = RawAudit {
            seq,
            timestamp: timestamp_text(now),
            task_id: entry.task_id.as_ref().map(|t| t.as_str().to_owned()),
            agent: entry.agent.clone(),
            action: entry.action.clone(),
            command: entry.command.clone(),
            output: entry.output.clone(),
            user: entry.user.clone(),
            approved_by: entry.approved_by.clone(),
            detail: canonical_json(&entry.detail, &format!("detail of audit record {seq}"))?,
            prev_hash,
            hash: String::new(),
        };
        raw.hash = raw.compute_hash(None);
        Ok(raw)
    }

    fn from_record(record: &AuditRecord, detail: String) -> Self {
        RawAudit {
            seq: i64::try_from(record.seq).unwrap_or(i64::MAX),
            timestamp: timestamp_text(record.timestamp),
            task_id: record.task_id.as_ref().map(|t| t.as_str().to_owned()),
            agent: record.agent.clone(),
            action: record.action.clone(),
            command: record.command.clone(),
            output: record.output.clone(),
            user: record.user.clone(),
            approved_by: record.approved_by.clone(),
            detail,
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
        }
    }

    /// The hash of this row's content, as if it had sequence number `seq`
    /// (default: its own).
    pub(crate) fn compute_hash(&self, seq: Option<i64>) -> String {
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        let seq = seq.unwrap_or(self.seq).to_string();
        for field in [
            Some(seq.as_str()),
            Some(self.timestamp.as_str()),
            self.task_id.as_deref(),
            Some(self.agent.as_str()),
            Some(self.action.as_str()),
            self.command.as_deref(),
            self.output.as_deref(),
            Some(self.user.as_str()),
            self.approved_by.as_deref(),
            Some(self.detail.as_str()),
            Some(self.prev_hash.as_str()),
        ] {
            match field {
                None => h.update([0u8]),
                Some(text) => {
                    h.update([1u8]);
                    h.update((text.len() as u64).to_be_bytes());
                    h.update(text.as_bytes());
                }
            }
        }
        hex::encode(h.finalize())
    }

    /// The typed record.
    pub(crate) fn into_record(self) -> Result<AuditRecord, StoreError> {
        let what = format!("audit record {}", self.seq);
        let timestamp = DateTime::parse_from_rfc3339(&self.timestamp)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                StoreError::decode(&what, format!("timestamp `{}`: {e}", self.timestamp))
            })?;
        Ok(AuditRecord {
            seq: crate::codec::from_db_int(self.seq, &what)?,
            task_id: self.task_id.map(TaskId::from),
            timestamp,
            agent: self.agent,
            action: self.action,
            command: self.command,
            output: self.output,
            user: self.user,
            approved_by: self.approved_by,
            detail: crate::codec::from_json(&self.detail, &what)?,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// A timestamp as hashed (and stored in SQLite): RFC 3339, UTC, microseconds, `Z`.
pub(crate) fn timestamp_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `value` as canonical JSON: keys sorted by their bytes, no whitespace.
pub(crate) fn canonical_json(value: &Value, what: &str) -> Result<String, StoreError> {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sorted(value)).map_err(|e| StoreError::encode(what, e))
}

/// Checks records one by one, in `seq` order, against the chain so far.
#[derive(Debug)]
pub(crate) struct ChainVerifier {
    /// The `seq` the next record must have.
    expected_seq: i64,
    /// The `hash` of the last good record.
    prev_hash: String,
    records: u64,
    first_bad: Option<BadRecord>,
    head_hash: Option<String>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            records: 0,
            first_bad: None,
            head_hash: None,
        }
    }
}

impl ChainVerifier {
    /// Checks the next row (rows must come in ascending `seq`).
    pub(crate) fn push(&mut self, row: &RawAudit) {
        self.records += 1;
        self.head_hash = Some(row.hash.clone());
        if self.first_bad.is_some() {
            return;
        }
        if let Some(reason) = self.check(row) {
            self.first_bad = Some(BadRecord {
                seq: u64::try_from(row.seq).unwrap_or(0),
                reason,
            });
        }
        self.expected_seq = row.seq.saturating_add(1);
        self.prev_hash = row.hash.clone();
    }

    fn check(&self, row: &RawAudit) -> Option<String> {
        let expected = self.expected_seq;
        if row.seq < 1 {
            return Some(format!(
                "seq out of order: stored seq {} is not positive",
                row.seq
            ));
        }
        if row.seq > expected {
            return Some(if row.seq == expected + 1 {
                format!("seq gap: record {expected} missing")
            } else {
                format!("seq gap: records {expected}..={} missing", row.seq - 1)
            });
        }
        if row.hash != row.compute_hash(None) {
            let lo = (row.seq - MOVED_SEARCH).max(1);
            let hi = row.seq.saturating_add(MOVED_SEARCH);
            if let Some(original) =
                (lo..=hi).find(|&s| s != row.seq && row.hash == row.compute_hash(Some(s)))
            {
                return Some(format!(
                    "seq out of order: this record was written as record {original}"
                ));
            }
            return Some("hash mismatch: content edited".to_owned());
        }
        if row.prev_hash != self.prev_hash {
            return Some(if row.seq == 1 {
                "prev_hash is not the genesis hash: record inserted or deleted before it".to_owned()
            } else {
                format!(
                    "prev_hash does not match record {}: record inserted or deleted before it, \
                     or record {} edited with a recomputed hash",
                    row.seq - 1,
                    row.seq - 1
                )
            });
        }
        None
    }

    pub(crate) fn finish(self) -> AuditVerification {
        AuditVerification {
            records: self.records,
            first_bad: self.first_bad,
            head_hash: self.head_hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            task_id: Some(TaskId::from("incident_001".to_owned())),
            agent: "claude_executor".into(),
            action: "bash_command".into(),
            command: Some("systemctl status nginx".into()),
            output: Some("...".into()),
            user: "system".into(),
            approved_by: Some("ops-team@company.com".into()),
            detail: json!({"z": 1, "a": [true, null, "x"], "m": {"b": 2, "a": 1}}),
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 10, 15, 23, 47, 0)
            .single()
            .unwrap()
    }

    #[test]
    fn canonical_json_sorts_keys_without_whitespace() {
        assert_eq!(
            canonical_json(&entry().detail, "d").unwrap(),
            r#"{"a":[true,null,"x"],"m":{"a":1,"b":2},"z":1}"#
        );
    }

    /// A fixed vector, computed independently with the Python snippet in the
    /// module docs.
    #[test]
    fn hash_matches_the_documented_encoding() {
        let raw = RawAudit::seal(&entry(), 1, at(), GENESIS_HASH.to_owned()).unwrap();
        assert_eq!(raw.timestamp, "2025-10-15T23:47:00.000000Z");
        assert_eq!(
            raw.hash,
            "54a490b3ed48ef40c5f7d2510e270a6596e34ac128dd44552087513e2be19330"
        );
        let record = raw.clone().into_record().unwrap();
        assert!(record.hash_is_valid().unwrap());
        let json = serde_json::to_value(&record).unwrap();
        for key in [
            "seq",
            "task_id",
            "timestamp",
            "agent",
            "action",
            "command",
            "output",
            "user",
            "approved_by",
            "detail",
            "prev_hash",
            "hash",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn absent_and_empty_fields_hash_differently() {
        let mut e = entry();
        e.command = None;
        let a = RawAudit::seal(&e, 1, at(), GENESIS_HASH.to_owned()).unwrap();
        e.command = Some(String::new());
        let b = RawAudit::seal(&e, 1, at(), GENESIS_HASH.to_owned()).unwrap();
        assert_ne!(a.hash, b.hash);
        // Moving text between adjacent fields changes the hash too.
        let mut e = entry();
        e.agent = "ab".into();
        e.action = "c".into();
        let c = RawAudit::seal(&e, 1, at(), GENESIS_HASH.to_owned()).unwrap();
        e.agent = "a".into();
        e.action = "bc".into();
        let d = RawAudit::seal(&e, 1, at(), GENESIS_HASH.to_owned()).unwrap();
        assert_ne!(c.hash, d.hash);
    }

    fn chain(n: i64) -> Vec<RawAudit> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let mut e = entry();
                e.output = Some(format!("output {seq}"));
                let raw = RawAudit::seal(&e, seq, at(), prev.clone()).unwrap();
                prev = raw.hash.clone();
                raw
            })
            .collect()
    }

    fn verify(rows: &[RawAudit]) -> AuditVerification {
        let mut v = ChainVerifier::default();
        for row in rows {
            v.push(row);
        }
        v.finish()
    }

    #[test]
    fn verifier_names_the_first_bad_record() {
        let good = chain(6);
        let ok = verify(&good);
        assert!(ok.is_valid());
        assert_eq!(ok.records, 6);
        assert_eq!(ok.head_hash.as_deref(), Some(good[5].hash.as_str()));

        let mut edited = good.clone();
        edited[2].output = Some("forged".into());
        let bad = verify(&edited).first_bad.unwrap();
        assert_eq!(
            (bad.seq, bad.reason.as_str()),
            (3, "hash mismatch: content edited")
        );

        let mut deleted = good.clone();
        deleted.remove(3);
        let bad = verify(&deleted).first_bad.unwrap();
        assert_eq!(bad.seq, 5);
        assert!(bad.reason.contains("seq gap: record 4 missing"), "{bad}");

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        swapped[1].seq = 2;
        swapped[2].seq = 3;
        let bad = verify(&swapped).first_bad.unwrap();
        assert_eq!(bad.seq, 2);
        assert!(bad.reason.contains("seq out of order"), "{bad}");

        let mut forged = good.clone();
        forged[4].prev_hash = "f".repeat(64);
        forged[4].hash = forged[4].compute_hash(None);
        let bad = verify(&forged).first_bad.unwrap();
        assert_eq!(bad.seq, 5);
        assert!(
            bad.reason.contains("prev_hash does not match record 4"),
            "{bad}"
        );

        let mut first_gone = good;
        first_gone.remove(0);
        assert!(
            verify(&first_gone)
                .first_bad
                .unwrap()
                .reason
                .contains("record 1 missing")
        );
    }
}
