//! A PostgreSQL restart under load (a binary of its own: the restart cuts every connection of
//! the cluster this binary's tests share). Tills top up and spend through one `hongxin serve`
//! while PostgreSQL is restarted with a fast shutdown; the server is not restarted. Requests it
//! could not answer are sent again with their keys. Then: the server answers again on its own
//! (it reconnected), every acknowledged command is in the journal exactly once, `verify` passes
//! and every wallet holds what the acknowledged answers say.

mod proc_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proc_support::{
    client, new_request, pg_support, recover_and_check, seed, send, verify, Backend, Install,
    Model, Server, HOUSEHOLDS,
};

const TILLS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_survives_a_postgres_restart_mid_load() {
    let Some(install) = Install::new(Backend::Postgres).await else {
        return;
    };
    let admin = install.init();
    let http = client();
    let server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let cashier = seed(&http, &server.base, &admin).await;
    let cards = std::sync::Arc::new(proc_support::cards(&http, &server.base, &admin).await);
    let (_, seeded) = verify(&http, &server.base, &admin).await;
    let model = Arc::new(Mutex::new(Model::default()));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, u64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let tills: Vec<_> = (0..TILLS)
        .map(|t| {
            let (http, base, cashier, model, statuses, stop) = (
                http.clone(),
                server.base.clone(),
                cashier.clone(),
                model.clone(),
                statuses.clone(),
                stop.clone(),
            );
            let household = HOUSEHOLDS[t % HOUSEHOLDS.len()];
            let cards = cards.clone();
            tokio::spawn(async move {
                let mut n = t as u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let r = new_request(n, household, &cards);
                    n += 1;
                    let answer = send(&http, &base, &cashier, &r).await;
                    if let Some((status, _)) = &answer {
                        *statuses
                            .lock()
                            .expect("statuses")
                            .entry(*status)
                            .or_default() += 1;
                    }
                    let answered = {
                        let mut m = model.lock().expect("model");
                        let answered = match &answer {
                            Some((status, body)) => m.answer(&r, *status, body),
                            None => false,
                        };
                        if !answered {
                            // Not answered (or 5xx while PostgreSQL was down): sent again later.
                            m.unanswered.push(r);
                        }
                        answered
                    };
                    if !answered {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = model.lock().expect("model").accepted;
    let restarted = Instant::now();
    tokio::task::block_in_place(pg_support::restart_cluster).expect("restart PostgreSQL");
    let restart_took = restarted.elapsed();
    // Load goes on against the same server process until it has acknowledged more.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after_restart = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = model.lock().expect("model").accepted;
        if now > before + 50 || Instant::now() > deadline {
            break now;
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tills {
        t.await.expect("till");
    }
    assert!(
        after_restart > before + 50,
        "the server did not come back after the restart: {before} then {after_restart} acknowledged\n{}",
        server.log_text()
    );
    let mut m = std::mem::take(&mut *model.lock().expect("model"));
    let unanswered = m.unanswered.len();
    recover_and_check(&http, &server, &admin, &cashier, &mut m, seeded).await;
    eprintln!(
        "PostgreSQL restart ({:.1} s) under load: {} acknowledged ({before} before it), {unanswered} sent again, statuses {:?}",
        restart_took.as_secs_f64(),
        m.accepted,
        statuses.lock().expect("statuses")
    );
    // What the tills saw while PostgreSQL was down: 503 (try again), never a silent loss.
    for (status, n) in statuses.lock().expect("statuses").iter() {
        assert!(
            matches!(status, 201 | 422 | 503),
            "{n} answers {status} during the restart"
        );
    }
}
