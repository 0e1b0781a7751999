//! Browser test of a move-out with a cash refund on the cooperative's page (tab 储值退款): a
//! household that owes fees is stopped on the page unless the arrears are carried; the confirm
//! step shows the paid credit to be paid back, the bonus to be forfeited and the arrears, and
//! changes nothing; confirmed (double clicked), the wallet is paid out once and the old card
//! refused.

use serde_json::json;

use crate::browser_support::{browser_test, yuan, Ctx};
use crate::till::money;

async fn head(ctx: &Ctx) -> i64 {
    ctx.api_get(&ctx.admin, "/v1/audit/head").await["seq"]
        .as_i64()
        .expect("seq")
}

#[test]
fn the_accountant_moves_an_occupant_out_and_pays_the_wallet_out_after_a_confirm_step() {
    browser_test("coop: move-out with a cash refund", |ctx: Ctx| async move {
        let mut found = None;
        for n in 1..=100 {
            let code = format!("HX01-{n:04}");
            let h = ctx
                .api_get(&ctx.admin, &format!("/v1/households/{code}"))
                .await;
            if money(&h["fees"]["arrears"]) > 0 && money(&h["wallet"]["total"]) > 0 {
                found = Some((code, h));
                break;
            }
        }
        let (code, before) = found.expect("a demo household owing fees with credit");
        let link = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{code}/link"))
            .await;
        let seq = head(&ctx).await;

        ctx.open("/coop").await;
        ctx.sign_in(&ctx.accountant).await;
        ctx.visible("#coop-main").await;
        ctx.click("#tab-credit").await;
        ctx.fill("#credit-household", &code).await;
        ctx.click("#credit-look").await;
        ctx.visible("#move-form").await;

        ctx.fill("#move-occupant", "李四").await;
        ctx.click("#move-review").await;
        ctx.text_until("#move-problem", |t| t.contains("尚欠物业费"))
            .await;
        ctx.click("#move-carry").await;
        ctx.click("#move-review").await;
        ctx.visible("#move-confirm").await;
        assert_eq!(
            ctx.text("#move-refund").await,
            yuan(&before["wallet"]["paid"])
        );
        assert_eq!(
            ctx.text("#move-forfeit").await,
            yuan(&before["wallet"]["bonus"])
        );
        assert_eq!(
            ctx.text("#move-arrears").await,
            format!("{}（留在本户继续追缴）", yuan(&before["fees"]["arrears"]))
        );
        assert_eq!(head(&ctx).await, seq, "the confirm step changes nothing");

        ctx.script(
            "const b = document.querySelector('#move-go'); b.click(); b.click(); return true",
            vec![],
        )
        .await;
        let paid = yuan(&before["wallet"]["paid"]);
        ctx.text_until("#move-receipt", |t| t.contains(&format!("退还 {paid}")))
            .await;
        // One cash-out and one record.
        assert_eq!(head(&ctx).await, seq + 2);
        let after = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{code}"))
            .await;
        assert_eq!(after["wallet"]["total"], json!("0.00"));
        assert_eq!(after["name"], json!("李四"));
        assert_eq!(after["fees"]["arrears"], before["fees"]["arrears"]);
        let (status, _) = ctx
            .api_post(
                &ctx.admin,
                "/v1/resident/sessions",
                json!({"household": code, "version": link["version"], "signature": link["signature"]}),
            )
            .await;
        assert_eq!(status, 401, "the leaving occupant's card still works");
        ctx.shot("coop-move-out").await;
    });
}
