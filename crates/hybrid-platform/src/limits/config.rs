//! `[budgets]` and `[rate_limits]` of `hybrid.toml`: spending and call-rate
//! limits, checked on load and turned into [`Budgets`] and [`RateLimits`].
//!
//! ```toml
//! [budgets]                 # USD; each is optional
//! per_task_usd = 5.0        # one task, all its calls
//! per_platform_usd = 100.0  # each platform, all tasks
//! per_submitter_usd = 20.0  # each submitter (`submitted_by`), all their tasks
//! per_day_usd = 50.0        # everything on one UTC day
//!
//! [rate_limits]
//! max_wait_secs = 2.0       # a call over a limit waits this long at most, then is refused
//!
//! [[rate_limits.rules]]
//! scope = "tool:bash"       # platform:NAME | agent:NAME | tool:NAME | submitter:NAME (NAME may be *)
//! limit = 5                 # calls per period
//! per_secs = 60             # the period (default 60)
//! burst = 5                 # calls at once after a quiet spell (default: limit)
//! ```
//!
//! `platform`, `agent` and `submitter` rules count model calls; `tool` rules
//! count tool calls.

use std::ops::Range;
use std::time::Duration;

use hybrid_core::Money;
use hybrid_guard::{RateLimits, RateRule, RateScope};
use serde::Deserialize;
use toml::Spanned;

use crate::limits::Budgets;

/// `[budgets]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Per task, USD.
    pub per_task_usd: Option<Spanned<f64>>,
    /// Per platform, USD.
    pub per_platform_usd: Option<Spanned<f64>>,
    /// Per submitter, USD.
    pub per_submitter_usd: Option<Spanned<f64>>,
    /// Per UTC day, USD.
    pub per_day_usd: Option<Spanned<f64>>,
}

/// `[rate_limits]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Longest wait for a free call before refusing, seconds (default 5).
    pub max_wait_secs: Option<Spanned<f64>>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RateRuleConfig>,
}

/// `[[rate_limits.rules]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRuleConfig {
    /// `tool:bash`, `submitter:*`, …
    pub scope: Spanned<String>,
    /// Calls per period.
    pub limit: Spanned<u32>,
    /// The period in seconds (default 60).
    pub per_secs: Option<Spanned<u64>>,
    /// Burst size (default: `limit`).
    pub burst: Option<Spanned<u32>>,
}

/// Default longest wait for a rate-limited call.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5);

/// A load error: where, which key, what.
pub(crate) type Bad = (Range<usize>, String, String);

impl BudgetsConfig {
    fn fields(&self) -> [(&'static str, Option<&Spanned<f64>>); 4] {
        [
            ("per_task_usd", self.per_task_usd.as_ref()),
            ("per_platform_usd", self.per_platform_usd.as_ref()),
            ("per_submitter_usd", self.per_submitter_usd.as_ref()),
            ("per_day_usd", self.per_day_usd.as_ref()),
        ]
    }

    /// Checks every amount is a non-negative number.
    pub(crate) fn validate(&self) -> Result<(), Bad> {
        for (field, value) in self.fields() {
            if let Some(v) = value {
                let usd = *v.get_ref();
                if !usd.is_finite() || usd < 0.0 || Money::try_from_usd(usd).is_err() {
                    return Err((
                        v.span(),
                        format!("budgets.{field}"),
                        format!("must be a non-negative number of dollars, got {usd}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The limits (validated on load).
    pub fn budgets(&self) -> Budgets {
        let money = |v: Option<&Spanned<f64>>| v.map(|v| hybrid_core::usd(*v.get_ref()));
        Budgets {
            per_task: money(self.per_task_usd.as_ref()),
            per_platform: money(self.per_platform_usd.as_ref()),
            per_submitter: money(self.per_submitter_usd.as_ref()),
            per_day: money(self.per_day_usd.as_ref()),
        }
    }
}

impl RateLimitsConfig {
    /// The limits, built; an impossible rule is an error naming it.
    pub(crate) fn build(&self) -> Result<RateLimits, Bad> {
        let max_wait = match &self.max_wait_secs {
            None => DEFAULT_MAX_WAIT,
            Some(w) => {
                let secs = *w.get_ref();
                Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|_| secs.is_finite())
                    .ok_or_else(|| {
                        (
                            w.span(),
                            "rate_limits.max_wait_secs".to_owned(),
                            format!("must be a non-negative number of seconds, got {secs}"),
                        )
                    })?
            }
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            let key = format!("rate_limits.rules[{i}]");
            let scope: RateScope = r
                .scope
                .get_ref()
                .parse()
                .map_err(|e: String| (r.scope.span(), format!("{key}.scope"), e))?;
            let per = r.per_secs.as_ref().map_or(60, |p| *p.get_ref());
            if per == 0 {
                let span = r.per_secs.as_ref().map_or(r.scope.span(), Spanned::span);
                return Err((span, format!("{key}.per_secs"), "must be at least 1".into()));
            }
            let mut rule = RateRule::new(scope, *r.limit.get_ref(), Duration::from_secs(per));
            if let Some(b) = &r.burst {
                rule = rule.with_burst(*b.get_ref());
            }
            // Build each rule alone so the error points at its line.
            RateLimits::new(vec![rule.clone()], max_wait)
                .map_err(|e| (r.limit.span(), key.clone(), e.to_string()))?;
            rules.push(rule);
        }
        RateLimits::new(rules, max_wait)
            .map_err(|e| (0..0, "rate_limits".to_owned(), e.to_string()))
    }
}
