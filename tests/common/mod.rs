//! The test harness for the ledger core: a [`TestLedger`] starts the application exactly as
//! production does (`App::open` with [`Settings`]) on a fresh database of its own, seeds the
//! master data every test shares, and offers typed methods (`top_up`, `sell`, `refund_sale`…)
//! that answer with the domain's receipts and rejections.
//!
//! Test bodies take a [`Backend`] and build their ledger with [`TestLedger::on`], so the same
//! body runs against every store implementation (one conformance story per backend): SQLite in a
//! temporary file, and PostgreSQL in a fresh database of the test's own (see `pg_support`).
//!
//! Master data (SPEC §2, §5):
//! - cooperative `COOP` with shops `S1`, `S2`
//! - companies `K01`, `K02`
//! - compounds `HX01` (eligible, K01), `HX02` (eligible, K02), `HX11` (not eligible, K01)
//! - households `H1`, `H2`, `H3` in HX01, `H4` in HX02, `H9` in HX11
//! - catalogue of COOP: see [`CATALOGUE`].

#![allow(dead_code)] // each test binary uses its own part of the harness

// A test binary that uses both harnesses (tests/fees.rs) gets two copies, each with a cluster
// of its own if it runs PostgreSQL tests through both: wasteful but harmless.
#[allow(clippy::duplicate_mod)]
#[path = "../pg_support/mod.rs"]
pub mod pg_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use hongxin::app::{App, Settings};
use hongxin::domain::{
    CatalogItemInput, Command, CreditRefundReceipt, Delivery, Expense, NewCompany, NewCompound,
    NewCooperative, NewHousehold, NewShop, PayMethod, PostedReceipt, Receipt, RefundCredit,
    RefundSale, Rejection, Reverse, Sale, SaleLine, SaleReceipt, SaleRefundReceipt, StockReceipt,
    Tender, TenderType, TopUp, TopUpReceipt, VoidVoucher,
};
use hongxin::money::Amount;
use hongxin::store::{Head, VoucherRow};
use hongxin::voucher::VoucherCode;

pub const COOP: &str = "COOP";
pub const SHOP: &str = "S1";
pub const OTHER_SHOP: &str = "S2";
/// The policy that ships in `policies/`, as entries record it.
pub const POLICY_V1: &str = "spend-50-get-55@1";

/// `(sku, name, unit, price, cost)` of COOP's catalogue.
pub const CATALOGUE: &[(&str, &str, &str, &str, &str)] = &[
    ("APPLE", "苹果", "斤", "1.25", "0.80"),
    ("PEAR", "梨", "斤", "2.25", "1.45"),
    ("EGG", "鸡蛋", "个", "0.95", "0.60"),
    ("RICE", "大米", "袋", "37.80", "30.00"),
];

/// A store implementation the conformance bodies run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the policies come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policies {
    /// The repository's `policies/`, read in place.
    Repo,
    /// A copy of them in the test's own directory, which the test may edit.
    Copy,
}

/// The repository's policies directory.
pub fn repo_policies() -> PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()
}

/// An amount from its string form; panics on a malformed literal (tests only).
pub fn y(s: &str) -> Amount {
    Amount::parse(s).unwrap_or_else(|e| panic!("bad amount literal {s:?}: {e}"))
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("bad date literal {s:?}: {e}"))
}

pub fn qty(s: &str) -> Decimal {
    s.parse()
        .unwrap_or_else(|e| panic!("bad quantity literal {s:?}: {e}"))
}

pub fn wallet(amount: &str) -> Tender {
    Tender {
        kind: TenderType::Wallet,
        amount: y(amount),
        code: None,
    }
}

pub fn voucher(code: &str, amount: &str) -> Tender {
    Tender {
        kind: TenderType::Voucher,
        amount: y(amount),
        code: Some(code.to_string()),
    }
}

pub fn cash(amount: &str) -> Tender {
    Tender {
        kind: TenderType::Cash,
        amount: y(amount),
        code: None,
    }
}

/// A sale at S1 recorded by amount (costed at the profit policy's default cost ratio).
pub fn sale_amount(household: Option<&str>, amount: &str, tenders: Vec<Tender>) -> Sale {
    Sale {
        shop: SHOP.into(),
        household: household.map(str::to_string),
        lines: Vec::new(),
        amount: Some(y(amount)),
        tenders,
    }
}

/// A sale at S1 by catalogue lines `(sku, qty)`.
pub fn sale_lines(household: Option<&str>, lines: &[(&str, &str)], tenders: Vec<Tender>) -> Sale {
    Sale {
        shop: SHOP.into(),
        household: household.map(str::to_string),
        lines: lines
            .iter()
            .map(|(sku, q)| SaleLine {
                sku: (*sku).to_string(),
                qty: qty(q),
            })
            .collect(),
        amount: None,
        tenders,
    }
}

/// A top-up request at S1 paid in cash.
pub fn top_up_request(household: &str, paid: &str, deliver: Delivery) -> TopUp {
    TopUp {
        shop: SHOP.into(),
        household: household.into(),
        paid: y(paid),
        method: PayMethod::Cash,
        deliver,
        bonus: Default::default(),
    }
}

/// Every account balance (by `owner_kind:owner_code:name`) and the chain head: what a refused
/// command must leave exactly as it found it.
pub type Snapshot = (BTreeMap<String, Amount>, Head);

pub struct TestLedger {
    pub app: App,
    pub settings: Settings,
    pub backend: Backend,
    pub policies: Policies,
    /// The PostgreSQL database, dropped when the test ends.
    pg: Option<pg_support::TestDatabase>,
    /// Holds the database (and the policies copy, and the key file) until the test ends.
    dir: tempfile::TempDir,
}

impl TestLedger {
    /// SQLite, the repository's policies, seeded master data, business date `today`.
    pub async fn new(today: &str) -> TestLedger {
        TestLedger::on(Backend::Sqlite, today).await
    }

    pub async fn on(backend: Backend, today: &str) -> TestLedger {
        TestLedger::with(backend, today, Policies::Repo).await
    }

    pub async fn with(backend: Backend, today: &str, policies: Policies) -> TestLedger {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (database, pg, key_file) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("t.db").display()),
                None,
                None,
            ),
            Backend::Postgres => {
                let db = pg_support::fresh_database().await;
                (db.url.clone(), Some(db), Some(dir.path().join("keys.toml")))
            }
        };
        let policies_dir = match policies {
            Policies::Repo => repo_policies(),
            Policies::Copy => {
                let copy = dir.path().join("policies");
                copy_dir(&repo_policies(), &copy);
                copy
            }
        };
        let settings = Settings {
            database,
            policies_dir,
            key_file,
            today: Some(date(today)),
        };
        let app = App::open(&settings)
            .await
            .expect("App::open on a fresh database");
        let ledger = TestLedger {
            app,
            settings,
            backend,
            policies,
            pg,
            dir,
        };
        ledger.seed().await;
        ledger
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn policies_dir(&self) -> &Path {
        &self.settings.policies_dir
    }

    /// Opens the application again on the same database with another business date (as a
    /// restart with a new `HONGXIN_TODAY` would). On failure the running App is kept.
    pub async fn try_reopen(&mut self, today: &str) -> anyhow::Result<()> {
        let settings = Settings {
            today: Some(date(today)),
            ..self.settings.clone()
        };
        let app = App::open(&settings).await?;
        self.app = app;
        self.settings = settings;
        Ok(())
    }

    pub async fn reopen(&mut self, today: &str) {
        if let Err(e) = self.try_reopen(today).await {
            panic!("reopening on {today}: {e:#}");
        }
    }

    async fn seed(&self) {
        let created = |r: Result<Receipt, Rejection>, what: &str| match r {
            Ok(Receipt::Created(_)) => {}
            other => panic!("seeding {what}: {other:?}"),
        };
        created(
            self.run(Command::CreateCooperative(NewCooperative {
                code: COOP.into(),
                name: "红心合作社".into(),
            }))
            .await,
            "cooperative",
        );
        for (code, name) in [(SHOP, "一号店"), (OTHER_SHOP, "二号店")] {
            let shop = NewShop {
                code: code.into(),
                name: name.into(),
                cooperative: COOP.into(),
            };
            created(self.run(Command::CreateShop(shop)).await, code);
        }
        for code in ["K01", "K02"] {
            let company = NewCompany {
                code: code.into(),
                name: format!("物业公司 {code}"),
            };
            created(self.run(Command::CreateCompany(company)).await, code);
        }
        for (code, company, eligible) in [
            ("HX01", "K01", true),
            ("HX02", "K02", true),
            ("HX11", "K01", false),
        ] {
            let compound = NewCompound {
                code: code.into(),
                name: format!("小区 {code}"),
                company: company.into(),
                eligible,
            };
            created(self.run(Command::CreateCompound(compound)).await, code);
        }
        for (code, compound, area) in [
            ("H1", "HX01", "87.35"),
            ("H2", "HX01", "64.10"),
            ("H3", "HX01", "97.09"),
            ("H4", "HX02", "72.00"),
            ("H9", "HX11", "55.50"),
        ] {
            let household = NewHousehold {
                code: code.into(),
                compound: compound.into(),
                area_m2: qty(area),
                name: None,
                building: None,
                grid: None,
            };
            created(self.run(Command::CreateHousehold(household)).await, code);
        }
        for (sku, name, unit, price, cost) in CATALOGUE {
            let item = CatalogItemInput {
                sku: (*sku).into(),
                name: (*name).into(),
                unit: (*unit).into(),
                price: y(price),
                cost: y(cost),
                barcode: None,
            };
            created(
                self.run(Command::UpsertCatalogItem {
                    cooperative: COOP.into(),
                    item,
                })
                .await,
                sku,
            );
        }
    }

    /// Creates a second cooperative with one shop (for vouchers used in the wrong place).
    pub async fn add_cooperative(&self, coop: &str, shop: &str) {
        let c = NewCooperative {
            code: coop.into(),
            name: format!("合作社 {coop}"),
        };
        assert!(matches!(
            self.run(Command::CreateCooperative(c)).await,
            Ok(Receipt::Created(_))
        ));
        let s = NewShop {
            code: shop.into(),
            name: format!("店 {shop}"),
            cooperative: coop.into(),
        };
        assert!(matches!(
            self.run(Command::CreateShop(s)).await,
            Ok(Receipt::Created(_))
        ));
    }

    /// Runs a command as the operator. A store failure fails the test; a rejection is returned.
    pub async fn run(&self, command: Command) -> Result<Receipt, Rejection> {
        self.app.run(command).await.expect("the store failed")
    }

    pub async fn top_up(
        &self,
        household: &str,
        paid: &str,
        deliver: Delivery,
    ) -> Result<TopUpReceipt, Rejection> {
        self.top_up_with(top_up_request(household, paid, deliver))
            .await
    }

    pub async fn top_up_with(&self, request: TopUp) -> Result<TopUpReceipt, Rejection> {
        self.run(Command::TopUp(request)).await.map(|r| match r {
            Receipt::TopUp(r) => r,
            other => panic!("a top-up answered {other:?}"),
        })
    }

    /// Tops up as a voucher and returns its printed code.
    pub async fn issue_voucher(&self, household: &str, paid: &str) -> String {
        let r = self
            .top_up(household, paid, Delivery::Voucher)
            .await
            .expect("voucher top-up");
        r.voucher.expect("a voucher top-up issues a voucher").code
    }

    pub async fn sell(&self, sale: Sale) -> Result<SaleReceipt, Rejection> {
        self.run(Command::Sale(sale)).await.map(|r| match r {
            Receipt::Sale(r) => r,
            other => panic!("a sale answered {other:?}"),
        })
    }

    pub async fn refund_sale(
        &self,
        sale: i64,
        shop: Option<&str>,
        amount: Option<&str>,
    ) -> Result<SaleRefundReceipt, Rejection> {
        let request = RefundSale {
            sale,
            shop: shop.map(str::to_string),
            cooperative: None,
            amount: amount.map(y),
        };
        self.refund_sale_with(request).await
    }

    pub async fn refund_sale_with(
        &self,
        request: RefundSale,
    ) -> Result<SaleRefundReceipt, Rejection> {
        self.run(Command::RefundSale(request))
            .await
            .map(|r| match r {
                Receipt::SaleRefund(r) => r,
                other => panic!("a sale refund answered {other:?}"),
            })
    }

    pub async fn refund_credit(&self, household: &str) -> Result<CreditRefundReceipt, Rejection> {
        self.cash_out(household, None).await
    }

    /// A cash-out of `amount` of paid credit, or of the whole wallet.
    pub async fn cash_out(
        &self,
        household: &str,
        amount: Option<&str>,
    ) -> Result<CreditRefundReceipt, Rejection> {
        let request = RefundCredit {
            household: household.into(),
            cooperative: COOP.into(),
            method: PayMethod::Cash,
            amount: amount.map(|a| Amount::parse(a).expect("an amount")),
        };
        self.run(Command::RefundCredit(request))
            .await
            .map(|r| match r {
                Receipt::CreditRefund(r) => r,
                other => panic!("a credit refund answered {other:?}"),
            })
    }

    pub async fn void_voucher(&self, code: &str) -> Result<CreditRefundReceipt, Rejection> {
        let request = VoidVoucher {
            code: code.into(),
            cooperative: COOP.into(),
            method: PayMethod::Cash,
            memo: Some("lost".into()),
        };
        self.run(Command::VoidVoucher(request))
            .await
            .map(|r| match r {
                Receipt::CreditRefund(r) => r,
                other => panic!("voiding a voucher answered {other:?}"),
            })
    }

    /// An expense of COOP paid in cash, incurred on `date`.
    pub async fn expense(
        &self,
        category: &str,
        amount: &str,
        date_incurred: &str,
    ) -> Result<PostedReceipt, Rejection> {
        let request = Expense {
            cooperative: COOP.into(),
            category: category.into(),
            amount: y(amount),
            date: date(date_incurred),
            memo: None,
            method: PayMethod::Cash,
        };
        self.posted(Command::Expense(request)).await
    }

    /// Goods bought into COOP's stock, paid by bank transfer.
    pub async fn stock_receipt(&self, amount: &str) -> Result<PostedReceipt, Rejection> {
        let request = StockReceipt {
            cooperative: COOP.into(),
            amount: y(amount),
            supplier: Some("果园".into()),
            memo: None,
            method: PayMethod::Bank,
        };
        self.posted(Command::StockReceipt(request)).await
    }

    pub async fn reverse(&self, entry: i64, memo: &str) -> Result<PostedReceipt, Rejection> {
        self.posted(Command::Reverse(Reverse {
            entry,
            memo: memo.into(),
        }))
        .await
    }

    async fn posted(&self, command: Command) -> Result<PostedReceipt, Rejection> {
        self.run(command).await.map(|r| match r {
            Receipt::Posted(r) => r,
            other => panic!("expected a posted entry, got {other:?}"),
        })
    }

    /// `(paid, bonus)` of the household's wallet at COOP; zero when it has none.
    pub async fn wallet(&self, household: &str) -> (Amount, Amount) {
        let view = self
            .app
            .store
            .household(household)
            .await
            .expect("the store failed")
            .unwrap_or_else(|| panic!("no household {household}"));
        view.wallets.iter().find(|w| w.cooperative == COOP).map_or(
            (Amount::ZERO, Amount::ZERO),
            |w| {
                assert_eq!(
                    w.total.fen(),
                    w.paid.fen() + w.bonus.fen(),
                    "wallet total of {household}"
                );
                (w.paid, w.bonus)
            },
        )
    }

    /// The stored voucher a printed code points at.
    pub async fn voucher_row(&self, code: &str) -> VoucherRow {
        let parsed = VoucherCode::verify(&self.app.keys.vouchers, code)
            .unwrap_or_else(|e| panic!("{code} does not verify: {e}"));
        self.app
            .store
            .voucher(parsed.serial())
            .await
            .expect("the store failed")
            .unwrap_or_else(|| panic!("no voucher stored for {code}"))
    }

    pub async fn voucher_balance(&self, code: &str) -> Amount {
        let row = self.voucher_row(code).await;
        assert_eq!(row.balance.fen(), row.paid.fen() + row.bonus.fen());
        row.balance
    }

    pub async fn balances(&self) -> BTreeMap<String, Amount> {
        self.app.store.balances().await.expect("the store failed")
    }

    /// Balance of one of COOP's accounts, e.g. `cash:cash`, `sales`, `promotion`.
    pub async fn coop_balance(&self, name: &str) -> Amount {
        self.balances()
            .await
            .get(&format!("cooperative:{COOP}:{name}"))
            .copied()
            .unwrap_or(Amount::ZERO)
    }

    pub async fn head(&self) -> Head {
        self.app.store.head().await.expect("the store failed")
    }

    pub async fn snapshot(&self) -> Snapshot {
        (self.balances().await, self.head().await)
    }

    /// `store.verify()` finds nothing wrong, and the books balance by account type.
    pub async fn assert_sound(&self) {
        let report = self.app.store.verify().await.expect("the store failed");
        assert!(report.ok(), "verify: {report:?}");
        let balances = self.balances().await;
        assert_no_negative_credit(&balances);
        assert_books_balance(&balances);
    }

    /// The entry an entry reverses, read from the journal (backend-specific SQL).
    pub async fn entry_reverses(&self, entry: i64) -> Option<i64> {
        match self.backend {
            Backend::Sqlite => {
                use sqlx::ConnectOptions;
                let options: sqlx::sqlite::SqliteConnectOptions =
                    self.settings.database.parse().expect("sqlite URL");
                let mut conn = options
                    .read_only(true)
                    .connect()
                    .await
                    .expect("read connection");
                sqlx::query_scalar("SELECT reverses FROM entries WHERE id = ?")
                    .bind(entry)
                    .fetch_one(&mut conn)
                    .await
                    .expect("entry row")
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&self.settings.database)
                    .await
                    .expect("PostgreSQL connection");
                sqlx::query_scalar("SELECT reverses FROM entries WHERE id = $1")
                    .bind(entry)
                    .fetch_one(&mut conn)
                    .await
                    .expect("entry row")
            }
        }
    }
}

/// Asserts a refusal's code and field, and hands it back for its amounts.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, Rejection>,
    code: &str,
    field: Option<&str>,
) -> Rejection {
    match result {
        Ok(r) => panic!("expected {code}, the command succeeded: {r:?}"),
        Err(e) => {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(e.field(), field, "{e:?}");
            e
        }
    }
}

/// Wallet and voucher balances (the bounded accounts) are never negative.
pub fn assert_no_negative_credit(balances: &BTreeMap<String, Amount>) {
    for (name, balance) in balances {
        let credit = name.starts_with("voucher:")
            || (name.starts_with("household:") && name.contains(":wallet:"));
        assert!(!(credit && balance.is_negative()), "{name} is {balance}");
    }
}

/// The normal side of an account path `owner_kind:owner_code:name`: +1 for debit-normal
/// (assets, expenses), -1 for credit-normal (liabilities, equity, revenue).
pub fn debit_normal(path: &str) -> i64 {
    let mut parts = path.splitn(3, ':');
    let (kind, _, name) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
    let debit = match kind {
        Some("cooperative") => match name {
            "sales" | "breakage" => false,
            "cogs" | "inventory" | "promotion" | "profit_distributed" => true,
            "allocation_reserve" => false,
            n if n.starts_with("cash:") || n.starts_with("expense:") => true,
            n if n.starts_with("due_to:") => false,
            _ => panic!("unknown cooperative account {path}"),
        },
        Some("household") => match name {
            "fees" => true,
            n if n.starts_with("wallet:") => false,
            _ => panic!("unknown household account {path}"),
        },
        Some("voucher") => false,
        Some("company") => match name {
            "fee_revenue" => false,
            n if n.starts_with("cash:") || n.starts_with("due_from:") => true,
            _ => panic!("unknown company account {path}"),
        },
        _ => panic!("unknown account {path}"),
    };
    if debit {
        1
    } else {
        -1
    }
}

/// assets + expenses = liabilities + equity + revenue, in fen.
pub fn assert_books_balance(balances: &BTreeMap<String, Amount>) {
    let net: i64 = balances
        .iter()
        .map(|(path, b)| debit_normal(path) * b.fen())
        .sum();
    assert_eq!(
        net, 0,
        "debit-normal minus credit-normal balances: {balances:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create policies copy");
    for entry in std::fs::read_dir(from).expect("read policies") {
        let entry = entry.expect("read policies");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy policy file");
        }
    }
}
