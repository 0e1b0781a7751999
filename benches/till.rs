//! The till at load: N concurrent tills (default 64) run a realistic mix of top-ups, sales,
//! refunds and voucher lookups against a running hongxin server over loopback HTTP, for a fixed
//! time or request count, on SQLite or PostgreSQL. A baseline of raw SQL "sale-like" writes with
//! the same durability is measured in the same run, because shared machines are noisy: the
//! ratio is what to compare between runs, more than the absolute figures.
//!
//! Run: `cargo bench --bench till` (SQLite, everything started in-process), or
//! `HONGXIN_BENCH_BACKEND=postgres cargo bench --bench till` (a throwaway PostgreSQL cluster with
//! durable commits: `initdb`/`pg_ctl` from `/usr/lib/postgresql/*/bin` or `PATH`, run as the
//! `postgres` OS user through `runuser` when the bench runs as root).
//!
//! Settings (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `HONGXIN_BENCH_TILLS` | 64 | concurrent tills (each its own cashier token and connection) |
//! | `HONGXIN_BENCH_SECONDS` | 20 | measured duration, after the warm-up |
//! | `HONGXIN_BENCH_WARMUP` | 2 | seconds of load before measuring starts |
//! | `HONGXIN_BENCH_REQUESTS` | — | instead of a duration: this many requests in all |
//! | `HONGXIN_BENCH_HOUSEHOLDS` | 5000 | households seeded (10 of them "hot": 10% of traffic) |
//! | `HONGXIN_BENCH_BACKEND` | sqlite | `sqlite` or `postgres` |
//! | `HONGXIN_BENCH_STORE_SECONDS` | 10 | in-process only: sales straight into the store, no HTTP (0: skip) |
//! | `HONGXIN_BENCH_URL`, `HONGXIN_BENCH_TOKEN` | — | target an already running server with this admin token |
//! | `HONGXIN_BENCH_BASELINE_URL` | — | run the baseline on this database instead of a throwaway one |
//! | `HONGXIN_BENCH_PG_OPTIONS` | — | more `-c name=value` settings for the throwaway cluster |
//! | `HONGXIN_BENCH_ANALYZE` | 1 | throwaway cluster: `0` skips the `ANALYZE` halfway through the warm-up (a fresh database's plans) |
//! | `HONGXIN_BENCH_PG_STATEMENTS` | 0 | throwaway cluster: print the N statements that took the server's time in the window (`pg_stat_statements`) |
//!
//! Against a running server (`HONGXIN_BENCH_URL=http://127.0.0.1:8080
//! HONGXIN_BENCH_TOKEN=<admin token>`), the bench creates its own cooperative, shops, companies,
//! compounds, households, catalogue and cashier tokens through the admin API, all under a fresh
//! code prefix, so it can run again and again on one database. Start that server with a high
//! `--voucher-rate` (voucher lookups and redemptions are rate-limited per token), or the 429s
//! are counted as rejections. It adds to that database: do not point it at production.
//!
//! Baselines: SQLite (WAL, `synchronous=FULL`) through sqlx at 1 and 64 writes per transaction,
//! and the same SQL through the `sqlite3` shell when it is on PATH (no driver in between);
//! PostgreSQL, one transaction per write over as many connections as tills. On the throwaway
//! cluster the bench runs `ANALYZE` halfway through the warm-up: a fresh database's cached
//! plans would otherwise scan whole tables (docs/performance.md).
//!
//! Business dates: in-process, the master data and the opening credit are seeded in October
//! 2026 and the load runs on 2026-11-16, so the monthly bonus cap starts fresh.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinSet;

use hongxin::app::{App, Settings};
use hongxin::clock::Clock;
use hongxin::domain::{
    CatalogItemInput, Command, Delivery, NewCompany, NewCompound, NewCooperative, NewHousehold,
    NewShop, NewToken, PayMethod, Receipt, Role, Sale, Tender, TenderType, TopUp,
};
use hongxin::http::extract::token_hash;
use hongxin::http::limits::RateConfig;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;
use hongxin::store::{Envelope, Idempotency};

const SHOPS: usize = 3;
const COMPANIES: usize = 8;
const HOT_HOUSEHOLDS: usize = 10;
/// Share of household picks that go to the hot households, in percent.
const HOT_SHARE: u32 = 10;
/// Seeding requests in flight at once.
const SEED_CONCURRENCY: usize = 128;
/// Voucher codes the tills remember for redemptions and lookups.
const VOUCHER_POOL: usize = 20_000;
/// Sales each till remembers for refunds.
const RECENT_SALES: usize = 32;
/// The most requests one till sends, whatever the settings say.
const MAX_PER_TILL: u64 = 10_000_000;
/// Transport errors printed in full; the rest are only counted.
const ERRORS_SHOWN: usize = 5;
const SEED_DATE: &str = "2026-10-20";
const LOAD_DATE: &str = "2026-11-16";
/// Catalogue of the cooperative's shops: sku, name, unit, price and cost in fen.
const CATALOGUE: [(&str, &str, &str, i64, i64); 12] = [
    ("V01", "白菜", "斤", 180, 110),
    ("V02", "土豆", "斤", 250, 160),
    ("V03", "西红柿", "斤", 420, 290),
    ("V04", "黄瓜", "斤", 350, 230),
    ("F01", "苹果", "斤", 680, 470),
    ("F02", "梨", "斤", 590, 400),
    ("E01", "鸡蛋", "斤", 650, 520),
    ("M01", "猪肉", "斤", 1_580, 1_260),
    ("R01", "大米", "袋", 4_500, 3_600),
    ("O01", "菜籽油", "桶", 6_990, 5_400),
    ("N01", "挂面", "袋", 890, 620),
    ("D01", "豆腐", "块", 300, 180),
];

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        _ => default,
    }
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

fn yuan(fen: i64) -> String {
    Amount::from_fen(fen).to_string()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

struct Config {
    tills: usize,
    seconds: u64,
    warmup: u64,
    requests: Option<u64>,
    households: usize,
    backend: Backend,
    store_seconds: u64,
    url: Option<String>,
    token: Option<String>,
    baseline_url: Option<String>,
}

impl Config {
    fn from_env() -> Config {
        let backend = match std::env::var("HONGXIN_BENCH_BACKEND").as_deref() {
            Ok("postgres" | "postgresql" | "pg") => Backend::Postgres,
            Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("HONGXIN_BENCH_BACKEND={other:?}: use sqlite or postgres"),
        };
        let url = std::env::var("HONGXIN_BENCH_URL")
            .ok()
            .filter(|v| !v.is_empty());
        let token = std::env::var("HONGXIN_BENCH_TOKEN")
            .ok()
            .filter(|v| !v.is_empty());
        assert_eq!(
            url.is_some(),
            token.is_some(),
            "set both HONGXIN_BENCH_URL and HONGXIN_BENCH_TOKEN (an admin token), or neither"
        );
        let households: usize = env_or("HONGXIN_BENCH_HOUSEHOLDS", 5000);
        assert!(
            households > HOT_HOUSEHOLDS,
            "HONGXIN_BENCH_HOUSEHOLDS must be more than {HOT_HOUSEHOLDS}"
        );
        let tills: usize = env_or("HONGXIN_BENCH_TILLS", 64);
        assert!(
            (1..=4096).contains(&tills),
            "HONGXIN_BENCH_TILLS: 1 to 4096"
        );
        Config {
            tills,
            seconds: env_or("HONGXIN_BENCH_SECONDS", 20),
            warmup: env_or("HONGXIN_BENCH_WARMUP", 2),
            requests: std::env::var("HONGXIN_BENCH_REQUESTS")
                .ok()
                .and_then(|v| v.parse().ok()),
            households,
            backend,
            store_seconds: env_or("HONGXIN_BENCH_STORE_SECONDS", 10),
            url,
            token,
            baseline_url: std::env::var("HONGXIN_BENCH_BASELINE_URL")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A throwaway PostgreSQL cluster with durable commits (fsync and synchronous_commit on, the
// defaults), unlike the test suite's cluster in tests/pg_support, which turns them off for speed.
// Stopped by a watchdog when this process ends, however it ends (the same trick as there).

mod cluster {
    use super::*;

    pub struct Cluster {
        pub dir: PathBuf,
        /// Connects as the superuser to database `postgres`.
        pub admin_url: String,
        _watchdog: ChildStdin,
        /// Never waited for: it outlives this process on purpose, to stop the cluster.
        _watchdog_process: Child,
    }

    impl Cluster {
        pub fn url(&self, database: &str) -> String {
            format!(
                "postgres:///{database}?host={}&user=postgres",
                self.dir.display()
            )
        }
    }

    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Some(bin);
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }

    fn run(cmd: &mut Process) -> String {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn as_owner(root: bool, program: &Path) -> Process {
        if root {
            let mut c = Process::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Process::new(program)
        }
    }

    pub fn start() -> Cluster {
        let bin = bin_dir().expect("no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH");
        let root = run(Process::new("id").arg("-u")) == "0";
        let dir = std::env::temp_dir().join(format!("hongxin-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        if root {
            run(Process::new("chown").arg("postgres:").arg(&dir));
        }
        let pg_ctl = bin.join("pg_ctl");
        let runner = if root { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "trap '' INT TERM HUP PIPE; cat >/dev/null; \
             {runner}\"$0\" -D \"$1/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$1\""
        );
        let mut watchdog = Process::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&pg_ctl)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cluster watchdog");
        let stdin = watchdog.stdin.take().expect("watchdog stdin");
        run(as_owner(root, &bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"]));
        // Durable: fsync, synchronous_commit and full_page_writes keep their defaults (on).
        let settings = format!(
            "-c listen_addresses='' -k {} -p 5432 -c max_connections=400 \
             -c shared_buffers=256MB -c max_wal_size=4GB {} {}",
            dir.display(),
            if statements_profiled() > 0 {
                "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            } else {
                ""
            },
            std::env::var("HONGXIN_BENCH_PG_OPTIONS").unwrap_or_default()
        );
        run(as_owner(root, &pg_ctl)
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "-o", &settings, "start"]));
        let admin_url = format!("postgres:///postgres?host={}&user=postgres", dir.display());
        Cluster {
            dir,
            admin_url,
            _watchdog: stdin,
            _watchdog_process: watchdog,
        }
    }

    /// How many statements to profile (`HONGXIN_BENCH_PG_STATEMENTS`); 0: none.
    pub fn statements_profiled() -> usize {
        std::env::var("HONGXIN_BENCH_PG_STATEMENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    async fn connect(url: &str) -> sqlx::PgConnection {
        sqlx::postgres::PgConnectOptions::from_str(url)
            .expect("url")
            .disable_statement_logging()
            .connect()
            .await
            .expect("connect to PostgreSQL")
    }

    /// Starts counting statements afresh (the measured window begins).
    pub async fn reset_statements(url: &str) {
        let mut c = connect(url).await;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut c)
            .await
            .expect("pg_stat_statements");
        sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut c)
            .await
            .expect("pg_stat_statements_reset");
    }

    /// Prints the `n` statements that took the most server time since the reset: planning
    /// and execution, calls, rows, and the statement's text (its first line, shortened).
    pub async fn print_statements(url: &str, n: usize, commands: u64) {
        let mut c = connect(url).await;
        let rows: Vec<(f64, f64, i64, i64, String)> = sqlx::query_as(
            "SELECT total_plan_time, total_exec_time, calls, rows, query FROM pg_stat_statements
             ORDER BY total_plan_time + total_exec_time DESC LIMIT $1",
        )
        .bind(n as i64)
        .fetch_all(&mut c)
        .await
        .expect("pg_stat_statements");
        let (all,): (f64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(total_plan_time + total_exec_time), 0) FROM pg_stat_statements",
        )
        .fetch_one(&mut c)
        .await
        .expect("pg_stat_statements");
        println!(
            "PostgreSQL statements in the window: {:.0} ms of planning and execution in all, {:.1} µs per command written; the top {n}:",
            all,
            all * 1000.0 / commands.max(1) as f64
        );
        println!(
            "  {:>8} {:>8} {:>8} {:>9}  statement",
            "plan ms", "exec ms", "calls", "rows"
        );
        for (plan, exec, calls, rows, query) in rows {
            let text: String = query.split_whitespace().collect::<Vec<_>>().join(" ");
            let text: String = text.chars().take(110).collect();
            println!("  {plan:>8.0} {exec:>8.0} {calls:>8} {rows:>9}  {text}");
        }
    }

    pub async fn analyze(url: &str) {
        let mut c = sqlx::postgres::PgConnectOptions::from_str(url)
            .expect("url")
            .disable_statement_logging()
            .connect()
            .await
            .expect("connect to PostgreSQL");
        sqlx::query("ANALYZE")
            .execute(&mut c)
            .await
            .expect("ANALYZE");
    }

    pub async fn create_database(admin_url: &str, name: &str) {
        let mut c = sqlx::postgres::PgConnectOptions::from_str(admin_url)
            .expect("url")
            .disable_statement_logging()
            .connect()
            .await
            .expect("connect to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("CREATE DATABASE");
    }
}

// ---------------------------------------------------------------------------------------------
// Seeding: through the library (in-process) or the admin API (a server already running).

#[derive(Clone)]
enum Seeder {
    Library(App),
    Http {
        client: reqwest::Client,
        base: String,
        admin: String,
    },
}

impl Seeder {
    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let Seeder::Http { client, base, .. } = self else {
            unreachable!("HTTP seeding only")
        };
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("Idempotency-Key", new_key())
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path} {body}: {status} {v}");
        v
    }

    /// The household card's signed link, as a till scans it for wallet spending.
    async fn card(&self, household: &str) -> String {
        match self {
            Seeder::Library(app) => {
                let credentials = app
                    .store
                    .household_credentials(household)
                    .await
                    .expect("read the household")
                    .expect("a seeded household");
                hongxin::http::resident::card_url(&app.keys, "http://bench", &credentials)
            }
            Seeder::Http {
                client,
                base,
                admin,
            } => {
                let link: Value = client
                    .get(format!("{base}/v1/households/{household}/link"))
                    .bearer_auth(admin)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("GET the link of {household}: {e}"))
                    .json()
                    .await
                    .unwrap_or(Value::Null);
                link["url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no link for {household}: {link}"))
                    .to_string()
            }
        }
    }

    async fn run(&self, command: Command) -> Receipt {
        let Seeder::Library(app) = self else {
            unreachable!("library seeding only")
        };
        let what = format!("{command:?}");
        match app.run(command).await {
            Ok(Ok(r)) => r,
            other => panic!("seeding {what}: {other:?}"),
        }
    }

    /// Master data: the command through the library, or its admin endpoint.
    async fn master(&self, command: Command) {
        let Seeder::Http { admin, .. } = self else {
            self.run(command).await;
            return;
        };
        let (path, body) = match command {
            Command::CreateCooperative(x) => ("/v1/cooperatives", json!(x)),
            Command::CreateShop(x) => ("/v1/shops", json!(x)),
            Command::CreateCompany(x) => ("/v1/companies", json!(x)),
            Command::CreateCompound(x) => ("/v1/compounds", json!(x)),
            Command::CreateHousehold(x) => ("/v1/households", json!(x)),
            Command::UpsertCatalogItem { cooperative, item } => {
                let mut v = json!(item);
                v["cooperative"] = json!(cooperative);
                ("/v1/catalog", v)
            }
            other => unreachable!("not master data: {other:?}"),
        };
        self.post(admin, path, body).await;
    }

    /// A new token: its id (library only) and secret.
    async fn token(&self, role: Role, scope: Option<String>) -> (Option<i64>, String) {
        match self {
            Seeder::Library(_) => {
                let secret = format!("hx_bench_{}", random_hex(16));
                let r = self
                    .run(Command::CreateToken(NewToken {
                        parent: None,
                        hash: token_hash(&secret),
                        role,
                        scope,
                        label: Some("till bench".into()),
                        expires_at: None,
                    }))
                    .await;
                let Receipt::Created(c) = r else {
                    panic!("token: {r:?}")
                };
                (Some(c.id), secret)
            }
            Seeder::Http { admin, .. } => {
                let v = self
                    .post(
                        admin,
                        "/v1/tokens",
                        json!({ "role": role, "scope": scope, "label": "till bench" }),
                    )
                    .await;
                let secret = v["token"].as_str().expect("token secret").to_string();
                (None, secret)
            }
        }
    }

    /// Opening credit; the voucher's code when delivered as one.
    async fn top_up(
        &self,
        cashier: &str,
        shop: &str,
        household: &str,
        paid: i64,
        deliver: Delivery,
    ) -> Option<String> {
        match self {
            Seeder::Library(_) => {
                let r = self
                    .run(Command::TopUp(TopUp {
                        shop: shop.into(),
                        household: household.into(),
                        paid: Amount::from_fen(paid),
                        method: PayMethod::Cash,
                        deliver,
                        bonus: Default::default(),
                    }))
                    .await;
                let Receipt::TopUp(t) = r else {
                    panic!("top-up: {r:?}")
                };
                t.voucher.map(|v| v.code)
            }
            Seeder::Http { .. } => {
                let v = self
                    .post(
                        cashier,
                        "/v1/topups",
                        json!({ "household": household, "paid": yuan(paid),
                                "method": "cash", "deliver": deliver }),
                    )
                    .await;
                v["voucher"]["code"].as_str().map(str::to_string)
            }
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

fn new_key() -> String {
    random_hex(12)
}

/// Runs `f` on every item, at most `limit` at once.
async fn for_each_bounded<T, F, Fut, R>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut set = JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if set.len() >= limit {
            out.push(set.join_next().await.expect("task").expect("seed task"));
        }
        set.spawn(f(item));
    }
    while let Some(r) = set.join_next().await {
        out.push(r.expect("seed task"));
    }
    out
}

/// What the tills work with.
struct World {
    shops: Vec<String>,
    households: Vec<String>,
    /// Each household's card link, as its residents show it at the till (by index).
    cards: Vec<String>,
    /// (secret, shop index, token id when known) per till.
    tills: Vec<(String, usize, Option<i64>)>,
    vouchers: Vec<String>,
    admin: String,
}

async fn seed(seeder: &Seeder, prefix: &str, config: &Config, admin: String) -> World {
    let coop = format!("{prefix}COOP");
    seeder
        .master(Command::CreateCooperative(NewCooperative {
            code: coop.clone(),
            name: "红心农业合作社 (bench)".into(),
        }))
        .await;
    let shops: Vec<String> = (1..=SHOPS).map(|s| format!("{prefix}S{s}")).collect();
    for (i, shop) in shops.iter().enumerate() {
        seeder
            .master(Command::CreateShop(NewShop {
                code: shop.clone(),
                name: format!("{}号店", i + 1),
                cooperative: coop.clone(),
            }))
            .await;
    }
    for k in 1..=COMPANIES {
        seeder
            .master(Command::CreateCompany(NewCompany {
                code: format!("{prefix}K{k:02}"),
                name: format!("物业{k}"),
            }))
            .await;
        seeder
            .master(Command::CreateCompound(NewCompound {
                code: format!("{prefix}HX{k:02}"),
                name: format!("小区{k}"),
                company: format!("{prefix}K{k:02}"),
                eligible: true,
            }))
            .await;
    }
    for (sku, name, unit, price, cost) in CATALOGUE {
        seeder
            .master(Command::UpsertCatalogItem {
                cooperative: coop.clone(),
                item: CatalogItemInput {
                    sku: sku.into(),
                    name: name.into(),
                    unit: unit.into(),
                    price: Amount::from_fen(price),
                    cost: Amount::from_fen(cost),
                    barcode: None,
                },
            })
            .await;
    }
    let households: Vec<String> = (1..=config.households)
        .map(|i| format!("{prefix}H{i:06}"))
        .collect();
    let t = Instant::now();
    let rows: Vec<(usize, String)> = households.iter().cloned().enumerate().collect();
    for_each_bounded(rows, SEED_CONCURRENCY, |(i, code)| {
        let seeder = seeder.clone();
        let prefix = prefix.to_string();
        async move {
            seeder
                .master(Command::CreateHousehold(NewHousehold {
                    code,
                    compound: format!("{prefix}HX{:02}", 1 + i % COMPANIES),
                    area_m2: rust_decimal::Decimal::new(4_500 + (i as i64 * 7_919) % 9_500, 2),
                    name: None,
                    building: None,
                    grid: None,
                }))
                .await
        }
    })
    .await;
    eprintln!(
        "  {} households in {:.1} s",
        households.len(),
        t.elapsed().as_secs_f64()
    );
    let mut tills = Vec::with_capacity(config.tills);
    for i in 0..config.tills {
        let (id, secret) = seeder
            .token(Role::Cashier, Some(shops[i % SHOPS].clone()))
            .await;
        tills.push((secret, i % SHOPS, id));
    }
    // Opening credit: 500.00 paid (550.00 credited) in every wallet; a 300.00 voucher (330.00)
    // for every tenth household. 80.00 of the 100.00 monthly bonus cap.
    let t = Instant::now();
    let mut work: Vec<(String, i64, Delivery)> = households
        .iter()
        .map(|h| (h.clone(), 50_000, Delivery::Wallet))
        .collect();
    work.extend(
        households
            .iter()
            .step_by(10)
            .map(|h| (h.clone(), 30_000, Delivery::Voucher)),
    );
    let cashier = tills[0].0.clone();
    let shop = shops[0].clone();
    let vouchers: Vec<String> = for_each_bounded(work, SEED_CONCURRENCY, |(h, paid, deliver)| {
        let (seeder, cashier, shop) = (seeder.clone(), cashier.clone(), shop.clone());
        async move { seeder.top_up(&cashier, &shop, &h, paid, deliver).await }
    })
    .await
    .into_iter()
    .flatten()
    .collect();
    eprintln!(
        "  opening credit for {} households, {} vouchers, in {:.1} s",
        households.len(),
        vouchers.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let indexed: Vec<(usize, String)> = households.iter().cloned().enumerate().collect();
    let mut cards = for_each_bounded(indexed, SEED_CONCURRENCY, |(i, h)| {
        let seeder = seeder.clone();
        async move { (i, seeder.card(&h).await) }
    })
    .await;
    cards.sort_unstable();
    let cards: Vec<String> = cards.into_iter().map(|(_, c)| c).collect();
    eprintln!(
        "  {} household cards in {:.1} s",
        cards.len(),
        t.elapsed().as_secs_f64()
    );
    World {
        shops,
        households,
        cards,
        tills,
        vouchers,
        admin,
    }
}

// ---------------------------------------------------------------------------------------------
// The load.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    TopUpWallet,
    TopUpVoucher,
    SaleWallet,
    SaleVoucher,
    SaleCash,
    SaleSplit,
    SaleLines,
    Refund,
    VoucherLookup,
    /// A resident's 12-month fee view: the heaviest read a phone makes, beside the tills.
    ResidentFees,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::TopUpWallet => "top-up to wallet",
            Op::TopUpVoucher => "top-up as voucher",
            Op::SaleWallet => "sale by wallet",
            Op::SaleVoucher => "sale by voucher",
            Op::SaleCash => "sale by cash/wechat",
            Op::SaleSplit => "sale, split tenders",
            Op::SaleLines => "sale by catalogue",
            Op::Refund => "sale refund",
            Op::VoucherLookup => "voucher lookup",
            Op::ResidentFees => "resident fee view (12 months)",
        }
    }

    fn is_sale(self) -> bool {
        matches!(
            self,
            Op::SaleWallet | Op::SaleVoucher | Op::SaleCash | Op::SaleSplit | Op::SaleLines
        )
    }

    fn is_write(self) -> bool {
        !matches!(self, Op::VoucherLookup | Op::ResidentFees)
    }

    /// The mix: ~20% top-ups (a quarter as vouchers), ~70% sales, ~5% refunds, ~3% voucher
    /// lookups, ~2% residents' 12-month fee views (the read that once slowed the tills).
    fn pick(rng: &mut StdRng) -> Op {
        match rng.random_range(0..100u32) {
            0..15 => Op::TopUpWallet,
            15..20 => Op::TopUpVoucher,
            20..48 => Op::SaleWallet,
            48..58 => Op::SaleVoucher,
            58..75 => Op::SaleCash,
            75..83 => Op::SaleSplit,
            83..90 => Op::SaleLines,
            90..95 => Op::Refund,
            95..98 => Op::VoucherLookup,
            _ => Op::ResidentFees,
        }
    }
}

struct Shared {
    client: reqwest::Client,
    base: String,
    world: Arc<World>,
    vouchers: Mutex<Vec<String>>,
    run: String,
    measure_from: Instant,
    deadline: Instant,
    per_till: u64,
}

impl Shared {
    fn household(&self, rng: &mut StdRng) -> &str {
        self.household_with_card(rng).0
    }

    /// A household and its card's link, for spending its wallet.
    fn household_with_card(&self, rng: &mut StdRng) -> (&str, &str) {
        let h = &self.world.households;
        let i = if rng.random_range(0..100) < HOT_SHARE {
            rng.random_range(0..HOT_HOUSEHOLDS)
        } else {
            rng.random_range(HOT_HOUSEHOLDS..h.len())
        };
        (&h[i], &self.world.cards[i])
    }

    fn voucher(&self, rng: &mut StdRng) -> Option<String> {
        let pool = self.vouchers.lock().expect("voucher pool");
        (!pool.is_empty()).then(|| pool[rng.random_range(0..pool.len())].clone())
    }

    fn add_voucher(&self, rng: &mut StdRng, code: String) {
        let mut pool = self.vouchers.lock().expect("voucher pool");
        if pool.len() < VOUCHER_POOL {
            pool.push(code);
        } else {
            let i = rng.random_range(0..pool.len());
            pool[i] = code;
        }
    }

    fn forget_voucher(&self, code: &str) {
        let mut pool = self.vouchers.lock().expect("voucher pool");
        if let Some(i) = pool.iter().position(|c| c == code) {
            pool.swap_remove(i);
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<Op, Vec<Duration>>,
    accepted: BTreeMap<Op, u64>,
    /// (operation, problem code) → count: business refusals, not errors.
    rejected: BTreeMap<(Op, String), u64>,
    /// Transport failures and 5xx.
    errors: u64,
    error_samples: Vec<String>,
    /// Requests started during the warm-up (not in the figures).
    warmup: u64,
    /// When the last measured request finished.
    last_done: Option<Instant>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (op, mut v) in other.latencies {
            self.latencies.entry(op).or_default().append(&mut v);
        }
        for (op, n) in other.accepted {
            *self.accepted.entry(op).or_default() += n;
        }
        for (k, n) in other.rejected {
            *self.rejected.entry(k).or_default() += n;
        }
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < ERRORS_SHOWN {
                self.error_samples.push(e);
            }
        }
        self.warmup += other.warmup;
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// A request the till is about to send.
struct Request {
    op: Op,
    method: reqwest::Method,
    path: String,
    body: Option<String>,
    /// The voucher code it spends or looks up, to forget a spent one.
    voucher: Option<String>,
    /// Another caller than the till (the resident reads through the admin's token, which no
    /// resident quota holds back: the worst case for the tills beside it).
    auth: Option<String>,
}

fn tenders_json(parts: &[(&str, i64, Option<&str>)]) -> String {
    let items: Vec<String> = parts
        .iter()
        .map(|(kind, fen, code)| match code {
            Some(c) => format!(
                r#"{{"type":"{kind}","amount":"{}","code":"{c}"}}"#,
                yuan(*fen)
            ),
            None => format!(r#"{{"type":"{kind}","amount":"{}"}}"#, yuan(*fen)),
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn next_request(shared: &Shared, rng: &mut StdRng, recent: &VecDeque<i64>) -> Request {
    let mut op = Op::pick(rng);
    if op == Op::Refund && recent.is_empty() {
        op = Op::SaleCash;
    }
    let post = |op, path: &str, body: String, voucher| Request {
        op,
        method: reqwest::Method::POST,
        path: path.into(),
        body: Some(body),
        voucher,
        auth: None,
    };
    // Till baskets: 1.00 to 60.00, not round.
    let amount = rng.random_range(100..6_000i64);
    match op {
        Op::TopUpWallet | Op::TopUpVoucher => {
            let units = rng.random_range(1..=4i64);
            let method = ["cash", "wechat", "alipay"][rng.random_range(0..3)];
            let deliver = if op == Op::TopUpVoucher {
                "voucher"
            } else {
                "wallet"
            };
            let body = format!(
                r#"{{"household":"{}","paid":"{}","method":"{method}","deliver":"{deliver}"}}"#,
                shared.household(rng),
                yuan(units * 5_000)
            );
            post(op, "/v1/topups", body, None)
        }
        Op::ResidentFees => Request {
            op,
            method: reqwest::Method::GET,
            path: format!("/v1/households/{}/fees?months=12", shared.household(rng)),
            body: None,
            voucher: None,
            auth: Some(format!("Bearer {}", shared.world.admin)),
        },
        Op::SaleWallet => {
            let (h, card) = shared.household_with_card(rng);
            let body = format!(
                r#"{{"household":"{h}","resident":{{"card":"{card}"}},"amount":"{}","tenders":{}}}"#,
                yuan(amount),
                tenders_json(&[("wallet", amount, None)])
            );
            post(op, "/v1/sales", body, None)
        }
        Op::SaleVoucher | Op::VoucherLookup => {
            let Some(code) = shared.voucher(rng) else {
                return next_request(shared, rng, recent);
            };
            if op == Op::VoucherLookup {
                return Request {
                    op,
                    method: reqwest::Method::GET,
                    path: format!("/v1/vouchers/{code}"),
                    body: None,
                    voucher: Some(code),
                    auth: None,
                };
            }
            // One in four tops the voucher up with cash at the till.
            let body = if rng.random_range(0..4) == 0 {
                let cash = rng.random_range(1..amount);
                format!(
                    r#"{{"amount":"{}","tenders":{}}}"#,
                    yuan(amount),
                    tenders_json(&[
                        ("voucher", amount - cash, Some(&code)),
                        ("cash", cash, None)
                    ])
                )
            } else {
                format!(
                    r#"{{"amount":"{}","tenders":{}}}"#,
                    yuan(amount),
                    tenders_json(&[("voucher", amount, Some(&code))])
                )
            };
            post(op, "/v1/sales", body, Some(code))
        }
        Op::SaleCash => {
            let kind = if rng.random_range(0..2) == 0 {
                "cash"
            } else {
                "wechat"
            };
            let body = format!(
                r#"{{"amount":"{}","tenders":{}}}"#,
                yuan(amount),
                tenders_json(&[(kind, amount, None)])
            );
            post(op, "/v1/sales", body, None)
        }
        Op::SaleSplit => {
            let (h, card) = shared.household_with_card(rng);
            let wallet = rng.random_range(1..amount);
            let body = format!(
                r#"{{"household":"{h}","resident":{{"card":"{card}"}},"amount":"{}","tenders":{}}}"#,
                yuan(amount),
                tenders_json(&[("wallet", wallet, None), ("alipay", amount - wallet, None)])
            );
            post(op, "/v1/sales", body, None)
        }
        Op::SaleLines => {
            let n = rng.random_range(1..=4usize);
            let mut total = 0i64;
            let mut lines = Vec::with_capacity(n);
            for _ in 0..n {
                let (sku, _, _, price, _) = CATALOGUE[rng.random_range(0..CATALOGUE.len())];
                let qty = rng.random_range(1..=3i64);
                total += price * qty;
                lines.push(format!(r#"{{"sku":"{sku}","qty":"{qty}"}}"#));
            }
            let body = if rng.random_range(0..2) == 0 {
                let (h, card) = shared.household_with_card(rng);
                format!(
                    r#"{{"household":"{h}","resident":{{"card":"{card}"}},"lines":[{}],"tenders":{}}}"#,
                    lines.join(","),
                    tenders_json(&[("wallet", total, None)])
                )
            } else {
                format!(
                    r#"{{"lines":[{}],"tenders":{}}}"#,
                    lines.join(","),
                    tenders_json(&[("cash", total, None)])
                )
            };
            post(op, "/v1/sales", body, None)
        }
        Op::Refund => {
            let sale = recent[rng.random_range(0..recent.len())];
            // Half refund 1.00, half the whole remainder (an empty body).
            let body = if rng.random_range(0..2) == 0 {
                r#"{"amount":"1.00"}"#.to_string()
            } else {
                String::new()
            };
            post(op, &format!("/v1/sales/{sale}/refunds"), body, None)
        }
    }
}

async fn till(shared: Arc<Shared>, index: usize) -> Tally {
    let (secret, _, _) = &shared.world.tills[index];
    let auth = format!("Bearer {secret}");
    let mut rng = StdRng::seed_from_u64(0x6878_0000 + index as u64);
    let mut tally = Tally::default();
    let mut recent: VecDeque<i64> = VecDeque::with_capacity(RECENT_SALES);
    let mut n = 0u64;
    while n < shared.per_till && Instant::now() < shared.deadline {
        n += 1;
        let req = next_request(&shared, &mut rng, &recent);
        let mut builder = shared
            .client
            .request(req.method.clone(), format!("{}{}", shared.base, req.path))
            .header("Authorization", req.auth.as_deref().unwrap_or(&auth));
        if let Some(body) = req.body {
            builder = builder
                .header("Idempotency-Key", format!("{}-{index}-{n}", shared.run))
                .header("Content-Type", "application/json")
                .body(body);
        }
        let started = Instant::now();
        let sent = builder.send().await;
        let answer = match sent {
            Ok(r) => {
                let status = r.status();
                r.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        let done = Instant::now();
        let measured = started >= shared.measure_from;
        if !measured {
            tally.warmup += 1;
        }
        let (status, bytes) = match answer {
            Ok(a) => a,
            Err(e) => {
                tally.errors += 1;
                if tally.error_samples.len() < ERRORS_SHOWN {
                    tally.error_samples.push(format!("{}: {e}", req.op.name()));
                }
                continue;
            }
        };
        if status.is_server_error() {
            tally.errors += 1;
            if tally.error_samples.len() < ERRORS_SHOWN {
                tally.error_samples.push(format!(
                    "{} {status}: {}",
                    req.op.name(),
                    String::from_utf8_lossy(&bytes)
                ));
            }
            continue;
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            if req.op.is_sale() {
                if let Some(sale) = body["sale"].as_i64() {
                    if recent.len() == RECENT_SALES {
                        recent.pop_front();
                    }
                    recent.push_back(sale);
                }
            }
            if req.op == Op::TopUpVoucher {
                if let Some(code) = body["voucher"]["code"].as_str() {
                    shared.add_voucher(&mut rng, code.to_string());
                }
            }
        } else if let Some(code) = &req.voucher {
            if body["code"] == "voucher_invalid" {
                shared.forget_voucher(code);
            }
        }
        if !measured {
            continue;
        }
        tally
            .latencies
            .entry(req.op)
            .or_default()
            .push(done - started);
        tally.last_done = Some(done);
        if status.is_success() {
            *tally.accepted.entry(req.op).or_default() += 1;
        } else {
            let code = body["code"]
                .as_str()
                .map_or_else(|| format!("http_{}", status.as_u16()), str::to_string);
            *tally.rejected.entry((req.op, code)).or_default() += 1;
        }
    }
    tally
}

/// `hongxin_write_batches_total`, `…_commands_total`, `…_batch_largest` from `/metrics`.
async fn write_stats(client: &reqwest::Client, base: &str, admin: &str) -> Option<(u64, u64, u64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let find = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    Some((
        find("hongxin_write_batches_total ")?,
        find("hongxin_write_commands_total ")?,
        find("hongxin_write_batch_largest ")?,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn latency_row(name: &str, samples: &mut [Duration], seconds: f64) -> String {
    samples.sort_unstable();
    format!(
        "  {name:<22} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        samples.len(),
        samples.len() as f64 / seconds,
        ms(percentile(samples, 0.50)),
        ms(percentile(samples, 0.90)),
        ms(percentile(samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default()),
    )
}

// ---------------------------------------------------------------------------------------------
// CPU: where the machine's two cores went during the measured window.

/// CPU ticks (user + system) per thread of this process, grouped by thread name.
fn own_threads_cpu() -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let group = if name.starts_with("hx-server") {
            "hongxin server (tokio: HTTP, JSON, domain)"
        } else if name.starts_with("sqlx-sqlite") {
            "sqlx SQLite worker threads (SQL, fsync)"
        } else if name.starts_with("hx-till") {
            "load generator (reqwest)"
        } else {
            "other threads of the bench"
        };
        *out.entry(group).or_default() += ticks;
    }
    out
}

/// CPU ticks of every `postgres` process on the machine.
fn postgres_cpu() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != "postgres" {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        total += [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// (busy, total) ticks of the whole machine, from /proc/stat.
fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct CpuSnapshot {
    threads: BTreeMap<&'static str, u64>,
    postgres: u64,
    machine: (u64, u64),
}

fn cpu_snapshot() -> CpuSnapshot {
    CpuSnapshot {
        threads: own_threads_cpu(),
        postgres: postgres_cpu(),
        machine: machine_cpu(),
    }
}

fn clock_ticks() -> f64 {
    Process::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn print_cpu(before: &CpuSnapshot, after: &CpuSnapshot, seconds: f64, postgres: bool) {
    let hz = clock_ticks();
    let busy = (after.machine.0 - before.machine.0) as f64;
    let total = (after.machine.1 - before.machine.1) as f64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU over the window: machine {:.0}% busy of {cores} cores; per 1 s of wall time:",
        100.0 * busy / total.max(1.0)
    );
    for (group, t) in &after.threads {
        let d = t - before.threads.get(group).copied().unwrap_or(0);
        println!("  {group:<44} {:>5.2} cores", d as f64 / hz / seconds);
    }
    let ours: u64 = after.threads.values().sum::<u64>() - before.threads.values().sum::<u64>();
    let pg = after.postgres - before.postgres;
    if postgres {
        println!(
            "  {:<44} {:>5.2} cores",
            "PostgreSQL server processes",
            pg as f64 / hz / seconds
        );
    }
    // Whatever else ran: the kernel's share not charged to a thread, and other processes (a
    // build on the same machine spoils the figures; this line shows it).
    let others = (busy - ours as f64 - pg as f64).max(0.0);
    println!(
        "  {:<44} {:>5.2} cores",
        "other processes (an external server included)",
        others / hz / seconds
    );
}

// ---------------------------------------------------------------------------------------------
// Store only: sales straight into `Store::execute`, no HTTP, to split the cost of the HTTP layer
// from the write path's.

async fn store_only(app: App, world: Arc<World>, tills: usize, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut set = JoinSet::new();
    let started = Instant::now();
    for t in 0..tills {
        let (app, world) = (app.clone(), world.clone());
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(0x5707_0000 + t as u64);
            let (_, shop, id) = world.tills[t].clone();
            let mut lat = Vec::new();
            let mut ok = 0u64;
            let mut n = 0u64;
            while Instant::now() < deadline && n < MAX_PER_TILL {
                n += 1;
                let amount = Amount::from_fen(rng.random_range(100..6_000));
                let wallet = rng.random_range(0..2) == 0;
                let household = wallet
                    .then(|| world.households[rng.random_range(0..world.households.len())].clone());
                let kind = if wallet {
                    TenderType::Wallet
                } else {
                    TenderType::Cash
                };
                let command = Command::Sale(Sale {
                    shop: world.shops[shop].clone(),
                    household,
                    lines: vec![],
                    amount: Some(amount),
                    tenders: vec![Tender {
                        kind,
                        amount,
                        code: None,
                    }],
                });
                let envelope = Envelope {
                    actor: id,
                    idempotency: Some(Idempotency {
                        scope: id.unwrap_or(0).to_string(),
                        key: format!("store-{t}-{n}"),
                        fingerprint: format!("{t}-{n}"),
                        raw_fingerprint: None,
                    }),
                    command,
                };
                let at = Instant::now();
                let out = app.execute(envelope).await.expect("store");
                lat.push(at.elapsed());
                ok += u64::from(out.result.is_ok());
            }
            (lat, ok)
        });
    }
    let mut lat = Vec::new();
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        let (mut l, o) = r.expect("store task");
        lat.append(&mut l);
        ok += o;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "store only (Store::execute, no HTTP), {tills} tasks, {secs:.1} s: {:.0} sales/s ({} accepted of {}), \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len() as f64 / secs,
        ok,
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

// ---------------------------------------------------------------------------------------------
// Baseline: sale-like writes as raw SQL, one INSERT (the sale) and one UPDATE (the wallet,
// bounded at zero) per write, with the same durability as the store.

/// The shortest a baseline runs.
const MIN_BASELINE: Duration = Duration::from_secs(5);

const BASELINE_SCHEMA: [&str; 2] = [
    "CREATE TABLE hx_baseline_wallet (household BIGINT PRIMARY KEY, balance BIGINT NOT NULL CHECK (balance >= 0))",
    "CREATE TABLE hx_baseline_sale (id BIGINT PRIMARY KEY, household BIGINT NOT NULL, amount BIGINT NOT NULL, created_at TEXT NOT NULL)",
];

fn baseline_household(rng: &mut StdRng, households: usize) -> i64 {
    if rng.random_range(0..100) < HOT_SHARE {
        rng.random_range(0..HOT_HOUSEHOLDS) as i64
    } else {
        rng.random_range(HOT_HOUSEHOLDS..households) as i64
    }
}

/// SQLite, WAL and synchronous=FULL, one connection; `batch` writes per transaction. Stops after
/// `writes` writes or `limit`, whichever first. Returns (writes, seconds).
async fn sqlite_baseline(
    url: &str,
    households: usize,
    writes: u64,
    limit: Duration,
    batch: u64,
) -> (u64, f64) {
    let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .expect("url")
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .foreign_keys(true)
        .disable_statement_logging()
        .connect()
        .await
        .expect("baseline database");
    for s in [
        "DROP TABLE IF EXISTS hx_baseline_wallet",
        "DROP TABLE IF EXISTS hx_baseline_sale",
    ]
    .into_iter()
    .chain(BASELINE_SCHEMA)
    {
        sqlx::query(s)
            .execute(&mut c)
            .await
            .expect("baseline schema");
    }
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1)
         INSERT INTO hx_baseline_wallet SELECT i, 1000000000 FROM n",
    )
    .bind(households as i64)
    .execute(&mut c)
    .await
    .expect("baseline wallets");
    let mut rng = StdRng::seed_from_u64(7);
    let started = Instant::now();
    let mut done = 0u64;
    // The same number of writes as hongxin did, but at least `MIN_BASELINE` long, so a fast
    // baseline is not a fraction of a second, and at most `limit`.
    while (done < writes || started.elapsed() < MIN_BASELINE) && started.elapsed() < limit {
        let mut tx = c.begin().await.expect("begin");
        for _ in 0..batch {
            done += 1;
            let h = baseline_household(&mut rng, households);
            let amount = rng.random_range(100..6_000i64);
            sqlx::query("INSERT INTO hx_baseline_sale VALUES (?, ?, ?, ?)")
                .bind(done as i64)
                .bind(h)
                .bind(amount)
                .bind("2026-11-16T10:00:00.000000Z")
                .execute(&mut *tx)
                .await
                .expect("insert");
            sqlx::query("UPDATE hx_baseline_wallet SET balance = balance - ? WHERE household = ?")
                .bind(amount)
                .bind(h)
                .execute(&mut *tx)
                .await
                .expect("update");
        }
        tx.commit().await.expect("commit");
    }
    (done, started.elapsed().as_secs_f64())
}

/// The same writes as [`sqlite_baseline`], as one script piped into the `sqlite3` shell: no
/// driver, no thread hop per statement. `None` when there is no `sqlite3` on PATH.
fn sqlite_cli_baseline(
    file: &Path,
    households: usize,
    writes: u64,
    batch: u64,
) -> Option<(u64, f64)> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let _ = std::fs::remove_file(file);
    let run = |script: &str| -> Option<f64> {
        let mut child = Process::new("sqlite3")
            .arg(file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let started = Instant::now();
        child.stdin.take()?.write_all(script.as_bytes()).ok()?;
        let ok = child.wait().ok()?.success();
        ok.then(|| started.elapsed().as_secs_f64())
    };
    let mut setup = String::from("PRAGMA journal_mode=WAL;\n");
    for s in BASELINE_SCHEMA {
        let _ = writeln!(setup, "{s};");
    }
    let _ = writeln!(
        setup,
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {households}) \
         INSERT INTO hx_baseline_wallet SELECT i, 1000000000 FROM n;"
    );
    run(&setup)?;
    let mut rng = StdRng::seed_from_u64(7);
    let mut script = String::from("PRAGMA synchronous=FULL;\n");
    for id in 0..writes {
        if id % batch == 0 {
            script.push_str("BEGIN IMMEDIATE;\n");
        }
        let h = baseline_household(&mut rng, households);
        let amount = rng.random_range(100..6_000i64);
        let _ = writeln!(
            script,
            "INSERT INTO hx_baseline_sale VALUES ({id}, {h}, {amount}, '2026-11-16T10:00:00.000000Z');\n\
             UPDATE hx_baseline_wallet SET balance = balance - {amount} WHERE household = {h};"
        );
        if id % batch == batch - 1 || id == writes - 1 {
            script.push_str("COMMIT;\n");
        }
    }
    run(&script).map(|s| (writes, s))
}

/// PostgreSQL, one transaction per write over `connections` connections. Returns (writes, seconds).
async fn postgres_baseline(
    url: &str,
    households: usize,
    writes: u64,
    limit: Duration,
    connections: usize,
) -> (u64, f64) {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections as u32)
        .connect_with(
            sqlx::postgres::PgConnectOptions::from_str(url)
                .expect("url")
                .disable_statement_logging(),
        )
        .await
        .expect("baseline database");
    for s in [
        "DROP TABLE IF EXISTS hx_baseline_wallet",
        "DROP TABLE IF EXISTS hx_baseline_sale",
    ]
    .into_iter()
    .chain(BASELINE_SCHEMA)
    {
        sqlx::query(s)
            .execute(&pool)
            .await
            .expect("baseline schema");
    }
    sqlx::query(
        "INSERT INTO hx_baseline_wallet SELECT i, 1000000000 FROM generate_series(0, $1 - 1) i",
    )
    .bind(households as i64)
    .execute(&pool)
    .await
    .expect("baseline wallets");
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for t in 0..connections {
        let (pool, next) = (pool.clone(), next.clone());
        set.spawn(async move {
            let mut rng = StdRng::seed_from_u64(100 + t as u64);
            let mut c = pool.acquire().await.expect("connection");
            loop {
                let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let elapsed = started.elapsed();
                if (id >= writes && elapsed >= MIN_BASELINE) || elapsed >= limit {
                    break;
                }
                let h = baseline_household(&mut rng, households);
                let amount = rng.random_range(100..6_000i64);
                let mut tx = c.begin().await.expect("begin");
                sqlx::query("INSERT INTO hx_baseline_sale VALUES ($1, $2, $3, $4)")
                    .bind(id as i64)
                    .bind(h)
                    .bind(amount)
                    .bind("2026-11-16T10:00:00.000000Z")
                    .execute(&mut *tx)
                    .await
                    .expect("insert");
                sqlx::query(
                    "UPDATE hx_baseline_wallet SET balance = balance - $1 WHERE household = $2",
                )
                .bind(amount)
                .bind(h)
                .execute(&mut *tx)
                .await
                .expect("update");
                tx.commit().await.expect("commit");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("baseline task");
    }
    let secs = started.elapsed().as_secs_f64();
    let done: u64 = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM hx_baseline_sale")
        .fetch_one(&pool)
        .await
        .expect("count") as u64;
    for s in [
        "DROP TABLE hx_baseline_wallet",
        "DROP TABLE hx_baseline_sale",
    ] {
        let _ = sqlx::query(s).execute(&pool).await;
    }
    (done, secs)
}

// ---------------------------------------------------------------------------------------------

/// The server the tills talk to, and what keeps it alive.
struct Target {
    base: String,
    seeder: Seeder,
    admin: String,
    prefix: String,
    /// In-process: the server, the store, and the runtime they run on.
    local: Option<Local>,
}

struct Local {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    app: App,
    clock: Clock,
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(
                std::env::var("HONGXIN_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let config = Config::from_env();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let client_rt = runtime("hx-till", cores);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cluster: Option<cluster::Cluster> = None;
    let external = config.url.is_some();

    let t = Instant::now();
    let target = match (&config.url, &config.token) {
        (Some(url), Some(token)) => {
            eprintln!("till bench against {url}");
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(config.tills + 8)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client");
            Target {
                base: url.trim_end_matches('/').to_string(),
                seeder: Seeder::Http {
                    client,
                    base: url.trim_end_matches('/').to_string(),
                    admin: token.clone(),
                },
                admin: token.clone(),
                prefix: format!("b{}-", &random_hex(3)[..5]),
                local: None,
            }
        }
        _ => {
            let database = match config.backend {
                Backend::Sqlite => format!("sqlite://{}/till.db", dir.path().display()),
                Backend::Postgres => {
                    eprintln!("starting a throwaway PostgreSQL cluster (durable commits)…");
                    let c = cluster::start();
                    client_rt.block_on(cluster::create_database(&c.admin_url, "hongxin_bench"));
                    let url = c.url("hongxin_bench");
                    cluster = Some(c);
                    url
                }
            };
            let server_rt = runtime("hx-server", cores);
            let clock = Clock::manual(date(SEED_DATE));
            let settings = Settings {
                database: database.clone(),
                policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
                key_file: Some(dir.path().join("keys.toml")),
                today: None,
            };
            let app = server_rt
                .block_on(App::open_with_clock(&settings, clock.clone()))
                .expect("App::open");
            let admin = server_rt
                .block_on(Seeder::Library(app.clone()).token(Role::Admin, None))
                .1;
            Target {
                base: String::new(),
                seeder: Seeder::Library(app.clone()),
                admin,
                prefix: String::new(),
                local: Some(Local {
                    runtime: server_rt,
                    running: None,
                    app,
                    clock,
                }),
            }
        }
    };
    let Target {
        mut base,
        seeder,
        admin,
        prefix,
        mut local,
    } = target;

    eprintln!("seeding…");
    let world = match &local {
        Some(l) => l
            .runtime
            .block_on(seed(&seeder, &prefix, &config, admin.clone())),
        None => client_rt.block_on(seed(&seeder, &prefix, &config, admin.clone())),
    };
    if let Some(l) = &mut local {
        l.clock.set(date(LOAD_DATE));
        // Voucher lookups and redemptions are rate-limited per token and address; a bench of
        // 64 tills from one address would measure the limiter.
        let http = HttpConfig {
            rates: RateConfig {
                voucher_per_token: 1_000_000,
                voucher_per_address: 1_000_000,
                ..RateConfig::default()
            },
            ..HttpConfig::default()
        };
        let running = l
            .runtime
            .block_on(Running::start(
                AppState::new(l.app.clone(), http),
                "127.0.0.1:0",
            ))
            .expect("start the server");
        base = format!("http://{}", running.addr);
        l.running = Some(running);
    }
    eprintln!("ready in {:.1} s", t.elapsed().as_secs_f64());

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.tills + 8)
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .expect("HTTP client");
    let (per_till, seconds) = match config.requests {
        Some(total) => (total.div_ceil(config.tills as u64).min(MAX_PER_TILL), 3_600),
        None => (MAX_PER_TILL, config.warmup + config.seconds),
    };
    let mut world = world;
    let vouchers = std::mem::take(&mut world.vouchers);
    let world = Arc::new(world);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        client: client.clone(),
        base: base.clone(),
        world: world.clone(),
        vouchers: Mutex::new(vouchers),
        run: random_hex(6),
        measure_from: if config.requests.is_some() {
            start
        } else {
            start + Duration::from_secs(config.warmup)
        },
        deadline: start + Duration::from_secs(seconds),
        per_till,
    });

    eprintln!(
        "{} tills on {} for {}…",
        config.tills,
        if external {
            "the running server"
        } else {
            config.backend.name()
        },
        match config.requests {
            Some(n) => format!("{n} requests"),
            None => format!("{} s after {} s of warm-up", config.seconds, config.warmup),
        }
    );
    // A long-running database has been analysed by autovacuum; a fresh one has not, and the
    // generic plans PostgreSQL caches for prepared statements (and foreign-key checks) while
    // its tables are nearly empty scan them whole. So: ANALYZE halfway through the warm-up,
    // once every table has rows, and the measured window sees the steady state.
    let analyze = cluster.as_ref().map(|c| c.url("hongxin_bench"));
    let run_analyze = std::env::var("HONGXIN_BENCH_ANALYZE").as_deref() != Ok("0");
    let (tally, before_stats, after_stats, cpu) = client_rt.block_on(async {
        let mut set = JoinSet::new();
        for i in 0..config.tills {
            set.spawn(till(shared.clone(), i));
        }
        if let (Some(url), true) = (&analyze, run_analyze) {
            tokio::time::sleep(Duration::from_secs(config.warmup) / 2).await;
            cluster::analyze(url).await;
        }
        // Snapshots when measuring starts and when the last till is done.
        tokio::time::sleep_until(shared.measure_from.into()).await;
        if let (Some(url), true) = (&analyze, cluster::statements_profiled() > 0) {
            cluster::reset_statements(url).await;
        }
        let before_cpu = cpu_snapshot();
        let before = write_stats(&client, &base, &world.admin).await;
        let mut tally = Tally::default();
        while let Some(t) = set.join_next().await {
            tally.merge(t.expect("till task"));
        }
        let after_cpu = cpu_snapshot();
        let after = write_stats(&client, &base, &world.admin).await;
        (tally, before, after, (before_cpu, after_cpu))
    });
    let window = tally
        .last_done
        .map_or(0.0, |d| d.duration_since(shared.measure_from).as_secs_f64())
        .max(1e-9);

    // The report.
    let mut all: Vec<Duration> = Vec::new();
    let mut sale_lat: Vec<Duration> = Vec::new();
    let mut writes = 0u64;
    let mut requests = 0u64;
    let mut sales_ok = 0u64;
    for (op, v) in &tally.latencies {
        all.extend_from_slice(v);
        requests += v.len() as u64;
        if op.is_sale() {
            sale_lat.extend_from_slice(v);
        }
        if op.is_write() {
            writes += v.len() as u64;
        }
    }
    for (op, n) in &tally.accepted {
        if op.is_sale() {
            sales_ok += n;
        }
    }
    let backend = if external {
        "a running server".to_string()
    } else {
        config.backend.name().to_string()
    };
    println!();
    println!(
        "till benchmark: {} tills, {backend}, {} households ({HOT_HOUSEHOLDS} hot: {HOT_SHARE}% of picks), \
         {:.1} s measured after {} warm-up requests",
        config.tills,
        config.households,
        window,
        tally.warmup
    );
    println!(
        "throughput: {:.0} requests/s, {:.0} writes/s, {:.0} sales/s accepted ({:.0} sale attempts/s)",
        requests as f64 / window,
        writes as f64 / window,
        sales_ok as f64 / window,
        sale_lat.len() as f64 / window
    );
    println!(
        "errors (transport or 5xx): {}{}",
        tally.errors,
        if tally.error_samples.is_empty() {
            String::new()
        } else {
            format!("; first: {}", tally.error_samples.join(" | "))
        }
    );
    println!();
    println!(
        "  {:<22} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}   (ms)",
        "operation", "count", "per s", "p50", "p90", "p99", "max"
    );
    let mut latencies = tally.latencies;
    for (op, v) in latencies.iter_mut() {
        println!("{}", latency_row(op.name(), v, window));
    }
    println!("{}", latency_row("all sales", &mut sale_lat, window));
    println!("{}", latency_row("all requests", &mut all, window));
    println!();
    println!("accepted by operation:");
    for (op, n) in &tally.accepted {
        println!("  {:<22} {n}", op.name());
    }
    println!("rejections by operation and code (business refusals, not errors):");
    if tally.rejected.is_empty() {
        println!("  none");
    }
    for ((op, code), n) in &tally.rejected {
        println!("  {:<22} {code:<28} {n}", op.name());
    }
    match (before_stats, after_stats) {
        (Some(b), Some(a)) => {
            let batches = a.0 - b.0;
            let commands = a.1 - b.1;
            println!(
                "write batches (GET /metrics, measured window): {batches} batches carried {commands} commands: \
                 mean batch {:.1}, largest so far {}; {:.0} commits/s",
                commands as f64 / batches.max(1) as f64,
                a.2,
                batches as f64 / window
            );
        }
        _ => println!("write batches: GET /metrics did not answer with the write-path figures"),
    }
    print_cpu(
        &cpu.0,
        &cpu.1,
        window,
        config.backend == Backend::Postgres && !external,
    );
    if let (Some(c), n @ 1..) = (&cluster, cluster::statements_profiled()) {
        let commands = match (before_stats, after_stats) {
            (Some(b), Some(a)) => a.1 - b.1,
            _ => 0,
        };
        client_rt.block_on(cluster::print_statements(
            &c.url("hongxin_bench"),
            n,
            commands,
        ));
    }

    // Store only, then verification, then the baseline on a quiet database.
    if let Some(l) = &local {
        if config.store_seconds > 0 {
            l.runtime.block_on(store_only(
                l.app.clone(),
                world.clone(),
                config.tills,
                config.store_seconds,
            ));
        }
    }
    let verify = client_rt.block_on(async {
        let r = client
            .get(format!("{base}/v1/audit/verify"))
            .bearer_auth(&world.admin)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .expect("GET /v1/audit/verify");
        let status = r.status();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    });
    println!(
        "GET /v1/audit/verify: {} ok={} ({} entries, {} postings, head {})",
        verify.0,
        verify.1["ok"],
        verify.1["report"]["entries"],
        verify.1["report"]["postings"],
        verify.1["report"]["head_seq"]
    );
    assert!(
        verify.0.is_success() && verify.1["ok"] == json!(true),
        "the ledger does not verify after the bench: {}",
        verify.1
    );
    if let Some(mut l) = local.take() {
        if let Some(r) = l.running.take() {
            let _ = l.runtime.block_on(r.shutdown());
        }
        drop(l.app);
        l.runtime.shutdown_timeout(Duration::from_secs(5));
    }

    // Baseline: as many sale-like writes as hongxin did in the window, for at least
    // `MIN_BASELINE` and at most as long as the window; the ratio compares rates.
    let limit = Duration::from_secs_f64(window.max(MIN_BASELINE.as_secs_f64()));
    let hongxin_rate = writes as f64 / window;
    println!();
    match (config.backend, &config.baseline_url) {
        (Backend::Postgres, url) => {
            let url = match (url, &cluster) {
                (Some(u), _) => u.clone(),
                (None, Some(c)) => {
                    client_rt.block_on(cluster::create_database(&c.admin_url, "baseline"));
                    c.url("baseline")
                }
                (None, None) => {
                    let c = cluster::start();
                    client_rt.block_on(cluster::create_database(&c.admin_url, "baseline"));
                    let u = c.url("baseline");
                    cluster = Some(c);
                    u
                }
            };
            let (n, s) = client_rt.block_on(postgres_baseline(
                &url,
                config.households,
                writes,
                limit,
                config.tills,
            ));
            let rate = n as f64 / s;
            println!(
                "baseline, PostgreSQL (durable), one INSERT+UPDATE transaction per write over {} connections: \
                 {n} writes in {s:.1} s = {rate:.0} writes/s; hongxin/baseline = {:.2}",
                config.tills,
                hongxin_rate / rate
            );
        }
        (Backend::Sqlite, url) => {
            let url = url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}/baseline.db", dir.path().display()));
            for batch in [1u64, 64] {
                let (n, s) = client_rt.block_on(sqlite_baseline(
                    &url,
                    config.households,
                    writes,
                    limit,
                    batch,
                ));
                let rate = n as f64 / s;
                println!(
                    "baseline, SQLite WAL synchronous=FULL, INSERT+UPDATE via sqlx, {batch} write(s) per transaction: \
                     {n} writes in {s:.1} s = {rate:.0} writes/s; hongxin/baseline = {:.2}",
                    hongxin_rate / rate
                );
            }
            // The same writes without a driver in between: what SQLite itself costs.
            let file = dir.path().join("baseline-cli.db");
            for (batch, at_least) in [(1u64, 20_000), (64, 100_000)] {
                let n = writes.max(at_least);
                match sqlite_cli_baseline(&file, config.households, n, batch) {
                    Some((n, s)) => {
                        let rate = n as f64 / s;
                        println!(
                            "baseline, SQLite WAL synchronous=FULL, INSERT+UPDATE via the sqlite3 shell, {batch} write(s) per transaction: \
                             {n} writes in {s:.1} s = {rate:.0} writes/s; hongxin/baseline = {:.2}",
                            hongxin_rate / rate
                        );
                    }
                    None => {
                        println!("baseline via the sqlite3 shell: skipped (no `sqlite3` on PATH)")
                    }
                }
            }
        }
    }
    println!(
        "hongxin: {hongxin_rate:.0} writes/s ({:.0} sales/s accepted) through HTTP",
        sales_ok as f64 / window
    );
    drop(cluster);
}
