//! `hongxin demo`: a demo database with the programme's shape — 8 property companies, 12
//! formerly unmanaged compounds (10 in the programme), the farm cooperative with 3 shops and a
//! produce catalogue, a few thousand households — and history from the first day of the month two
//! months back (`--months`) to today: top-ups under 居民购物50元换55元, sales with single and split
//! tenders, refunds, expenses and stock; and the property-fee cycle of the second policy — bills
//! on each month's first working day, residents' payments (most on time, some ahead, some
//! behind), the cooperative's month close early in the next month and, a few days later, a
//! settlement of part of what it owes each company. So the companies' statements of the closed
//! months have something in every line at once.
//!
//! Everything is posted through [`App::run`], the same write path as the server, on a manual
//! clock walked day by day. A seeded generator makes the data reproducible (entry hashes differ
//! between runs, since they cover wall-clock posting times and random voucher serials).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use anyhow::Context;
use chrono::{Datelike, Days, Months, NaiveDate, Utc, Weekday};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

use crate::app::{sqlite_path, App};
use crate::clock::{shanghai_today, Clock};
use crate::config::Config;
use crate::domain::{
    CatalogItemInput, CloseMonth, CloseReceipt, Command, Delivery, Expense, FeePayment,
    GenerateBills, Lined, NewCompany, NewCompound, NewCooperative, NewHousehold, NewShop,
    PayMethod, Receipt, RefundCredit, RefundSale, Rejection, Role, Sale, SaleLine, Settlement,
    StockReceipt, StoreError, Tender, TenderType, TopUp,
};
use crate::fees::{month_bounds, month_of};
use crate::money::{mul_rate, Amount, Rounding};
use crate::store::MAX_BATCH;

#[derive(Args)]
pub struct DemoArgs {
    /// Households to create (the source programme has about 23,000)
    #[arg(long, default_value_t = 2400, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub households: u32,
    /// Full calendar months of history before the current one: the history runs from the first
    /// day of the earliest to today, and each of those months is billed, paid and closed
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=24))]
    pub months: u32,
    /// Instead of --months: this many weeks of history ending today (a month is closed only if
    /// they cross a month's end)
    #[arg(long, conflicts_with = "months", value_parser = clap::value_parser!(u32).range(1..=52))]
    pub weeks: Option<u32>,
    /// Seed of the generator: the same seed gives the same households, purchases and amounts
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Replace an existing database: deletes it, its -wal/-shm files and its key file first
    #[arg(long)]
    pub force: bool,
}

const COOP: &str = "COOP";
const COOP_NAME: &str = "红心农业合作社";

const COMPANIES: [(&str, &str); 8] = [
    ("K01", "红心安居物业服务有限公司"),
    ("K02", "惠民物业管理有限公司"),
    ("K03", "宜家物业服务有限公司"),
    ("K04", "和美物业管理有限公司"),
    ("K05", "康泰物业服务有限公司"),
    ("K06", "邻里物业管理有限公司"),
    ("K07", "同心物业服务有限公司"),
    ("K08", "福润物业管理有限公司"),
];

struct CompoundDef {
    code: &'static str,
    name: &'static str,
    company: &'static str,
    /// One of the programme's formerly unmanaged compounds (无物业小区).
    eligible: bool,
    /// Relative number of households.
    size: u32,
    /// The nearest shop, where its residents usually buy.
    shop: usize,
}

const COMPOUNDS: [CompoundDef; 12] = [
    CompoundDef {
        code: "HX01",
        name: "幸福里小区",
        company: "K01",
        eligible: true,
        size: 320,
        shop: 0,
    },
    CompoundDef {
        code: "HX02",
        name: "纺织厂宿舍",
        company: "K01",
        eligible: true,
        size: 260,
        shop: 0,
    },
    CompoundDef {
        code: "HX03",
        name: "粮站家属院",
        company: "K02",
        eligible: true,
        size: 180,
        shop: 0,
    },
    CompoundDef {
        code: "HX04",
        name: "建设路小区",
        company: "K02",
        eligible: true,
        size: 240,
        shop: 1,
    },
    CompoundDef {
        code: "HX05",
        name: "机械厂小区",
        company: "K03",
        eligible: true,
        size: 200,
        shop: 1,
    },
    CompoundDef {
        code: "HX06",
        name: "工人新村",
        company: "K04",
        eligible: true,
        size: 150,
        shop: 1,
    },
    CompoundDef {
        code: "HX07",
        name: "东风小区",
        company: "K05",
        eligible: true,
        size: 220,
        shop: 2,
    },
    CompoundDef {
        code: "HX08",
        name: "光明小区",
        company: "K06",
        eligible: true,
        size: 170,
        shop: 2,
    },
    CompoundDef {
        code: "HX09",
        name: "向阳小区",
        company: "K07",
        eligible: true,
        size: 190,
        shop: 2,
    },
    CompoundDef {
        code: "HX10",
        name: "朝阳小区",
        company: "K08",
        eligible: true,
        size: 210,
        shop: 1,
    },
    CompoundDef {
        code: "HX11",
        name: "锦绣花园",
        company: "K07",
        eligible: false,
        size: 150,
        shop: 2,
    },
    CompoundDef {
        code: "HX12",
        name: "滨河苑",
        company: "K08",
        eligible: false,
        size: 110,
        shop: 0,
    },
];

/// Shops with their weekly rent and wages in yuan, for 2,400 households.
const SHOPS: [(&str, &str, i64, i64); 3] = [
    ("S1", "红心农业合作社幸福里店", 600, 1_400),
    ("S2", "红心农业合作社建设路店", 500, 1_000),
    ("S3", "红心农业合作社东风店", 400, 700),
];

struct Produce {
    sku: &'static str,
    name: &'static str,
    unit: &'static str,
    price_fen: i64,
    cost_fen: i64,
    /// How often it lands in a basket, relatively.
    popularity: u32,
    /// The printed EAN-13 of packaged goods; loose produce has none.
    barcode: Option<&'static str>,
}

const fn item(
    sku: &'static str,
    name: &'static str,
    unit: &'static str,
    price_fen: i64,
    cost_fen: i64,
    popularity: u32,
) -> Produce {
    Produce {
        sku,
        name,
        unit,
        price_fen,
        cost_fen,
        popularity,
        barcode: None,
    }
}

/// Packaged goods: the item with its printed barcode.
const fn packed(p: Produce, barcode: &'static str) -> Produce {
    Produce {
        barcode: Some(barcode),
        ..p
    }
}

const CATALOGUE: [Produce; 26] = [
    item("V01", "大白菜", "斤", 120, 80, 30),
    item("V02", "土豆", "斤", 180, 110, 25),
    item("V03", "西红柿", "斤", 350, 230, 25),
    item("V04", "黄瓜", "斤", 300, 190, 20),
    item("V05", "茄子", "斤", 320, 200, 12),
    item("V06", "青椒", "斤", 400, 260, 14),
    item("V07", "胡萝卜", "斤", 200, 120, 14),
    item("V08", "大葱", "斤", 280, 180, 16),
    item("V09", "菠菜", "把", 250, 150, 14),
    item("V10", "芹菜", "把", 200, 120, 10),
    item("V11", "白萝卜", "斤", 150, 90, 10),
    item("V12", "豆角", "斤", 500, 340, 10),
    item("F01", "苹果", "斤", 580, 390, 14),
    item("F02", "梨", "斤", 450, 300, 8),
    item("F03", "香蕉", "斤", 380, 260, 12),
    item("E01", "鸡蛋", "斤", 650, 520, 28),
    packed(
        item("E02", "土鸡蛋 (30枚)", "盒", 3600, 2700, 4),
        "6920000001019",
    ),
    packed(
        item("G01", "大米 (10kg)", "袋", 5800, 4600, 5),
        "6920000002016",
    ),
    packed(
        item("G02", "面粉 (5kg)", "袋", 2800, 2200, 4),
        "6920000002023",
    ),
    item("G03", "小米", "斤", 600, 420, 5),
    packed(
        item("O01", "菜籽油 5L", "桶", 8900, 7200, 3),
        "6920000003013",
    ),
    packed(
        item("O02", "花生油 5L", "桶", 12900, 10500, 2),
        "6920000003020",
    ),
    item("M01", "猪肉 (五花)", "斤", 1680, 1350, 12),
    packed(
        item("M02", "鲜牛奶 (1L)", "盒", 1250, 950, 10),
        "6920000004010",
    ),
    item("T01", "豆腐", "斤", 300, 180, 18),
    item("T02", "馒头", "个", 100, 55, 20),
];

const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋",
];

const SUPPLIERS: [&str; 3] = ["红心合作社种植基地", "城北农产品批发市场", "惠农粮油批发部"];

/// The default size; expenses and opening stock scale from it.
const REFERENCE_HOUSEHOLDS: i64 = 2_400;

pub async fn run(config: &Config, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = &config.settings;
    let db = sqlite_path(&settings.database).ok_or_else(|| {
        anyhow::anyhow!("the demo builds an SQLite database: give --database sqlite://PATH")
    })?;
    if args.force {
        remove_database(&db, &settings.key_file_path()?)?;
    }
    let today = settings.today.unwrap_or_else(|| shanghai_today(Utc::now()));
    let first = first_day(today, &args)?;
    let days = (today - first).num_days() as u64 + 1;
    let clock = Clock::manual(first);
    let app = App::open_with_clock(settings, clock).await?;
    if app.store.head().await?.seq > 0 || app.store.household("HX01-0001").await?.is_some() {
        anyhow::bail!(
            "{} already holds data; use --force to replace it (this deletes the database and its key file)",
            db.display()
        );
    }

    let mut sim = Sim::new(&app, &args, first);
    sim.master_data().await?;
    let bar = super::progress_bar(days, "posting history");
    for index in 0..days {
        let date = first
            .checked_add_days(Days::new(index))
            .ok_or_else(|| anyhow::anyhow!("date overflow after {first}"))?;
        bar.set_message(date.to_string());
        sim.day(index as usize, days as usize, date, date == today)
            .await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tokens = sim.tokens().await?;
    let head = app.store.head().await?;
    sim.print_summary(
        &settings.database,
        first,
        today,
        started.elapsed().as_secs_f64(),
        &head.hash,
        head.seq,
    );
    println!();
    println!("Tokens (shown only now; the database keeps only their SHA-256):");
    for (role, scope, token) in &tokens {
        println!(
            "  {:<16} {:<10} {token}",
            role.as_str(),
            scope.as_deref().unwrap_or("-")
        );
    }
    // The latest closed month's statement has every line filled in.
    let month = sim
        .closes
        .last()
        .map_or_else(|| month_of(today), |c| c.month.clone());
    println!();
    println!("What next:");
    for (command, what) in [
        (
            "hongxin verify".to_string(),
            "recompute the hash chain, every balance and every month close".to_string(),
        ),
        (
            format!("hongxin statement --company K01 --month {month}"),
            "K01's statement (对账单); --format json, csv or xlsx".into(),
        ),
        (
            format!("GET /v1/companies/K01/statements/{month}"),
            "the same from hongxin serve, with K01's company token as Bearer".into(),
        ),
        (
            "hongxin serve, then open /alliance".into(),
            "the alliance's view, signed in with the alliance token".into(),
        ),
        (
            "hongxin token create --role cashier --shop S1".into(),
            "another till's token".into(),
        ),
        (
            "hongxin import households FILE.csv".into(),
            "more households (code,compound,area_m2[,name,building,grid])".into(),
        ),
        (
            "hongxin keys list".into(),
            "the voucher signing keys".into(),
        ),
    ] {
        println!("  {command:<50} {what}");
    }
    println!(
        "Use the same --database ({}) and, for these dates, --today {today}.",
        crate::app::redact_url(&settings.database)
    );
    Ok(())
}

/// The first business date of the history: the first day of the month `--months` before
/// today's, or `--weeks` weeks before today.
fn first_day(today: NaiveDate, args: &DemoArgs) -> anyhow::Result<NaiveDate> {
    let first = match args.weeks {
        Some(weeks) => today.checked_sub_days(Days::new(u64::from(weeks) * 7 - 1)),
        None => today
            .with_day(1)
            .and_then(|d| d.checked_sub_months(Months::new(args.months))),
    };
    first.ok_or_else(|| anyhow::anyhow!("the history before {today} does not start on a date"))
}

/// Deletes the database, its WAL files and its key file; missing ones are fine.
fn remove_database(db: &Path, key_file: &Path) -> anyhow::Result<()> {
    let mut paths = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        paths.push(p.into());
    }
    paths.push(key_file.to_path_buf());
    for path in paths {
        match std::fs::remove_file(&path) {
            Ok(()) => eprintln!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

type Answer = Result<Result<Receipt, Rejection>, StoreError>;

/// Runs commands through the one write path with all of them queued before any answer is
/// awaited, so the writer commits them in a few batches rather than one durable commit each.
/// They are queued in the order given (each future is first polled in turn, and a send to the
/// queue completes at once while there is room), so the outcome is that of running them one
/// after another.
async fn run_in_order(
    app: &App,
    commands: Vec<Command>,
) -> anyhow::Result<Vec<Result<Receipt, Rejection>>> {
    let mut answers = Vec::with_capacity(commands.len());
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        // One chunk is at most one write transaction.
        let mut pending: Vec<Pin<Box<dyn Future<Output = Answer> + '_>>> = commands
            .by_ref()
            .take(MAX_BATCH)
            .map(|c| Box::pin(app.run(c)) as Pin<Box<_>>)
            .collect();
        let mut done: Vec<Option<Answer>> = pending.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut all_done = true;
            for (future, slot) in pending.iter_mut().zip(done.iter_mut()) {
                if slot.is_none() {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(answer) => *slot = Some(answer),
                        Poll::Pending => all_done = false,
                    }
                }
            }
            if all_done {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        for answer in done.into_iter().flatten() {
            answers.push(answer?);
        }
    }
    Ok(answers)
}

/// Picks an index with probability proportional to its weight.
fn pick<R: Rng>(rng: &mut R, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    if total == 0 {
        return 0;
    }
    let mut roll = rng.random_range(0..total);
    for (i, w) in weights.iter().enumerate() {
        if roll < *w {
            return i;
        }
        roll -= w;
    }
    weights.len() - 1
}

fn percent<R: Rng>(rng: &mut R, p: u32) -> bool {
    rng.random_range(0..100) < p
}

struct Household {
    code: String,
    compound: &'static str,
    area_m2: Decimal,
    shop: usize,
    /// Tops up large amounts and so meets the monthly bonus cap.
    heavy: bool,
    habit: FeeHabit,
}

/// How a household pays its property fees (物业费).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FeeHabit {
    /// Pays what it owes within the month.
    OnTime,
    /// Pays what it owes, and now and then two months ahead with it.
    Ahead,
    /// A month behind: pays last month's bill during this one.
    Behind,
    /// Pays all it owes in some months and nothing in others.
    Erratic,
    /// Has paid nothing.
    Never,
}

struct HeldVoucher {
    code: String,
    /// Balance in fen as last seen.
    balance: i64,
}

struct HeldSale {
    id: i64,
    shop: usize,
    day: usize,
    /// Still refundable, in fen.
    remaining: i64,
    household: Option<usize>,
    vouchers: Vec<usize>,
}

/// What a command was for, so its answer can update the simulation.
enum Plan {
    TopUp {
        household: usize,
    },
    Sale {
        shop: usize,
        day: usize,
        household: Option<usize>,
        vouchers: Vec<usize>,
    },
    SaleRefund {
        sale: usize,
    },
    CreditRefund {
        household: usize,
    },
    Posting,
    Bills,
    FeePayment {
        household: usize,
        method: PayMethod,
    },
    Close,
    Settlement {
        company: &'static str,
    },
}

#[derive(Default)]
struct Stats {
    topups: u64,
    topup_paid: i64,
    topup_bonus: i64,
    topups_as_vouchers: u64,
    sales: u64,
    sales_total: i64,
    by_tender: BTreeMap<&'static str, i64>,
    sale_refunds: u64,
    sale_refunded: i64,
    credit_refunds: u64,
    credit_refunded: i64,
    credit_forfeited: i64,
    postings: u64,
    postings_total: i64,
    bills: u64,
    billed: i64,
    fee_payments: u64,
    fee_paid: i64,
    fee_by_method: BTreeMap<&'static str, i64>,
    /// Paid beyond every open bill at the time.
    fee_paid_ahead: i64,
    settlements: u64,
    settled: i64,
    refused: BTreeMap<&'static str, u64>,
}

struct Sim<'a> {
    app: &'a App,
    rng: StdRng,
    households_wanted: u32,
    households: Vec<Household>,
    /// Households of the programme's compounds who joined it.
    enrolled: Vec<usize>,
    /// Households of compounds outside the programme, who sometimes try anyway.
    outside: Vec<usize>,
    /// Wallet totals in fen, as last seen.
    wallets: Vec<i64>,
    vouchers: Vec<HeldVoucher>,
    sales: Vec<HeldSale>,
    /// Cost of goods sold since the last stock receipt, in fen: what the next one restocks.
    cost_since_stock: i64,
    /// The first day of the history.
    first: NaiveDate,
    /// Property-fee balance per household in fen (positive owes, negative paid ahead), as last
    /// seen.
    fees: Vec<i64>,
    /// Each household's monthly fee in fen, under the schedule of the month last billed.
    monthly_fee: Vec<i64>,
    /// Households who mean to pay their fees on a date.
    fee_days: BTreeMap<NaiveDate, Vec<usize>>,
    /// Months billed (`YYYY-MM`).
    billed: BTreeSet<String>,
    closes: Vec<CloseReceipt>,
    /// Months (`YYYY-MM`) in which the cooperative paid the companies part of what it owes.
    settled_in: BTreeSet<String>,
    /// What the cooperative owes each company, in fen, as last seen.
    due_to: BTreeMap<&'static str, i64>,
    /// Fee-payment references handed out today.
    references: u32,
    stats: Stats,
}

impl<'a> Sim<'a> {
    fn new(app: &'a App, args: &DemoArgs, first: NaiveDate) -> Sim<'a> {
        Sim {
            app,
            rng: StdRng::seed_from_u64(args.seed),
            households_wanted: args.households,
            households: Vec::new(),
            enrolled: Vec::new(),
            outside: Vec::new(),
            wallets: Vec::new(),
            vouchers: Vec::new(),
            sales: Vec::new(),
            cost_since_stock: 0,
            first,
            fees: Vec::new(),
            monthly_fee: Vec::new(),
            fee_days: BTreeMap::new(),
            billed: BTreeSet::new(),
            closes: Vec::new(),
            settled_in: BTreeSet::new(),
            due_to: BTreeMap::new(),
            references: 0,
            stats: Stats::default(),
        }
    }

    /// An amount for 2,400 households, scaled to the demo's size (at least 1.00).
    fn scaled(&self, fen: i64) -> i64 {
        (fen * i64::from(self.households_wanted) / REFERENCE_HOUSEHOLDS).max(100)
    }

    async fn master_data(&mut self) -> anyhow::Result<()> {
        let mut commands = Vec::new();
        for (code, name) in COMPANIES {
            commands.push(Command::CreateCompany(NewCompany {
                code: code.into(),
                name: name.into(),
            }));
        }
        for (i, c) in COMPOUNDS.iter().enumerate() {
            commands.push(Command::CreateCompound(NewCompound {
                code: c.code.into(),
                name: c.name.into(),
                company: c.company.into(),
                eligible: c.eligible,
            }));
            // The programme's compounds were taken over one after another, the last ones in the
            // history's first month: the alliance's chart marks each takeover.
            if c.eligible {
                let months_before = 3u32.saturating_sub(i as u32 / 3);
                let taken_over_on = self
                    .first
                    .checked_sub_months(Months::new(months_before))
                    .and_then(|d| d.checked_add_days(Days::new(i as u64 * 2)));
                commands.push(Command::SetCompoundTakeover {
                    compound: c.code.into(),
                    taken_over_on,
                });
            }
        }
        commands.push(Command::CreateCooperative(NewCooperative {
            code: COOP.into(),
            name: COOP_NAME.into(),
        }));
        for (code, name, _, _) in SHOPS {
            commands.push(Command::CreateShop(NewShop {
                code: code.into(),
                name: name.into(),
                cooperative: COOP.into(),
            }));
        }
        commands.push(Command::ImportCatalog {
            cooperative: COOP.into(),
            rows: CATALOGUE
                .iter()
                .zip(2..)
                .map(|(p, line)| Lined {
                    line,
                    row: CatalogItemInput {
                        sku: p.sku.into(),
                        name: p.name.into(),
                        unit: p.unit.into(),
                        price: Amount::from_fen(p.price_fen),
                        cost: Amount::from_fen(p.cost_fen),
                        barcode: p.barcode.map(str::to_string),
                    },
                })
                .collect(),
        });
        let rows = self.make_households();
        commands.push(Command::ImportHouseholds { rows });
        for answer in run_in_order(self.app, commands).await? {
            if let Err(rejection) = answer {
                anyhow::bail!(
                    "setting up master data: {rejection} ({}); to start afresh use --force",
                    rejection.code()
                );
            }
        }
        Ok(())
    }

    /// Households per compound in proportion to its size, HX01-0001 first.
    fn make_households(&mut self) -> Vec<Lined<NewHousehold>> {
        let wanted = u64::from(self.households_wanted);
        let total_size: u64 = COMPOUNDS.iter().map(|c| u64::from(c.size)).sum();
        let mut counts: Vec<u64> = COMPOUNDS
            .iter()
            .map(|c| wanted * u64::from(c.size) / total_size)
            .collect();
        // Rounding down loses less than one household per compound: hand those out from HX01.
        let mut short = wanted - counts.iter().sum::<u64>();
        for count in counts.iter_mut() {
            if short == 0 {
                break;
            }
            *count += 1;
            short -= 1;
        }
        let mut rows = Vec::with_capacity(self.households_wanted as usize);
        for (compound, count) in COMPOUNDS.iter().zip(counts) {
            for n in 1..=count {
                let code = format!("{}-{n:04}", compound.code);
                // 45.00 to 140.00 m², most flats in the middle: the mean of two uniform draws.
                let centi = 4_500
                    + (self.rng.random_range(0..=9_500) + self.rng.random_range(0..=9_500)) / 2;
                let name = percent(&mut self.rng, 70).then(|| {
                    let surname = SURNAMES[self.rng.random_range(0..SURNAMES.len())];
                    let stars = if percent(&mut self.rng, 60) {
                        "**"
                    } else {
                        "*"
                    };
                    format!("{surname}{stars}")
                });
                let index = self.households.len();
                if compound.eligible {
                    // About 45% join; the household whose resident token is printed always does.
                    if index == 0 || percent(&mut self.rng, 45) {
                        self.enrolled.push(index);
                    }
                } else {
                    self.outside.push(index);
                }
                let heavy = percent(&mut self.rng, 4);
                let habit = [
                    FeeHabit::OnTime,
                    FeeHabit::Ahead,
                    FeeHabit::Behind,
                    FeeHabit::Erratic,
                    FeeHabit::Never,
                ][pick(&mut self.rng, &[76, 8, 9, 5, 2])];
                let area_m2 = Decimal::new(centi, 2);
                self.households.push(Household {
                    code: code.clone(),
                    compound: compound.code,
                    area_m2,
                    shop: compound.shop,
                    heavy,
                    habit,
                });
                self.wallets.push(0);
                self.fees.push(0);
                self.monthly_fee.push(0);
                rows.push(Lined {
                    line: rows.len() as u64 + 2,
                    row: NewHousehold {
                        code,
                        compound: compound.code.into(),
                        area_m2,
                        name,
                        // 24 flats to a building (楼栋), about 150 households to a grid (网格).
                        building: Some(format!("{}栋", (n - 1) / 24 + 1)),
                        grid: Some(format!("第{}网格", (n - 1) / 150 + 1)),
                    },
                });
            }
        }
        rows
    }

    async fn day(
        &mut self,
        index: usize,
        days: usize,
        date: NaiveDate,
        last: bool,
    ) -> anyhow::Result<()> {
        self.app.clock.set(date);
        self.office(date, last).await?;
        // Busier at weekends, and in the first days of the programme everyone tops up.
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let busy = if weekend { 13 } else { 10 };
        let launch = if index < 3 { 2 } else { 1 };
        let n = self.households.len() as u64;

        let mut morning = self.accountant(index, date)?;
        let topups = (n * busy * launch / 1_000).max(1);
        for _ in 0..topups {
            if let Some(work) = self.plan_top_up() {
                morning.push(work);
            }
        }
        self.references = 0;
        for h in self.fee_days.remove(&date).unwrap_or_default() {
            if let Some(work) = self.plan_fee_payment(h, date) {
                morning.push(work);
            }
        }
        self.phase(morning).await?;

        let sales = (n * busy / 140).max(2);
        let mut work = Vec::new();
        let mut spend = Spending::default();
        for _ in 0..sales {
            work.push(self.plan_sale(index, &mut spend)?);
        }
        self.phase(work).await?;

        let refunds = self.plan_refunds(index, days);
        self.phase(refunds).await
    }

    /// The offices' work of the day, before the shops open: on a month's first working day
    /// (and on the first day of the history) every company bills the month; from the 3rd the
    /// cooperative's accountant closes the month before; from the 8th the cooperative pays each
    /// company part of what the close made it owe. On the last day of the history whatever is
    /// still due is done then, so every full month of the history ends closed.
    async fn office(&mut self, date: NaiveDate, last: bool) -> anyhow::Result<()> {
        let working = !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let month = month_of(date);
        let mut work = Vec::new();
        let bill = !self.billed.contains(&month) && (working || date == self.first || last);
        if bill {
            for (company, _) in COMPANIES {
                work.push((
                    Plan::Bills,
                    Command::GenerateBills(GenerateBills {
                        company: company.into(),
                        month: month.clone(),
                    }),
                ));
            }
        }
        // The month before, if the history covers any of it.
        let previous = date
            .with_day(1)
            .and_then(|d| d.pred_opt())
            .filter(|d| *d >= self.first)
            .map(month_of);
        let closed = |m: &str| self.closes.iter().any(|c| c.month == m);
        if let Some(previous) = &previous {
            if !closed(previous) && ((working && date.day() >= 3) || last) {
                // After this month's bills, so the close's cap at fees owed sees them.
                work.push((
                    Plan::Close,
                    Command::CloseMonth(CloseMonth {
                        cooperative: COOP.into(),
                        month: previous.clone(),
                        dry_run: false,
                        estimate: false,
                    }),
                ));
            }
        }
        if !work.is_empty() {
            self.phase(work).await?;
            self.reread_fees().await?;
            if bill {
                self.billed.insert(month.clone());
                self.schedule_fee_payments(date)?;
            }
        }
        let settle = previous.as_deref().is_some_and(|p| {
            self.closes.iter().any(|c| c.month == p)
                && !self.settled_in.contains(&month)
                && ((working && date.day() >= 8) || last)
        });
        if settle {
            self.settled_in.insert(month);
            let mut work = Vec::new();
            for (company, owed) in &self.due_to {
                // Most of it, in whole yuan; the rest waits for the next transfer.
                let yuan = owed * self.rng.random_range(60..=90) / 100 / 100;
                if yuan > 0 {
                    work.push((
                        Plan::Settlement { company },
                        Command::Settle(Settlement {
                            cooperative: COOP.into(),
                            company: (*company).into(),
                            amount: Amount::from_yuan(yuan),
                            reference: format!("BANK-{}-{company}", date.format("%Y%m%d")),
                        }),
                    ));
                }
            }
            self.phase(work).await?;
        }
        Ok(())
    }

    /// Each household's monthly fee under the schedule of the month billed on `date`, and the
    /// day in the month (if any) it means to pay.
    fn schedule_fee_payments(&mut self, date: NaiveDate) -> anyhow::Result<()> {
        let (month_first, month_last) = month_bounds("month", &month_of(date))?;
        let schedule = self.app.policies.fees(month_first).ok_or_else(|| {
            anyhow::anyhow!("no property-fee schedule in effect on {month_first}")
        })?;
        let span = (month_last - date).num_days();
        for (h, household) in self.households.iter().enumerate() {
            self.monthly_fee[h] = schedule
                .rules
                .monthly_fee(household.compound, household.area_m2)?
                .fen();
            let rng = &mut self.rng;
            let offset = match household.habit {
                // Most pay in the first three weeks, and early rather than late.
                FeeHabit::OnTime | FeeHabit::Ahead => {
                    let within = span.min(20);
                    Some(
                        rng.random_range(0..=within)
                            .min(rng.random_range(0..=within)),
                    )
                }
                FeeHabit::Behind => Some(rng.random_range(0..=span)),
                FeeHabit::Erratic => percent(rng, 40).then(|| rng.random_range(0..=span)),
                FeeHabit::Never => None,
            };
            if let Some(offset) = offset {
                let day = date + Days::new(offset as u64);
                self.fee_days.entry(day).or_default().push(h);
            }
        }
        Ok(())
    }

    /// A resident pays the company's office, by phone, in cash or by transfer, what the
    /// household's habit says: what it owes, that and two months more, or only last month's.
    fn plan_fee_payment(&mut self, h: usize, date: NaiveDate) -> Option<(Plan, Command)> {
        let household = &self.households[h];
        let rng = &mut self.rng;
        let (owed, fee) = (self.fees[h], self.monthly_fee[h]);
        let fen = match household.habit {
            FeeHabit::OnTime | FeeHabit::Erratic => owed,
            FeeHabit::Ahead if owed > 0 && percent(rng, 50) => owed + 2 * fee,
            FeeHabit::Ahead => owed,
            FeeHabit::Behind => owed - fee,
            FeeHabit::Never => 0,
        };
        if fen <= 0 {
            return None;
        }
        let (method, prefix) = [
            (PayMethod::Wechat, "WX"),
            (PayMethod::Alipay, "ZFB"),
            (PayMethod::Cash, "XJ"),
            (PayMethod::Bank, "YH"),
        ][pick(rng, &[40, 25, 15, 20])];
        // Like the payment slip's number: the date and a serial of the day.
        self.references += 1;
        let reference = format!(
            "{prefix}{}{:05}",
            date.format("%Y%m%d"),
            10_000 + self.references * 7 + rng.random_range(0..7)
        );
        Some((
            Plan::FeePayment {
                household: h,
                method,
            },
            Command::PayFee(FeePayment {
                household: household.code.clone(),
                amount: Amount::from_fen(fen),
                method,
                reference,
                company: None,
                shop: None,
            }),
        ))
    }

    /// Every household's fee balance from the ledger, after bills and closes moved them.
    async fn reread_fees(&mut self) -> anyhow::Result<()> {
        let balances = self.app.store.balances().await?;
        for (h, household) in self.households.iter().enumerate() {
            self.fees[h] = balances
                .get(&format!("household:{}:fees", household.code))
                .map_or(0, |b| b.fen());
        }
        Ok(())
    }

    /// The accountant's postings of the day: stock, rent, wages, utilities, spoilage.
    fn accountant(
        &mut self,
        index: usize,
        date: NaiveDate,
    ) -> anyhow::Result<Vec<(Plan, Command)>> {
        let mut work = Vec::new();
        let expense = |category: &str, fen: i64, memo: String, method: PayMethod| {
            (
                Plan::Posting,
                Command::Expense(Expense {
                    cooperative: COOP.into(),
                    category: category.into(),
                    amount: Amount::from_fen(fen),
                    date,
                    memo: Some(memo),
                    method,
                }),
            )
        };
        let weekday = date.weekday();
        let restock = if index == 0 {
            Some(self.scaled(2_400_000))
        } else if matches!(weekday, Weekday::Tue | Weekday::Fri) && self.cost_since_stock > 0 {
            // Buy back what was sold, a little more, in whole yuan.
            let fen = self.cost_since_stock * self.rng.random_range(100..=115) / 100;
            Some((fen + 99) / 100 * 100)
        } else {
            None
        };
        if let Some(fen) = restock {
            self.cost_since_stock = 0;
            let supplier = SUPPLIERS[self.rng.random_range(0..SUPPLIERS.len())];
            work.push((
                Plan::Posting,
                Command::StockReceipt(StockReceipt {
                    cooperative: COOP.into(),
                    amount: Amount::from_fen(fen),
                    supplier: Some(supplier.into()),
                    memo: Some(format!("{date} 进货")),
                    method: PayMethod::Bank,
                }),
            ));
        }
        for (shop, (code, _, rent, wages)) in SHOPS.iter().enumerate() {
            match weekday {
                Weekday::Mon => work.push(expense(
                    "rent",
                    self.scaled(rent * 100),
                    format!("{code} 店面租金（周）"),
                    PayMethod::Bank,
                )),
                Weekday::Wed => {
                    let fen = self.rng.random_range(9_000..=24_000);
                    let fen = self.scaled(fen);
                    work.push(expense(
                        "utilities",
                        fen,
                        format!("{code} 水电费"),
                        PayMethod::Bank,
                    ));
                }
                Weekday::Fri => work.push(expense(
                    "wages",
                    self.scaled(wages * 100),
                    format!("{code} 店员工资（周）"),
                    PayMethod::Bank,
                )),
                _ => {}
            }
            if percent(&mut self.rng, 60) {
                let fen = self.rng.random_range(500..=4_500);
                let fen = self.scaled(fen);
                let what = ["叶菜", "水果", "豆腐", "西红柿"][(shop + index) % 4];
                work.push(expense(
                    "spoilage",
                    fen,
                    format!("{code} {what}损耗"),
                    PayMethod::Cash,
                ));
            }
        }
        Ok(work)
    }

    fn plan_top_up(&mut self) -> Option<(Plan, Command)> {
        let rng = &mut self.rng;
        // Now and then someone from a compound outside the programme asks: refused.
        let household = if !self.outside.is_empty() && percent(rng, 1) {
            self.outside[rng.random_range(0..self.outside.len())]
        } else if !self.enrolled.is_empty() {
            self.enrolled[rng.random_range(0..self.enrolled.len())]
        } else {
            return None;
        };
        let h = &self.households[household];
        let yuan = if h.heavy {
            // 1,050 is over the 20 units a top-up may have: refused.
            [500, 1_000, 1_050][pick(rng, &[50, 40, 10])]
        } else {
            // 80 and 120 are not whole units of 50: the till refuses them.
            [50, 100, 150, 200, 300, 500, 80, 120][pick(rng, &[30, 35, 5, 20, 4, 3, 2, 1])]
        };
        let deliver = if yuan <= 500 && percent(rng, 12) {
            Delivery::Voucher
        } else {
            Delivery::Wallet
        };
        let method =
            [PayMethod::Cash, PayMethod::Wechat, PayMethod::Alipay][pick(rng, &[45, 35, 20])];
        Some((
            Plan::TopUp { household },
            Command::TopUp(TopUp {
                shop: SHOPS[h.shop].0.into(),
                household: h.code.clone(),
                paid: Amount::from_yuan(yuan),
                method,
                deliver,
                bonus: Default::default(),
            }),
        ))
    }

    /// A basket from the catalogue (most sales) or a sale by amount (goods not in it).
    fn basket(&mut self) -> anyhow::Result<(Vec<SaleLine>, Option<Amount>, i64)> {
        let rng = &mut self.rng;
        if percent(rng, 25) {
            let fen = rng.random_range(30..=600) * 10;
            return Ok((Vec::new(), Some(Amount::from_fen(fen)), fen));
        }
        let count = [1, 2, 3, 4, 5][pick(rng, &[30, 30, 20, 12, 8])];
        let popularity: Vec<u32> = CATALOGUE.iter().map(|p| p.popularity).collect();
        let mut chosen = BTreeSet::new();
        let mut lines = Vec::new();
        let mut total = 0i64;
        for _ in 0..count {
            let i = pick(rng, &popularity);
            if !chosen.insert(i) {
                continue;
            }
            let p = &CATALOGUE[i];
            let qty = match p.unit {
                "斤" => Decimal::new(rng.random_range(5..=40), 1),
                "个" => Decimal::from(rng.random_range(2..=10)),
                "把" => Decimal::from(rng.random_range(1..=3)),
                _ => Decimal::from(if percent(rng, 85) { 1 } else { 2 }),
            };
            // Priced as the ledger prices a line: rounded once, half-up.
            total += mul_rate(Amount::from_fen(p.price_fen), qty, Rounding::HalfUp)?.fen();
            lines.push(SaleLine {
                sku: p.sku.into(),
                qty,
            });
        }
        Ok((lines, None, total))
    }

    fn plan_sale(&mut self, day: usize, spend: &mut Spending) -> anyhow::Result<(Plan, Command)> {
        let (lines, amount, total) = self.basket()?;
        let walk_in_method = |rng: &mut StdRng| {
            [TenderType::Cash, TenderType::Wechat, TenderType::Alipay][pick(rng, &[35, 45, 20])]
        };
        let mut tenders = Vec::new();
        let mut household = None;
        let mut vouchers = Vec::new();
        let mut shop = pick(&mut self.rng, &[45, 35, 20]);
        let customer = pick(&mut self.rng, &[52, 8, 40]);
        let with_credit: Vec<usize> = if customer == 0 {
            self.enrolled
                .iter()
                .copied()
                .filter(|h| self.wallets[*h] > spend.wallet(*h))
                .collect()
        } else {
            Vec::new()
        };
        let live_vouchers: Vec<usize> = if customer == 1 {
            (0..self.vouchers.len())
                .filter(|v| self.vouchers[*v].balance > spend.voucher(*v))
                .collect()
        } else {
            Vec::new()
        };
        if !with_credit.is_empty() {
            // A member pays from the wallet, topping up the difference in cash or by phone.
            let h = with_credit[self.rng.random_range(0..with_credit.len())];
            household = Some(h);
            shop = self.households[h].shop;
            let available = self.wallets[h] - spend.wallet(h);
            let from_wallet = if available >= total {
                if total >= 2 && percent(&mut self.rng, 8) {
                    total * self.rng.random_range(30..=70) / 100
                } else {
                    total
                }
            } else {
                available
            };
            let from_wallet = from_wallet.clamp(1, total);
            spend
                .wallets
                .entry(h)
                .and_modify(|s| *s += from_wallet)
                .or_insert(from_wallet);
            tenders.push(tender(TenderType::Wallet, from_wallet, None));
            if total > from_wallet {
                tenders.push(tender(
                    walk_in_method(&mut self.rng),
                    total - from_wallet,
                    None,
                ));
            }
        } else if !live_vouchers.is_empty() {
            // A bearer voucher, the rest in cash or by phone when it does not cover the basket.
            let v = live_vouchers[self.rng.random_range(0..live_vouchers.len())];
            vouchers.push(v);
            let available = self.vouchers[v].balance - spend.voucher(v);
            let from_voucher = available.min(total);
            spend
                .vouchers
                .entry(v)
                .and_modify(|s| *s += from_voucher)
                .or_insert(from_voucher);
            tenders.push(tender(
                TenderType::Voucher,
                from_voucher,
                Some(self.vouchers[v].code.clone()),
            ));
            if total > from_voucher {
                tenders.push(tender(
                    walk_in_method(&mut self.rng),
                    total - from_voucher,
                    None,
                ));
            }
        } else if total >= 200 && percent(&mut self.rng, 6) {
            // Some coins and the rest by phone.
            let cash = total / 200 * 100;
            tenders.push(tender(TenderType::Cash, cash, None));
            tenders.push(tender(TenderType::Wechat, total - cash, None));
        } else {
            tenders.push(tender(walk_in_method(&mut self.rng), total, None));
        }
        Ok((
            Plan::Sale {
                shop,
                day,
                household,
                vouchers,
            },
            Command::Sale(Sale {
                shop: SHOPS[shop].0.into(),
                household: household.map(|h| self.households[h].code.clone()),
                lines,
                amount,
                tenders,
            }),
        ))
    }

    /// A few refunds of recent sales (whole or part), and on two days a resident moving away
    /// cashes out the wallet.
    fn plan_refunds(&mut self, index: usize, days: usize) -> Vec<(Plan, Command)> {
        let mut work = Vec::new();
        let recent: Vec<usize> = (0..self.sales.len())
            .rev()
            .take_while(|s| self.sales[*s].day + 3 >= index)
            .filter(|s| self.sales[*s].remaining > 0)
            .collect();
        let wanted =
            usize::from(percent(&mut self.rng, 60)) + usize::from(percent(&mut self.rng, 30));
        let mut chosen = BTreeSet::new();
        for _ in 0..wanted.min(recent.len()) {
            let s = recent[self.rng.random_range(0..recent.len())];
            if !chosen.insert(s) {
                continue;
            }
            let sale = &self.sales[s];
            let amount = if sale.remaining > 100 && percent(&mut self.rng, 50) {
                // One item brought back: part of what is left.
                Some(Amount::from_fen(
                    self.rng.random_range(10..=sale.remaining * 6 / 10).max(1),
                ))
            } else {
                None
            };
            work.push((
                Plan::SaleRefund { sale: s },
                Command::RefundSale(RefundSale {
                    sale: sale.id,
                    shop: Some(SHOPS[sale.shop].0.into()),
                    cooperative: None,
                    amount,
                }),
            ));
        }
        if days >= 3 && (index == days / 3 || index == 2 * days / 3) {
            let with_credit: Vec<usize> = self
                .enrolled
                .iter()
                .copied()
                .filter(|h| self.wallets[*h] > 0)
                .collect();
            if !with_credit.is_empty() {
                let h = with_credit[self.rng.random_range(0..with_credit.len())];
                work.push((
                    Plan::CreditRefund { household: h },
                    Command::RefundCredit(RefundCredit {
                        household: self.households[h].code.clone(),
                        cooperative: COOP.into(),
                        method: PayMethod::Cash,
                        amount: None,
                    }),
                ));
            }
        }
        work
    }

    /// Posts one phase of the day and takes in the answers.
    async fn phase(&mut self, work: Vec<(Plan, Command)>) -> anyhow::Result<()> {
        let (plans, commands): (Vec<Plan>, Vec<Command>) = work.into_iter().unzip();
        let answers = run_in_order(self.app, commands).await?;
        let mut reread_households = BTreeSet::new();
        let mut reread_vouchers = BTreeSet::new();
        for (plan, answer) in plans.into_iter().zip(answers) {
            let receipt = match answer {
                Ok(r) => r,
                Err(rejection) if matches!(plan, Plan::Bills | Plan::Close) => {
                    anyhow::bail!(
                        "the month's bills or close were refused: {rejection} ({})",
                        rejection.code()
                    )
                }
                Err(rejection) => {
                    *self.stats.refused.entry(rejection.code()).or_default() += 1;
                    continue;
                }
            };
            match (plan, receipt) {
                (Plan::TopUp { household }, Receipt::TopUp(r)) => {
                    self.stats.topups += 1;
                    self.stats.topup_paid += r.paid.fen();
                    self.stats.topup_bonus += r.bonus.fen();
                    match r.voucher {
                        Some(v) => {
                            self.stats.topups_as_vouchers += 1;
                            self.vouchers.push(HeldVoucher {
                                code: v.code,
                                balance: v.balance.fen(),
                            });
                        }
                        None => self.wallets[household] = r.wallet.total.fen(),
                    }
                }
                (
                    Plan::Sale {
                        shop,
                        day,
                        household,
                        vouchers,
                    },
                    Receipt::Sale(r),
                ) => {
                    self.stats.sales += 1;
                    self.stats.sales_total += r.total.fen();
                    self.cost_since_stock += r.cost.fen();
                    for t in &r.tenders {
                        *self.stats.by_tender.entry(t.kind.as_str()).or_default() += t.amount.fen();
                    }
                    if let (Some(h), Some(w)) = (household, &r.wallet) {
                        self.wallets[h] = w.total.fen();
                    }
                    let balances = r.tenders.iter().filter_map(|t| t.voucher_balance);
                    for (v, balance) in vouchers.iter().zip(balances) {
                        self.vouchers[*v].balance = balance.fen();
                    }
                    self.sales.push(HeldSale {
                        id: r.sale,
                        shop,
                        day,
                        remaining: r.total.fen(),
                        household,
                        vouchers,
                    });
                }
                (Plan::SaleRefund { sale }, Receipt::SaleRefund(r)) => {
                    self.stats.sale_refunds += 1;
                    self.stats.sale_refunded += r.amount.fen();
                    let sale = &mut self.sales[sale];
                    sale.remaining = r.remaining.fen();
                    // Credit went back to the wallet or voucher: read them again below.
                    reread_households.extend(sale.household);
                    reread_vouchers.extend(sale.vouchers.iter().copied());
                }
                (Plan::CreditRefund { household }, Receipt::CreditRefund(r)) => {
                    self.stats.credit_refunds += 1;
                    self.stats.credit_refunded += r.refunded.fen();
                    self.stats.credit_forfeited += r.forfeited.fen();
                    reread_households.insert(household);
                }
                (Plan::Posting, Receipt::Posted(r)) => {
                    self.stats.postings += 1;
                    self.stats.postings_total += r.amount.fen();
                }
                (Plan::Bills, Receipt::Bills(r)) => {
                    self.stats.bills += r.count;
                    self.stats.billed += r.total.fen();
                }
                (Plan::FeePayment { household, method }, Receipt::FeePayment(r)) => {
                    self.stats.fee_payments += 1;
                    *self.stats.fee_by_method.entry(method.as_str()).or_default() += r.amount.fen();
                    self.stats.fee_paid += r.amount.fen();
                    self.stats.fee_paid_ahead += r.prepaid.fen();
                    self.fees[household] = r.balance.fen();
                }
                (Plan::Close, Receipt::MonthClose(r)) => {
                    for share in &r.companies {
                        let company = COMPANIES
                            .iter()
                            .map(|(code, _)| *code)
                            .find(|code| *code == share.company)
                            .ok_or_else(|| {
                                anyhow::anyhow!("close names company {}", share.company)
                            })?;
                        *self.due_to.entry(company).or_default() += share.amount.fen();
                    }
                    self.closes.push(r);
                }
                (Plan::Settlement { company }, Receipt::Settlement(r)) => {
                    self.stats.settlements += 1;
                    self.stats.settled += r.amount.fen();
                    self.due_to.insert(company, r.outstanding.fen());
                }
                (_, other) => anyhow::bail!("unexpected receipt {other:?}"),
            }
        }
        for h in reread_households {
            let view = self.app.store.household(&self.households[h].code).await?;
            self.wallets[h] = view
                .and_then(|v| v.wallets.into_iter().find(|w| w.cooperative == COOP))
                .map(|w| w.total.fen())
                .unwrap_or(0);
        }
        for v in reread_vouchers {
            let row = self.app.voucher_lookup(&self.vouchers[v].code).await?;
            self.vouchers[v].balance = match row {
                Ok(Some(row)) => row.balance.fen(),
                _ => 0,
            };
        }
        Ok(())
    }

    /// The demo's tokens: (role, scope, token).
    async fn tokens(&self) -> anyhow::Result<Vec<(Role, Option<String>, String)>> {
        let mut wanted: Vec<(Role, Option<String>, String)> =
            vec![(Role::Admin, None, "demo admin".into())];
        for (code, _, _, _) in SHOPS {
            wanted.push((
                Role::Cashier,
                Some(code.into()),
                format!("demo till {code}"),
            ));
        }
        wanted.push((
            Role::CoopAccountant,
            Some(COOP.into()),
            "demo accountant".into(),
        ));
        for (code, _) in COMPANIES {
            wanted.push((
                Role::Company,
                Some(code.into()),
                format!("demo office {code}"),
            ));
        }
        if let Some(h) = self.households.first() {
            wanted.push((Role::Resident, Some(h.code.clone()), "demo resident".into()));
        }
        wanted.push((Role::Alliance, None, "demo alliance board".into()));
        let mut tokens = Vec::with_capacity(wanted.len());
        for (role, scope, label) in wanted {
            let (_, token) =
                super::token::create(self.app, role, scope.clone(), Some(label)).await?;
            tokens.push((role, scope, token));
        }
        Ok(tokens)
    }

    fn print_summary(
        &self,
        database: &str,
        first: NaiveDate,
        today: NaiveDate,
        seconds: f64,
        head_hash: &str,
        head_seq: i64,
    ) {
        let s = &self.stats;
        let yuan = |fen: i64| Amount::from_fen(fen).to_string();
        let eligible = COMPOUNDS.iter().filter(|c| c.eligible).count();
        println!(
            "Demo database {} built in {seconds:.1} s, business dates {first} to {today}.",
            crate::app::redact_url(database)
        );
        println!(
            "  {} property companies, {} compounds ({eligible} in the programme), cooperative {COOP} {COOP_NAME} with {} shops, {} catalogue items",
            COMPANIES.len(),
            COMPOUNDS.len(),
            SHOPS.len(),
            CATALOGUE.len()
        );
        println!(
            "  {} households, {} of them joined 居民购物50元换55元",
            self.households.len(),
            self.enrolled.len()
        );
        println!(
            "  top-ups         {:>6}   paid {:>12}   bonus {:>10}   ({} as vouchers)",
            s.topups,
            yuan(s.topup_paid),
            yuan(s.topup_bonus),
            s.topups_as_vouchers
        );
        let tenders: Vec<String> = s
            .by_tender
            .iter()
            .map(|(k, v)| format!("{k} {}", yuan(*v)))
            .collect();
        println!(
            "  sales           {:>6}   total {:>11}   ({})",
            s.sales,
            yuan(s.sales_total),
            tenders.join(", ")
        );
        println!(
            "  sale refunds    {:>6}   refunded {:>8}",
            s.sale_refunds,
            yuan(s.sale_refunded)
        );
        println!(
            "  credit refunds  {:>6}   paid back {:>7}   bonus forfeited {}",
            s.credit_refunds,
            yuan(s.credit_refunded),
            yuan(s.credit_forfeited)
        );
        println!(
            "  expenses, stock {:>6}   total {:>11}",
            s.postings,
            yuan(s.postings_total)
        );
        println!(
            "  fee bills       {:>6}   total {:>11}   ({} months × {} companies)",
            s.bills,
            yuan(s.billed),
            self.billed.len(),
            COMPANIES.len()
        );
        let methods: Vec<String> = s
            .fee_by_method
            .iter()
            .map(|(k, v)| format!("{k} {}", yuan(*v)))
            .collect();
        println!(
            "  fee payments    {:>6}   total {:>11}   ({}; {} of it paid ahead)",
            s.fee_payments,
            yuan(s.fee_paid),
            methods.join(", "),
            yuan(s.fee_paid_ahead)
        );
        let owing = self.fees.iter().filter(|f| **f > 0);
        let ahead = self.fees.iter().filter(|f| **f < 0);
        println!(
            "  fee balances    today {} households owe {}, {} have paid {} ahead",
            owing.clone().count(),
            yuan(owing.sum()),
            ahead.clone().count(),
            yuan(-ahead.sum::<i64>())
        );
        for c in &self.closes {
            println!(
                "  closed {}      profit {:>10} = sales {} − cogs {} − promotion {} − expenses {}",
                c.month,
                yuan(c.profit.fen()),
                yuan(c.sales.fen()),
                yuan(c.cogs.fen()),
                yuan(c.promotion.fen()),
                yuan(c.expenses.fen())
            );
            println!(
                "                      pool   {:>10}   allocated {} to {} households   reserve {}",
                yuan(c.pool.fen()),
                yuan(c.allocated.fen()),
                c.households,
                yuan(c.reserve.fen())
            );
        }
        println!(
            "  settlements     {:>6}   paid {:>12}   still owed to the companies {}",
            s.settlements,
            yuan(s.settled),
            yuan(self.due_to.values().sum())
        );
        let refused: u64 = s.refused.values().sum();
        let reasons: Vec<String> = s.refused.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "  refused         {refused:>6}   ({})",
            if reasons.is_empty() {
                "none".into()
            } else {
                reasons.join(", ")
            }
        );
        println!("  journal head    {head_seq:>6}   {head_hash}");
    }
}

fn tender(kind: TenderType, fen: i64, code: Option<String>) -> Tender {
    Tender {
        kind,
        amount: Amount::from_fen(fen),
        code,
    }
}

/// Credit already promised to sales planned in this phase, in fen, so two sales of one phase
/// never plan to spend the same yuan twice.
#[derive(Default)]
struct Spending {
    wallets: HashMap<usize, i64>,
    vouchers: HashMap<usize, i64>,
}

impl Spending {
    fn wallet(&self, h: usize) -> i64 {
        self.wallets.get(&h).copied().unwrap_or(0)
    }

    fn voucher(&self, v: usize) -> i64 {
        self.vouchers.get(&v).copied().unwrap_or(0)
    }
}
