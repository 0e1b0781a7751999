//! Running hongxin for real, end to end with the built binary on both backends: `init` on an
//! empty database, `serve` configured by flag, environment and file, online backups taken while
//! tills write, restores that refuse a broken chain, housekeeping inside `serve`, and upgrades
//! from the previous release's schema.

mod proc_support;

use std::process::Stdio;

use serde_json::json;

use proc_support::{
    assert_ok, client, post_ok, seed, stderr, stdout, verify, wallet, Backend, Install, Server,
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
