//! Proof under faults, with real `hongxin serve` processes on both backends.
//!
//! **kill -9 under load**: tills top up and spend through a server that is killed with SIGKILL
//! at random moments ([`KILLS`] times per backend), restarted, and sent every request it never
//! answered again with the same Idempotency-Key. After each restart: every acknowledged
//! command is in the journal exactly once (one entry each, no entry acknowledged twice), `verify`
//! passes, and every wallet holds what the harness's own model of the acknowledged answers
//! says. The run is bounded: [`KILLS`] rounds of at most [`LOAD_MS`] of load each.

mod proc_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proc_support::{
    client, new_request, recover_and_check, seed, send, verify, Backend, Install, Model, Rng,
    Server, HOUSEHOLDS,
};

/// Kills per backend.
const KILLS: usize = 20;
/// Concurrent tills.
const TILLS: usize = 8;
/// The longest a round's load runs before the kill, in milliseconds.
const LOAD_MS: u64 = 250;

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
