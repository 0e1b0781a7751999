//! Names, not codes: the pages show the company, compound, shop and cooperative by name (with
//! the code where staff need it), as the API gives them.

use serde_json::json;

use crate::browser_support::{browser_test, Ctx, CLOSED_MONTH};

const SIZES: [(u32, u32, &str); 2] = [(1366, 768, "1366x768"), (390, 844, "390x844")];

#[test]
fn pages_name_the_company_compound_shop_and_cooperative() {
    browser_test("names, not codes", |ctx: Ctx| async move {
        let hh = "HX01-0007";
        let api = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}"))
            .await;
        assert_eq!(api["compound"], json!("HX01"));
        assert_eq!(api["compound_name"], json!("幸福里小区"));
        assert_eq!(api["company_name"], json!("红心安居物业服务有限公司"));

        // The till: the household's compound by name.
        ctx.open("/till").await;
        ctx.sign_in(&ctx.cashier).await;
        ctx.fill("#scan", &format!("{hh}\u{E007}")).await;
        ctx.text_until("#hh-name", |t| t.ends_with("幸福里小区"))
            .await;
        ctx.click("#sign-out").await;
        ctx.visible("#sign-in").await;

        // The office: its company in the header and the statement, compounds by name.
        ctx.open("/office").await;
        ctx.sign_in(&ctx.company).await;
        ctx.text_until("#who", |t| t == "物业公司 红心安居物业服务有限公司")
            .await;
        let statement = ctx
            .api_get(
                &ctx.company,
                &format!("/v1/companies/K01/statements/{CLOSED_MONTH}"),
            )
            .await;
        assert_eq!(statement["company_name"], json!("红心安居物业服务有限公司"));
        ctx.text_until("#statement-title", |t| {
            t == format!("红心安居物业服务有限公司（K01） · {CLOSED_MONTH} 对账单")
        })
        .await;
        for c in statement["compounds"].as_array().expect("compounds") {
            let code = c["compound"].as_str().expect("code");
            let name = c["name"].as_str().expect("a compound's name");
            assert_eq!(
                ctx.text(&format!("#compounds tr[data-compound=\"{code}\"] th"))
                    .await,
                format!("{name}（{code}）")
            );
        }
        // The households table: each household's occupant and area, as the statement has them.
        for h in statement["households"]
            .as_array()
            .expect("households")
            .iter()
            .take(5)
        {
            let code = h["household"].as_str().expect("code");
            let row = format!("#households tr[data-household=\"{code}\"]");
            assert_eq!(
                ctx.text(&format!("{row} td.area")).await,
                h["area_m2"].as_str().expect("area")
            );
            assert_eq!(
                ctx.text(&format!("{row} td.occupant")).await,
                h["occupant"].as_str().unwrap_or("")
            );
        }
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.script(
                "document.querySelector('#statement').scrollIntoView({block: 'start'}); return true",
                vec![],
            )
            .await;
            ctx.shot(&format!("office-statement-{size}")).await;
        }
        ctx.click("#sign-out").await;
        ctx.visible("#sign-in").await;

        // The cooperative's accountant: the cooperative by name.
        ctx.open("/coop").await;
        ctx.sign_in(&ctx.accountant).await;
        ctx.text_until("#who", |t| t == "合作社会计 红心农业合作社")
            .await;
        ctx.click("#sign-out").await;

        // The resident: the compound and the company by name.
        let link = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}/link"))
            .await;
        ctx.browser
            .goto(link["url"].as_str().expect("url"))
            .await
            .expect("open the card link");
        ctx.text_until("#res-compound", |t| {
            t == "幸福里小区 · 红心安居物业服务有限公司"
        })
        .await;
    });
}
