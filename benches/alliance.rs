//! The alliance's reports at the programme's scale: 12 compounds, 24 months, 23,000 households
//! (SPEC §1) on SQLite, built through the real write path, then the page's reads and every
//! export timed over HTTP. The target (issue 15): each answers in under 1 s.
//!
//! Run: `cargo bench --bench alliance`. A smaller run for a quick check:
//! `HONGXIN_BENCH_HOUSEHOLDS=600 HONGXIN_BENCH_MONTHS=3 cargo bench --bench alliance`.
//!
//! | variable                  | default | what                                               |
//! |---------------------------|---------|----------------------------------------------------|
//! | `HONGXIN_BENCH_HOUSEHOLDS` | 23000   | households, spread over the compounds               |
//! | `HONGXIN_BENCH_COMPOUNDS`  | 12      | compounds (8 companies, as in the source)           |
//! | `HONGXIN_BENCH_MONTHS`     | 24      | months of history, each billed, paid and closed     |
//! | `HONGXIN_BENCH_ACTIVE`     | 40      | percent of households that top up and shop a month  |
//! | `HONGXIN_BENCH_PAYING`     | 80      | percent of households that pay their fees a month   |
//! | `HONGXIN_BENCH_RUNS`       | 5       | timed requests per endpoint (the slowest is shown)  |
//!
//! Households are inserted with SQL, each with a grid (150 households) and a building (24);
//! everything else (bills, top-ups, wallet and cash sales, fee payments, closes, settlements) is
//! a command through `App::run`, many at once so group commit batches them as a real day's
//! traffic would be. The reports then read what the write path maintained.

use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::{Datelike, Months, NaiveDate};
use hongxin::app::{App, Settings};
use hongxin::clock::Clock;
use hongxin::domain::{
    CloseMonth, Command, Delivery, FeePayment, GenerateBills, NewCompany, NewCompound,
    NewCooperative, NewShop, NewToken, PayMethod, Receipt, Role, Sale, Settlement, Tender,
    TenderType, TopUp,
};
use hongxin::http::extract::token_hash;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;
use sqlx::ConnectOptions;

const COMPANIES: usize = 8;
/// Commands sent at once: enough for group commit to fill its batches.
const IN_FLIGHT: usize = 512;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn ok(app: &App, command: Command) -> Receipt {
    match app.run(command).await {
        Ok(Ok(r)) => r,
        other => panic!("bench setup refused: {other:?}"),
    }
}

/// Runs the commands with up to [`IN_FLIGHT`] at once; counts refusals (a household whose
/// wallet ran short, say) rather than stopping.
async fn run_all(app: &App, commands: Vec<Command>) -> usize {
    let mut refused = 0;
    let mut commands = commands.into_iter();
    loop {
        let chunk: Vec<Command> = commands.by_ref().take(IN_FLIGHT).collect();
        if chunk.is_empty() {
            return refused;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for c in chunk {
            let app = app.clone();
            tasks.spawn(async move { app.run(c).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done.expect("task") {
                Ok(Ok(_)) => {}
                Ok(Err(_)) => refused += 1,
                Err(e) => panic!("store failure: {e}"),
            }
        }
    }
}

/// A cheap, fixed pseudo-random choice: household `h` in month `m`, salt `s`, percent `p`.
fn picked(h: u64, m: u64, s: u64, p: u64) -> bool {
    let x = (h.wrapping_mul(2_654_435_761) ^ m.wrapping_mul(40_503) ^ s.wrapping_mul(97))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 33) % 100 < p
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let households = env("HONGXIN_BENCH_HOUSEHOLDS", 23_000);
    let compounds = env("HONGXIN_BENCH_COMPOUNDS", 12).max(1);
    let months = env("HONGXIN_BENCH_MONTHS", 24).max(1);
    let active = env("HONGXIN_BENCH_ACTIVE", 40);
    let paying = env("HONGXIN_BENCH_PAYING", 80);
    let runs = env("HONGXIN_BENCH_RUNS", 5).max(1);

    let dir = tempfile::tempdir().expect("tempdir");
    let database = format!("sqlite://{}/bench.db", dir.path().display());
    let settings = Settings {
        database: database.clone(),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file: None,
        today: None,
    };
    let first_month = NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.checked_sub_months(Months::new(months as u32)))
        .expect("first month");
    let clock = Clock::manual(first_month);
    let app = App::open_with_clock(&settings, clock.clone())
        .await
        .expect("open");

    let started = Instant::now();
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
    }
    for c in 1..=compounds {
        ok(
            &app,
            Command::CreateCompound(NewCompound {
                code: format!("HX{c:02}"),
                name: format!("小区{c}"),
                company: format!("K{:02}", 1 + (c - 1) as usize % COMPANIES),
                eligible: true,
            }),
        )
        .await;
        ok(
            &app,
            Command::SetCompoundTakeover {
                compound: format!("HX{c:02}"),
                taken_over_on: first_month.checked_add_days(chrono::Days::new(c * 2)),
            },
        )
        .await;
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&database)
        .expect("url")
        .busy_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("connect");
    // Household i lives in compound 1 + i % compounds; within it, a grid of 150 and a building
    // of 24 by its place in the compound.
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO households (code, compound_id, area_dm2, grid, building, created_at)
         SELECT printf('H%06d', i), (SELECT id FROM compounds WHERE code = printf('HX%02d', 1 + i % ?2)),
                4500 + (i * 7919) % 9500, printf('第%d网格', 1 + (i / ?2) / 150),
                printf('%d栋', 1 + (i / ?2) / 24), '2026-01-01T00:00:00.000000Z' FROM n",
    )
    .bind(households as i64)
    .bind(compounds as i64)
    .execute(&mut conn)
    .await
    .expect("households");
    drop(conn);

    let mut refused = 0;
    let mut sales = 0u64;
    for m in 0..months {
        let month_start = first_month
            .checked_add_months(Months::new(m as u32))
            .expect("month");
        let month = format!("{}-{:02}", month_start.year(), month_start.month());
        let day = |d: u64| {
            month_start
                .checked_add_days(chrono::Days::new(d))
                .expect("day")
        };
        // The close of the month before, on the 2nd.
        clock.set(day(1));
        if m > 0 {
            let before = month_start
                .checked_sub_months(Months::new(1))
                .expect("month before");
            ok(
                &app,
                Command::CloseMonth(CloseMonth {
                    cooperative: "COOP".into(),
                    month: format!("{}-{:02}", before.year(), before.month()),
                    dry_run: false,
                    estimate: false,
                }),
            )
            .await;
        }
        for k in 1..=COMPANIES {
            ok(
                &app,
                Command::GenerateBills(GenerateBills {
                    company: format!("K{k:02}"),
                    month: month.clone(),
                }),
            )
            .await;
        }
        // Top-ups on the 5th, shopping on the 12th (a wallet sale, and now and then cash).
        clock.set(day(4));
        let mut commands = Vec::new();
        for h in 0..households {
            if picked(h, m, 1, active) {
                commands.push(Command::TopUp(TopUp {
                    shop: "S1".into(),
                    household: format!("H{h:06}"),
                    paid: Amount::from_yuan(100),
                    method: PayMethod::Cash,
                    deliver: Delivery::Wallet,
                    bonus: Default::default(),
                }));
            }
        }
        refused += run_all(&app, commands).await;
        clock.set(day(11));
        let mut commands = Vec::new();
        for h in 0..households {
            if picked(h, m, 1, active) {
                let amount = Amount::from_yuan(80);
                commands.push(Command::Sale(Sale {
                    shop: "S1".into(),
                    household: Some(format!("H{h:06}")),
                    lines: vec![],
                    amount: Some(amount),
                    tenders: vec![Tender {
                        kind: TenderType::Wallet,
                        amount,
                        code: None,
                    }],
                }));
            }
            if picked(h, m, 2, 10) {
                let amount = Amount::from_yuan(35);
                commands.push(Command::Sale(Sale {
                    shop: "S1".into(),
                    household: None,
                    lines: vec![],
                    amount: Some(amount),
                    tenders: vec![Tender {
                        kind: TenderType::Cash,
                        amount,
                        code: None,
                    }],
                }));
            }
        }
        sales += commands.len() as u64;
        refused += run_all(&app, commands).await;
        // Fee payments on the 20th: most pay the month's fee, a few pay twice as much.
        clock.set(day(19));
        let mut commands = Vec::new();
        for h in 0..households {
            if picked(h, m, 3, paying) {
                let yuan = if picked(h, m, 4, 10) { 100 } else { 50 };
                commands.push(Command::PayFee(FeePayment {
                    household: format!("H{h:06}"),
                    amount: Amount::from_yuan(yuan),
                    method: PayMethod::Wechat,
                    reference: format!("{month}-{h}"),
                    company: None,
                    shop: None,
                }));
            }
        }
        refused += run_all(&app, commands).await;
        // The cooperative settles what it owes each company, on the 25th.
        clock.set(day(24));
        for k in 1..=COMPANIES {
            let _ = app
                .run(Command::Settle(Settlement {
                    cooperative: "COOP".into(),
                    company: format!("K{k:02}"),
                    amount: Amount::from_yuan(10),
                    reference: format!("{month}-K{k:02}"),
                }))
                .await;
        }
        eprintln!(
            "  {month} written ({:.0} s so far)",
            started.elapsed().as_secs_f64()
        );
    }
    let built = started.elapsed();

    let secret = "bench-alliance-token";
    ok(
        &app,
        Command::CreateToken(NewToken {
            parent: None,
            hash: token_hash(secret),
            role: Role::Alliance,
            scope: None,
            label: None,
            expires_at: None,
        }),
    )
    .await;
    let running = Running::start(
        AppState::new(app.clone(), HttpConfig::default()),
        "127.0.0.1:0",
    )
    .await
    .expect("serve");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();

    println!(
        "alliance reports benchmark, SQLite: {households} households, {compounds} compounds, {months} months"
    );
    println!(
        "  built through the write path in {:.1} s ({sales} sales, {refused} commands refused)",
        built.as_secs_f64()
    );
    let head = app.store.head().await.expect("head");
    println!("  journal: {} entries", head.seq);
    let mut paths: Vec<String> = vec![
        "/alliance".into(),
        "/v1/alliance/report".into(),
        "/v1/alliance/summary".into(),
        "/v1/alliance/report?format=xlsx".into(),
    ];
    for table in hongxin::reports::alliance_export::TABLES {
        paths.push(format!("/v1/alliance/report?format=csv&table={table}"));
    }
    paths.push("/v1/reports/prepaid?cooperative=COOP".into());
    let mut slowest_report = Duration::ZERO;
    for path in &paths {
        let mut worst = Duration::ZERO;
        let mut total = Duration::ZERO;
        let mut bytes = 0;
        for _ in 0..runs {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(secret)
                .send()
                .await
                .expect("request");
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await.expect("body").len();
            let took = t.elapsed();
            worst = worst.max(took);
            total += took;
        }
        if path.starts_with("/v1/alliance") || path == "/alliance" {
            slowest_report = slowest_report.max(worst);
        }
        println!(
            "  GET {path:<55} mean {:>7.1} ms   worst {:>7.1} ms   {bytes:>9} bytes",
            total.as_secs_f64() * 1000.0 / runs as f64,
            worst.as_secs_f64() * 1000.0
        );
    }
    println!(
        "  slowest alliance answer {:.1} ms (target: under 1000 ms)",
        slowest_report.as_secs_f64() * 1000.0
    );
    running.shutdown().await.expect("shutdown");
}
