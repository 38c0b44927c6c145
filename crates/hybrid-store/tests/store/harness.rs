//! Test support shared by the backend modules: a [`Harness`] that opens
//! handles to one fresh database and cleans it up, [`store_suite!`], which
//! turns every case in [`suite`](crate::suite) into one `#[tokio::test]` for
//! a backend, and [`wait_until`], the bounded wait every polling loop uses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hybrid_store::Store;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Opens a new handle (its own connection pool) to the test's database.
pub trait Opener: Send + Sync + 'static {
    /// A new store on the same database as every other handle of this opener.
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>>;

    /// Runs raw SQL (one or more statements) on the database behind the
    /// store's back, as a tamperer with database access would.
    fn exec<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, ()>;
}

/// One fresh database for one test case.
pub struct Harness {
    /// Opens handles to it.
    pub opener: Arc<dyn Opener>,
    /// Run after the case, whether it passed or not (e.g. drop a schema).
    pub cleanup: Option<BoxFuture<'static, ()>>,
}

impl Harness {
    /// Runs `case` in its own task, then the clean-up, then re-raises the
    /// case's panic if it had one.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(Arc<dyn Opener>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(case(self.opener.clone())).await;
        if let Some(cleanup) = self.cleanup {
            cleanup.await;
        }
        if let Err(e) = outcome {
            match e.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(e) => panic!("test case task failed: {e}"),
            }
        }
    }
}

/// `store_suite!(setup)` defines one `#[tokio::test]` per case of [`suite`];
/// `setup()` returns `Option<Harness>` (`None`: skip, the reason printed).
macro_rules! store_suite {
    ($setup:path) => {
        store_suite!(@cases $setup;
            create_get_round_trip,
            lifecycle_and_history,
            illegal_transition_rejected,
            concurrent_transitions,
            events_in_order_and_batch,
            large_event_batches,
            stages_ordered_and_upsert,
            finish_round_trip,
            list_filter_limit_order,
            metrics_known_data_set,
            metrics_count_guardrail_triggers,
            reopen_keeps_data,
            apply_batch_is_every_write_in_order,
            apply_batch_is_all_or_nothing,
            apply_concurrent_batches_keep_the_chain,
            audit_chain_appends_and_verifies,
            audit_long_chain_verifies_across_pages,
            audit_redacts_before_writing,
            audit_concurrent_appends_stay_gapless,
            audit_edit_is_named,
            audit_delete_is_named,
            audit_insert_is_named,
            audit_reorder_is_named,
            approval_create_get_round_trip,
            approval_list_filters_and_order,
            approval_approve_records_who_when_note,
            approval_reject,
            approval_double_decision_names_first_decider,
            approval_concurrent_deciders_one_wins,
            approval_expire,
            approval_unknown_id_or_task,
            budget_reserve_within_and_exceeding,
            budget_settle_up_and_down,
            budget_several_scopes_all_or_none,
            budget_concurrent_reservers_never_exceed,
            budget_survives_reopen,
            budget_overlapping_scopes_in_any_order,
            journal_begin_finish_replay,
            journal_interrupted_entry_is_reported,
            journal_concurrent_begin_one_started,
            journal_finish_errors_name_the_key,
            journal_lists_in_begin_order,
            journal_resume_after_failure,
            lease_claim_renew_release,
            lease_expired_is_taken_over,
            lease_concurrent_claimers_one_wins,
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(harness) = $setup().await {
                    harness.run(crate::suite::$case).await;
                }
            }
        )*
    };
}

/// Polls `done` (every millisecond, at most `within`) until it holds;
/// panics naming `what` if it never does.
pub async fn wait_until<F, Fut>(what: &str, within: std::time::Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {within:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Waits (at most 10 s) until the clock shows a time after `t`, to the
/// microsecond the store keeps: the next timestamp any store takes, from
/// this machine's clock or the database's, is later than `t`.
pub async fn clock_passes(t: chrono::DateTime<chrono::Utc>) {
    use chrono::SubsecRound;
    wait_until(
        &format!("the clock to pass {t}"),
        std::time::Duration::from_secs(10),
        || async move { chrono::Utc::now().trunc_subsecs(6) > t },
    )
    .await;
}
