//! Voiding a top-up (作废, issue 14), on both backends: the void reverses the top-up's postings
//! exactly (wallet or voucher, cash, promotion), gives the month's bonus room back, is refused
//! once any of the credit was used or when it was voided already, kills a voucher top-up's
//! code, is the till's only on the day it took the money (the accountant's any day), and the
//! till report, the prepaid report and the programme figures net it out; `verify` holds.

mod common;

use hongxin::domain::{
    Command, Delivery, Receipt, Rejection, TopUpVoidReceipt, VoidTopUp, VoucherStatus,
};
use hongxin::money::Amount;
use hongxin::reports::{self, ShopFilter};

use common::*;

const TODAY: &str = "2026-03-15";

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !crate::common::pg_support::available() {
                        return;
                    }
                    super::$name(crate::common::Backend::Postgres).await;
                }
            )*
        }
    };
}

conformance!(
    a_void_returns_the_books_to_before,
    a_void_gives_the_bonus_room_back,
    a_wallet_top_up_drawn_on_is_not_voided,
    a_voucher_top_up_void_kills_the_code,
    the_till_voids_today_the_accountant_any_day,
    reports_net_the_void_out,
);

/// Runs `f` and asserts that it was refused with `code` on `field` and that every balance and
/// the chain head are exactly as before.
macro_rules! refused_unchanged {
    ($t:expr, $op:expr, $code:expr, $field:expr) => {{
        let before = $t.snapshot().await;
        let rejection = refused($op.await, $code, $field);
        assert_eq!($t.snapshot().await, before, "a refusal changed the books");
        rejection
    }};
}

/// Who voids: the till of a shop, the accountant of a cooperative, or the operator.
#[derive(Clone, Copy)]
enum By<'a> {
    Till(&'a str),
    Accountant(&'a str),
    Admin,
}

async fn void(t: &TestLedger, topup: i64, by: By<'_>) -> Result<TopUpVoidReceipt, Rejection> {
    let (shop, cooperative) = match by {
        By::Till(s) => (Some(s.to_string()), None),
        By::Accountant(c) => (None, Some(c.to_string())),
        By::Admin => (None, None),
    };
    t.run(Command::VoidTopUp(VoidTopUp {
        topup,
        shop,
        cooperative,
        memo: Some("wrong household".into()),
    }))
    .await
    .map(|r| match r {
        Receipt::TopUpVoid(r) => r,
        other => panic!("a top-up void answered {other:?}"),
    })
}

async fn a_void_returns_the_books_to_before(backend: Backend) {
    let t = TestLedger::on(backend, TODAY).await;
    t.top_up("H1", "100.00", Delivery::Wallet).await.unwrap();
    let before = t.balances().await;
    let r = t.top_up("H1", "200.00", Delivery::Wallet).await.unwrap();
    assert_eq!(t.wallet("H1").await, (y("300.00"), y("30.00")));
    assert_eq!(t.coop_balance("cash:cash").await, y("300.00"));
    assert_eq!(t.coop_balance("promotion").await, y("30.00"));

    let v = void(&t, r.entry, By::Till(SHOP)).await.unwrap();
    assert_eq!(v.topup, r.entry);
    assert_eq!(v.household, "H1");
    assert_eq!((v.paid, v.bonus), (y("200.00"), y("20.00")));
    assert_eq!(
        v.wallet.map(|w| (w.paid, w.bonus)),
        Some((y("100.00"), y("10.00")))
    );
    assert_eq!(v.business_date, date(TODAY));
    assert_eq!(t.entry_reverses(v.entry).await, Some(r.entry));
    // Every balance exactly as before the top-up: wallet paid and bonus, cash, promotion.
    assert_eq!(t.balances().await, before);
    assert_eq!(t.wallet("H1").await, (y("100.00"), y("10.00")));
    assert_eq!(t.coop_balance("cash:cash").await, y("100.00"));
    assert_eq!(t.coop_balance("promotion").await, y("10.00"));
    t.assert_sound().await;

    // A second void is refused, by anyone, and changes nothing.
    let e = refused_unchanged!(
        t,
        void(&t, r.entry, By::Admin),
        "not_voidable",
        Some("topup")
    );
    assert!(e.to_string().contains("already voided"), "{e}");
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Till(SHOP)),
        "not_voidable",
        Some("topup")
    );
    // An entry that is no top-up, and an unknown one, are not found.
    refused_unchanged!(t, void(&t, v.entry, By::Admin), "not_found", Some("topup"));
    refused_unchanged!(t, void(&t, 999_999, By::Admin), "not_found", Some("topup"));
    t.assert_sound().await;
}

async fn a_void_gives_the_bonus_room_back(backend: Backend) {
    let t = TestLedger::on(backend, TODAY).await;
    // 1000.00 grants the month's whole 100.00 of bonus: another top-up is refused.
    let r = t.top_up("H3", "1000.00", Delivery::Wallet).await.unwrap();
    assert_eq!(r.bonus, y("100.00"));
    refused_unchanged!(
        t,
        t.top_up("H3", "50.00", Delivery::Wallet),
        "cap_exceeded",
        Some("paid")
    );
    void(&t, r.entry, By::Till(SHOP)).await.unwrap();
    // The voided bonus no longer counts: the month's room is whole again.
    let again = t.top_up("H3", "1000.00", Delivery::Wallet).await.unwrap();
    assert_eq!((again.bonus, again.credited), (y("100.00"), y("1100.00")));
    assert_eq!(t.wallet("H3").await, (y("1000.00"), y("100.00")));
    assert_eq!(t.coop_balance("promotion").await, y("100.00"));
    refused_unchanged!(
        t,
        t.top_up("H3", "50.00", Delivery::Wallet),
        "cap_exceeded",
        Some("paid")
    );
    // The same on a voucher top-up: voided, its bonus is room again.
    let t = TestLedger::on(t.backend, TODAY).await;
    let r = t.top_up("H3", "500.00", Delivery::Voucher).await.unwrap();
    t.top_up("H3", "500.00", Delivery::Wallet).await.unwrap();
    refused_unchanged!(
        t,
        t.top_up("H3", "50.00", Delivery::Wallet),
        "cap_exceeded",
        Some("paid")
    );
    void(&t, r.entry, By::Accountant(COOP)).await.unwrap();
    let again = t.top_up("H3", "500.00", Delivery::Wallet).await.unwrap();
    assert_eq!(again.bonus, y("50.00"));
    t.assert_sound().await;
}

async fn a_wallet_top_up_drawn_on_is_not_voided(backend: Backend) {
    let t = TestLedger::on(backend, TODAY).await;
    let r = t.top_up("H1", "100.00", Delivery::Wallet).await.unwrap();
    t.sell(sale_amount(Some("H1"), "10.00", vec![wallet("10.00")]))
        .await
        .unwrap();
    let e = refused_unchanged!(
        t,
        void(&t, r.entry, By::Admin),
        "not_voidable",
        Some("topup")
    );
    assert!(e.to_string().contains("refund what is left"), "{e}");
    // A cash-out after the top-up is a draw on it too.
    let r = t.top_up("H2", "100.00", Delivery::Wallet).await.unwrap();
    t.cash_out("H2", Some("10.00")).await.unwrap();
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Till(SHOP)),
        "not_voidable",
        Some("topup")
    );
    // What was drawn before the top-up does not stand in its way.
    let r = t.top_up("H1", "50.00", Delivery::Wallet).await.unwrap();
    let before = t.wallet("H1").await;
    void(&t, r.entry, By::Till(SHOP)).await.unwrap();
    assert_eq!(
        t.wallet("H1").await,
        (
            before.0.checked_sub(y("50.00")).unwrap(),
            before.1.checked_sub(y("5.00")).unwrap()
        )
    );
    t.assert_sound().await;
}

async fn a_voucher_top_up_void_kills_the_code(backend: Backend) {
    let t = TestLedger::on(backend, TODAY).await;
    let r = t.top_up("H1", "100.00", Delivery::Voucher).await.unwrap();
    let code = r.voucher.expect("a voucher").code;
    assert_eq!(t.coop_balance("cash:cash").await, y("100.00"));
    let v = void(&t, r.entry, By::Till(SHOP)).await.unwrap();
    assert_eq!((v.paid, v.bonus, v.wallet), (y("100.00"), y("10.00"), None));
    let row = t.voucher_row(&code).await;
    assert_eq!(row.status, VoucherStatus::Void);
    assert_eq!(row.balance, Amount::ZERO);
    assert_eq!(t.coop_balance("cash:cash").await, Amount::ZERO);
    assert_eq!(t.coop_balance("promotion").await, Amount::ZERO);
    // The code is refused at the till from now on.
    refused_unchanged!(
        t,
        t.sell(sale_amount(None, "5.00", vec![voucher(&code, "5.00")])),
        "voucher_invalid",
        Some("tenders[0].code")
    );
    t.assert_sound().await;

    // A voucher partly spent is not voided with its top-up; a voided voucher neither.
    let r = t.top_up("H2", "100.00", Delivery::Voucher).await.unwrap();
    let spent = r.voucher.expect("a voucher").code;
    t.sell(sale_amount(None, "5.00", vec![voucher(&spent, "5.00")]))
        .await
        .unwrap();
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Admin),
        "not_voidable",
        Some("topup")
    );
    let r = t.top_up("H2", "50.00", Delivery::Voucher).await.unwrap();
    t.void_voucher(&r.voucher.expect("a voucher").code)
        .await
        .unwrap();
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Admin),
        "not_voidable",
        Some("topup")
    );
    t.assert_sound().await;
}

async fn the_till_voids_today_the_accountant_any_day(backend: Backend) {
    let mut t = TestLedger::on(backend, TODAY).await;
    t.add_cooperative("C2", "T1").await;
    let r = t.top_up("H1", "100.00", Delivery::Wallet).await.unwrap();
    let other = t.top_up("H2", "50.00", Delivery::Wallet).await.unwrap();
    // Another shop's till, another cooperative's accountant: as unknown.
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Till(OTHER_SHOP)),
        "not_found",
        Some("topup")
    );
    refused_unchanged!(
        t,
        void(&t, r.entry, By::Accountant("C2")),
        "not_found",
        Some("topup")
    );
    t.reopen("2026-03-16").await;
    // The next day the till may no longer; the accountant may.
    let e = refused_unchanged!(
        t,
        void(&t, r.entry, By::Till(SHOP)),
        "not_voidable",
        Some("topup")
    );
    assert!(e.to_string().contains("accountant"), "{e}");
    let v = void(&t, r.entry, By::Accountant(COOP)).await.unwrap();
    assert_eq!(v.business_date, date("2026-03-16"));
    assert_eq!(t.wallet("H1").await, (Amount::ZERO, Amount::ZERO));
    // And the operator.
    void(&t, other.entry, By::Admin).await.unwrap();
    assert_eq!(t.wallet("H2").await, (Amount::ZERO, Amount::ZERO));
    t.assert_sound().await;
}

/// The figures of the programme's month `month` summed over its places: (top-ups, households
/// that topped up, credit sold, bonus granted).
async fn programme(t: &TestLedger, month: &str) -> (u64, u64, Amount, Amount) {
    let f = t.app.store.programme_figures().await.expect("figures");
    f.months
        .iter()
        .filter(|m| m.month == month)
        .fold((0, 0, Amount::ZERO, Amount::ZERO), |a, m| {
            (
                a.0 + m.topups,
                a.1 + m.topup_households,
                a.2.checked_add(m.credit_sold).unwrap(),
                a.3.checked_add(m.bonus_granted).unwrap(),
            )
        })
}

async fn reports_net_the_void_out(backend: Backend) {
    let t = TestLedger::on(backend, TODAY).await;
    let store = t.app.store.as_ref();
    let day = date(TODAY);
    t.top_up("H1", "100.00", Delivery::Wallet).await.unwrap();
    let voided = t.top_up("H2", "200.00", Delivery::Wallet).await.unwrap();
    let voucher = t.top_up("H2", "50.00", Delivery::Voucher).await.unwrap();
    assert_eq!(
        programme(&t, "2026-03").await,
        (3, 2, y("350.00"), y("35.00"))
    );
    void(&t, voided.entry, By::Till(SHOP)).await.unwrap();
    // H2 still has a top-up this month (the voucher): still a household that topped up.
    assert_eq!(
        programme(&t, "2026-03").await,
        (2, 2, y("150.00"), y("15.00"))
    );
    void(&t, voucher.entry, By::Till(SHOP)).await.unwrap();
    assert_eq!(
        programme(&t, "2026-03").await,
        (1, 1, y("100.00"), y("10.00"))
    );
    // Topping up again counts H2 once more.
    t.top_up("H2", "50.00", Delivery::Wallet).await.unwrap();
    assert_eq!(
        programme(&t, "2026-03").await,
        (2, 2, y("150.00"), y("15.00"))
    );

    let till = reports::till(store, day, &ShopFilter::Shop(SHOP.into()))
        .await
        .expect("till report")
        .expect("S1");
    let s = &till.shops[0];
    assert_eq!(
        (s.topups.count, s.topups.paid, s.topups.bonus),
        (2, y("150.00"), y("15.00"))
    );
    let cash = s.drawer.iter().find(|d| d.method == "cash").expect("cash");
    assert_eq!((cash.topups, cash.net), (y("150.00"), y("150.00")));
    assert_eq!(t.coop_balance("cash:cash").await, y("150.00"));

    let prepaid = reports::prepaid(store, &t.app.policies, COOP, day, None)
        .await
        .expect("prepaid report")
        .expect("COOP");
    assert_eq!(
        (
            prepaid.wallets.count,
            prepaid.wallets.paid,
            prepaid.wallets.bonus
        ),
        (2, y("150.00"), y("15.00"))
    );
    assert_eq!(prepaid.vouchers.total, Amount::ZERO);
    t.assert_sound().await;
}
