//! The engine's rules against an in-memory [`State`]: no database, microseconds each.

use std::path::PathBuf;

use chrono::{NaiveDate, TimeZone, Utc};

use super::*;
use crate::domain::{
    CoopRef, Delivery, HouseholdRef, PayMethod, Receipt, RefundSale, Sale, ShopRef, Tender, TopUp,
};
use crate::ledger::{chart, GENESIS_HASH};
use crate::money::Amount;
use crate::store::Idempotency;

fn y(s: &str) -> Amount {
    s.parse().expect("an amount")
}

struct World {
    policies: PolicySet,
    keys: KeyRing,
    state: State,
}

const COOP: i64 = 1;
const H1: i64 = 10;

fn world() -> World {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let policies = PolicySet::load_dir(&dir).expect("the shipped policies");
    let mut loaded = Loaded::default();
    let coop = CoopRef {
        id: COOP,
        code: "C1".into(),
    };
    loaded.shops.insert(
        "S1".into(),
        ShopRef {
            id: 2,
            code: "S1".into(),
            coop,
        },
    );
    loaded.households.insert(
        "H1".into(),
        HouseholdRef {
            id: H1,
            code: "H1".into(),
            compound_id: 3,
            compound_code: "K1".into(),
            compound_eligible: true,
            company_id: 4,
            area_dm2: 8_000,
        },
    );
    loaded.bonus.insert((H1, "2026-11".into()), Amount::ZERO);
    let head = Head {
        seq: 0,
        hash: GENESIS_HASH,
        business_date: None,
    };
    let next = NextIds {
        account: 1,
        voucher: 1,
        sale: 1,
    };
    World {
        policies,
        keys: KeyRing::generate(),
        state: State::new(loaded, head, next),
    }
}

impl World {
    fn run(&mut self, commands: Vec<(Command, Option<(&str, &str)>)>) -> Vec<Outcome> {
        let envelopes: Vec<Envelope> = commands
            .into_iter()
            .map(|(command, idem)| Envelope {
                actor: Some(7),
                idempotency: idem.map(|(key, fingerprint)| Idempotency {
                    scope: "till".into(),
                    key: key.into(),
                    fingerprint: fingerprint.into(),
                    raw_fingerprint: None,
                }),
                command,
            })
            .collect();
        let refs: Vec<&Envelope> = envelopes.iter().collect();
        let today = NaiveDate::from_ymd_opt(2026, 11, 16).expect("a date");
        let plan = keys(&refs, &self.keys, today);
        let services = Services {
            policies: &self.policies,
            keys: &self.keys,
            today,
            now: Utc.with_ymd_and_hms(2026, 11, 16, 2, 0, 0).unwrap(),
        };
        execute(&mut self.state, &services, &refs, &plan.drawn)
            .expect("the batch runs")
            .into_iter()
            .map(|o| o.expect("no store failure"))
            .collect()
    }

    fn wallet(&self) -> (Amount, Amount) {
        (
            self.state.balance(&chart::household_wallet_paid(H1, "C1")),
            self.state.balance(&chart::household_wallet_bonus(H1, "C1")),
        )
    }

    /// What the state would write, as a comparable summary.
    fn written(&self) -> (usize, usize, usize, usize, Vec<(i64, i64)>) {
        let e = &self.state.effects;
        (
            e.entries.len(),
            e.topups.len(),
            e.sales.len(),
            e.idempotency.len(),
            e.balances.iter().map(|(k, v)| (*k, *v)).collect(),
        )
    }
}

fn top_up(paid: &str) -> Command {
    Command::TopUp(TopUp {
        shop: "S1".into(),
        household: "H1".into(),
        paid: y(paid),
        method: PayMethod::Cash,
        deliver: Delivery::Wallet,
        bonus: Default::default(),
    })
}

fn wallet_sale(amount: &str) -> Command {
    Command::Sale(Sale {
        shop: "S1".into(),
        household: Some("H1".into()),
        lines: Vec::new(),
        amount: Some(y(amount)),
        tenders: vec![Tender {
            kind: TenderType::Wallet,
            amount: y(amount),
            code: None,
        }],
    })
}

#[test]
fn a_top_up_credits_the_wallet_and_a_refused_one_leaves_no_trace() {
    let mut w = world();
    let out = w.run(vec![(top_up("100.00"), None)]);
    let Ok(Receipt::TopUp(r)) = &out[0].result else {
        panic!("a receipt: {out:?}")
    };
    assert_eq!((r.bonus, r.credited, r.entry), (y("10.00"), y("110.00"), 1));
    assert_eq!(w.wallet(), (y("100.00"), y("10.00")));
    let before = w.written();
    // 10.00 of bonus this month already: 1,000.00 more would grant 100.00, past the 100.00 cap.
    let out = w.run(vec![(top_up("1000.00"), None)]);
    assert_eq!(out[0].result.as_ref().unwrap_err().code(), "cap_exceeded");
    assert_eq!(w.wallet(), (y("100.00"), y("10.00")));
    assert_eq!(w.written(), before);
    assert_eq!(w.state.head().seq, 1);
    assert_eq!(w.state.bonus_in_month(H1, "2026-11").unwrap(), y("10.00"));
}

#[test]
fn a_sale_draws_paid_and_bonus_pro_rata_and_an_overspend_changes_nothing() {
    let mut w = world();
    let out = w.run(vec![
        (top_up("100.00"), None),
        (wallet_sale("55.00"), None),
        (wallet_sale("60.00"), None),
    ]);
    let Ok(Receipt::Sale(sale)) = &out[1].result else {
        panic!("a sale: {out:?}")
    };
    assert_eq!(
        (sale.tenders[0].paid, sale.tenders[0].bonus),
        (Some(y("50.00")), Some(y("5.00")))
    );
    let Err(refused) = &out[2].result else {
        panic!("an overspend refused: {out:?}")
    };
    assert_eq!(refused.code(), "insufficient_funds");
    assert_eq!(w.wallet(), (y("50.00"), y("5.00")));
    assert_eq!(w.state.effects.entries.len(), 2);
    assert_eq!(w.state.effects.sales.len(), 1);
    // Double entry, chained: each entry balances and names the previous one's hash.
    let mut prev = GENESIS_HASH;
    for (i, e) in w.state.effects.entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.postings.iter().map(|(_, fen)| fen).sum::<i64>(), 0);
        prev = e.hash;
    }
}

#[test]
fn a_sale_refunded_in_its_own_batch_gives_the_wallet_back() {
    let mut w = world();
    let out = w.run(vec![
        (top_up("100.00"), None),
        (wallet_sale("22.00"), None),
        (
            Command::RefundSale(RefundSale {
                sale: 1,
                shop: Some("S1".into()),
                cooperative: None,
                amount: Some(y("11.00")),
            }),
            None,
        ),
    ]);
    let Ok(Receipt::SaleRefund(r)) = &out[2].result else {
        panic!("a refund: {out:?}")
    };
    assert_eq!((r.amount, r.remaining), (y("11.00"), y("11.00")));
    assert_eq!(w.wallet(), (y("90.00"), y("9.00")));
    let sale = w.state.sale(1).expect("the sale");
    assert_eq!(sale.refunded, y("11.00"));
    assert_eq!(
        (
            sale.tenders[0].refunded_paid,
            sale.tenders[0].refunded_bonus
        ),
        (y("10.00"), y("1.00"))
    );
    let refunds = super::sale_refunds(&w.state.effects);
    assert_eq!(refunds.get(&1), Some(&(1_100, sale.refunded_cost.fen())));
}

#[test]
fn a_key_used_twice_in_one_batch_replays_and_another_request_under_it_is_refused() {
    let mut w = world();
    let out = w.run(vec![
        (top_up("50.00"), Some(("k1", "f1"))),
        (top_up("50.00"), Some(("k1", "f1"))),
        (top_up("100.00"), Some(("k1", "f2"))),
    ]);
    assert!(!out[0].replayed && out[1].replayed);
    assert_eq!(out[0].result, out[1].result);
    assert_eq!(
        out[2].result.as_ref().unwrap_err().code(),
        "idempotency_key_reused"
    );
    assert_eq!(w.wallet(), (y("50.00"), y("5.00")));
    assert_eq!(w.state.effects.idempotency.len(), 1);
}

#[test]
fn a_voucher_top_up_takes_a_free_serial_and_the_voucher_can_be_spent_in_the_batch() {
    let mut w = world();
    let voucher = Command::TopUp(TopUp {
        shop: "S1".into(),
        household: "H1".into(),
        paid: y("50.00"),
        method: PayMethod::Wechat,
        deliver: Delivery::Voucher,
        bonus: Default::default(),
    });
    let out = w.run(vec![(voucher, None)]);
    let Ok(Receipt::TopUp(r)) = &out[0].result else {
        panic!("a voucher: {out:?}")
    };
    let code = r.voucher.as_ref().expect("a voucher").code.clone();
    let (id, v) = w.state.effects.vouchers[0].clone();
    assert_eq!(w.state.voucher(v.serial).map(|v| v.id), Some(id));
    let spend = Command::Sale(Sale {
        shop: "S1".into(),
        household: None,
        lines: Vec::new(),
        amount: Some(y("55.00")),
        tenders: vec![Tender {
            kind: TenderType::Voucher,
            amount: y("55.00"),
            code: Some(code),
        }],
    });
    let out = w.run(vec![(spend, None)]);
    let Ok(Receipt::Sale(sale)) = &out[0].result else {
        panic!("spent: {out:?}")
    };
    assert_eq!(sale.tenders[0].voucher_balance, Some(Amount::ZERO));
    assert_eq!(w.state.balance(&chart::voucher_paid(id)), Amount::ZERO);
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]

    /// Whatever mix of top-ups, wallet sales and refunds a batch holds: a refused command
    /// changes nothing, the wallet never goes below zero, every entry balances, and the
    /// balance changes the batch would write are exactly the wallet as the state holds it.
    #[test]
    fn refused_commands_leave_no_trace_and_the_effects_match_the_state(
        ops in proptest::collection::vec((0u8..3, 1i64..400), 1..40)
    ) {
        let mut w = world();
        let mut sales = 0i64;
        for (kind, n) in ops {
            let command = match kind {
                0 => top_up(&format!("{}.00", 50 * (n % 5 + 1))),
                1 => wallet_sale(&Amount::from_fen(n * 25).to_string()),
                _ => Command::RefundSale(RefundSale {
                    sale: 1 + n % sales.max(1),
                    shop: None,
                    cooperative: None,
                    amount: Some(Amount::from_fen(n % 100 + 1)),
                }),
            };
            let before = (w.written(), w.wallet(), w.state.head());
            let out = w.run(vec![(command, None)]);
            match &out[0].result {
                Ok(Receipt::Sale(_)) => sales += 1,
                Ok(_) => {}
                Err(_) => proptest::prop_assert_eq!((w.written(), w.wallet(), w.state.head()), before),
            }
            let (paid, bonus) = w.wallet();
            proptest::prop_assert!(!paid.is_negative() && !bonus.is_negative());
        }
        for e in &w.state.effects.entries {
            proptest::prop_assert_eq!(e.postings.iter().map(|(_, fen)| fen).sum::<i64>(), 0);
        }
        let (paid, bonus) = w.wallet();
        let id = |spec| w.state.effects.accounts.iter().find(|(_, s)| *s == spec).map(|(id, _)| id.0);
        let delta = |spec| id(spec).and_then(|i| w.state.effects.balances.get(&i).copied()).unwrap_or(0);
        proptest::prop_assert_eq!(delta(chart::household_wallet_paid(H1, "C1")), paid.fen());
        proptest::prop_assert_eq!(delta(chart::household_wallet_bonus(H1, "C1")), bonus.fen());
    }
}
