//! HybridPlatform's command policy and guardrail engine.
//!
//! Executors run shell commands only after [`CommandPolicy::check`] has
//! judged every command the line would run. Deny beats approve beats allow;
//! what no rule covers gets the configured default; what cannot be parsed is
//! denied; every decision names its rule.
//!
//! | item | what |
//! | --- | --- |
//! | [`PolicyVerdict`] | `allow` < `approve` < `deny` (what the policy says; not a workflow verdict) |
//! | [`PolicyRules`] | the `[policy]` lists; `Default` is the seed's |
//! | [`CommandPolicy`] | compiled rules; `check(line)` → [`PolicyDecision`] |
//! | [`PolicyDecision`], [`CommandDecision`] | the JSON of `hybrid policy check --json` |
//! | [`GuardError`] | a rule that cannot be understood |
//! | [`GuardrailEngine`], [`Guardrail`] | the guardrail engine (L1–L4); see [`guardrails`] |
//! | [`GuardContext`] | what guardrail conditions see |
//! | [`Decision`], [`Outcome`] | `pass` < `needs_approval` < `block` |
//!
//! Rule names are `<list>:<entry>` (`deny:rm -rf`, `approve:git push`,
//! `allow:ls`, `deny:DROP TABLE`), `dynamic:<kind>`, `default` and
//! `unparseable`; see [`policy`] for how entries are compiled and matched.

pub mod error;
pub mod guardrails;
pub mod policy;
pub mod rate_limit;

pub use error::GuardError;
pub use guardrails::{
    CustomGuardrail, Decision, GuardContext, Guardrail, GuardrailEngine, GuardrailInfo,
    GuardrailKind, Layer, Outcome, OutputInfo, StageInfo, ToolCall,
};
pub use policy::{CommandDecision, CommandPolicy, PolicyDecision, PolicyRules, PolicyVerdict};
pub use rate_limit::{RateKeys, RateLimited, RateLimits, RateRule, RateScope};
