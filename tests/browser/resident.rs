//! Browser tests of the resident's page (/resident, and /r/{household} that the household card's
//! signed link opens): the link signs in and leaves no secret in the address bar; every figure
//! on the page — credit, vouchers, property fees month by month, what the cooperative's profit
//! covered, history — equals, to the fen, what the API reports for that household; household
//! code + PIN works and a wrong PIN is refused; an ended session brings the sign-in back; a
//! resident's session reaches no other household; English relabels the same figures.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, yuan, Ctx};

/// A demo household of company K01 with credit, a voucher, bills paid and unpaid over the two
/// closed months and the current one, and a share of the cooperative's profit. (The demo's
/// generator draws on the ledger's answers, so a change to what a close allocates can move
/// these traits to another household.)
const HOUSEHOLD: &str = "HX01-0007";
const COMPANY: &str = "K01";

/// A history change as the page writes it: `"+¥55.00"`, `"-¥4.70"`.
fn signed(fen: i64) -> String {
    let s = format!(
        "{}{}.{:02}",
        if fen < 0 { "-" } else { "" },
        fen.abs() / 100,
        fen.abs() % 100
    );
    let y = yuan(&json!(s));
    if fen > 0 {
        format!("+{y}")
    } else {
        y
    }
}

fn fen(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("amount must be a string: {v}"));
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let v = whole.parse::<i64>().expect("yuan") * 100
        + format!("{frac:0<2}").parse::<i64>().expect("fen");
    if neg {
        -v
    } else {
        v
    }
}

fn items(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array: {v}"))
}

/// Everything the page shows, read from the page as a person sees it (innerText).
const READ_PAGE: &str = r#"
const text = (sel, root) => { const e = (root || document).querySelector(sel); return e ? e.innerText.trim() : null; };
const all = (sel) => [...document.querySelectorAll(sel)];
return {
  household: text('#res-household'),
  wallet: { paid: text('#wallet-paid'), bonus: text('#wallet-bonus'), total: text('#wallet-total') },
  vouchers: all('#vouchers li.voucher').map(li => ({
    code: text('.voucher-code', li), balance: text('.voucher-balance', li),
    expires: text('.voucher-expires', li), status: li.dataset.status, status_text: text('.voucher-status', li) })),
  arrears: text('#fees-arrears'), prepaid: text('#fees-prepaid'),
  fees_state: document.querySelector('#fees-status').dataset.state, fees_status: text('#fees-status'),
  months: all('#fee-months tbody tr').map(tr => ({ month: tr.dataset.month, label: text('.month', tr),
    billed: text('.billed', tr), paid: text('.paid', tr), covered: text('.covered', tr), outstanding: text('.outstanding', tr) })),
  headings: all('#fee-months thead th').map(th => th.innerText.trim()),
  covered: all('#covered li.cover').map(li => ({ month: li.dataset.month, cooperative: li.dataset.cooperative,
    label: text('.cover-month', li), amount: text('.cover-amount', li) })),
  covered_total: text('#covered-total'),
  history: all('#history li.history-item').map(li => ({ entry: Number(li.dataset.entry), kind: li.dataset.kind,
    kind_text: text('.hist-kind', li), date: text('.hist-date', li),
    changes: [...li.querySelectorAll('.hist-change')].map(c => [c.dataset.group, c.querySelector('strong').innerText.trim()]) })),
};
"#;

async fn read_page(ctx: &Ctx) -> Value {
    ctx.script(READ_PAGE, vec![]).await
}

/// Opens the household card's signed link, as a phone scanning the card would.
async fn open_card_link(ctx: &Ctx, household: &str) {
    let link = ctx
        .api_get(&ctx.admin, &format!("/v1/households/{household}/link"))
        .await;
    let url = link["url"].as_str().expect("the link's url").to_string();
    assert!(url.starts_with(&ctx.base), "{url} is not on {}", ctx.base);
    assert!(url.contains("s="), "{url}");
    ctx.browser.goto(&url).await.expect("open the card's link");
    ctx.visible("#resident-main").await;
}

/// A bearer voucher bought for the household, so it holds an active voucher with a balance.
async fn give_voucher(ctx: &Ctx, household: &str, paid: &str) {
    let (status, body) = ctx
        .api_post(
            &ctx.cashier,
            "/v1/topups",
            json!({ "household": household, "paid": paid, "method": "cash", "deliver": "voucher" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// What the page must show for the household, from the API (an admin's view of it).
struct Expected {
    household: Value,
    fees: Value,
    history: Value,
}

async fn expected(ctx: &Ctx, household: &str) -> Expected {
    Expected {
        household: ctx
            .api_get(&ctx.admin, &format!("/v1/households/{household}"))
            .await,
        fees: ctx
            .api_get(&ctx.admin, &format!("/v1/households/{household}/fees"))
            .await,
        history: ctx
            .api_get(
                &ctx.admin,
                &format!("/v1/households/{household}/history?limit=20"),
            )
            .await,
    }
}

/// Every figure on the page equals the API's, exactly.
fn assert_figures(shown: &Value, api: &Expected) {
    let h = &api.household;
    let f = &api.fees;
    assert_eq!(shown["wallet"]["paid"], json!(yuan(&h["wallet"]["paid"])));
    assert_eq!(shown["wallet"]["bonus"], json!(yuan(&h["wallet"]["bonus"])));
    assert_eq!(shown["wallet"]["total"], json!(yuan(&h["wallet"]["total"])));

    let vouchers = items(&h["vouchers"]);
    assert_eq!(items(&shown["vouchers"]).len(), vouchers.len(), "{shown}");
    for (page, api) in items(&shown["vouchers"]).iter().zip(vouchers) {
        let code = api["code"]
            .as_str()
            .expect("the household's own voucher codes");
        let last = code.rsplit('-').next().expect("a group");
        assert_eq!(page["code"], json!(format!("•••• {last}")), "masked code");
        assert!(!page["code"].as_str().unwrap_or("").contains(&code[..5]));
        assert_eq!(page["balance"], json!(yuan(&api["balance"])));
        let expires = api["expires_on"].as_str().expect("expiry");
        assert!(
            page["expires"].as_str().unwrap_or("").contains(expires),
            "{page} lacks {expires}"
        );
        assert_eq!(page["status"], api["status"]);
    }

    // Fee status: the household answer and the fees answer agree, and the page shows both.
    assert_eq!(h["fees"]["arrears"], f["arrears"]);
    assert_eq!(h["fees"]["prepaid"], f["prepaid"]);
    assert_eq!(shown["arrears"], json!(yuan(&f["arrears"])));
    assert_eq!(shown["prepaid"], json!(yuan(&f["prepaid"])));
    let state = if fen(&f["arrears"]) > 0 {
        "owing"
    } else if fen(&f["prepaid"]) > 0 {
        "prepaid"
    } else {
        "clear"
    };
    assert_eq!(shown["fees_state"], json!(state));

    let months = items(&f["months"]);
    assert_eq!(items(&shown["months"]).len(), months.len(), "{shown}");
    for (page, api) in items(&shown["months"]).iter().zip(months) {
        assert_eq!(page["month"], api["month"]);
        for field in ["billed", "paid", "covered", "outstanding"] {
            assert_eq!(page[field], json!(yuan(&api[field])), "{field} of {api}");
        }
    }

    let covered = items(&f["covered"]);
    assert_eq!(items(&shown["covered"]).len(), covered.len(), "{shown}");
    for (page, api) in items(&shown["covered"]).iter().zip(covered) {
        assert_eq!(page["month"], api["month"]);
        assert_eq!(page["cooperative"], api["cooperative"]);
        assert_eq!(page["amount"], json!(yuan(&api["amount"])));
    }
    assert_eq!(shown["covered_total"], json!(yuan(&f["covered_total"])));

    let history = items(&api.history["items"]);
    assert_eq!(items(&shown["history"]).len(), history.len(), "{shown}");
    for (page, api) in items(&shown["history"]).iter().zip(history) {
        assert_eq!(page["entry"], api["entry"]);
        assert_eq!(page["kind"], api["kind"]);
        assert_eq!(page["date"], api["business_date"]);
        let mut groups: Vec<(&str, i64)> = Vec::new();
        for c in items(&api["changes"]) {
            let account = c["account"].as_str().expect("account");
            let group = if account == "fees" {
                "fees"
            } else if account.starts_with("wallet:") {
                "wallet"
            } else {
                "voucher"
            };
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, sum)) => *sum += fen(&c["amount"]),
                None => groups.push((group, fen(&c["amount"]))),
            }
        }
        groups.sort_by_key(|(g, _)| ["wallet", "voucher", "fees"].iter().position(|x| x == g));
        let want: Vec<Value> = groups
            .iter()
            .map(|(g, sum)| {
                // Fees read as money owed (a bill) or owed less (a payment, the cover).
                if *g == "fees" {
                    json!([g, signed(sum.abs()).trim_start_matches('+')])
                } else {
                    json!([g, signed(*sum)])
                }
            })
            .collect();
        assert_eq!(page["changes"], json!(want), "entry {}", api["entry"]);
    }
}

#[test]
fn the_card_link_signs_in_drops_its_secret_and_shows_exactly_the_api_figures() {
    browser_test("resident link", |ctx: Ctx| async move {
        give_voucher(&ctx, HOUSEHOLD, "100.00").await;
        open_card_link(&ctx, HOUSEHOLD).await;

        // The secret is gone from the address bar, and the page's history entry is the bare page.
        let url = ctx.browser.current_url().await.expect("url").to_string();
        assert_eq!(
            url,
            ctx.url("/resident"),
            "the address bar still holds {url}"
        );
        let location = ctx
            .script(
                "return [location.href, location.search, history.length]",
                vec![],
            )
            .await;
        assert_eq!(location[0], json!(ctx.url("/resident")));
        assert_eq!(location[1], json!(""));

        ctx.text_until("#res-household", |t| t.contains(HOUSEHOLD))
            .await;
        assert_eq!(ctx.text("#who").await, format!("居民 {HOUSEHOLD}"));
        let api = expected(&ctx, HOUSEHOLD).await;
        // The household is one worth looking at: credit, an active voucher, bills, unpaid
        // fees and a share of the cooperative's profit.
        assert!(
            fen(&api.household["wallet"]["total"]) > 0,
            "{}",
            api.household
        );
        assert!(
            items(&api.household["vouchers"])
                .iter()
                .any(|v| fen(&v["balance"]) >= 11_000),
            "the voucher just bought: {}",
            api.household
        );
        assert!(fen(&api.fees["arrears"]) > 0, "{}", api.fees);
        assert!(items(&api.fees["months"]).len() >= 3, "{}", api.fees);
        assert!(!items(&api.fees["covered"]).is_empty(), "{}", api.fees);
        assert!(
            items(&api.fees["months"])
                .iter()
                .any(|m| fen(&m["outstanding"]) > 0),
            "{}",
            api.fees
        );

        let shown = read_page(&ctx).await;
        assert_figures(&shown, &api);
        assert_eq!(
            shown["headings"],
            json!(["月份", "应缴", "已缴", "合作社抵扣", "未缴"])
        );
        assert_eq!(shown["months"][0]["label"], json!("2026年11月"));

        // The month lines are the company's statement lines for the household, and the
        // profit covered is what each month close posted.
        let mut covered_in_months = 0;
        for m in items(&api.fees["months"]) {
            let month = m["month"].as_str().expect("month");
            let statement = ctx
                .api_get(
                    &ctx.admin,
                    &format!("/v1/companies/{COMPANY}/statements/{month}"),
                )
                .await;
            let line = items(&statement["households"])
                .iter()
                .find(|l| l["household"] == json!(HOUSEHOLD))
                .unwrap_or_else(|| panic!("{HOUSEHOLD} in the {month} statement"));
            assert_eq!(m["billed"], line["billed"], "{month}");
            assert_eq!(m["paid"], line["paid"], "{month}");
            assert_eq!(m["covered"], line["allocated"], "{month}");
            assert_eq!(m["closing"], line["closing"], "{month}");
            covered_in_months += fen(&m["covered"]);
        }
        assert_eq!(covered_in_months, fen(&api.fees["covered_total"]));

        // A sale on the wallet while the page is open shows after a refresh, to the fen. The
        // resident shows the household card at the till.
        let card = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{HOUSEHOLD}/link"))
            .await["url"]
            .clone();
        let (status, sale) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/sales",
                json!({ "household": HOUSEHOLD, "amount": "12.34",
                        "tenders": [{ "type": "wallet", "amount": "12.34" }],
                        "resident": { "card": card } }),
            )
            .await;
        assert_eq!(status, 201, "{sale}");
        let before = shown["wallet"]["total"].clone();
        ctx.click("#res-refresh").await;
        ctx.text_until("#wallet-total", |t| json!(t) != before)
            .await;
        let api = expected(&ctx, HOUSEHOLD).await;
        assert_eq!(
            fen(&api.household["wallet"]["total"]) + 1234,
            fen(&json!(before
                .as_str()
                .unwrap_or("")
                .replace(['¥', ','], "")))
        );
        assert_figures(&read_page(&ctx).await, &api);
        assert_eq!(
            ctx.text("#history li.history-item .hist-kind").await,
            "购物"
        );
    });
}

#[test]
fn a_household_code_and_pin_sign_in_a_wrong_pin_is_refused_and_an_ended_session_asks_again() {
    browser_test("resident PIN", |ctx: Ctx| async move {
        let path = format!("/v1/households/{HOUSEHOLD}/pin");
        let (status, body) = ctx
            .api_post(&ctx.company, &path, json!({ "pin": "482916" }))
            .await;
        assert_eq!(status, 200, "{body}");

        ctx.open("/resident").await;
        ctx.visible("#resident-pin-form").await;
        assert!(!ctx
            .find("#resident-main")
            .await
            .is_displayed()
            .await
            .unwrap_or(true));

        // A wrong PIN: refused, said so, the PIN field marked, nothing shown.
        ctx.fill("#resident-pin-form input[name=household]", HOUSEHOLD)
            .await;
        ctx.fill("#resident-pin-form input[name=pin]", "111111")
            .await;
        ctx.click("#resident-pin-form button[type=submit]").await;
        let refusal = ctx
            .text_until("#resident-pin-form .problem", |t| !t.is_empty())
            .await;
        assert_eq!(
            refusal,
            "住户编号或密码不对，请再试一次。忘记密码请到物业办公室重设。"
        );
        let marked = ctx
            .script(
                "return document.querySelector('#resident-pin-form input[name=pin]').classList.contains('invalid')",
                vec![],
            )
            .await;
        assert_eq!(marked, json!(true));
        assert!(!ctx
            .find("#resident-main")
            .await
            .is_displayed()
            .await
            .unwrap_or(true));
        assert_eq!(ctx.text("#wallet-total").await, "");

        // The right PIN (the household code typed in lower case is fine).
        ctx.fill(
            "#resident-pin-form input[name=household]",
            &HOUSEHOLD.to_lowercase(),
        )
        .await;
        ctx.fill("#resident-pin-form input[name=pin]", "482916")
            .await;
        ctx.click("#resident-pin-form button[type=submit]").await;
        ctx.visible("#resident-main").await;
        ctx.text_until("#res-household", |t| t.contains(HOUSEHOLD))
            .await;
        let api = expected(&ctx, HOUSEHOLD).await;
        assert_figures(&read_page(&ctx).await, &api);
        assert!(
            ctx.find("#resident-pin-form .problem")
                .await
                .is_displayed()
                .await
                .ok()
                == Some(false)
        );

        // The session ends on the server (as when it expires): the next read brings the
        // sign-in back with a message, and the figures are gone from the page.
        let ended = ctx
            .script(
                "return fetch('/web/session', {method: 'DELETE', headers: {'X-CSRF-Token': HX.csrf}}).then(r => r.status)",
                vec![],
            )
            .await;
        assert_eq!(ended, json!(204));
        ctx.click("#res-refresh").await;
        ctx.visible("#resident-pin-form").await;
        let message = ctx.text_until("#resident-notice", |t| !t.is_empty()).await;
        assert_eq!(message, "登录已过期，请重新登录");
        assert!(!ctx
            .find("#resident-main")
            .await
            .is_displayed()
            .await
            .unwrap_or(true));
        assert_eq!(ctx.text("#wallet-total").await, "");
        assert_eq!(
            ctx.script(
                "return document.querySelectorAll('#history li').length",
                vec![]
            )
            .await,
            json!(0)
        );
    });
}

#[test]
fn a_resident_session_reaches_no_other_household() {
    browser_test("resident scope", |ctx: Ctx| async move {
        open_card_link(&ctx, HOUSEHOLD).await;
        ctx.text_until("#res-household", |t| t.contains(HOUSEHOLD))
            .await;
        let statuses = ctx
            .script(
                "const paths = arguments[0]; \
                 return Promise.all(paths.map(p => fetch(p, {credentials: 'same-origin'}).then(r => r.status)));",
                vec![json!([
                    format!("/v1/households/{HOUSEHOLD}"),
                    format!("/v1/households/{HOUSEHOLD}/fees"),
                    format!("/v1/households/{HOUSEHOLD}/history"),
                    "/v1/households/HX01-0001",
                    "/v1/households/HX01-0001/fees",
                    "/v1/households/HX01-0001/history",
                    "/v1/households/HX01-0001/link",
                    "/v1/households/HX03-0022/fees",
                    "/v1/companies/K01/statements/2026-10",
                    "/v1/companies/K01/arrears",
                ])],
            )
            .await;
        let statuses: Vec<u64> = items(&statuses)
            .iter()
            .map(|s| s.as_u64().expect("status"))
            .collect();
        assert_eq!(&statuses[..3], &[200, 200, 200], "its own household");
        for (i, s) in statuses[3..].iter().enumerate() {
            assert!(
                *s == 403 || *s == 404,
                "request {} answered {s} to a resident of {HOUSEHOLD}",
                i + 3
            );
        }
        // Nor can the page be talked into signing in elsewhere with this session's link.
        let other = ctx
            .script(
                "return HX.signIn({household: 'HX01-0001', version: 1, signature: arguments[0]}).then(r => r.status)",
                vec![json!(
                    ctx.api_get(&ctx.admin, &format!("/v1/households/{HOUSEHOLD}/link"))
                        .await["signature"]
                )],
            )
            .await;
        assert_eq!(other, json!(401));
    });
}

#[test]
fn english_relabels_the_same_figures() {
    browser_test("resident English", |ctx: Ctx| async move {
        open_card_link(&ctx, HOUSEHOLD).await;
        ctx.text_until("#res-household", |t| t.contains(HOUSEHOLD))
            .await;
        let chinese = read_page(&ctx).await;
        assert_eq!(ctx.text("#res-wallet-title").await, "购物余额");

        ctx.click("#lang-switch").await;
        ctx.text_until("#res-wallet-title", |t| t == "Shopping credit")
            .await;
        let english = read_page(&ctx).await;
        assert_eq!(
            english["headings"],
            json!(["Month", "Billed", "Paid", "Co-op covered", "Unpaid"])
        );
        assert_eq!(
            english["household"],
            json!(format!("Household {HOUSEHOLD}"))
        );
        assert_eq!(ctx.text("#who").await, format!("Resident {HOUSEHOLD}"));
        // The same figures, to the fen, with English words around them.
        let api = expected(&ctx, HOUSEHOLD).await;
        assert_figures(&english, &api);
        for key in [
            "wallet",
            "vouchers",
            "arrears",
            "prepaid",
            "months",
            "covered",
            "covered_total",
        ] {
            let strip = |v: &Value| -> Value {
                match v {
                    Value::Array(a) => Value::Array(
                        a.iter()
                            .map(|x| {
                                let mut x = x.clone();
                                if let Some(o) = x.as_object_mut() {
                                    for k in ["label", "expires", "status_text"] {
                                        o.remove(k);
                                    }
                                }
                                x
                            })
                            .collect(),
                    ),
                    other => other.clone(),
                }
            };
            assert_eq!(strip(&english[key]), strip(&chinese[key]), "{key}");
        }
        assert_eq!(english["months"][0]["label"], json!("Nov 2026"));
        assert_eq!(english["months"][1]["label"], json!("Oct 2026"));
        let first_cover = &english["covered"][0];
        assert!(
            first_cover["label"]
                .as_str()
                .unwrap_or("")
                .starts_with("Profit of "),
            "{first_cover}"
        );
        assert!(english["fees_status"]
            .as_str()
            .unwrap_or("")
            .starts_with("Owing ¥"));
        let kinds: Vec<(String, String)> = items(&english["history"])
            .iter()
            .map(|h| {
                (
                    h["kind"].as_str().unwrap_or("").to_string(),
                    h["kind_text"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        for (kind, text) in &kinds {
            let want = match kind.as_str() {
                "top_up" => "Top-up",
                "sale" => "Purchase",
                "sale_refund" => "Refund",
                "fee_bill" => "Property-fee bill",
                "fee_payment" => "Fee payment",
                "profit_allocation" => "Cooperative profit toward fees",
                other => panic!("history kind {other} not expected here"),
            };
            assert_eq!(text, want);
        }
        assert!(kinds.iter().any(|(k, _)| k == "fee_bill"));

        // And back: the page remembers nothing English.
        ctx.click("#lang-switch").await;
        ctx.text_until("#res-wallet-title", |t| t == "购物余额")
            .await;
        assert_eq!(read_page(&ctx).await["headings"], chinese["headings"]);
    });
}
