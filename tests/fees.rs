//! Property fees, the month close (合作社盈利用物业), settlements and statements, end to end:
//! through the library's `App` where the numbers are the point, through HTTP where the contract
//! is (status codes, problem+json, content types), and through the binary for the commands.
//!
//! Every test runs on its own database, on each backend (SQLite, and PostgreSQL where a server
//! can be had: see `pg_support`), with a business clock it moves by hand ([`Fx::at`]), so a
//! month can be lived through and then closed. Master data:
//! - cooperative `COOP` with shop `S1`
//! - companies `K01`, `K02`
//! - compounds `HX01` (K01, eligible, 0.55/m²), `HX03` (K01, eligible, the default 0.50/m²),
//!   `HX02` (K02, eligible, 0.60/m²), `HX11` (K01, not eligible, 0.50/m²)
//! - households `H1` (HX01, 87.35 m² → 48.04), `H2` (HX03, 97.09 m² → 48.55),
//!   `H3` (HX02, 80.00 m² → 48.00), `H9` (HX11, 55.50 m² → 27.75)

mod common;
mod http_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use hongxin::app::{App, Settings};
use hongxin::clock::Clock;
use hongxin::domain::{
    BillsReceipt, CloseMonth, CloseReceipt, Command, Delivery, Expense, FeePayment,
    FeePaymentReceipt, GenerateBills, MasterChange, NewCompany, NewCompound, NewCooperative,
    NewHousehold, NewShop, NewToken, PayMethod, Receipt, Rejection, Role, Settlement,
    SettlementReceipt, Subject,
};
use hongxin::http::extract::token_hash;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;

use common::pg_support::{self, TestDatabase};
use common::{cash, date, refused, sale_amount, top_up_request, wallet, y, Backend};
use http_support::{assert_problem, content_type, Reply};

const ADMIN: &str = "fx-admin";
const ACCOUNTANT: &str = "fx-accountant-coop";
const COMPANY_K01: &str = "fx-company-k01";
const COMPANY_K02: &str = "fx-company-k02";
const CASHIER: &str = "fx-cashier-s1";

const TOKENS: &[(&str, Role, Option<&str>)] = &[
    (ADMIN, Role::Admin, None),
    (ACCOUNTANT, Role::CoopAccountant, Some("COOP")),
    (COMPANY_K01, Role::Company, Some("K01")),
    (COMPANY_K02, Role::Company, Some("K02")),
    (CASHIER, Role::Cashier, Some("S1")),
];

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The application on a hand-moved clock, served over HTTP on port 0.
struct Fx {
    backend: Backend,
    app: App,
    clock: Clock,
    settings: Settings,
    base: String,
    client: reqwest::Client,
    running: Option<Running>,
    next_key: AtomicU64,
    dir: tempfile::TempDir,
    /// The PostgreSQL database, dropped when the test ends.
    pg: Option<TestDatabase>,
}

impl Fx {
    async fn new(backend: Backend, today: &str) -> Fx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (database, pg, key_file) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("fees.db").display()),
                None,
                None,
            ),
            Backend::Postgres => {
                let db = pg_support::fresh_database().await;
                (db.url.clone(), Some(db), Some(dir.path().join("keys.toml")))
            }
        };
        let settings = Settings {
            database,
            policies_dir: common::repo_policies(),
            key_file,
            today: None,
        };
        let clock = Clock::manual(date(today));
        let app = App::open_with_clock(&settings, clock.clone())
            .await
            .expect("App::open on a fresh database");
        let fx = Fx {
            backend,
            pg,
            running: None,
            base: String::new(),
            client: reqwest::Client::new(),
            app,
            clock,
            settings,
            next_key: AtomicU64::new(1),
            dir,
        };
        fx.seed().await;
        let running = Running::start(
            AppState::new(fx.app.clone(), HttpConfig::default()),
            "127.0.0.1:0",
        )
        .await
        .expect("start the server on port 0");
        Fx {
            base: format!("http://{}", running.addr),
            running: Some(running),
            ..fx
        }
    }

    async fn seed(&self) {
        let mut commands = vec![Command::CreateCooperative(NewCooperative {
            code: "COOP".into(),
            name: "红心农场合作社".into(),
        })];
        commands.push(Command::CreateShop(NewShop {
            code: "S1".into(),
            name: "一号店".into(),
            cooperative: "COOP".into(),
        }));
        for code in ["K01", "K02"] {
            commands.push(Command::CreateCompany(NewCompany {
                code: code.into(),
                name: format!("物业 {code}"),
            }));
        }
        for (code, company, eligible) in [
            ("HX01", "K01", true),
            ("HX03", "K01", true),
            ("HX02", "K02", true),
            ("HX11", "K01", false),
        ] {
            commands.push(Command::CreateCompound(NewCompound {
                code: code.into(),
                name: format!("小区 {code}"),
                company: company.into(),
                eligible,
            }));
        }
        for (code, compound, area) in [
            ("H1", "HX01", "87.35"),
            ("H2", "HX03", "97.09"),
            ("H3", "HX02", "80.00"),
            ("H9", "HX11", "55.50"),
        ] {
            commands.push(Command::CreateHousehold(NewHousehold {
                code: code.into(),
                compound: compound.into(),
                area_m2: area.parse().expect("area"),
                name: None,
                // H1 is placed in its compound (statements show where), the others are not.
                building: (code == "H1").then(|| "3栋".to_string()),
                grid: (code == "H1").then(|| "第2网格".to_string()),
            }));
        }
        for (secret, role, scope) in TOKENS {
            commands.push(Command::CreateToken(NewToken {
                parent: None,
                hash: token_hash(secret),
                role: *role,
                scope: scope.map(str::to_string),
                label: None,
                expires_at: None,
            }));
        }
        for c in commands {
            let what = format!("{c:?}");
            match self.run(c).await {
                Ok(Receipt::Created(_)) => {}
                other => panic!("seeding {what}: {other:?}"),
            }
        }
    }

    /// Moves the business clock (forward only, as the ledger would anyway).
    fn at(&self, day: &str) {
        self.clock.set(date(day));
    }

    async fn run(&self, command: Command) -> Result<Receipt, Rejection> {
        self.app.run(command).await.expect("the store failed")
    }

    async fn bills(&self, company: &str, month: &str) -> BillsReceipt {
        match self
            .run(Command::GenerateBills(GenerateBills {
                company: company.into(),
                month: month.into(),
            }))
            .await
        {
            Ok(Receipt::Bills(r)) => r,
            other => panic!("bills {company} {month}: {other:?}"),
        }
    }

    /// Bills both companies for every month from `from` to `to` (both `YYYY-MM` of one year).
    async fn bill_months(&self, year: i32, from: u32, to: u32) {
        for m in from..=to {
            for company in ["K01", "K02"] {
                self.bills(company, &format!("{year}-{m:02}")).await;
            }
        }
    }

    /// Moves `compound` to `company` from `month` (a master data change).
    async fn move_compound(&self, compound: &str, company: &str, month: &str) {
        match self
            .run(Command::ChangeMasterData(MasterChange {
                subject: Subject::Compound,
                code: compound.into(),
                field: "company".into(),
                value: company.into(),
                effective_from: Some(month.into()),
            }))
            .await
        {
            Ok(Receipt::MasterChanged(_)) => {}
            other => panic!("move {compound} to {company}: {other:?}"),
        }
    }

    async fn pay(&self, household: &str, amount: &str) -> Result<FeePaymentReceipt, Rejection> {
        self.run(Command::PayFee(FeePayment {
            household: household.into(),
            amount: y(amount),
            method: PayMethod::Cash,
            reference: format!("receipt {household} {amount}"),
            company: None,
            shop: None,
        }))
        .await
        .map(|r| match r {
            Receipt::FeePayment(r) => r,
            other => panic!("a payment answered {other:?}"),
        })
    }

    /// Tops `household` up with `paid` in cash and spends `spend` of it from the wallet.
    async fn top_up_and_spend(&self, household: &str, paid: &str, spend: &str) {
        let r = self
            .run(Command::TopUp(top_up_request(
                household,
                paid,
                Delivery::Wallet,
            )))
            .await;
        assert!(
            matches!(r, Ok(Receipt::TopUp(_))),
            "top-up {household}: {r:?}"
        );
        if y(spend).is_positive() {
            let r = self
                .run(Command::Sale(sale_amount(
                    Some(household),
                    spend,
                    vec![wallet(spend)],
                )))
                .await;
            assert!(matches!(r, Ok(Receipt::Sale(_))), "sale {household}: {r:?}");
        }
    }

    /// An anonymous cash sale, costed at the policy's 70%.
    async fn cash_sale(&self, amount: &str) {
        let r = self
            .run(Command::Sale(sale_amount(None, amount, vec![cash(amount)])))
            .await;
        assert!(matches!(r, Ok(Receipt::Sale(_))), "cash sale: {r:?}");
    }

    async fn expense(&self, amount: &str, incurred: &str) -> Result<Receipt, Rejection> {
        self.run(Command::Expense(Expense {
            cooperative: "COOP".into(),
            category: "rent".into(),
            amount: y(amount),
            date: date(incurred),
            memo: None,
            method: PayMethod::Cash,
        }))
        .await
    }

    async fn close(&self, month: &str, dry_run: bool) -> Result<CloseReceipt, Rejection> {
        self.run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: month.into(),
            dry_run,
            estimate: false,
        }))
        .await
        .map(|r| match r {
            Receipt::MonthClose(r) => r,
            other => panic!("a close answered {other:?}"),
        })
    }

    async fn settle(&self, company: &str, amount: &str) -> Result<SettlementReceipt, Rejection> {
        self.run(Command::Settle(Settlement {
            cooperative: "COOP".into(),
            company: company.into(),
            amount: y(amount),
            reference: format!("bank {company} {amount}"),
        }))
        .await
        .map(|r| match r {
            Receipt::Settlement(r) => r,
            other => panic!("a settlement answered {other:?}"),
        })
    }

    async fn balances(&self) -> BTreeMap<String, Amount> {
        self.app.store.balances().await.expect("the store failed")
    }

    async fn balance(&self, path: &str) -> Amount {
        self.balances()
            .await
            .get(path)
            .copied()
            .unwrap_or(Amount::ZERO)
    }

    /// What each month close credited the household: (cooperative, month, amount).
    async fn close_credits(&self, household: &str) -> Vec<(String, String, Amount)> {
        self.app
            .store
            .household_close_credits(household)
            .await
            .expect("the store failed")
    }

    async fn fees(&self, household: &str) -> Amount {
        self.balance(&format!("household:{household}:fees")).await
    }

    async fn head(&self) -> i64 {
        self.app.store.head().await.expect("the store failed").seq
    }

    /// The October of the worked example, lived on 2026-10-05: bills for January to October
    /// (so every household owes far more than its share), three households who each top up
    /// 1000.00 (1100.00 of credit, 300.00 of promotion in all) and spend 1000.00 of it, a
    /// 5000.00 cash sale, and rent of `rent`. Profit = 8000.00 − 5600.00 − 300.00 − rent.
    async fn october(&self, rent: &str) {
        self.at("2026-10-05");
        self.bill_months(2026, 1, 10).await;
        for h in ["H1", "H2", "H3"] {
            self.top_up_and_spend(h, "1000.00", "1000.00").await;
        }
        self.cash_sale("5000.00").await;
        assert!(self.expense(rent, "2026-10-05").await.is_ok());
    }

    // ---- HTTP ----

    fn key(&self) -> String {
        format!("fx-{}", self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    async fn send(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body, headers)
    }

    async fn post(&self, token: &str, path: &str, body: Value, key: Option<&str>) -> Reply {
        Fx::reply(self.send(Method::POST, token, path, Some(body), key).await).await
    }

    async fn post_keyed(&self, token: &str, path: &str, body: Value) -> Reply {
        let key = self.key();
        self.post(token, path, body, Some(&key)).await
    }

    async fn get(&self, token: &str, path: &str) -> Reply {
        Fx::reply(self.send(Method::GET, token, path, None, None).await).await
    }

    async fn get_ok(&self, token: &str, path: &str) -> Value {
        let (status, body, _) = self.get(token, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn get_bytes(&self, token: &str, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let r = self.send(Method::GET, token, path, None, None).await;
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.bytes().await.expect("body").to_vec())
    }

    /// Stops the server and the application, leaving the database (and the directory with its
    /// key file) for the command line.
    async fn stop(mut self) -> (tempfile::TempDir, Settings, Option<TestDatabase>) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("graceful shutdown");
        }
        (self.dir, self.settings, self.pg)
    }
}

/// Of these households, the one the allocator's tie-break gives an extra fen to first: the
/// smallest SHA-256(seed ‖ household code).
fn tie_winner<'a>(households: &[&'a str], seed: &str) -> &'a str {
    households
        .iter()
        .min_by_key(|h| {
            let mut hash = Sha256::new();
            hash.update(seed.as_bytes());
            hash.update(h.as_bytes());
            hash.finalize().to_vec()
        })
        .copied()
        .expect("households")
}

fn a(v: &Value) -> Amount {
    Amount::parse(v.as_str().unwrap_or_else(|| panic!("not an amount: {v}")))
        .unwrap_or_else(|e| panic!("not an amount: {v}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Bills

async fn a_month_so_far_is_estimated_as_its_close_would_compute_it(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;
    // A month that has not begun has nothing to estimate.
    let reply = fx
        .get(ACCOUNTANT, "/v1/months/2026-11/close?estimate=true")
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    // On its last day, the month so far: a dry run marked with the day it runs to.
    fx.at("2026-10-31");
    let (status, estimate, _) = fx
        .get(ACCOUNTANT, "/v1/months/2026-10/close?estimate=true")
        .await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    assert_eq!(estimate["estimated_to"], json!("2026-10-31"));
    assert_eq!(estimate["dry_run"], json!(true));
    assert_eq!(estimate["entry"], json!(null));
    // 8,000.00 sold less its cost, the promotion and 433.33 rent: the profit so far.
    let profit = |v: &Value| {
        let f = |k: &str| -> i64 {
            let s = v[k].as_str().expect(k);
            let (w, c) = s.split_once('.').expect("amount");
            let sign = if w.starts_with('-') { -1 } else { 1 };
            sign * (w.trim_start_matches('-').parse::<i64>().unwrap() * 100
                + c.parse::<i64>().unwrap())
        };
        f("sales") - f("cogs") - f("promotion") - f("expenses")
    };
    assert_eq!(
        json!(hongxin::money::Amount::from_fen(profit(&estimate)).to_string()),
        estimate["profit"]
    );
    assert_eq!(estimate["expenses"], json!("433.33"));
    // Nothing was posted: the month still closes, and its close computes what the estimate
    // said, to the fen.
    fx.at("2026-11-02");
    let (status, closed, _) = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{closed}");
    for key in [
        "sales",
        "cogs",
        "promotion",
        "expenses",
        "profit",
        "distributed",
        "reserve_in",
        "pool",
        "allocated",
        "reserve",
        "households",
        "companies",
    ] {
        assert_eq!(closed[key], estimate[key], "{key}");
    }
    assert_eq!(closed.get("estimated_to"), None);
    // An estimate is a dry run only.
    let r = fx
        .run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: "2026-11".into(),
            dry_run: false,
            estimate: true,
        }))
        .await;
    assert!(
        matches!(&r, Err(Rejection::InvalidInput { field, .. }) if field == "estimate"),
        "{r:?}"
    );
}

async fn bills_follow_the_schedule_and_a_month_is_billed_once(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    // HX01 charges 0.55/m²: 87.35 × 0.55 = 48.0425 → 48.04. HX03 has no schedule of its own,
    // so the default 0.50/m²: 97.09 × 0.50 = 48.545 → 48.55 (half-up; half-even would give
    // 48.54). HX11: 55.50 × 0.50 = 27.75.
    let (status, r, _) = fx
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["count"], json!(3));
    assert_eq!(r["total"], json!("124.34"));
    assert_eq!(r["policy"], json!("property-fees@1"));
    assert_eq!(fx.fees("H1").await, y("48.04"));
    assert_eq!(fx.fees("H2").await, y("48.55"));
    assert_eq!(fx.fees("H9").await, y("27.75"));
    assert_eq!(fx.balance("company:K01:fee_revenue").await, y("124.34"));
    // HX02 charges 0.60/m²: 80.00 × 0.60 = 48.00.
    let (status, r, _) = fx
        .post_keyed(
            ADMIN,
            "/v1/fees/bills",
            json!({ "month": "2026-11", "company": "K02" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["count"].clone(), r["total"].clone()),
        (json!(1), json!("48.00"))
    );

    // A second run of the month bills nobody and leaves every balance as it was.
    let before = (fx.balances().await, fx.head().await);
    let (status, r, _) = fx
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["count"].clone(), r["total"].clone()),
        (json!(0), json!("0.00"))
    );
    assert_eq!(r["entry"], Value::Null);
    let again = fx.bills("K02", "2026-11").await;
    assert_eq!(
        (again.count, again.total, again.entry),
        (0, Amount::ZERO, None)
    );
    assert_eq!((fx.balances().await, fx.head().await), before);

    // Who may bill what.
    let reply = fx
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/bills",
            json!({ "month": "2026-11", "company": "K02" }),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post_keyed(ADMIN, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("company"),
    );
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post(
            COMPANY_K01,
            "/v1/fees/bills",
            json!({ "month": "2026-11" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    // A month not yet begun, and a malformed one.
    let reply = fx
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-12" }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    let reply = fx
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-1" }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    assert!(fx.app.verify().await.expect("verify").ok());
}

// ---------------------------------------------------------------------------------------------
// Payments

async fn payments_go_to_the_oldest_bill_first_and_the_rest_is_prepaid(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    for month in ["2026-09", "2026-10", "2026-11"] {
        fx.bills("K01", month).await;
    }
    assert_eq!(fx.fees("H1").await, y("144.12"));

    // 60.00 pays September's 48.04 and 11.96 of October's.
    let (status, r, _) = fx
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": "60.00", "method": "cash", "reference": "R-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        r["applied"],
        json!([{ "month": "2026-09", "amount": "48.04" }, { "month": "2026-10", "amount": "11.96" }])
    );
    assert_eq!(
        (r["prepaid"].clone(), r["balance"].clone()),
        (json!("0.00"), json!("84.12"))
    );

    // 100.00 pays the rest of October, all of November and 15.88 ahead.
    let r = fx.pay("H1", "100.00").await.expect("payment");
    let applied: Vec<(String, Amount)> = r
        .applied
        .iter()
        .map(|b| (b.month.clone(), b.amount))
        .collect();
    assert_eq!(
        applied,
        vec![
            ("2026-10".to_string(), y("36.08")),
            ("2026-11".to_string(), y("48.04"))
        ]
    );
    assert_eq!((r.prepaid, r.balance), (y("15.88"), y("-15.88")));
    assert!(fx
        .app
        .store
        .open_bills("H1", None)
        .await
        .unwrap()
        .is_empty());
    let h1 = fx.get_ok(COMPANY_K01, "/v1/households/H1").await;
    assert_eq!(
        h1["fees"],
        json!({
            "balance": "-15.88", "arrears": "0.00", "prepaid": "15.88",
            "arrears_by_age": { "0-30": "0.00", "31-90": "0.00", "91-180": "0.00", "over-180": "0.00" }
        })
    );

    // December's bill is settled by the money paid ahead as soon as it is made.
    fx.at("2026-12-01");
    fx.bills("K01", "2026-12").await;
    assert_eq!(fx.fees("H1").await, y("32.16"));
    assert_eq!(
        fx.app.store.open_bills("H1", None).await.unwrap(),
        vec![("2026-12".to_string(), y("48.04"), y("15.88"))]
    );
    // The next payment starts with what is left of December.
    let r = fx.pay("H1", "32.16").await.expect("payment");
    assert_eq!(r.applied.len(), 1);
    assert_eq!(
        (r.applied[0].month.as_str(), r.applied[0].amount),
        ("2026-12", y("32.16"))
    );
    assert_eq!(r.balance, Amount::ZERO);

    // A company records payments for its own households only: another's is not there.
    let body =
        json!({ "household": "H1", "amount": "10.00", "method": "cash", "reference": "R-9" });
    let reply = fx
        .post_keyed(COMPANY_K02, "/v1/fees/payments", body.clone())
        .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("household"),
    );
    let reply = fx
        .post_keyed(CASHIER, "/v1/fees/payments", body.clone())
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": "0", "method": "cash", "reference": "R-0" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    let reply = fx
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": "1.001", "method": "cash", "reference": "R-0" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    // The same key and body replays the first answer and posts nothing new.
    let key = fx.key();
    let first = fx
        .post(COMPANY_K01, "/v1/fees/payments", body.clone(), Some(&key))
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let head = fx.head().await;
    let again = fx
        .post(COMPANY_K01, "/v1/fees/payments", body, Some(&key))
        .await;
    assert_eq!((again.0, &again.1), (StatusCode::CREATED, &first.1));
    assert_eq!(fx.head().await, head);
    assert_eq!(fx.fees("H1").await, y("-10.00"));
}

async fn arrears_are_aged_by_the_month_of_each_bill(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    // On 2026-11-16 these bills are 229 (April), 138 (July), 76 (September) and 15 (November)
    // days old: one in each bucket.
    for month in ["2026-04", "2026-07", "2026-09", "2026-11"] {
        fx.bills("K01", month).await;
    }
    // H2 pays 50.00: all of April (48.55) and 1.45 of July.
    fx.pay("H2", "50.00").await.expect("payment");

    let r = fx.get_ok(COMPANY_K01, "/v1/companies/K01/arrears").await;
    assert_eq!(r["as_of"], json!("2026-11-16"));
    assert_eq!(r["buckets"], json!(["0-30", "31-90", "91-180", "over-180"]));
    assert_eq!(
        r["households"],
        json!([
            { "household": "H1", "oldest": "2026-04", "bills": 4, "total": "192.16",
              "by_age": { "0-30": "48.04", "31-90": "48.04", "91-180": "48.04", "over-180": "48.04" } },
            { "household": "H2", "oldest": "2026-07", "bills": 3, "total": "144.20",
              "by_age": { "0-30": "48.55", "31-90": "48.55", "91-180": "47.10", "over-180": "0.00" } },
            { "household": "H9", "oldest": "2026-04", "bills": 4, "total": "111.00",
              "by_age": { "0-30": "27.75", "31-90": "27.75", "91-180": "27.75", "over-180": "27.75" } },
        ])
    );
    assert_eq!(
        r["by_age"],
        json!({ "0-30": "124.34", "31-90": "124.34", "91-180": "122.89", "over-180": "75.79" })
    );
    assert_eq!(r["total"], json!("447.36"));
    // The arrears are the households' fee balances, to the fen.
    let owed = fx.fees("H1").await.fen() + fx.fees("H2").await.fen() + fx.fees("H9").await.fen();
    assert_eq!(a(&r["total"]).fen(), owed);

    // The household view carries the same buckets.
    let h2 = fx.get_ok(ADMIN, "/v1/households/H2").await;
    assert_eq!(h2["fees"]["arrears"], json!("144.20"));
    assert_eq!(
        h2["fees"]["arrears_by_age"],
        json!({ "0-30": "48.55", "31-90": "48.55", "91-180": "47.10", "over-180": "0.00" })
    );

    // Another company's arrears do not exist for K02; an admin sees them; nobody else.
    let reply = fx.get(COMPANY_K02, "/v1/companies/K01/arrears").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(fx.get_ok(ADMIN, "/v1/companies/K01/arrears").await, r);
    let reply = fx.get(CASHIER, "/v1/companies/K01/arrears").await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx.get(ADMIN, "/v1/companies/K99/arrears").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    // K02 has billed nothing: no arrears.
    let none = fx.get_ok(COMPANY_K02, "/v1/companies/K02/arrears").await;
    assert_eq!(
        (none["households"].clone(), none["total"].clone()),
        (json!([]), json!("0.00"))
    );
}

// ---------------------------------------------------------------------------------------------
// Month close

async fn a_thousand_is_shared_by_three_equal_spenders_and_the_tie_break_picks_the_extra_fen(
    backend: Backend,
) {
    let fx = Fx::new(backend, "2026-10-01").await;
    // Profit 8000.00 − 5600.00 − 300.00 − 433.33 = 1666.67; × 0.60 = 1000.002 → 1000.00.
    fx.october("433.33").await;
    let owed: Vec<Amount> = vec![
        fx.fees("H1").await,
        fx.fees("H2").await,
        fx.fees("H3").await,
    ];
    assert_eq!(owed, vec![y("480.40"), y("485.50"), y("480.00")]);

    fx.at("2026-11-02");
    let head = fx.head().await;
    // A dry run answers 200 and posts nothing.
    let (status, dry, _) = fx
        .post_keyed(
            ACCOUNTANT,
            "/v1/months/2026-10/close",
            json!({ "dry_run": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(dry["entry"], Value::Null);
    assert_eq!(fx.head().await, head);
    let preview = fx.get_ok(ACCOUNTANT, "/v1/months/2026-10/close").await;
    assert_eq!(preview, dry);
    assert_eq!(fx.head().await, head);

    let (status, r, _) = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    for (field, value) in [
        ("sales", "8000.00"),
        ("cogs", "5600.00"),
        ("promotion", "300.00"),
        ("expenses", "433.33"),
        ("profit", "1666.67"),
        ("loss_carried_in", "0.00"),
        ("loss_carried_out", "0.00"),
        ("distributed", "1000.00"),
        ("reserve_in", "0.00"),
        ("pool", "1000.00"),
        ("allocated", "1000.00"),
        ("reserve", "0.00"),
    ] {
        assert_eq!(r[field], json!(value), "{field} of {r}");
    }
    assert_eq!(r["households"], json!(3));
    assert_eq!(r["basis"], json!("credit_spend"));
    assert_eq!(r["policy"], json!("coop-profit-to-fees@1"));
    assert!(r["entry"].as_i64().is_some(), "{r}");
    // The dry run said the same, but for what a dry run cannot know.
    let mut expected = r.clone();
    expected["dry_run"] = json!(true);
    expected["entry"] = Value::Null;
    assert_eq!(dry, expected);

    // 1000.00 / 3 = 333.33⅓ each: two get 333.33 and the tie-break's first pick 333.34.
    let winner = tie_winner(
        &["H1", "H2", "H3"],
        &hongxin::fees::close_seed("COOP", "2026-10"),
    );
    let share = |h: &str| {
        if h == winner {
            y("333.34")
        } else {
            y("333.33")
        }
    };
    for (h, before) in ["H1", "H2", "H3"].into_iter().zip(&owed) {
        assert_eq!(
            fx.fees(h).await,
            before.checked_sub(share(h)).unwrap(),
            "{h} (the extra fen went to {winner})"
        );
    }
    let k01 = share("H1").checked_add(share("H2")).unwrap();
    assert_eq!(
        r["companies"],
        json!([
            { "company": "K01", "households": 2, "amount": k01.to_string() },
            { "company": "K02", "households": 1, "amount": share("H3").to_string() },
        ])
    );
    // The allocation settles the oldest bills first: six of H1's 48.04 bills (288.24) and
    // part of July's.
    let open = fx.app.store.open_bills("H1", None).await.unwrap();
    assert_eq!(open.len(), 4);
    assert_eq!(open[0].0, "2026-07");
    assert_eq!(open[0].2, share("H1").checked_sub(y("288.24")).unwrap());

    // The pool is owed to the companies.
    assert_eq!(fx.balance("cooperative:COOP:due_to:K01").await, k01);
    assert_eq!(fx.balance("company:K01:due_from:COOP").await, k01);
    assert_eq!(fx.balance("cooperative:COOP:due_to:K02").await, share("H3"));

    // Closing again answers the first result and posts nothing, by HTTP and by the library.
    let head = fx.head().await;
    let (status, again, _) = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_eq!((status, &again), (StatusCode::CREATED, &r));
    let again = fx.close("2026-10", false).await.expect("close again");
    assert_eq!(serde_json::to_value(&again).unwrap(), r);
    // Once closed, the preview is the stored result.
    assert_eq!(
        fx.get_ok(ADMIN, "/v1/months/2026-10/close?cooperative=COOP")
            .await,
        r
    );
    assert_eq!(fx.head().await, head);

    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 1);
}

async fn a_household_owing_less_than_its_share_gets_what_it_owes_and_the_rest_is_reallocated(
    backend: Backend,
) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;
    // H1 pays down to 100.00 owed: its share is capped there.
    fx.pay("H1", "380.40").await.expect("payment");
    assert_eq!(fx.fees("H1").await, y("100.00"));

    fx.at("2026-11-02");
    let r = fx.close("2026-10", false).await.expect("close");
    assert_eq!(
        (r.pool, r.allocated, r.reserve),
        (y("1000.00"), y("1000.00"), Amount::ZERO)
    );
    // H1 gets exactly what it owes; the other two split the remaining 900.00.
    assert_eq!(fx.fees("H1").await, Amount::ZERO);
    assert_eq!(fx.fees("H2").await, y("35.50"));
    assert_eq!(fx.fees("H3").await, y("30.00"));
    assert!(fx
        .app
        .store
        .open_bills("H1", None)
        .await
        .unwrap()
        .is_empty());

    // November: the same trading, but now everybody owes less than a third of the pool.
    fx.bill_months(2026, 11, 11).await;
    let caps = [y("48.04"), y("84.05"), y("78.00")];
    for (h, cap) in ["H1", "H2", "H3"].iter().zip(caps) {
        assert_eq!(fx.fees(h).await, cap);
    }
    for h in ["H1", "H2", "H3"] {
        fx.top_up_and_spend(h, "1000.00", "1000.00").await;
    }
    fx.cash_sale("5000.00").await;
    fx.expense("433.33", "2026-11-02").await.expect("expense");
    fx.at("2026-12-01");
    let r = fx.close("2026-11", false).await.expect("close");
    // Each is capped at what it owes; what no one can take goes to the reserve.
    assert_eq!(
        (r.distributed, r.reserve_in, r.pool),
        (y("1000.00"), Amount::ZERO, y("1000.00"))
    );
    assert_eq!(r.allocated, y("210.09"));
    assert_eq!(r.reserve, y("789.91"));
    for h in ["H1", "H2", "H3"] {
        assert_eq!(fx.fees(h).await, Amount::ZERO, "{h}");
    }
    assert_eq!(
        fx.balance("cooperative:COOP:allocation_reserve").await,
        y("789.91")
    );

    // December: no eligible spending at all, a cash sale of 1000.00 (profit 300.00, 180.00 to
    // the pool). The reserve is carried in, and with no one to share it, all goes back.
    fx.bill_months(2026, 12, 12).await;
    fx.cash_sale("1000.00").await;
    fx.at("2027-01-04");
    let r = fx.close("2026-12", false).await.expect("close");
    assert_eq!(r.profit, y("300.00"));
    assert_eq!((r.distributed, r.reserve_in), (y("180.00"), y("789.91")));
    assert_eq!(
        (r.pool, r.allocated, r.reserve),
        (y("969.91"), Amount::ZERO, y("969.91"))
    );
    assert_eq!((r.households, r.companies.len()), (0, 0));
    assert_eq!(
        fx.balance("cooperative:COOP:allocation_reserve").await,
        y("969.91")
    );
    // Nobody's fees moved.
    assert_eq!(fx.fees("H1").await, y("48.04"));

    // January: H1 alone spends; the carried reserve is in the pool it is capped from.
    fx.top_up_and_spend("H1", "50.00", "20.00").await;
    fx.at("2027-02-01");
    let r = fx.close("2027-01", false).await.expect("close");
    assert_eq!(r.profit, y("1.00")); // 20.00 − 14.00 − 5.00
    assert_eq!((r.distributed, r.reserve_in), (y("0.60"), y("969.91")));
    assert_eq!((r.allocated, r.reserve), (y("48.04"), y("922.47")));
    assert_eq!(fx.fees("H1").await, Amount::ZERO);

    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 4);
}

/// A close over more households than the stores post one at a time (their bulk paths start
/// above 64 postings), run from a freshly opened app as `hongxin close-month` would be: every
/// share reaches its household's fees, the heavy spenders are capped at what they owe, each
/// credit settles that household's bills oldest first, and a repeat answers the same.
async fn a_close_over_many_households_settles_every_share_oldest_bill_first(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-01").await;
    // 150 households of 90.00 m²: 49.50 a month in HX01 (K01), 54.00 in HX02 (K02).
    let codes: Vec<String> = (1..=150).map(|i| format!("G{i:03}")).collect();
    for (i, code) in codes.iter().enumerate() {
        let r = fx
            .run(Command::CreateHousehold(NewHousehold {
                code: code.clone(),
                compound: if i % 2 == 0 { "HX01" } else { "HX02" }.into(),
                area_m2: "90.00".parse().expect("area"),
                name: None,
                building: None,
                grid: None,
            }))
            .await;
        assert!(matches!(r, Ok(Receipt::Created(_))), "{code}: {r:?}");
    }
    fx.bill_months(2026, 9, 9).await;
    fx.at("2026-10-05");
    fx.bill_months(2026, 10, 10).await;
    // G001 paid part of September; G003 paid both months and 100.00 ahead (owes nothing).
    fx.pay("G001", "20.00").await.expect("payment");
    fx.pay("G003", "203.50").await.expect("payment");
    // The first hundred spend 10.00 to 70.00 from their wallets; the rest nothing.
    for (i, code) in codes.iter().take(100).enumerate() {
        let spend = format!("{}.00", 10 * (i % 7 + 1));
        fx.top_up_and_spend(code, "100.00", &spend).await;
    }
    fx.cash_sale("50000.00").await;
    let mut before = BTreeMap::new();
    for code in &codes {
        let bills = fx.app.store.open_bills(code, None).await.expect("bills");
        before.insert(code.clone(), (fx.fees(code).await, bills));
    }

    fx.at("2026-11-02");
    let fresh = App::open_with_clock(&fx.settings, fx.clock.clone())
        .await
        .expect("a second app on the same database");
    let r = match fresh
        .run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: "2026-10".into(),
            dry_run: false,
            estimate: false,
        }))
        .await
        .expect("the store failed")
    {
        Ok(Receipt::MonthClose(r)) => r,
        other => panic!("a close answered {other:?}"),
    };
    assert!(r.households > 64, "{r:?}");
    assert_eq!(r.allocated.fen() + r.reserve.fen(), r.pool.fen(), "{r:?}");

    let mut credited = 0i64;
    let mut capped = 0;
    for (i, code) in codes.iter().enumerate() {
        let (fees_before, bills_before) = &before[code];
        let credit = fees_before.fen() - fx.fees(code).await.fen();
        credited += credit;
        let owed = fees_before.fen().max(0);
        assert!(credit >= 0 && credit <= owed, "{code}: {credit} of {owed}");
        if i >= 100 || code == "G003" {
            assert_eq!(credit, 0, "{code} spent nothing or owes nothing");
        } else if credit == owed {
            capped += 1;
        } else {
            assert!(credit > 0, "{code} spent and owes, so gets a share");
        }
        // The credit went to the oldest bill first.
        let mut left = credit;
        let mut expected = Vec::new();
        for (month, amount, settled) in bills_before {
            let take = (amount.fen() - settled.fen()).min(left);
            left -= take;
            let settled = Amount::from_fen(settled.fen() + take);
            if settled < *amount {
                expected.push((month.clone(), *amount, settled));
            }
        }
        assert_eq!(
            fx.app.store.open_bills(code, None).await.expect("bills"),
            expected,
            "{code}"
        );
    }
    assert_eq!(credited, r.allocated.fen());
    assert!(capped > 0, "the heavy spenders reach their caps: {r:?}");
    assert_eq!(
        r.companies.iter().map(|c| c.amount.fen()).sum::<i64>(),
        r.allocated.fen()
    );

    // Closing again, from the first app, answers the stored result and posts nothing.
    let head = fx.head().await;
    assert_eq!(fx.close("2026-10", false).await.expect("again"), r);
    assert_eq!(fx.head().await, head);
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 1);
}

async fn a_loss_is_carried_forward_against_the_next_profit(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-01").await;
    fx.at("2026-09-10");
    fx.expense("200.00", "2026-09-10").await.expect("expense");
    fx.at("2026-10-01");
    let r = fx.close("2026-09", false).await.expect("close");
    assert_eq!(
        (r.profit, r.loss_carried_in, r.loss_carried_out),
        (y("-200.00"), Amount::ZERO, y("200.00"))
    );
    assert_eq!(
        (r.distributed, r.pool, r.allocated, r.reserve),
        (Amount::ZERO, Amount::ZERO, Amount::ZERO, Amount::ZERO)
    );
    // The close posts nothing, but it is an entry of the journal all the same (the closed-month
    // rule, docs/architecture.md).
    assert!(r.entry.is_some(), "{r:?}");
    assert_eq!(r.households, 0);

    // October earns 1866.67; 200.00 of it makes good September's loss; 1666.67 × 0.60 is the
    // pool.
    fx.october("233.33").await;
    fx.at("2026-11-02");
    let r = fx.close("2026-10", false).await.expect("close");
    assert_eq!(r.profit, y("1866.67"));
    assert_eq!(
        (r.loss_carried_in, r.loss_carried_out),
        (y("200.00"), Amount::ZERO)
    );
    assert_eq!(
        (r.distributed, r.pool, r.allocated),
        (y("1000.00"), y("1000.00"), y("1000.00"))
    );

    // A loss larger than the next profit is carried on, smaller.
    fx.expense("100.00", "2026-11-02").await.expect("expense");
    fx.at("2026-12-01");
    let r = fx.close("2026-11", false).await.expect("close");
    assert_eq!(
        (r.profit, r.loss_carried_in, r.loss_carried_out),
        (y("-100.00"), Amount::ZERO, y("100.00"))
    );
    fx.cash_sale("100.00").await; // profit 30.00
    fx.at("2027-01-02");
    let r = fx.close("2026-12", false).await.expect("close");
    assert_eq!(
        (r.profit, r.loss_carried_in, r.loss_carried_out),
        (y("30.00"), y("100.00"), y("70.00"))
    );
    assert_eq!(r.pool, Amount::ZERO);
    assert!(fx.app.verify().await.expect("verify").ok());
}

/// The closed-month rule: a close is an entry of the journal even when it posts nothing (a loss
/// month), and business dates never run backwards along the chain, so with the clock set back
/// into the closed month a top-up and a sale are dated forward, after it. Before the rule, the
/// loss month's close left the journal's date where it was and both landed in September.
async fn nothing_lands_in_a_month_closed_at_a_loss_even_with_the_clock_set_back(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-01").await;
    fx.at("2026-09-10");
    fx.expense("200.00", "2026-09-10").await.expect("expense");
    fx.at("2026-10-01");
    let r = fx.close("2026-09", false).await.expect("close");
    assert_eq!(r.loss_carried_out, y("200.00"));
    assert_eq!((r.pool, r.households), (Amount::ZERO, 0));
    let close_entry = r
        .entry
        .expect("a close that posts nothing is still an entry");
    assert_eq!(fx.head().await, close_entry);

    // A server whose clock is behind (a skewed host, `--today`, a cron job on the 1st).
    fx.at("2026-09-20");
    let topup = match fx
        .run(Command::TopUp(top_up_request(
            "H1",
            "100.00",
            Delivery::Wallet,
        )))
        .await
    {
        Ok(Receipt::TopUp(t)) => t,
        other => panic!("top-up: {other:?}"),
    };
    let sale = match fx
        .run(Command::Sale(sale_amount(
            Some("H1"),
            "50.00",
            vec![wallet("50.00")],
        )))
        .await
    {
        Ok(Receipt::Sale(s)) => s,
        other => panic!("sale: {other:?}"),
    };
    assert_eq!(topup.business_date, date("2026-10-01"));
    assert_eq!(sale.business_date, date("2026-10-01"));
    assert!(topup.entry > close_entry && sale.entry > topup.entry);
    let history = fx
        .app
        .store
        .history("H1", None, 10)
        .await
        .expect("history")
        .expect("H1");
    assert_eq!(history.items.len(), 2);
    for item in &history.items {
        assert_eq!(item.business_date, date("2026-10-01"), "{item:?}");
    }
    // An expense naming a date in the closed month is still refused.
    assert_eq!(
        fx.expense("10.00", "2026-09-15").await.unwrap_err(),
        Rejection::PeriodClosed {
            month: "2026-09".into()
        }
    );
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 1);
    // The Beancount export keeps the close that posted nothing, as an event.
    let mut exported = Vec::new();
    hongxin::export::beancount::export(fx.app.store.as_ref(), &mut exported, None, &|_| {})
        .await
        .expect("export");
    let exported = String::from_utf8(exported).expect("utf-8");
    assert!(
        exported.contains("2026-10-01 event \"profit_allocation\" \"COOP profit 2026-09"),
        "{exported}"
    );

    // October's close reads September's loss back in: the sale's margin is in October.
    fx.at("2026-11-01");
    let r = fx.close("2026-10", false).await.expect("close");
    assert_eq!(r.sales, y("50.00"));
    assert_eq!(r.loss_carried_in, y("200.00"));
}

/// The closed-month rule with two writers on one database (a second server process, or a tool,
/// whose clock is behind): what the second posts after the close is dated after the closed month
/// too, because it extends the same chain.
async fn a_second_writer_with_its_clock_behind_dates_forward_after_a_close(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-01").await;
    // The master data the fixture made (entries without postings).
    let seeded = fx.app.verify().await.expect("verify").entries;
    fx.at("2026-09-10");
    fx.expense("200.00", "2026-09-10").await.expect("expense");
    // The second writer opens before the close, with a clock still in September.
    let behind = App::open_with_clock(&fx.settings, Clock::manual(date("2026-09-25")))
        .await
        .expect("a second writer");
    fx.at("2026-10-01");
    let r = fx.close("2026-09", false).await.expect("close");
    let close_entry = r.entry.expect("the close is an entry");
    let topup = match behind
        .run(Command::TopUp(top_up_request(
            "H2",
            "50.00",
            Delivery::Wallet,
        )))
        .await
        .expect("the store failed")
    {
        Ok(Receipt::TopUp(t)) => t,
        other => panic!("top-up: {other:?}"),
    };
    assert_eq!(topup.business_date, date("2026-10-01"));
    assert!(topup.entry != close_entry);
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.entries, seeded + 3);
}

/// A close's stored result is what the next close reads back (the loss carried out): `verify`
/// recomputes it from the journal and the policy in force, so rewriting it is caught.
async fn verify_recomputes_a_closes_stored_result_from_the_journal(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-01").await;
    fx.at("2026-09-10");
    fx.expense("200.00", "2026-09-10").await.expect("expense");
    fx.at("2026-10-01");
    let r = fx.close("2026-09", false).await.expect("close");
    assert_eq!(r.loss_carried_out, y("200.00"));
    assert!(fx.app.verify().await.expect("verify").ok());
    // The loss carried out made smaller, so October would share more.
    let tamper = match fx.backend {
        Backend::Sqlite => {
            "UPDATE month_closes SET result = json_replace(result, '$.loss_carried_out', '0.00')"
        }
        Backend::Postgres => {
            "UPDATE month_closes SET result = jsonb_set(result::jsonb, '{loss_carried_out}', '\"0.00\"')::text"
        }
    };
    let changed = match fx.backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&fx.settings.database)
                .await
                .expect("a second connection");
            sqlx::query(tamper)
                .execute(&mut conn)
                .await
                .expect("tamper")
                .rows_affected()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&fx.settings.database)
                .await
                .expect("a second connection");
            sqlx::query(tamper)
                .execute(&mut conn)
                .await
                .expect("tamper")
                .rows_affected()
        }
    };
    assert_eq!(changed, 1);
    let problem = fx
        .app
        .verify()
        .await
        .expect("verify")
        .first_problem
        .expect("verify must fail");
    assert!(
        problem.contains("month close COOP 2026-09 (month_closes)"),
        "{problem}"
    );
    assert!(problem.contains("loss_carried_out: Amount(0)"), "{problem}");
}

async fn a_month_is_closed_once_after_it_ends_and_nothing_is_posted_into_it_afterwards(
    backend: Backend,
) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;

    // Not before the month has ended.
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    let reply = fx.get(ACCOUNTANT, "/v1/months/2026-10/close").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-13/close", json!({}))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );

    fx.at("2026-11-02");
    // Who may close: the cooperative's accountant, an admin naming it; a company may not, and
    // the closing moves money, so it needs an Idempotency-Key.
    let reply = fx
        .post_keyed(COMPANY_K01, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post_keyed(
            ACCOUNTANT,
            "/v1/months/2026-10/close",
            json!({ "cooperative": "COOP2" }),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post_keyed(ADMIN, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("cooperative"),
    );
    let reply = fx
        .post(ACCOUNTANT, "/v1/months/2026-10/close", json!({}), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );

    let (status, r, _) = fx
        .post_keyed(
            ADMIN,
            "/v1/months/2026-10/close",
            json!({ "cooperative": "COOP" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");

    // An expense incurred in the closed month is refused; booked today it is taken.
    let expense = |d: &str| json!({ "category": "rent", "amount": "10.00", "date": d });
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/expenses", expense("2026-10-20"))
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "period_closed", None);
    let (status, body, _) = fx
        .post_keyed(ACCOUNTANT, "/v1/expenses", expense("2026-11-02"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // An earlier month cannot be closed after a later one.
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-09/close", json!({}))
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "period_closed", None);
    // The closed month's result did not change.
    assert_eq!(fx.get_ok(ACCOUNTANT, "/v1/months/2026-10/close").await, r);

    // Months close in order: December waits for November, which could never be closed after it.
    fx.at("2027-01-04");
    let reply = fx
        .post_keyed(ACCOUNTANT, "/v1/months/2026-12/close", json!({}))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    assert!(
        reply.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("close 2026-11 first")),
        "{}",
        reply.1
    );
    for month in ["2026-11", "2026-12"] {
        let (status, body, _) = fx
            .post_keyed(ACCOUNTANT, &format!("/v1/months/{month}/close"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{month}: {body}");
    }
}

async fn verify_recomputes_every_close_and_names_a_tampered_one(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;
    fx.at("2026-11-02");
    fx.close("2026-10", false).await.expect("close");
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 1);
    // The audit endpoint runs the same check.
    let v = fx.get_ok(ADMIN, "/v1/audit/verify").await;
    assert_eq!(v["ok"], json!(true), "{v}");

    // Someone edits a household's stored share behind the ledger's back (the shares are one
    // JSON document per close: [household, company, weight, cap, amount] each).
    let tamper = match fx.backend {
        Backend::Sqlite => {
            "UPDATE month_closes SET shares = json_replace(shares, '$[0][4]', json_extract(shares, '$[0][4]') + 1)"
        }
        Backend::Postgres => {
            "UPDATE month_closes SET shares = jsonb_set(shares::jsonb, '{0,4}', to_jsonb((shares::jsonb #>> '{0,4}')::bigint + 1))::text"
        }
    };
    let changed = match fx.backend {
        Backend::Sqlite => {
            use sqlx::ConnectOptions;
            let options: sqlx::sqlite::SqliteConnectOptions =
                fx.settings.database.parse().expect("sqlite URL");
            let mut conn = options
                .busy_timeout(std::time::Duration::from_secs(10))
                .connect()
                .await
                .expect("a second connection");
            sqlx::query(tamper)
                .execute(&mut conn)
                .await
                .expect("tamper")
                .rows_affected()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&fx.settings.database)
                .await
                .expect("a second connection");
            sqlx::query(tamper)
                .execute(&mut conn)
                .await
                .expect("tamper")
                .rows_affected()
        }
    };
    assert_eq!(changed, 1);
    let report = fx.app.verify().await.expect("verify");
    let problem = report.first_problem.expect("verify must fail");
    assert!(problem.contains("month close COOP 2026-10"), "{problem}");
}

// ---------------------------------------------------------------------------------------------
// Settlements

async fn settlements_pay_what_the_cooperative_owes_and_no_more(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;
    fx.at("2026-11-02");
    let r = fx.close("2026-10", false).await.expect("close");
    let owed: BTreeMap<String, Amount> = r
        .companies
        .iter()
        .map(|c| (c.company.clone(), c.amount))
        .collect();
    // What the cooperative owes each company is what the company is owed, to the fen.
    for (company, amount) in &owed {
        assert_eq!(
            fx.balance(&format!("cooperative:COOP:due_to:{company}"))
                .await,
            *amount
        );
        assert_eq!(
            fx.balance(&format!("company:{company}:due_from:COOP"))
                .await,
            *amount
        );
    }
    let k01 = owed["K01"];
    assert!(k01 == y("666.66") || k01 == y("666.67"), "{k01}");

    // More than is owed is refused.
    let reply = fx
        .post_keyed(
            ACCOUNTANT,
            "/v1/settlements",
            json!({ "company": "K01", "amount": "1000.00", "reference": "BANK-1" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    // A part, then the rest.
    let (status, s, _) = fx
        .post_keyed(
            ACCOUNTANT,
            "/v1/settlements",
            json!({ "company": "K01", "amount": "600.00", "reference": "BANK-2" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let left = k01.checked_sub(y("600.00")).unwrap();
    assert_eq!(s["outstanding"], json!(left.to_string()));
    assert_eq!(fx.balance("cooperative:COOP:due_to:K01").await, left);
    assert_eq!(fx.balance("company:K01:due_from:COOP").await, left);
    assert_eq!(fx.balance("company:K01:cash:bank").await, y("600.00"));
    let s = fx
        .settle("K01", &left.to_string())
        .await
        .expect("settle the rest");
    assert_eq!(s.outstanding, Amount::ZERO);
    refused(
        fx.settle("K01", "0.01").await,
        "invalid_amount",
        Some("amount"),
    );
    refused(fx.settle("K99", "1.00").await, "not_found", Some("company"));
    // Who may settle.
    let body = json!({ "company": "K02", "amount": "1.00", "reference": "BANK-3" });
    let reply = fx
        .post_keyed(COMPANY_K02, "/v1/settlements", body.clone())
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = fx
        .post(ACCOUNTANT, "/v1/settlements", body.clone(), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let (status, s, _) = fx
        .post_keyed(ADMIN, "/v1/settlements", json!({ "company": "K02", "amount": "1.00", "reference": "BANK-3", "cooperative": "COOP" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(
        s["outstanding"],
        json!(owed["K02"].checked_sub(y("1.00")).unwrap().to_string())
    );
    assert!(fx.app.verify().await.expect("verify").ok());
}

// ---------------------------------------------------------------------------------------------
// Statement

/// The amount cells of a CSV row, by the statement's header.
fn csv_amounts(row: &csv::StringRecord) -> Vec<Amount> {
    (3..8)
        .map(|i| Amount::parse(&row[i]).expect("amount cell"))
        .collect()
}

async fn the_statement_ties_out_in_json_csv_and_xlsx(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.october("433.33").await;
    fx.at("2026-11-02");
    let close = fx.close("2026-10", false).await.expect("close");
    fx.bill_months(2026, 11, 11).await;
    fx.pay("H1", "100.00").await.expect("payment");
    fx.pay("H9", "300.00").await.expect("payment"); // beyond everything: paid ahead
    fx.settle("K01", "600.00").await.expect("settle");
    fx.at("2026-12-01");

    let s = fx
        .get_ok(COMPANY_K01, "/v1/companies/K01/statements/2026-11")
        .await;
    assert_eq!(
        (s["company"].clone(), s["month"].clone()),
        (json!("K01"), json!("2026-11"))
    );
    assert_eq!(s["ties_out"], json!(true));
    let winner = tie_winner(
        &["H1", "H2", "H3"],
        &hongxin::fees::close_seed("COOP", "2026-10"),
    );
    let share = |h: &str| {
        if h == winner {
            y("333.34")
        } else {
            y("333.33")
        }
    };
    let lines = s["households"].as_array().expect("households");
    assert_eq!(lines.len(), 3);
    // By compound, then household: H1 (HX01), H2 (HX03), H9 (HX11). October's close, posted
    // on 2 November, is October's: November opens after it and allocates nothing.
    let after_close = |owed: &str, h: &str| y(owed).checked_sub(share(h)).unwrap();
    let expect = [
        ("HX01", "H1", after_close("480.40", "H1"), "48.04", "100.00"),
        ("HX03", "H2", after_close("485.50", "H2"), "48.55", "0.00"),
        ("HX11", "H9", y("277.50"), "27.75", "300.00"),
    ];
    for (line, (compound, household, opening, billed, paid)) in lines.iter().zip(expect) {
        assert_eq!(line["compound"], json!(compound));
        assert_eq!(line["household"], json!(household));
        // The household's area and occupant, as the household answer has them.
        let view = fx
            .get_ok(ADMIN, &format!("/v1/households/{household}"))
            .await;
        assert_eq!(line["area_m2"], view["area_m2"]);
        assert_eq!(line["occupant"], view["name"]);
        assert_eq!(line["building"], view["building"]);
        assert_eq!(line["grid"], view["grid"]);
        if household == "H1" {
            assert_eq!(
                (line["building"].clone(), line["grid"].clone()),
                (json!("3栋"), json!("第2网格"))
            );
        }
        assert_eq!(a(&line["opening"]), opening);
        assert_eq!(line["billed"], json!(billed));
        assert_eq!(line["paid"], json!(paid));
        assert_eq!(a(&line["allocated"]), Amount::ZERO);
        let closing = a(&line["opening"]).fen() + a(&line["billed"]).fen()
            - a(&line["paid"]).fen()
            - a(&line["allocated"]).fen();
        assert_eq!(a(&line["closing"]).fen(), closing, "{line}");
        assert_eq!(a(&line["closing"]), fx.fees(household).await);
    }
    let t = &s["totals"];
    let k01 = share("H1").checked_add(share("H2")).unwrap();
    assert_eq!(a(&t["opening"]), y("1243.40").checked_sub(k01).unwrap());
    assert_eq!(t["billed"], json!("124.34"));
    assert_eq!(t["paid"], json!("400.00"));
    assert_eq!(a(&t["allocated"]), Amount::ZERO);
    assert_eq!(
        a(&t["closing"]).fen(),
        a(&t["opening"]).fen() + a(&t["billed"]).fen()
            - a(&t["paid"]).fen()
            - a(&t["allocated"]).fen()
    );
    // H9 paid 300.00 against 305.25 owed: not ahead. Arrears before the month were every
    // opening; H1's 100.00 and H9's 300.00 went to them.
    assert_eq!(
        a(&s["summary"]["arrears_brought_forward"]),
        y("1243.40").checked_sub(k01).unwrap()
    );
    assert_eq!(s["summary"]["received"], json!("400.00"));
    assert_eq!(a(&s["summary"]["covered_by_cooperative"]), Amount::ZERO);
    assert_eq!(s["summary"]["billed"], json!("124.34"));
    // What the cooperative owes K01: October's allocation (posted on 2 November, for October),
    // brought forward, less the 600.00 settled in November.
    assert_eq!(
        s["cooperatives"],
        json!([{
            "cooperative": "COOP", "cooperative_name": "红心农场合作社",
            "opening": k01.to_string(), "allocated": "0.00", "collected": "0.00", "settled": "600.00", "outstanding": k01.checked_sub(y("600.00")).unwrap().to_string()
        }])
    );
    assert_eq!(close.companies[0].amount, k01);
    let head = fx.app.store.head().await.unwrap();
    assert_eq!(
        (s["journal_seq"].as_i64(), s["journal_hash"].as_str()),
        (Some(head.seq), Some(head.hash.as_str()))
    );

    // CSV: same lines and totals.
    let (status, headers, body) = fx
        .get_bytes(
            COMPANY_K01,
            "/v1/companies/K01/statements/2026-11?format=csv&lang=en",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "text/csv; charset=utf-8");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"statement-K01-2026-11.csv\""
    );
    let mut reader = csv::Reader::from_reader(body.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("CSV row")).collect();
    // By default the words are Chinese, the figures the same.
    let (status, _, chinese) = fx
        .get_bytes(
            COMPANY_K01,
            "/v1/companies/K01/statements/2026-11?format=csv",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let chinese = String::from_utf8(chinese).expect("UTF-8");
    let chinese: Vec<&str> = chinese.trim_start_matches('\u{feff}').lines().collect();
    assert!(
        chinese[0].starts_with("类别,小区,住户,期初,应收,住户缴纳,合作社抵扣,期末,"),
        "{}",
        chinese[0]
    );
    let english: Vec<String> = String::from_utf8(body.clone())
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(chinese.len(), english.len());
    let total_zh = chinese
        .iter()
        .find(|l| l.starts_with("合计,"))
        .expect("a 合计 row");
    let total_en = english
        .iter()
        .find(|l| l.starts_with("total,"))
        .expect("a total row");
    assert_eq!(
        total_zh.trim_start_matches("合计"),
        total_en.trim_start_matches("total")
    );
    let reply = fx
        .get(
            COMPANY_K01,
            "/v1/companies/K01/statements/2026-11?format=csv&lang=fr",
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("lang"),
    );
    let total = rows.iter().find(|r| &r[0] == "total").expect("a total row");
    let json_totals: Vec<Amount> = ["opening", "billed", "paid", "allocated", "closing"]
        .iter()
        .map(|k| a(&t[*k]))
        .collect();
    assert_eq!(csv_amounts(total), json_totals);
    let households: Vec<&csv::StringRecord> =
        rows.iter().filter(|r| &r[0] == "household").collect();
    assert_eq!(households.len(), 3);
    let sum: Vec<i64> = (0..5)
        .map(|i| households.iter().map(|r| csv_amounts(r)[i].fen()).sum())
        .collect();
    assert_eq!(sum, json_totals.iter().map(|a| a.fen()).collect::<Vec<_>>());
    let journal = rows
        .iter()
        .find(|r| &r[0] == "journal")
        .expect("a journal row");
    assert_eq!(&journal[2], head.hash.as_str());
    // The cooperative's row, read by header: each figure under its own name, and nothing under
    // a household's columns.
    let header = reader.headers().expect("CSV header").clone();
    let cell = |r: &csv::StringRecord, name: &str| -> String {
        let i = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
        r[i].to_string()
    };
    let coop = rows
        .iter()
        .find(|r| &r[0] == "cooperative")
        .expect("a cooperative row");
    let by_header: Vec<(&str, String)> = [
        "cooperative",
        "opening",
        "allocated",
        "settled",
        "outstanding",
        "paid",
        "closing",
    ]
    .iter()
    .map(|h| (*h, cell(coop, h)))
    .collect();
    assert_eq!(
        by_header,
        vec![
            ("cooperative", "COOP".to_string()),
            // October's allocation is October's: November opens owed it and allocates nothing.
            ("opening", k01.to_string()),
            ("allocated", "0.00".to_string()),
            ("settled", "600.00".to_string()),
            (
                "outstanding",
                k01.checked_sub(y("600.00")).unwrap().to_string()
            ),
            ("paid", String::new()),
            ("closing", String::new()),
        ]
    );

    // XLSX: a zip archive, as a download.
    let (status, headers, body) = fx
        .get_bytes(ADMIN, "/v1/companies/K01/statements/2026-11?format=xlsx")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), XLSX);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"statement-K01-2026-11.xlsx\""
    );
    assert_eq!(&body[..2], b"PK");

    // Explicit JSON is the default.
    let (_, headers, _) = fx
        .get_bytes(
            COMPANY_K01,
            "/v1/companies/K01/statements/2026-11?format=json",
        )
        .await;
    assert_eq!(content_type(&headers), "application/json");
    // Another company's statement does not exist for K02; odd requests are refused.
    let reply = fx
        .get(COMPANY_K02, "/v1/companies/K01/statements/2026-11")
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    let reply = fx.get(ADMIN, "/v1/companies/K99/statements/2026-11").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    let reply = fx
        .get(ADMIN, "/v1/companies/K01/statements/2026-11?format=pdf")
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("format"),
    );
    let reply = fx.get(ADMIN, "/v1/companies/K01/statements/11-2026").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    let reply = fx
        .get(ACCOUNTANT, "/v1/companies/K01/statements/2026-11")
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);

    // October's statement closes where November's opens: January to September's bills (made on
    // 5 October) are their own months', October's close is October's.
    let oct = fx
        .get_ok(ADMIN, "/v1/companies/K01/statements/2026-10")
        .await;
    assert_eq!(oct["ties_out"], json!(true));
    assert_eq!(oct["totals"]["closing"], s["totals"]["opening"]);
    assert_eq!(oct["totals"]["opening"], json!("1119.06"));
    assert_eq!(oct["totals"]["billed"], json!("124.34"));
    assert_eq!(a(&oct["totals"]["allocated"]), k01);
    assert_eq!(a(&oct["cooperatives"][0]["allocated"]), k01);
}

// ---------------------------------------------------------------------------------------------
// The command line

fn hongxin(settings: &Settings, today: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hongxin"));
    if let Some(key_file) = &settings.key_file {
        command.arg("--key-file").arg(key_file);
    }
    command
        .env_remove("HONGXIN_DATABASE")
        .env_remove("HONGXIN_KEY_FILE")
        .env_remove("HONGXIN_CONFIG")
        .env_remove("HONGXIN_POLICIES")
        .env("HONGXIN_TODAY", today)
        .arg("--database")
        .arg(&settings.database)
        .arg("--policies")
        .arg(&settings.policies_dir)
        .args(args)
        .output()
        .expect("run hongxin")
}

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn the_commands_bill_pay_close_and_print_statements(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    fx.at("2026-10-05");
    for h in ["H1", "H2", "H3"] {
        fx.top_up_and_spend(h, "1000.00", "1000.00").await;
    }
    fx.cash_sale("5000.00").await;
    fx.expense("433.33", "2026-10-05").await.expect("expense");
    let (dir, settings, _pg) = fx.stop().await;

    let out = stdout(&hongxin(
        &settings,
        "2026-10-05",
        &["fees", "bill", "--company", "K01", "--month", "2026-10"],
    ));
    assert!(out.contains("3 households, total 124.34"), "{out}");
    let out = stdout(&hongxin(
        &settings,
        "2026-10-05",
        &["fees", "bill", "--company", "K01", "--month", "2026-10"],
    ));
    assert!(out.contains("nothing new"), "{out}");
    let out = stdout(&hongxin(
        &settings,
        "2026-10-05",
        &[
            "fees",
            "pay",
            "--household",
            "H2",
            "--amount",
            "50",
            "--method",
            "wechat",
            "--reference",
            "WX-1",
        ],
    ));
    assert!(out.contains("2026-10  48.55"), "{out}");
    assert!(out.contains("paid ahead  1.45"), "{out}");

    let o = hongxin(
        &settings,
        "2026-10-20",
        &["close-month", "--cooperative", "COOP", "--month", "2026-10"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid_input"));
    let out = stdout(&hongxin(
        &settings,
        "2026-11-02",
        &[
            "close-month",
            "--cooperative",
            "COOP",
            "--month",
            "2026-10",
            "--dry-run",
        ],
    ));
    assert!(out.contains("dry run"), "{out}");
    assert!(out.contains("profit") && out.contains("1666.67"), "{out}");
    let out = stdout(&hongxin(
        &settings,
        "2026-11-02",
        &["close-month", "--cooperative", "COOP", "--month", "2026-10"],
    ));
    assert!(out.contains("closed"), "{out}");
    assert!(out.contains("pool") && out.contains("1000.00"), "{out}");
    // H1 owes 48.04 and H2 nothing (it paid ahead), H3 was never billed: all capped.
    assert!(out.contains("company K01"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("allocated") && l.ends_with("48.04")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("reserve ") && l.ends_with("951.96")),
        "{out}"
    );

    let out = stdout(&hongxin(
        &settings,
        "2026-11-02",
        &[
            "statement",
            "--company",
            "K01",
            "--month",
            "2026-10",
            "--format",
            "csv",
        ],
    ));
    // October's close, run on 2 November, is October's: it covers H1's October bill.
    assert!(
        out.contains("household,HX01,H1,0.00,48.04,0.00,48.04,0.00"),
        "{out}"
    );
    let json: Value = serde_json::from_str(&stdout(&hongxin(
        &settings,
        "2026-11-02",
        &["statement", "--company", "K01", "--month", "2026-11"],
    )))
    .expect("JSON statement");
    assert_eq!(json["totals"]["allocated"], json!("0.00"));
    assert_eq!(json["ties_out"], json!(true));
    let file = dir.path().join("k01.xlsx");
    let file_arg = file.to_string_lossy().into_owned();
    stdout(&hongxin(
        &settings,
        "2026-11-02",
        &[
            "statement",
            "--company",
            "K01",
            "--month",
            "2026-11",
            "--format",
            "xlsx",
            "--output",
            &file_arg,
        ],
    ));
    assert_eq!(&std::fs::read(&file).expect("the XLSX file")[..2], b"PK");
    let o = hongxin(
        &settings,
        "2026-11-02",
        &[
            "statement",
            "--company",
            "K01",
            "--month",
            "2026-11",
            "--format",
            "xlsx",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&hongxin(&settings, "2026-11-02", &["verify"]));
    assert!(out.contains("1 month closes recomputed"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Property: whatever is spent, the close accounts for the whole pool

mod pool_is_accounted_for {
    use super::*;
    use proptest::prelude::*;

    /// `spends` of H1, H2, H3 from their wallets; K01 and K02 billed for `months_billed`
    /// months each (what caps the shares); an anonymous cash sale.
    async fn case(backend: Backend, spends: Vec<u32>, months_billed: Vec<u32>, cash: u32) {
        let fx = Fx::new(backend, "2026-10-01").await;
        fx.at("2026-10-05");
        for (company, months) in ["K01", "K02"].into_iter().zip(&months_billed) {
            for m in 1..=*months {
                fx.bills(company, &format!("2026-{m:02}")).await;
            }
        }
        for (h, spend) in ["H1", "H2", "H3"].into_iter().zip(&spends) {
            fx.top_up_and_spend(h, "1000.00", &format!("{spend}.00"))
                .await;
        }
        if cash > 0 {
            fx.cash_sale(&format!("{cash}.00")).await;
        }
        let before: Vec<Amount> = fees_of_spenders(&fx).await;
        fx.at("2026-11-02");
        let r = fx.close("2026-10", false).await.expect("close");
        let after: Vec<Amount> = fees_of_spenders(&fx).await;
        let credited: Vec<i64> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| b.fen() - a.fen())
            .collect();
        // Σ household credits + reserve = pool; per company as the receipt says.
        assert_eq!(
            credited.iter().sum::<i64>() + r.reserve.fen(),
            r.pool.fen(),
            "{r:?}"
        );
        assert_eq!(credited.iter().sum::<i64>(), r.allocated.fen());
        assert_eq!(
            r.companies.iter().map(|c| c.amount.fen()).sum::<i64>(),
            r.allocated.fen()
        );
        for ((credit, owed), spend) in credited.iter().zip(&before).zip(&spends) {
            assert!(
                *credit >= 0 && *credit <= owed.fen().max(0),
                "{credited:?} {before:?}"
            );
            if *spend == 0 {
                assert_eq!(*credit, 0);
            }
        }
        assert_eq!(
            fx.balance("cooperative:COOP:allocation_reserve").await,
            r.reserve
        );
        let report = fx.app.verify().await.expect("verify");
        assert!(report.ok(), "{report:?}");
    }

    async fn fees_of_spenders(fx: &Fx) -> Vec<Amount> {
        let mut v = Vec::new();
        for h in ["H1", "H2", "H3"] {
            v.push(fx.fees(h).await);
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
        #[test]
        fn close_accounts_for_the_pool(
            spends in prop::collection::vec(0u32..=1000, 3),
            months_billed in prop::collection::vec(0u32..=10, 2),
            cash in 0u32..=20_000,
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(case(Backend::Sqlite, spends.clone(), months_billed.clone(), cash));
            if pg_support::available() {
                runtime.block_on(case(Backend::Postgres, spends, months_billed, cash));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Which month a bill and an allocation belong to, and what a close weighs

/// One household's line of a statement, as (opening, billed, paid, allocated, closing) in fen.
fn line_fen(statement: &Value, household: &str) -> [i64; 5] {
    let line = statement["households"]
        .as_array()
        .expect("households")
        .iter()
        .find(|l| l["household"] == json!(household))
        .unwrap_or_else(|| panic!("no line for {household}: {statement}"));
    ["opening", "billed", "paid", "allocated", "closing"].map(|k| a(&line[k]).fen())
}

async fn bills_and_closes_count_in_the_month_they_are_for(backend: Backend) {
    let fx = Fx::new(backend, "2026-10-01").await;
    // January to October billed on 5 October, October closed on 1 November.
    fx.october("433.33").await;
    fx.at("2026-11-01");
    fx.close("2026-10", false).await.expect("close");
    fx.at("2026-11-02");
    fx.pay("H1", "100.00").await.expect("payment");
    // November billed on 3 December, then a December payment.
    fx.at("2026-12-03");
    fx.bills("K01", "2026-11").await;
    fx.pay("H2", "50.00").await.expect("payment");
    fx.at("2026-12-05");

    let winner = tie_winner(
        &["H1", "H2", "H3"],
        &hongxin::fees::close_seed("COOP", "2026-10"),
    );
    let share = |h: &str| if h == winner { 33334 } else { 33333 };
    let (s1, s2) = (share("H1"), share("H2"));
    let expected: [(&str, [[i64; 5]; 3]); 3] = [
        (
            "2026-10",
            [
                [9 * 4804, 4804, 0, s1, 10 * 4804 - s1],
                [9 * 4855, 4855, 0, s2, 10 * 4855 - s2],
                [9 * 2775, 2775, 0, 0, 10 * 2775],
            ],
        ),
        (
            "2026-11",
            [
                [10 * 4804 - s1, 4804, 10000, 0, 11 * 4804 - s1 - 10000],
                [10 * 4855 - s2, 4855, 0, 0, 11 * 4855 - s2],
                [10 * 2775, 2775, 0, 0, 11 * 2775],
            ],
        ),
        (
            "2026-12",
            [
                [11 * 4804 - s1 - 10000, 0, 0, 0, 11 * 4804 - s1 - 10000],
                [11 * 4855 - s2, 0, 5000, 0, 11 * 4855 - s2 - 5000],
                [11 * 2775, 0, 0, 0, 11 * 2775],
            ],
        ),
    ];
    let months = fx
        .get_ok(COMPANY_K01, "/v1/companies/K01/months?last=3")
        .await;
    let series = months["months"].as_array().expect("months");
    assert_eq!(series.len(), 3, "{months}");
    assert_eq!(months["latest_closed"], json!("2026-10"));
    let mut resident = BTreeMap::new();
    for h in ["H1", "H2", "H9"] {
        resident.insert(
            h,
            fx.get_ok(COMPANY_K01, &format!("/v1/households/{h}/fees?months=3"))
                .await,
        );
    }
    for ((month, lines), figures) in expected.iter().zip(series) {
        let s = fx
            .get_ok(
                COMPANY_K01,
                &format!("/v1/companies/K01/statements/{month}"),
            )
            .await;
        assert_eq!(s["ties_out"], json!(true), "{month}: {s}");
        let mut totals = [0i64; 5];
        for (h, want) in ["H1", "H2", "H9"].iter().zip(lines) {
            let got = line_fen(&s, h);
            assert_eq!(&got, want, "{month} {h}");
            for (t, g) in totals.iter_mut().zip(got) {
                *t += g;
            }
            // The resident's fee view shows the same line for the month.
            let view = &resident[h];
            let m = view["months"]
                .as_array()
                .expect("months")
                .iter()
                .find(|m| m["month"] == json!(month))
                .unwrap_or_else(|| panic!("{h} {month}: {view}"));
            let seen = ["opening", "billed", "paid", "covered", "closing"].map(|k| a(&m[k]).fen());
            assert_eq!(&seen, want, "resident view {h} {month}");
        }
        let t = &s["totals"];
        assert_eq!(
            ["opening", "billed", "paid", "allocated", "closing"].map(|k| a(&t[k]).fen()),
            totals,
            "{month}"
        );
        // The office's month series is the statement's totals, October closed and covered.
        assert_eq!(figures["month"], json!(month));
        assert_eq!(figures["closed"], json!(*month == "2026-10"), "{figures}");
        assert_eq!(
            ["opening", "billed", "paid", "covered", "closing"].map(|k| a(&figures[k]).fen()),
            totals,
            "{month}"
        );
        assert_eq!(figures["ties_out"], json!(true));
        // The cooperative's position: October's close is October's.
        let coop = &s["cooperatives"][0];
        let covered = if *month == "2026-10" { s1 + s2 } else { 0 };
        assert_eq!(a(&coop["allocated"]).fen(), covered, "{month}: {coop}");
    }
    // The latest closing is the ledger's balance; the close credits are October's.
    for (h, want) in [
        ("H1", 11 * 4804 - s1 - 10000),
        ("H2", 11 * 4855 - s2 - 5000),
        ("H9", 11 * 2775),
    ] {
        assert_eq!(fx.fees(h).await.fen(), want, "{h}");
    }
    for (h, s) in [("H1", s1), ("H2", s2)] {
        let covered = resident[h]["covered"].as_array().expect("covered").clone();
        assert_eq!(covered.len(), 1, "{h}: {covered:?}");
        assert_eq!(covered[0]["month"], json!("2026-10"));
        assert_eq!(a(&covered[0]["amount"]).fen(), s, "{h}");
    }
}

/// October of three spenders (1000.00 each from the wallet, 5000.00 in cash), every household
/// owing January to October, so no share is capped; answers H2's wallet sale.
async fn october_of_three_spenders(fx: &Fx) -> i64 {
    fx.at("2026-10-05");
    fx.bill_months(2026, 1, 10).await;
    for h in ["H1", "H3"] {
        fx.top_up_and_spend(h, "1000.00", "1000.00").await;
    }
    fx.top_up_and_spend("H2", "1000.00", "0.00").await;
    let sale = match fx
        .run(Command::Sale(sale_amount(
            Some("H2"),
            "1000.00",
            vec![wallet("1000.00")],
        )))
        .await
    {
        Ok(Receipt::Sale(r)) => r.sale,
        other => panic!("sale: {other:?}"),
    };
    fx.cash_sale("5000.00").await;
    assert!(fx.expense("433.33", "2026-10-05").await.is_ok());
    sale
}

/// November's business before October is closed (or after): next month's bills, a payment that
/// leaves H1 owing less than its share, and most of H2's October wallet sale refunded.
async fn november_business(fx: &Fx, sale: i64) {
    fx.bill_months(2026, 11, 11).await;
    fx.pay("H1", "450.00").await.expect("payment");
    let refund = fx
        .run(Command::RefundSale(hongxin::domain::RefundSale {
            sale,
            amount: Some(y("600.00")),
            shop: Some("S1".into()),
            cooperative: None,
        }))
        .await;
    assert!(matches!(refund, Ok(Receipt::SaleRefund(_))), "{refund:?}");
}

fn close_figures(close: &CloseReceipt) -> Value {
    let mut v = serde_json::to_value(close).expect("receipt");
    v.as_object_mut().expect("object").remove("entry");
    v
}

async fn a_close_weighs_the_month_as_it_ended_whenever_it_runs(backend: Backend) {
    // Two identical ledgers: `early` closes October before November's business, `late` after.
    let early = Fx::new(backend, "2026-10-01").await;
    let late = Fx::new(backend, "2026-10-01").await;
    let sale_early = october_of_three_spenders(&early).await;
    let sale_late = october_of_three_spenders(&late).await;
    early.at("2026-11-02");
    late.at("2026-11-02");
    let closed_early = early.close("2026-10", false).await.expect("close");
    november_business(&early, sale_early).await;
    november_business(&late, sale_late).await;
    let closed_late = late.close("2026-10", false).await.expect("close");
    assert_eq!(close_figures(&closed_early), close_figures(&closed_late));
    for h in ["H1", "H2", "H3", "H9"] {
        assert_eq!(
            early.close_credits(h).await,
            late.close_credits(h).await,
            "{h}"
        );
        assert_eq!(early.fees(h).await, late.fees(h).await, "{h}");
    }
    // The shares as the month ended: H1 owed 480.40 then (not the 78.44 left after its
    // November payment), and H2's sale counts in full though 600.00 of it was refunded since.
    let winner = tie_winner(
        &["H1", "H2", "H3"],
        &hongxin::fees::close_seed("COOP", "2026-10"),
    );
    let pool = closed_late.pool.fen();
    assert_eq!(closed_late.allocated.fen(), pool);
    let credits = late.close_credits("H1").await;
    assert_eq!(credits.len(), 1);
    assert!(
        credits[0].2.fen() > 33000,
        "H1 not capped: {credits:?} (winner {winner})"
    );
    assert_eq!(closed_late.households, 3);

    // November: H2 and H3 spend alike; the refund of H2's October sale, dated in November,
    // weighs nothing here either. (H1 is paid ahead by then: its cap is zero.)
    late.at("2026-11-05");
    for h in ["H1", "H2", "H3"] {
        late.top_up_and_spend(h, "100.00", "100.00").await;
    }
    late.cash_sale("500.00").await;
    late.at("2026-12-01");
    let november = late.close("2026-11", false).await.expect("close");
    assert!(november.allocated.is_positive(), "{november:?}");
    let mut shares: Vec<i64> = Vec::new();
    for h in ["H1", "H2", "H3"] {
        let credits = late.close_credits(h).await;
        shares.push(
            credits
                .iter()
                .find(|c| c.1 == "2026-11")
                .map_or(0, |c| c.2.fen()),
        );
    }
    assert_eq!(shares[0], 0, "H1 owes nothing: {shares:?}");
    assert!(
        (shares[1] - shares[2]).abs() <= 1,
        "equal spenders share alike: {shares:?}"
    );
    assert_eq!(shares.iter().sum::<i64>(), november.allocated.fen());
}

/// Two cooperatives close the same month, one after the other: each weighs the fees owed as of
/// the month's end before any close of it, so the second's caps do not take the first's
/// allocation off, whichever closes first, and `verify` recomputes both closes' weights and caps.
async fn two_cooperatives_closing_one_month_cap_at_the_fees_owed_before_either(backend: Backend) {
    let fx = Fx::new(backend, "2026-09-20").await;
    for c in [
        Command::CreateCooperative(NewCooperative {
            code: "COOP2".into(),
            name: "第二合作社".into(),
        }),
        Command::CreateShop(NewShop {
            code: "S2".into(),
            name: "二社一号店".into(),
            cooperative: "COOP2".into(),
        }),
    ] {
        assert!(matches!(fx.run(c).await, Ok(Receipt::Created(_))));
    }
    // Wallets at COOP2 filled in September (a month's bonus is capped across cooperatives).
    for h in ["H1", "H2", "H3"] {
        let top_up = hongxin::domain::TopUp {
            shop: "S2".into(),
            ..top_up_request(h, "500.00", Delivery::Wallet)
        };
        let r = fx.run(Command::TopUp(top_up)).await;
        assert!(matches!(r, Ok(Receipt::TopUp(_))), "{r:?}");
    }
    fx.at("2026-10-05");
    fx.bill_months(2026, 10, 10).await;
    // Both cooperatives make a profit far above October's fees, from the same three spenders.
    for h in ["H1", "H2", "H3"] {
        fx.top_up_and_spend(h, "1000.00", "1000.00").await;
        let sale = hongxin::domain::Sale {
            shop: "S2".into(),
            ..sale_amount(Some(h), "500.00", vec![wallet("500.00")])
        };
        let r = fx.run(Command::Sale(sale)).await;
        assert!(matches!(r, Ok(Receipt::Sale(_))), "{r:?}");
    }
    fx.cash_sale("5000.00").await;
    let sale = hongxin::domain::Sale {
        shop: "S2".into(),
        ..sale_amount(None, "5000.00", vec![cash("5000.00")])
    };
    assert!(matches!(
        fx.run(Command::Sale(sale)).await,
        Ok(Receipt::Sale(_))
    ));
    fx.at("2026-11-02");
    let mut owed = BTreeMap::new();
    for h in ["H1", "H2", "H3"] {
        let fees = fx.fees(h).await;
        assert!(fees.is_positive(), "{h} owes October's fee");
        owed.insert(h.to_string(), fees);
    }
    let first = fx.close("2026-10", false).await.expect("COOP closes");
    assert_eq!(first.households, 3, "{first:?}");
    let second = match fx
        .run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP2".into(),
            month: "2026-10".into(),
            dry_run: false,
            estimate: false,
        }))
        .await
    {
        Ok(Receipt::MonthClose(r)) => r,
        other => panic!("COOP2 closes: {other:?}"),
    };
    // Each close covers every household's October fee in full: the pools are far larger.
    let owed_in_all = Amount::checked_sum(owed.values().copied()).expect("sum");
    assert_eq!(first.allocated, owed_in_all, "{first:?}");
    assert_eq!(second.allocated, owed_in_all, "{second:?}");
    let runs = fx.app.store.close_runs().await.expect("close runs");
    assert_eq!(runs.len(), 2);
    for run in &runs {
        let rows: BTreeMap<&str, (Option<Amount>, Amount)> = run
            .shares
            .iter()
            .map(|(code, _, cap, amount)| (code.as_str(), (*cap, *amount)))
            .collect();
        for (h, fees) in &owed {
            assert_eq!(
                rows.get(h.as_str()),
                Some(&(Some(*fees), *fees)),
                "{} {h}: capped at the fees owed before either close",
                run.cooperative
            );
        }
    }
    for h in ["H1", "H2", "H3"] {
        let ahead = owed[h].checked_neg().expect("an amount");
        assert_eq!(fx.fees(h).await, ahead, "{h} is paid a month ahead");
    }
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.close_runs, 2);
}

// ---------------------------------------------------------------------------------------------
// The till's top-up quote

async fn the_top_up_quote_and_the_top_up_agree_on_the_bonus_given_this_month(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-10").await;
    let top_up = |household: &'static str, paid: &'static str| {
        let fx = &fx;
        async move {
            match fx
                .run(Command::TopUp(top_up_request(
                    household,
                    paid,
                    Delivery::Wallet,
                )))
                .await
            {
                Ok(Receipt::TopUp(r)) => r,
                other => panic!("top-up {household} {paid}: {other:?}"),
            }
        }
    };
    // H1 reaches November's bonus cap (100.00); the journal then moves into December while
    // the host's clock falls back to 30 November (a skewed host).
    assert_eq!(top_up("H1", "1000.00").await.bonus, y("100.00"));
    fx.at("2026-12-01");
    top_up("H2", "100.00").await;
    fx.at("2026-11-30");
    let quote = |paid: &str| format!("/v1/topups/quote?household=H1&paid={paid}");
    let q = fx.get_ok(CASHIER, &quote("100.00")).await;
    let r = top_up("H1", "100.00").await;
    assert_eq!(r.business_date, date("2026-12-01"));
    assert_eq!(q["business_date"], json!("2026-12-01"), "{q}");
    assert_eq!(q["bonus_this_month"], json!("0.00"), "{q}");
    assert_eq!(a(&q["bonus"]), r.bonus);
    assert_eq!(a(&q["credited"]), r.credited);
    // After that top-up, the quote's bonus is the next top-up's, to the cap and past it.
    let q = fx.get_ok(CASHIER, &quote("900.00")).await;
    assert_eq!(q["bonus_this_month"], json!("10.00"), "{q}");
    assert_eq!(q["bonus_room_after"], json!("0.00"), "{q}");
    let r = top_up("H1", "900.00").await;
    assert_eq!((a(&q["bonus"]), r.bonus), (y("90.00"), y("90.00")));
    let reply = fx.get(CASHIER, &quote("50.00")).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cap_exceeded",
        Some("paid"),
    );
    let refused = fx
        .run(Command::TopUp(top_up_request(
            "H1",
            "50.00",
            Delivery::Wallet,
        )))
        .await;
    assert!(
        matches!(refused, Err(Rejection::CapExceeded { ref cap, .. }) if cap == "monthly bonus"),
        "{refused:?}"
    );
}

// ---------------------------------------------------------------------------------------------

/// 代收物业费: a till takes a property fee for the household's company. It settles the oldest
/// bill first as the office would, the money is the cooperative's and owed to the company (the
/// statement shows it collected, the settlement pays it), and the company's receipt numbers run
/// 1, 2, 3 over office and tills alike, independently per company. Refusals change nothing and
/// use no number; a replay answers the same receipt.
async fn a_till_takes_a_fee_for_the_company_with_a_numbered_receipt(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    for month in ["2026-09", "2026-10", "2026-11"] {
        fx.bills("K01", month).await;
    }
    fx.bills("K02", "2026-11").await;
    let till = "/v1/till/fee-payments";

    // Refusals first: nothing posted, no number used.
    let head = fx.head().await;
    for method in ["wallet", "voucher", "bank"] {
        let r = fx
            .post_keyed(
                CASHIER,
                till,
                json!({ "household": "H1", "amount": "10.00", "method": method }),
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "method_not_accepted",
            Some("method"),
        );
    }
    let r = fx
        .post_keyed(
            CASHIER,
            till,
            json!({ "household": "NOPE", "amount": "10.00", "method": "cash" }),
        )
        .await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", Some("household"));
    let r = fx
        .post_keyed(
            CASHIER,
            till,
            json!({ "household": "H1", "amount": "0.00", "method": "cash" }),
        )
        .await;
    assert_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    let r = fx
        .post_keyed(
            COMPANY_K01,
            till,
            json!({ "household": "H1", "amount": "1.00", "method": "cash" }),
        )
        .await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{}", r.1);
    assert_eq!(fx.head().await, head);
    assert_eq!(fx.fees("H1").await, y("144.12"));

    // 60.00 at the till pays September's 48.04 and 11.96 of October's: receipt No. 1 of K01.
    let body = json!({ "household": "H1", "amount": "60.00", "method": "cash" });
    let key = fx.key();
    let (status, r, _) = fx.post(CASHIER, till, body.clone(), Some(&key)).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["company"].clone(), r["receipt"].clone()),
        (json!("K01"), json!(1))
    );
    assert_eq!(
        (r["cooperative"].clone(), r["shop"].clone()),
        (json!("COOP"), json!("S1"))
    );
    assert_eq!(
        r["applied"],
        json!([{ "month": "2026-09", "amount": "48.04" }, { "month": "2026-10", "amount": "11.96" }])
    );
    assert_eq!(
        (r["prepaid"].clone(), r["balance"].clone()),
        (json!("0.00"), json!("84.12"))
    );
    // The money is the cooperative's, owed to the company; the company's cash is untouched.
    assert_eq!(fx.balance("cooperative:COOP:cash:cash").await, y("60.00"));
    assert_eq!(fx.balance("cooperative:COOP:due_to:K01").await, y("60.00"));
    assert_eq!(fx.balance("company:K01:due_from:COOP").await, y("60.00"));
    assert_eq!(fx.balance("company:K01:cash:cash").await, Amount::ZERO);
    assert_eq!(fx.fees("H1").await, y("84.12"));
    // A replay answers the same receipt and posts nothing.
    let head = fx.head().await;
    let (status, again, _) = fx.post(CASHIER, till, body, Some(&key)).await;
    assert_eq!((status, &again), (StatusCode::CREATED, &r));
    assert_eq!(fx.head().await, head);

    // The office's payment takes the next number of the same sequence; K02's starts at 1.
    let (status, r, _) = fx
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H2", "amount": "10.00", "method": "cash", "reference": "R-7" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["receipt"].clone(), r.get("cooperative")),
        (json!(2), None)
    );
    let (status, r, _) = fx
        .post_keyed(
            CASHIER,
            till,
            json!({ "household": "H3", "amount": "48.00", "method": "wechat" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["company"].clone(), r["receipt"].clone()),
        (json!("K02"), json!(1))
    );
    assert_eq!(r["balance"], json!("0.00"));
    // Beyond what is owed is paid ahead, as at the office.
    let (status, r, _) = fx
        .post_keyed(
            CASHIER,
            till,
            json!({ "household": "H1", "amount": "90.00", "method": "alipay" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["receipt"], json!(3));
    assert_eq!(
        r["applied"],
        json!([{ "month": "2026-10", "amount": "36.08" }, { "month": "2026-11", "amount": "48.04" }])
    );
    assert_eq!(
        (r["prepaid"].clone(), r["balance"].clone()),
        (json!("5.88"), json!("-5.88"))
    );

    // Reprinting: the cashier sees what its cooperative collected, the company all of its own.
    let p = fx.get_ok(CASHIER, "/v1/companies/K01/fee-receipts/1").await;
    assert_eq!(
        (
            &p["printed_number"],
            &p["amount"],
            &p["amount_in_words"],
            &p["household"],
            &p["method"]
        ),
        (
            &json!("No. 000001"),
            &json!("60.00"),
            &json!("陆拾元整"),
            &json!("H1"),
            &json!("cash")
        )
    );
    assert_eq!(
        (&p["cooperative"], &p["shop"]),
        (&json!("COOP"), &json!("S1"))
    );
    assert_eq!(
        fx.get(CASHIER, "/v1/companies/K01/fee-receipts/2").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fx.get(COMPANY_K02, "/v1/companies/K01/fee-receipts/1")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fx.get(ADMIN, "/v1/companies/K01/fee-receipts/4").await.0,
        StatusCode::NOT_FOUND
    );
    let p = fx
        .get_ok(COMPANY_K01, "/v1/companies/K01/fee-receipts/2")
        .await;
    assert_eq!(
        (&p["household"], &p["cooperative"]),
        (&json!("H2"), &Value::Null)
    );

    // The statement: paid by the residents, collected by the cooperative and owed by it.
    let st = fx
        .get_ok(COMPANY_K01, "/v1/companies/K01/statements/2026-11")
        .await;
    assert_eq!(st["summary"]["received"], json!("160.00"));
    let coop = &st["cooperatives"][0];
    assert_eq!(
        (
            &coop["cooperative"],
            &coop["collected"],
            &coop["outstanding"]
        ),
        (&json!("COOP"), &json!("150.00"), &json!("150.00"))
    );
    assert_eq!(st["ties_out"], json!(true));

    let owed = fx.get_ok(ACCOUNTANT, "/v1/settlements?month=2026-11").await;
    let k01 = owed["companies"]
        .as_array()
        .expect("companies")
        .iter()
        .find(|c| c["company"] == json!("K01"))
        .expect("K01")
        .clone();
    assert_eq!(
        (&k01["collected"], &k01["outstanding"]),
        (&json!("150.00"), &json!("150.00"))
    );
    // The settlement pays the company what the tills collected, and no more.
    let s = fx.settle("K01", "150.00").await.expect("settlement");
    assert_eq!(s.outstanding, Amount::ZERO);
    assert!(matches!(
        fx.settle("K01", "0.01").await,
        Err(Rejection::InvalidAmount { .. })
    ));
    assert_eq!(fx.balance("company:K01:due_from:COOP").await, Amount::ZERO);
    assert_eq!(fx.balance("company:K01:cash:bank").await, y("150.00"));
    let report = fx.app.verify().await.expect("verify");
    assert!(report.ok(), "{:?}", report.first_problem);
}

/// Tills paying one company's fees at once get receipts 1..N, no gap, no repeat.
async fn parallel_fee_payments_number_their_receipts_without_gaps(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    fx.bills("K01", "2026-11").await;
    const N: usize = 24;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let app = fx.app.clone();
            tokio::spawn(async move {
                app.run(Command::PayFee(FeePayment {
                    household: if i % 2 == 0 { "H1" } else { "H2" }.into(),
                    amount: Amount::from_fen(100 + i as i64),
                    method: PayMethod::Cash,
                    reference: format!("till {i}"),
                    company: None,
                    shop: Some("S1".into()),
                }))
                .await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        match t.await.expect("task").expect("store") {
            Ok(Receipt::FeePayment(r)) => numbers.push(r.receipt),
            other => panic!("{other:?}"),
        }
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=N as i64).collect::<Vec<_>>());
    assert!(fx.app.verify().await.expect("verify").ok());
}

/// What a household owes, as the till reads it before taking a fee: amounts, the unpaid bills
/// oldest first and the company, nothing personal; cashiers and admins only.
async fn a_till_reads_what_a_household_owes_and_nothing_personal(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    for month in ["2026-10", "2026-11"] {
        fx.bills("K01", month).await;
    }
    let path = "/v1/till/households/H1/fees";
    let r = fx.get_ok(CASHIER, path).await;
    let mut keys: Vec<&str> = r
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "arrears",
            "as_of",
            "balance",
            "bills",
            "company",
            "company_name",
            "household",
            "owed_elsewhere",
            "prepaid"
        ],
        "amounts and the company only: {r}"
    );
    assert_eq!(r["owed_elsewhere"], json!([]), "{r}");
    assert_eq!(
        (&r["household"], &r["company"], &r["as_of"]),
        (&json!("H1"), &json!("K01"), &json!("2026-11-16"))
    );
    assert!(r["company_name"].is_string(), "{r}");
    assert_eq!(
        (&r["balance"], &r["arrears"], &r["prepaid"]),
        (&json!("96.08"), &json!("96.08"), &json!("0.00"))
    );
    assert_eq!(
        r["bills"],
        json!([
            { "month": "2026-10", "amount": "48.04", "settled": "0.00", "open": "48.04" },
            { "month": "2026-11", "amount": "48.04", "settled": "0.00", "open": "48.04" },
        ])
    );

    // After a payment at the till: the oldest bill is gone, the next partly settled.
    let (status, paid, _) = fx
        .post_keyed(
            CASHIER,
            "/v1/till/fee-payments",
            json!({ "household": "H1", "amount": "60.00", "method": "cash" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let r = fx.get_ok(CASHIER, path).await;
    assert_eq!(
        (&r["balance"], &r["arrears"]),
        (&json!("36.08"), &json!("36.08"))
    );
    assert_eq!(
        r["bills"],
        json!([{ "month": "2026-11", "amount": "48.04", "settled": "11.96", "open": "36.08" }])
    );
    // Paid ahead: no bills, the prepaid amount.
    let (status, paid, _) = fx
        .post_keyed(
            CASHIER,
            "/v1/till/fee-payments",
            json!({ "household": "H1", "amount": "40.00", "method": "wechat" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let r = fx.get_ok(ADMIN, path).await;
    assert_eq!(
        (&r["balance"], &r["arrears"], &r["prepaid"], &r["bills"]),
        (&json!("-3.92"), &json!("0.00"), &json!("3.92"), &json!([]))
    );

    // Nobody else reads it through the till's door; an unknown household does not exist.
    for token in [ACCOUNTANT, COMPANY_K01, COMPANY_K02] {
        let r = fx.get(token, path).await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let r = fx.get(CASHIER, "/v1/till/households/NOPE/fees").await;
    assert_problem(&r, StatusCode::NOT_FOUND, "not_found", Some("household"));
}

/// A compound that moved to another company: the till reads the bills the company in force is
/// owed (which its payment settles) and its balance, apart from the household's position with
/// the former company — owed there or paid it ahead — and a payment at the till leaves that
/// position as it was.
async fn a_till_shows_a_former_company_s_position_apart_after_a_move(backend: Backend) {
    // (paid to K01 before the move, K01's position after it, its months still unpaid)
    for (paid_before, k01, k01_months) in [
        (None, "48.04", json!(["2026-10"])),
        (Some("60.00"), "-11.96", json!([])),
    ] {
        let fx = Fx::new(backend, "2026-11-16").await;
        fx.bills("K01", "2026-10").await;
        if let Some(amount) = paid_before {
            fx.pay("H1", amount).await.expect("paid at K01's office");
        }
        fx.move_compound("HX01", "K02", "2026-11").await;
        fx.bills("K02", "2026-11").await;
        let path = "/v1/till/households/H1/fees";
        let r = fx.get_ok(CASHIER, path).await;
        assert_eq!(r["company"], json!("K02"), "{r}");
        assert_eq!(
            r["bills"],
            json!([{ "month": "2026-11", "amount": "48.04", "settled": "0.00", "open": "48.04" }]),
            "{r}"
        );
        assert_eq!(
            (&r["balance"], &r["arrears"], &r["prepaid"]),
            (&json!("48.04"), &json!("48.04"), &json!("0.00")),
            "K01's position is not in what a payment here works on: {r}"
        );
        let elsewhere = r["owed_elsewhere"].as_array().expect("owed_elsewhere");
        assert_eq!(elsewhere.len(), 1, "{r}");
        assert_eq!(
            (
                &elsewhere[0]["company"],
                &elsewhere[0]["balance"],
                &elsewhere[0]["months"]
            ),
            (&json!("K01"), &json!(k01), &k01_months)
        );
        assert!(elsewhere[0]["company_name"].is_string(), "{r}");

        let (status, paid, _) = fx
            .post_keyed(
                CASHIER,
                "/v1/till/fee-payments",
                json!({ "household": "H1", "amount": "48.04", "method": "cash" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{paid}");
        let r = fx.get_ok(CASHIER, path).await;
        assert_eq!(
            (&r["balance"], &r["arrears"], &r["bills"]),
            (&json!("0.00"), &json!("0.00"), &json!([])),
            "{r}"
        );
        assert_eq!(r["owed_elsewhere"][0]["balance"], json!(k01), "{r}");
        assert!(fx.app.verify().await.expect("verify").ok());
    }
}

/// A move recorded ahead of its month has not taken effect: the till's read is for the company
/// in force on the business date, as the payment is.
async fn a_till_reads_the_company_in_force_before_a_recorded_move(backend: Backend) {
    let fx = Fx::new(backend, "2026-11-16").await;
    fx.bills("K01", "2026-11").await;
    fx.move_compound("HX01", "K02", "2026-12").await;
    let path = "/v1/till/households/H1/fees";
    let r = fx.get_ok(CASHIER, path).await;
    assert_eq!(
        (&r["company"], &r["balance"], &r["owed_elsewhere"]),
        (&json!("K01"), &json!("48.04"), &json!([])),
        "{r}"
    );
    assert_eq!(
        r["bills"],
        json!([{ "month": "2026-11", "amount": "48.04", "settled": "0.00", "open": "48.04" }])
    );
    let (status, paid, _) = fx
        .post_keyed(
            CASHIER,
            "/v1/till/fee-payments",
            json!({ "household": "H1", "amount": "48.04", "method": "cash" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["company"], json!("K01"), "{paid}");
    let r = fx.get_ok(CASHIER, path).await;
    assert_eq!(
        (&r["company"], &r["balance"], &r["bills"]),
        (&json!("K01"), &json!("0.00"), &json!([])),
        "{r}"
    );
}

// Every body above on every backend

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::pg_support::available() {
                        return;
                    }
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend! {
    a_month_so_far_is_estimated_as_its_close_would_compute_it,
    bills_follow_the_schedule_and_a_month_is_billed_once,
    payments_go_to_the_oldest_bill_first_and_the_rest_is_prepaid,
    arrears_are_aged_by_the_month_of_each_bill,
    a_thousand_is_shared_by_three_equal_spenders_and_the_tie_break_picks_the_extra_fen,
    a_household_owing_less_than_its_share_gets_what_it_owes_and_the_rest_is_reallocated,
    a_close_over_many_households_settles_every_share_oldest_bill_first,
    a_loss_is_carried_forward_against_the_next_profit,
    nothing_lands_in_a_month_closed_at_a_loss_even_with_the_clock_set_back,
    verify_recomputes_a_closes_stored_result_from_the_journal,
    a_second_writer_with_its_clock_behind_dates_forward_after_a_close,
    a_month_is_closed_once_after_it_ends_and_nothing_is_posted_into_it_afterwards,
    verify_recomputes_every_close_and_names_a_tampered_one,
    settlements_pay_what_the_cooperative_owes_and_no_more,
    the_statement_ties_out_in_json_csv_and_xlsx,
    the_commands_bill_pay_close_and_print_statements,
    bills_and_closes_count_in_the_month_they_are_for,
    a_close_weighs_the_month_as_it_ended_whenever_it_runs,
    two_cooperatives_closing_one_month_cap_at_the_fees_owed_before_either,
    the_top_up_quote_and_the_top_up_agree_on_the_bonus_given_this_month,
    a_till_takes_a_fee_for_the_company_with_a_numbered_receipt,
    parallel_fee_payments_number_their_receipts_without_gaps,
    a_till_reads_what_a_household_owes_and_nothing_personal,
    a_till_shows_a_former_company_s_position_apart_after_a_move,
    a_till_reads_the_company_in_force_before_a_recorded_move,
}
