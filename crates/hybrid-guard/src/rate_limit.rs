//! Rate limits per platform, agent, tool and submitter, with `governor`.
//!
//! A [`RateLimits`] holds one keyed GCRA limiter per [`RateRule`]. A rule
//! names one value of one kind ([`RateScope::Tool`]`("bash")`: bash calls)
//! or, with the name `*`, every value of that kind separately (each
//! submitter their own quota). [`RateLimits::acquire`] takes a cell from
//! every rule that applies to the call's [`RateKeys`], in rule order; a rule
//! without a free cell is waited for (`tokio::time::sleep`) when it frees one
//! within what is left of `max_wait`, else the call is refused at once with
//! [`RateLimited`], naming the rule and when to retry. Cells taken at earlier
//! rules by a refused call stay taken (the error is conservative, never lax).
//!
//! Time comes from [`TokioClock`], a governor clock that reads
//! `tokio::time::Instant`: on a paused tokio clock (`tokio::time::pause()`)
//! limiters and sleeps move together, so tests run instantly and exactly.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use hybrid_guard::rate_limit::{RateKeys, RateLimits, RateRule, RateScope};
//! let limits = RateLimits::new(
//!     vec![RateRule::per_minute(RateScope::Tool("bash".into()), 5)],
//!     Duration::from_secs(2),
//! )?;
//! limits.acquire(&RateKeys::default().tool("bash")).await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

/// The name that makes a rule apply to every value of its kind, each value
/// with its own quota.
pub const ANY: &str = "*";

/// What a rule limits: calls to one platform, by one agent, of one tool, or
/// from one submitter (or, named [`ANY`], each of them separately).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// Model calls to a platform (`openai`, `anthropic`).
    Platform(String),
    /// Calls made by an agent.
    Agent(String),
    /// Calls of a tool (`bash`).
    Tool(String),
    /// Calls for a submitter's tasks.
    Submitter(String),
}

impl RateScope {
    /// `platform`, `agent`, `tool` or `submitter`.
    pub fn kind(&self) -> &'static str {
        match self {
            RateScope::Platform(_) => "platform",
            RateScope::Agent(_) => "agent",
            RateScope::Tool(_) => "tool",
            RateScope::Submitter(_) => "submitter",
        }
    }

    /// The value named by the rule (or [`ANY`]).
    pub fn name(&self) -> &str {
        match self {
            RateScope::Platform(n)
            | RateScope::Agent(n)
            | RateScope::Tool(n)
            | RateScope::Submitter(n) => n,
        }
    }

    /// The key of this kind in `keys`, if the call has one.
    fn key<'a>(&self, keys: &'a RateKeys) -> Option<&'a str> {
        match self {
            RateScope::Platform(_) => keys.platform.as_deref(),
            RateScope::Agent(_) => keys.agent.as_deref(),
            RateScope::Tool(_) => keys.tool.as_deref(),
            RateScope::Submitter(_) => keys.submitter.as_deref(),
        }
    }
}

impl std::str::FromStr for RateScope {
    type Err = String;

    /// `platform:NAME`, `agent:NAME`, `tool:NAME` or `submitter:NAME`
    /// (`NAME` may be `*`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("`{s}` is not KIND:NAME (platform, agent, tool or submitter)")
        })?;
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{s}` names nothing after `{kind}:`"));
        }
        let name = name.to_owned();
        match kind.trim() {
            "platform" => Ok(RateScope::Platform(name)),
            "agent" => Ok(RateScope::Agent(name)),
            "tool" => Ok(RateScope::Tool(name)),
            "submitter" => Ok(RateScope::Submitter(name)),
            other => Err(format!(
                "unknown scope kind `{other}` (expected one of: platform, agent, tool, submitter)"
            )),
        }
    }
}

impl fmt::Display for RateScope {
    /// `tool:bash`, `submitter:*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// One limit: at most `count` calls per `per`, with bursts of up to `burst`
/// calls (default: `count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateRule {
    /// What is limited.
    pub scope: RateScope,
    /// Calls allowed per period.
    pub count: u32,
    /// The period.
    pub per: Duration,
    /// Calls allowed at once after a quiet spell; `None`: `count`.
    pub burst: Option<u32>,
}

impl RateRule {
    /// `count` calls per minute.
    pub fn per_minute(scope: RateScope, count: u32) -> Self {
        RateRule {
            scope,
            count,
            per: Duration::from_secs(60),
            burst: None,
        }
    }

    /// `count` calls per `per`.
    pub fn new(scope: RateScope, count: u32, per: Duration) -> Self {
        RateRule {
            scope,
            count,
            per,
            burst: None,
        }
    }

    /// The same rule with bursts of up to `burst` calls.
    pub fn with_burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// `tool:bash 5 per 60s (burst 5)`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} per {:?} (burst {})",
            self.scope,
            self.count,
            self.per,
            self.burst.unwrap_or(self.count)
        )
    }

    fn quota(&self) -> Result<Quota, RateConfigError> {
        let bad = |why: &str| RateConfigError {
            rule: self.scope.to_string(),
            reason: why.to_owned(),
        };
        let count = NonZeroU32::new(self.count).ok_or_else(|| bad("count must be at least 1"))?;
        let burst = NonZeroU32::new(self.burst.unwrap_or(self.count))
            .ok_or_else(|| bad("burst must be at least 1"))?;
        if self.scope.name().trim().is_empty() {
            return Err(bad("the scope names nothing"));
        }
        let period = self.per / count.get();
        let quota = Quota::with_period(period)
            .ok_or_else(|| bad("the period is too short for the count"))?;
        Ok(quota.allow_burst(burst))
    }
}

/// The keys of one call; kinds a call does not have are `None` and match no
/// rule of that kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateKeys {
    /// The platform called.
    pub platform: Option<String>,
    /// The agent calling.
    pub agent: Option<String>,
    /// The tool called.
    pub tool: Option<String>,
    /// Who submitted the task.
    pub submitter: Option<String>,
}

impl RateKeys {
    /// With the platform set.
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// With the agent set.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// With the tool set.
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// With the submitter set.
    pub fn submitter(mut self, submitter: impl Into<String>) -> Self {
        self.submitter = Some(submitter.into());
        self
    }
}

/// A call refused: the rule could not let it through within `max_wait`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {rule}: over the limit for {key}, retry after {retry_after:?}")]
pub struct RateLimited {
    /// The rule that refused, as written.
    pub scope: RateScope,
    /// The rule described (`tool:bash 5 per 60s (burst 5)`).
    pub rule: String,
    /// The key of the call that hit it (`tool:bash`, `submitter:alice`).
    pub key: String,
    /// How long until that rule would let the call through.
    pub retry_after: Duration,
}

/// A rule that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {rule}: {reason}")]
pub struct RateConfigError {
    /// The rule's scope (`tool:bash`).
    pub rule: String,
    /// What is wrong.
    pub reason: String,
}

/// A governor clock reading `tokio::time::Instant`, as time since the clock
/// was made: follows a paused tokio clock in tests, the monotonic clock
/// otherwise.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting now.
    pub fn new() -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        tokio::time::Instant::now().saturating_duration_since(self.origin)
    }
}

type Keyed = RateLimiter<String, HashMapStateStore<String>, TokioClock, NoOpMiddleware<Duration>>;

struct Limiter {
    rule: RateRule,
    limiter: Keyed,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("rule", &self.rule)
            .finish_non_exhaustive()
    }
}

/// Every configured rate limit, shared by all calls (wrap it in an `Arc`).
#[derive(Debug)]
pub struct RateLimits {
    limiters: Vec<Limiter>,
    max_wait: Duration,
    clock: TokioClock,
}

impl RateLimits {
    /// Limits from `rules`; a call waits at most `max_wait` in all.
    ///
    /// [`RateConfigError`] naming the rule for a zero count or burst, an
    /// empty name, or a period too short to divide by the count.
    pub fn new(rules: Vec<RateRule>, max_wait: Duration) -> Result<Self, RateConfigError> {
        let clock = TokioClock::new();
        let limiters = rules
            .into_iter()
            .map(|rule| {
                let quota = rule.quota()?;
                let limiter: Keyed = RateLimiter::new(quota, HashMapStateStore::default(), clock);
                Ok(Limiter { rule, limiter })
            })
            .collect::<Result<Vec<_>, RateConfigError>>()?;
        Ok(RateLimits {
            limiters,
            max_wait,
            clock,
        })
    }

    /// The rules, in the order they are checked.
    pub fn rules(&self) -> impl Iterator<Item = &RateRule> {
        self.limiters.iter().map(|l| &l.rule)
    }

    /// The longest a call waits before it is refused.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// Takes one cell from every rule that applies to `keys`, waiting for
    /// rules without a free cell while the total wait stays within
    /// `max_wait`; else [`RateLimited`] at once, naming the rule.
    pub async fn acquire(&self, keys: &RateKeys) -> Result<(), RateLimited> {
        let start = tokio::time::Instant::now();
        for limiter in &self.limiters {
            let scope = &limiter.rule.scope;
            let Some(key) = scope.key(keys) else {
                continue;
            };
            let name = scope.name();
            if name != ANY && name != key {
                continue;
            }
            let key = key.to_owned();
            loop {
                let not_until = match limiter.limiter.check_key(&key) {
                    Ok(()) => break,
                    Err(not_until) => not_until,
                };
                let wait = not_until.wait_time_from(self.clock.now());
                let waited = start.elapsed();
                if waited.saturating_add(wait) > self.max_wait {
                    return Err(RateLimited {
                        scope: scope.clone(),
                        rule: limiter.rule.describe(),
                        key: format!("{}:{key}", scope.kind()),
                        retry_after: wait,
                    });
                }
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn bash_keys() -> RateKeys {
        RateKeys::default()
            .tool("bash")
            .agent("coder")
            .submitter("alice")
    }

    fn bash_limits(max_wait: Duration) -> RateLimits {
        RateLimits::new(
            vec![RateRule::per_minute(RateScope::Tool("bash".into()), 5)],
            max_wait,
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn within_quota_passes_at_once() {
        let limits = bash_limits(Duration::ZERO);
        let start = Instant::now();
        for _ in 0..5 {
            limits.acquire(&bash_keys()).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn over_quota_waits_exactly_until_a_cell_is_back() {
        // bash: 5 per minute → one cell back every 12 s.
        let limits = bash_limits(Duration::from_secs(30));
        for _ in 0..5 {
            limits.acquire(&bash_keys()).await.unwrap();
        }
        let start = Instant::now();
        limits.acquire(&bash_keys()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        limits.acquire(&bash_keys()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(24));
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_max_wait_is_refused_naming_the_rule() {
        let limits = bash_limits(Duration::from_secs(5));
        for _ in 0..5 {
            limits.acquire(&bash_keys()).await.unwrap();
        }
        let start = Instant::now();
        let err = limits.acquire(&bash_keys()).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO, "refused without waiting");
        assert_eq!(err.scope, RateScope::Tool("bash".into()));
        assert_eq!(err.key, "tool:bash");
        assert_eq!(err.retry_after, Duration::from_secs(12));
        let text = err.to_string();
        assert!(text.contains("tool:bash 5 per 60s"), "{text}");
        // After the advertised wait it goes through.
        tokio::time::advance(err.retry_after).await;
        limits.acquire(&bash_keys()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn independent_keys_do_not_interfere() {
        let limits = RateLimits::new(
            vec![
                RateRule::per_minute(RateScope::Submitter(ANY.into()), 2),
                RateRule::per_minute(RateScope::Tool("bash".into()), 100),
            ],
            Duration::ZERO,
        )
        .unwrap();
        let alice = RateKeys::default().submitter("alice").tool("bash");
        let bob = RateKeys::default().submitter("bob").tool("bash");
        limits.acquire(&alice).await.unwrap();
        limits.acquire(&alice).await.unwrap();
        let err = limits.acquire(&alice).await.unwrap_err();
        assert_eq!(err.key, "submitter:alice");
        assert_eq!(err.scope, RateScope::Submitter(ANY.into()));
        // Bob has his own quota; other tools are not limited at all.
        limits.acquire(&bob).await.unwrap();
        limits.acquire(&bob).await.unwrap();
        for _ in 0..10 {
            limits
                .acquire(&RateKeys::default().tool("read_file"))
                .await
                .unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_applicable_rule_must_allow() {
        let limits = RateLimits::new(
            vec![
                RateRule::new(
                    RateScope::Platform("openai".into()),
                    1,
                    Duration::from_secs(1),
                ),
                RateRule::per_minute(RateScope::Agent("coder".into()), 60).with_burst(1),
            ],
            Duration::from_secs(10),
        )
        .unwrap();
        let keys = RateKeys::default().platform("openai").agent("coder");
        let start = Instant::now();
        limits.acquire(&keys).await.unwrap();
        limits.acquire(&keys).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // Another platform: only the agent's rule, whose cell is back by now.
        let other = RateKeys::default().platform("anthropic").agent("coder");
        tokio::time::advance(Duration::from_secs(1)).await;
        let before = Instant::now();
        limits.acquire(&other).await.unwrap();
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_let_through_one_cell_at_a_time() {
        let limits = std::sync::Arc::new(bash_limits(Duration::from_secs(60)));
        for _ in 0..5 {
            limits.acquire(&bash_keys()).await.unwrap();
        }
        let start = Instant::now();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move {
                    limits.acquire(&bash_keys()).await.unwrap();
                    start.elapsed()
                })
            })
            .collect();
        let mut done = Vec::new();
        for waiter in waiters {
            done.push(waiter.await.unwrap());
        }
        done.sort();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(done, vec![secs(12), secs(24), secs(36)]);
    }

    #[test]
    fn bad_rules_are_named() {
        let err = RateLimits::new(
            vec![RateRule::per_minute(RateScope::Tool("bash".into()), 0)],
            Duration::ZERO,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rate limit tool:bash: count must be at least 1"
        );
        let err = RateLimits::new(
            vec![RateRule::per_minute(RateScope::Agent("x".into()), 3).with_burst(0)],
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(err.to_string().contains("burst"));
    }
}
