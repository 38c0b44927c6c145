//! [`Clock`]: where "now" comes from, so expiries and leases can be tested
//! without waiting for them.
//!
//! | clock | now is |
//! | --- | --- |
//! | [`SystemClock`] | the system's time (the default everywhere) |
//! | [`ManualClock`] | what the test set it to; [`ManualClock::advance`] moves it |
//!
//! ```
//! use std::time::Duration;
//! use hybrid_core::{Clock, ManualClock};
//! let clock = ManualClock::starting_now();
//! let start = clock.now();
//! clock.advance(Duration::from_secs(900));
//! assert_eq!(clock.now() - start, chrono::Duration::seconds(900));
//! ```

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        ManualClock {
            now: Mutex::new(at),
        }
    }

    /// A clock standing at the system's time now.
    pub fn starting_now() -> Self {
        ManualClock::at(Utc::now())
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
