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

async fn pin_checks_take_the_same_work(app: &TestApp) {
    set_pin(app, "H1", "482916").await;
    // H1 gets a wrong PIN; H2 has no PIN; NOPE does not exist. Taken in turns, so that a busy
    // machine slows every case alike, and the fastest of each is compared.
    let cases = ["H1", "H2", "NOPE"];
    let mut fastest = [Duration::MAX; 3];
    for round in 0..6 {
        for (i, household) in cases.iter().enumerate() {
            let start = Instant::now();
            let reply = pin_sign_in(app, household, "111111").await;
            let took = start.elapsed();
            assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
            if round > 0 {
                fastest[i] = fastest[i].min(took);
            }
        }
    }
    // An argon2 verification each: none is a small fraction of another (without one, a
    // refusal takes a thirtieth of the time or less).
    let wrong = fastest[0];
    for (case, took) in [("no PIN", fastest[1]), ("unknown household", fastest[2])] {
        assert!(
            took * 3 >= wrong && wrong * 3 >= took,
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

/// Series of `hongxin_http_requests_total` in the metrics text.
fn request_series(app: &TestApp) -> usize {
    app.state
        .metrics
        .render(0, 0, 0)
        .lines()
        .filter(|l| l.starts_with("hongxin_http_requests_total{"))
        .count()
}

async fn invented_methods_add_no_metrics(app: &TestApp) {
    let head = |m: &str| Method::from_bytes(m.as_bytes()).expect("method");
    app.request(head("FOO0"), None, "/v1/households/H1", None, None)
        .await;
    app.request(head("FOO0"), None, "/nowhere", None, None)
        .await;
    let before = request_series(app);
    for i in 0..200 {
        let (status, _, _) = app
            .request(
                head(&format!("FOO{i}")),
                None,
                &format!("/nowhere/{i}"),
                None,
                None,
            )
            .await;
        assert!(status.is_client_error(), "{status}");
    }
    assert_eq!(
        request_series(app),
        before,
        "invented methods or paths added series"
    );
    let text = app.state.metrics.render(0, 0, 0);
    assert!(
        text.contains("method=\"other\",route=\"unmatched\""),
        "{text}"
    );
}

async fn small_leaks(app: &TestApp) {
    // /v1 answers are not sniffed and not cached.
    for path in ["/v1/households/H1", "/v1/households/NOPE"] {
        let (_, _, headers) = app.get(ADMIN, path).await;
        assert_eq!(
            headers
                .get("x-content-type-options")
                .map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
    }
    // A path that is not UTF-8 gets problem+json.
    let reply = app.get(ADMIN, "/v1/households/%FF%FE").await;
    assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{:?}", reply.1);
    assert_eq!(content_type(&reply.2), "application/problem+json");
    assert_eq!(reply.1["status"], json!(400));
    // Another shop's sale answers like a missing one.
    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({ "amount": "2.00", "tenders": [{ "type": "cash", "amount": "2.00" }] }),
        )
        .await;
    let id = sale["sale"].as_i64().expect("sale");
    let elsewhere = app
        .post_keyed(CASHIER_S2, &format!("/v1/sales/{id}/refunds"), json!({}))
        .await;
    let missing = app
        .post_keyed(
            CASHIER_S2,
            &format!("/v1/sales/{}/refunds", id + 1000),
            json!({}),
        )
        .await;
    assert_problem(&elsewhere, StatusCode::NOT_FOUND, "not_found", Some("sale"));
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found", Some("sale"));
    assert_eq!(
        elsewhere.1["detail"]
            .as_str()
            .map(|d| d.replace(&id.to_string(), "N")),
        missing.1["detail"]
            .as_str()
            .map(|d| d.replace(&(id + 1000).to_string(), "N")),
    );
    // Names refuse direction overrides and other invisible characters.
    for name in ["王\u{202E}明", "王\u{200B}明", "\u{2067}abc", "x\u{FEFF}"] {
        let reply = app
            .post(
                ADMIN,
                "/v1/companies",
                json!({ "code": "K99", "name": name }),
                None,
            )
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("name"),
        );
    }
    let (status, body, _) = app
        .post(
            ADMIN,
            "/v1/companies",
            json!({ "code": "K99", "name": "红心物业" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // /healthz tells an anonymous caller nothing about the journal.
    let (_, health, _) = app.request(Method::GET, None, "/healthz", None, None).await;
    assert_eq!(health, json!({ "status": "ok" }));
}

async fn voucher_voids_are_rate_limited(app: &TestApp) {
    // The quota of the config below: 3 per token per minute.
    for i in 0..3 {
        let reply = app
            .post_keyed(
                ACCOUNTANT_COOP,
                &format!("/v1/vouchers/AAAAA-AAAAA-AAAA{i}/void"),
                json!({}),
            )
            .await;
        assert_ne!(reply.0, StatusCode::TOO_MANY_REQUESTS, "{:?}", reply.1);
    }
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/vouchers/AAAAA-AAAAA-AAAAA/void",
            json!({}),
        )
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    assert!(reply.2.get("retry-after").is_some());
}

fn tight_connections() -> HttpConfig {
    HttpConfig {
        header_read_timeout: Duration::from_millis(1500),
        request_timeout: Duration::from_millis(1500),
        max_connections: 4,
        ..HttpConfig::default()
    }
}

/// A connection that sends part of a request's head, then nothing.
async fn half_sent_head(app: &TestApp) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    stream
}

async fn slow_connections_are_cut_off(app: &TestApp) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A head never finished: the server closes the connection once the head timeout passes.
    let start = Instant::now();
    let mut stream = half_sent_head(app).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the half-sent head was held for 10 s");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A body sent too slowly: answered 408 problem+json when the request's time is up.
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!(
                "POST /v1/topups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CASHIER_S1}\r\n\
                 Idempotency-Key: slow-1\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{\"household\":"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("no answer to a slow body within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");

    // At most four connections: a fifth request waits until a held one is let go.
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(half_sent_head(app).await);
        }
        v
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let (status, body, _) = app.request(Method::GET, None, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "served at once with every slot taken: {waited:?}"
    );
    drop(held);
}

async fn a_new_card_ends_the_households_sessions(app: &TestApp) {
    let link = app.get_ok(COMPANY_K01, "/v1/households/H1/link").await;
    let (status, session, _) = app
        .request(
            Method::POST,
            None,
            "/v1/resident/sessions",
            Some(&json!({ "household": "H1", "version": link["version"], "signature": link["signature"] })),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let token = session["token"].as_str().expect("token").to_string();
    app.get_ok(&token, "/v1/households/H1").await;
    // Another household's session and the operator-issued resident token are not touched.
    let (status, body, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/link/rotate",
            json!({}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply = app.get(&token, "/v1/households/H1").await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    app.get_ok(RESIDENT_H3, "/v1/households/H3").await;
}

async fn resident_reads_are_rate_limited(app: &TestApp) {
    // Three reads a minute per household (the config below), whichever view.
    app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    app.get_ok(RESIDENT_H1, "/v1/households/H1/history").await;
    app.get_ok(RESIDENT_H1, "/v1/households/H1/fees").await;
    for path in ["/v1/households/H1", "/v1/households/H1/fees?months=12"] {
        let reply = app.get(RESIDENT_H1, path).await;
        assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
        assert!(reply.2.get("retry-after").is_some());
    }
    // Another household, and staff reading the same one, are not held up.
    app.get_ok(RESIDENT_H3, "/v1/households/H3").await;
    for _ in 0..5 {
        app.get_ok(ADMIN, "/v1/households/H1").await;
        app.get_ok(CASHIER_S1, "/v1/households/H1").await;
    }
}

async fn expired_sessions_are_pruned(app: &TestApp) {
    use hongxin::domain::{Command, Receipt};
    set_pin(app, "H1", "482916").await;
    let (status, session, _) = pin_sign_in(app, "H1", "482916").await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let secret = session["token"].as_str().expect("token").to_string();
    let hash = hongxin::http::extract::token_hash(&secret);
    assert!(app
        .app
        .store
        .token_by_hash(&hash)
        .await
        .expect("read")
        .is_some());
    // A staff session made from a token stays: the journal may name it.
    let (status, staff, _) = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({ "token": CASHIER_S1 })),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{staff}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let pruned = app
        .app
        .run(Command::PruneExpiredSessions {
            before: chrono::Utc::now() + chrono::Duration::days(1),
        })
        .await
        .expect("prune");
    let Ok(Receipt::Imported(done)) = pruned else {
        panic!("{pruned:?}")
    };
    assert_eq!(done.updated, 1, "only the resident's session");
    assert!(app
        .app
        .store
        .token_by_hash(&hash)
        .await
        .expect("read")
        .is_none());
    // The long-lived tokens are untouched.
    app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    app.get_ok(ADMIN, "/v1/households/H1").await;
}

async fn the_openapi_document_describes_refusals(app: &TestApp) {
    let (status, doc, _) = app
        .request(Method::GET, None, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let problem = json!({ "$ref": "#/components/schemas/Problem" });
    let mut operations = 0;
    let mut keyed = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let responses = op["responses"].as_object().expect("responses");
            // Any status not listed is a problem+json refusal…
            assert_eq!(
                responses["default"]["content"]["application/problem+json"]["schema"], problem,
                "{method} {path}"
            );
            // …and every listed refusal says problem+json too.
            for (code, r) in responses {
                if let Some(content) = r["content"].as_object() {
                    let json_problem = content
                        .get("application/json")
                        .is_some_and(|c| c["schema"] == problem);
                    assert!(
                        !json_problem,
                        "{method} {path} {code}: a problem as application/json"
                    );
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["name"] == json!("Idempotency-Key") {
                    keyed += 1;
                    assert_eq!(p["schema"]["maxLength"], json!(255), "{method} {path}");
                }
                if p["in"] == json!("path") && p["schema"]["type"] == json!("integer") {
                    assert_eq!(p["schema"]["minimum"], json!(1), "{method} {path}");
                }
            }
        }
    }
    assert!(operations >= 40, "{operations} operations");
    // A body whose every field has a default may be left out (a whole refund).
    assert_eq!(
        doc["paths"]["/v1/sales/{sale}/refunds"]["post"]["requestBody"]["required"],
        json!(false)
    );
    assert_eq!(
        doc["paths"]["/v1/sales"]["post"]["requestBody"]["required"],
        json!(true)
    );
    assert!(keyed >= 10, "{keyed} operations take an Idempotency-Key");
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .map(|c| c.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["application/openmetrics-text".to_string()])
    );

    // Every reference resolves (a schema named only by a query parameter is registered too).
    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r);
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 100, "{} references", all.len());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "unresolved {r}"
        );
    }
    // The limits the server enforces are stated: page sizes, codes, months, amounts, formats.
    let param = |path: &str, name: &str| {
        let params = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect(path);
        params
            .iter()
            .find(|p| p["name"] == json!(name))
            .unwrap_or_else(|| panic!("{path} {name}"))["schema"]
            .clone()
    };
    let limit = param("/v1/households/{household}/history", "limit");
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(100))
    );
    let months = param("/v1/households/{household}/fees", "months");
    assert_eq!(
        (&months["minimum"], &months["maximum"]),
        (&json!(1), &json!(12))
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        param("/v1/companies/{company}/statements/{month}", "format")["$ref"],
        json!("#/components/schemas/Format")
    );
    assert_eq!(schemas["Format"]["enum"], json!(["json", "csv", "xlsx"]));
    assert_eq!(schemas["Lang"]["enum"], json!(["zh-CN", "en"]));
    assert_eq!(schemas["Code"]["pattern"], json!("^[A-Za-z0-9_-]{1,32}$"));
    assert_eq!(
        schemas["Month"]["pattern"],
        json!("^[0-9]{4}-(0[1-9]|1[0-2])$")
    );
    assert_eq!(
        schemas["SaleLine"]["properties"]["sku"]["$ref"],
        json!("#/components/schemas/Code")
    );
    assert_eq!(
        schemas["TopUpRequest"]["properties"]["paid"]["$ref"],
        json!("#/components/schemas/RequestAmount")
    );
    assert_eq!(schemas["Text100"]["maxLength"], json!(100));
}

/// The shipped policies, with the top-up policy's `resident_factor_over` set.
fn policies_with_free_wallet_spending(over: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("policies dir");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    for entry in std::fs::read_dir(shipped).expect("policies") {
        let entry = entry.expect("entry");
        let mut text = std::fs::read_to_string(entry.path()).expect("read");
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("spend-50-get-55")
        {
            text.push_str(&format!("resident_factor_over = \"{over}\"\n"));
        }
        std::fs::write(dir.path().join(entry.file_name()), text).expect("write");
    }
    dir
}

async fn resident_needed_above_the_policys_amount(backend: Backend) {
    let policies = policies_with_free_wallet_spending("20.00");
    let app =
        TestApp::spawn_with_policies(backend, HttpConfig::default(), policies.path().into()).await;
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let sale = |wallet: &str, cash: &str| {
        let a = |s: &str| hongxin::money::Amount::parse(s).expect("amount");
        let total = a(wallet).checked_add(a(cash)).expect("total");
        let mut tenders = vec![json!({ "type": "wallet", "amount": wallet })];
        if a(cash).is_positive() {
            tenders.push(json!({ "type": "cash", "amount": cash }));
        }
        json!({ "household": "H1", "amount": total.to_string(), "tenders": tenders })
    };
    // Up to 20.00 from the wallet needs no card or PIN, however much is paid in cash.
    let r = app
        .post_keyed(CASHIER_S1, "/v1/sales", sale("20.00", "50.00"))
        .await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["wallet"]["total"], json!("90.00"));
    // 20.01 does.
    let head = app.head().await;
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/sales", sale("20.01", "0.00"))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "resident_required",
        Some("resident"),
    );
    assert_eq!(app.head().await, head);
    let card = app.card("H1").await;
    let mut proved = sale("20.01", "0.00");
    proved["resident"] = json!({ "card": card });
    let r = app.post_keyed(CASHIER_S1, "/v1/sales", proved).await;
    assert_eq!(r.0, StatusCode::CREATED, "{}", r.1);
    assert_eq!(r.1["wallet"]["total"], json!("69.99"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_resident_needed_above_the_policys_amount() {
    resident_needed_above_the_policys_amount(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_resident_needed_above_the_policys_amount() {
    if pg_support::available() {
        resident_needed_above_the_policys_amount(Backend::Postgres).await;
    }
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
    invented_methods_add_no_metrics(HttpConfig::default());
    small_leaks(HttpConfig::default());
    slow_connections_are_cut_off(tight_connections());
    the_openapi_document_describes_refusals(HttpConfig::default());
    expired_sessions_are_pruned(HttpConfig {
        resident_session: Duration::from_secs(1),
        ..HttpConfig::default()
    });
    resident_reads_are_rate_limited(HttpConfig {
        rates: RateConfig { resident_reads_per_household: 3, ..RateConfig::default() },
        ..HttpConfig::default()
    });
    a_new_card_ends_the_households_sessions(HttpConfig::default());
    voucher_voids_are_rate_limited(HttpConfig {
        rates: RateConfig { voucher_per_token: 3, ..RateConfig::default() },
        ..HttpConfig::default()
    });
}
