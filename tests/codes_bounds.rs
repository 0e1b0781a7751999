//! Bearer codes reach the holder only (SPEC §6, §10) and every input has its bound: a company
//! office never reads a voucher code, the idempotency store keeps no code in clear, a SQLite
//! deployment's files are its owner's alone; no single amount passes the policy ceiling,
//! quantities and areas are plain decimals, and the idempotency fingerprint does not depend on
//! how a client lays out its JSON. Each body runs on every backend (`on_every_backend!`).

mod http_support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use http_support::*;

fn is_replayed(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        == Some("true")
}

/// Every outcome text in the idempotency table, read below the API.
async fn stored_outcomes(app: &TestApp) -> Vec<String> {
    outcomes_at(app.backend, &app.database_url()).await
}

async fn outcomes_at(backend: Backend, url: &str) -> Vec<String> {
    use sqlx::Connection;
    let sql = "SELECT outcome FROM idempotency";
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("open the SQLite database");
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .expect("read idempotency")
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query_scalar(sql)
                .fetch_all(&mut conn)
                .await
                .expect("read idempotency")
        }
    }
}

/// Overwrites every stored outcome with `text`, below the API.
async fn set_outcomes_at(backend: Backend, url: &str, text: &str) {
    set_column_at(backend, url, "outcome", text).await
}

/// Overwrites `column` of every idempotency row with `text`, below the API.
async fn set_column_at(backend: Backend, url: &str, column: &str, text: &str) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url)
                .await
                .expect("open the SQLite database");
            sqlx::query(&format!("UPDATE idempotency SET {column} = ?"))
                .bind(text)
                .execute(&mut conn)
                .await
                .expect("write idempotency");
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&format!("UPDATE idempotency SET {column} = $1"))
                .bind(text)
                .execute(&mut conn)
                .await
                .expect("write idempotency");
        }
    }
}

/// An outcome stored before codes were taken out of them (the bare receipt, code in clear) is
/// rewritten without its code when the store next opens, and still replays the same code.
async fn old_outcomes_lose_their_codes_when_the_store_opens(backend: Backend) {
    use hongxin::app::{App, Settings};
    use hongxin::domain::{Command, Delivery, PayMethod, Receipt, TopUp};
    use hongxin::money::Amount;
    use hongxin::store::{Envelope, Idempotency};

    let dir = tempfile::tempdir().expect("temporary directory");
    let (database, _pg, key_file) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("old.db").display()),
            None,
            None,
        ),
        Backend::Postgres => {
            let db = pg_support::fresh_database().await;
            (db.url.clone(), Some(db), Some(dir.path().join("keys.toml")))
        }
    };
    let settings = Settings {
        database: database.clone(),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file,
        today: Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 16).expect("date")),
    };
    let envelope = Envelope {
        actor: None,
        idempotency: Some(Idempotency {
            scope: "till".into(),
            key: "old-1".into(),
            fingerprint: "f".into(),
            raw_fingerprint: None,
        }),
        command: Command::TopUp(TopUp {
            shop: "S1".into(),
            household: "H1".into(),
            paid: Amount::from_yuan(100),
            method: PayMethod::Cash,
            deliver: Delivery::Voucher,
            bonus: Default::default(),
        }),
    };
    let app = App::open(&settings).await.expect("App::open");
    seed(&app).await;
    let first = app.store.execute(envelope.clone()).await.expect("top-up");
    let code = match &first.result {
        Ok(Receipt::TopUp(t)) => t.voucher.as_ref().expect("a voucher").code.clone(),
        other => panic!("expected a top-up receipt, got {other:?}"),
    };
    let old = serde_json::to_string(&first.result).expect("the bare receipt");
    assert!(old.contains(&code));
    set_outcomes_at(backend, &database, &old).await;
    drop(app);

    let app = App::open(&settings).await.expect("App::open again");
    let outcomes = outcomes_at(backend, &database).await;
    assert_eq!(outcomes.len(), 1);
    assert!(!outcomes[0].contains(&code), "{}", outcomes[0]);
    assert!(
        !outcomes[0].contains(&code.replace('-', "")),
        "{}",
        outcomes[0]
    );
    let again = app.store.execute(envelope).await.expect("replay");
    assert!(again.replayed);
    assert_eq!(again.result, first.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_old_outcomes_lose_their_codes_when_the_store_opens() {
    old_outcomes_lose_their_codes_when_the_store_opens(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_old_outcomes_lose_their_codes_when_the_store_opens() {
    if pg_support::available() {
        old_outcomes_lose_their_codes_when_the_store_opens(Backend::Postgres).await;
    }
}

// ---------------------------------------------------------------------------------------------
// §3 bearer codes
// ---------------------------------------------------------------------------------------------

async fn a_company_office_reads_a_household_without_its_voucher_codes(app: &TestApp) {
    let code = app.voucher("H1", "100.00").await;
    let voucher_of = |body: &Value| -> Value {
        let vouchers = body["vouchers"].as_array().expect("vouchers");
        assert_eq!(vouchers.len(), 1, "{body}");
        vouchers[0].clone()
    };

    // The company sees the voucher's figures, as a cashier does, but not its code.
    let company = app.get_ok(COMPANY_K01, "/v1/households/H1").await;
    let v = voucher_of(&company);
    assert_eq!(v["code"], Value::Null, "{company}");
    assert_eq!(
        (&v["balance"], &v["paid"], &v["bonus"], &v["status"]),
        (
            &json!("110.00"),
            &json!("100.00"),
            &json!("10.00"),
            &json!("active")
        )
    );
    let cashier = app.get_ok(CASHIER_S1, "/v1/households/H1").await;
    assert_eq!(voucher_of(&cashier)["code"], Value::Null);
    // No field of the company's answer carries the code in any form.
    let text = company.to_string();
    assert!(!text.contains(&code), "{text}");
    assert!(!text.contains(&code.replace('-', "")), "{text}");

    // The household itself (and an admin) still reads it.
    let own = app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    assert_eq!(voucher_of(&own)["code"], json!(code));
    let admin = app.get_ok(ADMIN, "/v1/households/H1").await;
    assert_eq!(voucher_of(&admin)["code"], json!(code));
}

async fn the_idempotency_store_keeps_no_voucher_code_and_a_replay_signs_it_again(app: &TestApp) {
    let key = "voucher-topup-1";
    let body =
        json!({ "household": "H1", "paid": "100.00", "method": "cash", "deliver": "voucher" });
    let (status, first, headers) = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some(key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!is_replayed(&headers));
    let code = first["voucher"]["code"]
        .as_str()
        .expect("a voucher code")
        .to_string();
    let plain = code.replace('-', "");
    assert_eq!(plain.len(), 25, "{code}");

    let outcomes = stored_outcomes(app).await;
    assert!(!outcomes.is_empty(), "the top-up's outcome is stored");
    for text in &outcomes {
        assert!(!text.contains(&code), "code in clear: {text}");
        assert!(!text.contains(&plain), "unhyphenated code: {text}");
        assert!(!text.to_lowercase().contains(&plain.to_lowercase()));
    }

    // The replay answers the very same receipt, code included.
    let (status, again, headers) = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some(key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(is_replayed(&headers));
    assert_eq!(again, first);
    assert_eq!(again["voucher"]["code"], json!(code));
    // Still one voucher: the replay issued nothing.
    let h = app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    assert_eq!(h["vouchers"].as_array().map(Vec::len), Some(1), "{h}");
    assert_eq!(h["vouchers"][0]["code"], json!(code));

    // A wallet top-up (no code) still replays as it was.
    let body = json!({ "household": "H1", "paid": "50.00", "method": "cash" });
    let (_, first, _) = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some("wallet-1"))
        .await;
    let (status, again, headers) = app
        .post(CASHIER_S1, "/v1/topups", body, Some("wallet-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(is_replayed(&headers));
    assert_eq!(again, first);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_database_wal_and_key_files_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;

    use hongxin::app::{App, Settings};
    use hongxin::domain::{Command, NewCooperative};
    use hongxin::store::Envelope;

    let dir = tempfile::tempdir().expect("temporary directory");
    let db = dir.path().join("fresh.db");
    let settings = Settings {
        database: format!("sqlite://{}", db.display()),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file: None,
        today: Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 16).expect("date")),
    };
    let mode = |name: &str| -> u32 {
        let path = dir.path().join(name);
        std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let app = App::open(&settings).await.expect("App::open");
    assert_eq!(mode("fresh.db"), 0o600, "database");
    assert_eq!(mode("fresh.db.keys.toml"), 0o600, "key file");

    // The first write makes the write-ahead log; it and the shared-memory index are private too.
    let outcome = app
        .store
        .execute(Envelope::operator(Command::CreateCooperative(
            NewCooperative {
                code: "C1".into(),
                name: "合作社".into(),
            },
        )))
        .await
        .expect("a write");
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(mode("fresh.db-wal"), 0o600, "write-ahead log");
    assert_eq!(mode("fresh.db-shm"), 0o600, "shared-memory index");
    drop(app);
}

// ---------------------------------------------------------------------------------------------
// §5 bounds and parsing
// ---------------------------------------------------------------------------------------------

const OVER: &str = "1000000.01";
const CEILING: &str = "1000000.00";

async fn no_single_amount_passes_the_ceiling(app: &TestApp) {
    let before = app.head().await;
    let refused = |field: &'static str| {
        move |reply: &Reply| {
            assert_problem(
                reply,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_amount",
                Some(field),
            )
        }
    };

    // Top-up: one fen over is invalid_amount on `paid` (not a unit or cap question); the
    // ceiling itself passes this check and meets the policy's unit limit instead.
    let r = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": OVER, "method": "cash" }),
        )
        .await;
    refused("paid")(&r);
    let (status, body, _) = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": CEILING, "method": "cash" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_ne!(body["code"], json!("invalid_amount"), "{body}");
    // The till's quote refuses what the top-up would, the same way.
    let r = app
        .get(
            CASHIER_S1,
            &format!("/v1/topups/quote?household=H1&paid={OVER}&method=cash"),
        )
        .await;
    refused("paid")(&r);

    // Sale by amount, a tender, a catalogue line, and the lines' total.
    let r = app
        .sell(
            CASHIER_S1,
            json!({ "amount": OVER, "tenders": [{ "type": "cash", "amount": OVER }] }),
        )
        .await;
    refused("amount")(&r);
    let r = app
        .sell(
            CASHIER_S1,
            json!({ "amount": "10.00", "tenders": [{ "type": "cash", "amount": OVER }] }),
        )
        .await;
    refused("tenders[0].amount")(&r);
    // RICE at 37.80 × 26456 = 1,000,036.80, paid by two tenders each under the ceiling.
    let r = app
        .sell(
            CASHIER_S1,
            json!({ "lines": [{ "sku": "RICE", "qty": "26456" }],
                    "tenders": [{ "type": "cash", "amount": "500018.40" },
                                { "type": "wechat", "amount": "500018.40" }] }),
        )
        .await;
    refused("lines[0]")(&r);
    // Two lines each under the ceiling, together over it: 26455 × 37.80 + 1 × 37.80.
    let r = app
        .sell(
            CASHIER_S1,
            json!({ "lines": [{ "sku": "RICE", "qty": "26455" }, { "sku": "RICE", "qty": "1" }],
                    "tenders": [{ "type": "cash", "amount": "500018.40" },
                                { "type": "wechat", "amount": "500018.40" }] }),
        )
        .await;
    refused("lines")(&r);
    assert_eq!(app.head().await, before, "nothing refused was posted");

    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({ "amount": CEILING, "tenders": [{ "type": "cash", "amount": CEILING }] }),
        )
        .await;
    assert_eq!(sale["total"], json!(CEILING));
    let sale_id = sale["sale"].as_i64().expect("sale id");

    // A refund of more than the ceiling is refused as such.
    let r = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/sales/{sale_id}/refunds"),
            json!({ "amount": OVER }),
        )
        .await;
    refused("amount")(&r);

    // Back office and fees.
    for (token, path, over, ok) in [
        (
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": OVER, "date": "2026-11-01" }),
            json!({ "category": "rent", "amount": CEILING, "date": "2026-11-01" }),
        ),
        (
            ACCOUNTANT_COOP,
            "/v1/stock-receipts",
            json!({ "amount": OVER }),
            json!({ "amount": CEILING }),
        ),
        (
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": OVER, "method": "cash", "reference": "R-1" }),
            json!({ "household": "H1", "amount": CEILING, "method": "cash", "reference": "R-2" }),
        ),
    ] {
        let r = app.post_keyed(token, path, over).await;
        refused("amount")(&r);
        let (status, body, _) = app.post_keyed(token, path, ok).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
        assert_eq!(body["amount"], json!(CEILING), "{path}");
    }
    // A settlement over the ceiling is refused as such, not as more than is owed.
    let r = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/settlements",
            json!({ "company": "K01", "amount": OVER, "reference": "T-1" }),
        )
        .await;
    refused("amount")(&r);
    app.assert_verifies().await;
}

async fn quantities_and_areas_are_plain_decimals(app: &TestApp) {
    let before = app.head().await;
    for qty in ["1e1", "1E1", "10e0", "1_0", "+10", ".5"] {
        let r = app
            .sell(
                CASHIER_S1,
                json!({ "lines": [{ "sku": "APPLE", "qty": qty }],
                        "tenders": [{ "type": "cash", "amount": "12.50" }] }),
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("lines[0].qty"),
        );
        let r = app
            .get(
                CASHIER_S1,
                &format!(
                    "/v1/catalog/price?sku=APPLE&qty={}",
                    qty.replace('+', "%2B")
                ),
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("qty"),
        );
    }
    assert_eq!(app.head().await, before);
    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({ "lines": [{ "sku": "APPLE", "qty": "10" }],
                    "tenders": [{ "type": "cash", "amount": "12.50" }] }),
        )
        .await;
    assert_eq!(sale["total"], json!("12.50"));

    for area in ["1e2", "8.735e1", "1_00"] {
        let r = app
            .post(
                ADMIN,
                "/v1/households",
                json!({ "code": "H40", "compound": "HX01", "area_m2": area }),
                None,
            )
            .await;
        assert_problem(
            &r,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("area_m2"),
        );
    }
    let (status, body, _) = app
        .post(
            ADMIN,
            "/v1/households",
            json!({ "code": "H40", "compound": "HX01", "area_m2": "87.35" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(app.household("H40").await["area_m2"], json!("87.35"));
}

async fn the_same_body_in_another_layout_is_a_replay(app: &TestApp) {
    let key = "layout-1";
    let compact = r#"{"household":"H1","paid":"100.00","method":"cash","deliver":"wallet"}"#;
    let reordered =
        "{\n  \"deliver\" : \"wallet\",\n  \"method\":\"cash\",\t\"paid\":\"100.00\",\n  \"household\":\"H1\"\n}";
    let send = |body: &'static str| {
        app.request_raw(
            Method::POST,
            Some(CASHIER_S1),
            "/v1/topups",
            "application/json",
            body,
            Some(key),
        )
    };
    let (status, first, headers) = send(compact).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(!is_replayed(&headers));
    let (status, again, headers) = send(reordered).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(
        is_replayed(&headers),
        "keys in another order are the same request"
    );
    assert_eq!(again, first);
    assert_eq!(app.wallet("H1").await["total"], json!("110.00"));

    // Another value under the same key is still refused.
    let reply =
        send(r#"{"deliver":"wallet","method":"cash","paid":"150.00","household":"H1"}"#).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        None,
    );
    assert_eq!(app.wallet("H1").await["total"], json!("110.00"));
}

/// A key stored by a release that took the fingerprint over the raw body (before canonical JSON)
/// still replays when the till retries the same bytes after the upgrade, instead of being
/// refused as reused (which would lead a cashier to charge again under a new key).
async fn a_retry_across_the_fingerprint_upgrade_replays(app: &TestApp) {
    use sha2::{Digest, Sha256};
    let body = r#"{"household":"H1", "paid":"50.00","method":"cash"}"#;
    let send = || {
        app.request_raw(
            Method::POST,
            Some(CASHIER_S1),
            "/v1/topups",
            "application/json",
            body,
            Some("upgrade-1"),
        )
    };
    let (status, first, _) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let mut h = Sha256::new();
    h.update(b"POST /v1/topups\0");
    h.update(body.as_bytes());
    let old = hex::encode(h.finalize());
    set_column_at(app.backend, &app.database_url(), "fingerprint", &old).await;
    let (status, again, headers) = send().await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(is_replayed(&headers), "the same bytes are the same request");
    assert_eq!(again, first);
    assert_eq!(app.wallet("H1").await["total"], json!("55.00"));
}

macro_rules! on_every_backend {
    ($($name:ident;)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = TestApp::spawn_with(Backend::Sqlite, Default::default()).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if !pg_support::available() {
                        return;
                    }
                    let app = TestApp::spawn_with(Backend::Postgres, Default::default()).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
    };
}

on_every_backend! {
    a_company_office_reads_a_household_without_its_voucher_codes;
    the_idempotency_store_keeps_no_voucher_code_and_a_replay_signs_it_again;
    no_single_amount_passes_the_ceiling;
    quantities_and_areas_are_plain_decimals;
    the_same_body_in_another_layout_is_a_replay;
    a_retry_across_the_fingerprint_upgrade_replays;
}
