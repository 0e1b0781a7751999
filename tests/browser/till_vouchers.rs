//! Browser tests of the till's voucher exchange (换新券) and of its list of today's top-ups with
//! a void per row, each checked against the API.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, browser_test_at, yuan, Ctx};

/// Three years after the demo (its vouchers, valid 36 months, are all past validity).
const LATER: &str = "2029-12-01";

/// A demo voucher of COOP (the cashier's cooperative) with credit left, read through the admin's
/// household view (which carries the printed code): `(code, the voucher as the API shows it)`.
/// The households holding COOP vouchers are read from the demo database.
async fn expired_voucher(ctx: &Ctx) -> (String, Value) {
    let households: Vec<String> = {
        let db = rusqlite::Connection::open_with_flags(
            ctx.dir.join("demo.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("demo.db");
        let mut q = db
            .prepare(
                "SELECT DISTINCT h.code FROM vouchers v
                 JOIN households h ON h.id = v.household_id
                 JOIN cooperatives c ON c.id = v.cooperative_id
                 WHERE c.code = 'COOP' ORDER BY h.code",
            )
            .expect("query");
        let codes = q
            .query_map([], |r| r.get(0))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("codes");
        codes
    };
    for hh in &households {
        let h = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}"))
            .await;
        let found = h["vouchers"].as_array().into_iter().flatten().find(|v| {
            v["cooperative"] == "COOP"
                && v["code"].is_string()
                && v["balance"] != json!("0.00")
                && v["expires_on"].as_str().is_some_and(|d| d < LATER)
        });
        if let Some(v) = found {
            return (v["code"].as_str().unwrap().to_string(), v.clone());
        }
    }
    panic!("no COOP voucher with credit left among {households:?}");
}

/// 换新券: an expired voucher with credit, checked at the till, offers the exchange; the
/// exchange prints the new voucher (new code, same paid and bonus), and the old code then
/// answers `voucher_exchanged`, at the till and through the API.
#[test]
fn an_expired_voucher_is_exchanged_at_the_till() {
    browser_test_at("till: voucher exchange", LATER, |ctx: Ctx| async move {
        let (old, v) = expired_voucher(&ctx).await;
        ctx.open("/till").await;
        ctx.sign_in(&ctx.cashier).await;
        ctx.click("#tab-voucher").await;
        ctx.fill("#voucher-code", &old).await;
        ctx.click("#voucher-submit").await;
        ctx.text_until("#voucher-status", |t| t == "已过期").await;
        assert_eq!(ctx.text("#voucher-balance").await, yuan(&v["balance"]));
        assert_eq!(ctx.text("#voucher-paid").await, yuan(&v["paid"]));
        assert_eq!(ctx.text("#voucher-bonus").await, yuan(&v["bonus"]));
        let offered = ctx
            .script(
                "return !document.querySelector('#voucher-exchange').hidden",
                vec![],
            )
            .await;
        assert_eq!(
            offered,
            json!(true),
            "an expired voucher with credit is exchangeable"
        );
        assert_eq!(ctx.text("#voucher-exchange").await, "换新券");

        ctx.click("#voucher-exchange").await;
        ctx.text_until("#r-old-voucher", |t| t == old).await;
        let new = ctx.text("#r-voucher").await;
        assert_ne!(new, old);
        assert_eq!(ctx.text("#r-balance").await, yuan(&v["balance"]));
        assert_eq!(ctx.text("#r-paid").await, yuan(&v["paid"]));
        assert_eq!(ctx.text("#r-bonus").await, yuan(&v["bonus"]));
        assert_eq!(ctx.text("#r-expires").await, "2032-12-01");
        // The new code is an active voucher with the same paid and bonus.
        let n = ctx
            .api_get(&ctx.cashier, &format!("/v1/vouchers/{new}"))
            .await;
        assert_eq!(
            (&n["status"], &n["paid"], &n["bonus"], &n["balance"]),
            (&json!("active"), &v["paid"], &v["bonus"], &v["balance"])
        );
        // The old code is dead: the till says so, and a second exchange is refused.
        ctx.click("#tab-voucher").await;
        ctx.fill("#voucher-code", &old).await;
        ctx.click("#voucher-submit").await;
        ctx.text_until("#voucher-problem", |t| {
            t.contains("此券已换新券，旧券码作废，请使用新券")
        })
        .await;
        let (status, body) = ctx
            .api_post(
                &ctx.cashier,
                &format!("/v1/vouchers/{}/exchange", urlencode(&old)),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, &body["code"]),
            (409, &json!("voucher_exchanged")),
            "{body}"
        );
    });
}

/// A voucher code in a path: its check symbol may be `$` or `=`.
fn urlencode(code: &str) -> String {
    code.replace('$', "%24").replace('=', "%3D")
}

/// The till's list of today's top-ups: a top-up taken at the till appears at the top with its
/// receipt number, household, paid, bonus and time, as `GET /v1/till/topups` has it; 作废 on its
/// row asks for the confirmation, then voids it (the void's receipt, the row marked 已作废, the
/// wallet back where it was).
#[test]
fn todays_top_ups_are_listed_at_the_till_and_voided_from_the_list() {
    browser_test("till: today's top-ups", |ctx: Ctx| async move {
        let hh = "HX01-0003";
        ctx.open("/till").await;
        ctx.sign_in(&ctx.cashier).await;
        let start = crate::till::scan(&ctx, hh).await;
        ctx.click("#tab-topup").await;
        ctx.visible("#today-topups").await;
        ctx.fill("#topup-paid", "50.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥55.00").await;
        ctx.click("#topup-submit").await;
        ctx.text_until("#r-credited", |t| t == "¥55.00").await;
        let list = ctx.api_get(&ctx.cashier, "/v1/till/topups").await;
        let rows = list["topups"].as_array().expect("topups");
        let top = &rows[0];
        assert_eq!(
            (
                &top["household"],
                &top["paid"],
                &top["bonus"],
                &top["voided"]
            ),
            (&json!(hh), &json!("50.00"), &json!("5.00"), &json!(false))
        );
        let entry = top["topup"].as_i64().expect("entry");
        let row = format!("#today-topups-body tr[data-topup='{entry}']");
        ctx.text_until(&format!("{row} .receipt-no"), |t| t == entry.to_string())
            .await;
        // Every row of the API's list, in its order.
        let shown = ctx
            .script(
                "return [...document.querySelectorAll('#today-topups-body tr')].map(r => Number(r.dataset.topup))",
                vec![],
            )
            .await;
        let expected: Vec<i64> = rows.iter().map(|r| r["topup"].as_i64().unwrap()).collect();
        assert_eq!(shown, json!(expected));
        assert_eq!(
            ctx.text(&format!("{row} .holder")).await,
            format!("{hh} 钱包")
        );
        assert_eq!(ctx.text(&format!("{row} .paid")).await, "¥50.00");
        assert_eq!(ctx.text(&format!("{row} .bonus")).await, "¥5.00");
        let time = ctx.text(&format!("{row} .time")).await;
        assert!(
            time.len() == 5 && time.as_bytes()[2] == b':',
            "a time of day: {time}"
        );
        assert_eq!(ctx.text(&format!("{row} .today-void")).await, "作废");

        // 作废, then the confirmation: the void's receipt, the row marked, the wallet back.
        ctx.click(&format!("{row} .today-void")).await;
        assert_eq!(
            ctx.text(&format!("{row} .today-void-confirm")).await,
            "确认作废？钱款退还顾客"
        );
        ctx.click(&format!("{row} .today-void-confirm")).await;
        ctx.text_until("#r-voided-topup", |t| t == entry.to_string())
            .await;
        ctx.text_until(&format!("{row} .state"), |t| t == "已作废")
            .await;
        let list = ctx.api_get(&ctx.cashier, "/v1/till/topups").await;
        let voided = list["topups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["topup"] == json!(entry))
            .expect("still listed");
        assert_eq!(voided["voided"], json!(true));
        assert_eq!(crate::till::wallet(&ctx, hh).await, start);

        // In English.
        ctx.click("#lang-switch").await;
        ctx.text_until(&format!("{row} .state"), |t| t == "Voided")
            .await;
        assert_eq!(
            ctx.text(&format!("{row} .holder")).await,
            format!("{hh} wallet")
        );
    });
}
