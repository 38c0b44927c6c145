//! [`PolicyVerdict`]: what the policy says about a command.
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
pub enum PolicyVerdict {
    /// It may run.
    Allow,
    /// It may run once approved.
    Approve,
    /// It must not run.
    Deny,
}

impl PolicyVerdict {
    /// The lowercase name: `allow`, `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVerdict::Allow => "allow",
            PolicyVerdict::Approve => "approve",
            PolicyVerdict::Deny => "deny",
        }
    }
}

impl fmt::Display for PolicyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for PolicyVerdict {
    type Err = GuardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(PolicyVerdict::Allow),
            "approve" | "approval" | "require_approval" => Ok(PolicyVerdict::Approve),
            "deny" | "forbid" => Ok(PolicyVerdict::Deny),
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
        assert!(PolicyVerdict::Deny > PolicyVerdict::Approve);
        assert!(PolicyVerdict::Approve > PolicyVerdict::Allow);
        assert_eq!(
            [
                PolicyVerdict::Allow,
                PolicyVerdict::Deny,
                PolicyVerdict::Approve
            ]
            .iter()
            .max(),
            Some(&PolicyVerdict::Deny)
        );
    }

    #[test]
    fn names_round_trip() {
        for v in [
            PolicyVerdict::Allow,
            PolicyVerdict::Approve,
            PolicyVerdict::Deny,
        ] {
            assert_eq!(v.as_str().parse::<PolicyVerdict>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert!("maybe".parse::<PolicyVerdict>().is_err());
    }
}
