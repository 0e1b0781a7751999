//! Cooperative reports and the Beancount export end to end (SPEC §7): a small ledger built
//! through the application on known dates, then the till report, the prepaid liability and its
//! custody deposit asserted to the fen, the export parsed back and summed per account against
//! hongxin's balances, and who may read which report over HTTP. Every body runs on each backend:
//! SQLite, and PostgreSQL where a server can be had (see `pg_support`).
//!
//! The ledger (cooperative COOP with shops S1 and S2, COOP2 with T1; see `common`):
//!
//! | date       | what                                                                    |
//! |------------|-------------------------------------------------------------------------|
//! | 2026-09-10 | S1: H1 tops up 600.00 cash → wallet 600.00 + 60.00                      |
//! | 2026-09-20 | S1: H2 tops up 500.00 cash as voucher V1 → 500.00 + 50.00               |
//! | 2026-09-25 | S1: H1 spends 110.00 from the wallet → 100.00 paid, 10.00 bonus         |
//! |            | quarter end: paid credit 500.00 (wallet) + 500.00 (V1) = 1000.00        |
//! | 2026-10-15 | S2: H4 tops up 100.00 cash                                              |
//! | 2026-11-15 | S1: H3 tops up 50.00 cash (the day before the report)                   |
//! | 2026-11-16 | S1: top-ups H1 100.00 cash, H3 200.00 WeChat as voucher V2, H2 50.00    |
//! |            | Alipay; sales A wallet 66.00, B cash 20.00, C V1 55.00 + cash 5.00,     |
//! |            | D WeChat 30.00; refunds of all of B and 33.00 of A.                     |
//! |            | S2: H4 tops up 50.00 cash, cash sale 10.00.                             |

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::*;
use hongxin::domain::{
    Command, Delivery, NewToken, PayMethod, Receipt, Role, Sale, Tender, TenderType, TopUp,
};
use hongxin::export::beancount;
use hongxin::http::extract::token_hash;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;
use hongxin::reports::{self, ShopFilter};

const REPORT_DAY: &str = "2026-11-16";

const ADMIN: &str = "r-admin";
const CASHIER_S1: &str = "r-cashier-s1";
const CASHIER_S2: &str = "r-cashier-s2";
const ACCOUNTANT: &str = "r-accountant-coop";
const ACCOUNTANT_COOP2: &str = "r-accountant-coop2";
const COMPANY: &str = "r-company-k01";
const RESIDENT: &str = "r-resident-h1";

const TOKENS: &[(&str, Role, Option<&str>)] = &[
    (ADMIN, Role::Admin, None),
    (CASHIER_S1, Role::Cashier, Some("S1")),
    (CASHIER_S2, Role::Cashier, Some("S2")),
    (ACCOUNTANT, Role::CoopAccountant, Some("COOP")),
    (ACCOUNTANT_COOP2, Role::CoopAccountant, Some("COOP2")),
    (COMPANY, Role::Company, Some("K01")),
    (RESIDENT, Role::Resident, Some("H1")),
];

fn tender(kind: TenderType, amount: &str) -> Tender {
    Tender {
        kind,
        amount: y(amount),
        code: None,
    }
}

fn top_up_at(
    shop: &str,
    household: &str,
    paid: &str,
    method: PayMethod,
    deliver: Delivery,
) -> TopUp {
    TopUp {
        shop: shop.into(),
        household: household.into(),
        paid: y(paid),
        method,
        deliver,
        bonus: Default::default(),
    }
}

/// The ledger of the table above, on business date 2026-11-16.
async fn build(backend: Backend) -> TestLedger {
    let mut l = TestLedger::on(backend, "2026-09-10").await;
    l.add_cooperative("COOP2", "T1").await;
    let topped = |r: Result<_, _>, what: &str| match r {
        Ok(r) => r,
        Err(e) => panic!("{what}: {e:?}"),
    };
    topped(l.top_up("H1", "600.00", Delivery::Wallet).await, "H1 600");

    l.reopen("2026-09-20").await;
    let v1 = l.issue_voucher("H2", "500.00").await;

    l.reopen("2026-09-25").await;
    let s = l
        .sell(sale_amount(Some("H1"), "110.00", vec![wallet("110.00")]))
        .await
        .expect("September sale");
    assert_eq!(s.total, y("110.00"));
    assert_eq!(l.wallet("H1").await, (y("500.00"), y("50.00")));

    l.reopen("2026-10-15").await;
    topped(
        l.top_up_with(top_up_at(
            "S2",
            "H4",
            "100.00",
            PayMethod::Cash,
            Delivery::Wallet,
        ))
        .await,
        "H4 100",
    );

    l.reopen("2026-11-15").await;
    topped(l.top_up("H3", "50.00", Delivery::Wallet).await, "H3 50");

    l.reopen(REPORT_DAY).await;
    topped(l.top_up("H1", "100.00", Delivery::Wallet).await, "H1 100");
    let v2 = topped(
        l.top_up_with(top_up_at(
            "S1",
            "H3",
            "200.00",
            PayMethod::Wechat,
            Delivery::Voucher,
        ))
        .await,
        "H3 200 voucher",
    );
    assert_eq!(v2.voucher.expect("a voucher").balance, y("220.00"));
    topped(
        l.top_up_with(top_up_at(
            "S1",
            "H2",
            "50.00",
            PayMethod::Alipay,
            Delivery::Wallet,
        ))
        .await,
        "H2 50",
    );

    let a = l
        .sell(sale_amount(Some("H1"), "66.00", vec![wallet("66.00")]))
        .await
        .expect("sale A");
    assert_eq!(l.wallet("H1").await, (y("540.00"), y("54.00")));
    let b = l
        .sell(sale_amount(None, "20.00", vec![cash("20.00")]))
        .await
        .expect("sale B");
    l.sell(sale_amount(
        None,
        "60.00",
        vec![voucher(&v1, "55.00"), cash("5.00")],
    ))
    .await
    .expect("sale C");
    l.sell(sale_amount(
        None,
        "30.00",
        vec![tender(TenderType::Wechat, "30.00")],
    ))
    .await
    .expect("sale D");
    l.refund_sale(b.sale, Some("S1"), None)
        .await
        .expect("refund of B");
    l.refund_sale(a.sale, Some("S1"), Some("33.00"))
        .await
        .expect("part refund of A");
    assert_eq!(l.wallet("H1").await, (y("570.00"), y("57.00")));

    topped(
        l.top_up_with(top_up_at(
            "S2",
            "H4",
            "50.00",
            PayMethod::Cash,
            Delivery::Wallet,
        ))
        .await,
        "H4 50",
    );
    l.sell(Sale {
        shop: "S2".into(),
        household: None,
        lines: Vec::new(),
        amount: Some(y("10.00")),
        tenders: vec![cash("10.00")],
    })
    .await
    .expect("sale at S2");
    l.assert_sound().await;
    l
}

/// S1's till on the report day, as the API renders it.
fn s1_till() -> Value {
    json!({
        "shop": "S1",
        "name": "一号店",
        "cooperative": "COOP",
        "topups": {
            "count": 3, "paid": "350.00", "bonus": "35.00", "credited": "385.00",
            "by_method": [
                { "method": "alipay", "count": 1, "paid": "50.00", "bonus": "5.00",
                  "credited": "55.00", "as_vouchers": 0, "voucher_credit": "0.00" },
                { "method": "cash", "count": 1, "paid": "100.00", "bonus": "10.00",
                  "credited": "110.00", "as_vouchers": 0, "voucher_credit": "0.00" },
                { "method": "wechat", "count": 1, "paid": "200.00", "bonus": "20.00",
                  "credited": "220.00", "as_vouchers": 1, "voucher_credit": "220.00" },
            ],
        },
        "sales": {
            "count": 4, "total": "176.00",
            "by_tender": [
                { "tender": "cash", "count": 2, "amount": "25.00" },
                { "tender": "voucher", "count": 1, "amount": "55.00" },
                { "tender": "wallet", "count": 1, "amount": "66.00" },
                { "tender": "wechat", "count": 1, "amount": "30.00" },
            ],
        },
        "refunds": {
            "count": 2, "amount": "53.00",
            "by_tender": [
                { "tender": "cash", "amount": "20.00" },
                { "tender": "wallet", "amount": "33.00" },
            ],
        },
        "vouchers_redeemed": {
            "count": 1, "vouchers": 1, "amount": "55.00", "paid": "50.00", "bonus": "5.00",
        },
        "drawer": [
            { "method": "alipay", "topups": "50.00", "sales": "0.00", "refunds": "0.00", "net": "50.00" },
            { "method": "cash", "topups": "100.00", "sales": "25.00", "refunds": "20.00", "net": "105.00" },
            { "method": "wechat", "topups": "200.00", "sales": "30.00", "refunds": "0.00", "net": "230.00" },
        ],
    })
}

fn s2_till() -> Value {
    json!({
        "shop": "S2",
        "name": "二号店",
        "cooperative": "COOP",
        "topups": {
            "count": 1, "paid": "50.00", "bonus": "5.00", "credited": "55.00",
            "by_method": [
                { "method": "cash", "count": 1, "paid": "50.00", "bonus": "5.00",
                  "credited": "55.00", "as_vouchers": 0, "voucher_credit": "0.00" },
            ],
        },
        "sales": {
            "count": 1, "total": "10.00",
            "by_tender": [{ "tender": "cash", "count": 1, "amount": "10.00" }],
        },
        "refunds": { "count": 0, "amount": "0.00", "by_tender": [] },
        "vouchers_redeemed": {
            "count": 0, "vouchers": 0, "amount": "0.00", "paid": "0.00", "bonus": "0.00",
        },
        "drawer": [
            { "method": "cash", "topups": "50.00", "sales": "10.00", "refunds": "0.00", "net": "60.00" },
        ],
    })
}

/// A report of one shop: its total is the shop's own figures.
fn one_shop(shop: Value) -> Value {
    let mut total = shop.clone();
    let fields = total.as_object_mut().expect("a shop");
    for key in ["shop", "name", "cooperative"] {
        fields.remove(key);
    }
    fields.insert("shops".into(), json!(1));
    json!({ "date": REPORT_DAY, "shops": [shop], "total": total })
}

/// COOP's report: S1 and S2, and their lines added up by method and tender.
fn coop_till() -> Value {
    json!({
        "date": REPORT_DAY,
        "shops": [s1_till(), s2_till()],
        "total": {
            "shops": 2,
            "topups": {
                "count": 4, "paid": "400.00", "bonus": "40.00", "credited": "440.00",
                "by_method": [
                    { "method": "alipay", "count": 1, "paid": "50.00", "bonus": "5.00",
                      "credited": "55.00", "as_vouchers": 0, "voucher_credit": "0.00" },
                    { "method": "cash", "count": 2, "paid": "150.00", "bonus": "15.00",
                      "credited": "165.00", "as_vouchers": 0, "voucher_credit": "0.00" },
                    { "method": "wechat", "count": 1, "paid": "200.00", "bonus": "20.00",
                      "credited": "220.00", "as_vouchers": 1, "voucher_credit": "220.00" },
                ],
            },
            "sales": {
                "count": 5, "total": "186.00",
                "by_tender": [
                    { "tender": "cash", "count": 3, "amount": "35.00" },
                    { "tender": "voucher", "count": 1, "amount": "55.00" },
                    { "tender": "wallet", "count": 1, "amount": "66.00" },
                    { "tender": "wechat", "count": 1, "amount": "30.00" },
                ],
            },
            "refunds": {
                "count": 2, "amount": "53.00",
                "by_tender": [
                    { "tender": "cash", "amount": "20.00" },
                    { "tender": "wallet", "amount": "33.00" },
                ],
            },
            "vouchers_redeemed": {
                "count": 1, "vouchers": 1, "amount": "55.00", "paid": "50.00", "bonus": "5.00",
            },
            "drawer": [
                { "method": "alipay", "topups": "50.00", "sales": "0.00", "refunds": "0.00", "net": "50.00" },
                { "method": "cash", "topups": "150.00", "sales": "35.00", "refunds": "20.00", "net": "165.00" },
                { "method": "wechat", "topups": "200.00", "sales": "30.00", "refunds": "0.00", "net": "230.00" },
            ],
        },
    })
}

fn empty_till(shop: &str, name: &str, coop: &str) -> Value {
    json!({
        "shop": shop, "name": name, "cooperative": coop,
        "topups": { "count": 0, "paid": "0.00", "bonus": "0.00", "credited": "0.00", "by_method": [] },
        "sales": { "count": 0, "total": "0.00", "by_tender": [] },
        "refunds": { "count": 0, "amount": "0.00", "by_tender": [] },
        "vouchers_redeemed": {
            "count": 0, "vouchers": 0, "amount": "0.00", "paid": "0.00", "bonus": "0.00",
        },
        "drawer": [],
    })
}

/// COOP's prepaid report on the report day: wallets H1 570.00 + 57.00, H2 50.00 + 5.00,
/// H3 50.00 + 5.00, H4 150.00 + 15.00; vouchers V1 450.00 + 45.00, V2 200.00 + 20.00; the
/// custody deposit 0.40 × 1000.00 paid credit outstanding on 2026-09-30.
fn coop_prepaid() -> Value {
    json!({
        "cooperative": "COOP",
        "as_of": REPORT_DAY,
        "wallets": { "count": 4, "paid": "820.00", "bonus": "82.00", "total": "902.00" },
        "vouchers": { "count": 2, "paid": "650.00", "bonus": "65.00", "total": "715.00" },
        "expired_vouchers": { "count": 0, "paid": "0.00", "bonus": "0.00", "total": "0.00" },
        "total": { "count": 6, "paid": "1470.00", "bonus": "147.00", "total": "1617.00" },
        "breakage": { "paid": "0.00", "bonus": "0.00" },
        "custody": {
            "quarter_end": "2026-09-30",
            "wallets_paid": "500.00",
            "vouchers_paid": "500.00",
            "prepaid_balance": "1000.00",
            "ratio": "0.40",
            "policy": POLICY_V1,
            "deposit": "400.00",
        },
    })
}

async fn till_and_prepaid_reports_add_up(backend: Backend) {
    let l = build(backend).await;
    let store = l.app.store.as_ref();
    let day = date(REPORT_DAY);

    let till = reports::till(store, day, &ShopFilter::Cooperative(COOP.into()))
        .await
        .expect("till report")
        .expect("COOP's shops");
    assert_eq!(serde_json::to_value(&till).unwrap(), coop_till());
    // As CSV: a row per shop and a total row, headers in Chinese unless English is asked for.
    let csv = String::from_utf8(reports::till_csv(&till, false).expect("csv")).expect("utf-8");
    let rows: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        rows,
        [
            "营业日,门店代码,门店,充值笔数,充值实收,赠送,到账,销售笔数,销售额,退款笔数,退款额,券抵用,应收现金,应收微信,应收支付宝,应收银行",
            "2026-11-16,S1,一号店,3,350.00,35.00,385.00,4,176.00,2,53.00,55.00,105.00,230.00,50.00,0.00",
            "2026-11-16,S2,二号店,1,50.00,5.00,55.00,1,10.00,0,0.00,0.00,60.00,0.00,0.00,0.00",
            "2026-11-16,,全部门店合计,4,400.00,40.00,440.00,5,186.00,2,53.00,55.00,165.00,230.00,50.00,0.00",
        ]
    );
    let english = String::from_utf8(reports::till_csv(&till, true).expect("csv")).expect("utf-8");
    assert!(
        english.contains("Date,Shop code,Shop,Top-ups,"),
        "{english}"
    );
    assert!(english.contains(",All shops,4,400.00,"), "{english}");
    // The day before holds only H3's top-up; an unknown shop is no report at all.
    let before = reports::till(store, date("2026-11-15"), &ShopFilter::Shop("S1".into()))
        .await
        .expect("till report")
        .expect("S1");
    assert_eq!(before.shops[0].topups.count, 1);
    assert_eq!(before.shops[0].topups.paid, y("50.00"));
    assert_eq!(before.shops[0].sales.count, 0);
    assert!(reports::till(store, day, &ShopFilter::Shop("NOPE".into()))
        .await
        .expect("till report")
        .is_none());

    let prepaid = reports::prepaid(store, &l.app.policies, COOP, day, None)
        .await
        .expect("prepaid report")
        .expect("COOP");
    assert_eq!(serde_json::to_value(&prepaid).unwrap(), coop_prepaid());

    // Recomputed from postings as of the quarter end: what the custody deposit rests on.
    let at_quarter_end =
        reports::prepaid(store, &l.app.policies, COOP, day, Some(date("2026-09-30")))
            .await
            .expect("prepaid report")
            .expect("COOP");
    assert_eq!(
        serde_json::to_value(&at_quarter_end).unwrap(),
        json!({
            "cooperative": "COOP",
            "as_of": "2026-09-30",
            "wallets": { "count": 1, "paid": "500.00", "bonus": "50.00", "total": "550.00" },
            "vouchers": { "count": 1, "paid": "500.00", "bonus": "50.00", "total": "550.00" },
            "expired_vouchers": { "count": 0, "paid": "0.00", "bonus": "0.00", "total": "0.00" },
            "total": { "count": 2, "paid": "1000.00", "bonus": "100.00", "total": "1100.00" },
            "breakage": { "paid": "0.00", "bonus": "0.00" },
            "custody": {
                "quarter_end": "2026-06-30",
                "wallets_paid": "0.00",
                "vouchers_paid": "0.00",
                "prepaid_balance": "0.00",
                "ratio": "0.40",
                "policy": POLICY_V1,
                "deposit": "0.00",
            },
        })
    );
    // Recomputing today's balances from postings gives the stored ones.
    let recomputed = reports::prepaid(store, &l.app.policies, COOP, date("2026-11-17"), Some(day))
        .await
        .expect("prepaid report")
        .expect("COOP");
    assert_eq!(recomputed.wallets, prepaid.wallets);
    assert_eq!(recomputed.vouchers, prepaid.vouchers);
    assert_eq!(recomputed.expired_vouchers, prepaid.expired_vouchers);
    assert_eq!(recomputed.breakage, prepaid.breakage);
    // The custody deposit sums the maintained months (paid_credit_months); the old way, the
    // paid balances recomputed from postings as of the quarter end, is the oracle.
    let oracle = store
        .prepaid_figures(COOP, day, Some(prepaid.custody.quarter_end))
        .await
        .expect("prepaid figures")
        .expect("COOP");
    assert_eq!(
        (prepaid.custody.wallets_paid, prepaid.custody.vouchers_paid),
        (oracle.wallets.paid, oracle.vouchers.paid)
    );
    assert_eq!(prepaid.custody.prepaid_balance, y("1000.00"));
    assert!(reports::prepaid(store, &l.app.policies, "NOPE", day, None)
        .await
        .expect("prepaid report")
        .is_none());
}

// ---------------------------------------------------------------------------------------------
// The Beancount export, parsed back
// ---------------------------------------------------------------------------------------------

/// What a Beancount ledger written by hongxin says: transactions in order (their
/// `hongxin-entry`), account names opened with their `hongxin-account`, and the sum of each
/// account's postings in fen. A parser for our own output only.
#[derive(Default, Debug)]
struct Parsed {
    operating_currency: bool,
    entries: Vec<i64>,
    opened: BTreeMap<String, String>,
    sums: BTreeMap<String, i64>,
}

fn parse_beancount(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut open: Option<String> = None;
    let mut in_transaction = false;
    let mut transaction_sum = 0i64;
    for line in text.lines() {
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line == r#"option "operating_currency" "CNY""# {
            p.operating_currency = true;
            continue;
        }
        if !line.starts_with(' ') {
            if in_transaction {
                assert_eq!(transaction_sum, 0, "a transaction does not balance");
            }
            in_transaction = false;
            open = None;
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.get(1) {
                Some(&"open") => {
                    assert_eq!(fields.len(), 4, "{line}");
                    assert_eq!(fields[3], "CNY", "{line}");
                    open = Some(fields[2].to_string());
                }
                Some(&"*") => {
                    in_transaction = true;
                    transaction_sum = 0;
                }
                // A ledger event without postings (master data written, a close that
                // posted nothing): kept in the export, moving no balance.
                Some(&"event") => {}
                _ if line.starts_with("option ") => {}
                _ => panic!("unexpected line {line:?}"),
            }
            continue;
        }
        let body = line.trim_start();
        if let Some(path) = body.strip_prefix("hongxin-account: ") {
            let name = open.take().expect("hongxin-account under an open");
            p.opened.insert(name, path.trim_matches('"').to_string());
        } else if let Some(seq) = body.strip_prefix("hongxin-entry: ") {
            p.entries.push(seq.parse().expect("entry number"));
        } else if body.ends_with(" CNY") && in_transaction {
            let mut parts = body.split_whitespace();
            let (account, amount) = (parts.next().unwrap(), parts.next().unwrap());
            let fen = Amount::parse(amount.trim_start_matches('-')).unwrap().fen();
            let fen = if amount.starts_with('-') { -fen } else { fen };
            *p.sums.entry(account.to_string()).or_default() += fen;
            transaction_sum += fen;
        } else {
            let key = body.split(':').next().unwrap_or("");
            assert!(
                ["hash", "policy", "reverses"].contains(&key),
                "unexpected line {line:?}"
            );
        }
    }
    p
}

/// +1 where Beancount's sum is hongxin's balance as it is, -1 where it is negated.
fn beancount_sign(account: &str) -> i64 {
    match account.split(':').next() {
        Some("Assets" | "Expenses") => 1,
        Some("Liabilities" | "Equity" | "Income") => -1,
        other => panic!("{account}: unexpected root {other:?}"),
    }
}

async fn beancount_export_has_every_entry_and_hongxins_balances(backend: Backend) {
    let l = build(backend).await;
    let mut out = Vec::new();
    let mut csv_out = Vec::new();
    let summary = beancount::export(
        l.app.store.as_ref(),
        &mut out,
        Some(&mut csv_out as &mut dyn std::io::Write),
        &|_| {},
    )
    .await
    .expect("export");
    let text = String::from_utf8(out).expect("UTF-8");
    let parsed = parse_beancount(&text);
    let head = l.head().await;
    let balances = l.balances().await;

    assert!(parsed.operating_currency);
    // One transaction per entry, in sequence order.
    assert_eq!(parsed.entries, (1..=head.seq).collect::<Vec<_>>());
    assert_eq!(summary.entries, head.seq as u64);
    assert_eq!(summary.head_hash, head.hash);
    assert_eq!(summary.moved_accounts, 0);
    assert!(text.contains(&format!("  hash: \"{}\"\n", head.hash)));
    assert!(text.contains(&format!("  policy: \"{POLICY_V1}\"\n")));

    // Every hongxin account is opened once, under a distinct name…
    let mut paths: Vec<&String> = parsed.opened.values().collect();
    paths.sort();
    assert_eq!(paths, balances.keys().collect::<Vec<_>>());
    assert!(parsed
        .opened
        .contains_key("Liabilities:Household:H1:Wallet:COOP:Paid"));
    assert!(parsed.opened.contains_key("Assets:Coop:COOP:Cash:Wechat"));
    assert!(parsed.opened.contains_key("Expenses:Coop:COOP:Promotion"));
    assert!(parsed.opened.contains_key("Income:Coop:COOP:Sales"));
    // …and its postings sum to hongxin's balance, on the account's normal side.
    for (name, path) in &parsed.opened {
        let sum = parsed.sums.get(name).copied().unwrap_or(0);
        assert_eq!(
            Amount::from_fen(sum * beancount_sign(name)),
            balances[path],
            "{name} ({path})"
        );
    }
    for name in parsed.sums.keys() {
        assert!(
            parsed.opened.contains_key(name),
            "{name} posted but not opened"
        );
    }

    // The balances CSV says the same.
    let mut reader = csv::Reader::from_reader(csv_out.as_slice());
    let mut rows = 0;
    for row in reader.records() {
        let row = row.expect("CSV row");
        assert_eq!(parsed.opened[&row[0]], &row[1]);
        assert_eq!(balances[&row[1]], y(&row[3]), "{}", &row[1]);
        rows += 1;
    }
    assert_eq!(rows, balances.len());
}

/// The command line writes the same export to files, and the reports as JSON.
async fn command_line_export_and_reports(backend: Backend) {
    let l = build(backend).await;
    let run = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hongxin"));
        if let Some(keys) = &l.settings.key_file {
            command.arg("--key-file").arg(keys);
        }
        let o = command
            .current_dir(l.dir())
            .env_remove("HONGXIN_CONFIG")
            .env_remove("HONGXIN_KEY_FILE")
            .args(["--database", &l.settings.database])
            .args(["--policies", &l.policies_dir().display().to_string()])
            .args(["--today", REPORT_DAY])
            .args(args)
            .output()
            .expect("run hongxin");
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("UTF-8")
    };
    let ledger = l.dir().join("out.beancount");
    let balances = l.dir().join("balances.csv");
    let stdout = run(&[
        "export",
        "beancount",
        "--output",
        &ledger.display().to_string(),
        "--balances",
        &balances.display().to_string(),
    ]);
    assert_eq!(stdout, "");
    let text = std::fs::read_to_string(&ledger).expect("the ledger file");
    assert_eq!(
        parse_beancount(&text).entries.len() as i64,
        l.head().await.seq
    );
    assert!(!Path::new(&format!("{}.partial", ledger.display())).exists());
    assert!(std::fs::read_to_string(&balances)
        .expect("the balances file")
        .starts_with("account,hongxin_account,type,balance\n"));
    // Without --output the ledger goes to standard output.
    assert_eq!(run(&["export", "beancount"]), text);

    let prepaid: Value = serde_json::from_str(&run(&[
        "report",
        "prepaid",
        "--cooperative",
        "COOP",
        "--json",
    ]))
    .expect("JSON");
    assert_eq!(prepaid, json!([coop_prepaid()]));
    let till: Value = serde_json::from_str(&run(&[
        "report", "till", "--date", REPORT_DAY, "--shop", "S1", "--json",
    ]))
    .expect("JSON");
    assert_eq!(till, one_shop(s1_till()));
    let text = run(&["report", "till", "--date", REPORT_DAY, "--shop", "S1"]);
    assert!(text.contains("shop S1 一号店 (COOP)"), "{text}");
    assert!(
        text.contains("vouchers redeemed: 1 tenders on 1 vouchers, 55.00"),
        "{text}"
    );
    let text = run(&["report", "prepaid"]);
    assert!(text.contains("= 400.00"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Who may read which report
// ---------------------------------------------------------------------------------------------

async fn serve(l: &TestLedger) -> (Running, String) {
    for (secret, role, scope) in TOKENS {
        let r = l
            .run(Command::CreateToken(NewToken {
                parent: None,
                hash: token_hash(secret),
                role: *role,
                scope: scope.map(str::to_string),
                label: None,
                expires_at: None,
            }))
            .await;
        assert!(matches!(r, Ok(Receipt::Created(_))), "{secret}: {r:?}");
    }
    let running = Running::start(
        AppState::new(l.app.clone(), HttpConfig::default()),
        "127.0.0.1:0",
    )
    .await
    .expect("serve on port 0");
    let base = format!("http://{}", running.addr);
    (running, base)
}

async fn get(base: &str, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let response = req.send().await.expect("request");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn report_access_follows_the_token_scope(backend: Backend) {
    let l = build(backend).await;
    let (running, base) = serve(&l).await;
    let till = format!("/v1/reports/till?date={REPORT_DAY}");
    let s1 = one_shop(s1_till());
    let coop = coop_till();
    let t1 = one_shop(empty_till("T1", "店 T1", "COOP2"));

    let allowed: Vec<(&str, String, &Value)> = vec![
        (CASHIER_S1, till.clone(), &s1),
        (CASHIER_S1, format!("{till}&shop=S1"), &s1),
        (ACCOUNTANT, till.clone(), &coop),
        (ACCOUNTANT, format!("{till}&shop=S1"), &s1),
        (ACCOUNTANT, format!("{till}&cooperative=COOP"), &coop),
        (ACCOUNTANT_COOP2, till.clone(), &t1),
        (ADMIN, format!("{till}&shop=S1"), &s1),
        (ADMIN, format!("{till}&cooperative=COOP"), &coop),
    ];
    for (token, path, want) in allowed {
        let (status, body) = get(&base, Some(token), &path).await;
        assert_eq!(status, StatusCode::OK, "{token} {path}: {body}");
        assert_eq!(&body, want, "{token} {path}");
    }
    // The till report as a CSV download, English headers on request.
    let r = reqwest::Client::new()
        .get(format!("{base}{till}&format=csv&lang=en"))
        .bearer_auth(ACCOUNTANT)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"till-2026-11-16.csv\"")
    );
    let text = r.text().await.expect("csv");
    assert!(
        text.contains("\n2026-11-16,,All shops,4,400.00,40.00,440.00,5,186.00,"),
        "{text}"
    );
    let (status, body) = get(&base, Some(ACCOUNTANT), &format!("{till}&format=pdf")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (body["code"].clone(), body["field"].clone()),
        (json!("invalid_input"), json!("format"))
    );

    let (status, body) = get(&base, Some(ADMIN), &till).await;
    assert_eq!(status, StatusCode::OK);
    let shops: Vec<&str> = body["shops"]
        .as_array()
        .expect("shops")
        .iter()
        .map(|s| s["shop"].as_str().expect("code"))
        .collect();
    assert_eq!(shops, ["S1", "S2", "T1"]);

    let prepaid = "/v1/reports/prepaid";
    let (status, body) = get(&base, Some(ACCOUNTANT), prepaid).await;
    assert_eq!((status, body), (StatusCode::OK, coop_prepaid()));
    let (status, body) = get(&base, Some(ADMIN), &format!("{prepaid}?cooperative=COOP")).await;
    assert_eq!((status, body), (StatusCode::OK, coop_prepaid()));
    let (status, body) = get(&base, Some(ACCOUNTANT_COOP2), prepaid).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"]["total"], json!("0.00"));
    assert_eq!(body["custody"]["deposit"], json!("0.00"));
    let (status, body) = get(
        &base,
        Some(ACCOUNTANT),
        &format!("{prepaid}?date=2026-09-30"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"]["paid"], json!("1000.00"));

    let refused: Vec<(Option<&str>, String, u16, &str)> = vec![
        // A cashier sees only its own shop's till.
        (
            Some(CASHIER_S2),
            format!("{till}&shop=S1"),
            403,
            "forbidden",
        ),
        (
            Some(CASHIER_S1),
            format!("{till}&shop=S2"),
            403,
            "forbidden",
        ),
        (
            Some(CASHIER_S1),
            format!("{till}&cooperative=COOP"),
            403,
            "forbidden",
        ),
        // An accountant sees only its own cooperative's shops.
        (
            Some(ACCOUNTANT_COOP2),
            format!("{till}&shop=S1"),
            403,
            "forbidden",
        ),
        (
            Some(ACCOUNTANT),
            format!("{till}&shop=T1"),
            403,
            "forbidden",
        ),
        (
            Some(ACCOUNTANT),
            format!("{till}&shop=NOPE"),
            403,
            "forbidden",
        ),
        (
            Some(ACCOUNTANT),
            format!("{till}&cooperative=COOP2"),
            403,
            "forbidden",
        ),
        (Some(COMPANY), till.clone(), 403, "forbidden"),
        (Some(RESIDENT), till.clone(), 403, "forbidden"),
        (None, till.clone(), 401, "unauthorized"),
        (Some(ADMIN), format!("{till}&shop=NOPE"), 404, "not_found"),
        // An unknown cooperative too, as in the prepaid report (not an empty report).
        (
            Some(ADMIN),
            format!("{till}&cooperative=NOPE"),
            404,
            "not_found",
        ),
        (Some(ADMIN), "/v1/reports/till".into(), 422, "invalid_input"),
        (
            Some(ADMIN),
            "/v1/reports/till?date=2026-13-01".into(),
            422,
            "invalid_input",
        ),
        (
            Some(ADMIN),
            format!("{till}&colour=red"),
            422,
            "invalid_input",
        ),
        // The prepaid report is the accountant's and the admin's.
        (Some(CASHIER_S1), prepaid.into(), 403, "forbidden"),
        (Some(COMPANY), prepaid.into(), 403, "forbidden"),
        (Some(RESIDENT), prepaid.into(), 403, "forbidden"),
        (
            Some(ACCOUNTANT),
            format!("{prepaid}?cooperative=COOP2"),
            403,
            "forbidden",
        ),
        (
            Some(ACCOUNTANT_COOP2),
            format!("{prepaid}?cooperative=COOP"),
            403,
            "forbidden",
        ),
        (None, prepaid.into(), 401, "unauthorized"),
        (Some(ADMIN), prepaid.into(), 422, "invalid_input"),
        (
            Some(ADMIN),
            format!("{prepaid}?cooperative=NOPE"),
            404,
            "not_found",
        ),
        (
            Some(ACCOUNTANT),
            format!("{prepaid}?date=yesterday"),
            422,
            "invalid_input",
        ),
    ];
    for (token, path, status, code) in refused {
        let (got, body) = get(&base, token, &path).await;
        assert_eq!(got.as_u16(), status, "{token:?} {path}: {body}");
        assert_eq!(body["code"], json!(code), "{token:?} {path}: {body}");
    }

    // Both are in the OpenAPI document the server serves.
    let (_, doc) = get(&base, None, "/openapi.json").await;
    for path in ["/v1/reports/till", "/v1/reports/prepaid"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} in {doc}");
    }
    running.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------------
// Every body above on every backend
// ---------------------------------------------------------------------------------------------

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::pg_support::available() {
                        return;
                    }
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend! {
    till_and_prepaid_reports_add_up,
    beancount_export_has_every_entry_and_hongxins_balances,
    command_line_export_and_reports,
    report_access_follows_the_token_scope,
}
