//! Browser tests of the /alliance page: the alliance's board signs in with its token and sees
//! the monthly summary, the collection-rate chart with its table, participation, the
//! cooperative and the companies, and the grid and building tables, each compared with what the
//! API reports for the same thing; a month picked from the list reloads everything; the CSV
//! export downloads; other staff are turned away; no household appears anywhere.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, yuan, Ctx};

/// A ratio as the page shows it: `"0.8532"` → `"85.32%"`, `null` → `"—"`.
fn pct(v: &Value) -> String {
    let Some(s) = v.as_str() else {
        return "—".into();
    };
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<4}");
    let units =
        whole.parse::<u64>().expect("ratio") * 100 + frac[..2].parse::<u64>().expect("ratio");
    format!("{}{units}.{}%", if neg { "-" } else { "" }, &frac[2..4])
}

async fn alliance_token(ctx: &Ctx) -> String {
    let (status, body) = ctx
        .api_post(
            &ctx.admin,
            "/v1/tokens",
            json!({"role": "alliance", "label": "board"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("token").to_string()
}

async fn loaded(ctx: &Ctx, month: &str) {
    let want = month.to_string();
    ctx.browser
        .wait()
        .at_most(crate::browser_support::WAIT)
        .for_element(fantoccini::Locator::Css(&format!(
            "body[data-loaded=\"{want}\"]"
        )))
        .await
        .unwrap_or_else(|e| panic!("the page never loaded {month}: {e}"));
}

#[test]
fn the_alliance_page_shows_the_api_figures_beside_its_charts() {
    browser_test("alliance page", |ctx: Ctx| async move {
        let token = alliance_token(&ctx).await;
        ctx.open("/alliance").await;
        ctx.sign_in(&token).await;
        ctx.visible("#alliance-main").await;
        assert_eq!(ctx.text("#who").await, "物业联盟");
        let report = ctx.api_get(&token, "/v1/alliance/report").await;
        let month = report["month"].as_str().expect("month").to_string();
        loaded(&ctx, &month).await;
        let summary = ctx
            .api_get(&token, &format!("/v1/alliance/summary?month={month}"))
            .await;

        // The monthly summary.
        assert_eq!(
            ctx.text("#summary-title").await,
            format!("红心物业联盟月报 · {month}")
        );
        assert_eq!(
            ctx.text("#summary-billed").await,
            yuan(&summary["totals"]["fees"]["billed"])
        );
        assert_eq!(
            ctx.text("#summary-collected").await,
            yuan(&summary["totals"]["fees"]["collected"])
        );
        assert!(ctx
            .text("#summary-rate")
            .await
            .starts_with(&pct(&summary["totals"]["fees"]["collection_rate"])));
        assert_eq!(
            ctx.text("#summary-households").await,
            summary["households"].to_string()
        );
        let coop_month = &summary["cooperatives"][0]["month"];
        assert_eq!(
            ctx.text("#summary-body dd.summary-sales[data-cooperative=\"COOP\"]")
                .await,
            format!(
                "{} ({} / {})",
                yuan(&coop_month["sales"]),
                yuan(&coop_month["credit_sales"]),
                yuan(&coop_month["cash_sales"])
            )
        );
        for c in summary["compounds"].as_array().expect("compounds") {
            let row = format!(
                "#summary-compounds tr[data-compound=\"{}\"]",
                c["compound"].as_str().unwrap()
            );
            assert_eq!(
                ctx.text(&format!("{row} td.billed")).await,
                yuan(&c["figures"]["fees"]["billed"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.rate")).await,
                pct(&c["figures"]["fees"]["collection_rate"])
            );
        }

        // The collection rates: a line per compound with figures, a marker per takeover in
        // range, and the table beside the chart with every rate.
        let months: Vec<String> = report["months"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        let compounds = report["compounds"].as_array().expect("compounds");
        assert_eq!(compounds.len(), 12);
        let mut lines = 0;
        let mut takeovers = 0;
        for c in compounds {
            let code = c["compound"].as_str().unwrap();
            let row = format!("#collection-rates tr[data-compound=\"{code}\"]");
            for m in c["months"].as_array().unwrap() {
                let cell = format!("{row} td.rate-{}", m["month"].as_str().unwrap());
                assert_eq!(
                    ctx.text(&cell).await,
                    pct(&m["fees"]["collection_rate"]),
                    "{cell}"
                );
            }
            if c["months"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["fees"]["collection_rate"].is_string())
            {
                lines += 1;
            }
            if let Some(d) = c["taken_over_on"].as_str() {
                assert_eq!(ctx.text(&format!("{row} td.taken-over")).await, d);
                if months.iter().any(|m| d.starts_with(m.as_str())) {
                    takeovers += 1;
                }
            }
        }
        assert!(
            lines > 0 && takeovers > 0,
            "the demo's compounds have rates and takeovers"
        );
        let drawn = ctx
            .script(
                "return [document.querySelectorAll('#collection-svg polyline.rate-line').length, \
                 document.querySelectorAll('#collection-svg line.takeover').length]",
                vec![],
            )
            .await;
        assert_eq!(drawn, json!([lines, takeovers]));

        // Participation, the cooperative and the companies.
        for c in compounds {
            let code = c["compound"].as_str().unwrap();
            let row = format!("#participation-rates tr[data-compound=\"{code}\"]");
            assert_eq!(
                ctx.text(&format!("{row} td.households")).await,
                c["households"].to_string()
            );
            assert_eq!(
                ctx.text(&format!("{row} td.holders")).await,
                format!("{} ({})", c["holders"], pct(&c["holder_share"]))
            );
        }
        let bars = ctx
            .script(
                "return document.querySelectorAll('#participation-svg rect.bar').length",
                vec![],
            )
            .await;
        assert!(bars.as_u64().unwrap_or(0) >= 12, "{bars}");
        let coop = &report["cooperatives"][0];
        for m in coop["months"].as_array().unwrap() {
            let row = format!(
                "#coop-months tr[data-cooperative=\"{}\"][data-month=\"{}\"]",
                coop["cooperative"].as_str().unwrap(),
                m["month"].as_str().unwrap()
            );
            assert_eq!(
                ctx.text(&format!("{row} td.sales")).await,
                yuan(&m["sales"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.credit-sales")).await,
                yuan(&m["credit_sales"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.prepaid-paid")).await,
                yuan(&m["prepaid_paid"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.custody")).await,
                yuan(&m["custody_deposit"])
            );
            if m["close"].is_object() {
                assert_eq!(
                    ctx.text(&format!("{row} td.pool")).await,
                    yuan(&m["close"]["pool"])
                );
            }
        }
        // The custody column comes with the report (no second request) and is the figure the
        // cooperative's own prepaid report works out for the report's month.
        let prepaid = ctx
            .api_get(&token, "/v1/reports/prepaid?cooperative=COOP")
            .await;
        assert_eq!(
            report["month"],
            json!(prepaid["as_of"].as_str().unwrap()[..7])
        );
        assert_eq!(
            ctx.text("#coop-prepaid-table td.custody").await,
            yuan(&prepaid["custody"]["deposit"])
        );
        for k in report["companies"].as_array().unwrap() {
            let row = format!(
                "#companies-figures tr[data-company=\"{}\"]",
                k["company"].as_str().unwrap()
            );
            assert_eq!(
                ctx.text(&format!("{row} td.received")).await,
                yuan(&k["allocations_received"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.due")).await,
                yuan(&k["outstanding"])
            );
            assert_eq!(
                ctx.text(&format!("{row} td.arrears")).await,
                yuan(&k["arrears"]["total"])
            );
        }

        // Grids and buildings of the month.
        let rows = ctx
            .script(
                "return [document.querySelectorAll('#grid-figures tbody tr').length, \
                 document.querySelectorAll('#building-figures tbody tr').length]",
                vec![],
            )
            .await;
        assert_eq!(
            rows,
            json!([
                report["grids"].as_array().unwrap().len(),
                report["buildings"].as_array().unwrap().len()
            ])
        );
        let g = &report["grids"][0];
        let row = format!(
            "#grid-figures tr[data-compound=\"{}\"][data-grid=\"{}\"]",
            g["compound"].as_str().unwrap(),
            g["grid"].as_str().unwrap()
        );
        assert_eq!(
            ctx.text(&format!("{row} td.billed")).await,
            yuan(&g["fees"]["billed"])
        );
        assert_eq!(
            ctx.text(&format!("{row} td.households")).await,
            g["households"].to_string()
        );

        // No household codes or names anywhere on the page.
        let text = ctx.script("return document.body.innerText", vec![]).await;
        let text = text.as_str().unwrap_or_default();
        assert!(!text.contains("HX01-0"), "a household code on the page");
        assert!(!text.contains("**"), "a masked name on the page");

        // Another month: everything follows.
        let first = months.first().expect("a month").clone();
        ctx.select("#alliance-month", &first).await;
        loaded(&ctx, &first).await;
        assert_eq!(
            ctx.text("#summary-title").await,
            format!("红心物业联盟月报 · {first}")
        );
        let earlier = ctx
            .api_get(&token, &format!("/v1/alliance/report?month={first}"))
            .await;
        let g = &earlier["grids"][0];
        let row = format!(
            "#grid-figures tr[data-compound=\"{}\"][data-grid=\"{}\"]",
            g["compound"].as_str().unwrap(),
            g["grid"].as_str().unwrap()
        );
        assert_eq!(
            ctx.text(&format!("{row} td.billed")).await,
            yuan(&g["fees"]["billed"])
        );
        let href = ctx
            .script(
                "return document.querySelector('#download-csv').getAttribute('href')",
                vec![],
            )
            .await;
        assert_eq!(
            href,
            json!(format!(
                "/v1/alliance/report?format=csv&table=compounds&month={first}"
            ))
        );

        // English on request.
        ctx.click("#lang-switch").await;
        ctx.text_until("#summary-title", |t| {
            t.starts_with("Red Heart Property Alliance")
        })
        .await;
        assert_eq!(ctx.text("#who").await, "Property alliance");

        // The CSV export downloads with the session alone.
        ctx.click("#download-csv").await;
        let file = ctx.downloaded(".csv").await;
        let csv = std::fs::read_to_string(&file).expect("the CSV");
        assert!(csv.starts_with("\u{feff}小区 Compound,"), "{csv}");
        assert!(csv.lines().count() > 12, "{csv}");
    });
}

#[test]
fn other_staff_cannot_use_the_alliance_page() {
    browser_test("alliance page refuses", |ctx: Ctx| async move {
        ctx.open("/alliance").await;
        ctx.fill("#sign-in input[name=token]", &ctx.company).await;
        ctx.click("#sign-in button[type=submit]").await;
        ctx.text_until("#sign-in .problem", |t| t == "此账号不能使用本页面")
            .await;
        let hidden = ctx
            .script(
                "return document.querySelector('#alliance-main').hidden",
                vec![],
            )
            .await;
        assert_eq!(hidden, json!(true));
        // The front page links to it.
        ctx.open("/").await;
        assert_eq!(ctx.text("#go-alliance strong").await, "物业联盟");
    });
}
