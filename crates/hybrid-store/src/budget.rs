//! Budgets that hold across processes: what has been spent per task, per
//! platform, per submitter and per UTC day, and the ledger of every charge.
//!
//! Before a model call, [`Store::reserve_budget`](crate::Store::reserve_budget)
//! charges the *estimated* cost to every scope of a [`BudgetCharge`] at once,
//! or to none if any scope would go over its limit ([`ChargeOutcome::WouldExceed`]
//! names the first such scope). After the call,
//! [`Store::settle_budget`](crate::Store::settle_budget) moves every scope by
//! `actual − reserved`, over the limit if need be: actual usage is always
//! recorded. Both write one `budget_ledger` row per scope.
//!
//! Limits are not stored: each charge carries the limits in force, so a
//! changed configuration takes effect with the next call. Scope keys are
//! `task:<id>`, `platform:<name>`, `submitter:<name>` and `day:<YYYY-MM-DD>`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use hybrid_core::{Money, TaskId};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// What a budget is kept for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum BudgetScope {
    /// One task, all its stages and calls.
    Task(TaskId),
    /// One platform (`openai`, `anthropic`).
    Platform(String),
    /// Everything one submitter has asked for.
    Submitter(String),
    /// Everything on one UTC day.
    Day(NaiveDate),
}

impl BudgetScope {
    /// Today's (UTC) day scope.
    pub fn today() -> Self {
        BudgetScope::Day(Utc::now().date_naive())
    }

    /// The key it is stored under: `task:<id>`, `platform:openai`,
    /// `submitter:alice`, `day:2026-11-24`.
    pub fn key(&self) -> String {
        match self {
            BudgetScope::Task(id) => format!("task:{id}"),
            BudgetScope::Platform(name) => format!("platform:{name}"),
            BudgetScope::Submitter(name) => format!("submitter:{name}"),
            BudgetScope::Day(day) => format!("day:{}", day.format("%Y-%m-%d")),
        }
    }

    /// The scope of a stored key.
    pub fn parse(key: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::decode("budget scope", format!("`{key}`: {why}"));
        let (kind, name) = key.split_once(':').ok_or_else(|| bad("no `kind:`"))?;
        match kind {
            "task" => Ok(BudgetScope::Task(TaskId::from(name))),
            "platform" => Ok(BudgetScope::Platform(name.to_owned())),
            "submitter" => Ok(BudgetScope::Submitter(name.to_owned())),
            "day" => NaiveDate::parse_from_str(name, "%Y-%m-%d")
                .map(BudgetScope::Day)
                .map_err(|e| bad(&e.to_string())),
            _ => Err(bad("unknown kind")),
        }
    }
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// A reservation: `amount` against every scope, each with its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetCharge {
    /// The scopes and their limits. A scope named twice counts once, under
    /// the smaller limit.
    pub scopes: Vec<(BudgetScope, Money)>,
    /// What to reserve (the estimated cost); not negative.
    pub amount: Money,
    /// The task it is for (in the ledger).
    pub task_id: TaskId,
    /// Why (in the ledger), e.g. `estimate openai gpt-4o stage 1`.
    pub note: String,
}

/// What [`Store::reserve_budget`](crate::Store::reserve_budget) did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChargeOutcome {
    /// Charged to every scope; what each has spent now, in key order.
    Charged {
        /// Scope and spent after the charge.
        balances: Vec<(BudgetScope, Money)>,
    },
    /// Nothing charged: `scope` (the first in key order) would go over.
    WouldExceed {
        /// The scope that would go over.
        scope: BudgetScope,
        /// What it has spent.
        spent: Money,
        /// Its limit.
        limit: Money,
        /// What was asked for.
        amount: Money,
    },
}

impl ChargeOutcome {
    /// Whether the amount was charged.
    pub fn is_charged(&self) -> bool {
        matches!(self, ChargeOutcome::Charged { .. })
    }
}

/// `reserve` or `settle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// An estimate charged before a call.
    Reserve,
    /// The correction to actual usage after it.
    Settle,
}

impl LedgerKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Reserve => "reserve",
            LedgerKind::Settle => "settle",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "reserve" => Ok(LedgerKind::Reserve),
            "settle" => Ok(LedgerKind::Settle),
            other => Err(StoreError::decode(
                "budget ledger kind",
                format!("`{other}`"),
            )),
        }
    }
}

/// One `budget_ledger` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Insertion order.
    pub id: i64,
    /// The task charged for.
    pub task_id: TaskId,
    /// The scope moved.
    pub scope: BudgetScope,
    /// Reservation or settlement.
    pub kind: LedgerKind,
    /// How far it moved (negative: given back).
    pub delta: Money,
    /// The caller's note.
    pub note: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The scopes of a charge by key, each once with its smallest limit; the
/// amount checked. Sorted keys also give every backend one lock order.
pub(crate) fn charge_plan(
    charge: &BudgetCharge,
) -> Result<BTreeMap<String, (BudgetScope, Money)>, StoreError> {
    if charge.amount.is_negative() {
        return Err(StoreError::encode(
            "budget charge",
            format!("a negative amount ({})", charge.amount.nanos()),
        ));
    }
    let mut plan: BTreeMap<String, (BudgetScope, Money)> = BTreeMap::new();
    for (scope, limit) in &charge.scopes {
        let entry = plan
            .entry(scope.key())
            .or_insert_with(|| (scope.clone(), *limit));
        if limit.nanos() < entry.1.nanos() {
            entry.1 = *limit;
        }
    }
    Ok(plan)
}

/// Given what every planned scope has spent (missing: nothing), the outcome
/// of the charge.
pub(crate) fn decide(
    plan: &BTreeMap<String, (BudgetScope, Money)>,
    spent: &BTreeMap<String, i64>,
    amount: Money,
) -> ChargeOutcome {
    let mut balances = Vec::with_capacity(plan.len());
    for (key, (scope, limit)) in plan {
        let before = spent.get(key).copied().unwrap_or(0);
        let after = before.saturating_add(amount.nanos());
        if after > limit.nanos() {
            return ChargeOutcome::WouldExceed {
                scope: scope.clone(),
                spent: Money::from_nanos(before),
                limit: *limit,
                amount,
            };
        }
        balances.push((scope.clone(), Money::from_nanos(after)));
    }
    ChargeOutcome::Charged { balances }
}

/// The distinct keys of `scopes`, sorted (the lock order).
pub(crate) fn settle_keys(scopes: &[BudgetScope]) -> Vec<String> {
    let mut keys: Vec<String> = scopes.iter().map(BudgetScope::key).collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use hybrid_core::usd;

    #[test]
    fn keys_round_trip() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        for (scope, key) in [
            (BudgetScope::Task(TaskId::from("t1")), "task:t1"),
            (BudgetScope::Platform("openai".into()), "platform:openai"),
            (BudgetScope::Submitter("alice".into()), "submitter:alice"),
            (BudgetScope::Day(day), "day:2026-11-24"),
        ] {
            assert_eq!(scope.key(), key);
            assert_eq!(BudgetScope::parse(key).unwrap(), scope);
        }
        assert!(BudgetScope::parse("week:1").is_err());
        assert!(BudgetScope::parse("day:yesterday").is_err());
    }

    #[test]
    fn duplicate_scopes_keep_the_smaller_limit() {
        let charge = BudgetCharge {
            scopes: vec![
                (BudgetScope::Platform("a".into()), usd(5.0)),
                (BudgetScope::Platform("a".into()), usd(2.0)),
            ],
            amount: usd(1.0),
            task_id: TaskId::from("t"),
            note: String::new(),
        };
        let plan = charge_plan(&charge).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan["platform:a"].1, usd(2.0));
        let negative = BudgetCharge {
            amount: Money::from_nanos(-1),
            ..charge
        };
        assert!(charge_plan(&negative).is_err());
    }
}
