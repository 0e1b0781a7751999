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
    client, fen, new_request, recover_and_check, seed, send, verify, Backend, Install, Model, Rng,
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
    let cards = std::sync::Arc::new(proc_support::cards(&http, &server.base, &admin).await);
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
                let cards = cards.clone();
                tokio::spawn(async move {
                    let mut n = offset;
                    loop {
                        let r = new_request(n, household, &cards);
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

/// A small tmpfs of the test's own, unmounted when dropped. `None` where mounting is not
/// allowed (not root, or a container without the capability).
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(at: &std::path::Path, bytes: u64) -> Option<SmallDisk> {
        SmallDisk::mount_for(at, bytes, None)
    }

    /// The tmpfs owned by the OS user `owner` (uid, gid) when given.
    fn mount_for(at: &std::path::Path, bytes: u64, owner: Option<(u32, u32)>) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let owned = owner.map_or(String::new(), |(u, g)| format!(",uid={u},gid={g}"));
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0700{owned}"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk {
            path: at.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Fills the file system of `dir` to the last byte with `filler`.
fn fill(filler: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(filler).expect("filler");
    let block = vec![0xa5u8; 64 * 1024];
    let mut size = block.len();
    // Big blocks first, then ever smaller ones, until not one more byte fits.
    while size > 0 {
        while f.write_all(&block[..size]).is_ok() {}
        size /= 2;
    }
    let _ = f.sync_all();
}

/// Disk full on SQLite: with the database on a small tmpfs filled to the last byte, writes are
/// answered 503 `storage_full` (or `storage_io_error`) and post nothing; once space returns, the
/// same server takes writes again, the refused request sent again with its key is posted once,
/// and the ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_503_posts_nothing_and_recovers_sqlite() {
    let Some(mut install) = Install::new(Backend::Sqlite).await else {
        return;
    };
    let Some(disk) = SmallDisk::mount(&install.path().join("disk"), 4 << 20) else {
        eprintln!("NOTE: cannot mount a tmpfs here (needs root); the disk-full test is SKIPPED");
        return;
    };
    install.database = format!("sqlite://{}", disk.path.join("hongxin.db").display());
    disk_full(install, disk).await;
}

/// The uid and gid of the `postgres` OS user, who runs the tests' cluster when they run as root.
fn postgres_owner() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Disk full on PostgreSQL: the test's database is moved onto a tablespace on a small tmpfs (its
/// tables and indexes; the cluster's WAL stays on the real disk, as a production server keeps
/// it apart), which is then filled: a write that cannot extend a table is PostgreSQL's
/// `53100 disk_full`, answered 503 `storage_full`, posting nothing, and the same server writes
/// again once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_is_503_posts_nothing_and_recovers_postgres() {
    use sqlx::Connection;
    let Some(install) = Install::new(Backend::Postgres).await else {
        return;
    };
    let running_as_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let owner = if running_as_root {
        postgres_owner()
    } else {
        None
    };
    // The tablespace's directory must be reachable by the server's OS user.
    let holder = tempfile::tempdir().expect("directory");
    let _ = std::process::Command::new("chmod")
        .arg("0755")
        .arg(holder.path())
        .status();
    let disk =
        owner.and_then(|o| SmallDisk::mount_for(&holder.path().join("disk"), 48 << 20, Some(o)));
    let Some(disk) = disk else {
        eprintln!("NOTE: cannot mount a tmpfs for the cluster's user here (needs root); the PostgreSQL disk-full test is SKIPPED");
        return;
    };
    let name = install
        .pg
        .as_ref()
        .expect("a PostgreSQL install")
        .name()
        .to_string();
    let tablespace = format!("small_{name}");
    let maintenance = proc_support::pg_support::with_database(&install.database, "postgres");
    let mut admin = sqlx::PgConnection::connect(&maintenance)
        .await
        .expect("maintenance connection");
    for sql in [
        format!(
            "CREATE TABLESPACE {tablespace} LOCATION '{}'",
            disk.path.display()
        ),
        format!("ALTER DATABASE {name} SET TABLESPACE {tablespace}"),
    ] {
        sqlx::raw_sql(&sql)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    disk_full(install, disk).await;
    // The database is dropped with the install; the tablespace after it.
    let _ = sqlx::raw_sql(&format!("DROP TABLESPACE IF EXISTS {tablespace}"))
        .execute(&mut admin)
        .await;
}

/// The body of the disk-full tests: `install`'s database lives on `disk`.
async fn disk_full(install: Install, disk: SmallDisk) {
    let admin = install.init();
    let http = client();
    let server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let cashier = seed(&http, &server.base, &admin).await;
    let cards = std::sync::Arc::new(proc_support::cards(&http, &server.base, &admin).await);
    let filler = disk.path.join("filler");
    fill(&filler);

    // Top-ups until one is refused for want of space (the WAL may still have room for some).
    let mut model = Model::default();
    let mut refused = None;
    for n in 0..5_000u64 {
        let r = new_request(n * 3, HOUSEHOLDS[(n % 4) as usize], &cards);
        let before = verify(&http, &server.base, &admin).await.1;
        let (status, body) = send(&http, &server.base, &cashier, &r)
            .await
            .expect("an answer, even with the disk full");
        if status == 503 {
            let code = body["code"].as_str().unwrap_or_default().to_string();
            assert!(
                code == "storage_full" || code == "storage_io_error",
                "{status} {body}"
            );
            assert_eq!(
                verify(&http, &server.base, &admin).await,
                (true, before),
                "a refused write posted"
            );
            eprintln!(
                "disk full: {} top-ups and sales taken, then {status} {code}",
                model.accepted + model.refused
            );
            refused = Some(r);
            break;
        }
        assert!(
            model.answer(&r, status, &body),
            "{status} {body}\n{}",
            server.log_text()
        );
    }
    let refused = refused.expect("the full disk never refused a write");
    let wallet_before = proc_support::wallet(&http, &server.base, &admin, refused.household).await;

    // Space returns: the refused request, sent again with its key, is posted once.
    std::fs::remove_file(&filler).expect("free the space");
    let (status, body) = send(&http, &server.base, &cashier, &refused)
        .await
        .expect("answer");
    assert_eq!(status, 201, "{body}\n{}", server.log_text());
    assert!(model.answer(&refused, status, &body));
    let (again, replay) = send(&http, &server.base, &cashier, &refused)
        .await
        .expect("answer");
    assert_eq!(
        (again, &replay["entry"]),
        (201, &body["entry"]),
        "a replay, not a second post"
    );
    let wallet_after = proc_support::wallet(&http, &server.base, &admin, refused.household).await;
    assert_eq!(
        wallet_after.0 + wallet_after.1 - wallet_before.0 - wallet_before.1,
        fen(&body["credited"])
    );
    assert!(verify(&http, &server.base, &admin).await.0);
    drop(server);
    drop(install);
    drop(disk);
}
