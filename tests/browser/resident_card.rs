//! Browser tests of the resident's page as a resident reads it: fee lines of the history say
//! what is owed and what owes less (in words, not only colours), the household card's QR and
//! each active voucher's QR can be shown to a till, and a wrong PIN is said in a resident's words.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, Ctx};

const HOUSEHOLD: &str = "HX01-0007";

const SIZES: [(u32, u32, &str); 2] = [(1366, 768, "1366x768"), (390, 844, "390x844")];

/// An image on the page, once loaded: [its src, whether it drew].
async fn image(ctx: &Ctx, css: &str) -> Value {
    ctx.script(
        "const i = document.querySelector(arguments[0]); \
         return new Promise(ok => { const done = () => ok([i.getAttribute('src'), i.naturalWidth > 0]); \
         if (i.complete && i.naturalWidth) done(); else { i.addEventListener('load', done); \
         i.addEventListener('error', done); } });",
        vec![json!(css)],
    )
    .await
}

#[test]
fn a_resident_reads_fees_as_owed_and_shows_the_card_and_voucher_qr_codes() {
    browser_test("resident: words and QR codes", |ctx: Ctx| async move {
        let (status, topped) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({"household": HOUSEHOLD, "paid": "50.00", "method": "cash", "deliver": "voucher"}),
            )
            .await;
        assert_eq!(status, 201, "{topped}");
        let code = topped["voucher"]["code"]
            .as_str()
            .expect("code")
            .to_string();
        let link = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{HOUSEHOLD}/link"))
            .await;
        ctx.browser
            .goto(link["url"].as_str().expect("url"))
            .await
            .expect("open the card link");
        ctx.visible("#resident-main").await;

        // Fee lines: a bill is money owed, a payment or the cooperative's cover owes less; the
        // words say which, whatever the colour.
        let history = ctx
            .api_get(
                &ctx.admin,
                &format!("/v1/households/{HOUSEHOLD}/history?limit=20"),
            )
            .await;
        let shown = ctx
            .script(
                "return [...document.querySelectorAll('#history .hist-change[data-group=fees]')]\
                 .map(c => [Number(c.closest('li').dataset.entry), c.dataset.amount, \
                 c.querySelector('.muted').innerText.trim(), c.querySelector('strong').innerText.trim(), \
                 c.className])",
                vec![],
            )
            .await;
        let shown = shown.as_array().expect("fee lines").clone();
        let mut owed = 0;
        let mut less = 0;
        for line in &shown {
            let amount = line[1].as_str().expect("amount");
            let (label, class) = if amount.starts_with('-') {
                less += 1;
                ("欠费减少", "res-pos")
            } else {
                owed += 1;
                ("新增欠费", "res-owe")
            };
            assert_eq!(line[2], json!(label), "{line}");
            let strong = line[3].as_str().expect("strong");
            assert!(
                !strong.starts_with('+') && !strong.starts_with('-'),
                "{line}"
            );
            assert!(line[4].as_str().unwrap_or("").contains(class), "{line}");
            // The amount is the API's, for that entry.
            let entry = history["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["entry"] == line[0])
                .expect("the entry is the API's");
            let fees: Vec<&Value> = entry["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .filter(|c| c["account"] == "fees")
                .collect();
            assert_eq!(fees.len(), 1, "{entry}");
            assert_eq!(fees[0]["amount"], line[1]);
        }
        assert!(
            owed > 0 && less > 0,
            "bills and payments in the history: {shown:?}"
        );

        // The household card's QR: the signed link, as the office prints it.
        ctx.click("#card-toggle").await;
        let card = image(&ctx, "#card-qr-img").await;
        assert_eq!(
            card,
            json!([format!("/v1/households/{HOUSEHOLD}/link/qr.svg"), true])
        );
        let page_svg = ctx
            .script(
                "return fetch(arguments[0]).then(r => r.text())",
                vec![card[0].clone()],
            )
            .await;
        let office_svg = ctx
            .api_get_text(
                &ctx.company,
                &format!("/v1/households/{HOUSEHOLD}/link/qr.svg"),
            )
            .await;
        assert!(office_svg.contains("<svg"), "{office_svg}");
        assert_eq!(page_svg, json!(office_svg));
        assert_eq!(ctx.text("#card-toggle").await, "收起二维码");

        // An active voucher's QR.
        let li = "#vouchers li.voucher[data-status=active]";
        ctx.click(&format!("{li} .voucher-qr-show")).await;
        let v = image(&ctx, &format!("{li} .voucher-qr img")).await;
        assert_eq!(v[1], json!(true), "{v}");
        let src = v[0].as_str().expect("src").to_string();
        assert!(
            src.starts_with("/v1/vouchers/") && src.ends_with("/qr.svg"),
            "{src}"
        );
        let shown_codes = ctx
            .script(
                "return [...document.querySelectorAll('#vouchers li.voucher[data-status=active] .voucher-qr img')].map(i => i.alt)",
                vec![],
            )
            .await;
        assert_eq!(shown_codes, json!([code]));
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.script(
                "document.querySelector('#card-qr').scrollIntoView({block: 'start'}); return true",
                vec![],
            )
            .await;
            ctx.shot(&format!("resident-qr-{size}")).await;
            ctx.script(
                "document.querySelector('#history').scrollIntoView({block: 'start'}); return true",
                vec![],
            )
            .await;
            ctx.shot(&format!("resident-history-{size}")).await;
        }
    });
}
