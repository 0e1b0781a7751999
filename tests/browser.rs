//! The web pages end to end in headless Chromium (see `browser_support`). Without Chromium the
//! tests say SKIPPED and pass; `.ci/run` installs it and sets CI, so there they must run.

mod browser_support;

#[path = "browser/alliance.rs"]
mod alliance;
#[path = "browser/coop.rs"]
mod coop;
#[path = "browser/coop_move_out.rs"]
mod coop_move_out;
#[path = "browser/coop_total.rs"]
mod coop_total;
#[path = "browser/names.rs"]
mod names;
#[path = "browser/office.rs"]
mod office;
#[path = "browser/office_desk.rs"]
mod office_desk;
#[path = "browser/office_master.rs"]
mod office_master;
#[path = "browser/office_move_out.rs"]
mod office_move_out;
#[path = "browser/office_receipts.rs"]
mod office_receipts;
#[path = "browser/resident.rs"]
mod resident;
#[path = "browser/resident_card.rs"]
mod resident_card;
#[path = "browser/till.rs"]
mod till;
#[path = "browser/till_fees.rs"]
mod till_fees;
#[path = "browser/till_flow.rs"]
mod till_flow;
#[path = "browser/till_vouchers.rs"]
mod till_vouchers;

use browser_support::{browser_test, Ctx};
use serde_json::json;

#[test]
fn front_page_speaks_chinese_first_and_english_on_request() {
    browser_test("front page", |ctx: Ctx| async move {
        ctx.open("/").await;
        assert_eq!(ctx.text("#go-till strong").await, "收银台");
        let lang = ctx
            .script("return document.documentElement.lang", vec![])
            .await;
        assert_eq!(lang, json!("zh-CN"));
        ctx.click("#lang-switch").await;
        ctx.text_until("#go-till strong", |t| t == "Till").await;
        assert_eq!(ctx.text("#go-office strong").await, "Company office");
        // The choice is remembered on the next page load.
        ctx.open("/").await;
        ctx.text_until("#go-coop strong", |t| t == "Cooperative")
            .await;
        ctx.click("#lang-switch").await;
        ctx.text_until("#go-coop strong", |t| t == "合作社财务")
            .await;
    });
}

#[test]
fn pages_carry_a_strict_content_security_policy() {
    browser_test("security headers", |ctx: Ctx| async move {
        for path in [
            "/",
            "/till",
            "/resident",
            "/office",
            "/coop",
            "/alliance",
            "/assets/common.js",
        ] {
            let r = ctx.raw_get(path).await;
            assert_eq!(r.status().as_u16(), 200, "{path}");
            let csp = r
                .headers()
                .get("content-security-policy")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
            assert_eq!(
                r.headers()
                    .get("referrer-policy")
                    .and_then(|v| v.to_str().ok()),
                Some("no-referrer")
            );
        }
        // An inline script injected into a page is refused by the browser.
        ctx.open("/").await;
        let ran = ctx
            .script(
                "const s = document.createElement('script'); s.textContent = 'window.__inline = 1'; \
                 document.body.append(s); return window.__inline === 1;",
                vec![],
            )
            .await;
        assert_eq!(ran, json!(false), "the CSP let an inline script run");
    });
}

#[test]
fn the_session_cookie_is_hidden_from_scripts_and_needs_the_csrf_token() {
    browser_test("session and CSRF", |ctx: Ctx| async move {
        ctx.open("/").await;
        let signed = ctx
            .script(
                "return HX.signIn({token: arguments[0]}).then(r => [r.status, r.data.role, typeof r.data.csrf]);",
                vec![json!(ctx.cashier)],
            )
            .await;
        assert_eq!(signed, json!([201, "cashier", "string"]));
        // HttpOnly: no script can read the session.
        let cookies = ctx.script("return document.cookie", vec![]).await;
        assert!(!cookies.as_str().unwrap_or("").contains("hx_session"));
        // A read works with the cookie alone.
        let read = ctx
            .script(
                "return fetch('/v1/households/HX01-0001').then(r => r.status);",
                vec![],
            )
            .await;
        assert_eq!(read, json!(200));
        // A write without the CSRF token is refused and changes nothing.
        let before = ctx.api_get(&ctx.admin, "/v1/households/HX01-0001").await;
        let refused = ctx
            .script(
                "return fetch('/v1/topups', {method: 'POST', headers: {'Content-Type': 'application/json', \
                 'Idempotency-Key': 'csrf-test-1'}, body: JSON.stringify({household: 'HX01-0001', \
                 paid: '50.00', method: 'cash'})}).then(r => r.json()).then(p => p.code);",
                vec![],
            )
            .await;
        assert_eq!(refused, json!("csrf_failed"));
        let after = ctx.api_get(&ctx.admin, "/v1/households/HX01-0001").await;
        assert_eq!(before["wallet"], after["wallet"]);
        assert!(before["wallet"].is_object(), "{before}");
        // Signing out revokes the session on the server.
        let out = ctx
            .script(
                "return HX.signOut().then(() => fetch('/web/session')).then(r => r.status);",
                vec![],
            )
            .await;
        assert_eq!(out, json!(401));
    });
}
