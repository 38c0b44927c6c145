//! HybridPlatform's command policy.
//!
//! Executors run shell commands only after [`CommandPolicy::check`] has
//! judged every command the line would run. Deny beats approve beats allow;
//! what no rule covers gets the configured default; what cannot be parsed is
//! denied; every decision names its rule.
//!
//! | item | what |
//! | --- | --- |
//! | [`Verdict`] | `allow` < `approve` < `deny` |
//! | [`PolicyRules`] | the `[policy]` lists; `Default` is the seed's |
//! | [`CommandPolicy`] | compiled rules; `check(line)` → [`PolicyDecision`] |
//! | [`PolicyDecision`], [`CommandDecision`] | the JSON of `hybrid policy check --json` |
//! | [`GuardError`] | a rule that cannot be understood |
//!
//! Rule names are `<list>:<entry>` (`deny:rm -rf`, `approve:git push`,
//! `allow:ls`, `deny:DROP TABLE`), `dynamic:<kind>`, `default` and
//! `unparseable`; see [`policy`] for how entries are compiled and matched.

pub mod error;
pub mod policy;
pub mod verdict;

pub use error::GuardError;
pub use policy::{CommandDecision, CommandPolicy, PolicyDecision, PolicyRules};
pub use verdict::Verdict;
