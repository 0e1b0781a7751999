//! Several stateless servers on one PostgreSQL database (SPEC §11): two `hongxin serve`
//! processes share a database seeded through the library, and 64 concurrent clients spend from
//! the same few wallets and vouchers through both, some retrying a request on the other server
//! with the same Idempotency-Key. At the end every balance is what the acknowledged operations
//! say, nothing is negative, each retried request posted once, and `hongxin verify` passes.
//!
//! And a server that dies inside a write batch (aborted at a crash point, as `kill -9` would
//! stop it), on SQLite and on PostgreSQL: whatever was acknowledged is there after a restart,
//! no half batch was posted, and every request sent again with its key is posted exactly once.

mod pg_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use hongxin::app::{App, Settings};
use hongxin::domain::{
    Command as Op, Delivery, NewCompany, NewCompound, NewCooperative, NewHousehold, NewShop,
    NewToken, PayMethod, Receipt, Role, TopUp,
};
use hongxin::http::extract::token_hash;
use hongxin::money::Amount;

const TODAY: &str = "2026-11-16";
const CASHIER: &str = "mp-cashier-s1";
const ADMIN: &str = "mp-admin";
const HOUSEHOLDS: [&str; 3] = ["H1", "H2", "H3"];
const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 24;

/// The repository's policies, a key file in `dir`, the tests' business date, on `database`.
fn settings_in(dir: &tempfile::TempDir, database: &str) -> Settings {
    Settings {
        database: database.to_string(),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file: Some(dir.path().join("keys.toml")),
        today: Some(TODAY.parse().expect("date")),
    }
}

/// A `hongxin serve` process. It runs under a small shell that stops it when its standard
/// input closes: when this is dropped (also when the test panics), and when the test process
/// ends in any other way, even killed, since the kernel then closes the pipe.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `hongxin` with the test's settings, run directly or by a shell `wrapper` script that gets
/// the command as `"$0" "$@"`.
fn hongxin_via(wrapper: Option<&str>, settings: &Settings) -> Command {
    let mut c = match wrapper {
        None => Command::new(env!("CARGO_BIN_EXE_hongxin")),
        Some(script) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_hongxin"));
            c
        }
    };
    c.arg("--database")
        .arg(&settings.database)
        .arg("--policies")
        .arg(&settings.policies_dir)
        .arg("--key-file")
        .arg(settings.key_file.as_ref().expect("key file"))
        .arg("--today")
        .arg(TODAY)
        .env_remove("HONGXIN_CONFIG")
        .env("HONGXIN_LOG", "warn");
    c
}

fn hongxin(settings: &Settings) -> Command {
    hongxin_via(None, settings)
}

/// Runs `"$0" "$@"` until standard input closes, then stops it.
const STOP_ON_EOF: &str =
    "trap '' INT TERM HUP; \"$0\" \"$@\" </dev/null & pid=$!; cat >/dev/null; kill $pid; wait $pid";

/// Starts `hongxin serve` on a free port and waits for the address it prints.
fn serve(settings: &Settings) -> Server {
    serve_crashing(settings, None)
}

/// [`serve`], set to abort at a crash point (`HONGXIN_CRASH_AT`, see `store::crash_point`).
fn serve_crashing(settings: &Settings, crash_at: Option<&str>) -> Server {
    let mut command = hongxin_via(Some(STOP_ON_EOF), settings);
    if let Some(at) = crash_at {
        command.env("HONGXIN_CRASH_AT", at);
    }
    let mut child = command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--voucher-rate",
            "1000000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hongxin serve");
    let stdin = child.stdin.take();
    let stderr = child.stderr.take().expect("serve's stderr");
    let (found, address) = std::sync::mpsc::channel();
    // Reads stderr to the end, so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("hongxin serving http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(tx) = found.take() {
                    let _ = tx.send(addr);
                }
            } else if found.is_some() || line.contains("ERROR") {
                eprintln!("serve: {line}");
            }
        }
    });
    let addr = address
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("hongxin serve printed no address: {:?}", child.try_wait()));
    Server {
        child,
        stdin,
        base: format!("http://{addr}"),
    }
}

async fn created(app: &App, command: Op) -> i64 {
    let what = format!("{command:?}");
    match app.run(command).await {
        Ok(Ok(Receipt::Created(c))) => c.id,
        other => panic!("seeding {what}: {other:?}"),
    }
}

/// One cooperative with a shop, three households with a wallet of 660.00 each, two vouchers of
/// 330.00 (under the monthly bonus cap); tokens.
/// Returns the voucher codes.
async fn seed(app: &App) -> Vec<String> {
    created(
        app,
        Op::CreateCooperative(NewCooperative {
            code: "COOP".into(),
            name: "红心合作社".into(),
        }),
    )
    .await;
    created(
        app,
        Op::CreateShop(NewShop {
            code: "S1".into(),
            name: "一号店".into(),
            cooperative: "COOP".into(),
        }),
    )
    .await;
    created(
        app,
        Op::CreateCompany(NewCompany {
            code: "K01".into(),
            name: "物业 K01".into(),
        }),
    )
    .await;
    created(
        app,
        Op::CreateCompound(NewCompound {
            code: "HX01".into(),
            name: "小区".into(),
            company: "K01".into(),
            eligible: true,
        }),
    )
    .await;
    for code in HOUSEHOLDS {
        created(
            app,
            Op::CreateHousehold(NewHousehold {
                code: code.into(),
                compound: "HX01".into(),
                area_m2: "80".parse().expect("area"),
                name: None,
                building: None,
                grid: None,
            }),
        )
        .await;
    }
    for (secret, role, scope) in [
        (CASHIER, Role::Cashier, Some("S1")),
        (ADMIN, Role::Admin, None),
    ] {
        created(
            app,
            Op::CreateToken(NewToken {
                parent: None,
                hash: token_hash(secret),
                role,
                scope: scope.map(str::to_string),
                label: None,
                expires_at: None,
            }),
        )
        .await;
    }
    let top_up = |household: &str, paid: &str, deliver| {
        Op::TopUp(TopUp {
            shop: "S1".into(),
            household: household.into(),
            paid: Amount::parse(paid).expect("amount"),
            method: PayMethod::Cash,
            deliver,
            bonus: Default::default(),
        })
    };
    for h in HOUSEHOLDS {
        match app.run(top_up(h, "600.00", Delivery::Wallet)).await {
            Ok(Ok(Receipt::TopUp(_))) => {}
            other => panic!("top-up {h}: {other:?}"),
        }
    }
    let mut codes = Vec::new();
    for h in ["H1", "H2"] {
        match app.run(top_up(h, "300.00", Delivery::Voucher)).await {
            Ok(Ok(Receipt::TopUp(r))) => codes.push(r.voucher.expect("voucher").code),
            other => panic!("voucher top-up {h}: {other:?}"),
        }
    }
    codes
}

fn fen(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("amount must be a string, got {v}"));
    Amount::parse(s)
        .unwrap_or_else(|e| panic!("bad amount {s:?}: {e}"))
        .fen()
}

/// What the clients saw acknowledged, by what was spent from.
#[derive(Default)]
struct Tally {
    /// Spent per wallet (household) and per voucher code, from 201 answers.
    spent: BTreeMap<String, i64>,
    cash_sales: i64,
    accepted: u64,
    refused: u64,
    /// Requests sent to both servers with one key.
    retried: u64,
    statuses: BTreeMap<u16, u64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_one_database() {
    if !pg_support::available() {
        return;
    }
    let db = pg_support::fresh_database().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = settings_in(&dir, &db.url);
    let app = App::open(&settings).await.expect("App::open");
    let vouchers = seed(&app).await;
    // The seed's master data entries (no postings) and top-ups.
    let seeded = app.verify().await.expect("verify").head_seq as u64;
    drop(app);

    let servers = [serve(&settings), serve(&settings)];
    let bases: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.base.clone()).collect());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let vouchers = Arc::new(vouchers);
    // Wallet sales carry the household card's link, as a till that scanned it sends.
    let mut cards = BTreeMap::new();
    for h in HOUSEHOLDS {
        let link: Value = client
            .get(format!("{}/v1/households/{h}/link", bases[0]))
            .bearer_auth(ADMIN)
            .send()
            .await
            .expect("link")
            .json()
            .await
            .expect("link JSON");
        cards.insert(h, link["url"].as_str().expect("url").to_string());
    }
    let cards = Arc::new(cards);
    let started = Instant::now();
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, bases, tally, vouchers, barrier, cards) = (
                client.clone(),
                bases.clone(),
                tally.clone(),
                vouchers.clone(),
                barrier.clone(),
                cards.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                for r in 0..REQUESTS_PER_CLIENT {
                    let n = c * REQUESTS_PER_CLIENT + r;
                    // 1.00 to 9.99, not round, so paid and bonus parts split unevenly.
                    let amount = Amount::from_fen(100 + (n as i64 * 7919) % 900);
                    let (source, body) = match n % 4 {
                        0 | 1 => {
                            let h = HOUSEHOLDS[n % 3];
                            (
                                h.to_string(),
                                json!({ "household": h, "amount": amount.to_string(),
                                        "tenders": [{ "type": "wallet", "amount": amount.to_string() }],
                                        "resident": { "card": cards[h] } }),
                            )
                        }
                        2 => {
                            let code = &vouchers[n % vouchers.len()];
                            (
                                code.clone(),
                                json!({ "amount": amount.to_string(),
                                        "tenders": [{ "type": "voucher", "amount": amount.to_string(), "code": code }] }),
                            )
                        }
                        _ => (
                            "cash".to_string(),
                            json!({ "amount": amount.to_string(),
                                    "tenders": [{ "type": "cash", "amount": amount.to_string() }] }),
                        ),
                    };
                    let key = format!("mp-{c}-{r}");
                    let first = &bases[n % 2];
                    let send = |base: &str| {
                        client
                            .post(format!("{base}/v1/sales"))
                            .bearer_auth(CASHIER)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                            .send()
                    };
                    // Every fifth request goes to both servers at once with the same key, as a
                    // till retrying through the load balancer would.
                    let retried = n % 5 == 0;
                    let mut answers = Vec::new();
                    if retried {
                        let (a, b) = tokio::join!(send(first), send(&bases[(n + 1) % 2]));
                        answers.push(a.expect("request sent"));
                        answers.push(b.expect("request sent"));
                    } else {
                        answers.push(send(first).await.expect("request sent"));
                    }
                    let mut replies = Vec::new();
                    for a in answers {
                        let status = a.status();
                        let body: Value = a.json().await.unwrap_or(Value::Null);
                        replies.push((status, body));
                    }
                    let mut t = tally.lock().await;
                    for (status, _) in &replies {
                        *t.statuses.entry(status.as_u16()).or_default() += 1;
                    }
                    if retried {
                        t.retried += 1;
                        assert_eq!(replies[0].0, replies[1].0, "one key, two answers: {replies:?}");
                        if replies[0].0 == StatusCode::CREATED {
                            assert_eq!(replies[0].1["entry"], replies[1].1["entry"], "posted twice: {replies:?}");
                        }
                    }
                    let (status, receipt) = &replies[0];
                    match *status {
                        StatusCode::CREATED => {
                            t.accepted += 1;
                            assert_eq!(fen(&receipt["total"]), amount.fen(), "{receipt}");
                            if source == "cash" {
                                t.cash_sales += amount.fen();
                            } else {
                                *t.spent.entry(source).or_default() += amount.fen();
                            }
                        }
                        StatusCode::UNPROCESSABLE_ENTITY => {
                            let code = receipt["code"].as_str().unwrap_or_default();
                            assert!(
                                matches!(code, "insufficient_funds" | "voucher_invalid"),
                                "{receipt}"
                            );
                            t.refused += 1;
                        }
                        other => panic!("sale answered {other}: {receipt}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    let elapsed = started.elapsed();
    let tally = tally.lock().await;
    eprintln!(
        "{} requests through two servers in {elapsed:?}: {} accepted, {} refused, {} sent to both; statuses {:?}",
        CLIENTS * REQUESTS_PER_CLIENT,
        tally.accepted,
        tally.refused,
        tally.retried,
        tally.statuses
    );
    assert!(
        tally.accepted > 0 && tally.refused > 0,
        "the wallets were meant to run dry"
    );
    drop(servers);

    // Every balance is the sum of what was acknowledged.
    let app = App::open(&settings).await.expect("App::open after the run");
    for h in HOUSEHOLDS {
        let view = app
            .store
            .household(h)
            .await
            .expect("store")
            .expect("household");
        let wallet = view
            .wallets
            .iter()
            .find(|w| w.cooperative == "COOP")
            .expect("wallet");
        assert!(
            !wallet.paid.is_negative() && !wallet.bonus.is_negative(),
            "{h}: {wallet:?}"
        );
        let spent = tally.spent.get(h).copied().unwrap_or(0);
        assert_eq!(wallet.total.fen(), 66_000 - spent, "wallet {h}");
    }
    for code in vouchers.iter() {
        let serial = hongxin::voucher::VoucherCode::verify(&app.keys.vouchers, code)
            .expect("code")
            .serial();
        let row = app
            .store
            .voucher(serial)
            .await
            .expect("store")
            .expect("voucher");
        assert!(
            !row.paid.is_negative() && !row.bonus.is_negative(),
            "{row:?}"
        );
        let spent = tally.spent.get(code).copied().unwrap_or(0);
        assert_eq!(row.balance.fen(), 33_000 - spent, "voucher {code}");
    }
    let balances = app.store.balances().await.expect("balances");
    let sales = balances
        .get("cooperative:COOP:sales")
        .copied()
        .unwrap_or_default();
    let credit_spent: i64 = tally.spent.values().sum();
    assert_eq!(
        sales.fen(),
        credit_spent + tally.cash_sales,
        "sales revenue"
    );
    let report = app.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        report.head_seq as u64,
        // The seed's entries, then one entry per accepted sale.
        seeded + tally.accepted,
        "{report:?}"
    );
    drop(app);

    // And the command line agrees.
    let out = hongxin(&settings)
        .arg("verify")
        .output()
        .expect("run hongxin verify");
    assert!(
        out.status.success(),
        "hongxin verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(db);
}

/// Cash sales from 32 clients at a server that aborts the third time a batch reaches
/// `point`; then a fresh server, and every request sent again with its key.
async fn crash_at(settings: &Settings, point: &str) {
    const CRASH_CLIENTS: usize = 32;
    const PER_CLIENT: usize = 30;
    let app = App::open(settings).await.expect("App::open");
    seed(&app).await;
    let seeded = app.verify().await.expect("verify").head_seq;
    drop(app);
    fn amount(n: usize) -> Amount {
        Amount::from_fen(100 + n as i64)
    }
    fn send(
        client: &reqwest::Client,
        base: &str,
        n: usize,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
        client
            .post(format!("{base}/v1/sales"))
            .bearer_auth(CASHIER)
            .header("Idempotency-Key", format!("crash-{n}"))
            .json(&json!({ "amount": amount(n).to_string(),
                           "tenders": [{ "type": "cash", "amount": amount(n).to_string() }] }))
            .send()
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");

    let server = serve_crashing(settings, Some(&format!("{point}:3")));
    let base = server.base.clone();
    let tasks: Vec<_> = (0..CRASH_CLIENTS)
        .map(|c| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for r in 0..PER_CLIENT {
                    let n = c * PER_CLIENT + r;
                    let Ok(answer) = send(&client, &base, n).await else {
                        break; // the server is gone
                    };
                    if answer.status() != StatusCode::CREATED {
                        break;
                    }
                    let receipt: Value = answer.json().await.unwrap_or(Value::Null);
                    acknowledged.push((n, receipt["entry"].clone()));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("client task"));
    }
    drop(server);
    assert!(
        acknowledged.len() < CRASH_CLIENTS * PER_CLIENT,
        "{point}: the server was meant to die mid-run"
    );

    // No half batch: the journal and every balance verify as the crash left them.
    let app = App::open(settings)
        .await
        .expect("App::open after the crash");
    let report = app.verify().await.expect("verify");
    assert!(report.ok(), "{point}: {report:?}");
    drop(app);

    // Every request again with its key: what was acknowledged replays its own entry, the rest
    // posts now, and each is posted exactly once.
    let server = serve_crashing(settings, None);
    let mut replayed = 0;
    for n in 0..CRASH_CLIENTS * PER_CLIENT {
        let answer = send(&client, &server.base, n).await.expect("request sent");
        assert_eq!(answer.status(), StatusCode::CREATED, "{point}: request {n}");
        let receipt: Value = answer.json().await.expect("receipt");
        if let Some((_, entry)) = acknowledged.iter().find(|(m, _)| *m == n) {
            assert_eq!(
                &receipt["entry"], entry,
                "{point}: acknowledged request {n} lost"
            );
            replayed += 1;
        }
    }
    assert_eq!(replayed, acknowledged.len());
    drop(server);
    let app = App::open(settings)
        .await
        .expect("App::open after the retries");
    let report = app.verify().await.expect("verify");
    assert!(report.ok(), "{point}: {report:?}");
    let requests = (CRASH_CLIENTS * PER_CLIENT) as i64;
    assert_eq!(
        report.head_seq,
        seeded + requests,
        "{point}: one entry per request"
    );
    let cash = app
        .store
        .balances()
        .await
        .expect("balances")
        .get("cooperative:COOP:sales")
        .copied()
        .unwrap_or_default();
    let total: i64 = (0..CRASH_CLIENTS * PER_CLIENT)
        .map(|n| amount(n).fen())
        .sum();
    assert_eq!(cash.fen(), total, "{point}: sales revenue");
}

const CRASH_POINTS: [&str; 3] = ["persist_entries", "before_commit", "before_reply"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_inside_a_write_batch_loses_nothing_acknowledged_sqlite() {
    for point in CRASH_POINTS {
        let dir = tempfile::tempdir().expect("temporary directory");
        let settings = settings_in(
            &dir,
            &format!("sqlite://{}", dir.path().join("crash.db").display()),
        );
        crash_at(&settings, point).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_inside_a_write_batch_loses_nothing_acknowledged_postgres() {
    if !pg_support::available() {
        return;
    }
    for point in CRASH_POINTS {
        let db = pg_support::fresh_database().await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let settings = settings_in(&dir, &db.url);
        crash_at(&settings, point).await;
        drop(db);
    }
}

/// Each server keeps the tokens it has checked in a cache; a token revoked through one server
/// is refused by the other at once (PostgreSQL's NOTIFY empties every process's cache), well
/// within the cache's lifetime of [`hongxin::store::TOKEN_CACHE_TTL`].
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_revoked_on_one_server_is_refused_by_the_other_postgres() {
    if !pg_support::available() {
        return;
    }
    let db = pg_support::fresh_database().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let settings = settings_in(&dir, &db.url);
    let app = App::open(&settings).await.expect("App::open");
    seed(&app).await;
    drop(app);
    let (a, b) = (serve(&settings), serve(&settings));
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v1/tokens", a.base))
        .bearer_auth(ADMIN)
        .json(&json!({ "role": "admin", "label": "to be revoked" }))
        .send()
        .await
        .expect("POST /v1/tokens")
        .json()
        .await
        .expect("token JSON");
    let token = created["token"].as_str().expect("token").to_string();
    let id = created["id"].as_i64().expect("token id");
    let metrics = |base: &str| {
        client
            .get(format!("{base}/metrics"))
            .bearer_auth(&token)
            .send()
    };
    // Checked (and so cached) by the other server just before the revocation.
    for _ in 0..3 {
        let status = metrics(&b.base).await.expect("GET /metrics").status();
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    let revoked = client
        .post(format!("{}/v1/tokens/{id}/revoke", a.base))
        .bearer_auth(ADMIN)
        .json(&json!({}))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), reqwest::StatusCode::OK);
    let since = Instant::now();
    assert_eq!(
        metrics(&a.base).await.expect("GET /metrics").status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "the server that revoked it refuses it on the next request"
    );
    loop {
        let status = metrics(&b.base).await.expect("GET /metrics").status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(
            since.elapsed() < Duration::from_millis(300),
            "the other server still took the revoked token after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
