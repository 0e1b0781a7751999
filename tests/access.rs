//! Access and abuse, end to end on both backends: household PINs (length, lockout, equal work),
//! a resident's presence for wallet spending, and the server's own limits (metrics labels,
//! security headers, the small leaks). Sign-in and token revocation are in tests/web.rs.

mod http_support;

use std::time::{Duration, Instant};

use http_support::pg_support;
use http_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hongxin::http::limits::RateConfig;
use hongxin::http::HttpConfig;

/// Quotas high enough that the per-household and per-address limits stay out of the way.
fn open_quotas() -> HttpConfig {
    HttpConfig {
        rates: RateConfig {
            resident_per_household: 10_000,
            resident_per_address: 10_000,
            failed_auth_per_address: 10_000,
            failed_auth_per_target: 10_000,
            ..RateConfig::default()
        },
        ..HttpConfig::default()
    }
}

async fn set_pin(app: &TestApp, household: &str, pin: &str) {
    let (status, body, _) = app
        .post(
            COMPANY_K01,
            &format!("/v1/households/{household}/pin"),
            json!({ "pin": pin }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn pin_sign_in(app: &TestApp, household: &str, pin: &str) -> Reply {
    app.request(
        Method::POST,
        None,
        "/v1/resident/sessions",
        Some(&json!({ "household": household, "pin": pin })),
        None,
    )
    .await
}

/// The household's PIN as its company's office sees it, once `ready` holds (attempts are
/// recorded without the resident waiting for it).
async fn pin_status(app: &TestApp, household: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let h = app
            .get_ok(COMPANY_K01, &format!("/v1/households/{household}"))
            .await;
        if ready(&h["pin"]) {
            return h["pin"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the PIN status of {household} never got there");
}

async fn pins_have_six_digits_and_lock(app: &TestApp) {
    for (pin, why) in [
        ("12345", "five digits"),
        ("1234567890123", "thirteen"),
        ("12a456", "a letter"),
    ] {
        let reply = app
            .post(
                COMPANY_K01,
                "/v1/households/H1/pin",
                json!({ "pin": pin }),
                None,
            )
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("pin"),
        );
        assert!(why.len() > 1);
    }
    set_pin(app, "H1", "482916").await;
    let fresh = pin_status(app, "H1", |p| p.is_object()).await;
    assert_eq!(
        fresh,
        json!({ "set": true, "failures": 0, "locked_until": null })
    );
    // A cashier does not see it.
    let seen = app.get_ok(CASHIER_S1, "/v1/households/H1").await;
    assert_eq!(seen.get("pin"), None);

    for _ in 0..5 {
        let reply = pin_sign_in(app, "H1", "111111").await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    }
    let locked = pin_status(app, "H1", |p| p["failures"] == json!(5)).await;
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(locked["locked_until"].clone()).expect("locked_until");
    let minutes = (until - chrono::Utc::now()).num_seconds();
    assert!(
        (14 * 60..=15 * 60).contains(&minutes),
        "locked for {minutes} s"
    );
    // Locked: the right PIN is refused exactly as a wrong one is.
    let right = pin_sign_in(app, "H1", "482916").await;
    let wrong = pin_sign_in(app, "H1", "111111").await;
    assert_problem(&right, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    assert_eq!(right.1, wrong.1);
    let counted = pin_status(app, "H1", |p| p["failures"] == json!(7)).await;
    assert_eq!(counted["locked_until"], locked["locked_until"]);
    // Three more failures make ten: the lockout doubles to 30 minutes.
    for _ in 0..3 {
        pin_sign_in(app, "H1", "222222").await;
    }
    let doubled = pin_status(app, "H1", |p| p["failures"] == json!(10)).await;
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(doubled["locked_until"].clone()).expect("locked_until");
    let minutes = (until - chrono::Utc::now()).num_seconds();
    assert!(
        (29 * 60..=30 * 60).contains(&minutes),
        "locked for {minutes} s"
    );

    // The office sets a new PIN: the count and the lock are cleared, and it works.
    set_pin(app, "H1", "640271").await;
    let cleared = pin_status(app, "H1", |p| p["failures"] == json!(0)).await;
    assert_eq!(cleared["locked_until"], Value::Null);
    let (status, body, _) = pin_sign_in(app, "H1", "640271").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A right PIN clears the failures before it.
    pin_sign_in(app, "H1", "000000").await;
    pin_status(app, "H1", |p| p["failures"] == json!(1)).await;
    pin_sign_in(app, "H1", "640271").await;
    pin_status(app, "H1", |p| p["failures"] == json!(0)).await;
}

/// The fastest of `n` refused PIN sign-ins, after one to warm up.
async fn fastest_refusal(app: &TestApp, household: &str, pin: &str, n: usize) -> Duration {
    pin_sign_in(app, household, pin).await;
    let mut best = Duration::MAX;
    for _ in 0..n {
        let start = Instant::now();
        let reply = pin_sign_in(app, household, pin).await;
        best = best.min(start.elapsed());
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    }
    best
}

async fn pin_checks_take_the_same_work(app: &TestApp) {
    set_pin(app, "H1", "482916").await;
    // H2 has no PIN; NOPE does not exist; H1 gets a wrong one.
    let wrong = fastest_refusal(app, "H1", "111111", 3).await;
    let no_pin = fastest_refusal(app, "H2", "111111", 3).await;
    let unknown = fastest_refusal(app, "NOPE", "111111", 3).await;
    // An argon2 verification each: none is a fraction of the others (without one, a refusal
    // takes well under a tenth of the time).
    for (case, took) in [("no PIN", no_pin), ("unknown household", unknown)] {
        assert!(
            took * 2 >= wrong && wrong * 2 >= took,
            "{case}: {took:?} against a wrong PIN's {wrong:?}"
        );
    }
}

async fn wallet_spending_needs_the_resident(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let sale = json!({ "household": "H1", "amount": "10.00",
        "tenders": [{ "type": "wallet", "amount": "10.00" }] });
    let head = app.head().await;
    let with = |proof: Value| {
        let mut s = sale.clone();
        s["resident"] = proof;
        s
    };
    // Without the resident: refused, nothing posted.
    let reply = app.post_keyed(CASHIER_S1, "/v1/sales", sale.clone()).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_required",
        Some("resident"),
    );
    // Another household's card, a tampered card, garbage: refused.
    let h1 = app.card("H1").await;
    let h2 = app.card("H2").await;
    let tampered = format!("{}0", &h1[..h1.len() - 1]);
    let tampered = if tampered == h1 {
        format!("{}1", &h1[..h1.len() - 1])
    } else {
        tampered
    };
    for card in [
        h2.clone(),
        tampered,
        "not a card".to_string(),
        h1.replace("/r/H1", "/r/H2"),
    ] {
        let reply = app
            .post_keyed(CASHIER_S1, "/v1/sales", with(json!({ "card": card })))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "resident_proof_failed",
            Some("resident.card"),
        );
    }
    // A wrong PIN (the household has one), a PIN where none is set, both or neither proof.
    set_pin(app, "H1", "482916").await;
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/sales", with(json!({ "pin": "111111" })))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_proof_failed",
        Some("resident.pin"),
    );
    pin_status(app, "H1", |p| p["failures"] == json!(1)).await;
    for proof in [json!({ "card": h1, "pin": "482916" }), json!({})] {
        let reply = app.post_keyed(CASHIER_S1, "/v1/sales", with(proof)).await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("resident"),
        );
    }
    assert_eq!(app.head().await, head, "no refused sale posted anything");
    assert_eq!(app.wallet("H1").await["total"], json!("110.00"));

    // The card, then the PIN: each sale spends exactly its amount.
    let r = app
        .post_keyed(CASHIER_S1, "/v1/sales", with(json!({ "card": h1 })))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["wallet"]["total"], json!("100.00"));
    let key = app.key();
    let by_pin = with(json!({ "pin": "482916" }));
    let r = app
        .post(CASHIER_S1, "/v1/sales", by_pin.clone(), Some(&key))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["wallet"]["total"], json!("90.00"));
    // A retry of it replays, proved either way; nothing new is spent.
    let again = app
        .post(
            CASHIER_S1,
            "/v1/sales",
            with(json!({ "card": h1 })),
            Some(&key),
        )
        .await;
    assert_eq!((again.0, &again.1), (r.0, &r.1));
    assert_eq!(app.wallet("H1").await["total"], json!("90.00"));
    pin_status(app, "H1", |p| p["failures"] == json!(0)).await;
    // Cash needs no proof.
    let r = app
        .post_keyed(
            CASHIER_S1,
            "/v1/sales",
            json!({ "household": "H1", "amount": "3.00",
            "tenders": [{ "type": "cash", "amount": "3.00" }] }),
        )
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    // A card replaced by a new one no longer proves anything.
    let (status, body, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/link/rotate",
            json!({}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/sales", with(json!({ "card": h1 })))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_proof_failed",
        Some("resident.card"),
    );
    let fresh = app.card("H1").await;
    let r = app
        .post_keyed(CASHIER_S1, "/v1/sales", with(json!({ "card": fresh })))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["wallet"]["total"], json!("80.00"));
    app.assert_verifies().await;
}

macro_rules! on_every_backend {
    ($($name:ident($config:expr);)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = TestApp::spawn_with(Backend::Sqlite, $config).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !pg_support::available() {
                        return;
                    }
                    let app = TestApp::spawn_with(Backend::Postgres, $config).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
    };
}

on_every_backend! {
    pins_have_six_digits_and_lock(open_quotas());
    pin_checks_take_the_same_work(open_quotas());
    wallet_spending_needs_the_resident(open_quotas());
}
