//! Real `hongxin` processes for the operations and fault tests: an installation made by
//! `hongxin init` (SQLite file or a fresh PostgreSQL database), `hongxin serve` processes that
//! can be killed with SIGKILL, and master data created over HTTP with the first admin token, as
//! an operator would.
//!
//! A server runs under a small shell that prints its process id and stops it when the shell's
//! standard input closes: when a [`Server`] is dropped (also when the test panics) and when the
//! test process ends in any other way, since the kernel then closes the pipe.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

#[allow(clippy::duplicate_mod)]
#[path = "../pg_support/mod.rs"]
pub mod pg_support;

pub const TODAY: &str = "2026-11-16";
pub const HOUSEHOLDS: [&str; 4] = ["H1", "H2", "H3", "H4"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database, its key file and the repository's policies, in a directory of the test's own.
pub struct Install {
    pub dir: tempfile::TempDir,
    pub database: String,
    pub key_file: PathBuf,
    pub pg: Option<pg_support::TestDatabase>,
}

impl Install {
    /// A fresh, empty installation; `None` when the backend is PostgreSQL and it is not
    /// available (the test then passes without running, see `pg_support::available`).
    pub async fn new(backend: Backend) -> Option<Install> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key_file = dir.path().join("keys.toml");
        match backend {
            Backend::Sqlite => Some(Install {
                database: format!("sqlite://{}", dir.path().join("hongxin.db").display()),
                dir,
                key_file,
                pg: None,
            }),
            Backend::Postgres => {
                if !pg_support::available() {
                    return None;
                }
                let db = pg_support::fresh_database().await;
                Some(Install {
                    database: db.url.clone(),
                    dir,
                    key_file,
                    pg: Some(db),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `hongxin` on this installation, untouched by the caller's environment.
    pub fn command(&self) -> Command {
        self.command_on(&self.database)
    }

    /// `hongxin` on this installation with another business date.
    pub fn command_at(&self, today: &str) -> Command {
        self.command_with(&self.database, today)
    }

    /// `hongxin` with this installation's key file and policies on another database.
    pub fn command_on(&self, database: &str) -> Command {
        self.command_with(database, TODAY)
    }

    fn command_with(&self, database: &str, today: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hongxin"));
        clean_env(&mut c);
        c.current_dir(self.path())
            .arg("--database")
            .arg(database)
            .arg("--policies")
            .arg(policies())
            .arg("--key-file")
            .arg(&self.key_file)
            .arg("--today")
            .arg(today);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hongxin")
    }

    /// `hongxin init`: the first admin token.
    pub fn init(&self) -> String {
        let o = self.run(&["init"]);
        assert_ok(&o);
        let token = stdout(&o).trim().to_string();
        assert!(token.starts_with("hx_"), "{}", stdout(&o));
        token
    }
}

/// The repository's policies.
pub fn policies() -> PathBuf {
    concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()
}

pub fn clean_env(c: &mut Command) {
    for var in [
        "HONGXIN_DATABASE",
        "HONGXIN_KEY_FILE",
        "HONGXIN_CONFIG",
        "HONGXIN_POLICIES",
        "HONGXIN_TODAY",
        "HONGXIN_LISTEN",
        "HONGXIN_PUBLIC_URL",
        "HONGXIN_HOUSEKEEPING_SECONDS",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c.env("HONGXIN_LOG", "warn");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// A `hongxin serve` process.
pub struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The `hongxin` process itself (not its shell).
    pub pid: u32,
    pub base: String,
    /// Everything it printed on standard error, for failure messages and log checks.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs `"$0" "$@"`, prints its pid, and stops it when standard input closes.
const STOP_ON_EOF: &str = "trap '' INT TERM HUP; \"$0\" \"$@\" </dev/null & pid=$!; \
     echo \"hongxin pid $pid\" >&2; cat >/dev/null; kill $pid 2>/dev/null; wait $pid";

impl Server {
    /// `command` (a `hongxin` command line with its global options) plus `serve args…`, run
    /// until it prints the address it serves on.
    pub fn start(command: Command, args: &[&str]) -> Server {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(STOP_ON_EOF)
            .arg(command.get_program())
            .args(command.get_args())
            .arg("serve")
            .args(args);
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => shell.env(k, v),
                None => shell.env_remove(k),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            shell.current_dir(dir);
        }
        let mut child = shell
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hongxin serve");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("serve's stderr");
        let (found, address) = std::sync::mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        // Reads stderr to the end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut pid = None;
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(p) = line.strip_prefix("hongxin pid ") {
                    pid = p.trim().parse::<u32>().ok();
                } else if let Some(rest) = line.split("hongxin serving http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    if let (Some(tx), Some(pid)) = (found.take(), pid) {
                        let _ = tx.send((pid, addr.to_string()));
                    }
                }
                if let Ok(mut log) = kept.lock() {
                    log.push(line);
                }
            }
        });
        let (pid, addr) = match address.recv_timeout(Duration::from_secs(60)) {
            Ok(found) => found,
            Err(_) => panic!(
                "hongxin serve printed no address: {:?}\n{}",
                child.try_wait(),
                log.lock().map(|l| l.join("\n")).unwrap_or_default()
            ),
        };
        Server {
            child,
            stdin,
            pid,
            base: format!("http://{addr}"),
            log,
        }
    }

    /// SIGKILL: no shutdown, no flush, as a power cut or the OOM killer would stop it.
    pub fn kill9(mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -KILL {}", self.pid);
        drop(self.stdin.take());
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// A key no request has used: `prefix`, the process and a counter.
pub fn fresh_key(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// POSTs `body`, asserting a 2xx answer; returns the body.
pub async fn post_ok(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Value,
) -> Value {
    let answer = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("Idempotency-Key", fresh_key("setup"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "POST {path} {body}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub async fn get_ok(client: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let answer = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "GET {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Master data over HTTP with the admin token: cooperative COOP with shop S1, company K01,
/// eligible compound HX01 with [`HOUSEHOLDS`]. Returns a cashier token for S1.
pub async fn seed(client: &reqwest::Client, base: &str, admin: &str) -> String {
    post_ok(
        client,
        base,
        admin,
        "/v1/cooperatives",
        json!({"code": "COOP", "name": "红心合作社"}),
    )
    .await;
    post_ok(
        client,
        base,
        admin,
        "/v1/shops",
        json!({"code": "S1", "name": "一号店", "cooperative": "COOP"}),
    )
    .await;
    post_ok(
        client,
        base,
        admin,
        "/v1/companies",
        json!({"code": "K01", "name": "物业 K01"}),
    )
    .await;
    post_ok(
        client,
        base,
        admin,
        "/v1/compounds",
        json!({"code": "HX01", "name": "小区", "company": "K01", "eligible": true}),
    )
    .await;
    for h in HOUSEHOLDS {
        post_ok(
            client,
            base,
            admin,
            "/v1/households",
            json!({"code": h, "compound": "HX01", "area_m2": "80"}),
        )
        .await;
    }
    let token = post_ok(
        client,
        base,
        admin,
        "/v1/tokens",
        json!({"role": "cashier", "scope": "S1"}),
    )
    .await;
    token["token"].as_str().expect("token").to_string()
}

/// Each household's card: the signed link a till scans as the resident's presence when it
/// spends from the wallet.
pub type Cards = std::collections::BTreeMap<&'static str, String>;

/// The cards of [`HOUSEHOLDS`], as the office prints them.
pub async fn cards(client: &reqwest::Client, base: &str, admin: &str) -> Cards {
    let mut cards = Cards::new();
    for h in HOUSEHOLDS {
        let link = get_ok(client, base, admin, &format!("/v1/households/{h}/link")).await;
        cards.insert(h, link["url"].as_str().expect("link url").to_string());
    }
    cards
}

/// An amount string as fen.
pub fn fen(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("amount must be a string, got {v}"));
    hongxin::money::Amount::parse(s)
        .unwrap_or_else(|e| panic!("bad amount {s:?}: {e}"))
        .fen()
}

/// A household's wallet (paid, bonus) in fen, from the API.
pub async fn wallet(client: &reqwest::Client, base: &str, token: &str, h: &str) -> (i64, i64) {
    let v = get_ok(client, base, token, &format!("/v1/households/{h}")).await;
    (fen(&v["wallet"]["paid"]), fen(&v["wallet"]["bonus"]))
}

/// `GET /v1/audit/verify`: whether the chain and every balance check out, and the head.
pub async fn verify(client: &reqwest::Client, base: &str, admin: &str) -> (bool, i64) {
    let v = get_ok(client, base, admin, "/v1/audit/verify").await;
    (
        v["ok"].as_bool().unwrap_or(false),
        v["report"]["head_seq"].as_i64().unwrap_or(-1),
    )
}

/// Tills writing until `stop` is set: each client tops up a household's wallet by 50.00 and
/// spends 12.34 from it, over and over. Returns how many requests were answered 201.
pub fn spawn_load(
    base: &str,
    cashier: &str,
    cards: &Cards,
    clients: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let (base, cashier) = (base.to_string(), cashier.to_string());
    let cards = cards.clone();
    tokio::spawn(async move {
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let (base, cashier, stop) = (base.clone(), cashier.clone(), stop.clone());
                let h = HOUSEHOLDS[c % HOUSEHOLDS.len()];
                let card = cards[h].clone();
                tokio::spawn(async move {
                    let http = client();
                    let mut created = 0u64;
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let (path, body) = if n % 2 == 0 {
                            (
                                "/v1/topups",
                                json!({"household": h, "paid": "50.00", "method": "cash"}),
                            )
                        } else {
                            (
                                "/v1/sales",
                                json!({"household": h, "amount": "12.34",
                                "tenders": [{"type": "wallet", "amount": "12.34"}],
                                "resident": {"card": card}}),
                            )
                        };
                        n += 1;
                        let answer = http
                            .post(format!("{base}{path}"))
                            .bearer_auth(&cashier)
                            .header("Idempotency-Key", fresh_key("load"))
                            .json(&body)
                            .send()
                            .await;
                        if answer.is_ok_and(|a| a.status().as_u16() == 201) {
                            created += 1;
                        }
                    }
                    created
                })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            created += t.await.unwrap_or(0);
        }
        created
    })
}

/// The journal head `(seq, hash)` from `GET /v1/audit/head`.
pub async fn head(client: &reqwest::Client, base: &str, admin: &str) -> (i64, String) {
    let v = get_ok(client, base, admin, "/v1/audit/head").await;
    (
        v["seq"].as_i64().expect("seq"),
        v["hash"].as_str().expect("hash").to_string(),
    )
}

/// A PostgreSQL client program (`pg_dump`, `pg_restore`) from the newest server install.
pub fn pg_program(name: &str) -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let program = e.path().join("bin").join(name);
            program.is_file().then_some((version, program))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Every account balance of the database at `url` (with the installation's key file), through
/// the library, after opening it the way the server does.
pub async fn balances(
    install: &Install,
    url: &str,
) -> std::collections::BTreeMap<String, hongxin::money::Amount> {
    let settings = hongxin::app::Settings {
        database: url.to_string(),
        policies_dir: policies(),
        key_file: Some(install.key_file.clone()),
        today: Some(TODAY.parse().expect("date")),
    };
    let app = hongxin::app::App::open(&settings).await.expect("open");
    app.store.balances().await.expect("balances")
}

// ---------------------------------------------------------------------------------------------
// The tills' model, for the fault tests
// ---------------------------------------------------------------------------------------------

/// A request as the till sent it: retried with the same key and body.
#[derive(Clone, Debug)]
pub struct Request {
    pub key: String,
    pub path: &'static str,
    pub household: &'static str,
    pub body: Value,
}

/// What the harness believes, from the answers it got.
#[derive(Default)]
pub struct Model {
    /// Wallet total (paid + bonus) per household, in fen.
    pub wallets: std::collections::BTreeMap<&'static str, i64>,
    /// Entries of acknowledged commands.
    pub entries: std::collections::BTreeSet<i64>,
    pub accepted: u64,
    pub refused: u64,
    /// Sent, never answered: retried after the restart.
    pub unanswered: Vec<Request>,
    pub retried: u64,
}

impl Model {
    /// Takes an answer into the model; false when there was none (to retry later).
    pub fn answer(&mut self, request: &Request, status: u16, body: &Value) -> bool {
        match status {
            201 => {
                let entry = body["entry"].as_i64().expect("entry");
                assert!(
                    self.entries.insert(entry),
                    "entry {entry} acknowledged twice ({request:?})"
                );
                let delta = if request.path == "/v1/topups" {
                    fen(&body["credited"])
                } else {
                    -fen(&body["total"])
                };
                *self.wallets.entry(request.household).or_default() += delta;
                self.accepted += 1;
                true
            }
            // Refused (insufficient funds, caps): remembered with its key, changes nothing.
            422 => {
                self.refused += 1;
                true
            }
            _ => false,
        }
    }
}

/// A small deterministic generator, so a failing run can be replayed from its printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub async fn send(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    r: &Request,
) -> Option<(u16, Value)> {
    let answer = http
        .post(format!("{base}{}", r.path))
        .bearer_auth(token)
        .header("Idempotency-Key", &r.key)
        .json(&r.body)
        .send()
        .await
        .ok()?;
    let status = answer.status().as_u16();
    let body = answer.json().await.ok()?;
    Some((status, body))
}

/// The till mix: two top-ups of 50.00 then a wallet sale of 12.34 with the household's card.
pub fn new_request(n: u64, household: &'static str, cards: &Cards) -> Request {
    if n % 3 == 2 {
        Request {
            key: fresh_key("sale"),
            path: "/v1/sales",
            household,
            body: json!({"household": household, "amount": "12.34",
                         "tenders": [{"type": "wallet", "amount": "12.34"}],
                         "resident": {"card": cards[household]}}),
        }
    } else {
        Request {
            key: fresh_key("topup"),
            path: "/v1/topups",
            household,
            body: json!({"household": household, "paid": "50.00", "method": "cash"}),
        }
    }
}

/// After a restart: the unanswered requests again, then the checks.
pub async fn recover_and_check(
    http: &reqwest::Client,
    server: &Server,
    admin: &str,
    cashier: &str,
    model: &mut Model,
    seeded: i64,
) {
    for r in std::mem::take(&mut model.unanswered) {
        let (status, body) = send(http, &server.base, cashier, &r)
            .await
            .unwrap_or_else(|| panic!("no answer to a retry after restart: {r:?}"));
        model.retried += 1;
        assert!(
            model.answer(&r, status, &body),
            "retry of {r:?} answered {status} {body}"
        );
    }
    let (ok, head) = verify(http, &server.base, admin).await;
    assert!(ok, "verify failed after a restart:\n{}", server.log_text());
    // One entry per acknowledged command and none other: no loss, no duplicate.
    assert_eq!(
        head - seeded,
        model.accepted as i64,
        "entries posted since seeding vs commands acknowledged"
    );
    // The entries on the households' wallets are exactly the acknowledged ones.
    let mut journal = std::collections::BTreeSet::new();
    for h in HOUSEHOLDS {
        let mut before: Option<i64> = None;
        loop {
            let page = get_ok(
                http,
                &server.base,
                admin,
                &match before {
                    None => format!("/v1/households/{h}/history?limit=100"),
                    Some(b) => format!("/v1/households/{h}/history?limit=100&before={b}"),
                },
            )
            .await;
            for item in page["items"].as_array().expect("items") {
                let entry = item["entry"].as_i64().expect("entry");
                assert!(journal.insert(entry), "entry {entry} on two households");
            }
            match page["next_before"].as_i64() {
                Some(b) => before = Some(b),
                None => break,
            }
        }
    }
    assert_eq!(
        model.entries, journal,
        "acknowledged entries vs the journal"
    );
    for h in HOUSEHOLDS {
        let v = get_ok(http, &server.base, admin, &format!("/v1/households/{h}")).await;
        let total = fen(&v["wallet"]["paid"]) + fen(&v["wallet"]["bonus"]);
        assert_eq!(
            total,
            model.wallets.get(h).copied().unwrap_or(0),
            "wallet of {h}"
        );
    }
}
