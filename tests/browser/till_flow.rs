//! Browser tests of the till for busy hands: it opens on 收款; one scan box reads a household
//! card, a household code, a catalogue item and a voucher; cash takes what is handed over and
//! gives change; a finished sale is unmistakable at a till's and a phone's size and cannot be
//! posted twice; the keys are shown on the page and work; items are found by name, pinyin
//! initials or SKU; receipts carry the shop, the business date and the receipt number.
//!
//! Screenshots go to `{temp}/hongxin-browser-shots/` for a person to look at.

use serde_json::{json, Value};

use crate::browser_support::{browser_test, Ctx, TODAY};
use crate::till::{
    focused, record_sales, recorded_sales, scan, set_pin, until, value, wallet, yuan,
};

const SIZES: [(u32, u32, &str); 2] = [(1366, 768, "1366x768"), (390, 844, "390x844")];

async fn open_till(ctx: &Ctx) {
    ctx.open("/till").await;
    ctx.sign_in(&ctx.cashier).await;
    ctx.visible("#scan").await;
}

async fn js(ctx: &Ctx, script: &str) -> Value {
    ctx.script(script, vec![]).await
}

/// A paper voucher bought for cash at S1: 100.00 paid, 110.00 on it.
async fn voucher(ctx: &Ctx, household: &str) -> String {
    let (status, topped) = ctx
        .api_post(
            &ctx.cashier,
            "/v1/topups",
            json!({"household": household, "paid": "100.00", "method": "cash", "deliver": "voucher"}),
        )
        .await;
    assert_eq!(status, 201, "{topped}");
    topped["voucher"]["code"]
        .as_str()
        .expect("voucher code")
        .to_string()
}

#[test]
fn the_till_opens_on_sale_and_its_one_scan_box_reads_a_card_a_code_an_item_and_a_voucher() {
    browser_test("till: one scan box", |ctx: Ctx| async move {
        let hh = "HX01-0010";
        let code = voucher(&ctx, "HX01-0011").await;
        let (status, _) = ctx
            .api_post(
                &ctx.cashier,
                "/v1/topups",
                json!({"household": hh, "paid": "50.00", "method": "cash"}),
            )
            .await;
        assert_eq!(status, 201);
        let link = ctx
            .api_get(&ctx.admin, &format!("/v1/households/{hh}/link"))
            .await["url"]
            .as_str()
            .expect("card link")
            .to_string();

        open_till(&ctx).await;
        // The till opens on 收款, ready for a scan.
        assert_eq!(
            js(
                &ctx,
                "return [document.querySelector('#tab-sale').getAttribute('aria-selected'), \
                 document.querySelector('#sale-form').hidden, \
                 document.querySelector('#topup-form').hidden]"
            )
            .await,
            json!(["true", false, true])
        );
        assert_eq!(focused(&ctx).await, json!("scan"));
        record_sales(&ctx).await;

        // A catalogue item's code (lower case as a scanner may send it) becomes a line.
        ctx.fill("#scan", "v03\u{E007}").await;
        ctx.text_until("#line-0 .line-amount", |t| t == "¥3.50")
            .await;
        // A voucher is carried into the sale as a tender for what it covers.
        ctx.fill("#scan", &format!("{code}\u{E007}")).await;
        until(
            &ctx,
            "return document.querySelector('#tender-voucher').value === '3.50'",
            "the voucher covers the basket",
        )
        .await;
        assert_eq!(value(&ctx, "#sale-voucher-code").await, code);
        assert_eq!(
            ctx.text("#sale-voucher-note").await,
            format!("券 {code}：余额 ¥110.00")
        );
        // It goes on covering the basket as it grows.
        ctx.fill("#scan", "E01\u{E007}").await;
        ctx.text_until("#line-1 .line-amount", |t| t == "¥6.50")
            .await;
        until(
            &ctx,
            "return document.querySelector('#tender-voucher').value === '10.00'",
            "the voucher covers the bigger basket",
        )
        .await;
        ctx.text_until("#sale-remaining", |t| t == "¥0.00").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#done-amount", |t| t == "¥10.00").await;
        assert_eq!(ctx.text("#done-tender-voucher").await, "¥10.00");
        assert_eq!(ctx.text("#done-voucher-balance").await, "¥100.00");
        let v = ctx
            .api_get(&ctx.cashier, &format!("/v1/vouchers/{code}"))
            .await;
        assert_eq!(v["balance"], json!("100.00"));
        let sent = recorded_sales(&ctx).await;
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0]["body"],
            json!({"lines": [{"sku": "V03", "qty": "1"}, {"sku": "E01", "qty": "1"}],
                   "tenders": [{"type": "voucher", "amount": "10.00", "code": code}]})
        );

        // The household card's QR (the signed link): the household, marked as carded, and
        // the scanned link goes with a wallet sale as the resident's presence.
        let before = wallet(&ctx, hh).await;
        ctx.fill("#scan", &format!("{link}\u{E007}")).await;
        ctx.text_until("#hh-code", |t| t == hh).await;
        ctx.text_until("#hh-card", |t| t == "已刷住户卡").await;
        ctx.fill("#sale-amount", "5.00").await;
        ctx.click("#rest-wallet").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#done-wallet", |t| t == yuan(before - 500))
            .await;
        assert_eq!(wallet(&ctx, hh).await, before - 500);
        let sent = recorded_sales(&ctx).await;
        assert_eq!(sent[1]["status"], json!(201), "{}", sent[1]);
        assert_eq!(sent[1]["body"]["household"], json!(hh));
        assert_eq!(sent[1]["body"]["resident"], json!({"card": link}));

        // A typed household code is no card: the wallet needs the resident's PIN instead.
        set_pin(&ctx, hh, "482615").await;
        scan(&ctx, hh).await;
        assert_eq!(
            js(&ctx, "return document.querySelector('#hh-card').hidden").await,
            json!(true)
        );
        ctx.fill("#sale-amount", "1.00").await;
        ctx.click("#rest-wallet").await;
        ctx.visible("#sale-resident-field").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#sale-problem", |t| {
            t == "用钱包付款须住户在场：请扫描住户卡，或请住户输入密码"
        })
        .await;
        assert_eq!(wallet(&ctx, hh).await, before - 500);
        ctx.fill("#sale-resident-pin", "482615").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#done-wallet", |t| t == yuan(before - 600))
            .await;
        let sent = recorded_sales(&ctx).await;
        assert_eq!(sent[2]["status"], json!(422), "{}", sent[2]);
        assert_eq!(sent[2]["body"].get("resident"), None);
        assert_eq!(sent[3]["body"]["household"], json!(hh));
        assert_eq!(sent[3]["body"]["resident"], json!({"pin": "482615"}));

        // Something that is none of these says so and changes nothing.
        ctx.fill("#scan", "NOT-A-THING\u{E007}").await;
        ctx.text_until("#scan-problem", |t| t == "券码无效").await;
        assert_eq!(recorded_sales(&ctx).await.len(), 4);
    });
}

#[test]
fn cash_takes_what_is_handed_over_and_a_finished_sale_is_unmistakable_at_both_sizes() {
    browser_test("till: change and confirmation", |ctx: Ctx| async move {
        for (i, (width, height, size)) in SIZES.into_iter().enumerate() {
            let hh = ["HX01-0020", "HX01-0021"][i];
            open_till(&ctx).await;
            ctx.viewport(width, height).await;
            record_sales(&ctx).await;

            // 75.00 due, a 100 note handed over: 找零 25.00, nothing "still due".
            ctx.fill("#sale-amount", "75.00").await;
            ctx.fill("#tender-cash", "100").await;
            ctx.text_until("#sale-change", |t| t == "¥25.00").await;
            assert_eq!(ctx.text("#sale-remaining").await, "¥0.00");
            ctx.shot(&format!("till-change-{size}")).await;
            ctx.click("#sale-submit").await;
            ctx.text_until("#done-amount", |t| t == "¥75.00").await;
            assert!(
                ctx.in_view("#done").await,
                "the confirmation is on screen at {size}"
            );
            assert!(
                ctx.in_view("#done-next").await,
                "next customer on screen at {size}"
            );
            assert_eq!(ctx.text("#done-title").await, "收款完成");
            assert_eq!(ctx.text("#done-tender-cash").await, "¥75.00");
            assert_eq!(ctx.text("#done-received").await, "¥100.00");
            assert_eq!(ctx.text("#done-change").await, "¥25.00");
            let sent = recorded_sales(&ctx).await;
            assert_eq!(
                sent[0]["body"]["tenders"],
                json!([{"type": "cash", "amount": "75.00"}])
            );
            let reply = &sent[0]["reply"];
            assert_eq!(
                ctx.text("#done-receipt-no").await,
                reply["entry"].to_string()
            );
            assert_eq!(ctx.text("#done-sale").await, reply["sale"].to_string());
            ctx.shot(&format!("till-done-{size}")).await;

            // A second tap on the finished sale: visibly finished, and nothing is posted.
            assert_eq!(ctx.text("#sale-submit").await, "本单已完成 ✓");
            let state = js(
                &ctx,
                "const b = document.querySelector('#sale-submit'); b.click(); \
                 document.querySelector('#sale-form').requestSubmit(); return b.disabled",
            )
            .await;
            assert_eq!(state, json!(true));
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert_eq!(recorded_sales(&ctx).await.len(), 1);

            // Next customer: the confirmation goes, the till is ready for the next scan.
            ctx.keys("\u{E00C}").await; // Esc
            until(
                &ctx,
                "return document.querySelector('#done').hidden",
                "the confirmation goes",
            )
            .await;
            assert_eq!(focused(&ctx).await, json!("scan"));
            assert!(ctx.text("#sale-submit").await.starts_with("确认收款"));
            assert_eq!(value(&ctx, "#sale-amount").await, "");

            // A wallet sale's confirmation shows the new balance, as the API has it.
            let before = scan(&ctx, hh).await;
            let (status, _) = ctx
                .api_post(
                    &ctx.cashier,
                    "/v1/topups",
                    json!({"household": hh, "paid": "50.00", "method": "cash"}),
                )
                .await;
            assert_eq!(status, 201);
            set_pin(&ctx, hh, "482615").await;
            scan(&ctx, hh).await;
            ctx.fill("#sale-amount", "12.30").await;
            ctx.click("#rest-wallet").await;
            ctx.fill("#sale-resident-pin", "482615").await;
            ctx.click("#sale-submit").await;
            let after = before + 5_500 - 1_230;
            ctx.text_until("#done-wallet", |t| t == yuan(after)).await;
            assert_eq!(wallet(&ctx, hh).await, after);
            assert!(ctx.in_view("#done").await, "wallet confirmation at {size}");
            ctx.shot(&format!("till-done-wallet-{size}")).await;
            ctx.click("#done-next").await;
            until(
                &ctx,
                "return document.querySelector('#done').hidden",
                "next customer",
            )
            .await;
            ctx.click("#sign-out").await;
            ctx.visible("#sign-in").await;
        }
    });
}

#[test]
fn the_keys_are_shown_and_work_and_a_scan_typed_while_a_button_has_the_focus_is_not_lost() {
    browser_test("till: keys and scans", |ctx: Ctx| async move {
        open_till(&ctx).await;
        let keys = ctx.text("#till-keys").await;
        for k in [
            "F1 收款",
            "F2 充值",
            "F3 退款",
            "F4 查券",
            "F8 打印小票",
            "F9 确认",
            "Esc 下一位顾客",
        ] {
            assert!(keys.contains(k), "{k} is not shown: {keys}");
        }
        let selected = "return document.querySelector('.tabs [aria-selected=true]').id";
        for (key, tab) in [
            ("\u{E032}", "tab-topup"),
            ("\u{E033}", "tab-refund"),
            ("\u{E034}", "tab-voucher"),
            ("\u{E031}", "tab-sale"),
        ] {
            ctx.keys(key).await;
            assert_eq!(js(&ctx, selected).await, json!(tab));
        }

        // The focus on a button (the refund tab, just tapped): a scanner's keys still land in
        // the scan box.
        ctx.click("#tab-refund").await;
        ctx.click("#tab-sale").await;
        assert_eq!(focused(&ctx).await, json!("tab-sale"));
        let hh = "HX01-0007";
        let total = wallet(&ctx, hh).await;
        ctx.keys(&format!("{hh}\u{E007}")).await;
        ctx.text_until("#hh-code", |t| t == hh).await;
        ctx.text_until("#hh-wallet", |t| t == yuan(total)).await;

        // F9 confirms, F8 prints the receipt (the print dialog is counted, not opened).
        js(
            &ctx,
            "window.__printed = 0; window.print = () => { window.__printed += 1; }; return true",
        )
        .await;
        ctx.keys("\u{E038}").await; // F8 with no receipt yet: nothing to print
        ctx.fill("#sale-amount", "2.00").await;
        ctx.fill("#tender-cash", "2.00").await;
        ctx.keys("\u{E039}").await; // F9
        ctx.text_until("#done-amount", |t| t == "¥2.00").await;
        ctx.keys("\u{E038}").await;
        assert_eq!(js(&ctx, "return window.__printed").await, json!(1));
        ctx.click("#done-print").await;
        assert_eq!(js(&ctx, "return window.__printed").await, json!(2));
    });
}

#[test]
fn items_are_found_by_name_pinyin_initials_or_sku() {
    browser_test("till: product search", |ctx: Ctx| async move {
        open_till(&ctx).await;
        let catalog = ctx.api_get(&ctx.cashier, "/v1/catalog").await;
        let initials = |sku: &str| -> String {
            catalog["items"]
                .as_array()
                .expect("items")
                .iter()
                .find(|i| i["sku"] == sku)
                .and_then(|i| i["initials"].as_str())
                .expect("initials")
                .to_string()
        };
        assert_eq!(initials("V01"), "dbc");
        assert_eq!(initials("E02"), "tjd30m");
        for (typed, first) in [
            ("dbc", "V01"),
            ("白菜", "V01"),
            ("xhs", "V03"),
            ("tjd", "E02"),
            ("m01", "M01"),
        ] {
            ctx.fill("#product-search", typed).await;
            until(
                &ctx,
                &format!(
                    "const b = document.querySelector('#product-results .till-hit'); \
                     return Boolean(b) && b.dataset.sku === '{first}'"
                ),
                typed,
            )
            .await;
        }
        // 鸡蛋 is in two names: both are offered.
        ctx.fill("#product-search", "鸡蛋").await;
        until(
            &ctx,
            "return document.querySelectorAll('#product-results .till-hit').length === 2",
            "two eggs",
        )
        .await;
        assert_eq!(
            js(
                &ctx,
                "return [...document.querySelectorAll('#product-results .till-hit')]\
                 .map(b => b.dataset.sku)",
            )
            .await,
            json!(["E01", "E02"])
        );
        ctx.fill("#product-search", "zzz").await;
        ctx.text_until("#product-results", |t| t == "没有找到这个商品")
            .await;
        // Enter takes the first match, priced by the server.
        ctx.fill("#product-search", "dbc\u{E007}").await;
        ctx.text_until("#line-0 .line-amount", |t| t == "¥1.20")
            .await;
        assert_eq!(value(&ctx, "#sale-amount").await, "1.20");
        assert_eq!(value(&ctx, "#product-search").await, "");
    });
}

#[test]
fn receipts_carry_the_shop_the_business_date_and_the_receipt_number_and_print_on_80mm() {
    browser_test("till: receipts", |ctx: Ctx| async move {
        open_till(&ctx).await;
        record_sales(&ctx).await;
        ctx.fill("#sale-amount", "20.00").await;
        ctx.fill("#tender-cash", "20.00").await;
        ctx.click("#sale-submit").await;
        ctx.text_until("#r-total", |t| t == "¥20.00").await;
        let reply = recorded_sales(&ctx).await[0]["reply"].clone();
        assert_eq!(
            ctx.text("#receipt-shop").await,
            "红心农业合作社幸福里店（S1）"
        );
        assert_eq!(ctx.text("#r-date").await, TODAY);
        // The cashier: the label of the token the till signed in with.
        assert_eq!(ctx.text("#r-cashier").await, "王芳");
        assert_eq!(ctx.text("#r-receipt-no").await, reply["entry"].to_string());
        // A refund's receipt too.
        ctx.click("#receipt-refund").await;
        ctx.fill("#refund-amount", "5.00").await;
        ctx.click("#refund-submit").await;
        ctx.text_until("#r-refunded", |t| t == "¥5.00").await;
        assert_eq!(ctx.text("#r-date").await, TODAY);
        assert_eq!(ctx.text("#r-cashier").await, "王芳");
        assert_eq!(
            ctx.text("#receipt-shop").await,
            "红心农业合作社幸福里店（S1）"
        );
        let entry = ctx.text("#r-receipt-no").await;
        assert!(
            entry.parse::<i64>().expect("entry") > reply["entry"].as_i64().expect("entry"),
            "the refund has its own receipt number"
        );
        assert_eq!(ctx.text("#done-title").await, "退款完成");
        assert_eq!(ctx.text("#done-amount").await, "¥5.00");
        // Printed on an 80 mm roll: the page rule says so.
        let page = js(
            &ctx,
            "for (const s of document.styleSheets) for (const r of s.cssRules) \
             if (r instanceof CSSPageRule && r.selectorText === 'receipt') \
             return r.style.getPropertyValue('size'); return null",
        )
        .await;
        assert_eq!(page, json!("80mm 297mm"));
    });
}

#[test]
fn placeholders_do_not_look_like_values_and_the_header_is_translated() {
    browser_test("till: placeholders and header", |ctx: Ctx| async move {
        open_till(&ctx).await;
        ctx.click("#tab-topup").await;
        // No placeholder is a number that could be taken for an entered amount, and they are
        // drawn unlike entered text.
        let placeholders = js(
            &ctx,
            "return [...document.querySelectorAll('#till input[placeholder]')]\
             .map(i => i.placeholder)",
        )
        .await;
        for p in placeholders.as_array().expect("placeholders") {
            let p = p.as_str().unwrap_or_default();
            assert!(
                !p.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "placeholder {p:?} looks like a value"
            );
        }
        let colours = js(
            &ctx,
            "const i = document.querySelector('#topup-paid'); \
             return [getComputedStyle(i).color, getComputedStyle(i, '::placeholder').color, \
             getComputedStyle(i, '::placeholder').fontStyle]",
        )
        .await;
        assert_ne!(colours[0], colours[1], "{colours}");
        assert_eq!(colours[2], json!("italic"));
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.shot(&format!("till-topup-zh-{size}")).await;
        }

        ctx.viewport(1366, 768).await;
        ctx.click("#lang-switch").await;
        ctx.text_until("#who", |t| t == "Cashier 红心农业合作社幸福里店")
            .await;
        assert_eq!(
            js(&ctx, "return document.title").await,
            json!("Hongxin · Till")
        );
        assert_eq!(ctx.text("header.bar .brand").await, "Hongxin");
        assert_eq!(ctx.text("#sign-out").await, "Sign out");
        assert_eq!(
            js(
                &ctx,
                "return document.querySelector('#topup-paid').placeholder"
            )
            .await,
            json!("Amount, e.g. 100")
        );
        assert!(ctx.text("#till-keys").await.contains("F1 Sale"));
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.shot(&format!("till-topup-en-{size}")).await;
        }
    });
}

#[test]
fn every_problem_code_has_words_in_chinese_and_english_on_every_page() {
    browser_test("problem messages", |ctx: Ctx| async move {
        let codes = json!(hongxin::http::error::PROBLEM_CODES);
        for page in ["/", "/till", "/resident", "/office", "/coop"] {
            for lang in ["zh-CN", "en"] {
                ctx.open(&format!("{page}?lang={lang}")).await;
                // Each code in words of the page's language: not the code, not a dictionary
                // key, not the server's English detail, no field name in brackets.
                let bad = ctx
                    .script(
                        "const cjk = /[\\u4e00-\\u9fff]/; return arguments[0].filter(c => { \
                         const t = HX.problemText({code: c, field: 'tenders[0].amount', \
                         detail: 'server detail'}); \
                         return t === c || t.startsWith('problem.') || t === 'server detail' || \
                         t.includes('tenders[') || cjk.test(t) !== (arguments[1] === 'zh-CN'); })",
                        vec![codes.clone(), json!(lang)],
                    )
                    .await;
                assert_eq!(bad, json!([]), "{page} in {lang}: codes without words");
            }
        }
    });
}

#[test]
fn a_cashier_reads_words_not_dictionary_keys_or_field_names() {
    browser_test("till: words a cashier understands", |ctx: Ctx| async move {
        open_till(&ctx).await;
        let hh = "HX01-0030";
        set_pin(&ctx, hh, "482615").await;
        scan(&ctx, hh).await;
        ctx.click("#tab-topup").await;
        // 5,000 at once is over the per-top-up cap: said in words, with the limit.
        ctx.fill("#topup-paid", "5000").await;
        ctx.text_until("#topup-problem", |t| t == "单次充值最多 ¥1,000.00")
            .await;
        ctx.click("#lang-switch").await;
        ctx.text_until("#topup-problem", |t| t == "One top-up is at most ¥1,000.00")
            .await;
        ctx.click("#lang-switch").await;
        // A refusal from the server names no request field.
        let total = wallet(&ctx, hh).await;
        ctx.click("#tab-sale").await;
        ctx.fill("#sale-amount", &crate::till::amount(total + 10_000))
            .await;
        ctx.click("#rest-wallet").await;
        ctx.fill("#sale-resident-pin", "482615").await;
        ctx.click("#sale-submit").await;
        let said = ctx.text_until("#sale-problem", |t| !t.is_empty()).await;
        assert_eq!(said, "余额不足");
        assert_eq!(
            ctx.script(
                "return document.querySelector('#tender-wallet').classList.contains('invalid')",
                vec![]
            )
            .await,
            json!(true),
            "the wallet tender is marked instead"
        );
        assert_eq!(wallet(&ctx, hh).await, total);
    });
}

#[test]
fn a_product_barcode_scanned_becomes_a_line() {
    browser_test("till: product barcodes", |ctx: Ctx| async move {
        open_till(&ctx).await;
        // The demo's 1 L milk (M02, 12.50 a box) carries the EAN-13 6920000004010.
        let catalog = ctx.api_get(&ctx.cashier, "/v1/catalog").await;
        let milk = catalog["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["sku"] == json!("M02"))
            .cloned()
            .expect("M02");
        assert_eq!(milk["barcode"], json!("6920000004010"));
        ctx.fill("#scan", "6920000004010\u{E007}").await;
        ctx.text_until("#line-0 .line-amount", |t| t == "¥12.50")
            .await;
        assert!(ctx.text("#line-0").await.contains("鲜牛奶"));
        // Scanned twice: a second line, the basket twice the price.
        ctx.fill("#scan", "6920000004010\u{E007}").await;
        ctx.text_until("#line-1 .line-amount", |t| t == "¥12.50")
            .await;
        assert_eq!(value(&ctx, "#scan").await, "");
        // A wallet tender for a typed household code asks for the resident's PIN.
        scan(&ctx, "HX01-0012").await;
        ctx.fill("#tender-wallet", "25.00").await;
        ctx.visible("#sale-resident-field").await;
        for (width, height, size) in SIZES {
            ctx.viewport(width, height).await;
            ctx.shot(&format!("till-barcode-pin-{size}")).await;
        }
    });
}

#[test]
fn a_top_up_is_voided_from_its_receipt_while_the_customer_is_at_the_till() {
    browser_test("till: void a top-up", |ctx: Ctx| async move {
        let hh = "HX01-0003";
        open_till(&ctx).await;
        let start = scan(&ctx, hh).await;
        ctx.click("#tab-topup").await;
        ctx.fill("#topup-paid", "100.00").await;
        ctx.text_until("#topup-credited", |t| t == "¥110.00").await;
        ctx.click("#topup-submit").await;
        ctx.text_until("#r-credited", |t| t == "¥110.00").await;
        let entry: i64 = ctx.text("#r-receipt-no").await.parse().expect("entry");
        assert_eq!(wallet(&ctx, hh).await, start + 11_000);
        // Two taps: 作废, then the confirmation; one alone posts nothing.
        ctx.click("#receipt-void").await;
        ctx.visible("#receipt-void-confirm").await;
        assert_eq!(wallet(&ctx, hh).await, start + 11_000);
        ctx.click("#receipt-void-confirm").await;
        ctx.text_until("#r-paid-back", |t| t == "¥100.00").await;
        assert_eq!(ctx.text("#r-bonus-withdrawn").await, "¥10.00");
        assert_eq!(ctx.text("#r-voided-topup").await, entry.to_string());
        assert_eq!(ctx.text("#done-title").await, "充值已作废");
        assert_eq!(ctx.text("#receipt-title").await, "充值作废小票");
        assert_eq!(wallet(&ctx, hh).await, start);
        assert_eq!(
            js(
                &ctx,
                "return document.querySelector('#receipt-void').hidden"
            )
            .await,
            json!(true),
            "a void's receipt offers no second void"
        );
        // The server refuses a second void, naming the top-up.
        let (status, problem) = ctx
            .api_post(&ctx.cashier, &format!("/v1/topups/{entry}/void"), json!({}))
            .await;
        assert_eq!(status, 409, "{problem}");
        assert_eq!(problem["code"], "not_voidable");
        assert_eq!(problem["field"], "topup");
    });
}
