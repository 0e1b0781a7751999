//! Browser tests of the office's fee receipts (收据): the payment the desk just recorded prints
//! with its number and the amount in capitals, and any receipt of the company — one its
//! cooperative's till collected included — prints again by its number; a bad or unknown number
//! is refused on the number's field.

use serde_json::json;

use crate::browser_support::{browser_test, Ctx, TODAY};
use crate::till::money;
use crate::till_fees::{last_receipt, owing_household};

#[test]
fn the_office_prints_the_receipt_it_just_recorded_and_reprints_one_by_number() {
    browser_test("office: fee receipts", |ctx: Ctx| async move {
        let (hh, _) = owing_household(&ctx).await;
        let last = last_receipt(&ctx, "K01").await;
        let name = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}"))
            .await["company_name"]
            .as_str()
            .expect("company name")
            .to_string();
        ctx.open("/office").await;
        ctx.sign_in(&ctx.company).await;
        ctx.fill("#desk-household", &format!("{hh}\u{E007}")).await;
        ctx.text_until("#desk-code", |t| t == hh).await;

        // Recorded at the desk: its receipt shows, numbered next, ready to print.
        ctx.fill("#pay-amount", "100.07").await;
        ctx.select("#pay-method", "cash").await;
        ctx.fill("#pay-reference", "SJ-2026-0107").await;
        ctx.click("#pay-submit").await;
        let first = format!("No. {:06}", last + 1);
        ctx.text_until("#fr-number", |t| t == first).await;
        assert_eq!(ctx.text("#pay-receipt-no").await, first);
        assert_eq!(ctx.text("#fr-company").await, format!("{name}（K01）"));
        assert_eq!(ctx.text("#fr-household").await, hh);
        assert_eq!(ctx.text("#fr-amount").await, "¥100.07");
        assert_eq!(ctx.text("#fr-words").await, "壹佰元零柒分");
        assert_eq!(ctx.text("#fr-method").await, "现金");
        assert_eq!(ctx.text("#fr-collected").await, "物业公司服务台");
        assert_eq!(ctx.text("#fr-date").await, TODAY);
        let bills = ctx
            .script(
                "return [...document.querySelectorAll('[id^=fr-bill-], #fr-prepaid')] \
                 .map(d => d.textContent.replace(/[¥,]/g, ''))",
                vec![],
            )
            .await;
        let settled: i64 = bills.as_array().expect("bills").iter().map(money).sum();
        assert_eq!(settled, 10_007, "{bills}");
        ctx.script(
            "document.querySelector('#fee-receipt').scrollIntoView(); return true",
            vec![],
        )
        .await;
        ctx.shot("office-fee-receipt").await;

        // 打印收据: the receipt alone goes to the printer (the dialog is recorded, not opened).
        ctx.script(
            "window.__printed = []; window.print = () => window.__printed.push(document.body.className); return true",
            vec![],
        )
        .await;
        ctx.click("#fr-print-go").await;
        assert_eq!(
            ctx.script("return window.__printed", vec![]).await,
            json!(["printing-fee-receipt"])
        );
        let print_rule = ctx
            .script(
                "return [...document.styleSheets].some(s => [...s.cssRules].some(r => \
                 r.media && r.media.mediaText === 'print' && [...r.cssRules].some(x => \
                 x.selectorText === 'body.printing-fee-receipt #fr-print')))",
                vec![],
            )
            .await;
        assert_eq!(print_rule, json!(true));
        // On screen it is a bordered slip, not the page's full width.
        assert_eq!(
            ctx.script(
                "return getComputedStyle(document.querySelector('#fr-print')).borderTopStyle",
                vec![]
            )
            .await,
            json!("dashed")
        );

        // One collected at the cooperative's till prints again by its number.
        let (status, paid) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/till/fee-payments",
                json!({"household": hh, "amount": "3.50", "method": "alipay"}),
            )
            .await;
        assert_eq!(status, 201, "{paid}");
        assert_eq!(paid["receipt"], json!(last + 2));
        ctx.fill("#fr-number-input", &(last + 2).to_string()).await;
        ctx.click("#fr-reprint-go").await;
        let second = format!("No. {:06}", last + 2);
        ctx.text_until("#fr-number", |t| t.starts_with(&second))
            .await;
        assert_eq!(ctx.text("#fr-number").await, format!("{second} （补打）"));
        assert_eq!(ctx.text("#fr-words").await, "叁元伍角整");
        assert_eq!(ctx.text("#fr-method").await, "支付宝");
        let collected = ctx.text("#fr-collected").await;
        assert!(
            collected.contains("代收") && collected.contains("S1"),
            "{collected}"
        );
        // A reprint by number knows no bills: it shows none rather than guessing.
        assert_eq!(
            ctx.script(
                "return document.querySelectorAll('[id^=fr-bill-]').length",
                vec![]
            )
            .await,
            json!(0)
        );
        ctx.click("#fr-print-go").await;
        assert_eq!(
            ctx.script("return window.__printed.length", vec![]).await,
            json!(2)
        );

        // A number that is not one, and one not (yet) given: refused on the number's field.
        ctx.fill("#fr-number-input", "abc").await;
        ctx.click("#fr-reprint-go").await;
        ctx.text_until("#fr-problem", |t| t == "请输入收据号（正整数）")
            .await;
        ctx.fill("#fr-number-input", &(last + 50).to_string()).await;
        ctx.click("#fr-reprint-go").await;
        ctx.text_until("#fr-problem", |t| t == "未找到").await;
        assert_eq!(
            ctx.script(
                "return [document.querySelector('#fr-number-input').classList.contains('invalid'), \
                 document.querySelector('#fr-print').hidden]",
                vec![]
            )
            .await,
            json!([true, true])
        );

        // In English.
        ctx.fill("#fr-number-input", &(last + 1).to_string()).await;
        ctx.click("#fr-reprint-go").await;
        ctx.text_until("#fr-number", |t| t.starts_with(&first))
            .await;
        ctx.click("#lang-switch").await;
        ctx.text_until("#fr-collected", |t| t == "the company’s office")
            .await;
        assert_eq!(ctx.text("#fr-print-go").await, "Print receipt");
    });
}
