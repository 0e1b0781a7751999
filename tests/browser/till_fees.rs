//! Browser tests of the till's property-fee panel (代收物业费): the cashier looks the household
//! up, sees what it owes its company, takes cash, WeChat or Alipay (nothing else is offered, and
//! a credit method forced into the page is refused by the server), and prints the company's
//! numbered 收据 with the amount in capitals; a bad amount or a refusal changes nothing, and a
//! retry after a dropped connection posts once.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, browser_test_at, Ctx, TODAY};
use crate::till::{amount, money, yuan};

/// Whether the company has a fee receipt numbered `n` (read as an admin).
async fn has_receipt(ctx: &Ctx, company: &str, n: i64) -> bool {
    let r = reqwest::Client::new()
        .get(ctx.url(&format!("/v1/companies/{company}/fee-receipts/{n}")))
        .bearer_auth(&ctx.admin)
        .send()
        .await
        .expect("GET receipt");
    match r.status().as_u16() {
        200 => true,
        404 => false,
        s => panic!("receipt {company} {n}: status {s}"),
    }
}

/// The company's last receipt number (0 when it has none): the sequence is gapless, so a
/// doubling probe and a bisection find it.
pub(crate) async fn last_receipt(ctx: &Ctx, company: &str) -> i64 {
    let mut high = 1;
    while has_receipt(ctx, company, high).await {
        high *= 2;
    }
    let mut low = 0; // the last known to exist (0: none)
    while high - low > 1 {
        let mid = (low + high) / 2;
        if has_receipt(ctx, company, mid).await {
            low = mid;
        } else {
            high = mid;
        }
    }
    low
}

/// A household of K01 that owes fees, and what it owes (the company's arrears list).
pub(crate) async fn owing_household(ctx: &Ctx) -> (String, i64) {
    let arrears = ctx.api_get(&ctx.company, "/v1/companies/K01/arrears").await;
    let h = arrears["households"]
        .as_array()
        .expect("households")
        .iter()
        .find(|h| money(&h["total"]) > 5_000)
        .unwrap_or_else(|| panic!("a K01 household owing over 50.00: {arrears}"));
    (
        h["household"].as_str().expect("code").to_string(),
        money(&h["total"]),
    )
}

async fn fees(ctx: &Ctx, household: &str) -> Value {
    ctx.api_get(&ctx.admin, &format!("/v1/households/{household}"))
        .await["fees"]
        .clone()
}

#[test]
fn a_cashier_takes_a_property_fee_and_prints_the_numbered_receipt_in_capitals() {
    browser_test("till: property fee", |ctx: Ctx| async move {
        let (hh, owed) = owing_household(&ctx).await;
        let last = last_receipt(&ctx, "K01").await;
        let company = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}"))
            .await;
        let company_name = company["company_name"].as_str().expect("name").to_string();
        ctx.open("/till").await;
        ctx.sign_in(&ctx.cashier).await;
        ctx.visible("#scan").await;
        ctx.keys("\u{E035}").await; // F5: the fee panel
        assert_eq!(
            ctx.script(
                "return document.querySelector('.tabs [aria-selected=true]').id",
                vec![]
            )
            .await,
            json!("tab-fee")
        );
        ctx.visible("#fee-needs-household").await;
        assert!(ctx.text("#till-keys").await.contains("F5 物业费"));

        // The household: what it owes its company, and nothing but cash, WeChat and Alipay.
        ctx.fill("#scan", &format!("{}\u{E007}", hh.to_lowercase()))
            .await;
        ctx.text_until("#hh-code", |t| t == hh).await;
        ctx.text_until("#fee-arrears", |t| t == yuan(owed)).await;
        assert_eq!(
            ctx.text("#fee-company").await,
            format!("{company_name}（K01）")
        );
        let methods = ctx
            .script(
                "return [...document.querySelectorAll('#fee-method option')].map(o => o.value)",
                vec![],
            )
            .await;
        assert_eq!(methods, json!(["cash", "wechat", "alipay"]));
        ctx.visible("#fee-pay-owed").await;
        // Each unpaid bill, oldest first, as the till's read of the household has it.
        let read = ctx
            .api_get(&ctx.cashier, &format!("/v1/till/households/{hh}/fees"))
            .await;
        let bills = ctx
            .script(
                "return [...document.querySelectorAll('[id^=fee-bill-]')].map(d => [d.id, d.textContent])",
                vec![],
            )
            .await;
        let expect: Vec<Value> = read["bills"]
            .as_array()
            .expect("bills")
            .iter()
            .map(|b| {
                json!([
                    format!("fee-bill-{}", b["month"].as_str().unwrap()),
                    yuan(money(&b["open"]))
                ])
            })
            .collect();
        assert!(!expect.is_empty());
        assert_eq!(bills, json!(expect));
        assert_eq!(money(&read["arrears"]), owed);
        ctx.shot("till-fee-panel").await;

        // A bad amount: the field is marked, the problem says why, nothing is posted.
        ctx.fill("#fee-amount", "12.345").await;
        ctx.click("#fee-submit").await;
        ctx.text_until("#fee-problem", |t| {
            t == "金额格式不对：最多两位小数，例如 12.50"
        })
        .await;
        assert_eq!(
            ctx.script(
                "return document.querySelector('#fee-amount').classList.contains('invalid')",
                vec![]
            )
            .await,
            json!(true)
        );
        // A shopping-credit method forced into the page: the server refuses it on `method`.
        ctx.script(
            "const s = document.querySelector('#fee-method'); \
             s.append(new Option('wallet', 'wallet')); s.value = 'wallet'; return true",
            vec![],
        )
        .await;
        ctx.fill("#fee-amount", "12.34").await;
        ctx.click("#fee-submit").await;
        ctx.text_until("#fee-problem", |t| t == "不接受此付款方式")
            .await;
        assert_eq!(
            ctx.script(
                "return [document.querySelector('#fee-method').classList.contains('invalid'), \
                 document.querySelector('#fee-amount').classList.contains('invalid'), \
                 document.querySelector('#receipt').hidden]",
                vec![]
            )
            .await,
            json!([true, false, true])
        );
        assert_eq!(money(&fees(&ctx, &hh).await["arrears"]), owed);
        assert_eq!(
            last_receipt(&ctx, "K01").await,
            last,
            "nothing was numbered"
        );

        // Paid in WeChat: the company's next number, the amount in figures and in capitals.
        ctx.script(
            "const s = document.querySelector('#fee-method'); \
             s.querySelector('option[value=wallet]').remove(); return true",
            vec![],
        )
        .await;
        ctx.select("#fee-method", "wechat").await;
        ctx.fill("#fee-amount", "12.34").await;
        ctx.click("#fee-submit").await;
        let first = format!("No. {:06}", last + 1);
        ctx.text_until("#r-fee-number", |t| t == first).await;
        assert_eq!(ctx.text("#done-fee-number").await, first);
        assert_eq!(ctx.text("#done-amount").await, "¥12.34");
        assert_eq!(ctx.text("#r-fee-amount").await, "¥12.34");
        assert_eq!(ctx.text("#r-fee-words").await, "壹拾贰元叁角肆分");
        assert_eq!(
            ctx.text("#r-fee-company").await,
            format!("{company_name}（K01）")
        );
        assert_eq!(ctx.text("#r-household").await, hh);
        assert_eq!(ctx.text("#r-method").await, "微信");
        assert_eq!(ctx.text("#r-date").await, TODAY);
        assert_eq!(ctx.text("#r-cashier").await, "王芳");
        assert!(ctx.text("#receipt-shop").await.contains("S1"));
        assert!(ctx.text("#r-fee-collected").await.contains("COOP"));
        assert_eq!(ctx.text("#receipt-title").await, "物业费收据");
        ctx.script(
            "document.querySelector('#receipt').scrollIntoView(); return true",
            vec![],
        )
        .await;
        ctx.shot("till-fee-receipt").await;
        // The bills it settled, oldest first, add up to what was paid.
        let settled = ctx
            .script(
                "return [...document.querySelectorAll('[id^=r-fee-bill-]')].map(d => d.textContent)",
                vec![],
            )
            .await;
        let settled: i64 = settled
            .as_array()
            .expect("bills")
            .iter()
            .map(|t| money(&json!(t.as_str().unwrap().replace(['¥', ','], ""))))
            .sum();
        assert_eq!(settled, 1_234);
        assert_eq!(
            ctx.text("#r-fee-balance").await,
            format!("尚欠 {}", yuan(owed - 1_234))
        );
        assert_eq!(money(&fees(&ctx, &hh).await["arrears"]), owed - 1_234);
        // The receipt as the API reprints it says the same.
        let api = ctx
            .api_get(
                &ctx.cashier,
                &format!("/v1/companies/K01/fee-receipts/{}", last + 1),
            )
            .await;
        assert_eq!(api["amount_in_words"], json!("壹拾贰元叁角肆分"));
        assert_eq!(api["household"], json!(hh));
        // The customer is ended: the household is gone, the panel asks for the next one.
        assert_eq!(
            ctx.script(
                "return document.querySelector('#household-card').hidden",
                vec![]
            )
            .await,
            json!(true)
        );
        ctx.visible("#fee-needs-household").await;

        // F8 prints it (the print dialog is counted, not opened).
        ctx.script(
            "window.__printed = 0; window.print = () => { window.__printed += 1; }; return true",
            vec![],
        )
        .await;
        ctx.keys("\u{E038}").await;
        assert_eq!(
            ctx.script("return window.__printed", vec![]).await,
            json!(1)
        );

        // The connection drops after the second payment reached the server: the retry is
        // answered with what was posted, under the next number, charged once.
        ctx.script(
            "const real = window.fetch; window.__dropped = 0; \
             window.fetch = async function (input, init) { \
               const r = await real(input, init); \
               if (window.__dropped === 0 && init && init.method === 'POST' \
                   && String(input).endsWith('/v1/till/fee-payments')) { \
                 window.__dropped = 1; throw new TypeError('Failed to fetch'); } \
               return r; }; return true;",
            vec![],
        )
        .await;
        ctx.fill("#scan", &format!("{hh}\u{E007}")).await;
        ctx.text_until("#fee-arrears", |t| t == yuan(owed - 1_234))
            .await;
        // Pay all owed: the amount box takes what the household owes.
        ctx.click("#fee-pay-owed").await;
        assert_eq!(
            crate::till::value(&ctx, "#fee-amount").await,
            amount(owed - 1_234)
        );
        ctx.fill("#fee-amount", "20.00").await;
        ctx.select("#fee-method", "cash").await;
        ctx.click("#fee-submit").await;
        ctx.text_until("#fee-problem", |t| {
            t == "网络中断：请检查连接后重试（不会重复记账）"
        })
        .await;
        assert_eq!(
            ctx.text("#hh-code").await,
            hh,
            "the household stays for the retry"
        );
        assert_eq!(money(&fees(&ctx, &hh).await["arrears"]), owed - 3_234);
        ctx.click("#fee-submit").await;
        let second = format!("No. {:06}", last + 2);
        ctx.text_until("#r-fee-number", |t| t == second).await;
        assert!(ctx.text("#receipt-title").await.contains("未重复记入"));
        assert_eq!(ctx.text("#r-fee-words").await, "贰拾元整");
        assert_eq!(ctx.text("#r-method").await, "现金");
        assert_eq!(money(&fees(&ctx, &hh).await["arrears"]), owed - 3_234);
        assert_eq!(last_receipt(&ctx, "K01").await, last + 2, "numbered once");

        // In English the same receipt.
        ctx.click("#lang-switch").await;
        ctx.text_until("#receipt-title", |t| t.starts_with("Property fee receipt"))
            .await;
        assert_eq!(ctx.text("#r-method").await, "Cash");
        assert_eq!(ctx.text("#r-fee-words").await, "贰拾元整");
    });
}

/// After a compound moves to another company, the fee panel is for the company in force: its
/// name, its bills and what a payment here settles; what the household still owes the former
/// company is on a line of its own (not in the amount owed here), as the till's read has it.
#[test]
fn after_a_move_the_fee_panel_shows_the_former_company_apart() {
    browser_test_at(
        "till: fee panel after a move",
        "2026-12-02",
        |ctx: Ctx| async move {
            let (hh, owed_k01) = owing_household(&ctx).await;
            let household = ctx
                .api_get(&ctx.admin, &format!("/v1/households/{hh}"))
                .await;
            let compound = household["compound"]
                .as_str()
                .expect("compound")
                .to_string();
            let (status, moved) = ctx
                .api_post(
                    &ctx.admin,
                    "/v1/master-changes",
                    json!({ "subject": "compound", "code": compound, "field": "company",
                        "value": "K02", "effective_from": "2026-12" }),
                )
                .await;
            assert_eq!(status, 200, "{moved}");
            assert_eq!(
                (&moved["old"], &moved["new"]),
                (&json!("K01"), &json!("K02"))
            );
            let (status, billed) = ctx
                .api_post(
                    &ctx.admin,
                    "/v1/fees/bills",
                    json!({ "company": "K02", "month": "2026-12" }),
                )
                .await;
            assert_eq!(status, 201, "{billed}");

            let read = ctx
                .api_get(&ctx.cashier, &format!("/v1/till/households/{hh}/fees"))
                .await;
            assert_eq!(read["company"], json!("K02"), "{read}");
            let elsewhere = &read["owed_elsewhere"][0];
            assert_eq!(elsewhere["company"], json!("K01"), "{read}");
            assert_eq!(money(&elsewhere["balance"]), owed_k01, "{read}");

            ctx.open("/till").await;
            ctx.sign_in(&ctx.cashier).await;
            ctx.visible("#scan").await;
            ctx.keys("\u{E035}").await; // F5: the fee panel
            ctx.fill("#scan", &format!("{hh}\u{E007}")).await;
            ctx.text_until("#hh-code", |t| t == hh).await;
            ctx.text_until("#fee-elsewhere-K01", |t| t == yuan(owed_k01))
                .await;
            let k02 = read["company_name"].as_str().expect("name");
            assert_eq!(ctx.text("#fee-company").await, format!("{k02}（K02）"));
            assert_eq!(
                ctx.text("#fee-arrears").await,
                yuan(money(&read["arrears"])),
                "what is owed here is K02's only"
            );
            let label = ctx
            .script(
                "return document.querySelector('#fee-elsewhere-K01').previousElementSibling.textContent",
                vec![],
            )
            .await;
            let label = label.as_str().expect("label");
            assert!(label.starts_with("欠原物业公司"), "{label}");
            for month in elsewhere["months"].as_array().expect("months") {
                assert!(label.contains(month.as_str().unwrap()), "{label}");
            }
            // The months owed to K01 are not among the bills a payment here settles.
            let bills = ctx
                .script(
                    "return [...document.querySelectorAll('[id^=fee-bill-]')].map(d => d.id)",
                    vec![],
                )
                .await;
            assert_eq!(bills, json!(["fee-bill-2026-12"]), "{read}");
        },
    );
}
