//! Browser tests of the /till page: a cashier tops up, sells with a split tender and refunds;
//! a double tap or a retry after a dropped connection posts once; a refusal says why in the
//! page's language and changes nothing; a pairing code signs a till in once.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, Ctx};

/// `"123.40"` → 12340.
fn fen(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let neg = whole.starts_with('-');
    let whole: i64 = whole.trim_start_matches('-').parse().expect("whole yuan");
    let frac: i64 = format!("{frac:0<2}")[..2].parse().expect("fen");
    let v = whole * 100 + frac;
    if neg {
        -v
    } else {
        v
    }
}

/// 12340 → `"123.40"`.
pub(crate) fn amount(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// 123440 → `"¥1,234.40"`, as the page shows money.
pub(crate) fn yuan(fen: i64) -> String {
    let text = amount(fen);
    let (sign, rest) = text
        .strip_prefix('-')
        .map_or(("", text.as_str()), |r| ("-", r));
    let (whole, frac) = rest.split_once('.').expect("two decimals");
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}¥{grouped}.{frac}")
}

pub(crate) fn money(v: &Value) -> i64 {
    fen(v.as_str().unwrap_or_else(|| panic!("not an amount: {v}")))
}

/// The household's wallet total at the cooperative, as the API reports it.
pub(crate) async fn wallet(ctx: &Ctx, household: &str) -> i64 {
    let h = ctx
        .api_get(&ctx.admin, &format!("/v1/households/{household}"))
        .await;
    money(&h["wallet"]["total"])
}

/// Entry ids of the household's top-ups, newest first (the latest 100 entries).
async fn topups(ctx: &Ctx, household: &str) -> Vec<i64> {
    let page = ctx
        .api_get(
            &ctx.admin,
            &format!("/v1/households/{household}/history?limit=100"),
        )
        .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "top_up")
        .map(|i| i["entry"].as_i64().expect("entry"))
        .collect()
}

/// Signs the till in with the cashier's token and looks the household up the way a
/// keyboard-wedge scanner does: the code, then Enter.
async fn open_household(ctx: &Ctx, household: &str) -> i64 {
    ctx.open("/till").await;
    ctx.sign_in(&ctx.cashier).await;
    scan(ctx, household).await
}

/// Scans the household's code into the till and waits for its wallet as the API has it.
pub(crate) async fn scan(ctx: &Ctx, household: &str) -> i64 {
    let before = wallet(ctx, household).await;
    ctx.fill("#scan", &format!("{household}\u{E007}")).await;
    ctx.text_until("#hh-code", |t| t == household).await;
    ctx.text_until("#hh-wallet", |t| t == yuan(before)).await;
    before
}

/// Whether the page has ended its customer: no household shown and the scan box focused.
async fn customer_ended(ctx: &Ctx) -> Value {
    ctx.script(
        "return [document.querySelector('#household-card').hidden, \
         document.activeElement && document.activeElement.id]",
        vec![],
    )
    .await
}

/// Sets the household's PIN as its property company's office does.
pub(crate) async fn set_pin(ctx: &Ctx, household: &str, pin: &str) {
    let (status, body) = ctx
        .api_post(
            &ctx.admin,
            &format!("/v1/households/{household}/pin"),
            json!({ "pin": pin }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub(crate) async fn value(ctx: &Ctx, css: &str) -> String {
    ctx.find(css)
        .await
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default()
}

#[test]
fn a_cashier_tops_up_sells_with_a_split_tender_and_refunds() {
    browser_test("till: top-up, split sale, refund", |ctx: Ctx| async move {
        let hh = "HX01-0001";
        let start = open_household(&ctx, hh).await;
        ctx.click("#tab-topup").await;

        // Top-up: the preview is the server's quote, shown before anything is posted.
        ctx.fill("#topup-paid", "100.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥110.00").await;
        assert_eq!(ctx.text("#topup-bonus").await, "¥10.00");
        assert_eq!(ctx.text("#topup-wallet-after").await, yuan(start + 11_000));
        let quote = ctx
            .api_get(
                &ctx.cashier,
                &format!("/v1/topups/quote?household={hh}&paid=100.00"),
            )
            .await;
        assert_eq!(quote["credited"], "110.00");
        assert_eq!(money(&quote["wallet_after"]), start + 11_000);
        assert_eq!(
            wallet(&ctx, hh).await,
            start,
            "the preview posted something"
        );
        ctx.click("#topup-submit").await;
        ctx.text_until("#r-credited", |t| t == "¥110.00").await;
        assert_eq!(ctx.text("#r-paid").await, "¥100.00");
        assert_eq!(ctx.text("#r-bonus").await, "¥10.00");
        assert_eq!(ctx.text("#r-wallet").await, yuan(start + 11_000));
        let after_topup = wallet(&ctx, hh).await;
        assert_eq!(after_topup, start + 11_000);
        // The top-up ended the customer: the next one starts from a scan and an empty form.
        assert_eq!(customer_ended(&ctx).await, json!([true, "scan"]));
        assert_eq!(value(&ctx, "#topup-paid").await, "");

        // The same household comes back to shop: its card is scanned for the sale.
        assert_eq!(scan(&ctx, hh).await, after_topup);

        // Sale of 30.50: 20.00 from the wallet, the rest in cash, worked out by the page. The
        // wallet is spent only with the resident's PIN: a wrong one is refused, nothing posted.
        set_pin(&ctx, hh, "482916").await;
        ctx.click("#tab-sale").await;
        ctx.fill("#sale-amount", "30.50").await;
        ctx.fill("#tender-wallet", "20.00").await;
        ctx.text_until("#sale-remaining", |t| t == "¥10.50").await;
        ctx.click("#rest-cash").await;
        assert_eq!(value(&ctx, "#tender-cash").await, "10.50");
        ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
        ctx.visible("#sale-resident-pin").await;
        ctx.fill("#sale-resident-pin", "111111").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#sale-problem", |t| t.starts_with("住户卡或密码不对"))
            .await;
        assert_eq!(value(&ctx, "#sale-resident-pin").await, "");
        assert_eq!(
            wallet(&ctx, hh).await,
            after_topup,
            "a refused sale was charged"
        );
        ctx.fill("#sale-resident-pin", "482916").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#r-total", |t| t == "¥30.50").await;
        assert_eq!(ctx.text("#r-tender-wallet").await, "¥20.00");
        assert_eq!(ctx.text("#r-tender-cash").await, "¥10.50");
        let sale: i64 = ctx.text("#r-sale").await.parse().expect("sale number");
        let after_sale = wallet(&ctx, hh).await;
        assert_eq!(after_sale, start + 11_000 - 2_000);
        assert_eq!(ctx.text("#r-wallet").await, yuan(after_sale));
        assert_eq!(customer_ended(&ctx).await, json!([true, "scan"]));
        assert_eq!(value(&ctx, "#refund-sale").await, "");

        // Refund from the receipt just made: part first, then everything left.
        ctx.click("#receipt-refund").await;
        assert_eq!(value(&ctx, "#refund-sale").await, sale.to_string());
        ctx.fill("#refund-amount", "10.00").await;
        ctx.click("#refund-submit").await;
        ctx.text_until("#r-refunded", |t| t == "¥10.00").await;
        assert_eq!(ctx.text("#r-remaining").await, "¥20.50");
        let back_wallet = fen(ctx.text("#r-tender-wallet").await.trim_start_matches('¥'));
        let back_cash = fen(ctx.text("#r-tender-cash").await.trim_start_matches('¥'));
        assert_eq!(back_wallet + back_cash, 1_000);
        assert_eq!(wallet(&ctx, hh).await, after_sale + back_wallet);
        // The refund ended the customer and emptied its form.
        assert_eq!(customer_ended(&ctx).await, json!([true, "scan"]));
        assert_eq!(value(&ctx, "#refund-sale").await, "");
        assert_eq!(value(&ctx, "#refund-amount").await, "");

        ctx.fill("#refund-sale", &sale.to_string()).await;
        ctx.click("#refund-submit").await;
        ctx.text_until("#r-refunded", |t| t == "¥20.50").await;
        assert_eq!(ctx.text("#r-remaining").await, "¥0.00");
        let end = wallet(&ctx, hh).await;
        assert_eq!(
            end,
            start + 11_000,
            "the whole sale went back to the wallet"
        );

        // Nothing is left to refund: the page says so and nothing moves.
        ctx.fill("#refund-sale", &sale.to_string()).await;
        ctx.click("#refund-submit").await;
        ctx.text_until("#refund-problem", |t| t == "无法退款（已退或超过可退金额）")
            .await;
        assert_eq!(wallet(&ctx, hh).await, end);
    });
}

#[test]
fn a_double_tap_or_a_retry_after_a_dropped_connection_posts_one_top_up() {
    browser_test("till: idempotent top-up", |ctx: Ctx| async move {
        let hh = "HX01-0002";
        let start = open_household(&ctx, hh).await;
        ctx.click("#tab-topup").await;
        let before = topups(&ctx, hh).await;

        // A double tap: two clicks and a second submit while the first is on its way.
        ctx.fill("#topup-paid", "50.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥55.00").await;
        ctx.script(
            "const b = document.querySelector('#topup-submit'); b.click(); b.click(); \
             document.querySelector('#topup-form').requestSubmit(); return true;",
            vec![],
        )
        .await;
        ctx.text_until("#r-credited", |t| t == "¥55.00").await;
        assert_eq!(wallet(&ctx, hh).await, start + 5_500);
        let now = topups(&ctx, hh).await;
        assert_eq!(now.len(), before.len() + 1, "{before:?} → {now:?}");

        // The connection drops after the request reached the server: the page sees a network
        // error, the cashier taps again, and the server answers with what it already posted.
        ctx.script(
            "const real = window.fetch; window.__dropped = 0; \
             window.fetch = async function (input, init) { \
               const r = await real(input, init); \
               if (window.__dropped === 0 && init && init.method === 'POST' \
                   && String(input).endsWith('/v1/topups')) { \
                 window.__dropped = 1; throw new TypeError('Failed to fetch'); } \
               return r; }; return true;",
            vec![],
        )
        .await;
        assert_eq!(scan(&ctx, hh).await, start + 5_500);
        ctx.fill("#topup-paid", "50.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥55.00").await;
        ctx.click("#topup-submit").await;
        ctx.text_until("#topup-problem", |t| {
            t == "网络中断：请检查连接后重试（不会重复记账）"
        })
        .await;
        assert_eq!(
            ctx.script("return window.__dropped", vec![]).await,
            json!(1)
        );
        // An attempt whose answer never came is not finished: the household stays for the retry.
        assert_eq!(ctx.text("#hh-code").await, hh);
        // The first attempt was posted although the page never heard back.
        assert_eq!(wallet(&ctx, hh).await, start + 11_000);
        ctx.click("#topup-submit").await;
        ctx.text_until("#receipt-title", |t| t.contains("未重复记入"))
            .await;
        assert_eq!(ctx.text("#r-credited").await, "¥55.00");
        assert_eq!(wallet(&ctx, hh).await, start + 11_000);
        let end = topups(&ctx, hh).await;
        assert_eq!(end.len(), before.len() + 2, "{before:?} → {end:?}");
        assert_eq!(customer_ended(&ctx).await, json!([true, "scan"]));
    });
}

#[test]
fn a_refused_top_up_says_why_in_the_page_language_and_changes_nothing() {
    browser_test("till: refusals", |ctx: Ctx| async move {
        let hh = "HX01-0003";
        let start = open_household(&ctx, hh).await;
        ctx.click("#tab-topup").await;
        let before = topups(&ctx, hh).await;

        ctx.fill("#topup-paid", "30.00").await;
        let zh = "充值须为 ¥50.00 的整数倍，例如 ¥50.00";
        ctx.text_until("#topup-problem", |t| t == zh).await;
        assert!(ctx
            .find("#topup-preview")
            .await
            .is_displayed()
            .await
            .is_ok_and(|v| !v));
        // Submitting anyway gets the same refusal from the top-up itself.
        ctx.click("#topup-submit").await;
        ctx.text_until("#topup-problem", |t| t == zh).await;
        let paid_class = ctx
            .find("#topup-paid")
            .await
            .attr("class")
            .await
            .expect("class");
        assert!(paid_class.unwrap_or_default().contains("invalid"));
        ctx.click("#lang-switch").await;
        ctx.text_until("#topup-problem", |t| {
            t == "Top-ups are whole units of ¥50.00; try e.g. ¥50.00"
        })
        .await;
        assert_eq!(wallet(&ctx, hh).await, start);
        assert_eq!(topups(&ctx, hh).await, before);

        // 130.00 suggests the whole units below it.
        ctx.fill("#topup-paid", "130.00").await;
        ctx.text_until("#topup-problem", |t| {
            t == "Top-ups are whole units of ¥50.00; try e.g. ¥100.00"
        })
        .await;

        // A household outside the programme: the page names it.
        let outside = "HX11-0001";
        let h = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{outside}"))
            .await;
        assert_eq!(h["eligible"], json!(false));
        ctx.fill("#scan", &format!("{outside}\u{E007}")).await;
        ctx.text_until("#hh-code", |t| t == outside).await;
        ctx.text_until("#hh-eligible", |t| t == "Not in the programme")
            .await;
        ctx.fill("#topup-paid", "50.00").await;
        ctx.text_until("#topup-problem", |t| {
            t == "Household HX11-0001 is not in spend-50-get-55 and cannot top up"
        })
        .await;
        ctx.click("#lang-switch").await;
        ctx.text_until("#topup-problem", |t| {
            t == "住户 HX11-0001 不在交50得55活动范围内，不能充值"
        })
        .await;
        let (status, body) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({"household": outside, "paid": "50.00", "method": "cash"}),
            )
            .await;
        assert_eq!((status, body["code"].clone()), (422, json!("not_eligible")));
        assert_eq!(money(&h["wallet"]["total"]), wallet(&ctx, outside).await);
    });
}

#[test]
fn a_pairing_code_signs_the_till_in_as_a_cashier_once() {
    browser_test("till: pairing code", |ctx: Ctx| async move {
        let (status, made) = ctx
            .api_post(&ctx.accountant, "/web/pairings", json!({"shop": "S1"}))
            .await;
        assert_eq!(status, 201, "{made}");
        let code = made["code"].as_str().expect("code").to_string();

        ctx.open("/till").await;
        ctx.fill("#sign-in input[name=pairing_code]", &code).await;
        ctx.click("#sign-in button[type=submit]").await;
        ctx.visible("#sign-out").await;
        ctx.text_until("#who", |t| t == "收银员 红心农业合作社幸福里店")
            .await;
        let session = ctx
            .script(
                "return fetch('/web/session').then(r => r.json()).then(s => [s.role, s.shop]);",
                vec![],
            )
            .await;
        assert_eq!(session, json!(["cashier", "S1"]));
        // The paired till works: it looks a household up with its wallet as the API has it.
        let hh = "HX01-0004";
        let total = wallet(&ctx, hh).await;
        ctx.fill("#scan", &format!("{hh}\u{E007}")).await;
        ctx.text_until("#hh-wallet", |t| t == yuan(total)).await;

        // The code was for one sign-in only.
        ctx.click("#sign-out").await;
        ctx.visible("#sign-in").await;
        ctx.fill("#sign-in input[name=pairing_code]", &code).await;
        ctx.click("#sign-in button[type=submit]").await;
        ctx.text_until("#sign-in .problem", |t| t == "令牌、配对码、链接或密码无效")
            .await;
        let who = ctx.text("#who").await;
        assert_eq!(who, "");
    });
}

#[test]
fn a_voucher_top_up_prints_its_qr_code_and_a_catalogue_basket_is_paid_by_voucher_and_cash() {
    browser_test("till: voucher and basket", |ctx: Ctx| async move {
        let hh = "HX01-0005";
        let start = open_household(&ctx, hh).await;
        ctx.click("#tab-topup").await;

        // A top-up delivered as a bearer voucher: the receipt carries its code and QR code.
        ctx.select("#topup-deliver", "voucher").await;
        ctx.fill("#topup-paid", "100.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥110.00").await;
        // The preview says what the voucher will carry, not a wallet it does not touch.
        assert_eq!(ctx.text("#topup-voucher-value").await, "¥110.00");
        assert_eq!(ctx.text("#topup-voucher-label").await, "券面额（钱包不变）");
        assert_eq!(
            ctx.script(
                "return document.querySelector('#topup-wallet-after').hidden",
                vec![]
            )
            .await,
            json!(true)
        );
        ctx.click("#topup-submit").await;
        ctx.text_until("#r-credited", |t| t == "¥110.00").await;
        let code = ctx.text("#r-voucher").await;
        let v = ctx
            .api_get(&ctx.cashier, &format!("/v1/vouchers/{code}"))
            .await;
        assert_eq!(
            (v["status"].clone(), v["balance"].clone()),
            (json!("active"), json!("110.00"))
        );
        assert_eq!(
            wallet(&ctx, hh).await,
            start,
            "a voucher top-up leaves the wallet alone"
        );
        let qr = ctx
            .script(
                "const i = document.querySelector('#receipt-qr-img'); \
                 return new Promise(ok => { const done = () => ok([i.getAttribute('src'), i.naturalWidth > 0]); \
                 if (i.complete) done(); else i.addEventListener('load', done); });",
                vec![],
            )
            .await;
        // The code's check symbol may be one of `*~$=U`; in a path `$` and `=` are escaped
        // (encodeURIComponent), `*` and `~` are not.
        let in_path = code.replace('$', "%24").replace('=', "%3D");
        assert_eq!(qr, json!([format!("/v1/vouchers/{in_path}/qr.svg"), true]));

        // Its balance, checked at the till.
        ctx.click("#tab-voucher").await;
        ctx.fill("#voucher-code", &code).await;
        ctx.click("#voucher-submit").await;
        ctx.text_until("#voucher-balance", |t| t == "¥110.00").await;
        assert_eq!(ctx.text("#voucher-status").await, "有效");

        // A basket from the catalogue: each line priced by the server (1.333 斤 × 3.50 =
        // 4.6655 → 4.67, half-up), the total added up exactly by the page.
        ctx.click("#tab-sale").await;
        ctx.fill("#product-search", "xhs").await;
        ctx.text_until("#product-results", |t| t.contains("西红柿"))
            .await;
        ctx.fill("#line-qty", "1.333\u{E007}").await;
        ctx.text_until("#line-0 .line-amount", |t| t == "¥4.67")
            .await;
        let priced = ctx
            .api_get(&ctx.cashier, "/v1/catalog/price?sku=V03&qty=1.333")
            .await;
        assert_eq!(priced["amount"], json!("4.67"));
        ctx.fill("#product-search", "E01").await;
        ctx.text_until("#product-results", |t| t.contains("鸡蛋"))
            .await;
        ctx.fill("#line-qty", "2\u{E007}").await;
        ctx.text_until("#line-1 .line-amount", |t| t == "¥13.00")
            .await;
        assert_eq!(value(&ctx, "#sale-amount").await, "17.67");
        ctx.fill("#tender-voucher", "10.00").await;
        ctx.fill("#sale-voucher-code", &code).await;
        ctx.click("#rest-cash").await;
        assert_eq!(value(&ctx, "#tender-cash").await, "7.67");
        ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#r-total", |t| t == "¥17.67").await;
        assert_eq!(ctx.text("#r-line-0").await, "¥4.67");
        assert_eq!(ctx.text("#r-tender-voucher").await, "¥10.00");
        assert_eq!(ctx.text("#r-tender-cash").await, "¥7.67");
        let v = ctx
            .api_get(&ctx.cashier, &format!("/v1/vouchers/{code}"))
            .await;
        assert_eq!(v["balance"], json!("100.00"));
        assert_eq!(wallet(&ctx, hh).await, start);
        // The sale ended the customer, the voucher checked for it included.
        assert_eq!(customer_ended(&ctx).await, json!([true, "scan"]));
        assert_eq!(value(&ctx, "#voucher-code").await, "");
        assert_eq!(value(&ctx, "#sale-voucher-code").await, "");
        assert_eq!(
            ctx.script(
                "return document.querySelector('#voucher-result').hidden",
                vec![]
            )
            .await,
            json!(true)
        );
    });
}

/// Every entry of the household's history (the latest 100), as the API reports them.
pub(crate) async fn history(ctx: &Ctx, household: &str) -> Value {
    ctx.api_get(
        &ctx.admin,
        &format!("/v1/households/{household}/history?limit=100"),
    )
    .await["items"]
        .clone()
}

/// The household a stored sale names (`sales.household_id` → its code), read from the test's
/// copy of the database: no API answer carries it, and it is what the sale is booked to.
pub(crate) async fn sale_household(ctx: &Ctx, sale: i64) -> Option<String> {
    use sqlx::Connection;
    let url = format!("sqlite://{}?mode=ro", ctx.dir.join("demo.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("open the test's database");
    let row: (Option<String>,) = sqlx::query_as(
        "SELECT h.code FROM sales s LEFT JOIN households h ON h.id = s.household_id \
         WHERE s.id = ?",
    )
    .bind(sale)
    .fetch_one(&mut conn)
    .await
    .expect("the sale is stored");
    row.0
}

/// Counts the page's `POST /v1/sales` from now on, with each request's body and answer.
pub(crate) async fn record_sales(ctx: &Ctx) {
    ctx.script(
        "const real = window.fetch; window.__sales = []; \
         window.fetch = async function (input, init) { \
           const mine = init && init.method === 'POST' && String(input).endsWith('/v1/sales'); \
           const seen = mine ? { body: JSON.parse(init.body) } : null; \
           if (seen) window.__sales.push(seen); \
           const r = await real(input, init); \
           if (seen) { seen.status = r.status; seen.reply = await r.clone().json(); } \
           return r; }; return true;",
        vec![],
    )
    .await;
}

pub(crate) async fn recorded_sales(ctx: &Ctx) -> Vec<Value> {
    ctx.script("return window.__sales", vec![])
        .await
        .as_array()
        .expect("recorded sales")
        .clone()
}

/// Waits until the script returns true.
pub(crate) async fn until(ctx: &Ctx, js: &str, what: &str) {
    let started = std::time::Instant::now();
    while ctx.script(js, vec![]).await != json!(true) {
        assert!(
            started.elapsed() < crate::browser_support::WAIT,
            "never: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub(crate) async fn focused(ctx: &Ctx) -> Value {
    ctx.script(
        "return document.activeElement && document.activeElement.id",
        vec![],
    )
    .await
}

#[test]
fn a_finished_wallet_sale_ends_the_customer_and_the_next_sale_charges_nobody_without_a_scan() {
    browser_test(
        "till: the previous customer is not charged",
        |ctx: Ctx| async move {
            let hh = "HX01-0006";
            let (status, topped) = ctx
                .api_post(
                    &ctx.cashier,
                    "/v1/topups",
                    json!({"household": hh, "paid": "100.00", "method": "cash"}),
                )
                .await;
            assert_eq!(status, 201, "{topped}");
            let start = open_household(&ctx, hh).await;
            assert!(start >= 11_000, "{hh} holds {start} fen");
            record_sales(&ctx).await;

            // Household A pays 12.00 from its wallet.
            set_pin(&ctx, hh, "482916").await;
            ctx.click("#tab-sale").await;
            ctx.fill("#sale-amount", "12.00").await;
            ctx.fill("#tender-wallet", "12.00").await;
            ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
            ctx.fill("#sale-resident-pin", "482916").await;
            ctx.click("#sale-submit").await;
            ctx.text_until("#r-total", |t| t == "¥12.00").await;
            assert_eq!(ctx.text("#r-tender-wallet").await, "¥12.00");
            let first: i64 = ctx.text("#r-sale").await.parse().expect("sale number");
            let after_first = wallet(&ctx, hh).await;
            assert_eq!(after_first, start - 1_200);
            assert_eq!(ctx.text("#r-wallet").await, yuan(after_first));
            assert_eq!(sale_household(&ctx, first).await.as_deref(), Some(hh));
            // What the page shows once the sale is done (asserted below, after the money).
            let ended = ctx
                .script(
                    "return [document.querySelector('#household-card').hidden, \
                 document.querySelector('#sale-amount').value, \
                 document.querySelector('#tender-wallet').value, \
                 document.activeElement && document.activeElement.id]",
                    vec![],
                )
                .await;
            let history_after_first = history(&ctx, hh).await;

            // The next customer, with no new scan, tries to pay 8.00 from "the" wallet: the page
            // refuses and posts nothing.
            ctx.fill("#sale-amount", "8.00").await;
            ctx.fill("#tender-wallet", "8.00").await;
            ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
            ctx.click("#sale-submit").await;
            until(
                &ctx,
                "return !document.querySelector('#sale-problem').hidden \
             || (window.__sales.length > 1 && window.__sales[1].reply !== undefined)",
                "the second wallet sale is refused or posted",
            )
            .await;
            assert_eq!(
                wallet(&ctx, hh).await,
                after_first,
                "a wallet sale with no scan was charged to the previous household"
            );
            assert_eq!(
                recorded_sales(&ctx).await.len(),
                1,
                "the page posted a sale"
            );
            assert_eq!(
                ctx.text("#sale-problem").await,
                "用钱包付款请先为本单扫描住户码"
            );
            let wallet_class = ctx
                .find("#tender-wallet")
                .await
                .attr("class")
                .await
                .expect("class");
            assert!(wallet_class.unwrap_or_default().contains("invalid"));
            assert_eq!(focused(&ctx).await, json!("scan"));
            ctx.click("#lang-switch").await;
            ctx.text_until("#sale-problem", |t| {
                t == "Scan the household’s code for this sale to pay from its wallet"
            })
            .await;
            ctx.click("#lang-switch").await;

            // The same 8.00 in cash is posted, to no household.
            ctx.fill("#tender-wallet", "").await;
            ctx.fill("#tender-cash", "8.00").await;
            ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
            ctx.click("#sale-submit").await;
            ctx.text_until("#r-total", |t| t == "¥8.00").await;
            assert_eq!(ctx.text("#r-tender-cash").await, "¥8.00");
            let second: i64 = ctx.text("#r-sale").await.parse().expect("sale number");
            assert_ne!(second, first);
            let sent = recorded_sales(&ctx).await;
            assert_eq!(sent.len(), 2, "{sent:?}");
            assert_eq!(sent[1]["status"], json!(201), "{sent:?}");
            assert_eq!(sent[1]["body"].get("household"), None, "{sent:?}");
            assert_eq!(sent[1]["reply"]["wallet"], Value::Null, "{sent:?}");
            assert_eq!(sale_household(&ctx, second).await, None);
            assert_eq!(
                ctx.script(
                    "return document.querySelector('#r-wallet') === null",
                    vec![]
                )
                .await,
                json!(true),
                "a cash sale's receipt shows no wallet"
            );
            assert_eq!(wallet(&ctx, hh).await, after_first);
            assert_eq!(history(&ctx, hh).await, history_after_first);
            assert_eq!(focused(&ctx).await, json!("scan"));
            // The wallet sale had ended the customer: no household, an empty form, the scan box
            // ready for the next one.
            assert_eq!(ended, json!([true, "", "", "scan"]));
        },
    );
}

#[test]
fn a_household_scanned_while_a_sale_is_on_its_way_stays_for_the_next_sale() {
    browser_test(
        "till: a scan during a sale is kept",
        |ctx: Ctx| async move {
            let (a, b) = ("HX01-0007", "HX01-0008");
            open_household(&ctx, a).await;
            // The sale's answer is held back until the test lets it through.
            ctx.script(
                "const real = window.fetch; window.__hold = null; \
             window.fetch = async function (input, init) { \
               const r = await real(input, init); \
               if (init && init.method === 'POST' && String(input).endsWith('/v1/sales')) \
                 await new Promise(ok => { window.__hold = ok; }); \
               return r; }; return true;",
                vec![],
            )
            .await;
            ctx.click("#tab-sale").await;
            ctx.fill("#sale-amount", "5.00").await;
            ctx.fill("#tender-cash", "5.00").await;
            ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
            ctx.click("#sale-submit").await;
            until(&ctx, "return window.__hold !== null", "the sale is posted").await;
            // The next customer's card is scanned before the page has heard back.
            let b_wallet = scan(&ctx, b).await;
            ctx.script("window.__hold(); return true;", vec![]).await;
            ctx.text_until("#r-total", |t| t == "¥5.00").await;
            let sale: i64 = ctx.text("#r-sale").await.parse().expect("sale number");
            assert_eq!(sale_household(&ctx, sale).await.as_deref(), Some(a));
            // A's sale ended A, not B.
            assert_eq!(ctx.text("#hh-code").await, b);
            assert_eq!(ctx.text("#hh-wallet").await, yuan(b_wallet));
            assert_eq!(customer_ended(&ctx).await, json!([false, "scan"]));
            assert_eq!(value(&ctx, "#sale-amount").await, "");
        },
    );
}

#[test]
fn past_the_monthly_bonus_cap_the_cashier_tops_up_with_the_bonus_left_when_asked() {
    browser_test("till: top-up past the bonus cap", |ctx: Ctx| async move {
        let hh = "HX01-0009";
        let quote = |paid: &'static str| {
            let ctx = &ctx;
            async move {
                ctx.api_get(
                    &ctx.cashier,
                    &format!(
                        "/v1/topups/quote?household={hh}&paid={paid}&method=cash&bonus=allowed"
                    ),
                )
                .await
            }
        };
        // Bring the month's bonus room down to 5.00 (one unit's bonus) through the API.
        let q = quote("50.00").await;
        let room = fen(q["bonus_room_after"].as_str().expect("room"))
            + fen(q["bonus"].as_str().expect("bonus"));
        if room > 500 {
            let paid = crate::till::amount((room - 500) / 500 * 5_000);
            let (status, body) = ctx
                .api_post(
                    &ctx.cashier,
                    "/v1/topups",
                    json!({"household": hh, "paid": paid, "method": "cash"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let room = room.min(500);
        let start = open_household(&ctx, hh).await;
        ctx.click("#tab-topup").await;

        // 100.00 would earn 10.00 of bonus: refused with what is left, and the choice offered.
        ctx.fill("#topup-paid", "100.00").await;
        ctx.text_until("#topup-problem", |t| t.contains("超过每月赠送上限 ¥100.00"))
            .await;
        ctx.visible("#topup-bonus-allowed-field").await;
        assert_eq!(
            wallet(&ctx, hh).await,
            start,
            "a refused quote changes nothing"
        );

        // Ticked: the quote gives the bonus left and says it is reduced, before payment.
        ctx.click("#topup-bonus-allowed").await;
        ctx.text_until("#topup-credited", |t| t == yuan(10_000 + room))
            .await;
        assert_eq!(ctx.text("#topup-bonus").await, yuan(room));
        ctx.visible("#topup-capped-label").await;
        for (width, height, size) in [(1366, 768, "1366x768"), (390, 844, "390x844")] {
            ctx.viewport(width, height).await;
            ctx.shot(&format!("till-bonus-allowed-{size}")).await;
        }
        ctx.click("#topup-submit").await;
        ctx.text_until("#r-credited", |t| t == yuan(10_000 + room))
            .await;
        assert_eq!(ctx.text("#r-bonus").await, yuan(room));
        assert_eq!(wallet(&ctx, hh).await, start + 10_000 + room);
        // The next customer starts without the box ticked or shown.
        assert_eq!(
            ctx.script(
                "return [document.querySelector('#topup-bonus-allowed').checked, \
                 document.querySelector('#topup-bonus-allowed-field').hidden]",
                vec![]
            )
            .await,
            json!([false, true])
        );
        // Without the box the cap refuses as before.
        let (status, body) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({"household": hh, "paid": "50.00", "method": "cash"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].clone()),
            (422, json!("cap_exceeded")),
            "{body}"
        );
    });
}
