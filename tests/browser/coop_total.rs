//! Browser tests of the cooperative's page beyond one shop: the daily till report's total
//! over all shops, and its CSV export with a total row.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, yuan, Ctx};

const DAY: &str = "2026-11-19";
const SIZES: [(u32, u32, &str); 2] = [(1366, 768, "1366x768"), (390, 844, "390x844")];

/// `"123.40"` → 12340.
fn fen(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not an amount: {v}"));
    let (whole, frac) = s.split_once('.').expect("two decimals");
    whole.parse::<i64>().expect("whole") * 100 + frac.parse::<i64>().expect("fen")
}

#[test]
fn the_daily_till_report_adds_every_shop_up_and_exports_it() {
    browser_test("coop: till total and export", |ctx: Ctx| async move {
        ctx.open("/coop").await;
        ctx.sign_in(&ctx.accountant).await;
        ctx.visible("#coop-main").await;
        let report = ctx
            .api_get(&ctx.accountant, &format!("/v1/reports/till?date={DAY}"))
            .await;
        let shops = report["shops"].as_array().expect("shops");
        assert!(shops.len() >= 2, "{report}");
        // The API's total is the shops added up.
        for path in [
            ["topups", "paid"],
            ["topups", "credited"],
            ["sales", "total"],
            ["refunds", "amount"],
            ["vouchers_redeemed", "amount"],
        ] {
            let sum: i64 = shops.iter().map(|s| fen(&s[path[0]][path[1]])).sum();
            assert_eq!(fen(&report["total"][path[0]][path[1]]), sum, "{path:?}");
        }
        ctx.script(
            "document.querySelector('#till-date').value = arguments[0]; return true",
            vec![json!(DAY)],
        )
        .await;
        ctx.click("#till-load").await;
        let want = yuan(&report["total"]["sales"]["total"]);
        ctx.text_until("#till-total .sales-total", |t| t == want)
            .await;
        for (css, value) in [
            (
                "#till-total .topups-paid",
                &report["total"]["topups"]["paid"],
            ),
            (
                "#till-total .topups-credited",
                &report["total"]["topups"]["credited"],
            ),
            (
                "#till-total .refunds-amount",
                &report["total"]["refunds"]["amount"],
            ),
            (
                "#till-total .vouchers-amount",
                &report["total"]["vouchers_redeemed"]["amount"],
            ),
        ] {
            assert_eq!(ctx.text(css).await, yuan(value), "{css}");
        }
        assert_eq!(
            ctx.text("#till-total h2").await,
            format!("全部门店合计 {} 家门店", shops.len())
        );
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.script(
                "document.querySelector('#till-form').scrollIntoView({block: 'start'}); return true",
                vec![],
            )
            .await;
            ctx.shot(&format!("coop-till-total-{size}")).await;
        }
        ctx.viewport(1366, 768).await;

        // The export: a row per shop and the total row, headers in Chinese.
        let href = ctx
            .script(
                "return document.querySelector('#till-csv').getAttribute('href')",
                vec![],
            )
            .await;
        assert_eq!(
            href,
            json!(format!("/v1/reports/till?date={DAY}&format=csv&lang=zh-CN"))
        );
        ctx.click("#till-csv").await;
        let file = ctx.downloaded(".csv").await;
        let text = std::fs::read_to_string(&file).expect("the CSV");
        let rows: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
        assert!(rows[0].starts_with("营业日,门店代码,门店,"), "{}", rows[0]);
        assert_eq!(rows.len(), shops.len() + 2, "{text}");
        let last: Vec<&str> = rows[rows.len() - 1].split(',').collect();
        assert_eq!(last[2], "全部门店合计");
        assert_eq!(last[8], report["total"]["sales"]["total"].as_str().unwrap());
        // English headers follow the page's language.
        ctx.click("#lang-switch").await;
        ctx.text_until("#till-csv", |t| t == "Export CSV").await;
        let href = ctx
            .script(
                "return document.querySelector('#till-csv').getAttribute('href')",
                vec![],
            )
            .await;
        assert_eq!(
            href,
            json!(format!("/v1/reports/till?date={DAY}&format=csv&lang=en"))
        );
    });
}

#[test]
fn the_month_close_tab_shows_a_running_estimate_of_this_month_marked_as_one() {
    browser_test("coop: running estimate", |ctx: Ctx| async move {
        ctx.open("/coop").await;
        ctx.sign_in(&ctx.accountant).await;
        ctx.visible("#coop-main").await;
        let estimate = ctx
            .api_get(&ctx.accountant, "/v1/months/2026-11/close?estimate=true")
            .await;
        assert_eq!(
            estimate["estimated_to"],
            json!(crate::browser_support::TODAY)
        );
        assert_eq!(estimate["dry_run"], json!(true));
        ctx.click("#tab-close").await;
        let want = yuan(&estimate["profit"]);
        ctx.text_until("#estimate-profit", |t| t == want).await;
        assert_eq!(ctx.text("#estimate-pool").await, yuan(&estimate["pool"]));
        assert_eq!(
            ctx.text("#estimate-distributed").await,
            yuan(&estimate["distributed"])
        );
        assert_eq!(
            ctx.text("#estimate-households").await,
            estimate["households"].to_string()
        );
        assert_eq!(ctx.text("#estimate-title").await, "2026-11 至今（估算）");
        assert_eq!(ctx.text("#estimate .pill").await, "估算，不是结账结果");
        assert!(ctx.text("#estimate-note").await.contains("2026-11-20"));
        // Nothing was closed by looking.
        let again = ctx
            .api_get(&ctx.accountant, "/v1/months/2026-11/close?estimate=true")
            .await;
        assert_eq!(again["entry"], json!(null));
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.shot(&format!("coop-estimate-{size}")).await;
        }
        ctx.click("#lang-switch").await;
        ctx.text_until("#estimate-title", |t| t == "2026-11 so far (estimate)")
            .await;
    });
}
