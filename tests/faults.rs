//! Proof under faults, with real `hongxin serve` processes on both backends.
//!
//! **kill -9 under load**: tills top up and spend through a server that is killed with SIGKILL
//! at random moments ([`KILLS`] times per backend), restarted, and sent every request it never
//! answered again with the same Idempotency-Key. After each restart: every acknowledged
//! command is in the journal exactly once (one entry each, no entry acknowledged twice), `verify`
//! passes, and every wallet holds what the harness's own model of the acknowledged answers
//! says. The run is bounded: [`KILLS`] rounds of at most [`LOAD_MS`] of load each.

mod proc_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use proc_support::{
    client, fen, fresh_key, get_ok, seed, verify, Backend, Install, Server, HOUSEHOLDS,
};

/// Kills per backend.
const KILLS: usize = 20;
/// Concurrent tills.
const TILLS: usize = 8;
/// The longest a round's load runs before the kill, in milliseconds.
const LOAD_MS: u64 = 250;

/// A request as the till sent it: retried with the same key and body.
#[derive(Clone, Debug)]
struct Request {
    key: String,
    path: &'static str,
    household: &'static str,
    body: Value,
}

/// What the harness believes, from the answers it got.
#[derive(Default)]
struct Model {
    /// Wallet total (paid + bonus) per household, in fen.
    wallets: BTreeMap<&'static str, i64>,
    /// Entries of acknowledged commands.
    entries: BTreeSet<i64>,
    accepted: u64,
    refused: u64,
    /// Sent, never answered: retried after the restart.
    unanswered: Vec<Request>,
    retried: u64,
}

impl Model {
    /// Takes an answer into the model; false when there was none (to retry later).
    fn answer(&mut self, request: &Request, status: u16, body: &Value) -> bool {
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
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn send(
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

fn new_request(n: u64, household: &'static str) -> Request {
    if n % 3 == 2 {
        Request {
            key: fresh_key("sale"),
            path: "/v1/sales",
            household,
            body: json!({"household": household, "amount": "12.34",
                         "tenders": [{"type": "wallet", "amount": "12.34"}]}),
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
async fn recover_and_check(
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
    let mut journal = BTreeSet::new();
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

async fn kill9_under_load(backend: Backend) {
    let Some(install) = Install::new(backend).await else {
        return;
    };
    let seed_value = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("kill -9 harness ({backend:?}): seed {seed_value}");
    let mut rng = Rng(seed_value);
    let started = Instant::now();
    let admin = install.init();
    let http = client();
    let mut server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let cashier = seed(&http, &server.base, &admin).await;
    let (_, seeded) = verify(&http, &server.base, &admin).await;
    let model = Arc::new(Mutex::new(Model::default()));

    for round in 0..KILLS {
        let load_for = Duration::from_millis(20 + rng.next() % LOAD_MS);
        let deadline = Instant::now() + load_for;
        let tills: Vec<_> = (0..TILLS)
            .map(|t| {
                let (http, base, cashier, model) = (
                    http.clone(),
                    server.base.clone(),
                    cashier.clone(),
                    model.clone(),
                );
                let household = HOUSEHOLDS[t % HOUSEHOLDS.len()];
                let offset = round as u64 * 1_000 + t as u64;
                tokio::spawn(async move {
                    let mut n = offset;
                    loop {
                        let r = new_request(n, household);
                        n += 1;
                        match send(&http, &base, &cashier, &r).await {
                            Some((status, body)) => {
                                let mut m = model.lock().expect("model");
                                if !m.answer(&r, status, &body) {
                                    m.unanswered.push(r);
                                }
                            }
                            // The server is gone: this one is retried after the restart.
                            None => {
                                model.lock().expect("model").unanswered.push(r);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep_until(deadline.into()).await;
        server.kill9();
        for t in tills {
            t.await.expect("till");
        }
        // Each restart a month later, so the monthly bonus cap leaves the tills work to do.
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 16)
            .and_then(|d| d.checked_add_months(chrono::Months::new(round as u32 + 1)))
            .expect("date")
            .to_string();
        server = Server::start(install.command_at(&today), &["--listen", "127.0.0.1:0"]);
        let mut m = std::mem::take(&mut *model.lock().expect("model"));
        recover_and_check(&http, &server, &admin, &cashier, &mut m, seeded).await;
        *model.lock().expect("model") = m;
    }
    let m = model.lock().expect("model");
    eprintln!(
        "kill -9 harness ({backend:?}): {KILLS} kills in {:.1} s, {} commands acknowledged, {} refused, {} unanswered at a kill and retried",
        started.elapsed().as_secs_f64(),
        m.accepted,
        m.refused,
        m.retried
    );
    assert!(m.accepted > KILLS as u64, "the load did too little");
    assert!(m.retried > 0, "no kill ever caught a request in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_load_loses_and_duplicates_nothing_sqlite() {
    kill9_under_load(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_under_load_loses_and_duplicates_nothing_postgres() {
    kill9_under_load(Backend::Postgres).await;
}
