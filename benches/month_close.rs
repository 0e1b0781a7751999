//! Month close at scale: bills and a close over N households (default 1,000,000) on SQLite,
//! with a baseline measured in the same run (raw multi-row inserts of N rows on the same
//! machine and disk), because shared machines are noisy.
//!
//! Run: `cargo bench --bench month_close` (N from `HONGXIN_BENCH_HOUSEHOLDS`).
//!
//! Master data, ten large cash sales (the month's profit) and the bills go through the real
//! write path; households are inserted with SQL. The close weighs each household by the fees it
//! owes (the policy's `fee_due` basis, in a copy of the shipped policies): those weights are in
//! the journal (the bills), so `verify` recomputes them like any close's. (Weighing by credit
//! spending would need a million real sales, which would measure the till, not the close; tenders
//! seeded with SQL are in no entry, and `verify` holds every weight to the journal.)

use std::str::FromStr;
use std::time::Instant;

use chrono::NaiveDate;
use hongxin::app::{App, Settings};
use hongxin::clock::Clock;
use hongxin::domain::{
    CloseMonth, Command, GenerateBills, NewCompany, NewCompound, NewCooperative, NewShop,
    PayMethod, Receipt, Sale, Tender, TenderType,
};
use hongxin::money::Amount;
use sqlx::{ConnectOptions, Connection};

const COMPANIES: usize = 8;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

async fn ok(app: &App, command: Command) -> Receipt {
    match app.run(command).await {
        Ok(Ok(r)) => r,
        other => panic!("bench setup refused: {other:?}"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Where the close spends its time: HONGXIN_LOG=hongxin=debug.
    if let Ok(filter) = std::env::var("HONGXIN_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let n: i64 = std::env::var("HONGXIN_BENCH_HOUSEHOLDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}/bench.db", dir.path().display());
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies dir");
    for file in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")).expect("policies")
    {
        let file = file.expect("policy file").path();
        let mut text = std::fs::read_to_string(&file).expect("policy text");
        if text.contains("kind = \"profit_to_fees\"") {
            let weighed = text.replace("basis = \"credit_spend\"", "basis = \"fee_due\"");
            assert_ne!(weighed, text, "the profit policy's basis is credit_spend");
            text = weighed;
        }
        std::fs::write(policies.join(file.file_name().expect("name")), text).expect("copy");
    }
    let settings = Settings {
        database: database.clone(),
        policies_dir: policies,
        key_file: None,
        today: None,
    };
    let clock = Clock::manual(date("2026-10-01"));
    let app = App::open_with_clock(&settings, clock.clone())
        .await
        .expect("open");

    ok(
        &app,
        Command::CreateCooperative(NewCooperative {
            code: "COOP".into(),
            name: "红心农业合作社".into(),
        }),
    )
    .await;
    ok(
        &app,
        Command::CreateShop(NewShop {
            code: "S1".into(),
            name: "一号店".into(),
            cooperative: "COOP".into(),
        }),
    )
    .await;
    for k in 1..=COMPANIES {
        ok(
            &app,
            Command::CreateCompany(NewCompany {
                code: format!("K{k:02}"),
                name: format!("物业{k}"),
            }),
        )
        .await;
        ok(
            &app,
            Command::CreateCompound(NewCompound {
                code: format!("HX{k:02}"),
                name: format!("小区{k}"),
                company: format!("K{k:02}"),
                eligible: true,
            }),
        )
        .await;
    }
    // The month's profit: ten large cash sales of 1,000,000.00, the most a single amount may
    // be (cost at the policy's default ratio).
    for _ in 0..10 {
        ok(
            &app,
            Command::Sale(Sale {
                shop: "S1".into(),
                household: None,
                lines: vec![],
                amount: Some(Amount::from_yuan(1_000_000)),
                tenders: vec![Tender {
                    kind: TenderType::Cash,
                    amount: Amount::from_yuan(1_000_000),
                    code: None,
                }],
            }),
        )
        .await;
    }

    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&database)
        .expect("url")
        .busy_timeout(std::time::Duration::from_secs(60))
        .connect()
        .await
        .expect("connect");
    let t = Instant::now();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO households (code, compound_id, area_dm2, created_at)
         SELECT printf('H%07d', i), (SELECT id FROM compounds WHERE code = printf('HX%02d', 1 + i % ?2)),
                4500 + (i * 7919) % 9500, '2026-10-01T00:00:00.000000Z' FROM n",
    )
    .bind(n)
    .bind(COMPANIES as i64)
    .execute(&mut conn)
    .await
    .expect("households");
    let seeded = t.elapsed();

    let t = Instant::now();
    for k in 1..=COMPANIES {
        ok(
            &app,
            Command::GenerateBills(GenerateBills {
                company: format!("K{k:02}"),
                month: "2026-10".into(),
            }),
        )
        .await;
    }
    let billing = t.elapsed();

    clock.set(date("2026-11-02"));
    let t = Instant::now();
    let close = ok(
        &app,
        Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: "2026-10".into(),
            dry_run: false,
            estimate: false,
        }),
    )
    .await;
    let closing = t.elapsed();
    let Receipt::MonthClose(close) = close else {
        panic!("not a close")
    };

    // Baseline: N rows written with the same multi-row inserts in one transaction.
    let t = Instant::now();
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("CREATE TABLE baseline (id INTEGER PRIMARY KEY, household INTEGER NOT NULL, amount INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await
        .expect("baseline table");
    let rows: Vec<i64> = (0..n).collect();
    for chunk in rows.chunks(8_000) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO baseline (household, amount) ");
        q.push_values(chunk, |mut b, i| {
            b.push_bind(*i).push_bind(*i % 1000);
        });
        q.build().execute(&mut *tx).await.expect("baseline insert");
    }
    tx.commit().await.expect("commit");
    let baseline = t.elapsed();

    let t = Instant::now();
    let report = app.verify().await.expect("verify");
    let verifying = t.elapsed();
    assert!(report.ok(), "verify failed: {:?}", report.first_problem);
    let _ = PayMethod::Cash;

    println!("month close benchmark, SQLite, {n} households ({COMPANIES} companies)");
    println!(
        "  seed households (SQL)                {:>8.2} s",
        seeded.as_secs_f64()
    );
    println!(
        "  generate bills ({COMPANIES} companies)         {:>8.2} s",
        billing.as_secs_f64()
    );
    println!(
        "  close month 2026-10                  {:>8.2} s   (profit {}, pool {}, allocated {} to {} households, reserve {})",
        closing.as_secs_f64(),
        close.profit,
        close.pool,
        close.allocated,
        close.households,
        close.reserve
    );
    println!(
        "  baseline: insert {n} rows            {:>8.2} s",
        baseline.as_secs_f64()
    );
    println!(
        "  close / baseline                     {:>8.2}",
        closing.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  verify (chain, balances, the close)  {:>8.2} s",
        verifying.as_secs_f64()
    );
}
