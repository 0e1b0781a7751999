//! Browser tests of the /office page: a property company's staff sign in with their token and
//! see the month's statement, its tie-out, the settlement with the cooperative, arrears by age
//! and the chart over the months — each compared, to the fen, with what the API reports — and
//! download the statement as CSV and XLSX through the page's links.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, Ctx, CLOSED_MONTH};

const COMPANY: &str = "K01";

/// `"1,234.50"`-style text of the page back to the API's `"1234.50"`.
fn plain(text: &str) -> String {
    text.replace(['¥', ','], "")
}

/// An amount string in fen, exactly.
fn fen(s: &str) -> i64 {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<2}");
    assert!(frac.len() == 2, "not an amount: {s}");
    let v = whole.parse::<i64>().expect("yuan") * 100 + frac.parse::<i64>().expect("fen");
    if neg {
        -v
    } else {
        v
    }
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

async fn statement(ctx: &Ctx, month: &str) -> Value {
    ctx.api_get(
        &ctx.company,
        &format!("/v1/companies/{COMPANY}/statements/{month}"),
    )
    .await
}

/// Signs the company in and waits until the page shows the statement of `month`.
async fn open_office(ctx: &Ctx, month: &str) {
    ctx.open("/office").await;
    ctx.sign_in(&ctx.company).await;
    ctx.text_until("#statement-title", |t| {
        t.contains(month) && t.contains(COMPANY)
    })
    .await;
    ctx.visible("#tie-out").await;
}

#[test]
fn the_statement_shows_the_api_s_totals_and_its_tie_out() {
    browser_test("office statement", |ctx: Ctx| async move {
        let months = ctx
            .api_get(&ctx.company, &format!("/v1/companies/{COMPANY}/months"))
            .await;
        // The page opens on the latest closed month: the demo's October.
        assert_eq!(months["latest_closed"], json!(CLOSED_MONTH));
        open_office(&ctx, CLOSED_MONTH).await;
        assert_eq!(
            ctx.script("return document.getElementById('month').value", vec![])
                .await,
            json!(CLOSED_MONTH)
        );
        let api = statement(&ctx, CLOSED_MONTH).await;
        assert_eq!(api["ties_out"], json!(true));

        // Totals, to the fen.
        for col in ["opening", "billed", "paid", "allocated", "closing"] {
            let shown = ctx.text(&format!("#total-{col}")).await;
            assert_eq!(plain(&shown), s(&api["totals"][col]), "total {col}");
        }
        let households = api["households"].as_array().expect("households");
        assert_eq!(
            ctx.text("#total-households").await,
            households.len().to_string()
        );
        // The summary the companies reconcile by.
        for key in [
            "arrears_brought_forward",
            "arrears_this_month",
            "billed",
            "arrears_recovered",
            "prepaid",
            "received",
            "covered_by_cooperative",
        ] {
            let shown = ctx.text(&format!("#sum-{key}")).await;
            assert_eq!(plain(&shown), s(&api["summary"][key]), "summary {key}");
        }
        // Every compound's row.
        let compounds = api["compounds"].as_array().expect("compounds");
        let rows = ctx
            .script(
                "return [...document.querySelectorAll('#compounds tbody tr')].map(r => \
                 [r.dataset.compound, ...[...r.querySelectorAll('td')].map(td => td.dataset.amount || td.textContent)])",
                vec![],
            )
            .await;
        let expected: Vec<Value> = compounds
            .iter()
            .map(|c| {
                json!([
                    c["compound"],
                    c["households"].to_string(),
                    c["opening"],
                    c["billed"],
                    c["paid"],
                    c["allocated"],
                    c["closing"]
                ])
            })
            .collect();
        assert_eq!(rows, Value::Array(expected));
        // The first households, row by row, with their check mark.
        let first = ctx
            .script(
                "return [...document.querySelectorAll('#households tbody tr')].slice(0, 20).map(r => \
                 [r.dataset.household, ...[...r.querySelectorAll('td.num')].map(td => td.dataset.amount), \
                 r.querySelector('td.check').textContent])",
                vec![],
            )
            .await;
        let expected: Vec<Value> = households
            .iter()
            .take(20)
            .map(|h| {
                json!([
                    h["household"],
                    h["opening"],
                    h["billed"],
                    h["paid"],
                    h["allocated"],
                    h["closing"],
                    "✓"
                ])
            })
            .collect();
        assert_eq!(first, Value::Array(expected));

        // The tie-out, computed by the page in BigInt fen, agrees with the server's.
        let pill = ctx.find("#tie-out").await;
        assert_eq!(
            pill.attr("data-ties").await.expect("data-ties").as_deref(),
            Some("true")
        );
        assert_eq!(ctx.text("#tie-out").await, "✓ 账目相符");
        let t = &api["totals"];
        assert_eq!(
            fen(s(&t["opening"])) + fen(s(&t["billed"]))
                - fen(s(&t["paid"]))
                - fen(s(&t["allocated"])),
            fen(s(&t["closing"]))
        );

        // The settlement with the cooperative: due, settled, outstanding, and its state.
        let coops = api["cooperatives"].as_array().expect("cooperatives");
        assert!(
            !coops.is_empty(),
            "the demo's cooperative covers K01's fees"
        );
        for c in coops {
            let code = s(&c["cooperative"]);
            let sel = |cls: &str| format!("#settlement [data-coop=\"{code}\"] .{cls}");
            let due = fen(s(&c["opening"])) + fen(s(&c["allocated"]));
            assert_eq!(fen(&plain(&ctx.text(&sel("coop-due")).await)), due);
            for (cls, key) in [
                ("coop-settled", "settled"),
                ("coop-outstanding", "outstanding"),
                ("coop-allocated", "allocated"),
            ] {
                assert_eq!(
                    plain(&ctx.text(&sel(cls)).await),
                    s(&c[key]),
                    "{code} {key}"
                );
            }
            let settled = ctx.find(&sel("coop-state")).await;
            assert_eq!(
                settled.attr("data-settled").await.expect("attr").as_deref(),
                Some(if fen(s(&c["outstanding"])) == 0 {
                    "true"
                } else {
                    "false"
                })
            );
        }

        // In English, the same state in words.
        ctx.click("#lang-switch").await;
        ctx.text_until("#tie-out", |t| t == "✓ Ties out").await;
        ctx.text_until("#statement-title", |t| {
            t == format!("Statement 红心安居物业服务有限公司（{COMPANY}） · {CLOSED_MONTH}")
        })
        .await;
    });
}

#[test]
fn the_statement_downloads_as_csv_and_xlsx_with_the_api_s_totals() {
    browser_test("office downloads", |ctx: Ctx| async move {
        open_office(&ctx, CLOSED_MONTH).await;
        let api = statement(&ctx, CLOSED_MONTH).await;

        ctx.click("#download-csv").await;
        let path = ctx.downloaded(".csv").await;
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(format!("statement-{COMPANY}-{CLOSED_MONTH}.csv").as_str())
        );
        let csv = std::fs::read_to_string(&path).expect("read the CSV");
        // The page speaks Chinese, and so does the file (with a byte-order mark for Excel).
        assert!(csv.starts_with('\u{feff}'), "no byte-order mark");
        let rows: Vec<Vec<&str>> = csv
            .trim_start_matches('\u{feff}')
            .lines()
            .map(|l| l.split(',').collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "类别",
                "小区",
                "住户",
                "期初",
                "应收",
                "住户缴纳",
                "合作社抵扣",
                "期末",
                "合作社",
                "已结算",
                "待结算",
                "面积（平方米）",
                "住户姓名",
                "楼栋",
                "网格"
            ]
        );
        let total = rows.iter().find(|r| r[0] == "合计").expect("a total row");
        let t = &api["totals"];
        assert_eq!(
            total[3..8],
            [
                s(&t["opening"]),
                s(&t["billed"]),
                s(&t["paid"]),
                s(&t["allocated"]),
                s(&t["closing"])
            ]
        );
        // The households in the file add up to the same totals, to the fen.
        let lines: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "住户").collect();
        // Each household's area and occupant, as the statement has them.
        for (row, h) in lines
            .iter()
            .zip(api["households"].as_array().expect("households"))
        {
            assert_eq!(row[2], s(&h["household"]));
            assert_eq!(row[11], s(&h["area_m2"]));
            assert_eq!(row[12], h["occupant"].as_str().unwrap_or(""));
        }
        assert_eq!(
            lines.len(),
            api["households"].as_array().expect("households").len()
        );
        for (i, col) in ["opening", "billed", "paid", "allocated", "closing"]
            .iter()
            .enumerate()
        {
            let sum: i64 = lines.iter().map(|r| fen(r[3 + i])).sum();
            assert_eq!(sum, fen(s(&t[*col])), "households' {col}");
        }
        for (label, value) in rows.iter().filter(|r| r[0] == "汇总").map(|r| (r[1], r[3])) {
            let key = match label {
                "上期结转欠费" => "arrears_brought_forward",
                "本月新增欠费" => "arrears_this_month",
                "应收" => "billed",
                "收回往期欠费" => "arrears_recovered",
                "预缴余额" => "prepaid",
                "住户缴纳合计" => "received",
                "合作社抵扣合计" => "covered_by_cooperative",
                other => panic!("an unknown summary line {other}"),
            };
            assert_eq!(value, s(&api["summary"][key]), "summary {label}");
        }
        // In English, the JSON's field names.
        ctx.click("#lang-switch").await;
        let href = ctx
            .script(
                "return document.querySelector('#download-csv').getAttribute('href')",
                vec![],
            )
            .await;
        assert!(
            href.as_str().unwrap_or("").ends_with("?format=csv&lang=en"),
            "{href}"
        );
        let english = ctx
            .api_get_text(&ctx.company, href.as_str().unwrap_or(""))
            .await;
        assert!(
            english
                .trim_start_matches('\u{feff}')
                .starts_with("row,compound,household,opening,billed,paid,allocated,closing,"),
            "{english}"
        );
        ctx.click("#lang-switch").await;

        ctx.click("#download-xlsx").await;
        let path = ctx.downloaded(".xlsx").await;
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(format!("statement-{COMPANY}-{CLOSED_MONTH}.xlsx").as_str())
        );
        let bytes = std::fs::read(&path).expect("read the XLSX");
        assert!(bytes.len() > 100, "the workbook is {} bytes", bytes.len());
        assert_eq!(&bytes[..2], b"PK", "an XLSX is a zip file");
    });
}

#[test]
fn arrears_by_age_are_the_api_s() {
    browser_test("office arrears", |ctx: Ctx| async move {
        open_office(&ctx, CLOSED_MONTH).await;
        let api = ctx
            .api_get(&ctx.company, &format!("/v1/companies/{COMPANY}/arrears"))
            .await;
        ctx.visible("#arrears-total").await;
        for bucket in ["0-30", "31-90", "91-180", "over-180"] {
            let shown = ctx.text(&format!("#arrears-{bucket}")).await;
            assert_eq!(plain(&shown), s(&api["by_age"][bucket]), "{bucket}");
        }
        assert_eq!(plain(&ctx.text("#arrears-total").await), s(&api["total"]));
        let owing = api["households"].as_array().expect("households");
        assert!(!owing.is_empty(), "the demo has households in arrears");
        assert_eq!(
            ctx.text("#arrears-as-of").await,
            format!("截至 {}，{} 户欠费", s(&api["as_of"]), owing.len())
        );
        // The households owing most, largest first.
        let mut top: Vec<&Value> = owing.iter().collect();
        top.sort_by(|a, b| {
            fen(s(&b["total"]))
                .cmp(&fen(s(&a["total"])))
                .then_with(|| s(&a["household"]).cmp(s(&b["household"])))
        });
        let shown = ctx
            .script(
                "return [...document.querySelectorAll('#arrears-households tbody tr')].map(r => \
                 [r.dataset.household, r.querySelector('td.num[data-amount]').dataset.amount])",
                vec![],
            )
            .await;
        let expected: Vec<Value> = top
            .iter()
            .take(20)
            .map(|h| json!([h["household"], h["total"]]))
            .collect();
        assert_eq!(shown, Value::Array(expected));
    });
}

#[test]
fn the_chart_has_a_group_per_month_with_bars_in_proportion() {
    browser_test("office chart", |ctx: Ctx| async move {
        open_office(&ctx, CLOSED_MONTH).await;
        let api = ctx
            .api_get(&ctx.company, &format!("/v1/companies/{COMPANY}/months"))
            .await;
        let months = api["months"].as_array().expect("months");
        // The demo's history: September and October closed, November open.
        let names: Vec<&str> = months.iter().map(|m| s(&m["month"])).collect();
        assert_eq!(names, ["2026-09", "2026-10", "2026-11"]);
        let closed: Vec<bool> = months.iter().map(|m| m["closed"] == json!(true)).collect();
        assert_eq!(closed, [true, true, false]);

        let groups = ctx
            .script(
                "return [...document.querySelectorAll('#chart-svg g.month')].map(g => ({ \
                 month: g.dataset.month, selected: g.classList.contains('selected'), \
                 bars: [...g.querySelectorAll('rect[data-series]')].map(r => \
                 [r.dataset.series, r.getAttribute('class'), r.dataset.fen, Number(r.getAttribute('height'))]) }))",
                vec![],
            )
            .await;
        let groups = groups.as_array().expect("groups").clone();
        assert_eq!(groups.len(), months.len(), "one group per month");
        let series = [
            ("billed", "bar-billed"),
            ("paid", "bar-paid"),
            ("covered", "bar-covered"),
        ];
        let max = months
            .iter()
            .flat_map(|m| series.iter().map(move |(k, _)| fen(s(&m[*k]))))
            .max()
            .expect("a month")
            .max(1);
        for (g, m) in groups.iter().zip(months) {
            assert_eq!(g["month"], m["month"]);
            assert_eq!(g["selected"], json!(m["month"] == json!(CLOSED_MONTH)));
            let bars = g["bars"].as_array().expect("bars");
            assert_eq!(bars.len(), 3);
            for (bar, (key, class)) in bars.iter().zip(series) {
                let f = fen(s(&m[key]));
                assert_eq!(bar[0], json!(key));
                assert_eq!(bar[1], json!(class));
                assert_eq!(bar[2], json!(f.to_string()), "{} {key}", m["month"]);
                let height = bar[3].as_f64().expect("height");
                let expected = (f.max(0) as f64) * 170.0 / (max as f64);
                assert!(
                    (height - expected).abs() <= 0.11,
                    "{} {key}: height {height}, expected {expected}",
                    m["month"]
                );
            }
            // The month's figures are its statement's totals.
            let st = statement(&ctx, s(&m["month"])).await;
            assert_eq!(m["billed"], st["totals"]["billed"]);
            assert_eq!(m["paid"], st["totals"]["paid"]);
            assert_eq!(m["covered"], st["totals"]["allocated"]);
        }
        // The bars really differ: October's fees were partly covered by the cooperative.
        assert!(fen(s(&months[1]["covered"])) > 0);

        // Choosing a month on the chart opens its statement.
        ctx.click("#chart-svg g.month[data-month=\"2026-09\"]")
            .await;
        ctx.text_until("#statement-title", |t| t.contains("2026-09"))
            .await;
        let september = statement(&ctx, "2026-09").await;
        ctx.text_until("#total-billed", |t| {
            plain(t) == s(&september["totals"]["billed"])
        })
        .await;
        assert_eq!(
            plain(&ctx.text("#total-closing").await),
            s(&september["totals"]["closing"])
        );
    });
}
