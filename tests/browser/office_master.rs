//! Browser tests of master data changes on the office page (issue 14): the company's office
//! corrects a household's floor area from a billing month behind a confirm step (a month
//! already billed is refused in words, in Chinese and in English, and nothing changes), the
//! next month's bill is the new area times the rate, and the household's history lists the
//! change with old and new; the admin switches a compound out of spend-50-get-55 from a day and
//! moves another to a new company from a month, and the full history lists both.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, browser_test_at, Ctx};

async fn head(ctx: &Ctx) -> i64 {
    ctx.api_get(&ctx.admin, "/v1/audit/head").await["seq"]
        .as_i64()
        .expect("seq")
}

/// `"68.65"` → 6865 (hundredths).
fn hundredths(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("a decimal string: {v}"));
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<2}");
    whole.parse::<i64>().expect("whole") * 100 + frac[..2].parse::<i64>().expect("fraction")
}

/// A month's fee at HX01's rate (0.55 a m², policies/property-fees.v1.toml), rounded half up
/// once, as `"49.50"`.
fn fee_hx01(area: i64) -> String {
    let fen = (area * 55 + 50) / 100;
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// The household's billed amount for `month`, from its fee account.
async fn billed(ctx: &Ctx, household: &str, month: &str) -> Value {
    let fees = ctx
        .api_get(
            &ctx.admin,
            &format!("/v1/households/{household}/fees?months=6"),
        )
        .await;
    fees["months"]
        .as_array()
        .expect("months")
        .iter()
        .find(|m| m["month"] == json!(month))
        .unwrap_or_else(|| panic!("no {month} in {fees}"))["billed"]
        .clone()
}

async fn history(ctx: &Ctx, query: &str) -> Vec<Value> {
    ctx.api_get(&ctx.admin, &format!("/v1/master-changes{query}"))
        .await
        .as_array()
        .expect("changes")
        .clone()
}

#[test]
fn the_office_corrects_a_households_area_from_a_month_and_the_next_bill_uses_it() {
    // December has begun, so its bills can be made; November's are out already.
    browser_test_at(
        "office: area correction",
        "2026-12-01",
        |ctx: Ctx| async move {
            let code = "HX01-0001";
            let before = ctx
                .api_get(&ctx.company, &format!("/v1/households/{code}"))
                .await;
            let old_area = before["area_m2"].as_str().expect("area").to_string();
            assert_ne!(old_area, "90.00");
            let november = billed(&ctx, code, "2026-11").await;
            assert_eq!(november, json!(fee_hx01(hundredths(&before["area_m2"]))));
            let seq = head(&ctx).await;

            ctx.open("/office").await;
            ctx.sign_in(&ctx.company).await;
            ctx.fill("#desk-household", &format!("{code}\u{E007}"))
                .await;
            ctx.text_until("#master-h-area", |t| t == format!("{old_area} 平方米"))
                .await;
            ctx.visible("#master-h-empty").await;

            // From November, already billed: the confirm step, then the server's refusal in words,
            // the month marked, nothing changed.
            ctx.fill("#area-new", "90.00").await;
            ctx.fill("#area-from", "2026-11").await;
            ctx.click("#area-review").await;
            assert_eq!(
                ctx.text("#area-f-change").await,
                format!("{old_area} 平方米 → 90.00 平方米")
            );
            assert_eq!(ctx.text("#area-f-from").await, "从 2026-11 的账单起");
            assert_eq!(head(&ctx).await, seq, "the confirm step changes nothing");
            ctx.click("#area-go").await;
            ctx.text_until("#area-problem", |t| t.starts_with("不能从这个月起"))
                .await;
            let marked = ctx
                .script(
                    "return document.querySelector('#area-from').classList.contains('invalid')",
                    vec![],
                )
                .await;
            assert_eq!(marked, json!(true), "the month is marked");
            assert_eq!(head(&ctx).await, seq, "a refusal changes nothing");
            let after = ctx
                .api_get(&ctx.admin, &format!("/v1/households/{code}"))
                .await;
            assert_eq!(after["area_m2"], before["area_m2"]);
            assert!(history(&ctx, "?subject=household&code=HX01-0001")
                .await
                .is_empty());

            // The same refusal in English.
            ctx.click("#lang-switch").await;
            ctx.text_until("#area-review", |t| t == "Correct the area…")
                .await;
            ctx.fill("#area-new", "90.00").await;
            ctx.fill("#area-from", "2026-11").await;
            ctx.click("#area-review").await;
            ctx.text_until("#area-f-change", |t| {
                t == format!("{old_area} m² → 90.00 m²")
            })
            .await;
            ctx.click("#area-go").await;
            ctx.text_until("#area-problem", |t| t.starts_with("Not from that month"))
                .await;
            assert_eq!(head(&ctx).await, seq);
            ctx.click("#lang-switch").await;
            ctx.text_until("#area-review", |t| t == "更正面积…").await;

            // From December, confirmed with a double click: one change.
            ctx.fill("#area-new", "90.00").await;
            ctx.fill("#area-from", "2026-12").await;
            ctx.click("#area-review").await;
            ctx.text_until("#area-f-from", |t| t == "从 2026-12 的账单起")
                .await;
            ctx.script(
                "const b = document.querySelector('#area-go'); b.click(); b.click(); return true",
                vec![],
            )
            .await;
            ctx.text_until("#area-done", |t| {
                t.starts_with(&format!(
                    "已更正面积：{old_area} → 90.00 平方米，自 2026-12 的账单起"
                ))
            })
            .await;
            assert_eq!(head(&ctx).await, seq + 1, "one change entry");
            ctx.text_until("#master-h-area", |t| t == "90.00 平方米")
                .await;
            let after = ctx
                .api_get(&ctx.admin, &format!("/v1/households/{code}"))
                .await;
            assert_eq!(after["area_m2"], json!("90.00"));

            // The history, on the page and in the API.
            let changes = history(&ctx, "?subject=household&code=HX01-0001").await;
            assert_eq!(changes.len(), 1, "{changes:?}");
            let c = &changes[0];
            assert_eq!(c["old"], json!(old_area));
            assert_eq!(c["new"], json!("90.00"));
            assert_eq!(c["effective_from"], json!("2026-12-01"));
            assert_eq!(c["actor_role"], json!("company"));
            let row = format!("#master-h-history-{}", c["id"]);
            assert_eq!(ctx.text(&format!("{row} .field")).await, "面积");
            assert_eq!(
                ctx.text(&format!("{row} .old")).await,
                format!("{old_area} 平方米")
            );
            assert_eq!(ctx.text(&format!("{row} .new")).await, "90.00 平方米");
            assert_eq!(ctx.text(&format!("{row} .from")).await, "2026-12-01");
            assert_eq!(ctx.text(&format!("{row} .who")).await, "物业公司");
            assert_eq!(
                ctx.text(&format!("{row} .entry")).await,
                c["entry"].to_string()
            );

            // December's bill is 90.00 m² × 0.55; November's stays as it was issued.
            let (status, body) = ctx
                .api_post(&ctx.company, "/v1/fees/bills", json!({"month": "2026-12"}))
                .await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(billed(&ctx, code, "2026-12").await, json!("49.50"));
            assert_eq!(fee_hx01(9000), "49.50");
            assert_eq!(billed(&ctx, code, "2026-11").await, november);

            // The name, from now on.
            ctx.fill("#name-new", "张三丰").await;
            ctx.click("#name-submit").await;
            ctx.text_until("#name-done", |t| t.contains("→ 张三丰"))
                .await;
            ctx.text_until("#master-h-name", |t| t == "张三丰").await;
            let after = ctx
                .api_get(&ctx.admin, &format!("/v1/households/{code}"))
                .await;
            assert_eq!(after["name"], json!("张三丰"));
            let changes = history(&ctx, "?subject=household&code=HX01-0001").await;
            assert_eq!(changes.len(), 2);
            let row = format!("#master-h-history-{}", changes[1]["id"]);
            assert_eq!(ctx.text(&format!("{row} .field")).await, "姓名");
            assert_eq!(ctx.text(&format!("{row} .new")).await, "张三丰");
            ctx.shot("office-master-household").await;
        },
    );
}

#[test]
fn the_admin_switches_a_compound_out_of_the_programme_and_moves_another() {
    browser_test("office: admin master data", |ctx: Ctx| async move {
        let seq = head(&ctx).await;
        // The office's company staff never see the admin's part.
        ctx.open("/office").await;
        ctx.sign_in(&ctx.company).await;
        ctx.visible("#desk").await;
        let hidden = ctx
            .script(
                "return document.querySelector('#master-admin').hidden",
                vec![],
            )
            .await;
        assert_eq!(hidden, json!(true));
        ctx.click("#sign-out").await;
        ctx.sign_in(&ctx.admin).await;
        ctx.visible("#master-admin").await;
        ctx.visible("#master-a-empty").await;

        // Eligibility off from a day in October, a closed month: refused in words, nothing
        // changed.
        ctx.fill("#elig-compound", "HX01").await;
        ctx.select("#elig-value", "false").await;
        ctx.fill("#elig-from", "2026-10-15").await;
        ctx.click("#compound-eligible button[type=submit]").await;
        assert_eq!(ctx.text("#admin-f-subject").await, "小区 HX01");
        assert_eq!(ctx.text("#admin-f-change").await, "50换55 → 不参加 50换55");
        ctx.click("#admin-go").await;
        ctx.text_until("#compound-eligible .problem", |t| {
            t.starts_with("不能从这一天起")
        })
        .await;
        assert_eq!(head(&ctx).await, seq);
        assert!(history(&ctx, "").await.is_empty());

        // From 1 December: recorded.
        ctx.fill("#elig-compound", "HX01").await;
        ctx.select("#elig-value", "false").await;
        ctx.fill("#elig-from", "2026-12-01").await;
        ctx.click("#compound-eligible button[type=submit]").await;
        ctx.text_until("#admin-f-from", |t| t == "从 2026-12-01 起")
            .await;
        ctx.click("#admin-go").await;
        ctx.text_until("#admin-done", |t| {
            t.starts_with("已更改：小区 HX01 50换55：参加 50换55 → 不参加 50换55，从 2026-12-01 起")
        })
        .await;
        assert_eq!(head(&ctx).await, seq + 1);
        let changes = history(&ctx, "?subject=compound&code=HX01").await;
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (
                changes[0]["field"].clone(),
                changes[0]["old"].clone(),
                changes[0]["new"].clone(),
                changes[0]["effective_from"].clone()
            ),
            (
                json!("eligible"),
                json!("true"),
                json!("false"),
                json!("2026-12-01")
            )
        );
        // Still in the programme today (20 November): a top-up is quoted, not refused.
        let quote = ctx
            .api_get(
                &ctx.cashier,
                "/v1/topups/quote?household=HX01-0002&paid=50.00",
            )
            .await;
        assert_eq!(quote["household"], json!("HX01-0002"), "{quote}");

        // HX03 moves from K02 to K01 from December's bills.
        let h = ctx.api_get(&ctx.admin, "/v1/households/HX03-0001").await;
        assert_eq!(h["company"], json!("K02"));
        ctx.fill("#move-compound", "hx03").await;
        ctx.fill("#move-company", "k01").await;
        ctx.fill("#move-from", "2026-12").await;
        ctx.click("#compound-move button[type=submit]").await;
        assert_eq!(ctx.text("#admin-f-change").await, "物业公司 → K01");
        assert_eq!(ctx.text("#admin-f-from").await, "从 2026-12 的账单起");
        ctx.click("#admin-go").await;
        ctx.text_until("#admin-done", |t| {
            t.starts_with("已更改：小区 HX03 物业公司：K02 → K01，从 2026-12 的账单起")
        })
        .await;
        assert_eq!(head(&ctx).await, seq + 2);
        let h = ctx.api_get(&ctx.admin, "/v1/households/HX03-0001").await;
        assert_eq!(h["company"], json!("K01"));

        // The full history lists both, newest first; the filter narrows it to one compound.
        let all = history(&ctx, "").await;
        assert_eq!(all.len(), 2);
        let moved = &all[1];
        assert_eq!(
            (moved["old"].clone(), moved["new"].clone()),
            (json!("K02"), json!("K01"))
        );
        for (c, subject, old, new, from) in [
            (
                &all[0],
                "小区 HX01",
                "参加 50换55",
                "不参加 50换55",
                "2026-12-01",
            ),
            (moved, "小区 HX03", "K02", "K01", "2026-12-01"),
        ] {
            let row = format!("#master-a-history-{}", c["id"]);
            ctx.text_until(&format!("{row} .subject"), |t| t == subject)
                .await;
            assert_eq!(ctx.text(&format!("{row} .old")).await, old);
            assert_eq!(ctx.text(&format!("{row} .new")).await, new);
            assert_eq!(ctx.text(&format!("{row} .from")).await, from);
            assert_eq!(ctx.text(&format!("{row} .who")).await, "管理员");
        }
        let first = ctx
            .script(
                "return document.querySelector('#master-a-history tbody tr').id",
                vec![],
            )
            .await;
        assert_eq!(first, json!(format!("master-a-history-{}", moved["id"])));
        ctx.select("#history-subject", "compound").await;
        ctx.fill("#history-code", "HX03").await;
        ctx.click("#history-go").await;
        ctx.text_until("#master-a-history", |t| !t.contains("HX01"))
            .await;
        let rows = ctx
            .script(
                "return document.querySelectorAll('#master-a-history tbody tr').length",
                vec![],
            )
            .await;
        assert_eq!(rows, json!(1));

        // In English.
        ctx.click("#lang-switch").await;
        let row = format!("#master-a-history-{}", all[0]["id"]);
        ctx.text_until("#history-go", |t| t == "Show").await;
        ctx.select("#history-subject", "").await;
        ctx.fill("#history-code", "").await;
        ctx.click("#history-go").await;
        ctx.text_until(&format!("{row} .new"), |t| t == "out of spend 50 get 55")
            .await;
        ctx.shot("office-master-admin").await;
    });
}
