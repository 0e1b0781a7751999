//! Housekeeping inside `serve` (src/http/mod.rs `housekeep_once`), on both backends: vouchers
//! past their validity are expired, residents' expired sessions and old idempotency keys are
//! forgotten, each run is counted in /metrics, and on PostgreSQL only the process holding the
//! lease runs it — another takes over once that one is gone.

mod common;

use std::time::Duration;

use common::{Backend, TestLedger};
use hongxin::app::App;
use hongxin::domain::{Command, NewToken, Receipt, Role, VoucherStatus};
use hongxin::http::{housekeep_once, AppState, Housekeeping, HttpConfig};

const ISSUED: &str = "2026-11-16";
/// Past the 36 months of validity of a voucher issued on [`ISSUED`].
const LATER: &str = "2029-12-01";

async fn resident_session(ledger: &TestLedger, hash: &str, expires_in: chrono::Duration) {
    let created = ledger
        .run(Command::CreateToken(NewToken {
            parent: None,
            hash: hash.into(),
            role: Role::Resident,
            scope: Some("H1".into()),
            label: Some("resident sign-in".into()),
            expires_at: Some(chrono::Utc::now() + expires_in),
        }))
        .await;
    assert!(matches!(created, Ok(Receipt::Created(_))), "{created:?}");
}

fn metrics(state: &AppState) -> String {
    state.metrics.render(0, 0, 0)
}

async fn housekeeping_expires_vouchers_and_prunes_sessions(backend: Backend) {
    if backend == Backend::Postgres && !common::pg_support::available() {
        return;
    }
    let mut ledger = TestLedger::on(backend, ISSUED).await;
    let other_voucher = ledger.issue_voucher("H1", "50").await;
    let expiring = ledger.issue_voucher("H2", "100").await;
    resident_session(&ledger, &"a".repeat(64), chrono::Duration::hours(-1)).await;
    resident_session(&ledger, &"b".repeat(64), chrono::Duration::hours(1)).await;
    ledger.reopen(LATER).await;

    let state = AppState::new(ledger.app.clone(), HttpConfig::default());
    let mut lease = None;
    let done = housekeep_once(&state, &mut lease).await;
    assert_eq!(
        done,
        Some(Housekeeping {
            vouchers_expired: 2,
            vouchers_broken: 0,
            idempotency_pruned: 0,
            sessions_pruned: 1,
        })
    );
    assert_eq!(
        ledger.voucher_row(&expiring).await.status,
        VoucherStatus::Expired
    );
    assert_eq!(
        ledger.voucher_row(&other_voucher).await.status,
        VoucherStatus::Expired
    );
    // Expiry moves no money under the default policy: the credit stays owed to the holder.
    assert_eq!(ledger.voucher_balance(&expiring).await.fen(), 11_000);
    ledger.assert_sound().await;
    assert!(ledger
        .app
        .store
        .token_by_hash(&"b".repeat(64))
        .await
        .expect("read")
        .is_some());
    assert!(ledger
        .app
        .store
        .token_by_hash(&"a".repeat(64))
        .await
        .expect("read")
        .is_none());

    // A second run finds nothing to do.
    assert_eq!(
        housekeep_once(&state, &mut lease).await,
        Some(Housekeeping::default())
    );
    let text = metrics(&state);
    assert!(
        text.contains("hongxin_housekeeping_runs_total{outcome=\"ran\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("hongxin_housekeeping_items_total{task=\"vouchers_expired\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("hongxin_housekeeping_items_total{task=\"sessions_pruned\"} 1"),
        "{text}"
    );

    if backend == Backend::Postgres {
        // A second process on the same database: the lease is taken, so it skips.
        let other = App::open(&ledger.settings).await.expect("second process");
        let other = AppState::new(other, HttpConfig::default());
        let mut other_lease = None;
        assert_eq!(housekeep_once(&other, &mut other_lease).await, None);
        assert!(
            metrics(&other).contains("hongxin_housekeeping_runs_total{outcome=\"skipped\"} 1"),
            "{}",
            metrics(&other)
        );
        // The holder goes away (its connection closes): the other takes over.
        drop(lease.take());
        let mut took_over = false;
        for _ in 0..100 {
            if housekeep_once(&other, &mut other_lease).await.is_some() {
                took_over = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(took_over, "the lease was never released");
        // Now the first one is the one that skips.
        assert_eq!(housekeep_once(&state, &mut lease).await, None);
    }
}

#[tokio::test]
async fn housekeeping_expires_vouchers_and_prunes_sessions_sqlite() {
    housekeeping_expires_vouchers_and_prunes_sessions(Backend::Sqlite).await;
}

#[tokio::test]
async fn housekeeping_expires_vouchers_and_prunes_sessions_postgres() {
    housekeeping_expires_vouchers_and_prunes_sessions(Backend::Postgres).await;
}
