//! [`Verdict`]: what the policy says about a command.
//!
//! | verdict | meaning | strictness |
//! | --- | --- | --- |
//! | `allow` | runs | lowest |
//! | `approve` | runs once a person approves it | middle |
//! | `deny` | never runs | highest |
//!
//! `Ord` follows strictness, so "strictest wins" is `max`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::GuardError;

/// What the policy says about a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It may run.
    Allow,
    /// It may run once approved.
    Approve,
    /// It must not run.
    Deny,
}

impl Verdict {
    /// The lowercase name: `allow`, `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Verdict {
    type Err = GuardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(Verdict::Allow),
            "approve" | "approval" | "require_approval" => Ok(Verdict::Approve),
            "deny" | "forbid" => Ok(Verdict::Deny),
            _ => Err(GuardError::BadVerdict(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn strictest_is_max() {
        assert!(Verdict::Deny > Verdict::Approve);
        assert!(Verdict::Approve > Verdict::Allow);
        assert_eq!(
            [Verdict::Allow, Verdict::Deny, Verdict::Approve]
                .iter()
                .max(),
            Some(&Verdict::Deny)
        );
    }

    #[test]
    fn names_round_trip() {
        for v in [Verdict::Allow, Verdict::Approve, Verdict::Deny] {
            assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert!("maybe".parse::<Verdict>().is_err());
    }
}
