//! Results of expensive, repeatable workflow stages, kept for a time.
//!
//! A stage with `cache: { ttl: "1h", key: "{{ inputs.repo }}@{{ inputs.commit }}" }`
//! is looked up by workflow, stage, platform and rendered key before it runs;
//! a hit is reused (and costs nothing), a miss runs and is kept for `ttl`.
//! The cache lives in the process ([`moka`]): bounded by entry count, each
//! entry expiring after its own TTL.

use std::time::{Duration, Instant};

use hybrid_core::StageResult;
use moka::Expiry;
use moka::future::Cache;

/// How many stage results are kept at most.
pub const CAPACITY: u64 = 1_000;

#[derive(Clone)]
struct Entry {
    result: StageResult,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Stage results by key, each for its own TTL.
#[derive(Clone)]
pub struct StageCache {
    cache: Cache<String, Entry>,
}

impl std::fmt::Debug for StageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageCache")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl Default for StageCache {
    fn default() -> Self {
        StageCache {
            cache: Cache::builder()
                .max_capacity(CAPACITY)
                .expire_after(PerEntryTtl)
                .build(),
        }
    }
}

impl StageCache {
    /// The result kept under `key`, if it has not expired.
    pub async fn get(&self, key: &str) -> Option<StageResult> {
        self.cache.get(key).await.map(|e| e.result)
    }

    /// Keeps `result` under `key` for `ttl`.
    pub async fn insert(&self, key: String, result: StageResult, ttl: Duration) {
        self.cache.insert(key, Entry { result, ttl }).await;
    }
}
