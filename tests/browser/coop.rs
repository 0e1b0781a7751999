//! Browser tests of the /coop page: the cooperative accountant's till report, prepaid
//! liability, month close, settlements and till pairing, each compared with what the API
//! reports for the same thing, to the fen.

use hongxin::money::Amount;
use serde_json::{json, Value};

use crate::browser_support::{browser_test, browser_test_at, yuan, Ctx, CLOSED_MONTH, TODAY};

fn amount(v: &Value) -> Amount {
    Amount::parse(v.as_str().expect("amount string")).expect("amount")
}

async fn signed_in(ctx: &Ctx) {
    ctx.open("/coop").await;
    ctx.sign_in(&ctx.accountant).await;
    ctx.visible("#coop-main").await;
    assert_eq!(ctx.text("#who").await, "合作社会计 红心农业合作社");
}

#[test]
fn coop_till_report_shows_the_api_figures_per_shop() {
    browser_test("coop till report", |ctx: Ctx| async move {
        signed_in(&ctx).await;
        // The date defaults to the business date.
        let date = ctx
            .script("return document.querySelector('#till-date').value", vec![])
            .await;
        assert_eq!(date, json!(TODAY));
        let report = ctx
            .api_get(&ctx.accountant, "/v1/reports/till?date=2026-11-19")
            .await;
        let shops = report["shops"].as_array().expect("shops");
        assert!(shops.len() >= 2, "the demo has several shops: {report}");
        ctx.script(
            "document.querySelector('#till-date').value = arguments[0];",
            vec![json!("2026-11-19")],
        )
        .await;
        ctx.click("#till-load").await;
        let first = &shops[0];
        let sel = |shop: &Value, rest: &str| {
            format!(
                ".shop-till[data-shop=\"{}\"] {rest}",
                shop["shop"].as_str().unwrap()
            )
        };
        // Wait for this date's report (the business date's was shown first).
        let want = yuan(&first["sales"]["total"]);
        ctx.text_until(&sel(first, ".sales-total"), |t| t == want)
            .await;
        let cards = ctx
            .script(
                "return document.querySelectorAll('.shop-till').length",
                vec![],
            )
            .await;
        assert_eq!(cards, json!(shops.len()));
        let mut checked = 0;
        for shop in shops {
            for (css, value) in [
                (".topups-paid", &shop["topups"]["paid"]),
                (".topups-bonus", &shop["topups"]["bonus"]),
                (".topups-credited", &shop["topups"]["credited"]),
                (".sales-total", &shop["sales"]["total"]),
                (".refunds-amount", &shop["refunds"]["amount"]),
                (".vouchers-amount", &shop["vouchers_redeemed"]["amount"]),
                (".vouchers-paid", &shop["vouchers_redeemed"]["paid"]),
                (".vouchers-bonus", &shop["vouchers_redeemed"]["bonus"]),
            ] {
                assert_eq!(ctx.text(&sel(shop, css)).await, yuan(value), "{css} {shop}");
                checked += 1;
            }
            for (css, count) in [
                (".topups-count", &shop["topups"]["count"]),
                (".sales-count", &shop["sales"]["count"]),
                (".refunds-count", &shop["refunds"]["count"]),
            ] {
                assert_eq!(
                    ctx.text(&sel(shop, css)).await,
                    format!("{count} 笔"),
                    "{css}"
                );
            }
            for line in shop["sales"]["by_tender"].as_array().unwrap() {
                let css = format!(
                    ".sales-by-tender tr[data-tender=\"{}\"] .amount",
                    line["tender"].as_str().unwrap()
                );
                assert_eq!(ctx.text(&sel(shop, &css)).await, yuan(&line["amount"]));
                checked += 1;
            }
            for line in shop["drawer"].as_array().unwrap() {
                let css = format!(
                    ".drawer tr[data-method=\"{}\"] .net",
                    line["method"].as_str().unwrap()
                );
                assert_eq!(ctx.text(&sel(shop, &css)).await, yuan(&line["net"]));
                checked += 1;
            }
        }
        assert!(checked > 30, "too few figures compared: {checked}");
        // English on request, the same figures.
        ctx.click("#lang-switch").await;
        ctx.text_until("#tab-till", |t| t == "Daily tills").await;
        assert_eq!(
            ctx.text(&sel(first, ".sales-count")).await,
            first["sales"]["count"].to_string()
        );
        assert_eq!(
            ctx.text(&sel(first, ".sales-total")).await,
            yuan(&first["sales"]["total"])
        );
    });
}

/// The prepaid tab's lines (wallets, vouchers, expired vouchers, total) and breakage figures
/// against the API's report; the report as read.
async fn prepaid_lines_match_the_api(ctx: &Ctx) -> Value {
    let p = ctx.api_get(&ctx.accountant, "/v1/reports/prepaid").await;
    ctx.click("#tab-prepaid").await;
    let deposit = yuan(&p["custody"]["deposit"]);
    ctx.text_until("#custody-deposit", |t| t == deposit).await;
    for line in ["wallets", "vouchers", "expired_vouchers", "total"] {
        let row = format!("#prepaid-table tr[data-line={line}]");
        assert_eq!(
            ctx.text(&format!("{row} .count")).await,
            p[line]["count"].to_string()
        );
        for part in ["paid", "bonus", "total"] {
            assert_eq!(
                ctx.text(&format!("{row} .{part}")).await,
                yuan(&p[line][part]),
                "{line} {part}"
            );
        }
    }
    assert_eq!(
        ctx.text("#breakage-paid").await,
        yuan(&p["breakage"]["paid"])
    );
    assert_eq!(
        ctx.text("#breakage-bonus").await,
        yuan(&p["breakage"]["bonus"])
    );
    p
}

/// Three years on, the demo's vouchers are past their validity: still owed, on the expired
/// line, with the liability and the total as before (nothing is breakage under the shipped
/// policy), in Chinese and in English.
#[test]
fn coop_prepaid_shows_expired_vouchers_still_owed() {
    browser_test_at(
        "coop prepaid expired",
        "2029-12-01",
        |ctx: Ctx| async move {
            signed_in(&ctx).await;
            let p = prepaid_lines_match_the_api(&ctx).await;
            assert!(amount(&p["expired_vouchers"]["total"]).is_positive(), "{p}");
            assert_eq!(p["vouchers"]["count"], json!(0), "{p}");
            assert_eq!(p["breakage"], json!({ "paid": "0.00", "bonus": "0.00" }));
            let sum = amount(&p["wallets"]["total"])
                .checked_add(amount(&p["expired_vouchers"]["total"]))
                .unwrap();
            assert_eq!(sum, amount(&p["total"]["total"]));
            assert_eq!(
                ctx.text("#prepaid-table tr[data-line=expired_vouchers] th")
                    .await,
                "已过期兑换券（仍欠持券人，可换新券）"
            );
            ctx.click("#lang-switch").await;
            ctx.text_until("#prepaid-table tr[data-line=expired_vouchers] th", |t| {
                t == "Expired vouchers (still owed, exchangeable)"
            })
            .await;
            assert_eq!(
                ctx.text("#prepaid-table tr[data-line=expired_vouchers] .total")
                    .await,
                yuan(&p["expired_vouchers"]["total"])
            );
        },
    );
}

#[test]
fn coop_prepaid_liability_and_custody_deposit_match_the_api() {
    browser_test("coop prepaid", |ctx: Ctx| async move {
        signed_in(&ctx).await;
        let p = prepaid_lines_match_the_api(&ctx).await;
        let c = &p["custody"];
        assert_eq!(
            ctx.text("#custody-balance").await,
            yuan(&c["prepaid_balance"])
        );
        assert_eq!(ctx.text("#custody-wallets").await, yuan(&c["wallets_paid"]));
        assert_eq!(
            ctx.text("#custody-vouchers").await,
            yuan(&c["vouchers_paid"])
        );
        assert_eq!(
            ctx.text("#custody-ratio").await,
            c["ratio"].as_str().unwrap()
        );
        assert_eq!(
            ctx.text("#custody-quarter").await,
            c["quarter_end"].as_str().unwrap()
        );
        assert!(amount(&p["total"]["total"]).is_positive(), "{p}");
    });
}

#[test]
fn coop_month_close_shows_the_stored_result_and_why_a_month_cannot_close() {
    browser_test("coop month close", |ctx: Ctx| async move {
        signed_in(&ctx).await;
        let api = ctx
            .api_get(&ctx.accountant, &format!("/v1/months/{CLOSED_MONTH}/close"))
            .await;
        assert_eq!(api["dry_run"], json!(false), "{api}");
        ctx.click("#tab-close").await;
        // The month field defaults to the month before the business date's: the closed one.
        let month = ctx
            .script(
                "return document.querySelector('#close-month').value",
                vec![],
            )
            .await;
        assert_eq!(month, json!(CLOSED_MONTH));
        ctx.click("#close-preview").await;
        let status = format!("已结账（凭证 #{}）", api["entry"]);
        ctx.text_until("#close-status", |t| t == status).await;
        for (id, field) in [
            ("#close-sales", "sales"),
            ("#close-cogs", "cogs"),
            ("#close-promotion", "promotion"),
            ("#close-expenses", "expenses"),
            ("#close-profit", "profit"),
            ("#close-distributed", "distributed"),
            ("#close-reserve-in", "reserve_in"),
            ("#close-pool", "pool"),
            ("#close-allocated", "allocated"),
            ("#close-reserve", "reserve"),
        ] {
            assert_eq!(ctx.text(id).await, yuan(&api[field]), "{field}");
        }
        assert_eq!(
            ctx.text("#close-households").await,
            api["households"].to_string()
        );
        assert_eq!(
            ctx.text("#close-policy").await,
            api["policy"].as_str().unwrap()
        );
        assert_eq!(api["basis"], json!("credit_spend"));
        assert_eq!(ctx.text("#close-basis").await, "按储值消费");
        let companies = api["companies"].as_array().unwrap();
        assert!(!companies.is_empty());
        for k in companies {
            let row = format!(
                "#close-companies tr[data-company=\"{}\"]",
                k["company"].as_str().unwrap()
            );
            assert_eq!(
                ctx.text(&format!("{row} .amount")).await,
                yuan(&k["amount"])
            );
            assert_eq!(
                ctx.text(&format!("{row} .households")).await,
                k["households"].to_string()
            );
        }
        // A closed month offers no close button.
        let offered = ctx
            .script(
                "return !document.querySelector('#close-actions').hidden",
                vec![],
            )
            .await;
        assert_eq!(offered, json!(false));

        // November is not over on the business date: the server refuses, the page says why.
        let (status, problem) = ctx
            .api_post(&ctx.accountant, "/v1/months/2026-11/close", json!({}))
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["field"], json!("month"));
        ctx.fill("#close-month", "2026-11").await;
        ctx.click("#close-preview").await;
        let why = ctx.text_until("#close-problem", |t| !t.is_empty()).await;
        assert_eq!(
            why,
            "2026-11 尚未结束（营业日 2026-11-20），2026-12-01 起才能结账。"
        );
        let state = ctx
            .script(
                "return [document.querySelector('#close-actions').hidden, \
                 document.querySelector('#close-result').children.length, \
                 document.querySelector('#close-month').classList.contains('invalid')]",
                vec![],
            )
            .await;
        assert_eq!(state, json!([true, 0, true]));
    });
}

#[test]
fn coop_closes_an_ended_month_after_a_preview_and_confirmation_once() {
    // On 2 December November has ended and is still open.
    browser_test_at(
        "coop month close, closing",
        "2026-12-02",
        |ctx: Ctx| async move {
            signed_in(&ctx).await;
            let preview = ctx
                .api_get(&ctx.accountant, "/v1/months/2026-11/close")
                .await;
            assert_eq!(preview["dry_run"], json!(true), "{preview}");
            assert!(amount(&preview["allocated"]) > Amount::ZERO, "{preview}");
            let head_before = ctx.api_get(&ctx.admin, "/v1/audit/head").await;

            ctx.click("#tab-close").await;
            ctx.fill("#close-month", "2026-11").await;
            ctx.click("#close-preview").await;
            ctx.text_until("#close-status", |t| t == "预览：尚未结账")
                .await;
            for (id, field) in [
                ("#close-profit", "profit"),
                ("#close-pool", "pool"),
                ("#close-allocated", "allocated"),
                ("#close-reserve", "reserve"),
            ] {
                assert_eq!(ctx.text(id).await, yuan(&preview[field]), "{field}");
            }
            // Nothing is posted by a preview.
            assert_eq!(ctx.api_get(&ctx.admin, "/v1/audit/head").await, head_before);

            // Close asks for confirmation, naming what it will do; a double tap closes once.
            ctx.click("#close-start").await;
            let confirm = ctx.text("#close-confirm-text").await;
            assert!(
                confirm.contains(&yuan(&preview["allocated"])) && confirm.contains("2026-11"),
                "{confirm}"
            );
            ctx.script(
                "const b = document.querySelector('#close-do'); b.click(); b.click();",
                vec![],
            )
            .await;
            let closed = ctx
                .text_until("#close-status", |t| t.starts_with("已结账"))
                .await;
            let stored = ctx
                .api_get(&ctx.accountant, "/v1/months/2026-11/close")
                .await;
            assert_eq!(stored["dry_run"], json!(false), "{stored}");
            assert_eq!(closed, format!("已结账（凭证 #{}）", stored["entry"]));
            // The close is what the preview showed, to the fen.
            for field in [
                "profit",
                "pool",
                "allocated",
                "reserve",
                "households",
                "companies",
            ] {
                assert_eq!(stored[field], preview[field], "{field}");
            }
            // Exactly one entry was posted.
            let head_after = ctx.api_get(&ctx.admin, "/v1/audit/head").await;
            assert_eq!(
                head_after["seq"].as_i64(),
                head_before["seq"].as_i64().map(|s| s + 1),
                "{head_before} → {head_after}"
            );
            let offered = ctx
                .script(
                    "return !document.querySelector('#close-actions').hidden",
                    vec![],
                )
                .await;
            assert_eq!(offered, json!(false));
        },
    );
}

#[test]
fn coop_settlement_reduces_what_is_owed_once_for_a_double_click() {
    browser_test("coop settlement", |ctx: Ctx| async move {
        signed_in(&ctx).await;
        let before = ctx.api_get(&ctx.accountant, "/v1/settlements").await;
        let k01 = before["companies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["company"] == json!("K01"))
            .cloned()
            .expect("K01 is owed");
        let owed = amount(&k01["outstanding"]);
        assert!(owed > Amount::parse("10.00").unwrap(), "{k01}");
        ctx.click("#tab-settlements").await;
        let cell = "#settlements-table tr[data-company=\"K01\"] .outstanding";
        let shown = yuan(&k01["outstanding"]);
        ctx.text_until(cell, |t| t == shown).await;
        assert_eq!(
            ctx.text("#settlements-table tfoot .outstanding").await,
            yuan(&before["total"]["outstanding"])
        );
        ctx.select("#settle-company", "K01").await;
        ctx.fill("#settle-amount", "10.00").await;
        ctx.fill("#settle-reference", "BANK-WEB-0001").await;
        // A double click: the second press lands while the first is on its way.
        ctx.script(
            "const b = document.querySelector('#settle-submit'); b.click(); b.click();",
            vec![],
        )
        .await;
        let left = owed.checked_sub(Amount::parse("10.00").unwrap()).unwrap();
        let left_shown = yuan(&json!(left.to_string()));
        ctx.text_until(cell, |t| t == left_shown).await;
        assert_eq!(
            ctx.text("#settle-done").await,
            format!("已记录：向 K01 付款 ¥10.00，尚欠 {left_shown}")
        );
        // The API agrees, and one payment was recorded, not two.
        let after = ctx.api_get(&ctx.accountant, "/v1/settlements").await;
        let k01_after = after["companies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["company"] == json!("K01"))
            .cloned()
            .unwrap();
        assert_eq!(k01_after["outstanding"], json!(left.to_string()));
        assert_eq!(
            amount(&k01_after["settled"]),
            amount(&k01["settled"])
                .checked_add(Amount::parse("10.00").unwrap())
                .unwrap()
        );
        // The company's own statement says the same.
        let month = &after["month"];
        let statement = ctx
            .api_get(
                &ctx.company,
                &format!("/v1/companies/K01/statements/{}", month.as_str().unwrap()),
            )
            .await;
        assert_eq!(
            statement["cooperatives"][0]["outstanding"],
            json!(left.to_string())
        );
        // Paying more than is owed is refused, naming the amount.
        ctx.select("#settle-company", "K01").await;
        ctx.fill("#settle-amount", "100000.00").await;
        ctx.fill("#settle-reference", "BANK-WEB-0002").await;
        ctx.click("#settle-submit").await;
        ctx.text_until("#settle-problem", |t| !t.is_empty()).await;
        let marked = ctx
            .script(
                "return document.querySelector('#settle-amount').classList.contains('invalid')",
                vec![],
            )
            .await;
        assert_eq!(marked, json!(true));
        let still = ctx.api_get(&ctx.accountant, "/v1/settlements").await;
        assert_eq!(still["total"], after["total"]);
    });
}

#[test]
fn coop_pairing_code_signs_a_till_in_once() {
    browser_test("coop pairing", |ctx: Ctx| async move {
        signed_in(&ctx).await;
        ctx.click("#tab-pairing").await;
        // An unknown shop is refused, naming the shop.
        ctx.fill("#pair-shop", "S99").await;
        ctx.click("#pair-make").await;
        ctx.text_until("#pair-problem", |t| !t.is_empty()).await;
        ctx.fill("#pair-shop", "S1").await;
        ctx.click("#pair-make").await;
        let code = ctx
            .text_until("#pair-code", |t| {
                t.len() == 9 && t.chars().nth(4) == Some('-')
            })
            .await;
        assert_eq!(ctx.text("#pair-for").await, "门店 S1");
        assert!(ctx.text("#pair-expires").await.starts_with("有效至"));
        // The code signs a till in as a cashier of S1, once.
        let signed = ctx
            .script(
                "return HX.signIn({pairing_code: arguments[0]}).then(r => [r.status, r.data && r.data.role, r.data && r.data.shop]);",
                vec![json!(code)],
            )
            .await;
        assert_eq!(signed, json!([201, "cashier", "S1"]));
        let report = ctx
            .script(
                "return HX.api('GET', '/v1/reports/till?date=2026-11-19').then(r => r.data.shops.map(s => s.shop));",
                vec![],
            )
            .await;
        assert_eq!(report, json!(["S1"]));
        let again = ctx
            .script(
                "return HX.signIn({pairing_code: arguments[0]}).then(r => r.status);",
                vec![json!(code)],
            )
            .await;
        assert_eq!(again, json!(401));
    });
}

#[test]
fn coop_pays_out_part_of_a_wallet_and_shows_the_receipt() {
    browser_test("coop credit refund", |ctx: Ctx| async move {
        let household = "HX01-0007";
        let path = format!("/v1/households/{household}");
        let refunds = format!("{path}/credit-refunds");
        // Start from an empty wallet holding exactly one top-up of 50.00 (+5.00).
        let w = ctx.api_get(&ctx.admin, &path).await["wallet"].clone();
        if amount(&w["total"]).is_positive() {
            let (status, body) = ctx.api_post(&ctx.accountant, &refunds, json!({})).await;
            assert_eq!(status, 201, "{body}");
        }
        let (status, body) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({ "household": household, "paid": "50.00", "method": "cash" }),
            )
            .await;
        assert_eq!(status, 201, "{body}");

        signed_in(&ctx).await;
        ctx.click("#tab-credit").await;
        ctx.fill("#credit-household", household).await;
        ctx.click("#credit-look").await;
        ctx.text_until("#credit-wallet", |t| {
            t.contains("¥50.00") && t.contains("¥5.00")
        })
        .await;
        // More than the paid credit: refused, nothing moves.
        ctx.fill("#credit-amount", "50.01").await;
        ctx.click("#credit-submit").await;
        ctx.visible("#credit-form-problem").await;
        let w = ctx.api_get(&ctx.admin, &path).await["wallet"].clone();
        assert_eq!(
            (w["paid"].clone(), w["bonus"].clone()),
            (json!("50.00"), json!("5.00"))
        );

        // 20.00 of 50.00 paid: 2.00 of the 5.00 bonus goes with it.
        ctx.fill("#credit-amount", "20").await;
        ctx.text_until("#credit-preview", |t| {
            t.contains("¥20.00") && t.contains("¥2.00")
        })
        .await;
        ctx.click("#credit-submit").await;
        let receipt = ctx
            .text_until("#credit-receipt", |t| t.contains("¥20.00"))
            .await;
        assert!(
            receipt.contains("¥2.00") && receipt.contains("¥30.00") && receipt.contains("¥3.00"),
            "{receipt}"
        );
        let w = ctx.api_get(&ctx.admin, &path).await["wallet"].clone();
        assert_eq!(
            (w["paid"].clone(), w["bonus"].clone()),
            (json!("30.00"), json!("3.00"))
        );
        ctx.text_until("#credit-wallet", |t| {
            t.contains("¥30.00") && t.contains("¥33.00")
        })
        .await;
    });
}

#[test]
fn coop_accountant_signs_a_paired_till_out() {
    browser_test("coop paired tills", |ctx: Ctx| async move {
        // A till tablet signed in with a pairing code the accountant made.
        let (status, pairing) = ctx
            .api_post(&ctx.accountant, "/web/pairings", json!({ "shop": "S1" }))
            .await;
        assert_eq!(status, 201, "{pairing}");
        let (status, till) = ctx
            .api_post(
                &ctx.accountant,
                "/web/session",
                json!({ "pairing_code": pairing["code"] }),
            )
            .await;
        assert_eq!(status, 201, "{till}");
        signed_in(&ctx).await;
        ctx.click("#tab-pairing").await;
        ctx.text_until("#paired-tills tbody", |t| t.contains("S1"))
            .await;
        let listed = ctx.api_get(&ctx.admin, "/web/pairings").await;
        assert_eq!(
            listed["tills"].as_array().map(Vec::len),
            Some(1),
            "{listed}"
        );
        ctx.click("#paired-tills .paired-end").await;
        ctx.visible("#paired-none").await;
        assert_eq!(ctx.text("#paired-none").await, "没有已登录的配对收银台。");
        let listed = ctx.api_get(&ctx.admin, "/web/pairings").await;
        assert_eq!(listed, json!({ "tills": [] }));
    });
}

#[test]
fn coop_voids_a_top_up_by_its_receipt_number_once() {
    browser_test("coop top-up void", |ctx: Ctx| async move {
        let household = "HX01-0009";
        let path = format!("/v1/households/{household}");
        let before = ctx.api_get(&ctx.admin, &path).await["wallet"]["total"].clone();
        let (status, topped) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({ "household": household, "paid": "50.00", "method": "cash" }),
            )
            .await;
        assert_eq!(status, 201, "{topped}");
        let entry = topped["entry"].to_string();

        signed_in(&ctx).await;
        ctx.click("#tab-credit").await;
        ctx.fill("#void-topup", &entry).await;
        ctx.click("#void-submit").await;
        let done = ctx.text_until("#void-done", |t| t.contains("¥50.00")).await;
        assert!(done.contains(&entry) && done.contains("¥5.00"), "{done}");
        let after = ctx.api_get(&ctx.admin, &path).await["wallet"]["total"].clone();
        assert_eq!(after, before, "the wallet is back to before the top-up");
        // Again: refused in words, nothing moves.
        ctx.fill("#void-topup", &entry).await;
        ctx.click("#void-submit").await;
        ctx.visible("#void-problem").await;
        let words = ctx.text("#void-problem").await;
        assert!(words.contains("无法作废"), "{words}");
        let again = ctx.api_get(&ctx.admin, &path).await["wallet"]["total"].clone();
        assert_eq!(again, before);
    });
}
