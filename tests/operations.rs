//! Running hongxin for real, end to end with the built binary on both backends: `init` on an
//! empty database, `serve` configured by flag, environment and file, online backups taken while
//! tills write, restores that refuse a broken chain, housekeeping inside `serve`, and upgrades
//! from the previous release's schema.

mod proc_support;

use std::process::Stdio;

use serde_json::json;

use proc_support::{
    assert_ok, client, get_ok, post_ok, seed, stderr, stdout, verify, wallet, Backend, Install,
    Server,
};

// ---------------------------------------------------------------------------------------------
// init
// ---------------------------------------------------------------------------------------------

async fn init_makes_a_working_installation_once(backend: Backend) {
    let Some(install) = Install::new(backend).await else {
        return;
    };
    let first = install.run(&["init"]);
    assert_ok(&first);
    let token = stdout(&first).trim().to_string();
    assert_eq!(stdout(&first).lines().count(), 1, "{}", stdout(&first));
    assert!(token.starts_with("hx_") && token.len() == 67, "{token}");
    let note = stderr(&first);
    assert!(note.contains("spend-50-get-55@1"), "{note}");
    assert!(note.contains("back it up"), "{note}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&install.key_file)
            .expect("key file made by init")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let keys = std::fs::read(&install.key_file).expect("key file");

    // A second init refuses, prints no token and leaves the key file as it was.
    let again = install.run(&["init"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stdout(&again).is_empty(), "{}", stdout(&again));
    assert!(stderr(&again).contains("initialised"), "{}", stderr(&again));
    assert_eq!(std::fs::read(&install.key_file).expect("key file"), keys);

    // With the key file gone, the database still refuses: it holds the first token.
    std::fs::remove_file(&install.key_file).expect("remove key file");
    let without_keys = install.run(&["init"]);
    assert_eq!(
        without_keys.status.code(),
        Some(1),
        "{}",
        stderr(&without_keys)
    );
    assert!(stdout(&without_keys).is_empty());
    assert!(
        !install.key_file.exists(),
        "a refused init must not leave a key file behind"
    );
    std::fs::write(&install.key_file, &keys).expect("restore key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&install.key_file, std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }

    // The token is an admin's: it creates master data and a cashier who tops up.
    let server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let http = client();
    let cashier = seed(&http, &server.base, &token).await;
    let topup = post_ok(
        &http,
        &server.base,
        &cashier,
        "/v1/topups",
        json!({"household": "H1", "paid": "100.00", "method": "cash"}),
    )
    .await;
    assert_eq!(topup["credited"], "110.00", "{topup}");
    assert_eq!(
        wallet(&http, &server.base, &token, "H1").await,
        (10_000, 1_000)
    );
    assert!(verify(&http, &server.base, &token).await.0);
}

#[tokio::test]
async fn init_makes_a_working_installation_once_sqlite() {
    init_makes_a_working_installation_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn init_makes_a_working_installation_once_postgres() {
    init_makes_a_working_installation_once(Backend::Postgres).await;
}

// ---------------------------------------------------------------------------------------------
// serve's settings: flag, then environment, then file
// ---------------------------------------------------------------------------------------------

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test]
async fn serve_takes_its_options_from_flag_then_environment_then_file() {
    let install = Install::new(Backend::Sqlite).await.expect("sqlite");
    let admin = install.init();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = install.path().join("hongxin.toml");
    std::fs::write(
        &config,
        format!("log = \"warn\"\n[serve]\nlisten = \"127.0.0.1:{file_port}\"\nbody_limit = 2048\n"),
    )
    .expect("config");
    let with_config = || {
        let mut c = install.command();
        c.arg("--config").arg(&config);
        c
    };
    let http = client();
    let big = json!({ "code": "x".repeat(4000), "name": "n" });

    // The file alone: its address and its body limit (a 4 kB body is refused: 413).
    let server = Server::start(with_config(), &[]);
    assert_eq!(server.base, format!("http://127.0.0.1:{file_port}"));
    let answer = http
        .post(format!("{}/v1/companies", server.base))
        .bearer_auth(&admin)
        .json(&big)
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status().as_u16(), 413);
    drop(server);

    // The environment wins over the file; the file's other keys still apply.
    let mut c = with_config();
    c.env("HONGXIN_LISTEN", format!("127.0.0.1:{env_port}"));
    let server = Server::start(c, &[]);
    assert_eq!(server.base, format!("http://127.0.0.1:{env_port}"));
    drop(server);

    // The flag wins over both.
    let mut c = with_config();
    c.env("HONGXIN_LISTEN", format!("127.0.0.1:{env_port}"));
    let server = Server::start(
        c,
        &[
            "--listen",
            &format!("127.0.0.1:{flag_port}"),
            "--body-limit",
            "65536",
        ],
    );
    assert_eq!(server.base, format!("http://127.0.0.1:{flag_port}"));
    let answer = http
        .post(format!("{}/v1/companies", server.base))
        .bearer_auth(&admin)
        .json(&big)
        .send()
        .await
        .expect("post");
    // Within the flag's limit, the body reaches validation: a code of 4,000 characters is
    // refused on its own merits.
    assert_eq!(answer.status().as_u16(), 422);
    drop(server);

    // A misspelt key in the table stops start-up with the file's name.
    std::fs::write(&config, "[serve]\nlisten_on = \"127.0.0.1:1\"\n").expect("config");
    let o = with_config()
        .args(["serve"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("hongxin.toml"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// backup and restore
// ---------------------------------------------------------------------------------------------

/// Takes a backup of the running installation: `hongxin backup` for SQLite, `pg_dump -Fc` for
/// PostgreSQL.
fn take_backup(install: &Install, file: &std::path::Path) {
    let o = match &install.pg {
        None => install
            .command()
            .arg("backup")
            .arg("--output")
            .arg(file)
            .output()
            .expect("hongxin backup"),
        Some(db) => std::process::Command::new(proc_support::pg_program("pg_dump"))
            .args(["-Fc", "-f"])
            .arg(file)
            .arg("-d")
            .arg(&db.url)
            .output()
            .expect("pg_dump"),
    };
    assert_ok(&o);
}

/// Restores `file` into a new database and returns its URL and `(seq, hash)` head, as
/// verified: `hongxin restore` for SQLite, `pg_restore` and `hongxin verify` for PostgreSQL.
async fn restore(
    install: &Install,
    file: &std::path::Path,
    name: &str,
    keep: &mut Vec<proc_support::pg_support::TestDatabase>,
) -> (String, (i64, String)) {
    let (url, verified) = match &install.pg {
        None => {
            let url = format!("sqlite://{}", install.path().join(name).display());
            let o = install
                .command_on(&url)
                .arg("restore")
                .arg("--input")
                .arg(file)
                .output()
                .expect("hongxin restore");
            assert_ok(&o);
            (url, stdout(&o))
        }
        Some(_) => {
            let db = proc_support::pg_support::fresh_database().await;
            let o = std::process::Command::new(proc_support::pg_program("pg_restore"))
                .args(["--no-owner", "--exit-on-error", "-d"])
                .arg(&db.url)
                .arg(file)
                .output()
                .expect("pg_restore");
            assert_ok(&o);
            let url = db.url.clone();
            keep.push(db);
            let o = install
                .command_on(&url)
                .arg("verify")
                .output()
                .expect("verify");
            assert_ok(&o);
            let head = stdout(&o)
                .lines()
                .find_map(|l| l.strip_prefix("head      "))
                .map(|h| h.replacen(' ', ":", 1))
                .expect("head line");
            (url, head)
        }
    };
    let (seq, hash) = verified.trim().split_once(':').expect("SEQ:HASH");
    (url, (seq.parse().expect("seq"), hash.to_string()))
}

async fn a_backup_under_write_load_restores_and_verifies(backend: Backend) {
    let Some(install) = Install::new(backend).await else {
        return;
    };
    let admin = install.init();
    let server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let http = client();
    let cashier = seed(&http, &server.base, &admin).await;
    let cards = proc_support::cards(&http, &server.base, &admin).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = proc_support::spawn_load(&server.base, &cashier, &cards, 4, stop.clone());
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    let before = proc_support::head(&http, &server.base, &admin).await;
    let during = install.path().join("during.backup");
    let file = during.clone();
    let install_ref = &install;
    tokio::task::block_in_place(|| take_backup(install_ref, &file));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = proc_support::head(&http, &server.base, &admin).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = load.await.expect("load");
    assert!(
        after.0 > before.0,
        "the tills kept writing while the backup ran: head {} then {}",
        before.0,
        after.0
    );

    // The backup under load restores, verifies, and is a prefix of the source's chain.
    let mut keep = Vec::new();
    let (_, (seq, hash)) = restore(&install, &during, "during.db", &mut keep).await;
    assert!(
        seq >= before.0 && seq <= after.0,
        "{} <= {seq} <= {}",
        before.0,
        after.0
    );
    let prefix = get_ok(
        &http,
        &server.base,
        &admin,
        &format!("/v1/audit/verify?expect_head={seq}:{hash}"),
    )
    .await;
    assert_eq!(prefix["ok"], true, "{prefix}");

    // Quiet now: a second backup holds exactly the source's balances.
    drop(server);
    let quiet = install.path().join("quiet.backup");
    take_backup(&install, &quiet);
    let (restored, _) = restore(&install, &quiet, "quiet.db", &mut keep).await;
    let source = proc_support::balances(&install, &install.database).await;
    let copy = proc_support::balances(&install, &restored).await;
    assert_eq!(copy, source);
    // Each household's wallet holds what the tills were answered 201 for, in total.
    let wallets: i64 = source
        .iter()
        .filter(|(k, _)| k.starts_with("household:") && k.contains(":wallet:"))
        .map(|(_, v)| v.fen())
        .sum();
    assert!(acknowledged > 10, "{acknowledged} requests acknowledged");
    assert!(wallets > 0, "{source:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_and_verifies_sqlite() {
    a_backup_under_write_load_restores_and_verifies(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_and_verifies_postgres() {
    a_backup_under_write_load_restores_and_verifies(Backend::Postgres).await;
}

/// A backup whose chain does not verify is refused and nothing is put in place; an existing
/// database is never overwritten; PostgreSQL is pointed at pg_dump.
#[tokio::test]
async fn restore_refuses_a_backup_that_does_not_verify() {
    let install = Install::new(Backend::Sqlite).await.expect("sqlite");
    let admin = install.init();
    let server = Server::start(install.command(), &["--listen", "127.0.0.1:0"]);
    let http = client();
    let cashier = seed(&http, &server.base, &admin).await;
    post_ok(
        &http,
        &server.base,
        &cashier,
        "/v1/topups",
        json!({"household": "H2", "paid": "100.00", "method": "cash"}),
    )
    .await;
    drop(server);
    let good = install.path().join("good.backup");
    let o = install.run(&["backup", "--output", good.to_str().expect("path")]);
    assert_ok(&o);
    assert!(stderr(&o).contains("key file"), "{}", stderr(&o));
    // A second backup to the same file is refused.
    let again = install.run(&["backup", "--output", good.to_str().expect("path")]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));

    // Tamper with the copy: one posting changed by a fen.
    let bad = install.path().join("bad.backup");
    std::fs::copy(&good, &bad).expect("copy");
    assert!(tamper(&bad), "tampered");
    let target = install.path().join("restored.db");
    let url = format!("sqlite://{}", target.display());
    let o = install
        .command_on(&url)
        .args(["restore", "--input"])
        .arg(&bad)
        .output()
        .expect("restore");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    assert!(!target.exists(), "nothing restored");

    // The good one restores; a second restore onto it is refused.
    let o = install
        .command_on(&url)
        .args(["restore", "--input"])
        .arg(&good)
        .output()
        .expect("restore");
    assert_ok(&o);
    assert!(target.exists());
    let o = install
        .command_on(&url)
        .args(["restore", "--input"])
        .arg(&good)
        .output()
        .expect("restore");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = install
        .command_on("postgres://nobody@127.0.0.1:1/none")
        .args(["backup", "--output", "x"])
        .output()
        .expect("backup");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pg_dump"), "{}", stderr(&o));
}

/// Changes the first wallet posting by one fen, past the immutability trigger.
fn tamper(db: &std::path::Path) -> bool {
    let url = format!("sqlite://{}", db.display());
    let sql = "DROP TRIGGER postings_are_immutable; \
               UPDATE postings SET amount = amount + 1 \
               WHERE entry_id = (SELECT min(entry_id) FROM postings) AND idx = 0;";
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("tamper");
                conn.close().await.is_ok()
            })
    })
    .join()
    .expect("tamper thread")
}
