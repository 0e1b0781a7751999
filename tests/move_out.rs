//! Move-out, a change of a household's occupant (`POST /v1/households/{h}/move-out`), on every
//! backend: the cash-out variant (paid credit handed back, bonus forfeited to the fen, wallet at
//! zero, the cooperative's cash down by what was paid out), the transfer variant (balances
//! unchanged), both rotating the card's link and clearing the PIN so the leaving occupant's
//! card, session and PIN stop working; a move-out while fees are owed refused and changing
//! nothing, and accepted with `fees: carry` with the arrears still owed; replay; who may.

mod http_support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hongxin::http::HttpConfig;
use hongxin::money::Amount;
use http_support::*;

const MOVE_OUT: &str = "/v1/households/H1/move-out";

fn wallet(paid: &str, bonus: &str, total: &str) -> Value {
    json!({ "paid": paid, "bonus": bonus, "total": total })
}

/// One of COOP's account balances, read below the API.
async fn coop_balance(app: &TestApp, name: &str) -> Amount {
    app.app
        .store
        .balances()
        .await
        .expect("balances")
        .get(&format!("cooperative:COOP:{name}"))
        .copied()
        .unwrap_or(Amount::ZERO)
}

async fn sign_in(app: &TestApp, body: Value) -> Reply {
    app.request(
        Method::POST,
        None,
        "/v1/resident/sessions",
        Some(&body),
        None,
    )
    .await
}

/// What the leaving occupant holds: the card's link, a session signed in with it, a PIN.
struct Credentials {
    link: Value,
    session: String,
}

async fn leaving_occupant(app: &TestApp) -> Credentials {
    let (status, r, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "432187" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let link = app.get_ok(ADMIN, "/v1/households/H1/link").await;
    let (status, s, _) = sign_in(
        app,
        json!({ "household": "H1", "version": link["version"], "signature": link["signature"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let session = s["token"].as_str().expect("session token").to_string();
    app.get_ok(&session, "/v1/households/H1").await;
    Credentials { link, session }
}

/// The leaving occupant's card, session and PIN are all refused now; the new card works.
async fn assert_locked_out(app: &TestApp, old: &Credentials, link_version: &Value) {
    let reply = sign_in(
        app,
        json!({ "household": "H1", "version": old.link["version"], "signature": old.link["signature"] }),
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    let reply = app.get(&old.session, "/v1/households/H1").await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    let reply = sign_in(app, json!({ "household": "H1", "pin": "432187" })).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    let h = app.household("H1").await;
    assert_eq!(h["pin"]["set"], json!(false), "{h}");
    let link = app.get_ok(ADMIN, "/v1/households/H1/link").await;
    assert_eq!(&link["version"], link_version);
    assert_ne!(link["version"], old.link["version"]);
    let (status, s, _) = sign_in(
        app,
        json!({ "household": "H1", "version": link["version"], "signature": link["signature"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "the new card signs in: {s}");
}

/// The cooperative's accountant moves H1's occupant out and pays the wallet out.
async fn cash_out_variant(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    // 37.80 spent pro rata: 34.36 paid + 3.44 bonus; 65.64 + 6.56 left.
    app.sell_ok(
        CASHIER_S1,
        json!({ "household": "H1", "amount": "37.80", "tenders": [{ "type": "wallet", "amount": "37.80" }] }),
    )
    .await;
    assert_eq!(app.wallet("H1").await, wallet("65.64", "6.56", "72.20"));
    assert_eq!(
        coop_balance(app, "cash:cash").await,
        Amount::parse("100.00").unwrap()
    );
    assert_eq!(
        coop_balance(app, "promotion").await,
        Amount::parse("10.00").unwrap()
    );
    let old = leaving_occupant(app).await;
    assert_eq!(app.household("H1").await["name"], json!("王小明"));
    let head = app.head().await;

    let key = app.key();
    let body = json!({ "wallet": "cash_out", "new_occupant": "李四" });
    let (status, r, _) = app
        .post(ACCOUNTANT_COOP, MOVE_OUT, body.clone(), Some(&key))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["household"], json!("H1"));
    assert_eq!(r["wallet"], json!("cash_out"));
    assert_eq!(r["method"], json!("cash"));
    assert_eq!(
        (&r["refunded"], &r["forfeited"]),
        (&json!("65.64"), &json!("6.56"))
    );
    assert_eq!(r["wallets"].as_array().map(Vec::len), Some(1), "{r}");
    let w = &r["wallets"][0];
    assert_eq!(w["cooperative"], json!("COOP"));
    assert_eq!((&w["paid"], &w["bonus"]), (&json!("65.64"), &json!("6.56")));
    assert_eq!(
        (&w["refunded"], &w["forfeited"]),
        (&json!("65.64"), &json!("6.56"))
    );
    assert!(w["refund_entry"].as_i64().is_some(), "{r}");
    assert_eq!(
        (&r["fees"], &r["fee_balance"], &r["arrears"]),
        (&json!("settled"), &json!("0.00"), &json!("0.00"))
    );
    assert_eq!(r["occupant"], json!("李四"));
    assert_eq!(r["pin_cleared"], json!(true));
    assert_eq!(r["business_date"], json!(TODAY));
    // Two entries: the cash-out and the move-out's record.
    assert_eq!(app.head().await, head + 2);
    assert_eq!(r["entry"].as_i64(), Some(head + 2));

    // Balances: the wallet at zero, the cooperative's cash down by the paid part, the bonus
    // forfeited back to promotion.
    assert_eq!(app.wallet("H1").await, wallet("0.00", "0.00", "0.00"));
    assert_eq!(
        coop_balance(app, "cash:cash").await,
        Amount::parse("34.36").unwrap()
    );
    assert_eq!(
        coop_balance(app, "promotion").await,
        Amount::parse("3.44").unwrap()
    );
    assert_eq!(app.household("H1").await["name"], json!("李四"));
    let history = app.get_ok(ADMIN, "/v1/households/H1/history").await;
    assert_eq!(
        history["items"][0]["kind"],
        json!("credit_refund"),
        "{history}"
    );
    assert_locked_out(app, &old, &r["link_version"]).await;

    // The same request again is the same answer, nothing new posted; another body under the
    // same key is refused.
    let (status, again, headers) = app.post(ACCOUNTANT_COOP, MOVE_OUT, body, Some(&key)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, r);
    assert_eq!(
        headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert_eq!(app.head().await, head + 2);
    let reply = app
        .post(
            ACCOUNTANT_COOP,
            MOVE_OUT,
            json!({ "wallet": "cash_out", "new_occupant": "王五" }),
            Some(&key),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        None,
    );
    assert_eq!(app.household("H1").await["name"], json!("李四"));
    app.assert_verifies().await;
}

/// The company's office moves H1's occupant out; the wallet stays with the household.
async fn transfer_variant(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    app.top_up(CASHIER_T1, "H1", "50.00", "wallet").await;
    let old = leaving_occupant(app).await;
    let cash = coop_balance(app, "cash:cash").await;
    let head = app.head().await;

    let (status, r, _) = app
        .post_keyed(
            COMPANY_K01,
            MOVE_OUT,
            json!({ "wallet": "transfer", "new_occupant": "李四" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["wallet"], json!("transfer"));
    assert_eq!(
        (&r["refunded"], &r["forfeited"]),
        (&json!("0.00"), &json!("0.00"))
    );
    assert_eq!(
        r["wallets"],
        json!([
            { "cooperative": "COOP", "paid": "100.00", "bonus": "10.00", "refunded": "0.00", "forfeited": "0.00", "refund_entry": null },
            { "cooperative": "COOP2", "paid": "50.00", "bonus": "5.00", "refunded": "0.00", "forfeited": "0.00", "refund_entry": null },
        ])
    );
    // One entry, the record; no money moved.
    assert_eq!(app.head().await, head + 1);
    assert_eq!(app.wallet("H1").await, wallet("150.00", "15.00", "165.00"));
    assert_eq!(coop_balance(app, "cash:cash").await, cash);
    assert_eq!(app.household("H1").await["name"], json!("李四"));
    assert_locked_out(app, &old, &r["link_version"]).await;
    // The new occupant spends the credit handed on.
    app.sell_ok(
        CASHIER_S1,
        json!({ "household": "H1", "amount": "11.00", "tenders": [{ "type": "wallet", "amount": "11.00" }] }),
    )
    .await;
    assert_eq!(app.wallet("H1").await, wallet("140.00", "14.00", "154.00"));
    app.assert_verifies().await;
}

/// Fees owed refuse a move-out, which then changes nothing; `fees: carry` moves the occupant
/// out with the arrears still on the household.
async fn arrears(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "50.00", "wallet").await;
    let (status, b, _) = app
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let owed = app.household("H1").await["fees"]["arrears"].clone();
    // 87.35 m² × 0.55 = 48.0425 → 48.04.
    assert_eq!(owed, json!("48.04"));
    let old = leaving_occupant(app).await;
    let before = (
        app.household("H1").await,
        app.head().await,
        coop_balance(app, "cash:cash").await,
    );

    for (token, body) in [
        (
            COMPANY_K01,
            json!({ "wallet": "transfer", "new_occupant": "李四" }),
        ),
        (
            COMPANY_K01,
            json!({ "wallet": "transfer", "fees": "settled" }),
        ),
        (
            ACCOUNTANT_COOP,
            json!({ "wallet": "cash_out", "new_occupant": "李四" }),
        ),
    ] {
        let reply = app.post_keyed(token, MOVE_OUT, body).await;
        assert_problem(
            &reply,
            StatusCode::CONFLICT,
            "arrears_outstanding",
            Some("fees"),
        );
        assert!(
            reply.1["detail"]
                .as_str()
                .is_some_and(|d| d.contains("48.04")),
            "{}",
            reply.1
        );
        let after = (
            app.household("H1").await,
            app.head().await,
            coop_balance(app, "cash:cash").await,
        );
        assert_eq!(after, before, "a refused move-out changed something");
        assert_eq!(app.get_ok(ADMIN, "/v1/households/H1/link").await, old.link);
        app.get_ok(&old.session, "/v1/households/H1").await;
    }

    let (status, r, _) = app
        .post_keyed(
            COMPANY_K01,
            MOVE_OUT,
            json!({ "wallet": "transfer", "new_occupant": "李四", "fees": "carry" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (&r["fees"], &r["fee_balance"], &r["arrears"]),
        (&json!("carry"), &json!("48.04"), &json!("48.04"))
    );
    let h = app.household("H1").await;
    assert_eq!(
        h["fees"]["arrears"],
        json!("48.04"),
        "the arrears stay owed: {h}"
    );
    assert_eq!(h["wallet"], wallet("50.00", "5.00", "55.00"));
    assert_locked_out(app, &old, &r["link_version"]).await;
    app.assert_verifies().await;
}

/// Who may run which move-out.
async fn who_may(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "50.00", "wallet").await;
    let head = app.head().await;
    let transfer = json!({ "wallet": "transfer" });
    let cash_out = json!({ "wallet": "cash_out" });
    // Another company's household does not exist for an office.
    let reply = app
        .post_keyed(COMPANY_K02, MOVE_OUT, transfer.clone())
        .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("household"),
    );
    // A cash-out is the accountant's; a transfer the office's.
    let reply = app
        .post_keyed(COMPANY_K01, MOVE_OUT, cash_out.clone())
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", Some("wallet"));
    let reply = app
        .post_keyed(ACCOUNTANT_COOP, MOVE_OUT, transfer.clone())
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", Some("wallet"));
    for token in [CASHIER_S1, RESIDENT_H1] {
        let reply = app.post_keyed(token, MOVE_OUT, transfer.clone()).await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    // An accountant pays out its own cooperative's credit only.
    let reply = app
        .post_keyed(ACCOUNTANT_COOP2, MOVE_OUT, cash_out.clone())
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("wallet"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            MOVE_OUT,
            json!({ "wallet": "cash_out", "cooperative": "COOP2" }),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    // Bad input.
    let reply = app
        .post_keyed(
            COMPANY_K01,
            MOVE_OUT,
            json!({ "wallet": "transfer", "new_occupant": " " }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("new_occupant"),
    );
    let reply = app
        .post(COMPANY_K01, MOVE_OUT, transfer.clone(), None)
        .await;
    assert_eq!(
        reply.1["code"],
        json!("idempotency_key_required"),
        "{}",
        reply.1
    );
    let reply = app
        .post_keyed(
            COMPANY_K01,
            "/v1/households/NOPE/move-out",
            transfer.clone(),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("household"),
    );
    assert_eq!(app.head().await, head, "refusals posted nothing");
    assert_eq!(app.wallet("H1").await, wallet("50.00", "5.00", "55.00"));
    // An admin may do either.
    let (status, r, _) = app.post_keyed(ADMIN, MOVE_OUT, cash_out).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["refunded"], json!("50.00"));
    assert_eq!(r["occupant"], json!(null));
    assert_eq!(app.household("H1").await["name"], json!(null));
    app.assert_verifies().await;
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let app = super::TestApp::spawn_with(super::Backend::Sqlite, super::HttpConfig::default()).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if !super::pg_support::available() {
                        return;
                    }
                    let app = super::TestApp::spawn_with(super::Backend::Postgres, super::HttpConfig::default()).await;
                    super::$name(&app).await;
                    app.shutdown().await;
                }
            )*
        }
    };
}

on_every_backend!(cash_out_variant, transfer_variant, arrears, who_may);
