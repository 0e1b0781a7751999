//! Upgrades, on both backends: a ledger with data (top-ups, vouchers, sales, a refund, fee
//! bills and a payment, a month closed) is taken back to the previous release's schema — every
//! migration after [`PREVIOUS_RELEASE`] undone by its script in `tests/upgrade/<backend>/`,
//! dropping what those migrations added and only that — and then opened by this release, which
//! migrates it again. The upgraded ledger verifies (chain, balances, month closes), holds the same
//! balances and statement as before, and takes new work.
//!
//! A new migration needs its down script here (`NNNN_name.down.sql`, what the migration added,
//! dropped), or this test says which one is missing.

mod common;

use std::path::{Path, PathBuf};

use common::{cash, sale_amount, wallet, Backend, TestLedger};
use hongxin::domain::{
    CloseMonth, Command, Delivery, FeePayment, GenerateBills, PayMethod, Receipt,
};

/// The last migration of the previous release.
const PREVIOUS_RELEASE: i64 = 5;

fn migration_versions(backend: &str) -> Vec<(i64, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut found: Vec<(i64, String)> = std::fs::read_dir(&dir)
        .expect("migrations")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".sql")?;
            let version = stem.split('_').next()?.parse().ok()?;
            Some((version, stem.to_string()))
        })
        .collect();
    found.sort();
    found
}

/// The down scripts that take a database of this release back to the previous one, newest
/// first.
fn down_scripts(backend: &str) -> Vec<(i64, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/upgrade")
        .join(backend);
    migration_versions(backend)
        .into_iter()
        .rev()
        .filter(|(v, _)| *v > PREVIOUS_RELEASE)
        .map(|(v, stem)| {
            let script = dir.join(format!("{stem}.down.sql"));
            assert!(
                script.is_file(),
                "migration {stem} has no down script {}: write one (drop what it adds) so the \
                 upgrade test can build the previous release's database",
                script.display()
            );
            (v, script)
        })
        .collect()
}

async fn downgrade(ledger: &TestLedger) {
    let backend = match ledger.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let mut sql = String::new();
    for (_, script) in down_scripts(backend) {
        sql.push_str(&std::fs::read_to_string(&script).expect("down script"));
        sql.push('\n');
    }
    sql.push_str(&format!(
        "DELETE FROM _sqlx_migrations WHERE version > {PREVIOUS_RELEASE};"
    ));
    let latest = "SELECT MAX(version) FROM _sqlx_migrations";
    let url = ledger.settings.database.clone();
    let left: i64 = match ledger.backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .expect("down scripts");
            sqlx::query_scalar(latest)
                .fetch_one(&mut conn)
                .await
                .expect("version")
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .expect("down scripts");
            sqlx::query_scalar(latest)
                .fetch_one(&mut conn)
                .await
                .expect("version")
        }
    };
    assert_eq!(left, PREVIOUS_RELEASE);
}

async fn a_previous_release_database_upgrades_and_verifies(backend: Backend) {
    if backend == Backend::Postgres && !common::pg_support::available() {
        return;
    }
    let mut ledger = TestLedger::on(backend, "2026-11-10").await;
    ledger
        .top_up("H1", "200.00", Delivery::Wallet)
        .await
        .expect("top-up");
    ledger
        .top_up("H2", "100.00", Delivery::Wallet)
        .await
        .expect("top-up");
    let code = ledger.issue_voucher("H3", "50").await;
    let sale = ledger
        .sell(sale_amount(
            Some("H1"),
            "80.00",
            vec![wallet("60.00"), cash("20.00")],
        ))
        .await
        .expect("sale");
    ledger
        .sell(sale_amount(
            None,
            "10.00",
            vec![common::voucher(&code, "10.00")],
        ))
        .await
        .expect("voucher sale");
    ledger
        .refund_sale(sale.sale, None, Some("30.00"))
        .await
        .expect("refund");
    let bills = ledger
        .run(Command::GenerateBills(GenerateBills {
            company: "K01".into(),
            month: "2026-11".into(),
        }))
        .await;
    assert!(matches!(bills, Ok(Receipt::Bills(_))), "{bills:?}");
    let paid = ledger
        .run(Command::PayFee(FeePayment {
            household: "H2".into(),
            amount: common::y("20.00"),
            method: PayMethod::Wechat,
            reference: "WX-1".into(),
            company: None,
            shop: None,
        }))
        .await;
    assert!(matches!(paid, Ok(Receipt::FeePayment(_))), "{paid:?}");
    ledger.reopen("2026-12-02").await;
    let close = ledger
        .run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: "2026-11".into(),
            dry_run: false,
            estimate: false,
        }))
        .await;
    assert!(matches!(close, Ok(Receipt::MonthClose(_))), "{close:?}");
    ledger.assert_sound().await;
    let balances = ledger.balances().await;
    let head = ledger.head().await;
    let statement = ledger
        .app
        .store
        .statement("K01", "2026-11")
        .await
        .expect("statement")
        .expect("K01");

    downgrade(&ledger).await;
    // This release opens the previous release's database: it migrates, then verifies.
    ledger.reopen("2026-12-03").await;
    let report = ledger.app.verify().await.expect("verify");
    assert_eq!(report.first_problem, None);
    assert_eq!(report.close_runs, 1);
    assert_eq!(ledger.balances().await, balances);
    assert_eq!(ledger.head().await, head);
    let again = ledger
        .app
        .store
        .statement("K01", "2026-11")
        .await
        .expect("statement")
        .expect("K01");
    assert_eq!(
        serde_json::to_value(&again).expect("json"),
        serde_json::to_value(&statement).expect("json")
    );

    // And it takes new work on the upgraded schema, refunds included.
    ledger
        .refund_sale(sale.sale, None, Some("10.00"))
        .await
        .expect("refund after the upgrade");
    ledger
        .top_up("H4", "50.00", Delivery::Wallet)
        .await
        .expect("top-up");
    ledger.assert_sound().await;
}

#[tokio::test]
async fn a_previous_release_database_upgrades_and_verifies_sqlite() {
    a_previous_release_database_upgrades_and_verifies(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_previous_release_database_upgrades_and_verifies_postgres() {
    a_previous_release_database_upgrades_and_verifies(Backend::Postgres).await;
}
