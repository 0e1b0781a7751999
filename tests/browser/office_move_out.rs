//! Browser test of a move-out at the office's household desk: a household that owes fees is
//! stopped before anything is sent unless the arrears are carried; the confirm step shows the
//! credit handed on and the arrears, changing nothing until confirmed; confirmed (double
//! clicked), one move-out is recorded: the new occupant's name, the wallet and arrears as they
//! were, and the old card refused.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, yuan, Ctx};
use crate::till::money;

async fn head(ctx: &Ctx) -> i64 {
    ctx.api_get(&ctx.admin, "/v1/audit/head").await["seq"]
        .as_i64()
        .expect("seq")
}

/// A K01 household of the demo that owes fees and holds credit.
async fn owing_with_credit(ctx: &Ctx) -> (String, Value) {
    for n in 1..=100 {
        let code = format!("HX01-{n:04}");
        let h = ctx
            .api_get(&ctx.company, &format!("/v1/households/{code}"))
            .await;
        if money(&h["fees"]["arrears"]) > 0 && money(&h["wallet"]["total"]) > 0 {
            return (code, h);
        }
    }
    panic!("no demo household of K01 owes fees and holds credit");
}

#[test]
fn the_office_moves_an_occupant_out_after_a_confirm_step_with_the_figures() {
    browser_test("office: move-out", |ctx: Ctx| async move {
        let (code, before) = owing_with_credit(&ctx).await;
        let link = ctx
            .api_get(&ctx.company, &format!("/v1/households/{code}/link"))
            .await;
        let seq = head(&ctx).await;
        ctx.open("/office").await;
        ctx.sign_in(&ctx.company).await;
        ctx.fill("#desk-household", &format!("{code}\u{E007}"))
            .await;
        ctx.text_until("#desk-code", |t| t == code).await;

        // Arrears not carried: stopped on the page, nothing sent.
        ctx.fill("#move-occupant", "李四").await;
        ctx.click("#move-review").await;
        ctx.text_until("#move-problem", |t| t.contains("尚欠物业费"))
            .await;
        assert_eq!(head(&ctx).await, seq);

        // Carried: the confirm step shows what the household holds and owes.
        ctx.click("#move-carry").await;
        ctx.click("#move-review").await;
        ctx.visible("#move-confirm").await;
        assert_eq!(ctx.text("#move-f-arriving").await, "李四");
        assert_eq!(
            ctx.text("#move-f-arrears").await,
            format!("{}（留在本户继续追缴）", yuan(&before["fees"]["arrears"]))
        );
        for w in before["wallets"].as_array().expect("wallets") {
            if money(&w["total"]) == 0 {
                continue;
            }
            let cooperative = w["cooperative"].as_str().expect("cooperative");
            assert_eq!(
                ctx.text(&format!("#move-f-wallet-{cooperative}")).await,
                format!("已付 {}，赠送 {}", yuan(&w["paid"]), yuan(&w["bonus"]))
            );
        }
        assert_eq!(head(&ctx).await, seq, "the confirm step changes nothing");

        // Confirmed with a double click: one move-out.
        ctx.script(
            "const b = document.querySelector('#move-go'); b.click(); b.click(); return true",
            vec![],
        )
        .await;
        let version = link["version"].as_i64().expect("version") + 1;
        ctx.text_until("#moved-card", |t| {
            t == format!("已换第 {version} 版住户卡，密码已清除")
        })
        .await;
        assert_eq!(head(&ctx).await, seq + 1, "one move-out entry");
        let after = ctx
            .api_get(&ctx.company, &format!("/v1/households/{code}"))
            .await;
        assert_eq!(after["name"], json!("李四"));
        assert_eq!(after["wallet"], before["wallet"], "the credit stays");
        assert_eq!(after["fees"]["arrears"], before["fees"]["arrears"]);
        assert_eq!(after["pin"]["set"], json!(false));
        ctx.text_until("#desk-name", |t| t == "李四").await;
        let (status, _) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": code, "version": link["version"], "signature": link["signature"]}),
            )
            .await;
        assert_eq!(status, 401, "the leaving occupant's card still works");
        ctx.shot("office-move-out").await;
    });
}
