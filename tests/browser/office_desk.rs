//! Browser tests of the office's household desk: a fee payment recorded once for a double
//! click, with the receipt the API gives; a resident's PIN set (and a mistyped one refused);
//! the household card shown with its signed link's QR code for printing, and a new card that
//! makes the old link stop working.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, yuan, Ctx};
use crate::till::until;

const HOUSEHOLD: &str = "HX01-0012";
const SIZES: [(u32, u32, &str); 2] = [(1366, 768, "1366x768"), (390, 844, "390x844")];

async fn fees_balance(ctx: &Ctx) -> Value {
    ctx.api_get(&ctx.company, &format!("/v1/households/{HOUSEHOLD}"))
        .await["fees"]["balance"]
        .clone()
}

#[test]
fn the_office_records_a_fee_payment_sets_a_pin_and_prints_the_household_card() {
    browser_test("office: household desk", |ctx: Ctx| async move {
        ctx.open("/office").await;
        ctx.sign_in(&ctx.company).await;
        ctx.fill(
            "#desk-household",
            &format!("{}\u{E007}", HOUSEHOLD.to_lowercase()),
        )
        .await;
        ctx.text_until("#desk-code", |t| t == HOUSEHOLD).await;
        let api = ctx
            .api_get(&ctx.company, &format!("/v1/households/{HOUSEHOLD}"))
            .await;
        assert_eq!(
            ctx.text("#desk-compound").await,
            format!(
                "{}（{}）",
                api["compound_name"].as_str().unwrap(),
                api["compound"].as_str().unwrap()
            )
        );
        assert_eq!(
            ctx.text("#desk-area").await,
            format!("{} 平方米", api["area_m2"].as_str().unwrap())
        );

        // A fee payment, double-clicked: recorded once, with the API's receipt.
        let before = fees_balance(&ctx).await;
        let before_fen = crate::till::money(&before);
        ctx.fill("#pay-amount", "100.00").await;
        ctx.select("#pay-method", "wechat").await;
        ctx.fill("#pay-reference", "SJ-2026-0042").await;
        ctx.script(
            "const b = document.querySelector('#pay-submit'); b.click(); \
             document.querySelector('#desk-pay').requestSubmit(); return true",
            vec![],
        )
        .await;
        ctx.text_until("#pay-paid", |t| t == "¥100.00").await;
        let after = crate::till::money(&fees_balance(&ctx).await);
        assert_eq!(after, before_fen - 10_000, "recorded once");
        let expect = if after > 0 {
            format!("欠费 {}", yuan(&json!(crate::till::amount(after))))
        } else if after < 0 {
            format!("预交 {}", yuan(&json!(crate::till::amount(-after))))
        } else {
            "已结清".to_string()
        };
        assert_eq!(ctx.text("#pay-balance").await, expect);
        ctx.text_until("#desk-fees", |t| t == expect).await;
        let entry: i64 = ctx.text("#pay-entry").await.parse().expect("entry");
        // The payment's numbered receipt of the company, as printed: "No. 000001" and on.
        let receipt = ctx.text("#pay-receipt-no").await;
        assert!(
            receipt.starts_with("No. ")
                && receipt.len() == 10
                && receipt[4..].parse::<i64>().is_ok_and(|n| n >= 1),
            "{receipt}"
        );
        let history = ctx
            .api_get(
                &ctx.company,
                &format!("/v1/households/{HOUSEHOLD}/history?limit=5"),
            )
            .await;
        let paid: Vec<&Value> = history["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|i| i["kind"] == "fee_payment" && i["entry"] == json!(entry))
            .collect();
        assert_eq!(paid.len(), 1, "{history}");

        // A PIN typed twice differently is refused; the same twice is set and works.
        ctx.fill("#pin-new", "258036").await;
        ctx.fill("#pin-again", "258136").await;
        ctx.click("#pin-submit").await;
        ctx.text_until("#pin-problem", |t| t == "两次输入的密码不一样")
            .await;
        let (status, _) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": HOUSEHOLD, "pin": "258036"}),
            )
            .await;
        assert_eq!(status, 401, "no PIN was set yet");
        ctx.fill("#pin-again", "258036").await;
        ctx.click("#pin-submit").await;
        ctx.visible("#pin-done").await;
        let (status, body) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": HOUSEHOLD, "pin": "258036"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");

        // The card: the QR code of the household's signed link, ready to print.
        let link = ctx
            .api_get(&ctx.company, &format!("/v1/households/{HOUSEHOLD}/link"))
            .await;
        ctx.click("#card-issue").await;
        ctx.visible("#card-print").await;
        until(
            &ctx,
            "const i = document.querySelector('#card-qr-img'); return Boolean(i) && i.complete && i.naturalWidth > 0",
            "the card's QR code draws",
        )
        .await;
        assert_eq!(
            ctx.text("#card-version").await,
            format!("第 {} 版住户卡", link["version"])
        );
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.script(
                "document.querySelector('#card-print').scrollIntoView({block: 'center'}); return true",
                vec![],
            )
            .await;
            ctx.shot(&format!("office-card-{size}")).await;
        }
        ctx.script(
            "window.__printed = []; window.print = () => window.__printed.push(document.body.className); return true",
            vec![],
        )
        .await;
        ctx.click("#card-print-go").await;
        assert_eq!(
            ctx.script("return window.__printed", vec![]).await,
            json!(["printing-card"])
        );

        // A new card: the old link stops working, the new one signs in.
        ctx.script("window.confirm = () => true; return true", vec![])
            .await;
        ctx.click("#card-rotate").await;
        let next = link["version"].as_i64().expect("version") + 1;
        ctx.text_until("#card-version", |t| t == format!("第 {next} 版住户卡"))
            .await;
        let (status, _) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": HOUSEHOLD, "version": link["version"], "signature": link["signature"]}),
            )
            .await;
        assert_eq!(status, 401, "the old card still works");
        let new = ctx
            .api_get(&ctx.company, &format!("/v1/households/{HOUSEHOLD}/link"))
            .await;
        assert_eq!(new["version"], json!(next));
        let (status, _) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": HOUSEHOLD, "version": new["version"], "signature": new["signature"]}),
            )
            .await;
        assert_eq!(status, 201);
    });
}
