//! The HTTP API v1 end to end (SPEC §3, §6, §8, §9): the real server on port 0, a real client.
//! Each test body is a function of a [`TestApp`], run once per store backend by
//! `on_every_backend!` at the bottom, so the suite can run unchanged against PostgreSQL.

mod http_support;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hongxin::http::limits::RateConfig;
use hongxin::http::HttpConfig;
use hongxin::money::Amount;
use http_support::*;

fn amount(v: &Value) -> Amount {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("amount must be a string, got {v}"));
    Amount::parse(s).unwrap_or_else(|e| panic!("bad amount {s:?}: {e}"))
}

fn id(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("expected an id, got {v}"))
}

fn wallet(paid: &str, bonus: &str, total: &str) -> Value {
    json!({ "paid": paid, "bonus": bonus, "total": total })
}

fn is_replayed(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
        == Some("true")
}

/// A voucher code with its check character changed: a typo.
fn with_bad_check(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let last = chars.last_mut().expect("a non-empty code");
    *last = if *last == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Every endpoint's success path
// ---------------------------------------------------------------------------------------------

async fn topups(app: &TestApp) {
    let r = app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    assert_eq!(r["household"], json!("H1"));
    assert_eq!(r["paid"], json!("100.00"));
    assert_eq!(r["bonus"], json!("10.00"));
    assert_eq!(r["credited"], json!("110.00"));
    assert_eq!(r["method"], json!("cash"));
    assert_eq!(r["wallet"], wallet("100.00", "10.00", "110.00"));
    assert_eq!(r["voucher"], Value::Null);
    assert_eq!(r["policy"], json!(POLICY_V1));
    assert_eq!(r["business_date"], json!(TODAY));
    assert!(id(&r["entry"]) > 0);

    // "50" (no decimals) is accepted and credited 55.00 on top of what is there.
    let r = app.top_up(CASHIER_S2, "H1", "50", "wallet").await;
    assert_eq!(
        (r["paid"].clone(), r["bonus"].clone()),
        (json!("50.00"), json!("5.00"))
    );
    assert_eq!(r["wallet"], wallet("150.00", "15.00", "165.00"));

    // As a bearer voucher: the wallet is untouched.
    let r = app.top_up(CASHIER_S1, "H1", "100.00", "voucher").await;
    assert_eq!(r["credited"], json!("110.00"));
    assert_eq!(r["wallet"], wallet("150.00", "15.00", "165.00"));
    let code = r["voucher"]["code"]
        .as_str()
        .expect("voucher code")
        .to_string();
    assert_eq!(r["voucher"]["balance"], json!("110.00"));
    assert_eq!(r["voucher"]["expires_on"], json!("2029-11-16"));
    assert!(code.split('-').count() >= 4, "a grouped code: {code}");

    let h = app.household("H1").await;
    assert_eq!(h["wallet"], wallet("150.00", "15.00", "165.00"));
    assert_eq!(h["vouchers"].as_array().map(Vec::len), Some(1));
    assert_eq!(h["vouchers"][0]["code"], json!(code));
    assert_eq!(h["vouchers"][0]["balance"], json!("110.00"));
    assert_eq!(h["vouchers"][0]["status"], json!("active"));
    app.assert_verifies().await;
}

async fn sales_and_refunds(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let code = app.voucher("H2", "100.00").await;

    // By amount, all from the wallet: 22.00 drawn 100:10 from paid and bonus.
    let s1 = app
        .sell_ok(
            CASHIER_S1,
            json!({ "household": "H1", "amount": "22.00", "tenders": [{ "type": "wallet", "amount": "22.00" }] }),
        )
        .await;
    assert_eq!(s1["total"], json!("22.00"));
    assert_eq!(s1["cost"], json!("15.40"), "costed at the default 70%");
    assert_eq!(
        s1["tenders"][0],
        json!({ "type": "wallet", "amount": "22.00", "paid": "20.00", "bonus": "2.00" })
    );
    assert_eq!(s1["wallet"], wallet("80.00", "8.00", "88.00"));
    let sale1 = id(&s1["sale"]);

    // By catalogue lines, split over wallet, voucher and cash: 37.80 + 2 × 1.25 = 40.30.
    let s2 = app
        .sell_ok(
            CASHIER_S1,
            json!({
                "household": "H1",
                "lines": [{ "sku": "RICE", "qty": "1" }, { "sku": "APPLE", "qty": "2" }],
                "tenders": [
                    { "type": "wallet", "amount": "11.00" },
                    { "type": "voucher", "amount": "22.00", "code": code },
                    { "type": "cash", "amount": "7.30" }
                ]
            }),
        )
        .await;
    assert_eq!(s2["total"], json!("40.30"));
    assert_eq!(s2["cost"], json!("31.60"));
    assert_eq!(
        s2["tenders"][0],
        json!({ "type": "wallet", "amount": "11.00", "paid": "10.00", "bonus": "1.00" })
    );
    assert_eq!(
        s2["tenders"][1],
        json!({ "type": "voucher", "amount": "22.00", "paid": "20.00", "bonus": "2.00", "voucher_balance": "88.00" })
    );
    assert_eq!(
        s2["tenders"][2],
        json!({ "type": "cash", "amount": "7.30" })
    );
    assert_eq!(s2["wallet"], wallet("70.00", "7.00", "77.00"));
    let sale2 = id(&s2["sale"]);
    assert_ne!(sale1, sale2);

    // Refund half: each tender gets its share (11:22:7.30), each credit tender its paid/bonus split.
    let (status, r1, _) = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/sales/{sale2}/refunds"),
            json!({ "amount": "20.15" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r1}");
    assert_eq!(r1["sale"], json!(sale2));
    assert_eq!(r1["amount"], json!("20.15"));
    assert_eq!(r1["remaining"], json!("20.15"));
    let half = json!([
        { "type": "wallet", "amount": "5.50", "paid": "5.00", "bonus": "0.50" },
        { "type": "voucher", "amount": "11.00", "paid": "10.00", "bonus": "1.00" },
        { "type": "cash", "amount": "3.65" }
    ]);
    assert_eq!(r1["tenders"], half);
    assert_eq!(app.wallet("H1").await, wallet("75.00", "7.50", "82.50"));

    // The rest, with no body at all: the whole remainder.
    let key = app.key();
    let (status, r2, _) = app
        .request(
            Method::POST,
            Some(CASHIER_S1),
            &format!("/v1/sales/{sale2}/refunds"),
            None,
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r2}");
    assert_eq!(r2["amount"], json!("20.15"));
    assert_eq!(r2["remaining"], json!("0.00"));
    assert_eq!(r2["tenders"], half);
    assert_eq!(app.wallet("H1").await, wallet("80.00", "8.00", "88.00"));
    let v = app
        .get_ok(CASHIER_S1, &format!("/v1/vouchers/{code}"))
        .await;
    assert_eq!(
        (v["balance"].clone(), v["paid"].clone(), v["bonus"].clone()),
        (json!("110.00"), json!("100.00"), json!("10.00"))
    );

    // Nothing left to refund.
    let reply = app
        .post_keyed(CASHIER_S1, &format!("/v1/sales/{sale2}/refunds"), json!({}))
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_refundable", None);
    let reply = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/sales/{sale1}/refunds"),
            json!({ "amount": "22.01" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );

    // 2.00 of the first sale: the largest remainder gives the odd fen to the paid part.
    let (status, r3, _) = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/sales/{sale1}/refunds"),
            json!({ "amount": "2.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r3}");
    assert_eq!(
        r3["tenders"],
        json!([{ "type": "wallet", "amount": "2.00", "paid": "1.82", "bonus": "0.18" }])
    );
    assert_eq!(r3["remaining"], json!("20.00"));
    assert_eq!(app.wallet("H1").await, wallet("81.82", "8.18", "90.00"));

    // Cash and voucher sales need no household.
    let s = app
        .sell_ok(
            CASHIER_S2,
            json!({ "amount": "5.00", "tenders": [{ "type": "wechat", "amount": "5.00" }] }),
        )
        .await;
    assert_eq!(s["wallet"], Value::Null);
    let s = app
        .sell_ok(
            CASHIER_S2,
            json!({ "amount": "10.00", "tenders": [{ "type": "voucher", "amount": "10.00", "code": code.to_lowercase() }] }),
        )
        .await;
    assert_eq!(s["tenders"][0]["voucher_balance"], json!("100.00"));
    app.assert_verifies().await;
}

async fn vouchers(app: &TestApp) {
    let code = app.voucher("H1", "100.00").await;
    let v = app
        .get_ok(CASHIER_S1, &format!("/v1/vouchers/{code}"))
        .await;
    assert_eq!(v["status"], json!("active"));
    assert_eq!(v["balance"], json!("110.00"));
    assert_eq!(v["paid"], json!("100.00"));
    assert_eq!(v["bonus"], json!("10.00"));
    assert_eq!(v["expires_on"], json!("2029-11-16"));
    // Case and hyphens do not matter.
    let typed = code.replace('-', "").to_lowercase();
    assert_eq!(
        app.get_ok(CASHIER_S2, &format!("/v1/vouchers/{typed}"))
            .await["balance"],
        json!("110.00")
    );
    // A mistyped check character is told apart from an invalid code.
    let reply = app
        .get(
            CASHIER_S1,
            &format!("/v1/vouchers/{}", with_bad_check(&code)),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "voucher_typo",
        Some("code"),
    );

    let (status, svg, headers) = app
        .get(CASHIER_S1, &format!("/v1/vouchers/{code}/qr.svg"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type(&headers), "image/svg+xml");
    assert!(svg.as_str().is_some_and(|s| s.contains("<svg")), "{svg}");

    // Spend 22.00, then void: the rest of the paid part back, the rest of the bonus forfeited.
    app.sell_ok(
        CASHIER_S1,
        json!({ "amount": "22.00", "tenders": [{ "type": "voucher", "amount": "22.00", "code": code }] }),
    )
    .await;
    let (status, void, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            &format!("/v1/vouchers/{code}/void"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{void}");
    assert_eq!(void["refunded"], json!("80.00"));
    assert_eq!(void["forfeited"], json!("8.00"));
    assert_eq!(void["method"], json!("cash"));
    assert!(id(&void["entry"]) > 0);

    // From now on the code is invalid everywhere, with the one uniform answer.
    let reply = app.get(CASHIER_S1, &format!("/v1/vouchers/{code}")).await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "voucher_invalid",
        Some("code"),
    );
    let reply = app
        .sell(CASHIER_S1, json!({ "amount": "1.00", "tenders": [{ "type": "voucher", "amount": "1.00", "code": code }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "voucher_invalid",
        Some("tenders[0].code"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            &format!("/v1/vouchers/{code}/void"),
            json!({}),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "voucher_invalid",
        Some("code"),
    );
    let h = app.household("H1").await;
    assert_eq!(h["vouchers"][0]["status"], json!("void"));
    assert_eq!(h["vouchers"][0]["balance"], json!("0.00"));

    // An admin voids in the voucher's own cooperative.
    let other = app.voucher("H2", "50").await;
    let (status, void, _) = app
        .post_keyed(
            ADMIN,
            &format!("/v1/vouchers/{other}/void"),
            json!({ "method": "wechat" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{void}");
    assert_eq!(
        (void["refunded"].clone(), void["forfeited"].clone()),
        (json!("50.00"), json!("5.00"))
    );
    assert_eq!(void["method"], json!("wechat"));
    app.assert_verifies().await;
}

async fn household_and_history(app: &TestApp) {
    let mut entries = Vec::new();
    entries.push(id(
        &app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await["entry"]
    ));
    let t2 = app.top_up(CASHIER_S1, "H1", "50.00", "voucher").await;
    entries.push(id(&t2["entry"]));
    let code = t2["voucher"]["code"].as_str().expect("code").to_string();
    // Someone else's entry must not appear in H1's history.
    app.top_up(CASHIER_S1, "H2", "50.00", "wallet").await;
    let s = app
        .sell_ok(CASHIER_S1, json!({ "household": "H1", "amount": "11.00", "tenders": [{ "type": "wallet", "amount": "11.00" }] }))
        .await;
    entries.push(id(&s["entry"]));
    let s = app
        .sell_ok(CASHIER_S1, json!({ "amount": "5.00", "tenders": [{ "type": "voucher", "amount": "5.00", "code": code }] }))
        .await;
    entries.push(id(&s["entry"]));
    entries.push(id(
        &app.top_up(CASHIER_S2, "H1", "50.00", "wallet").await["entry"]
    ));

    let h = app.household("H1").await;
    assert_eq!(h["household"], json!("H1"));
    assert_eq!(h["compound"], json!("HX01"));
    assert_eq!(h["company"], json!("K01"));
    assert_eq!(h["eligible"], json!(true));
    assert_eq!(h["area_m2"], json!("87.35"));
    assert_eq!(h["name"], json!("王小明"));
    assert_eq!(h["wallet"], wallet("140.00", "14.00", "154.00"));
    assert_eq!(
        h["wallets"],
        json!([{ "cooperative": "COOP", "paid": "140.00", "bonus": "14.00", "total": "154.00" }])
    );
    let vs = h["vouchers"].as_array().expect("vouchers");
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["code"], json!(code));
    assert_eq!(vs[0]["balance"], json!("50.00"));
    assert_eq!(vs[0]["issued_on"], json!(TODAY));
    assert_eq!(
        h["fees"],
        json!({
            "balance": "0.00", "arrears": "0.00", "prepaid": "0.00",
            "arrears_by_age": { "0-30": "0.00", "31-90": "0.00", "91-180": "0.00", "over-180": "0.00" }
        })
    );

    // Newest first, each entry once.
    let all = app
        .get_ok(ADMIN, "/v1/households/H1/history?limit=100")
        .await;
    let items = all["items"].as_array().expect("items");
    let ids: Vec<i64> = items.iter().map(|i| id(&i["entry"])).collect();
    let mut expected = entries.clone();
    expected.reverse();
    assert_eq!(ids, expected);
    assert_eq!(all["next_before"], Value::Null);
    assert_eq!(items[4]["kind"], json!("top_up"), "{}", items[4]);
    assert_eq!(items[4]["business_date"], json!(TODAY));
    let credited: i64 = items[4]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| amount(&c["amount"]).fen())
        .sum();
    assert_eq!(
        credited, 11_000,
        "the first top-up credits 110.00: {}",
        items[4]
    );
    let spent: i64 = items[2]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| amount(&c["amount"]).fen())
        .sum();
    assert_eq!(spent, -1_100, "the wallet sale takes 11.00: {}", items[2]);
    let voucher_spent: i64 = items[1]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| amount(&c["amount"]).fen())
        .sum();
    assert_eq!(
        voucher_spent, -500,
        "the voucher sale takes 5.00 off H1's voucher: {}",
        items[1]
    );

    // Pages of 2 cover every entry exactly once, in the same order.
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    for _ in 0..10 {
        let path = match before {
            Some(b) => format!("/v1/households/H1/history?limit=2&before={b}"),
            None => "/v1/households/H1/history?limit=2".to_string(),
        };
        let page = app.get_ok(RESIDENT_H1, &path).await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        paged.extend(items.iter().map(|i| id(&i["entry"])));
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(paged, ids);

    for bad in ["limit=0", "limit=101"] {
        let reply = app
            .get(ADMIN, &format!("/v1/households/H1/history?{bad}"))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("limit"),
        );
    }
    let reply = app.get(ADMIN, "/v1/households/H1/history?limit=two").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("query"),
    );
    let reply = app.get(ADMIN, "/v1/households/NOPE").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
}

async fn credit_refunds(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    app.sell_ok(CASHIER_S1, json!({ "household": "H1", "amount": "22.00", "tenders": [{ "type": "wallet", "amount": "22.00" }] }))
        .await;
    let (status, r, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["refunded"], json!("80.00"));
    assert_eq!(r["forfeited"], json!("8.00"));
    assert_eq!(r["method"], json!("cash"));
    assert_eq!(app.wallet("H1").await, wallet("0.00", "0.00", "0.00"));
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({}),
        )
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_refundable", None);

    // Part of the paid credit: the bonus goes in proportion, the rest stays in the wallet.
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let (status, r, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({ "amount": "40.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (&r["refunded"], &r["forfeited"]),
        (&json!("40.00"), &json!("4.00"))
    );
    assert_eq!(r["left"], wallet("60.00", "6.00", "66.00"));
    assert_eq!(app.wallet("H1").await, wallet("60.00", "6.00", "66.00"));
    // The accountant sees the wallet it pays out (its own cooperative's credit).
    let (status, seen, _) = app.get(ACCOUNTANT_COOP, "/v1/households/H1").await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["wallet"], wallet("60.00", "6.00", "66.00"));
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({ "amount": "60.01" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
        Some("amount"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({ "amount": "12.345" }),
        )
        .await;
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);
    assert_eq!(app.wallet("H1").await, wallet("60.00", "6.00", "66.00"));

    // An admin names the cooperative; the method may be given.
    app.top_up(CASHIER_S1, "H2", "50.00", "wallet").await;
    let (status, r, _) = app
        .post_keyed(
            ADMIN,
            "/v1/households/H2/credit-refunds",
            json!({ "cooperative": "COOP", "method": "alipay" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["refunded"].clone(),
            r["forfeited"].clone(),
            r["method"].clone()
        ),
        (json!("50.00"), json!("5.00"), json!("alipay"))
    );
    let reply = app
        .post_keyed(ADMIN, "/v1/households/H2/credit-refunds", json!({}))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("cooperative"),
    );
    app.assert_verifies().await;
}

/// `POST /v1/topups/{entry}/void`: the till of the shop voids its top-up, the books go back,
/// a retry with the same key replays, a second void is refused naming `topup`, a top-up whose
/// wallet was drawn on is refused, another shop's till sees no such top-up, the accountant
/// voids a voucher top-up and its code is dead.
async fn topup_voids(app: &TestApp) {
    let r = app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let entry = id(&r["entry"]);
    let path = format!("/v1/topups/{entry}/void");
    // Another shop's till: as unknown.
    let reply = app.post_keyed(CASHIER_S2, &path, json!({})).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("topup"));
    let (status, v, _) = app
        .post(
            CASHIER_S1,
            &path,
            json!({ "memo": "wrong household" }),
            Some("void-1"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(id(&v["topup"]), entry);
    assert_eq!(v["household"], json!("H1"));
    assert_eq!(
        (&v["paid"], &v["bonus"]),
        (&json!("100.00"), &json!("10.00"))
    );
    assert_eq!(v["method"], json!("cash"));
    assert_eq!(v["wallet"], wallet("0.00", "0.00", "0.00"));
    assert_eq!(app.wallet("H1").await, wallet("0.00", "0.00", "0.00"));
    // The same key replays the receipt; another key is refused, naming the field.
    let (status, again, headers) = app
        .post(
            CASHIER_S1,
            &path,
            json!({ "memo": "wrong household" }),
            Some("void-1"),
        )
        .await;
    assert_eq!((status, &again), (StatusCode::CREATED, &v));
    assert!(is_replayed(&headers));
    let reply = app.post_keyed(CASHIER_S1, &path, json!({})).await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_voidable", Some("topup"));

    // Credit drawn after the top-up: refused, the wallet untouched.
    let r = app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    app.sell_ok(CASHIER_S1, json!({ "household": "H1", "amount": "22.00", "tenders": [{ "type": "wallet", "amount": "22.00" }] }))
        .await;
    let reply = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/topups/{}/void", id(&r["entry"])),
            json!({}),
        )
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_voidable", Some("topup"));
    assert!(
        reply.1["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("refund"),
        "{}",
        reply.1
    );
    assert_eq!(app.wallet("H1").await, wallet("80.00", "8.00", "88.00"));

    // The accountant voids a voucher top-up; the code is dead at the till.
    let r = app.top_up(CASHIER_S1, "H2", "50.00", "voucher").await;
    let code = r["voucher"]["code"].as_str().expect("code").to_string();
    let (status, v, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            &format!("/v1/topups/{}/void", id(&r["entry"])),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v.get("wallet"), None);
    let (status, _, _) = app.get(CASHIER_S1, &format!("/v1/vouchers/{code}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Another cooperative's accountant, a resident-less unknown id, a bad path.
    let r = app.top_up(CASHIER_S1, "H2", "50.00", "wallet").await;
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP2,
            &format!("/v1/topups/{}/void", id(&r["entry"])),
            json!({}),
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("topup"));
    let reply = app
        .post_keyed(ADMIN, "/v1/topups/999999/void", json!({}))
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("topup"));
    let reply = app
        .post_keyed(ADMIN, "/v1/topups/abc/void", json!({}))
        .await;
    assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{}", reply.1);
    app.assert_verifies().await;
}

/// `GET /v1/till/topups`: the top-ups a shop's till took today, newest first, with their
/// numbers and a voided flag that follows a void; another shop's cashier sees none of them and
/// may not ask for them; no voucher code in the list.
async fn till_topups(app: &TestApp) {
    let list = |token: &'static str, query: &'static str| async move {
        let (status, body, _) = app.get(token, &format!("/v1/till/topups{query}")).await;
        (status, body)
    };
    let (status, empty) = list(CASHIER_S1, "").await;
    assert_eq!(
        (status, empty),
        (
            StatusCode::OK,
            json!({ "shop": "S1", "date": TODAY, "topups": [] })
        )
    );
    let w = app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let v = app.top_up(CASHIER_S1, "H2", "50.00", "voucher").await;
    let other = app.top_up(CASHIER_S2, "H1", "50.00", "wallet").await;
    let row = |r: &Value, household: &str, deliver: &str, paid: &str, bonus: &str| {
        json!({
            "topup": r["entry"], "household": household, "deliver": deliver, "method": "cash",
            "paid": paid, "bonus": bonus, "voided": false, "void_entry": null,
        })
    };
    let strip = |body: &Value| -> Vec<Value> {
        body["topups"]
            .as_array()
            .expect("topups")
            .iter()
            .map(|t| {
                let mut t = t.clone();
                let at = t.as_object_mut().unwrap().remove("at").expect("at");
                assert!(
                    chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).is_ok(),
                    "{at}"
                );
                t
            })
            .collect()
    };
    let (status, s1) = list(CASHIER_S1, "").await;
    assert_eq!(status, StatusCode::OK, "{s1}");
    assert_eq!(
        strip(&s1),
        [
            row(&v, "H2", "voucher", "50.00", "5.00"),
            row(&w, "H1", "wallet", "100.00", "10.00")
        ]
    );
    let code = v["voucher"]["code"].as_str().expect("code");
    assert!(
        !s1.to_string().contains(code),
        "no voucher code in the list: {s1}"
    );

    // Voided at the till: the row says so, with the void's entry.
    let (status, void, _) = app
        .post_keyed(
            CASHIER_S1,
            &format!("/v1/topups/{}/void", id(&w["entry"])),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{void}");
    let (_, s1) = list(CASHIER_S1, "").await;
    let mut voided = row(&w, "H1", "wallet", "100.00", "10.00");
    voided["voided"] = json!(true);
    voided["void_entry"] = void["entry"].clone();
    assert!(void["entry"].is_i64(), "{void}");
    assert_eq!(
        strip(&s1),
        [row(&v, "H2", "voucher", "50.00", "5.00"), voided]
    );
    // An admin names the shop and reads the same.
    let (status, admin) = list(ADMIN, "?shop=S1").await;
    assert_eq!((status, strip(&admin)), (StatusCode::OK, strip(&s1)));

    // Another shop's cashier: its own till's only, never S1's.
    let (status, s2) = list(CASHIER_S2, "").await;
    assert_eq!(status, StatusCode::OK, "{s2}");
    assert_eq!(s2["shop"], json!("S2"));
    let s2_rows = strip(&s2);
    assert_eq!(s2_rows.len(), 1, "{s2}");
    assert_eq!(s2_rows[0]["topup"], other["entry"]);
    let (status, _) = list(CASHIER_S2, "?shop=S1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another day: none; the accountant and a resident are not the till; an admin names a shop.
    let (status, before) = list(CASHIER_S1, "?date=2026-11-15").await;
    assert_eq!((status, &before["topups"]), (StatusCode::OK, &json!([])));
    assert_eq!(list(ACCOUNTANT_COOP, "").await.0, StatusCode::FORBIDDEN);
    assert_eq!(list(ADMIN, "").await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(list(ADMIN, "?shop=NOPE").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        list(CASHIER_S1, "?date=yesterday").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn back_office(app: &TestApp) {
    let before = app.head().await;
    let (status, e, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "300.00", "date": "2026-11-01", "memo": "十一月房租" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{e}");
    assert_eq!(e["amount"], json!("300.00"));
    let expense = id(&e["entry"]);

    let (status, s, _) = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/stock-receipts",
            json!({ "amount": "500.00", "supplier": "本地农场", "method": "bank" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["amount"], json!("500.00"));
    assert!(id(&s["entry"]) > expense);

    let (status, r, _) = app
        .post_keyed(
            ADMIN,
            &format!("/v1/entries/{expense}/reversal"),
            json!({ "memo": "entered twice" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["amount"], json!("300.00"));
    assert_eq!(app.head().await, before + 3);

    let reply = app
        .post_keyed(
            ADMIN,
            &format!("/v1/entries/{expense}/reversal"),
            json!({ "memo": "again" }),
        )
        .await;
    assert_problem(&reply, StatusCode::CONFLICT, "not_refundable", None);
    let topup = id(&app.top_up(CASHIER_S1, "H1", "50", "wallet").await["entry"]);
    let reply = app
        .post_keyed(
            ADMIN,
            &format!("/v1/entries/{topup}/reversal"),
            json!({ "memo": "no" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("entry"),
    );
    let reply = app
        .post_keyed(
            ADMIN,
            "/v1/entries/999999/reversal",
            json!({ "memo": "no" }),
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("entry"));

    // Refusals of the back office's own rules.
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "1.00", "date": "2026-12-01" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("date"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "Rent!", "amount": "1.00", "date": "2026-11-01" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("category"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "0", "date": "2026-11-01" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "1.00", "date": "2026-11-31" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("date"),
    );
    assert_eq!(app.head().await, before + 4);
    app.assert_verifies().await;
}

async fn master_data(app: &TestApp) {
    let cases = [
        ("/v1/companies", json!({ "code": "K03", "name": "新物业" })),
        (
            "/v1/compounds",
            json!({ "code": "HX21", "name": "新小区", "company": "K03", "eligible": true }),
        ),
        (
            "/v1/cooperatives",
            json!({ "code": "COOP3", "name": "第三合作社" }),
        ),
        (
            "/v1/shops",
            json!({ "code": "S9", "name": "九号店", "cooperative": "COOP3" }),
        ),
        (
            "/v1/households",
            json!({ "code": "H21", "compound": "HX21", "area_m2": "66.6", "name": "李四" }),
        ),
    ];
    for (path, body) in &cases {
        let (status, r, _) = app.post(ADMIN, path, body.clone(), None).await;
        assert_eq!(status, StatusCode::CREATED, "POST {path}: {r}");
        assert_eq!(r["code"], body["code"], "POST {path}");
        assert!(id(&r["id"]) > 0);
        let reply = app.post(ADMIN, path, body.clone(), None).await;
        assert_problem(&reply, StatusCode::CONFLICT, "already_exists", Some("code"));
    }
    let reply = app
        .post(
            ADMIN,
            "/v1/compounds",
            json!({ "code": "HX22", "name": "x", "company": "K99", "eligible": true }),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("company"));
    let reply = app
        .post(
            ADMIN,
            "/v1/households",
            json!({ "code": "H22", "compound": "HX21", "area_m2": "66.666" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("area_m2"),
    );

    let (status, r, _) = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/catalog",
            json!({ "sku": "PEACH", "name": "桃", "unit": "斤", "price": "3.00", "cost": "2.00" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let reply = app
        .post(
            ADMIN,
            "/v1/catalog",
            json!({ "sku": "PLUM", "name": "李", "unit": "斤", "price": "3.00", "cost": "2.00" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("cooperative"),
    );

    // The new master data is usable: the household as a company's, the item at the till.
    let h = app.household("H21").await;
    assert_eq!(
        (
            h["compound"].clone(),
            h["company"].clone(),
            h["area_m2"].clone()
        ),
        (json!("HX21"), json!("K03"), json!("66.60"))
    );
    let s = app
        .sell_ok(
            CASHIER_S1,
            json!({ "lines": [{ "sku": "PEACH", "qty": "1.5" }], "tenders": [{ "type": "cash", "amount": "4.50" }] }),
        )
        .await;
    assert_eq!(
        (s["total"].clone(), s["cost"].clone()),
        (json!("4.50"), json!("3.00"))
    );
    let (status, t, _) = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({ "role": "cashier", "scope": "S9" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let till = t["token"].as_str().expect("token");
    let r = app.top_up(till, "H21", "50", "wallet").await;
    assert_eq!(r["wallet"], wallet("50.00", "5.00", "55.00"));
}

async fn tokens(app: &TestApp) {
    let (status, t, _) = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({ "role": "cashier", "scope": "S2", "label": "till 2" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["role"], json!("cashier"));
    let token = t["token"].as_str().expect("token").to_string();
    assert!(token.len() >= 40, "a long random token: {token}");
    let token_id = id(&t["id"]);
    let r = app.top_up(&token, "H3", "50", "wallet").await;
    assert_eq!(r["wallet"], wallet("50.00", "5.00", "55.00"));

    let (status, r, _) = app
        .post(
            ADMIN,
            &format!("/v1/tokens/{token_id}/revoke"),
            json!({}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["id"], json!(token_id));
    let reply = app
        .post_keyed(
            &token,
            "/v1/topups",
            json!({ "household": "H3", "paid": "50", "method": "cash" }),
        )
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
    assert_eq!(
        reply
            .2
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let reply = app
        .post(
            ADMIN,
            &format!("/v1/tokens/{token_id}/revoke"),
            json!({}),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("id"));
    let reply = app
        .post(ADMIN, "/v1/tokens/abc/revoke", json!({}), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "bad_path_parameter",
        Some("id"),
    );

    // A token is bound to what its role needs.
    let reply = app
        .post(ADMIN, "/v1/tokens", json!({ "role": "resident" }), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("household"),
    );
    let reply = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({ "role": "company", "scope": "K99" }),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("company"));
    let reply = app
        .post(ADMIN, "/v1/tokens", json!({ "role": "root" }), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("role"),
    );
    let (status, t, _) = app
        .post(
            ADMIN,
            "/v1/tokens",
            json!({ "role": "company", "scope": "K02" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let company = t["token"].as_str().expect("token");
    app.get_ok(company, "/v1/households/H3").await;
}

async fn operations(app: &TestApp) {
    // Anyone may ask whether the server is up; it tells them nothing about the journal.
    let (status, h, _) = app.request(Method::GET, None, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h, json!({ "status": "ok" }));
    // The seeded master data is in the chain already (entries without postings).
    let seeded = app.head().await;
    assert!(seeded > 0, "{h}");
    app.top_up(CASHIER_S1, "H1", "50", "wallet").await;
    let (_, h, _) = app.request(Method::GET, None, "/healthz", None, None).await;
    assert_eq!(h, json!({ "status": "ok" }));

    let head = app.get_ok(ADMIN, "/v1/audit/head").await;
    assert_eq!(head["seq"], json!(seeded + 1));
    assert!(
        head["hash"]
            .as_str()
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())),
        "{head}"
    );
    assert_eq!(head["business_date"], json!(TODAY));
    app.assert_verifies().await;

    let (status, metrics, headers) = app.get(ADMIN, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type(&headers).starts_with("application/openmetrics-text"),
        "{headers:?}"
    );
    let text = metrics.as_str().expect("metrics are text");
    assert!(text.contains("hongxin_http_requests_total"), "{text}");
    assert!(text.contains("hongxin_write_batches_total"), "{text}");
    assert!(
        text.contains("route=\"/v1/topups\""),
        "requests are labelled by route template: {text}"
    );
    assert!(text.contains("hongxin_entries_posted_total 1"), "{text}");

    let (status, doc, headers) = app
        .request(Method::GET, None, "/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type(&headers).starts_with("application/json"));
    assert_eq!(doc["openapi"], json!("3.1.0"));
    assert!(doc["paths"]["/v1/topups"]["post"].is_object(), "{doc}");

    // A head published earlier: still in the chain with its hash, or the check fails.
    let published = format!("{}:{}", seeded + 1, head["hash"].as_str().expect("hash"));
    let v = app
        .get_ok(ADMIN, &format!("/v1/audit/verify?expect_head={published}"))
        .await;
    assert_eq!(v["ok"], json!(true), "{v}");
    app.top_up(CASHIER_S1, "H1", "50", "wallet").await;
    let v = app
        .get_ok(ADMIN, &format!("/v1/audit/verify?expect_head={published}"))
        .await;
    assert_eq!(
        v["ok"],
        json!(true),
        "an older head is still in a longer chain: {v}"
    );
    // A head beyond the end: the journal it was published from was longer than this one.
    let beyond = format!("{}:{}", seeded + 3, head["hash"].as_str().expect("hash"));
    let v = app
        .get_ok(ADMIN, &format!("/v1/audit/verify?expect_head={beyond}"))
        .await;
    assert_eq!(v["ok"], json!(false), "{v}");
    let problem = v["report"]["first_problem"].as_str().expect("a problem");
    assert!(problem.contains("cut short"), "{problem}");
    let other = format!("1:{}", "0".repeat(64));
    let v = app
        .get_ok(ADMIN, &format!("/v1/audit/verify?expect_head={other}"))
        .await;
    assert_eq!(v["ok"], json!(false), "{v}");
    let reply = app.get(ADMIN, "/v1/audit/verify?expect_head=1:xyz").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("expect_head"),
    );

    // Every response carries a request id.
    let (_, _, headers) = app.request(Method::GET, None, "/healthz", None, None).await;
    assert!(headers.get("x-request-id").is_some());
}

// ---------------------------------------------------------------------------------------------
// 2. Rejections: problem+json, the field at fault, nothing posted, never a 500
// ---------------------------------------------------------------------------------------------

async fn rejections(app: &TestApp) {
    let before = app.get_ok(ADMIN, "/v1/audit/head").await;
    let topup = |paid: Value| json!({ "household": "H1", "paid": paid, "method": "cash" });

    let reply = app
        .post_keyed(CASHIER_S1, "/v1/topups", topup(json!("75.00")))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_whole_units",
        Some("paid"),
    );
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/topups", topup(json!(100)))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("paid"),
    );
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/topups", topup(json!(100.0)))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("paid"),
    );
    for bad in [
        "55.001",
        "5e1",
        "NaN",
        "",
        "-50",
        " 50",
        "+50",
        "50.",
        ".5",
        "1,000",
        "５０",
        "99999999999999999999",
    ] {
        let reply = app
            .post_keyed(CASHIER_S1, "/v1/topups", topup(json!(bad)))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            Some("paid"),
        );
    }
    let reply = app
        .post_keyed(CASHIER_S1, "/v1/topups", topup(json!("2000")))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cap_exceeded",
        Some("paid"),
    );
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H9", "paid": "50", "method": "cash" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_eligible",
        Some("household"),
    );
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "bank" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "method_not_accepted",
        Some("method"),
    );
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "gold" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("method"),
    );
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "method": "cash" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("paid"),
    );
    let reply = app
        .sell(
            CASHIER_S1,
            json!({ "amount": "1", "tenders": [{ "type": "cash" }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("tenders[0].amount"),
    );
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "cash", "tip": "1.00" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("tip"),
    );
    assert!(
        reply.1["detail"]
            .as_str()
            .is_some_and(|d| d.contains("tip")),
        "{}",
        reply.1
    );
    // An unknown field named like an amount is still an unknown field.
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "cash", "amount": "1" }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("amount"),
    );

    // Amounts nested in arrays name their place.
    let reply = app
        .sell(CASHIER_S1, json!({ "household": "H1", "amount": "10", "tenders": [{ "type": "wallet", "amount": "10.001" }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("tenders[0].amount"),
    );
    let reply = app
        .sell(CASHIER_S1, json!({ "household": "H1", "amount": "10", "tenders": [{ "type": "wallet", "amount": "10", "extra": 1 }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("tenders[0].extra"),
    );

    let key = app.key();
    let reply = app
        .request_raw(
            Method::POST,
            Some(CASHIER_S1),
            "/v1/topups",
            "application/json",
            r#"{"household": "H1", "paid": "#,
            Some(&key),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "malformed_json", None);
    let reply = app
        .request_raw(
            Method::POST,
            Some(CASHIER_S1),
            "/v1/topups",
            "application/json",
            r#"{"household": "H1", "paid": "50", "method": "cash"} {"paid": "1000"}"#,
            Some(&key),
        )
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST, "malformed_json", None);
    let body = json!({ "household": "H1", "paid": "50", "method": "cash" }).to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let reply = app
            .request_raw(
                Method::POST,
                Some(CASHIER_S1),
                "/v1/topups",
                ct,
                body.clone(),
                Some(&key),
            )
            .await;
        assert_problem(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            None,
        );
    }
    // No content type at all.
    let response = app
        .client
        .post(app.url("/v1/topups"))
        .bearer_auth(CASHIER_S1)
        .header("Idempotency-Key", &key)
        .body(body.clone())
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let headers = response.headers().clone();
    let problem: Value = response.json().await.expect("problem json");
    assert_problem(
        &(status, problem, headers),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );

    // A body over the limit (64 KiB by default).
    let big = json!({ "category": "rent", "amount": "1.00", "date": "2026-11-01", "memo": "x".repeat(70 * 1024) });
    let reply = app.post_keyed(ACCOUNTANT_COOP, "/v1/expenses", big).await;
    assert_problem(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );

    // Money moves only with an Idempotency-Key, and a sensible one.
    let reply = app
        .post(CASHIER_S1, "/v1/topups", topup(json!("50")), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let reply = app
        .post(
            CASHIER_S1,
            "/v1/sales",
            json!({ "amount": "1", "tenders": [{ "type": "cash", "amount": "1" }] }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let reply = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "1.00", "date": "2026-11-01" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let reply = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/stock-receipts",
            json!({ "amount": "1.00" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let reply = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({}),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let reply = app
        .post(CASHIER_S1, "/v1/sales/1/refunds", json!({}), None)
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
        Some("Idempotency-Key"),
    );
    let long = "k".repeat(256);
    for bad in ["", " ", long.as_str()] {
        let reply = app
            .post(CASHIER_S1, "/v1/topups", topup(json!("50")), Some(bad))
            .await;
        assert_problem(
            &reply,
            StatusCode::BAD_REQUEST,
            "bad_idempotency_key",
            Some("Idempotency-Key"),
        );
    }

    for bad in ["abc", "0", "-1", "1.5", "99999999999999999999"] {
        let reply = app
            .post_keyed(CASHIER_S1, &format!("/v1/sales/{bad}/refunds"), json!({}))
            .await;
        assert_problem(
            &reply,
            StatusCode::BAD_REQUEST,
            "bad_path_parameter",
            Some("sale"),
        );
    }
    let reply = app
        .post_keyed(ADMIN, "/v1/entries/x/reversal", json!({ "memo": "m" }))
        .await;
    assert_problem(
        &reply,
        StatusCode::BAD_REQUEST,
        "bad_path_parameter",
        Some("entry"),
    );

    let reply = app
        .sell(CASHIER_S1, json!({ "household": "H2", "amount": "10.00", "tenders": [{ "type": "wallet", "amount": "10.00" }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
        Some("tenders[0].amount"),
    );
    let reply = app
        .sell(
            CASHIER_S1,
            json!({ "household": "H2", "amount": "10.00", "tenders": [{ "type": "cash", "amount": "5.00" }, { "type": "wallet", "amount": "5.00" }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
        Some("tenders[1].amount"),
    );
    let reply = app
        .sell(
            CASHIER_S1,
            json!({ "amount": "10.00", "tenders": [{ "type": "cash", "amount": "9.99" }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "tender_mismatch",
        Some("tenders"),
    );
    let reply = app
        .sell(
            CASHIER_S1,
            json!({ "amount": "10.00", "tenders": [{ "type": "wallet", "amount": "10.00" }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("household"),
    );
    let reply = app
        .sell(CASHIER_S1, json!({ "lines": [{ "sku": "DURIAN", "qty": "1" }], "tenders": [{ "type": "cash", "amount": "1" }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("lines[0].sku"),
    );
    let reply = app
        .sell(CASHIER_S1, json!({ "lines": [{ "sku": "APPLE", "qty": "-1" }], "tenders": [{ "type": "cash", "amount": "1" }] }))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("lines[0].qty"),
    );
    let reply = app
        .sell(
            CASHIER_S1,
            json!({ "tenders": [{ "type": "cash", "amount": "1" }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("lines"),
    );
    let reply = app
        .sell(CASHIER_S1, json!({ "amount": "1", "tenders": [{ "type": "voucher", "amount": "1", "code": "AAAAA-AAAAA" }] }))
        .await;
    assert!(reply.0 == StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);

    let reply = app.get(ADMIN, "/v1/nothing").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(reply.1["detail"], json!("no such route"));
    let reply = app.get(CASHIER_S1, "/v1/topups").await;
    assert_problem(
        &reply,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert_eq!(
        reply.2.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST"),
        "405 names the allowed methods"
    );
    let reply = app
        .request(Method::DELETE, Some(ADMIN), "/v1/sales", None, None)
        .await;
    assert_problem(
        &reply,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );

    assert_eq!(
        app.get_ok(ADMIN, "/v1/audit/head").await,
        before,
        "a refusal posts nothing"
    );
    assert_eq!(app.wallet("H1").await, wallet("0.00", "0.00", "0.00"));
}

/// A body over a small configured limit is 413 before anything is parsed.
async fn body_limit(app: &TestApp) {
    let big =
        json!({ "household": "H1", "paid": "50", "method": "cash", "shop": "x".repeat(2048) });
    let reply = app.post_keyed(CASHIER_S1, "/v1/topups", big).await;
    assert_problem(
        &reply,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        None,
    );
    let r = app.top_up(CASHIER_S1, "H1", "50", "wallet").await;
    assert_eq!(r["credited"], json!("55.00"));
}

/// Actions whose body is optional (a refund of the whole sale): an empty body is the default,
/// a body that is there is JSON or refused, never ignored.
async fn optional_bodies(app: &TestApp) {
    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({ "amount": "10.00", "tenders": [{ "type": "cash", "amount": "10.00" }] }),
        )
        .await;
    let path = format!("/v1/sales/{}/refunds", id(&sale["sale"]));
    let head = app.head().await;

    // A chunked body without a content type is not taken for "no body" (a whole refund).
    let (status, text) = app
        .chunked(
            &format!("POST {path} HTTP/1.1\r\nAuthorization: Bearer {CASHIER_S1}\r\nIdempotency-Key: c-1"),
            br#"{"amount": "1.00"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    assert_eq!(app.head().await, head);
    // Chunked JSON is read like any other.
    let (status, text) = app
        .chunked(
            &format!("POST {path} HTTP/1.1\r\nAuthorization: Bearer {CASHIER_S1}\r\nIdempotency-Key: c-2\r\nContent-Type: application/json"),
            br#"{"amount": "1.00"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(text.contains(r#""remaining":"9.00""#), "{text}");
    // A text body is refused even with a Content-Length.
    let key = app.key();
    let reply = app
        .request_raw(
            Method::POST,
            Some(CASHIER_S1),
            &path,
            "text/plain",
            r#"{"amount": "1.00"}"#,
            Some(&key),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        None,
    );
    // An empty body labelled JSON is no body: the rest of the sale.
    let key = app.key();
    let (status, r, _) = app
        .request_raw(
            Method::POST,
            Some(CASHIER_S1),
            &path,
            "application/json",
            "",
            Some(&key),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (r["amount"].clone(), r["remaining"].clone()),
        (json!("9.00"), json!("0.00"))
    );
    // Chunked and over the limit.
    let (status, text) = app
        .chunked(
            &format!("POST {path} HTTP/1.1\r\nAuthorization: Bearer {CASHIER_S1}\r\nIdempotency-Key: c-3\r\nContent-Type: application/json"),
            &vec![b' '; 70 * 1024],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text:.300}");
    assert!(text.contains("body_too_large"), "{text:.300}");
    assert_eq!(app.head().await, head + 2);
}

/// Garbage of every kind gets a 4xx problem, never a 500.
async fn no_bad_input_is_a_500(app: &TestApp) {
    let before = app.head().await;
    let valid = json!({
        "household": "H1",
        "lines": [{ "sku": "APPLE", "qty": "2" }],
        "tenders": [{ "type": "cash", "amount": "2.50" }]
    })
    .to_string();
    let mut bodies: Vec<String> = (0..valid.len())
        .filter(|i| valid.is_char_boundary(*i))
        .map(|i| valid[..i].to_string())
        .collect();
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let max = "92233720368547758.07";
    bodies.extend(
        [
            "null",
            "[]",
            "\"x\"",
            "{}",
            "0",
            "{\"household\": 1}",
            "{\"household\": null, \"tenders\": null}",
            "{\"amount\": {}, \"tenders\": []}",
            "{\"amount\": \"1\", \"tenders\": [{\"type\": \"cash\", \"amount\": \"1\"}], \"lines\": [{\"sku\": \"APPLE\", \"qty\": \"1\"}]}",
            "{\"lines\": [{\"sku\": \"APPLE\", \"qty\": \"1e400\"}], \"tenders\": [{\"type\": \"cash\", \"amount\": \"1\"}]}",
            "{\"lines\": [{\"sku\": \"APPLE\", \"qty\": \"99999999999999999999999999999\"}], \"tenders\": [{\"type\": \"cash\", \"amount\": \"1\"}]}",
            "{\"household\": \"\\u0000\", \"amount\": \"1\", \"tenders\": [{\"type\": \"wallet\", \"amount\": \"1\"}]}",
            "\u{feff}{}",
            deep.as_str(),
        ]
        .map(str::to_string),
    );
    bodies.push(json!({ "amount": "1", "tenders": [{ "type": "cash", "amount": max }, { "type": "cash", "amount": max }] }).to_string());
    bodies.push(
        json!({ "amount": "1", "tenders": vec![json!({ "type": "cash", "amount": "0.01" }); 100] })
            .to_string(),
    );
    bodies.push(json!({ "lines": vec![json!({ "sku": "APPLE", "qty": "1" }); 500], "tenders": [{ "type": "cash", "amount": "625" }] }).to_string());
    bodies.push(json!({ "household": "H".repeat(5000), "amount": "1", "tenders": [{ "type": "wallet", "amount": "1" }] }).to_string());
    let posts = [
        (CASHIER_S1, "/v1/sales"),
        (CASHIER_S1, "/v1/topups"),
        (CASHIER_S1, "/v1/sales/1/refunds"),
        (ACCOUNTANT_COOP, "/v1/expenses"),
        (ACCOUNTANT_COOP, "/v1/stock-receipts"),
        (ACCOUNTANT_COOP, "/v1/households/H1/credit-refunds"),
        (ADMIN, "/v1/households"),
        (ADMIN, "/v1/tokens"),
        (COMPANY_K01, "/v1/households/H1/pin"),
    ];
    let mut seen = BTreeMap::new();
    for (token, path) in posts {
        for body in &bodies {
            let key = app.key();
            let (status, problem, headers) = app
                .request_raw(
                    Method::POST,
                    Some(token),
                    path,
                    "application/json",
                    body.clone(),
                    Some(&key),
                )
                .await;
            assert!(
                status.is_client_error(),
                "POST {path} {body:.200} → {status} {problem}"
            );
            assert_eq!(
                content_type(&headers),
                "application/problem+json",
                "POST {path} {body:.200} → {problem}"
            );
            *seen.entry(status.as_u16()).or_insert(0) += 1;
        }
    }
    let long = "A".repeat(4000);
    for path in [
        "/v1/households/%00".to_string(),
        format!("/v1/households/{long}"),
        format!("/v1/vouchers/{long}"),
        "/v1/vouchers/%F0%9F%98%80".to_string(),
        "/v1/vouchers/-----".to_string(),
        "/v1/households/H1/history?before=-5&limit=1".to_string(),
        "/v1/households/H1/history?before=99999999999999999999".to_string(),
    ] {
        let (status, problem, _) = app.get(ADMIN, &path).await;
        assert!(
            status.is_client_error() || status == StatusCode::OK,
            "GET {path:.100} → {status} {problem}"
        );
    }
    assert_eq!(
        app.head().await,
        before,
        "garbage posts nothing (seen {seen:?})"
    );

    // Amounts at the edge of i64 fen parse, and are refused by the policy's ceiling on any
    // single amount (1,000,000.00 by default) as invalid_amount naming the field: never a
    // store failure, and no balance can be driven to the edge of i64.
    let huge = json!({ "amount": max, "tenders": [{ "type": "cash", "amount": max }] });
    let reply = app.sell(CASHIER_S1, huge).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    let reply = app
        .post_keyed(
            ACCOUNTANT_COOP,
            "/v1/stock-receipts",
            json!({ "amount": max }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_amount",
        Some("amount"),
    );
    assert_eq!(app.head().await, before);
    app.assert_verifies().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency
// ---------------------------------------------------------------------------------------------

async fn idempotency(app: &TestApp) {
    let head = app.head().await;
    let body = json!({ "household": "H1", "paid": "100.00", "method": "cash" });
    let first = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some("key-1"))
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert!(!is_replayed(&first.2));
    let again = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some("key-1"))
        .await;
    assert_eq!(again.0, first.0);
    assert_eq!(
        again.1, first.1,
        "the replay is the first answer, byte for byte"
    );
    assert!(is_replayed(&again.2));
    assert_eq!(app.head().await, head + 1);
    assert_eq!(app.wallet("H1").await, wallet("100.00", "10.00", "110.00"));

    // The same key with another body, or on another route, is refused and posts nothing.
    let other = json!({ "household": "H1", "paid": "50.00", "method": "cash" });
    let reply = app
        .post(CASHIER_S1, "/v1/topups", other, Some("key-1"))
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        None,
    );
    let reply = app
        .post(
            CASHIER_S1,
            "/v1/sales",
            json!({ "amount": "1", "tenders": [{ "type": "cash", "amount": "1" }] }),
            Some("key-1"),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        None,
    );
    // …and the first request still replays.
    let third = app
        .post(CASHIER_S1, "/v1/topups", body.clone(), Some("key-1"))
        .await;
    assert_eq!((third.0, &third.1), (first.0, &first.1));
    assert_eq!(app.head().await, head + 1);

    // A refusal is remembered: the same answer again, still nothing posted.
    let refused = app
        .post(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "75.00", "method": "cash" }),
            Some("key-2"),
        )
        .await;
    assert_problem(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_whole_units",
        Some("paid"),
    );
    let retried = app
        .post(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "75.00", "method": "cash" }),
            Some("key-2"),
        )
        .await;
    assert_eq!((retried.0, &retried.1), (refused.0, &refused.1));
    assert!(is_replayed(&retried.2));
    assert_eq!(content_type(&retried.2), "application/problem+json");
    // Even after the household could afford it: a sale refused for want of funds stays refused.
    let sale = app.with_card(json!({ "household": "H2", "amount": "10.00", "tenders": [{ "type": "wallet", "amount": "10.00" }] })).await;
    let poor = app
        .post(CASHIER_S1, "/v1/sales", sale.clone(), Some("key-3"))
        .await;
    assert_problem(
        &poor,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
        Some("tenders[0].amount"),
    );
    app.top_up(CASHIER_S1, "H2", "50", "wallet").await;
    let retried = app
        .post(CASHIER_S1, "/v1/sales", sale.clone(), Some("key-3"))
        .await;
    assert_eq!((retried.0, &retried.1), (poor.0, &poor.1));
    assert_eq!(app.head().await, head + 2);

    // Keys are scoped to the token: another till may use the same key for its own request.
    let s1 = app
        .post(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H3", "paid": "50", "method": "cash" }),
            Some("shared"),
        )
        .await;
    let s2 = app
        .post(
            CASHIER_S2,
            "/v1/topups",
            json!({ "household": "H3", "paid": "50", "method": "cash" }),
            Some("shared"),
        )
        .await;
    assert_eq!(
        (s1.0, s2.0),
        (StatusCode::CREATED, StatusCode::CREATED),
        "{} {}",
        s1.1,
        s2.1
    );
    assert!(!is_replayed(&s2.2));
    assert_ne!(s1.1["entry"], s2.1["entry"]);
    assert_eq!(s2.1["wallet"], wallet("100.00", "10.00", "110.00"));
    assert_eq!(app.head().await, head + 4);

    // The same key twenty times at once: one entry, one answer.
    let head = app.head().await;
    let body = json!({ "household": "H1", "paid": "50", "method": "wechat" });
    let replies = app
        .concurrently(
            (0..20)
                .map(|_| {
                    (
                        CASHIER_S1,
                        "/v1/topups".to_string(),
                        body.clone(),
                        Some("burst".to_string()),
                    )
                })
                .collect(),
        )
        .await;
    let mut created = 0;
    let mut answers = BTreeSet::new();
    for (status, b, headers) in &replies {
        if *status == StatusCode::CONFLICT {
            assert_problem(
                &(*status, b.clone(), headers.clone()),
                StatusCode::CONFLICT,
                "idempotency_in_flight",
                None,
            );
            continue;
        }
        assert_eq!(*status, StatusCode::CREATED, "{b}");
        created += 1;
        answers.insert(b.to_string());
    }
    assert!(created >= 1);
    assert_eq!(
        answers.len(),
        1,
        "every non-409 answer is the same: {answers:?}"
    );
    assert_eq!(app.head().await, head + 1);
    assert_eq!(app.wallet("H1").await, wallet("150.00", "15.00", "165.00"));
    // Master data takes an optional key with the same guarantees.
    let company = json!({ "code": "K05", "name": "五号物业" });
    let a = app
        .post(ADMIN, "/v1/companies", company.clone(), Some("co"))
        .await;
    let b = app.post(ADMIN, "/v1/companies", company, Some("co")).await;
    assert_eq!((a.0, &a.1), (b.0, &b.1));
    assert!(is_replayed(&b.2));
    app.assert_verifies().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Who may do what
// ---------------------------------------------------------------------------------------------

struct Case {
    token: Option<&'static str>,
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
}

fn get(token: &'static str, path: impl Into<String>, status: u16) -> Case {
    Case {
        token: Some(token),
        method: Method::GET,
        path: path.into(),
        body: None,
        status,
    }
}

fn post(token: &'static str, path: impl Into<String>, body: Value, status: u16) -> Case {
    Case {
        token: Some(token),
        method: Method::POST,
        path: path.into(),
        body: Some(body),
        status,
    }
}

async fn access_matrix(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({ "amount": "50.00", "tenders": [{ "type": "cash", "amount": "50.00" }] }),
        )
        .await;
    let sale = id(&sale["sale"]);
    let v1 = app.voucher("H1", "50").await;
    let v3 = app.voucher("H3", "50").await;
    let refund = format!("/v1/sales/{sale}/refunds");
    let one = json!({ "amount": "1.00" });
    let topup = json!({ "household": "H1", "paid": "50", "method": "cash" });
    let cash_sale = json!({ "amount": "1.00", "tenders": [{ "type": "cash", "amount": "1.00" }] });
    let expense = json!({ "category": "rent", "amount": "1.00", "date": "2026-11-01" });
    let item =
        json!({ "sku": "FIG", "name": "无花果", "unit": "个", "price": "1.00", "cost": "0.50" });
    let company = json!({ "code": "K77", "name": "x" });

    let mut cases = vec![
        // Households: own, masked, or not there at all.
        get(ADMIN, "/v1/households/H1", 200),
        get(CASHIER_S1, "/v1/households/H1", 200),
        get(CASHIER_T1, "/v1/households/H3", 200),
        get(COMPANY_K01, "/v1/households/H1", 200),
        get(COMPANY_K01, "/v1/households/H3", 404),
        get(COMPANY_K02, "/v1/households/H3", 200),
        get(COMPANY_K02, "/v1/households/H1", 404),
        get(RESIDENT_H1, "/v1/households/H1", 200),
        get(RESIDENT_H1, "/v1/households/H3", 404),
        get(RESIDENT_H1, "/v1/households/H2", 404),
        get(RESIDENT_H1, "/v1/households/NOPE", 404),
        get(RESIDENT_H3, "/v1/households/H3", 200),
        get(ACCOUNTANT_COOP, "/v1/households/H1", 200),
        get(RESIDENT_H1, "/v1/households/H1/history", 200),
        get(RESIDENT_H1, "/v1/households/H3/history", 404),
        get(COMPANY_K01, "/v1/households/H3/history", 404),
        get(COMPANY_K02, "/v1/households/H3/history", 200),
        get(CASHIER_S1, "/v1/households/H1/history", 200),
        // Sale refunds: the shop's own cashier, the cooperative's accountant, an admin. To
        // another shop or cooperative the sale is missing, as an unknown number is.
        post(CASHIER_S2, &refund, one.clone(), 404),
        post(ACCOUNTANT_COOP2, &refund, one.clone(), 404),
        post(CASHIER_T1, &refund, one.clone(), 404),
        post(COMPANY_K01, &refund, one.clone(), 403),
        post(RESIDENT_H1, &refund, one.clone(), 403),
        post(CASHIER_S1, "/v1/sales/999999/refunds", one.clone(), 404),
        // Vouchers: the till of the issuing cooperative; QR codes for the owner too.
        get(CASHIER_S2, format!("/v1/vouchers/{v1}"), 200),
        get(ADMIN, format!("/v1/vouchers/{v1}"), 200),
        get(CASHIER_T1, format!("/v1/vouchers/{v1}"), 404),
        get(ACCOUNTANT_COOP, format!("/v1/vouchers/{v1}"), 403),
        get(COMPANY_K01, format!("/v1/vouchers/{v1}"), 403),
        get(RESIDENT_H1, format!("/v1/vouchers/{v1}"), 403),
        get(RESIDENT_H1, format!("/v1/vouchers/{v1}/qr.svg"), 200),
        get(RESIDENT_H1, format!("/v1/vouchers/{v3}/qr.svg"), 404),
        get(RESIDENT_H3, format!("/v1/vouchers/{v3}/qr.svg"), 200),
        get(CASHIER_S1, format!("/v1/vouchers/{v3}/qr.svg"), 200),
        get(CASHIER_T1, format!("/v1/vouchers/{v3}/qr.svg"), 404),
        get(COMPANY_K02, format!("/v1/vouchers/{v3}/qr.svg"), 403),
        post(
            CASHIER_S1,
            format!("/v1/vouchers/{v3}/void"),
            json!({}),
            403,
        ),
        post(
            COMPANY_K02,
            format!("/v1/vouchers/{v3}/void"),
            json!({}),
            403,
        ),
        post(
            RESIDENT_H3,
            format!("/v1/vouchers/{v3}/void"),
            json!({}),
            403,
        ),
        post(
            ACCOUNTANT_COOP2,
            format!("/v1/vouchers/{v3}/void"),
            json!({}),
            404,
        ),
        // The till.
        post(COMPANY_K01, "/v1/topups", topup.clone(), 403),
        post(RESIDENT_H1, "/v1/topups", topup.clone(), 403),
        post(ACCOUNTANT_COOP, "/v1/topups", topup.clone(), 403),
        post(ADMIN, "/v1/topups", topup.clone(), 422),
        post(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "cash", "shop": "S2" }),
            403,
        ),
        post(COMPANY_K01, "/v1/sales", cash_sale.clone(), 403),
        post(RESIDENT_H1, "/v1/sales", cash_sale.clone(), 403),
        post(ACCOUNTANT_COOP, "/v1/sales", cash_sale.clone(), 403),
        // The back office.
        post(
            CASHIER_S1,
            "/v1/households/H1/credit-refunds",
            json!({}),
            403,
        ),
        post(
            COMPANY_K01,
            "/v1/households/H1/credit-refunds",
            json!({}),
            403,
        ),
        post(
            RESIDENT_H1,
            "/v1/households/H1/credit-refunds",
            json!({}),
            403,
        ),
        post(
            ACCOUNTANT_COOP2,
            "/v1/households/H1/credit-refunds",
            json!({}),
            409,
        ),
        post(
            ACCOUNTANT_COOP2,
            "/v1/households/H1/credit-refunds",
            json!({ "cooperative": "COOP" }),
            403,
        ),
        post(CASHIER_S1, "/v1/expenses", expense.clone(), 403),
        post(COMPANY_K01, "/v1/expenses", expense.clone(), 403),
        post(
            ACCOUNTANT_COOP2,
            "/v1/expenses",
            json!({ "category": "rent", "amount": "1.00", "date": "2026-11-01", "cooperative": "COOP" }),
            403,
        ),
        post(
            CASHIER_S1,
            "/v1/stock-receipts",
            json!({ "amount": "1.00" }),
            403,
        ),
        post(
            ACCOUNTANT_COOP,
            "/v1/entries/1/reversal",
            json!({ "memo": "m" }),
            403,
        ),
        post(
            CASHIER_S1,
            "/v1/entries/1/reversal",
            json!({ "memo": "m" }),
            403,
        ),
        post(CASHIER_S1, "/v1/catalog", item.clone(), 403),
        post(COMPANY_K01, "/v1/catalog", item.clone(), 403),
        post(
            ACCOUNTANT_COOP2,
            "/v1/catalog",
            json!({ "sku": "FIG", "name": "x", "unit": "个", "price": "1", "cost": "1", "cooperative": "COOP" }),
            403,
        ),
        // The operator's endpoints.
        get(CASHIER_S1, "/v1/audit/head", 403),
        get(CASHIER_S1, "/v1/audit/verify", 403),
        get(CASHIER_S1, "/metrics", 403),
        get(RESIDENT_H1, "/v1/audit/head", 403),
        get(ACCOUNTANT_COOP, "/metrics", 403),
        post(CASHIER_S1, "/v1/companies", company.clone(), 403),
        post(ACCOUNTANT_COOP, "/v1/companies", company.clone(), 403),
        post(
            COMPANY_K01,
            "/v1/compounds",
            json!({ "code": "HX77", "name": "x", "company": "K01", "eligible": true }),
            403,
        ),
        post(
            CASHIER_S1,
            "/v1/cooperatives",
            json!({ "code": "C7", "name": "x" }),
            403,
        ),
        post(
            CASHIER_S1,
            "/v1/shops",
            json!({ "code": "S7", "name": "x", "cooperative": "COOP" }),
            403,
        ),
        post(
            RESIDENT_H1,
            "/v1/households",
            json!({ "code": "H77", "compound": "HX01", "area_m2": "1" }),
            403,
        ),
        post(CASHIER_S1, "/v1/tokens", json!({ "role": "admin" }), 403),
        post(
            COMPANY_K01,
            "/v1/tokens",
            json!({ "role": "resident", "scope": "H1" }),
            403,
        ),
        post(CASHIER_S1, "/v1/tokens/1/revoke", json!({}), 403),
        // Residents' cards and PINs: the household's own company.
        post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "123456" }),
            200,
        ),
        post(
            COMPANY_K02,
            "/v1/households/H1/pin",
            json!({ "pin": "123456" }),
            404,
        ),
        post(
            CASHIER_S1,
            "/v1/households/H1/pin",
            json!({ "pin": "123456" }),
            403,
        ),
        post(
            RESIDENT_H1,
            "/v1/households/H1/pin",
            json!({ "pin": "123456" }),
            403,
        ),
        get(COMPANY_K01, "/v1/households/H1/link", 200),
        get(ADMIN, "/v1/households/H1/link", 200),
        get(COMPANY_K02, "/v1/households/H1/link", 404),
        get(RESIDENT_H1, "/v1/households/H1/link", 403),
        get(CASHIER_S1, "/v1/households/H1/link", 403),
        post(COMPANY_K02, "/v1/households/H1/link/rotate", json!({}), 404),
        post(RESIDENT_H1, "/v1/households/H1/link/rotate", json!({}), 403),
        // Without a live token.
        Case {
            token: None,
            method: Method::GET,
            path: "/v1/households/H1".into(),
            body: None,
            status: 401,
        },
        Case {
            token: None,
            method: Method::POST,
            path: "/v1/topups".into(),
            body: Some(topup.clone()),
            status: 401,
        },
        get(REVOKED, "/v1/households/H1", 401),
        post(REVOKED, "/v1/topups", topup.clone(), 401),
        get("not-a-token", "/v1/households/H1", 401),
        Case {
            token: None,
            method: Method::GET,
            path: "/healthz".into(),
            body: None,
            status: 200,
        },
        Case {
            token: None,
            method: Method::GET,
            path: "/openapi.json".into(),
            body: None,
            status: 200,
        },
        Case {
            token: None,
            method: Method::GET,
            path: "/metrics".into(),
            body: None,
            status: 401,
        },
        // Allowed, and moving money: last, so the refusals above ran against the same state.
        post(CASHIER_S1, &refund, one.clone(), 201),
        post(ACCOUNTANT_COOP, &refund, one.clone(), 201),
        post(ADMIN, &refund, one.clone(), 201),
        post(CASHIER_S1, "/v1/topups", topup.clone(), 201),
        post(
            ADMIN,
            "/v1/topups",
            json!({ "household": "H1", "paid": "50", "method": "cash", "shop": "S2" }),
            201,
        ),
        post(CASHIER_T1, "/v1/sales", cash_sale.clone(), 201),
        post(ACCOUNTANT_COOP, "/v1/expenses", expense.clone(), 201),
        post(
            ACCOUNTANT_COOP,
            "/v1/stock-receipts",
            json!({ "amount": "1.00" }),
            201,
        ),
        post(ACCOUNTANT_COOP, "/v1/catalog", item.clone(), 201),
        post(
            ACCOUNTANT_COOP,
            format!("/v1/vouchers/{v3}/void"),
            json!({}),
            200,
        ),
        post(
            ACCOUNTANT_COOP,
            "/v1/households/H1/credit-refunds",
            json!({}),
            201,
        ),
    ];
    // Admin may do everything a role may.
    cases.push(post(ADMIN, "/v1/expenses", json!({ "category": "rent", "amount": "1.00", "date": "2026-11-01", "cooperative": "COOP2" }), 201));

    let mut wrong = Vec::new();
    for c in &cases {
        let key = app.key();
        let (status, body, headers) = app
            .request(
                c.method.clone(),
                c.token,
                &c.path,
                c.body.as_ref(),
                Some(&key),
            )
            .await;
        if status.as_u16() != c.status {
            wrong.push(format!(
                "{:?} {} {} → {} (expected {}): {body}",
                c.token,
                c.method,
                c.path,
                status.as_u16(),
                c.status
            ));
        } else if !status.is_success() && c.path != "/healthz" {
            assert_eq!(
                content_type(&headers),
                "application/problem+json",
                "{} {}",
                c.method,
                c.path
            );
        }
        if c.path.starts_with("/v1/vouchers/")
            && status == StatusCode::NOT_FOUND
            && c.method == Method::GET
        {
            assert_eq!(
                body["code"],
                json!("voucher_invalid"),
                "{:?} {}: {body}",
                c.token,
                c.path
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );

    // Private existence: someone else's household or voucher answers exactly like none at all.
    for token in [RESIDENT_H1, COMPANY_K02] {
        let theirs = app.get(token, "/v1/households/H2").await;
        let none = app.get(token, "/v1/households/NOPE").await;
        assert_eq!((theirs.0, &theirs.1), (none.0, &none.1));
        let theirs = app.get(token, "/v1/households/H2/history").await;
        let none = app.get(token, "/v1/households/NOPE/history").await;
        assert_eq!((theirs.0, &theirs.1), (none.0, &none.1));
    }
    let elsewhere = app.get(CASHIER_T1, &format!("/v1/vouchers/{v1}")).await;
    let voided = app.get(CASHIER_S1, &format!("/v1/vouchers/{v3}")).await;
    assert_eq!((elsewhere.0, &elsewhere.1), (voided.0, &voided.1));
    let theirs = app
        .get(RESIDENT_H1, &format!("/v1/vouchers/{v3}/qr.svg"))
        .await;
    assert_eq!((theirs.0, &theirs.1), (voided.0, &voided.1));

    // A cashier sees the name masked and no voucher codes; the company, resident and admin see more.
    let as_cashier = app.get_ok(CASHIER_S1, "/v1/households/H1").await;
    assert_eq!(as_cashier["name"], json!("王**"));
    assert!(
        as_cashier["vouchers"]
            .as_array()
            .is_some_and(|v| !v.is_empty() && v.iter().all(|v| v["code"].is_null())),
        "{as_cashier}"
    );
    let as_admin = app.get_ok(ADMIN, "/v1/households/H1").await;
    assert_eq!(as_admin["name"], json!("王小明"));
    let as_resident = app.get_ok(RESIDENT_H1, "/v1/households/H1").await;
    assert_eq!(as_resident["vouchers"][0]["code"], json!(v1));
    // A cashier of COOP2 sees only COOP2's credit.
    let at_t1 = app.get_ok(CASHIER_T1, "/v1/households/H1").await;
    assert_eq!(at_t1["wallet"], wallet("0.00", "0.00", "0.00"));
    assert_eq!(at_t1["vouchers"], json!([]));
    app.assert_verifies().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Concurrency over HTTP
// ---------------------------------------------------------------------------------------------

async fn concurrent_spending(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let sale = app.with_card(json!({ "household": "H1", "amount": "10.00", "tenders": [{ "type": "wallet", "amount": "10.00" }] })).await;
    let replies = app
        .concurrently(
            (0..50)
                .map(|i| {
                    (
                        CASHIER_S1,
                        "/v1/sales".to_string(),
                        sale.clone(),
                        Some(format!("w-{i}")),
                    )
                })
                .collect(),
        )
        .await;
    let mut count = BTreeMap::new();
    for (status, body, _) in &replies {
        *count
            .entry((
                status.as_u16(),
                body["code"].as_str().unwrap_or("").to_string(),
            ))
            .or_insert(0) += 1;
    }
    let expected = BTreeMap::from([
        ((201, String::new()), 11),
        ((422, "insufficient_funds".to_string()), 39),
    ]);
    assert_eq!(count, expected);
    assert_eq!(app.wallet("H1").await, wallet("0.00", "0.00", "0.00"));

    // The same for a bearer voucher of 110.00. Once it is spent to 0.00 it answers like any
    // other unusable code (SPEC §6), so the refusals are voucher_invalid.
    let code = app.voucher("H2", "100.00").await;
    let sale = json!({ "amount": "10.00", "tenders": [{ "type": "voucher", "amount": "10.00", "code": code }] });
    let replies = app
        .concurrently(
            (0..50)
                .map(|i| {
                    (
                        CASHIER_S2,
                        "/v1/sales".to_string(),
                        sale.clone(),
                        Some(format!("v-{i}")),
                    )
                })
                .collect(),
        )
        .await;
    let mut count = BTreeMap::new();
    for (status, body, _) in &replies {
        if *status == StatusCode::UNPROCESSABLE_ENTITY {
            assert_eq!(body["field"], json!("tenders[0].code"), "{body}");
        }
        *count
            .entry((
                status.as_u16(),
                body["code"].as_str().unwrap_or("").to_string(),
            ))
            .or_insert(0) += 1;
    }
    let expected = BTreeMap::from([
        ((201, String::new()), 11),
        ((422, "voucher_invalid".to_string()), 39),
    ]);
    assert_eq!(count, expected);
    let h = app.household("H2").await;
    assert_eq!(h["vouchers"][0]["balance"], json!("0.00"));
    let reply = app.get(CASHIER_S1, &format!("/v1/vouchers/{code}")).await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "voucher_invalid",
        Some("code"),
    );

    // Mixed: wallet top-ups and spending at two tills at once leave exact balances.
    app.top_up(CASHIER_S1, "H3", "500", "wallet").await;
    let h3_card = app.card("H3").await;
    let mut requests = Vec::new();
    for i in 0..30 {
        let (token, path, body) = if i % 3 == 0 {
            (
                CASHIER_S2,
                "/v1/topups",
                json!({ "household": "H3", "paid": "50", "method": "cash" }),
            )
        } else {
            (
                CASHIER_S1,
                "/v1/sales",
                json!({ "household": "H3", "amount": "5.50", "tenders": [{ "type": "wallet", "amount": "5.50" }], "resident": { "card": h3_card } }),
            )
        };
        requests.push((token, path.to_string(), body, Some(format!("m-{i}"))));
    }
    let replies = app.concurrently(requests).await;
    assert!(
        replies.iter().all(|r| r.0 == StatusCode::CREATED),
        "{:?}",
        replies.iter().map(|r| &r.1).collect::<Vec<_>>()
    );
    // 550.00 + 10 × 55.00 − 20 × 5.50 = 990.00.
    assert_eq!(app.wallet("H3").await["total"], json!("990.00"));
    app.assert_verifies().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Rate limits
// ---------------------------------------------------------------------------------------------

fn small_quotas() -> HttpConfig {
    HttpConfig {
        rates: RateConfig {
            voucher_per_token: 5,
            voucher_per_address: 8,
            resident_per_household: 3,
            resident_per_address: 1000,
            ..RateConfig::default()
        },
        ..HttpConfig::default()
    }
}

async fn rate_limits(app: &TestApp) {
    let code = app.voucher("H1", "50").await;
    for _ in 0..5 {
        app.get_ok(CASHIER_S1, &format!("/v1/vouchers/{code}"))
            .await;
    }
    let reply = app.get(CASHIER_S1, &format!("/v1/vouchers/{code}")).await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    let retry: u64 = reply
        .2
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Unknown codes, QR codes and redemptions count against the same quota.
    let reply = app.get(CASHIER_S1, "/v1/vouchers/AAAAA-AAAAA-AAAAA").await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    let reply = app
        .get(CASHIER_S1, &format!("/v1/vouchers/{code}/qr.svg"))
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    let head = app.head().await;
    let reply = app
        .sell(CASHIER_S1, json!({ "amount": "1.00", "tenders": [{ "type": "voucher", "amount": "1.00", "code": code }] }))
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    assert_eq!(app.head().await, head);
    // The quota is per token: another till is not held up…
    for _ in 0..3 {
        app.get_ok(CASHIER_S2, &format!("/v1/vouchers/{code}"))
            .await;
    }
    // …until the client address has used its own quota (8; refused attempts do not count).
    let reply = app.get(CASHIER_S2, &format!("/v1/vouchers/{code}")).await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    let reply = app.get(CASHIER_T1, "/v1/vouchers/AAAAA-AAAAA-AAAAA").await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);

    // Resident sign-in: wrong PINs are refused, then the household is locked for a while.
    let (status, r, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "432187" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    for _ in 0..3 {
        let reply = app
            .request(
                Method::POST,
                None,
                "/v1/resident/sessions",
                Some(&json!({ "household": "H1", "pin": "000000" })),
                None,
            )
            .await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    }
    let reply = app
        .request(
            Method::POST,
            None,
            "/v1/resident/sessions",
            Some(&json!({ "household": "H1", "pin": "000000" })),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    assert!(reply.2.get("retry-after").is_some());
    // Even the right PIN waits.
    let reply = app
        .request(
            Method::POST,
            None,
            "/v1/resident/sessions",
            Some(&json!({ "household": "H1", "pin": "432187" })),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS, "rate_limited", None);
    // Another household is not locked by H1's attempts.
    let reply = app
        .request(
            Method::POST,
            None,
            "/v1/resident/sessions",
            Some(&json!({ "household": "H2", "pin": "000000" })),
            None,
        )
        .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
}

// ---------------------------------------------------------------------------------------------
// 7. Residents
// ---------------------------------------------------------------------------------------------

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

async fn residents(app: &TestApp) {
    app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    let reply = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "12ab" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("pin"),
    );
    let reply = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "12345" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("pin"),
    );
    let (status, r, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "432187" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    let (status, s, _) = sign_in(app, json!({ "household": "H1", "pin": "432187" })).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["household"], json!("H1"));
    let token = s["token"].as_str().expect("session token").to_string();
    let expires: chrono::DateTime<chrono::Utc> = s["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339");
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(25) && left <= chrono::Duration::minutes(30),
        "{left}"
    );
    let h = app.get_ok(&token, "/v1/households/H1").await;
    assert_eq!(h["wallet"], wallet("100.00", "10.00", "110.00"));
    assert_eq!(h["name"], json!("王小明"));
    app.get_ok(&token, "/v1/households/H1/history").await;
    let reply = app.get(&token, "/v1/households/H2").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    // A resident's session reads; it does not pay or move money.
    let reply = app.post_keyed(&token, "/v1/sales", json!({ "household": "H1", "amount": "1", "tenders": [{ "type": "wallet", "amount": "1" }] })).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);

    for bad in [
        json!({ "household": "H1", "pin": "123456" }),
        json!({ "household": "H2", "pin": "432187" }),
        json!({ "household": "NOPE", "pin": "432187" }),
    ] {
        let reply = sign_in(app, bad).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    }
    let reply = sign_in(app, json!({ "household": "H1" })).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("body"),
    );
    let reply = sign_in(
        app,
        json!({ "household": "H1", "pin": "432187", "version": 1, "signature": "00" }),
    )
    .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("body"),
    );

    // The card's signed link.
    let link = app.get_ok(COMPANY_K01, "/v1/households/H1/link").await;
    assert_eq!(link["household"], json!("H1"));
    let version = link["version"].clone();
    let signature = link["signature"].as_str().expect("signature").to_string();
    assert!(
        link["url"]
            .as_str()
            .is_some_and(|u| u.contains(&signature) && u.contains("/r/H1")),
        "{link}"
    );
    let (status, s, _) = sign_in(
        app,
        json!({ "household": "H1", "version": version, "signature": signature }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let card_token = s["token"].as_str().expect("token").to_string();
    app.get_ok(&card_token, "/v1/households/H1").await;
    // Another household's link, or a tampered one, is refused.
    let reply = sign_in(
        app,
        json!({ "household": "H2", "version": version, "signature": signature }),
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    let reply = sign_in(
        app,
        json!({ "household": "H1", "version": version, "signature": with_bad_check(&signature) }),
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);

    // Rotating revokes the old card.
    let (status, rotated, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/link/rotate",
            json!({}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["version"], version);
    assert_ne!(rotated["signature"], json!(signature));
    let reply = sign_in(
        app,
        json!({ "household": "H1", "version": version, "signature": signature }),
    )
    .await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "sign_in_failed", None);
    let (status, s, _) = sign_in(app, json!({ "household": "H1", "version": rotated["version"], "signature": rotated["signature"] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(
        app.get_ok(COMPANY_K01, "/v1/households/H1/link").await["version"],
        rotated["version"]
    );
}

async fn resident_sessions_expire(app: &TestApp) {
    let (status, r, _) = app
        .post(
            COMPANY_K01,
            "/v1/households/H1/pin",
            json!({ "pin": "432187" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, s, _) = sign_in(app, json!({ "household": "H1", "pin": "432187" })).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let token = s["token"].as_str().expect("token").to_string();
    app.get_ok(&token, "/v1/households/H1").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = app.get(&token, "/v1/households/H1").await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED, "unauthorized", None);
}

// ---------------------------------------------------------------------------------------------
// 8. The OpenAPI document matches the server
// ---------------------------------------------------------------------------------------------

/// POST operations that move money: each must declare the Idempotency-Key header.
const MONEY: &[&str] = &[
    "/v1/topups",
    "/v1/sales",
    "/v1/sales/{sale}/refunds",
    "/v1/topups/{topup}/void",
    "/v1/vouchers/{code}/void",
    "/v1/vouchers/{code}/exchange",
    "/v1/households/{household}/credit-refunds",
    "/v1/households/{household}/move-out",
    "/v1/expenses",
    "/v1/stock-receipts",
    "/v1/entries/{entry}/reversal",
    "/v1/fees/bills",
    "/v1/fees/payments",
    "/v1/till/fee-payments",
    "/v1/months/{month}/close",
    "/v1/settlements",
];

/// POST operations that move no money.
const NOT_MONEY: &[&str] = &[
    "/v1/companies",
    "/v1/compounds",
    "/v1/cooperatives",
    "/v1/shops",
    "/v1/households",
    "/v1/catalog",
    "/v1/tokens",
    "/v1/tokens/{id}/revoke",
    "/v1/resident/sessions",
    "/v1/households/{household}/pin",
    "/v1/households/{household}/link/rotate",
    "/v1/master-changes",
];

fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .expect("closing brace");
        out.push_str(match &rest[start + 1..end] {
            "sale" | "entry" | "id" => "999999",
            "household" => "NOPE",
            "code" => "AAAAA-AAAAA",
            "month" => "2026-11",
            "company" => "K99",
            _ => "x1",
        });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn is_fallback(reply: &Reply) -> bool {
    (reply.0 == StatusCode::NOT_FOUND && reply.1["detail"] == json!("no such route"))
        || reply.0 == StatusCode::METHOD_NOT_ALLOWED
}

async fn openapi_matches_server(app: &TestApp) {
    let (_, doc, _) = app
        .request(Method::GET, None, "/openapi.json", None, None)
        .await;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            let method: Method = match method.as_str() {
                "get" | "post" | "put" | "patch" | "delete" => {
                    method.to_uppercase().parse().expect("method")
                }
                _ => continue,
            };
            operations.insert((method.to_string(), path.clone()));
            let body = (method == Method::POST).then(|| json!({}));
            let key = app.key();
            let reply = app
                .request(
                    method.clone(),
                    Some(ADMIN),
                    &fill(path),
                    body.as_ref(),
                    Some(&key),
                )
                .await;
            assert!(
                !is_fallback(&reply),
                "{method} {path} is in the document but not served: {:?} {}",
                reply.0,
                reply.1
            );
            assert!(reply.0.as_u16() < 500, "{method} {path}: {}", reply.1);

            if method == Method::POST {
                let declares_key = op["parameters"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["name"] == json!("Idempotency-Key")
                            && p["in"] == json!("header")
                            && p["required"] == json!(true)
                    })
                });
                assert!(
                    MONEY.contains(&path.as_str()) || NOT_MONEY.contains(&path.as_str()),
                    "POST {path} is new: add it to MONEY or NOT_MONEY"
                );
                assert_eq!(
                    declares_key,
                    MONEY.contains(&path.as_str()),
                    "POST {path}: Idempotency-Key declared = {declares_key}"
                );
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has responses"
            );
        }
    }
    for path in MONEY.iter().chain(NOT_MONEY) {
        assert!(
            operations.contains(&("POST".to_string(), path.to_string())),
            "POST {path} is missing from the document"
        );
    }
    for get in [
        "/v1/vouchers/{code}",
        "/v1/vouchers/{code}/qr.svg",
        "/v1/households/{household}",
        "/v1/households/{household}/history",
        "/v1/households/{household}/link",
        "/v1/audit/head",
        "/v1/audit/verify",
        "/healthz",
        "/metrics",
    ] {
        assert!(
            operations.contains(&("GET".to_string(), get.to_string())),
            "GET {get} is missing from the document"
        );
    }

    // What is not in the document is not served.
    for (method, path) in [
        (Method::GET, "/v1/nothing"),
        (Method::POST, "/healthz"),
        (Method::DELETE, "/v1/topups"),
        (Method::GET, "/v1/sales"),
        (Method::PUT, "/v1/households/H1"),
        (Method::GET, "/v1/tokens"),
        (Method::GET, "/v1"),
        (Method::GET, "/v2/topups"),
    ] {
        let key = app.key();
        let body = (method != Method::GET).then(|| json!({}));
        let reply = app
            .request(method.clone(), Some(ADMIN), path, body.as_ref(), Some(&key))
            .await;
        assert!(
            is_fallback(&reply),
            "{method} {path} is served but not in the document: {:?} {}",
            reply.0,
            reply.1
        );
        assert_eq!(content_type(&reply.2), "application/problem+json");
    }
    // And whatever SPEC §9 lists that the server answers is in the document.
    for (method, path) in [
        ("POST", "/v1/fees/bills"),
        ("POST", "/v1/fees/payments"),
        ("POST", "/v1/months/{month}/close"),
        ("POST", "/v1/settlements"),
        ("GET", "/v1/companies/{company}/statements/{month}"),
    ] {
        let key = app.key();
        let m: Method = method.parse().expect("method");
        let body = (m == Method::POST).then(|| json!({}));
        let reply = app
            .request(m, Some(ADMIN), &fill(path), body.as_ref(), Some(&key))
            .await;
        if !is_fallback(&reply) {
            assert!(
                operations.contains(&(method.to_string(), path.to_string())),
                "{method} {path} is served but not documented"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the cooperative owes each company (GET /v1/settlements, the /coop page's table)

/// The accountant's view of what the cooperative owes each company: nothing before any close,
/// who may ask, and then (on a hand-moved clock, so October can have sales and be closed)
/// exactly the close's per-company shares, less what is settled, as each company's statement
/// states it.
async fn settlements_owed_per_company(app: &TestApp) {
    // Nothing owed yet: an empty list and zero totals for the accountant's own cooperative.
    let r = app.get_ok(ACCOUNTANT_COOP, "/v1/settlements").await;
    assert_eq!(r["cooperative"], json!("COOP"));
    assert_eq!(r["month"], json!("2026-11"));
    assert_eq!(r["as_of"], json!(TODAY));
    assert_eq!(r["companies"], json!([]));
    for k in ["opening", "allocated", "settled", "outstanding"] {
        assert_eq!(r["total"][k], json!("0.00"), "{k}");
    }
    // Who may ask, and what is checked.
    for token in [COMPANY_K01, CASHIER_S1, RESIDENT_H1] {
        let reply = app.get(token, "/v1/settlements").await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let reply = app
        .get(ACCOUNTANT_COOP, "/v1/settlements?cooperative=COOP2")
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = app
        .get(ACCOUNTANT_COOP, "/v1/settlements?month=2026-13")
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("month"),
    );
    let reply = app
        .get(ACCOUNTANT_COOP, "/v1/settlements?mnth=2026-10")
        .await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("query"),
    );
    let reply = app.get(ADMIN, "/v1/settlements").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("cooperative"),
    );
    let reply = app.get(ADMIN, "/v1/settlements?cooperative=NOPE").await;
    assert_problem(
        &reply,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("cooperative"),
    );

    // A month with profit, closed and partly settled.
    let fx = ClockedApp::start(app.backend).await;
    fx.clock.set(day("2026-10-05"));
    for company in [COMPANY_K01, COMPANY_K02] {
        let (status, body, _) = fx
            .post(company, "/v1/fees/bills", json!({ "month": "2026-10" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for household in ["H1", "H3"] {
        let (status, body, _) = fx
            .post(
                CASHIER_S1,
                "/v1/topups",
                json!({ "household": household, "paid": "500.00", "method": "cash" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let card = fx
            .get(ADMIN, &format!("/v1/households/{household}/link"))
            .await["url"]
            .clone();
        let sale = json!({ "household": household, "amount": "400.00",
            "tenders": [{ "type": "wallet", "amount": "400.00" }], "resident": { "card": card } });
        let (status, body, _) = fx.post(CASHIER_S1, "/v1/sales", sale).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    fx.clock.set(day("2026-11-02"));
    let (status, close, _) = fx
        .post(ACCOUNTANT_COOP, "/v1/months/2026-10/close", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{close}");
    let shares: BTreeMap<String, Amount> = close["companies"]
        .as_array()
        .expect("companies")
        .iter()
        .map(|c| {
            (
                c["company"].as_str().unwrap().to_string(),
                amount(&c["amount"]),
            )
        })
        .collect();
    assert_eq!(shares.keys().collect::<Vec<_>>(), ["K01", "K02"], "{close}");
    let k01 = shares["K01"];
    assert!(k01 > Amount::parse("10.00").unwrap(), "{close}");
    // Each household's fee view shows what the close credited it: on the credit-spend basis
    // the one spender of each company takes that company's whole share.
    for (household, company) in [("H1", "K01"), ("H3", "K02")] {
        let fees = fx
            .get(ADMIN, &format!("/v1/households/{household}/fees"))
            .await;
        let share = shares[company].to_string();
        assert_eq!(
            fees["covered"],
            json!([{ "cooperative": "COOP", "month": "2026-10", "amount": share }]),
            "{fees}"
        );
        assert_eq!(fees["covered_total"], json!(share));
    }
    let position = |opening: &str, allocated: Amount, settled: &str, outstanding: Amount| {
        json!({ "opening": opening, "allocated": allocated.to_string(), "collected": "0.00", "settled": settled,
            "outstanding": outstanding.to_string() })
    };
    let strip = |mut v: Value| {
        v.as_object_mut().expect("object").remove("company");
        v
    };
    // The close is posted on 2 November, for October: October's allocation, brought forward
    // into November.
    let october = fx
        .get(ACCOUNTANT_COOP, "/v1/settlements?month=2026-10")
        .await;
    let zero = Amount::ZERO;
    for c in october["companies"].as_array().unwrap() {
        let share = shares[c["company"].as_str().unwrap()];
        assert_eq!(strip(c.clone()), position("0.00", share, "0.00", share));
    }
    assert_eq!(october["total"]["allocated"], close["allocated"]);
    let november = fx.get(ACCOUNTANT_COOP, "/v1/settlements").await;
    assert_eq!(november["month"], json!("2026-11"));
    assert_eq!(november["as_of"], json!("2026-11-02"));
    let list = november["companies"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{november}");
    for c in list {
        let share = shares[c["company"].as_str().unwrap()];
        assert_eq!(
            strip(c.clone()),
            position(&share.to_string(), zero, "0.00", share)
        );
    }
    assert_eq!(november["total"]["allocated"], json!("0.00"));
    assert_eq!(november["total"]["outstanding"], close["allocated"]);

    // Ten yuan paid to K01: settled 10.00, outstanding 10.00 less, the same as K01's statement.
    let (status, paid, _) = fx
        .post(
            ACCOUNTANT_COOP,
            "/v1/settlements",
            json!({ "company": "K01", "amount": "10.00", "reference": "BANK-7" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    let left = k01.checked_sub(Amount::parse("10.00").unwrap()).unwrap();
    assert_eq!(paid["outstanding"], json!(left.to_string()));
    let after = fx.get(ACCOUNTANT_COOP, "/v1/settlements").await;
    assert_eq!(
        strip(after["companies"][0].clone()),
        position(&k01.to_string(), zero, "10.00", left)
    );
    assert_eq!(after["companies"][1], list[1]);
    assert_eq!(after["total"]["settled"], json!("10.00"));
    let statement = fx
        .get(COMPANY_K01, "/v1/companies/K01/statements/2026-11")
        .await;
    assert_eq!(
        statement["cooperatives"][0],
        json!({ "cooperative": "COOP", "cooperative_name": "红心农场合作社",
            "opening": k01.to_string(), "allocated": "0.00", "collected": "0.00",
            "settled": "10.00", "outstanding": left.to_string() })
    );
    // An admin names the cooperative and sees the same.
    let admin = fx.get(ADMIN, "/v1/settlements?cooperative=COOP").await;
    assert_eq!(admin["companies"], after["companies"]);
    fx.stop().await;
}

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// 换新券 over HTTP: an expired voucher with credit left looks up as `expired` and
/// `exchangeable`, a cashier exchanges it (the same key replays the same new code), the new code
/// sells, the old one is refused as `voucher_exchanged`; refusals name the code.
async fn voucher_exchange(app: &TestApp) {
    let fx = ClockedApp::start(app.backend).await;
    let (status, topup, _) = fx
        .post(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H1", "paid": "100.00", "method": "cash", "deliver": "voucher" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{topup}");
    let code = topup["voucher"]["code"].as_str().expect("code").to_string();
    // Not expired yet: refused.
    let reply = fx
        .post(
            CASHIER_S1,
            &format!("/v1/vouchers/{code}/exchange"),
            json!({}),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::CONFLICT,
        "voucher_not_exchangeable",
        Some("code"),
    );
    fx.clock.set(day("2029-10-02"));
    let v = fx.get(CASHIER_S1, &format!("/v1/vouchers/{code}")).await;
    assert_eq!(v["status"], json!("expired"));
    assert_eq!(v["exchangeable"], json!(true));
    assert_eq!(v["balance"], json!("110.00"));

    let send = |key: &'static str| {
        fx.client
            .post(format!("{}/v1/vouchers/{code}/exchange", fx.base))
            .bearer_auth(CASHIER_S1)
            .header("Idempotency-Key", key)
            .json(&json!({}))
            .send()
    };
    let first = send("exchange-1").await.expect("POST");
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["paid"], json!("100.00"));
    assert_eq!(first["bonus"], json!("10.00"));
    assert_eq!(first["voucher"]["balance"], json!("110.00"));
    assert_eq!(first["voucher"]["expires_on"], json!("2032-10-02"));
    let again: Value = send("exchange-1")
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(again, first, "the same key replays the same exchange");
    let new_code = first["voucher"]["code"].as_str().expect("new code");
    let v = fx
        .get(CASHIER_S1, &format!("/v1/vouchers/{new_code}"))
        .await;
    assert_eq!(v["status"], json!("active"));
    assert_eq!(v["exchangeable"], json!(false));

    // The new code sells; the old one is refused with its own code, and cannot be exchanged again.
    let (status, sale, _) = fx
        .post(
            CASHIER_S1,
            "/v1/sales",
            json!({ "amount": "11.00", "tenders": [{ "type": "voucher", "amount": "11.00", "code": new_code }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sale}");
    let reply = fx
        .post(
            CASHIER_S1,
            "/v1/sales",
            json!({ "amount": "1.00", "tenders": [{ "type": "voucher", "amount": "1.00", "code": code }] }),
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::CONFLICT,
        "voucher_exchanged",
        Some("tenders[0].code"),
    );
    let reply = send("exchange-2").await.expect("POST");
    let status = reply.status();
    let body: Value = reply.json().await.expect("json");
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], json!("voucher_exchanged"));
    // Checked at the till, the old code says so too.
    for (token, status, problem) in [
        (CASHIER_S1, StatusCode::CONFLICT, "voucher_exchanged"),
        (ADMIN, StatusCode::CONFLICT, "voucher_exchanged"),
    ] {
        let r = fx
            .client
            .get(format!("{}/v1/vouchers/{code}", fx.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), status, "{token}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], json!(problem), "{token}: {body}");
    }
    // Only a cashier (or an admin) exchanges.
    let reply = fx
        .post(
            ACCOUNTANT_COOP,
            &format!("/v1/vouchers/{new_code}/exchange"),
            json!({}),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    fx.stop().await;
}

/// A server on a business clock moved by hand, on a fresh database of the same backend, with
/// the shared master data and tokens: for tests that need a past month with sales to close.
struct ClockedApp {
    base: String,
    clock: hongxin::clock::Clock,
    client: reqwest::Client,
    running: hongxin::http::Running,
    next_key: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
    _pg: Option<pg_support::TestDatabase>,
}

impl ClockedApp {
    async fn start(backend: Backend) -> ClockedApp {
        use hongxin::domain::{
            Command, NewCompany, NewCompound, NewCooperative, NewHousehold, NewShop, NewToken,
            Receipt,
        };
        let dir = tempfile::tempdir().expect("temporary directory");
        let (database, pg, key_file) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("clocked.db").display()),
                None,
                None,
            ),
            Backend::Postgres => {
                let db = pg_support::fresh_database().await;
                (db.url.clone(), Some(db), Some(dir.path().join("keys.toml")))
            }
        };
        let settings = hongxin::app::Settings {
            database,
            policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
            key_file,
            today: None,
        };
        let clock = hongxin::clock::Clock::manual(day("2026-10-01"));
        let app = hongxin::app::App::open_with_clock(&settings, clock.clone())
            .await
            .expect("App::open on a fresh database");
        let mut commands = vec![
            Command::CreateCooperative(NewCooperative {
                code: "COOP".into(),
                name: "红心农场合作社".into(),
            }),
            Command::CreateShop(NewShop {
                code: "S1".into(),
                name: "shop S1".into(),
                cooperative: "COOP".into(),
            }),
        ];
        for code in ["K01", "K02"] {
            commands.push(Command::CreateCompany(NewCompany {
                code: code.into(),
                name: format!("物业 {code}"),
            }));
        }
        for (code, company) in [("HX01", "K01"), ("HX02", "K02")] {
            commands.push(Command::CreateCompound(NewCompound {
                code: code.into(),
                name: format!("小区 {code}"),
                company: company.into(),
                eligible: true,
            }));
        }
        for (code, compound) in [("H1", "HX01"), ("H3", "HX02")] {
            commands.push(Command::CreateHousehold(NewHousehold {
                code: code.into(),
                compound: compound.into(),
                area_m2: "87.35".parse().expect("area"),
                name: None,
                building: None,
                grid: None,
            }));
        }
        for (secret, role, scope) in TOKENS {
            if [ADMIN, CASHIER_S1, ACCOUNTANT_COOP, COMPANY_K01, COMPANY_K02].contains(secret) {
                commands.push(Command::CreateToken(NewToken {
                    parent: None,
                    hash: hongxin::http::extract::token_hash(secret),
                    role: *role,
                    scope: scope.map(str::to_string),
                    label: None,
                    expires_at: None,
                }));
            }
        }
        for c in commands {
            let what = format!("{c:?}");
            match app.run(c).await {
                Ok(Ok(Receipt::Created(_))) => {}
                other => panic!("seeding {what}: {other:?}"),
            }
        }
        let running = hongxin::http::Running::start(
            hongxin::http::AppState::new(app, HttpConfig::default()),
            "127.0.0.1:0",
        )
        .await
        .expect("start the server on port 0");
        ClockedApp {
            base: format!("http://{}", running.addr),
            clock,
            client: reqwest::Client::new(),
            running,
            next_key: std::sync::atomic::AtomicU64::new(1),
            _dir: dir,
            _pg: pg,
        }
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        let n = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("clocked-{n}"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    async fn stop(self) {
        let _ = self.running.shutdown().await;
    }
}

macro_rules! on_every_backend {
    ($($name:ident($config:expr);)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
    topups(HttpConfig::default());
    sales_and_refunds(HttpConfig::default());
    vouchers(HttpConfig::default());
    voucher_exchange(HttpConfig::default());
    household_and_history(HttpConfig::default());
    credit_refunds(HttpConfig::default());
    topup_voids(HttpConfig::default());
    till_topups(HttpConfig::default());
    back_office(HttpConfig::default());
    master_data(HttpConfig::default());
    master_changes(HttpConfig::default());
    tokens(HttpConfig::default());
    operations(HttpConfig::default());
    rejections(HttpConfig::default());
    body_limit(HttpConfig { body_limit: 1024, ..HttpConfig::default() });
    optional_bodies(HttpConfig::default());
    no_bad_input_is_a_500(HttpConfig::default());
    idempotency(HttpConfig::default());
    access_matrix(HttpConfig::default());
    concurrent_spending(HttpConfig::default());
    rate_limits(small_quotas());
    residents(HttpConfig::default());
    resident_sessions_expire(HttpConfig { resident_session: std::time::Duration::from_secs(1), ..HttpConfig::default() });
    openapi_matches_server(HttpConfig::default());
    settlements_owed_per_company(HttpConfig::default());
    household_fees(HttpConfig::default());
    company_months(HttpConfig::default());
    topup_quotes(HttpConfig::default());
    till_catalog(HttpConfig::default());
}

/// `POST /v1/master-changes` and the history `GET /v1/master-changes`: the admin changes any
/// master data and reads every change, filtered by subject and code; a company office corrects
/// its own households' area and name and reads one of its households' history, nothing else.
/// Each change in the history names who made it (the token's label and role).
async fn master_changes(app: &TestApp) {
    let before = app.head().await;
    let change = |subject: &str, code: &str, field: &str, value: &str, from: Option<&str>| {
        let mut body = json!({ "subject": subject, "code": code, "field": field, "value": value });
        if let Some(from) = from {
            body["effective_from"] = json!(from);
        }
        body
    };
    // The company corrects its own household's area from December's bill, and another's name.
    let (status, r, _) = app
        .post_keyed(
            COMPANY_K01,
            "/v1/master-changes",
            change("household", "H1", "area_m2", "90.00", Some("2026-12")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (&r["old"], &r["new"], &r["effective_from"]),
        (&json!("87.35"), &json!("90.00"), &json!("2026-12-01"))
    );
    assert_eq!(app.household("H1").await["area_m2"], json!("90.00"));
    let (status, r, _) = app
        .post_keyed(
            COMPANY_K01,
            "/v1/master-changes",
            change("household", "H2", "name", "李四", None),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!((&r["old"], &r["new"]), (&Value::Null, &json!("李四")));

    // What the company may not do is refused and changes nothing: a compound, another
    // company's household, a field it does not correct, and the ledger's own refusals.
    let seq = app.head().await;
    let reply = app
        .post_keyed(
            COMPANY_K01,
            "/v1/master-changes",
            change("compound", "HX01", "eligible", "false", Some("2026-12-01")),
        )
        .await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    for (token, household) in [(COMPANY_K01, "H3"), (COMPANY_K02, "H1")] {
        let reply = app
            .post_keyed(
                token,
                "/v1/master-changes",
                change("household", household, "area_m2", "70.00", Some("2026-12")),
            )
            .await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("code"));
    }
    // Refused, each naming its field: (area, from, field).
    for (area, from, field) in [
        ("90.00", Some("2027-01"), "value"),
        ("95.00", None, "effective_from"),
        ("95.00", Some("2026-11-15"), "effective_from"),
    ] {
        let reply = app
            .post_keyed(
                COMPANY_K01,
                "/v1/master-changes",
                change("household", "H1", "area_m2", area, from),
            )
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some(field),
        );
    }
    assert_eq!(app.head().await, seq, "refusals post nothing");
    assert_eq!(app.household("H1").await["area_m2"], json!("90.00"));

    // The admin switches HX01 out from a day and moves HX02 to K01 from a month.
    for body in [
        change("compound", "HX01", "eligible", "false", Some("2026-12-01")),
        change("compound", "HX02", "company", "K01", Some("2026-12")),
    ] {
        let (status, r, _) = app.post_keyed(ADMIN, "/v1/master-changes", body).await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }
    assert_eq!(app.head().await, before + 4);

    // The admin's history: every change oldest first, by subject, by subject and code.
    let all = app.get_ok(ADMIN, "/v1/master-changes").await;
    let all = all.as_array().expect("changes");
    let got: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|c| {
            (
                c["code"].as_str().unwrap_or(""),
                c["field"].as_str().unwrap_or(""),
                c["new"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("H1", "area_m2", "90.00"),
            ("H2", "name", "李四"),
            ("HX01", "eligible", "false"),
            ("HX02", "company", "K01"),
        ]
    );
    assert_eq!(all[0]["actor_label"], json!(format!("test {COMPANY_K01}")));
    assert_eq!(all[0]["actor_role"], json!("company"));
    assert_eq!(all[3]["actor_label"], json!(format!("test {ADMIN}")));
    assert_eq!(all[3]["actor_role"], json!("admin"));
    assert_eq!(all[3]["old"], json!("K02"));
    assert_eq!(all[3]["effective_from"], json!("2026-12-01"));
    let compounds = app
        .get_ok(ADMIN, "/v1/master-changes?subject=compound")
        .await;
    assert_eq!(compounds.as_array().map(Vec::len), Some(2));
    let hx02 = app
        .get_ok(ADMIN, "/v1/master-changes?subject=compound&code=HX02")
        .await;
    assert_eq!(hx02.as_array().map(Vec::len), Some(1));
    assert_eq!(hx02[0], all[3]);
    let none = app
        .get_ok(ADMIN, "/v1/master-changes?subject=household&code=HX02")
        .await;
    assert_eq!(none, json!([]));
    let reply = app.get(ADMIN, "/v1/master-changes?code=bad%20code").await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("code"),
    );

    // The company reads one of its own households' history, and nothing else.
    let h1 = app
        .get_ok(COMPANY_K01, "/v1/master-changes?subject=household&code=H1")
        .await;
    assert_eq!(h1, json!([all[0].clone()]));
    for query in ["", "?subject=household", "?subject=compound&code=HX01"] {
        let reply = app
            .get(COMPANY_K01, &format!("/v1/master-changes{query}"))
            .await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    let reply = app
        .get(COMPANY_K02, "/v1/master-changes?subject=household&code=H1")
        .await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", Some("code"));
    for token in [CASHIER_S1, ACCOUNTANT_COOP, RESIDENT_H1] {
        let reply = app
            .get(token, "/v1/master-changes?subject=household&code=H1")
            .await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    app.assert_verifies().await;
}

/// `GET /v1/households/{h}/fees` (the resident's page): balance, arrears by age, the recent
/// months exactly as the company's statement lines report them with what is still unpaid of
/// each month's bill, and what month closes covered; for the household's resident, its company
/// and admins only.
async fn household_fees(app: &TestApp) {
    // Before any bill: nothing owed, no months, nothing covered.
    let empty = app.get_ok(RESIDENT_H1, "/v1/households/H1/fees").await;
    assert_eq!(
        empty,
        json!({
            "household": "H1", "company": "K01", "as_of": TODAY,
            "balance": "0.00", "arrears": "0.00", "prepaid": "0.00",
            "arrears_by_age": { "0-30": "0.00", "31-90": "0.00", "91-180": "0.00", "over-180": "0.00" },
            "months": [], "covered": [], "covered_total": "0.00"
        })
    );

    // H2 pays ahead; November is billed (87.35 m² × 0.55 = 48.04); H1 pays part of its bill.
    let (status, body, _) = app
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H2", "amount": "100.00", "method": "cash", "reference": "R-H2" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, _) = app
        .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": "2026-11" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, _) = app
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": "20.00", "method": "wechat", "reference": "R-H1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let h1 = app.get_ok(RESIDENT_H1, "/v1/households/H1/fees").await;
    assert_eq!(
        h1,
        json!({
            "household": "H1", "company": "K01", "as_of": TODAY,
            "balance": "28.04", "arrears": "28.04", "prepaid": "0.00",
            "arrears_by_age": { "0-30": "28.04", "31-90": "0.00", "91-180": "0.00", "over-180": "0.00" },
            "months": [{
                "month": "2026-11", "opening": "0.00", "billed": "48.04", "paid": "20.00",
                "covered": "0.00", "closing": "28.04", "outstanding": "28.04"
            }],
            "covered": [], "covered_total": "0.00"
        })
    );
    let h2 = app.get_ok(ADMIN, "/v1/households/H2/fees?months=2").await;
    assert_eq!(h2["balance"], json!("-51.96"));
    assert_eq!(h2["arrears"], json!("0.00"));
    assert_eq!(h2["prepaid"], json!("51.96"));
    assert_eq!(
        h2["months"],
        json!([{
            "month": "2026-11", "opening": "0.00", "billed": "48.04", "paid": "100.00",
            "covered": "0.00", "closing": "-51.96", "outstanding": "0.00"
        }])
    );

    // The same figures as the household answer and the company's statement line.
    let household = app.household("H1").await;
    for field in ["balance", "arrears", "prepaid", "arrears_by_age"] {
        assert_eq!(h1[field], household["fees"][field], "{field}");
    }
    let statement = app
        .get_ok(COMPANY_K01, "/v1/companies/K01/statements/2026-11")
        .await;
    let line = statement["households"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["household"] == json!("H1"))
        .expect("H1's line")
        .clone();
    for (mine, theirs) in [
        ("opening", "opening"),
        ("billed", "billed"),
        ("paid", "paid"),
        ("covered", "allocated"),
        ("closing", "closing"),
    ] {
        assert_eq!(h1["months"][0][mine], line[theirs], "{mine}");
    }
    assert_eq!(
        app.get_ok(COMPANY_K01, "/v1/households/H1/fees").await,
        h1,
        "the company sees what the resident sees"
    );

    // Nobody else's: another resident or company finds no such household; till and
    // cooperative staff may not ask.
    for (token, path) in [
        (RESIDENT_H1, "/v1/households/H2/fees"),
        (RESIDENT_H3, "/v1/households/H1/fees"),
        (COMPANY_K02, "/v1/households/H1/fees"),
        (ADMIN, "/v1/households/NOPE/fees"),
    ] {
        let reply = app.get(token, path).await;
        assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    }
    for token in [CASHIER_S1, ACCOUNTANT_COOP] {
        let reply = app.get(token, "/v1/households/H1/fees").await;
        assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    }
    for bad in ["0", "13", "x"] {
        let reply = app
            .get(ADMIN, &format!("/v1/households/H1/fees?months={bad}"))
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("months"),
        );
    }
}

/// The office page's month series: per month the statement's totals and whether a cooperative
/// closed it; months before the first closed one or the first fee movement are left out.
async fn company_months(app: &TestApp) {
    let path = "/v1/companies/K01/months";
    // Nothing billed yet: no month to show.
    let none = app.get_ok(COMPANY_K01, path).await;
    assert_eq!(
        none,
        json!({ "company": "K01", "as_of": TODAY, "latest_closed": null, "months": [] })
    );

    for month in ["2026-09", "2026-10", "2026-11"] {
        let (status, body, _) = app
            .post_keyed(COMPANY_K01, "/v1/fees/bills", json!({ "month": month }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body, _) = app
        .post_keyed(
            COMPANY_K01,
            "/v1/fees/payments",
            json!({ "household": "H1", "amount": "100.00", "method": "cash", "reference": "R-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for month in ["2026-09", "2026-10"] {
        let (status, body, _) = app
            .post_keyed(
                ACCOUNTANT_COOP,
                &format!("/v1/months/{month}/close"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{month}: {body}");
    }

    let months = app.get_ok(COMPANY_K01, &format!("{path}?last=3")).await;
    assert_eq!(months["latest_closed"], json!("2026-10"));
    let list = months["months"].as_array().expect("months");
    let names: Vec<&str> = list.iter().map(|m| m["month"].as_str().unwrap()).collect();
    assert_eq!(names, ["2026-09", "2026-10", "2026-11"]);
    let closed: Vec<&Value> = list.iter().map(|m| &m["closed"]).collect();
    assert_eq!(closed, [&json!(true), &json!(true), &json!(false)]);
    // Each month is its statement's totals, exactly.
    for m in list {
        let month = m["month"].as_str().unwrap();
        let st = app
            .get_ok(
                COMPANY_K01,
                &format!("/v1/companies/K01/statements/{month}"),
            )
            .await;
        let t = &st["totals"];
        assert_eq!(
            m,
            &json!({
                "month": month, "closed": m["closed"], "opening": t["opening"],
                "billed": t["billed"], "paid": t["paid"], "covered": t["allocated"],
                "closing": t["closing"], "ties_out": true,
            })
        );
    }
    let figures: Vec<[&str; 4]> = list
        .iter()
        .map(|m| {
            [
                m["opening"].as_str().unwrap(),
                m["billed"].as_str().unwrap(),
                m["paid"].as_str().unwrap(),
                m["closing"].as_str().unwrap(),
            ]
        })
        .collect();
    assert_eq!(figures, MONTHS_K01);

    // The default asks twelve months; the empty open ones before September are left out. An admin
    // names the company and sees the same.
    assert_eq!(app.get_ok(COMPANY_K01, path).await, months);
    assert_eq!(app.get_ok(ADMIN, path).await, months);
    let one = app.get_ok(COMPANY_K01, &format!("{path}?last=1")).await;
    assert_eq!(one["months"], json!([list[2]]));
    assert_eq!(one["latest_closed"], Value::Null);

    for bad in ["?last=0", "?last=25", "?last=x", "?last=-1"] {
        let reply = app.get(COMPANY_K01, &format!("{path}{bad}")).await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("last"),
        );
    }
    let reply = app.get(COMPANY_K01, &format!("{path}?months=3")).await;
    assert_problem(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("query"),
    );
    // Another company's months do not exist for K02; other roles may not ask.
    let reply = app.get(COMPANY_K02, path).await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
    let reply = app.get(CASHIER_S1, path).await;
    assert_problem(&reply, StatusCode::FORBIDDEN, "forbidden", None);
    let reply = app.get(ADMIN, "/v1/companies/NOPE/months").await;
    assert_problem(&reply, StatusCode::NOT_FOUND, "not_found", None);
}

/// K01's September to November in [`company_months`]: opening, billed, paid, closing.
/// The three bills are posted on the business date, in November, and each counts in the month
/// it is for; the payment counts in November, when it was made.
const MONTHS_K01: [[&str; 4]; 3] = [
    ["0.00", "139.76", "0.00", "139.76"],
    ["139.76", "139.76", "0.00", "279.52"],
    ["279.52", "139.76", "100.00", "319.28"],
];

/// The till's top-up preview: the policy's own computation, nothing posted, the same refusals
/// (code and field) as the top-up itself; voucher top-ups count toward the monthly bonus too.
async fn topup_quotes(app: &TestApp) {
    let quote = |q: &str| format!("/v1/topups/quote?{q}");
    let head = app.head().await;
    let q = app
        .get_ok(CASHIER_S1, &quote("household=H1&paid=100.00"))
        .await;
    assert_eq!(
        q,
        json!({
            "household": "H1", "paid": "100.00", "bonus": "10.00", "credited": "110.00",
            "method": "cash", "deliver": "wallet", "wallet": "0.00", "wallet_after": "110.00",
            "bonus_this_month": "0.00", "bonus_room_after": "90.00", "bonus_capped": false,
            "policy": POLICY_V1, "business_date": TODAY,
        })
    );
    assert_eq!(app.head().await, head, "a quote posted something");

    // The top-up credits exactly what was quoted.
    let r = app.top_up(CASHIER_S1, "H1", "100.00", "wallet").await;
    assert_eq!((&r["bonus"], &r["credited"]), (&q["bonus"], &q["credited"]));
    assert_eq!(r["wallet"]["total"], q["wallet_after"]);
    app.top_up(CASHIER_S1, "H1", "50.00", "voucher").await;
    let q = app
        .get_ok(
            CASHIER_S1,
            &quote("household=H1&paid=150&method=wechat&deliver=voucher"),
        )
        .await;
    assert_eq!(
        (
            &q["paid"],
            &q["bonus"],
            &q["credited"],
            &q["method"],
            &q["deliver"]
        ),
        (
            &json!("150.00"),
            &json!("15.00"),
            &json!("165.00"),
            &json!("wechat"),
            &json!("voucher")
        )
    );
    assert_eq!(
        (
            &q["wallet"],
            &q["wallet_after"],
            &q["bonus_this_month"],
            &q["bonus_room_after"]
        ),
        (
            &json!("110.00"),
            &json!("110.00"),
            &json!("15.00"),
            &json!("70.00")
        )
    );

    // Refusals, each as the top-up gives it.
    for (query, status, code, field) in [
        (
            "household=H1&paid=30.00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_whole_units",
            "paid",
        ),
        (
            "household=H1&paid=12.345",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_amount",
            "paid",
        ),
        (
            "household=H1&paid=1050.00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cap_exceeded",
            "paid",
        ),
        (
            "household=H1&paid=950.00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "cap_exceeded",
            "paid",
        ),
        (
            "household=H9&paid=50.00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_eligible",
            "household",
        ),
        (
            "household=NOPE&paid=50.00",
            StatusCode::NOT_FOUND,
            "not_found",
            "household",
        ),
        (
            "household=H1&paid=50.00&method=bank",
            StatusCode::UNPROCESSABLE_ENTITY,
            "method_not_accepted",
            "method",
        ),
    ] {
        let reply = app.get(CASHIER_S1, &quote(query)).await;
        assert_problem(&reply, status, code, Some(field));
        let (paid, rest) = query
            .split_once("&paid=")
            .map(|(h, p)| (p.split('&').next().unwrap_or(p), h))
            .unwrap();
        let household = rest.trim_start_matches("household=");
        let method = if query.ends_with("bank") {
            "bank"
        } else {
            "cash"
        };
        let (s, body, _) = app
            .post_keyed(
                CASHIER_S1,
                "/v1/topups",
                json!({ "household": household, "paid": paid, "method": method }),
            )
            .await;
        assert_eq!(
            (s, &body["code"]),
            (status, &json!(code)),
            "{query}: {body}"
        );
        assert_eq!(body["detail"], reply.1["detail"], "{query}");
    }
    let capped = app
        .get(CASHIER_S1, &quote("household=H1&paid=950.00"))
        .await;
    assert!(
        capped.1["detail"]
            .as_str()
            .unwrap()
            .contains("monthly bonus cap of 100.00 would be exceeded (85.00 left)"),
        "{}",
        capped.1
    );
    // Asked for, past the cap: the quote says the bonus is cut to what the cap allows, and
    // the top-up gives exactly that.
    app.top_up(CASHIER_S1, "H2", "500.00", "wallet").await;
    let q = app
        .get_ok(
            CASHIER_S1,
            &quote("household=H2&paid=1000.00&bonus=allowed"),
        )
        .await;
    assert_eq!(
        (
            &q["bonus"],
            &q["credited"],
            &q["bonus_capped"],
            &q["bonus_room_after"]
        ),
        (
            &json!("50.00"),
            &json!("1050.00"),
            &json!(true),
            &json!("0.00")
        )
    );
    let (s, r, _) = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H2", "paid": "1000.00", "method": "cash", "bonus": "allowed" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!((&r["bonus"], &r["credited"]), (&q["bonus"], &q["credited"]));
    assert_eq!(r["wallet"]["total"], q["wallet_after"]);
    let reply = app
        .post_keyed(
            CASHIER_S1,
            "/v1/topups",
            json!({ "household": "H2", "paid": "50.00", "method": "cash", "bonus": "some" }),
        )
        .await;
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);
    assert_problem(
        &app.get(CASHIER_S1, "/v1/topups/quote?household=H1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("query"),
    );
    assert_problem(
        &app.get(ADMIN, &quote("household=H1&paid=50.00")).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("shop"),
    );
    // An admin names the shop, whose cooperative's wallet the quote weighs.
    let admin = app
        .get_ok(ADMIN, &quote("household=H1&paid=50.00&shop=S1"))
        .await;
    assert_eq!(
        (&admin["credited"], &admin["wallet"], &admin["wallet_after"]),
        (&json!("55.00"), &json!("110.00"), &json!("165.00"))
    );
    assert_problem(
        &app.get(ADMIN, &quote("household=H1&paid=50.00&shop=NOPE"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("shop"),
    );
    let (status, _, _) = app
        .get(CASHIER_S1, &quote("household=H1&paid=50.00&shop=S2"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for token in [COMPANY_K01, ACCOUNTANT_COOP, RESIDENT_H1] {
        let (status, _, _) = app.get(token, &quote("household=H1&paid=50.00")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}");
    }
    assert_eq!(
        amount(&app.wallet("H1").await["total"]).to_string(),
        "110.00"
    );
}

/// The till's catalogue and line prices: priced exactly as a sale prices its lines.
async fn till_catalog(app: &TestApp) {
    let c = app.get_ok(CASHIER_S1, "/v1/catalog").await;
    assert_eq!(c["cooperative"], json!("COOP"));
    assert_eq!(
        c["items"],
        json!([
            { "sku": "APPLE", "name": "苹果", "unit": "斤", "price": "1.25", "initials": "pg" },
            { "sku": "EGG", "name": "鸡蛋", "unit": "个", "price": "0.95", "initials": "jd" },
            { "sku": "PEAR", "name": "梨", "unit": "斤", "price": "2.25", "initials": "l" },
            { "sku": "RICE", "name": "大米", "unit": "袋", "price": "37.80", "initials": "dm" },
        ])
    );
    assert_eq!(app.get_ok(ADMIN, "/v1/catalog?cooperative=COOP").await, c);
    // A packaged item gets its printed barcode, which the till's scanner reads; one that is
    // not 8 to 14 digits is refused, naming the field, and changes nothing.
    for bad in ["12AB5678", "1234567", "123456789012345"] {
        let reply = app
            .post(
                ACCOUNTANT_COOP,
                "/v1/catalog",
                json!({ "sku": "RICE", "name": "大米", "unit": "袋", "price": "37.80",
                        "cost": "30.00", "barcode": bad }),
                None,
            )
            .await;
        assert_problem(
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("barcode"),
        );
    }
    assert_eq!(app.get_ok(CASHIER_S1, "/v1/catalog").await, c);
    let (status, r, _) = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/catalog",
            json!({ "sku": "RICE", "name": "大米", "unit": "袋", "price": "37.80",
                    "cost": "30.00", "barcode": "6920000002016" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let with_barcode = app.get_ok(CASHIER_S1, "/v1/catalog").await;
    assert_eq!(
        with_barcode["items"][3],
        json!({ "sku": "RICE", "name": "大米", "unit": "袋", "price": "37.80", "initials": "dm",
                "barcode": "6920000002016" })
    );
    // One item per barcode: another SKU cannot take it, and nothing changes.
    let reply = app
        .post(
            ACCOUNTANT_COOP,
            "/v1/catalog",
            json!({ "sku": "EGG", "name": "鸡蛋", "unit": "个", "price": "0.95",
                    "cost": "0.70", "barcode": "6920000002016" }),
            None,
        )
        .await;
    assert_problem(
        &reply,
        StatusCode::CONFLICT,
        "already_exists",
        Some("barcode"),
    );
    assert_eq!(app.get_ok(CASHIER_S1, "/v1/catalog").await, with_barcode);
    assert_problem(
        &app.get(ADMIN, "/v1/catalog").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("cooperative"),
    );
    assert_problem(
        &app.get(ADMIN, "/v1/catalog?cooperative=NOPE").await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("cooperative"),
    );
    let (status, _, _) = app.get(CASHIER_S1, "/v1/catalog?cooperative=COOP2").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.get(COMPANY_K01, "/v1/catalog").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // 1.5 斤 × 1.25 = 1.875 → 1.88 (half-up, once per line); 3 × 0.95 = 2.85.
    let apple = app
        .get_ok(CASHIER_S1, "/v1/catalog/price?sku=APPLE&qty=1.50")
        .await;
    assert_eq!(
        apple,
        json!({ "sku": "APPLE", "name": "苹果", "unit": "斤", "price": "1.25", "qty": "1.5", "amount": "1.88" })
    );
    let egg = app
        .get_ok(CASHIER_S1, "/v1/catalog/price?sku=EGG&qty=3")
        .await;
    assert_eq!(egg["amount"], json!("2.85"));
    let sale = app
        .sell_ok(
            CASHIER_S1,
            json!({
                "lines": [{ "sku": "APPLE", "qty": "1.5" }, { "sku": "EGG", "qty": "3" }],
                "tenders": [{ "type": "cash", "amount": "4.73" }],
            }),
        )
        .await;
    assert_eq!(sale["total"], json!("4.73"));
    for (query, status, code, field) in [
        (
            "sku=APPLE&qty=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "qty",
        ),
        (
            "sku=APPLE&qty=1.2345",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "qty",
        ),
        (
            "sku=APPLE&qty=lots",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            "qty",
        ),
        ("sku=NOPE&qty=1", StatusCode::NOT_FOUND, "not_found", "sku"),
    ] {
        let reply = app
            .get(CASHIER_S1, &format!("/v1/catalog/price?{query}"))
            .await;
        assert_problem(&reply, status, code, Some(field));
    }
}
