//! The web pages' server side without a browser, on both backends: sign-in by staff token,
//! pairing code and resident link/PIN; the session cookie's flags and expiry; CSRF on every
//! cookie-authenticated write (refused writes change nothing); sign-out; the pages and their
//! security headers. (tests/browser.rs drives the pages themselves in Chromium.)

mod http_support;

use std::time::Duration;

use http_support::pg_support;
use http_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hongxin::http::limits::RateConfig;
use hongxin::http::HttpConfig;

/// A browser's view of a session: the cookie it holds and the CSRF token its page was given.
struct Session {
    cookie: String,
    csrf: String,
    info: Value,
}

async fn cookie_request(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("Cookie", format!("hx_session={cookie}"))
        .header("Idempotency-Key", app.key());
    if let Some(c) = csrf {
        req = req.header("X-CSRF-Token", c);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    });
    (status, body, headers)
}

/// Signs in through `POST /web/session`; asserts 201 and the cookie's flags.
async fn sign_in(app: &TestApp, body: Value) -> Session {
    let (status, info, headers) = app
        .request(Method::POST, None, "/web/session", Some(&body), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let set_cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("Set-Cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(flag), "{flag} missing: {set_cookie}");
    }
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let cookie = set_cookie
        .strip_prefix("hx_session=")
        .and_then(|rest| rest.split(';').next())
        .expect("hx_session value")
        .to_string();
    let csrf = info["csrf"].as_str().expect("csrf").to_string();
    assert_eq!(csrf.len(), 32);
    Session { cookie, csrf, info }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> i64 {
    let c = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    c.split("Max-Age=")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.parse().ok())
        .expect("Max-Age")
}

async fn staff_sessions_need_csrf_for_writes(app: &TestApp) {
    let s = sign_in(app, json!({"token": CASHIER_S1})).await;
    assert_eq!(s.info["role"], json!("cashier"));
    assert_eq!(s.info["shop"], json!("S1"));
    assert_eq!(s.info["cooperative"], json!("COOP"));
    // A staff session lasts the configured 12 hours (give or take the test's own seconds).
    let (_, _, headers) = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({"token": CASHIER_S1})),
            None,
        )
        .await;
    let age = max_age(&headers);
    assert!((12 * 3600 - 60..=12 * 3600).contains(&age), "Max-Age {age}");

    // The session reads with the cookie alone, and tells the page its CSRF token again.
    let (status, me, _) =
        cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["csrf"], json!(s.csrf));
    let wallet_before = app.wallet("H1").await;
    let head_before = app.head().await;

    // A write with the cookie but without the CSRF token, or with a wrong one: 403, nothing
    // posted.
    let topup = json!({"household": "H1", "paid": "100.00", "method": "cash"});
    for csrf in [None, Some("0123456789abcdef0123456789abcdef"), Some("")] {
        let reply = cookie_request(
            app,
            Method::POST,
            "/v1/topups",
            &s.cookie,
            csrf,
            Some(topup.clone()),
        )
        .await;
        assert_problem(
            &reply,
            StatusCode::FORBIDDEN,
            "csrf_failed",
            Some("X-CSRF-Token"),
        );
    }
    assert_eq!(app.wallet("H1").await, wallet_before);
    assert_eq!(app.head().await, head_before);

    // With it: posted once, as the cashier of S1.
    let (status, receipt, _) = cookie_request(
        app,
        Method::POST,
        "/v1/topups",
        &s.cookie,
        Some(&s.csrf),
        Some(topup),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["credited"], json!("110.00"));
    assert_eq!(app.head().await, head_before + 1);

    // A bearer token needs no CSRF token, and the session answer has none for it.
    let me = app.get_ok(CASHIER_S1, "/web/session").await;
    assert_eq!(me["csrf"], Value::Null);
    assert_eq!(me["role"], json!("cashier"));
}

async fn sign_in_refusals_change_nothing(app: &TestApp) {
    let head = app.head().await;
    for (body, status, code, field) in [
        (
            json!({"token": "nope"}),
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            None,
        ),
        (
            json!({"token": REVOKED}),
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            None,
        ),
        // A resident's token is not a way into the staff pages.
        (
            json!({"token": RESIDENT_H1}),
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            None,
        ),
        (
            json!({"token": CASHIER_S1, "pairing_code": "12345678"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("body"),
        ),
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("body"),
        ),
        (
            json!({"token": CASHIER_S1, "remember": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("remember"),
        ),
        (
            json!({"pairing_code": "123"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("pairing_code"),
        ),
        (
            json!({"pairing_code": "0000-0000"}),
            StatusCode::UNAUTHORIZED,
            "sign_in_failed",
            None,
        ),
    ] {
        let reply = app
            .request(Method::POST, None, "/web/session", Some(&body), None)
            .await;
        assert_problem(&reply, status, code, field);
        assert!(
            reply.2.get("set-cookie").is_none(),
            "{body}: a cookie was set"
        );
    }
    assert_eq!(app.head().await, head, "a refused sign-in posted something");
    // No cookie, no session.
    let reply = app
        .request(Method::GET, None, "/web/session", None, None)
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

async fn sign_out_ends_the_session(app: &TestApp) {
    let s = sign_in(app, json!({"token": COMPANY_K01})).await;
    assert_eq!(s.info["company"], json!("K01"));
    // Signing out is a write: without the CSRF token it is refused and the session lives on.
    let reply = cookie_request(app, Method::DELETE, "/web/session", &s.cookie, None, None).await;
    assert_problem(
        &reply,
        StatusCode::FORBIDDEN,
        "csrf_failed",
        Some("X-CSRF-Token"),
    );
    let (status, _, _) =
        cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _, headers) = cookie_request(
        app,
        Method::DELETE,
        "/web/session",
        &s.cookie,
        Some(&s.csrf),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(max_age(&headers), 0, "the cookie is cleared");
    // The old cookie is dead on the server, whatever the browser keeps.
    let reply = cookie_request(
        app,
        Method::GET,
        "/v1/companies/K01/arrears",
        &s.cookie,
        None,
        None,
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    // The company's own long-lived token still works: only the session ended.
    app.get_ok(COMPANY_K01, "/v1/companies/K01/arrears").await;
}

async fn revoking_a_token_ends_its_sessions(app: &TestApp) {
    let (status, made, _) = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({"role": "company", "scope": "K01", "label": "office PC"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["token"].as_str().expect("token").to_string();
    let id = made["id"].as_i64().expect("id");
    let revoked = sign_in(app, json!({"token": secret})).await;
    let other = sign_in(app, json!({"token": COMPANY_K01})).await;
    for s in [&revoked, &other] {
        let (status, _, _) =
            cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, _) = app
        .post(ADMIN, &format!("/v1/tokens/{id}/revoke"), json!({}), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The session made from the revoked token ends with it; another token's session does not.
    let reply = cookie_request(
        app,
        Method::GET,
        "/web/session",
        &revoked.cookie,
        None,
        None,
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    let (status, _, _) =
        cookie_request(app, Method::GET, "/web/session", &other.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn staff_sessions_expire(app: &TestApp) {
    let s = sign_in(app, json!({"token": ACCOUNTANT_COOP})).await;
    let (status, _, _) =
        cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

async fn pairing_codes(app: &TestApp) {
    // Made by the shop's cooperative's accountant: eight digits, ten minutes.
    let (status, pairing, _) = app
        .post(
            ACCOUNTANT_COOP,
            "/web/pairings",
            json!({"shop": "S1"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pairing}");
    let code = pairing["code"].as_str().expect("code").to_string();
    assert_eq!(code.len(), 9);
    assert_eq!(code.chars().filter(char::is_ascii_digit).count(), 8);
    assert_eq!(pairing["shop"], json!("S1"));
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(pairing["expires_at"].clone()).expect("expires_at");
    let minutes = (expires - chrono::Utc::now()).num_seconds();
    assert!((540..=600).contains(&minutes), "expires in {minutes} s");

    // It signs a till in as a cashier of S1, typed with or without the dash...
    let s = sign_in(app, json!({"pairing_code": code.replace('-', "")})).await;
    assert_eq!(s.info["role"], json!("cashier"));
    assert_eq!(s.info["shop"], json!("S1"));
    let (status, sale, _) = cookie_request(
        app,
        Method::POST,
        "/v1/sales",
        &s.cookie,
        Some(&s.csrf),
        Some(json!({"amount": "2.50", "tenders": [{"type": "cash", "amount": "2.50"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    // ...once.
    let reply = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({"pairing_code": code})),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);

    // Another cooperative's accountant cannot pair a till of this one's shop; a cashier cannot
    // pair at all; an unknown shop is named.
    let reply = app
        .post(
            ACCOUNTANT_COOP2,
            "/web/pairings",
            json!({"shop": "S1"}),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("shop"));
    let reply = app
        .post(CASHIER_S1, "/web/pairings", json!({"shop": "S1"}), None)
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let (status, body, _) = app
        .post(ADMIN, "/web/pairings", json!({"shop": "NOPE"}), None)
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(body["field"], json!("shop"), "{body}");
    let (status, _, _) = app
        .post(ADMIN, "/web/pairings", json!({"shop": "T1"}), None)
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn resident_web_sessions(app: &TestApp) {
    let link = app.get_ok(ADMIN, "/v1/households/H1/link").await;
    let s = sign_in(
        app,
        json!({"household": "H1", "version": link["version"], "signature": link["signature"]}),
    )
    .await;
    assert_eq!(s.info["role"], json!("resident"));
    assert_eq!(s.info["household"], json!("H1"));
    // A resident's session lasts the resident's 30 minutes, not a staff shift.
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(s.info["expires_at"].clone()).expect("expires_at");
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!((29 * 60..=30 * 60).contains(&left), "{left} s");
    let (status, own, _) =
        cookie_request(app, Method::GET, "/v1/households/H1", &s.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(own["household"], json!("H1"));
    let (status, _, _) =
        cookie_request(app, Method::GET, "/v1/households/H3", &s.cookie, None, None).await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    // A forged signature is refused like the API's own resident sign-in.
    let reply = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({"household": "H1", "version": link["version"], "signature": "00".repeat(16)})),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
}

async fn pages_and_headers(app: &TestApp) {
    for path in ["/", "/till", "/resident", "/r/H1", "/office", "/coop"] {
        let r = app.client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(csp.starts_with("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        for (name, value) in [
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path}: {name}"
            );
        }
        assert!(content_type(&h).starts_with("text/html"), "{path}");
        let html = r.text().await.expect("html");
        assert!(html.contains("<html lang=\"zh-CN\">"), "{path}");
        assert!(!html.contains("{{v}}"), "{path}");
    }
    let r = app
        .client
        .get(app.url("/assets/common.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(content_type(r.headers()).starts_with("text/javascript"));
    let r = app
        .client
        .get(app.url("/assets/../Cargo.toml"))
        .send()
        .await
        .expect("GET");
    assert!(r.status().is_client_error());
    let r = app
        .client
        .get(app.url("/assets/secrets.toml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Asks for a pairing code for S1 as the cooperative's accountant.
async fn pairing_code(app: &TestApp) -> String {
    let (status, pairing, _) = app
        .post(
            ACCOUNTANT_COOP,
            "/web/pairings",
            json!({"shop": "S1"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{pairing}");
    pairing["code"].as_str().expect("code").to_string()
}

async fn pairing_codes_sign_in_only(app: &TestApp) {
    let code = pairing_code(app).await;
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let head = app.head().await;
    // Neither the old stored form nor the bare digits are a bearer token: no top-up is posted.
    for bearer in [format!("pair:{digits}"), digits.clone(), code.clone()] {
        let reply = app
            .post(
                &bearer,
                "/v1/topups",
                json!({"household": "H1", "paid": "50.00", "method": "cash", "deliver": "wallet"}),
                Some(&app.key()),
            )
            .await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    assert_eq!(app.head().await, head, "nothing was posted");
    // The code was not spent by those attempts: it signs a till in, once, and the till's
    // session lasts the staff session length (12 h), not the code's ten minutes.
    let s = sign_in(app, json!({"pairing_code": digits})).await;
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(s.info["expires_at"].clone()).expect("expires_at");
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!(
        (12 * 3600 - 60..=12 * 3600).contains(&left),
        "session ends in {left} s"
    );
    let reply = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({"pairing_code": code})),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    // The stored hash is keyed: it is not the SHA-256 of anything the code alone gives.
    let counted = |kind: &str| {
        app.state
            .metrics
            .auth_failures
            .get_or_create(&hongxin::http::metrics::KindLabels { kind: kind.into() })
            .get()
    };
    assert_eq!(counted("bearer"), 3);
    assert_eq!(counted("pairing"), 1);
}

async fn failed_authentication_is_rate_limited(app: &TestApp) {
    // Allowance of 5 failures a minute per address (the config below).
    for i in 0..5 {
        let reply = app.get(&format!("guess-{i}"), "/v1/households/H1").await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    // Now the address is refused whatever it sends, a good token included, with Retry-After.
    for token in ["guess-5", ADMIN] {
        let reply = app.get(token, "/v1/households/H1").await;
        assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
        let wait: u64 = reply
            .2
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=61).contains(&wait), "Retry-After {wait}");
    }
    // Sign-ins by staff token and pairing code share the address's allowance.
    let reply = app
        .request(
            Method::POST,
            None,
            "/web/session",
            Some(&json!({"token": ADMIN})),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    let metrics = &app.state.metrics;
    assert_eq!(
        metrics
            .auth_failures
            .get_or_create(&hongxin::http::metrics::KindLabels {
                kind: "bearer".into()
            })
            .get(),
        5
    );
    assert_eq!(metrics.auth_throttled.get(), 3);
    let text = metrics.render(0, 0, 0);
    assert!(
        text.contains("hongxin_auth_failures_total{kind=\"bearer\"} 5"),
        "{text}"
    );
    assert!(text.contains("hongxin_auth_throttled_total 3"), "{text}");
}

async fn revocation_reaches_every_descendant(app: &TestApp) {
    let (status, made, _) = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({"role": "company", "scope": "K01", "label": "office PC"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let root = made["token"].as_str().expect("token").to_string();
    let id = made["id"].as_i64().expect("id");
    // Three levels: the token, a session made from it, a session made from that session.
    let child = sign_in(app, json!({"token": root})).await;
    let grandchild = sign_in(app, json!({"token": child.cookie})).await;
    let great = sign_in(app, json!({"token": grandchild.cookie})).await;
    for s in [&child, &grandchild, &great] {
        let (status, _, _) =
            cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body, _) = app
        .post(ADMIN, &format!("/v1/tokens/{id}/revoke"), json!({}), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for s in [&child, &grandchild, &great] {
        let reply = cookie_request(app, Method::GET, "/web/session", &s.cookie, None, None).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    app.get_ok(COMPANY_K01, "/v1/companies/K01/arrears").await;
}

async fn accountants_see_and_end_paired_tills(app: &TestApp) {
    let till = sign_in(app, json!({"pairing_code": pairing_code(app).await})).await;
    let listed = app.get_ok(ACCOUNTANT_COOP, "/web/pairings").await;
    let tills = listed["tills"].as_array().expect("tills");
    assert_eq!(tills.len(), 1, "{listed}");
    assert_eq!(tills[0]["shop"], json!("S1"));
    assert_eq!(tills[0]["expires_at"], till.info["expires_at"]);
    let id = tills[0]["id"].as_i64().expect("id");
    // Another cooperative's accountant neither sees it nor ends it; a cashier cannot ask.
    let other = app.get_ok(ACCOUNTANT_COOP2, "/web/pairings").await;
    assert_eq!(other, json!({"tills": []}));
    let path = format!("/web/pairings/{id}/end");
    let reply = app.post(ACCOUNTANT_COOP2, &path, json!({}), None).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("id"));
    let reply = app.get(CASHIER_S1, "/web/pairings").await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let (status, _, _) =
        cookie_request(app, Method::GET, "/web/session", &till.cookie, None, None).await;
    assert_eq!(status, StatusCode::OK);
    // The till's own accountant ends it: signed out at once, and gone from the list.
    let (status, body, _) = app.post(ACCOUNTANT_COOP, &path, json!({}), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let reply = cookie_request(app, Method::GET, "/web/session", &till.cookie, None, None).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    assert_eq!(
        app.get_ok(ACCOUNTANT_COOP, "/web/pairings").await,
        json!({"tills": []})
    );
    let reply = app.post(ACCOUNTANT_COOP, &path, json!({}), None).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("id"));
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
    staff_sessions_need_csrf_for_writes(HttpConfig::default());
    sign_in_refusals_change_nothing(HttpConfig::default());
    sign_out_ends_the_session(HttpConfig::default());
    revoking_a_token_ends_its_sessions(HttpConfig::default());
    staff_sessions_expire(HttpConfig { staff_session: Duration::from_secs(2), ..HttpConfig::default() });
    pairing_codes(HttpConfig::default());
    resident_web_sessions(HttpConfig::default());
    pages_and_headers(HttpConfig::default());
    pairing_codes_sign_in_only(HttpConfig::default());
    failed_authentication_is_rate_limited(HttpConfig {
        rates: RateConfig { failed_auth_per_address: 5, ..RateConfig::default() },
        ..HttpConfig::default()
    });
    revocation_reaches_every_descendant(HttpConfig::default());
    accountants_see_and_end_paired_tills(HttpConfig::default());
}
