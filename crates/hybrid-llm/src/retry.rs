//! Retry policy: how many attempts, how long to wait between them.
//!
//! Waits use exponential backoff with full jitter (a uniformly random wait
//! between zero and `min(max_backoff, initial_backoff × 2^(attempt−1))`), unless
//! the provider said how long to wait: `retry-after-ms` (milliseconds, an
//! OpenAI extension) first, then the standard `retry-after` (seconds or an HTTP
//! date). A provider's wait is capped at [`RetryPolicy::max_retry_after`].

use std::time::{Duration, SystemTime};

use rand::Rng;
use reqwest::header::HeaderMap;

/// Bounded retries for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first one included (1 = never retry). Default 4.
    pub max_attempts: u32,
    /// Backoff ceiling for the first retry. Default 500 ms.
    pub initial_backoff: Duration,
    /// Largest computed backoff. Default 8 s.
    pub max_backoff: Duration,
    /// Largest wait taken from a provider's `retry-after`. Default 60 s.
    pub max_retry_after: Duration,
    /// Retry a 429 (rate limited). Default true; false when another platform
    /// can take the call instead of waiting out the provider's limit.
    pub retry_rate_limited: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            retry_rate_limited: true,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (1 = the first retry): the
    /// provider's wait when it gave one (capped), else jittered backoff.
    pub fn delay(&self, retry: u32, provider_wait: Option<Duration>) -> Duration {
        match provider_wait {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.jittered_backoff(retry),
        }
    }

    /// Full-jitter backoff: uniform in `[0, min(max_backoff, initial × 2^(retry−1))]`.
    pub fn jittered_backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }

    /// The upper bound of the jittered backoff for retry number `retry`.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << exponent)
            .min(self.max_backoff)
    }
}

/// The wait a response asks for: `retry-after-ms`, else `retry-after`
/// (delta-seconds, possibly fractional, or an HTTP date).
pub fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(parse_non_negative) {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header_str(headers, "retry-after")?;
    if let Some(secs) = parse_non_negative(value) {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// A finite, non-negative number below a day (anything larger is nonsense).
fn parse_non_negative(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    (value.is_finite() && (0.0..86_400_000.0).contains(&value)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn retry_after_ms_wins_over_seconds() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "7")]);
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(250))
        );
    }

    #[test]
    fn retry_after_seconds_and_fractions() {
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "3")])),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "1.5")])),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn retry_after_http_date() {
        let at = SystemTime::now() + Duration::from_secs(30);
        let h = headers(&[("retry-after", &httpdate::fmt_http_date(at))]);
        let wait = retry_after_from_headers(&h).unwrap();
        assert!(
            wait > Duration::from_secs(27) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after_from_headers(&past), Some(Duration::ZERO));
    }

    #[test]
    fn garbage_retry_after_is_ignored() {
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after", "soon")])),
            None
        );
        assert_eq!(
            retry_after_from_headers(&headers(&[("retry-after-ms", "-5")])),
            None
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn provider_wait_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_millis(20))),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff_ceiling(1), Duration::from_millis(500));
        assert_eq!(policy.backoff_ceiling(2), Duration::from_secs(1));
        assert_eq!(policy.backoff_ceiling(5), Duration::from_secs(8));
        assert_eq!(policy.backoff_ceiling(100), Duration::from_secs(8));
        for retry in 1..10 {
            assert!(policy.jittered_backoff(retry) <= policy.backoff_ceiling(retry));
        }
    }
}
