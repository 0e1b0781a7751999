//! PostgreSQL for the tests: one throwaway cluster per test binary, started on first use, and a
//! fresh database per test.
//!
//! - With `TEST_DATABASE_URL` set, that server is used instead: each test creates its own
//!   database on it (the URL's user must be allowed to) and drops it afterwards.
//! - Otherwise `initdb` and `pg_ctl` are looked for in `/usr/lib/postgresql/*/bin` (newest
//!   first) and on `PATH`. The cluster lives in a temporary directory and listens only on a Unix
//!   socket there, so it needs no free port and cannot clash with another cluster. As root
//!   (CI), where `initdb` refuses to run, the cluster belongs to the `postgres` OS user and is
//!   run through `runuser`.
//! - Stopping it: a test binary ends with `exit`, which runs no destructors, and it can also be
//!   killed. So the cluster is stopped by a small watchdog process started *before* the
//!   cluster: it reads its standard input until end of file, then stops the cluster
//!   (`pg_ctl stop -m immediate`) and removes the directory. The test binary holds the write
//!   end of that pipe in a static and never writes to it; the kernel closes it when the test
//!   process ends, however it ends (normal exit, panic, SIGKILL). The watchdog ignores SIGINT,
//!   SIGTERM and SIGHUP, so Ctrl-C on `cargo test` still cleans up.
//! - Without PostgreSQL, [`available`] says so once on the terminal and the PostgreSQL half of
//!   the tests passes without running; with `CI=true` it fails instead.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use sqlx::{ConnectOptions, Connection};

/// Where test databases are created.
struct Server {
    /// Connects to the maintenance database `postgres`, to create and drop test databases.
    admin_url: String,
    /// Kept open for the life of the test process: its closing stops the cluster.
    _watchdog: Option<Mutex<ChildStdin>>,
    /// How to restart the cluster this process started (`None` with `TEST_DATABASE_URL`).
    restart: Option<Restart>,
}

/// `pg_ctl restart` of this process's own cluster.
struct Restart {
    pg_ctl: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    log: PathBuf,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static NOTICE: OnceLock<()> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn server() -> &'static Result<Server, String> {
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(Server {
            admin_url: url,
            _watchdog: None,
            restart: None,
        }),
        _ => start_cluster(),
    })
}

/// Whether the PostgreSQL half of the tests can run. When it cannot, says so once (on the
/// terminal, past the test harness's capture) and returns false; with `CI=true` it panics.
pub fn available() -> bool {
    match server() {
        Ok(_) => true,
        Err(why) => {
            if ci() {
                panic!("CI=true but PostgreSQL is not available: {why}");
            }
            NOTICE.get_or_init(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nNOTE: PostgreSQL is not available ({why}); the PostgreSQL half of these \
                     tests is SKIPPED (they pass without running). Install the PostgreSQL server \
                     or set TEST_DATABASE_URL; with CI=true this is an error.\n"
                );
            });
            false
        }
    }
}

/// Restarts the cluster with a fast shutdown (every connection is cut, as when PostgreSQL is
/// restarted for an upgrade or a configuration change). `Err` when the tests use a server of
/// `TEST_DATABASE_URL`, which they do not own. Every test of the binary shares the cluster: call
/// this only from a test binary of its own.
pub fn restart_cluster() -> Result<(), String> {
    let server = server().as_ref().map_err(Clone::clone)?;
    let restart = server
        .restart
        .as_ref()
        .ok_or("the cluster is TEST_DATABASE_URL's, not this process's")?;
    output(
        as_owner(restart.as_postgres, &restart.pg_ctl)
            .arg("-D")
            .arg(&restart.data)
            .arg("-l")
            .arg(&restart.log)
            .args(["-w", "-t", "60", "-m", "fast", "restart"]),
    )
    .map(|_| ())
}

/// A database of one test's own; dropped (connections and all) when this is dropped.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Creates a fresh, empty database. Panics when PostgreSQL is not available (test bodies check
/// [`available`] first).
pub async fn fresh_database() -> TestDatabase {
    let server = match server() {
        Ok(s) => s,
        Err(why) => panic!("PostgreSQL is not available: {why}"),
    };
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut admin = connect(&server.admin_url).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = admin.close().await;
    TestDatabase {
        url: with_database(&server.admin_url, &name),
        name,
        admin_url: server.admin_url.clone(),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let mut admin = connect(&admin_url).await;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            let _ = writeln!(
                std::io::stderr(),
                "dropping test database {}: {e}",
                self.name
            );
        }
    }
}

async fn connect(url: &str) -> sqlx::PgConnection {
    let options: sqlx::postgres::PgConnectOptions = url
        .parse()
        .unwrap_or_else(|e| panic!("bad PostgreSQL URL: {e}"));
    options
        .disable_statement_logging()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to PostgreSQL: {e}"))
}

/// `url` with its database replaced by `name` (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The directory holding `initdb` and `pg_ctl`: the newest `/usr/lib/postgresql/*/bin`, else
/// wherever `PATH` has them.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `program args…`, as the `postgres` OS user when running as root.
fn as_owner(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<Server, String> {
    let bin = bin_dir().ok_or("no initdb and pg_ctl in /usr/lib/postgresql/*/bin or on PATH")?;
    let root = output(Command::new("id").arg("-u"))? == "0";
    if root && output(Command::new("id").args(["-u", "postgres"])).is_err() {
        return Err("running as root, and there is no `postgres` OS user to run initdb as".into());
    }
    let dir = std::env::temp_dir().join(format!(
        "hongxin-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if root {
        output(Command::new("chown").arg("postgres:").arg(&dir))?;
    }
    let data = dir.join("data");

    // The watchdog first, so that no cluster can outlive this process.
    let pg_ctl = bin.join("pg_ctl");
    let runner = if root { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "trap '' INT TERM HUP PIPE; cat >/dev/null; \
         {runner}\"$0\" -D \"$1/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$1\""
    );
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&pg_ctl)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the cluster's watchdog: {e}"))?;
    let stdin = watchdog.stdin.take().ok_or("no watchdog stdin")?;

    output(
        as_owner(root, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]),
    )?;
    let settings = format!(
        "-c listen_addresses='' -k {} -p 5432 -c max_connections=300 -c fsync=off \
         -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB",
        dir.display()
    );
    let started = output(
        as_owner(root, &pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "-o", &settings, "start"]),
    );
    if let Err(e) = started {
        let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        return Err(format!("{e}\n{log}"));
    }
    Ok(Server {
        admin_url: format!("postgres:///postgres?host={}&user=postgres", dir.display()),
        _watchdog: Some(Mutex::new(stdin)),
        restart: Some(Restart {
            pg_ctl,
            data,
            as_postgres: root,
            log: dir.join("log"),
        }),
    })
}
