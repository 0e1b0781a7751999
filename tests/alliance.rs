//! The alliance's view end to end: a small ledger over three months built through the
//! application, then every figure of the alliance's report checked against figures computed
//! here independently (a model that applies the script's payments and the closes' allocations
//! to each household's bills, oldest first), against the company statements and the month
//! closes of the same months to the fen, and who may read it over HTTP. Every body runs on
//! SQLite and, where a server can be had, PostgreSQL.
//!
//! The script (master data from `common`, plus G1, G2 in grid 第1网格 and G3 in 第2网格 of HX01):
//!
//! | date       | what                                                                       |
//! |------------|----------------------------------------------------------------------------|
//! | 2026-09-05 | HX01 taken over 2026-08-15; bills 2026-09 for K01 and K02; top-ups H1 600,  |
//! |            | G1 100 and 50 (wallet), H2 500 (voucher); sales H1 wallet 110, G1 wallet 20 |
//! |            | and 5, cash 1000; fee payments H1 100, G1 20, H4 30                          |
//! | 2026-10-03 | close 2026-09; H2 pays 60 (its September bill, late); bills 2026-10;        |
//! |            | settlement to K01 5.00; G2 tops up 100, spends 40; 10.00 of the cash sale   |
//! |            | refunded                                                                    |
//! | 2026-11-02 | close 2026-10; G3 pays 30 (its September bill first, late)                  |

mod common;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use common::*;
use hongxin::domain::{
    CloseMonth, CloseReceipt, Command, Delivery, ExchangeVoucher, FeePayment, GenerateBills,
    NewHousehold, NewToken, PayMethod, Receipt, Role, Settlement,
};
use hongxin::fees::statement::Statement;
use hongxin::http::extract::token_hash;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;
use hongxin::reports::alliance::{self, AllianceReport, CompoundMonth};

const ADMIN: &str = "a-admin";
const ALLIANCE: &str = "a-alliance";
const COMPANY: &str = "a-company-k01";
const ACCOUNTANT: &str = "a-accountant";
const CASHIER: &str = "a-cashier";
const RESIDENT: &str = "a-resident-h1";

/// Where each household lives: (code, compound, grid, building).
const PLACES: &[(&str, &str, &str, &str)] = &[
    ("H1", "HX01", "", ""),
    ("H2", "HX01", "", ""),
    ("H3", "HX01", "", ""),
    ("G1", "HX01", "第1网格", "1栋"),
    ("G2", "HX01", "第1网格", "2栋"),
    ("G3", "HX01", "第2网格", "1栋"),
    ("H4", "HX02", "", ""),
    ("H9", "HX11", "", ""),
];

fn place(household: &str) -> (&'static str, &'static str, &'static str) {
    let p = PLACES
        .iter()
        .find(|p| p.0 == household)
        .unwrap_or_else(|| panic!("no place for {household}"));
    (p.1, p.2, p.3)
}

/// What the script did besides bills and closes, in order: the model replays it.
#[derive(Clone, Debug)]
enum Event {
    Bills(&'static str),
    Pay(&'static str, &'static str, &'static str),
    Close(&'static str),
}

/// Top-ups per (compound, month): (count, households, paid, bonus).
type Topups = BTreeMap<(String, String), (u64, Vec<String>, Amount, Amount)>;

struct Built {
    l: TestLedger,
    events: Vec<Event>,
    /// Top-ups per (compound, month): (count, households, paid, bonus).
    topups: Topups,
    closes: BTreeMap<String, CloseReceipt>,
}

async fn pay(l: &TestLedger, household: &str, amount: &str) {
    let r = l
        .run(Command::PayFee(FeePayment {
            household: household.into(),
            amount: y(amount),
            method: PayMethod::Cash,
            reference: format!("pay-{household}-{amount}"),
            company: None,
            shop: None,
        }))
        .await;
    assert!(matches!(r, Ok(Receipt::FeePayment(_))), "{r:?}");
}

async fn bills(l: &TestLedger, month: &str) {
    for company in ["K01", "K02"] {
        let r = l
            .run(Command::GenerateBills(GenerateBills {
                company: company.into(),
                month: month.into(),
            }))
            .await;
        assert!(matches!(r, Ok(Receipt::Bills(_))), "{r:?}");
    }
}

async fn close(l: &TestLedger, month: &str) -> CloseReceipt {
    match l
        .run(Command::CloseMonth(CloseMonth {
            cooperative: COOP.into(),
            month: month.into(),
            dry_run: false,
            estimate: false,
        }))
        .await
    {
        Ok(Receipt::MonthClose(r)) => r,
        other => panic!("close {month}: {other:?}"),
    }
}

async fn build(backend: Backend) -> Built {
    let mut l = TestLedger::on(backend, "2026-09-05").await;
    for (code, grid, building, area) in [
        ("G1", "第1网格", "1栋", "80.00"),
        ("G2", "第1网格", "2栋", "90.00"),
        ("G3", "第2网格", "1栋", "100.00"),
    ] {
        let r = l
            .run(Command::CreateHousehold(NewHousehold {
                code: code.into(),
                compound: "HX01".into(),
                area_m2: qty(area),
                name: Some("王**".into()),
                building: Some(building.into()),
                grid: Some(grid.into()),
            }))
            .await;
        assert!(matches!(r, Ok(Receipt::Created(_))), "{r:?}");
    }
    let r = l
        .run(Command::SetCompoundTakeover {
            compound: "HX01".into(),
            taken_over_on: Some(date("2026-08-15")),
        })
        .await;
    assert!(matches!(r, Ok(Receipt::Created(_))), "{r:?}");

    let mut topups = Topups::new();
    let mut topup = |household: &str, month: &str, paid: Amount, bonus: Amount| {
        let (compound, _, _) = place(household);
        let t = topups
            .entry((compound.to_string(), month.to_string()))
            .or_insert((0, Vec::new(), Amount::ZERO, Amount::ZERO));
        t.0 += 1;
        if !t.1.iter().any(|h| h == household) {
            t.1.push(household.to_string());
        }
        t.2 = t.2.checked_add(paid).unwrap();
        t.3 = t.3.checked_add(bonus).unwrap();
    };

    // September.
    let mut events = vec![Event::Bills("2026-09")];
    bills(&l, "2026-09").await;
    for (household, paid, deliver) in [
        ("H1", "600", Delivery::Wallet),
        ("G1", "100", Delivery::Wallet),
        ("G1", "50", Delivery::Wallet),
        ("H2", "500", Delivery::Voucher),
    ] {
        let r = l.top_up(household, paid, deliver).await.expect("top-up");
        topup(household, "2026-09", r.paid, r.bonus);
    }
    for (household, amount) in [("H1", "110"), ("G1", "20"), ("G1", "5")] {
        l.sell(sale_amount(Some(household), amount, vec![wallet(amount)]))
            .await
            .expect("wallet sale");
    }
    let cash_sale = l
        .sell(sale_amount(None, "1000", vec![cash("1000")]))
        .await
        .expect("cash sale");
    for (household, amount) in [("H1", "100"), ("G1", "20"), ("H4", "30")] {
        pay(&l, household, amount).await;
        events.push(Event::Pay(household, amount, "2026-09"));
    }

    // October.
    l.reopen("2026-10-03").await;
    let sep = close(&l, "2026-09").await;
    events.push(Event::Close("2026-09"));
    pay(&l, "H2", "60").await;
    events.push(Event::Pay("H2", "60", "2026-10"));
    bills(&l, "2026-10").await;
    events.push(Event::Bills("2026-10"));
    let r = l
        .run(Command::Settle(Settlement {
            cooperative: COOP.into(),
            company: "K01".into(),
            amount: y("5.00"),
            reference: "BANK-1".into(),
        }))
        .await;
    assert!(matches!(r, Ok(Receipt::Settlement(_))), "{r:?}");
    let r = l
        .top_up("G2", "100", Delivery::Wallet)
        .await
        .expect("top-up");
    topup("G2", "2026-10", r.paid, r.bonus);
    l.sell(sale_amount(Some("G2"), "40", vec![wallet("40")]))
        .await
        .expect("wallet sale");
    l.refund_sale(cash_sale.sale, Some(SHOP), Some("10.00"))
        .await
        .expect("refund");

    // November.
    l.reopen("2026-11-02").await;
    let oct = close(&l, "2026-10").await;
    events.push(Event::Close("2026-10"));
    pay(&l, "G3", "30").await;
    events.push(Event::Pay("G3", "30", "2026-11"));

    Built {
        l,
        events,
        topups,
        closes: BTreeMap::from([("2026-09".into(), sep), ("2026-10".into(), oct)]),
    }
}

/// The independent model's figures per (compound, grid, building, month).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Expected {
    bills: u64,
    billed: i64,
    in_month: i64,
    late: i64,
    paid: i64,
    allocated: i64,
}

/// Replays the script on each household's bills: each credit settles the oldest unpaid bill
/// first; money beyond the bills is paid ahead and settles the next bill as it is made. Bill
/// amounts and each close's allocation per household come from the company statements.
fn model(
    events: &[Event],
    statements: &BTreeMap<(String, String), Statement>,
) -> BTreeMap<(String, String, String, String), Expected> {
    let line = |household: &str, month: &str| {
        let (compound, _, _) = place(household);
        let company = if compound == "HX02" { "K02" } else { "K01" };
        statements[&(company.to_string(), month.to_string())]
            .households
            .iter()
            .find(|h| h.household == household)
            .cloned()
            .unwrap_or_else(|| panic!("{household} on {company}'s {month} statement"))
    };
    let mut out: BTreeMap<(String, String, String, String), Expected> = BTreeMap::new();
    let key = |household: &str, month: &str| {
        let (c, g, b) = place(household);
        (
            c.to_string(),
            g.to_string(),
            b.to_string(),
            month.to_string(),
        )
    };
    // Per household: open bills (month, unpaid) oldest first, and money paid ahead.
    let mut open: BTreeMap<&str, Vec<(String, i64)>> = BTreeMap::new();
    let mut ahead: BTreeMap<&str, i64> = BTreeMap::new();
    let apply = |out: &mut BTreeMap<_, Expected>,
                 open: &mut BTreeMap<&str, Vec<(String, i64)>>,
                 ahead: &mut BTreeMap<&str, i64>,
                 household: &'static str,
                 mut credit: i64,
                 service: &str| {
        let bills = open.entry(household).or_default();
        for (month, unpaid) in bills.iter_mut() {
            let take = credit.min(*unpaid);
            if take == 0 {
                continue;
            }
            *unpaid -= take;
            credit -= take;
            let e = out.entry(key(household, month)).or_default();
            if service <= month.as_str() {
                e.in_month += take;
            } else {
                e.late += take;
            }
        }
        bills.retain(|b| b.1 > 0);
        *ahead.entry(household).or_default() += credit;
    };
    for event in events {
        match event {
            Event::Bills(month) => {
                for (household, _, _, _) in PLACES {
                    let billed = line(household, month).billed.fen();
                    if billed == 0 {
                        continue;
                    }
                    let e = out.entry(key(household, month)).or_default();
                    e.bills += 1;
                    e.billed += billed;
                    let prepaid = ahead.entry(household).or_default();
                    let settled = billed.min(*prepaid);
                    *prepaid -= settled;
                    e.in_month += settled;
                    if billed > settled {
                        open.entry(household)
                            .or_default()
                            .push((month.to_string(), billed - settled));
                    }
                }
            }
            Event::Pay(household, amount, month) => {
                let fen = y(amount).fen();
                out.entry(key(household, month)).or_default().paid += fen;
                apply(&mut out, &mut open, &mut ahead, household, fen, month);
            }
            Event::Close(month) => {
                for (household, _, _, _) in PLACES {
                    let allocated = line(household, month).allocated.fen();
                    if allocated > 0 {
                        out.entry(key(household, month)).or_default().allocated += allocated;
                        apply(&mut out, &mut open, &mut ahead, household, allocated, month);
                    }
                }
            }
        }
    }
    out
}

async fn statements(l: &TestLedger) -> BTreeMap<(String, String), Statement> {
    let mut out = BTreeMap::new();
    for company in ["K01", "K02"] {
        for month in ["2026-09", "2026-10", "2026-11"] {
            let s = l
                .app
                .store
                .statement(company, month)
                .await
                .expect("statement")
                .expect("a known company");
            assert!(s.ties_out, "{company} {month}");
            out.insert((company.to_string(), month.to_string()), s);
        }
    }
    out
}

fn month_of<'a>(series: &'a [CompoundMonth], month: &str) -> &'a CompoundMonth {
    series
        .iter()
        .find(|m| m.month == month)
        .unwrap_or_else(|| panic!("{month} in the series"))
}

async fn report(l: &TestLedger, month: Option<&str>) -> AllianceReport {
    alliance::alliance(
        l.app.store.as_ref(),
        &l.app.policies,
        date("2026-11-02"),
        month,
    )
    .await
    .expect("the alliance report")
}

// ---------------------------------------------------------------------------------------------
// The figures
// ---------------------------------------------------------------------------------------------

async fn fee_figures_agree_with_the_model_and_the_statements(backend: Backend) {
    let built = build(backend).await;
    let l = &built.l;
    let statements = statements(l).await;
    let expected = model(&built.events, &statements);
    let r = report(l, None).await;
    assert_eq!(r.months, ["2026-09", "2026-10", "2026-11"]);
    assert_eq!(r.month, "2026-11");
    assert_eq!(
        (r.households, r.holders),
        (8, 4),
        "H1, G1, G2 wallets; H2's voucher"
    );

    // Per compound and month: the model summed over the compound's places.
    for c in &r.compounds {
        for m in &c.months {
            let mut want = Expected::default();
            for ((compound, _, _, month), e) in &expected {
                if compound == &c.compound && month == &m.month {
                    want.bills += e.bills;
                    want.billed += e.billed;
                    want.in_month += e.in_month;
                    want.late += e.late;
                    want.paid += e.paid;
                    want.allocated += e.allocated;
                }
            }
            let f = &m.fees;
            let got = Expected {
                bills: f.households_billed,
                billed: f.billed.fen(),
                in_month: f.collected_in_month.fen(),
                late: f.collected_late.fen(),
                paid: f.paid.fen(),
                allocated: f.allocated.fen(),
            };
            assert_eq!(got, want, "{} {}", c.compound, m.month);
            assert_eq!(
                f.outstanding.fen(),
                want.billed - want.in_month - want.late,
                "{} {}",
                c.compound,
                m.month
            );
        }
    }
    // Something of each kind happened: the test would not notice a figure stuck at zero.
    let hx01 = r.compounds.iter().find(|c| c.compound == "HX01").unwrap();
    let sep = month_of(&hx01.months, "2026-09");
    assert!(sep.fees.collected_late.is_positive(), "{sep:?}");
    assert!(sep.fees.collected_in_month.is_positive(), "{sep:?}");
    assert!(sep.fees.allocated.is_positive(), "{sep:?}");
    assert!(sep.fees.outstanding.is_positive(), "{sep:?}");
    assert_eq!(sep.since_takeover, Some(1));
    assert_eq!(month_of(&hx01.months, "2026-11").since_takeover, Some(3));
    assert_eq!(hx01.taken_over_on, Some(date("2026-08-15")));
    let oct = month_of(&hx01.months, "2026-10");
    assert!(
        oct.fees.collected_in_month.fen() >= 0 && oct.fees.households_billed == 6,
        "{oct:?}"
    );

    // The statements, per compound and month, to the fen: billed, paid, allocated, closing.
    for ((company, month), s) in &statements {
        for ct in &s.compounds {
            let c = r
                .compounds
                .iter()
                .find(|c| c.compound == ct.compound)
                .unwrap();
            assert_eq!(&c.company, company);
            let Some(m) = c.months.iter().find(|m| &m.month == month) else {
                assert_eq!(ct.totals.billed, Amount::ZERO);
                assert_eq!(ct.totals.paid, Amount::ZERO);
                assert_eq!(ct.totals.allocated, Amount::ZERO);
                continue;
            };
            assert_eq!(
                m.fees.billed, ct.totals.billed,
                "{company} {month} {}",
                ct.compound
            );
            assert_eq!(
                m.fees.paid, ct.totals.paid,
                "{company} {month} {}",
                ct.compound
            );
            assert_eq!(m.fees.allocated, ct.totals.allocated, "{company} {month}");
            assert_eq!(m.fees.balance, ct.totals.closing, "{company} {month}");
            let billed_lines = s
                .households
                .iter()
                .filter(|h| h.compound == ct.compound && h.billed.is_positive())
                .count() as u64;
            assert_eq!(m.fees.households_billed, billed_lines);
        }
        // The company's line: billed and paid, and what the cooperatives allocated and settled.
        let k = r.companies.iter().find(|k| &k.company == company).unwrap();
        let km = k.months.iter().find(|m| &m.month == month);
        let allocated: i64 = s.cooperatives.iter().map(|c| c.allocated.fen()).sum();
        let settled: i64 = s.cooperatives.iter().map(|c| c.settled.fen()).sum();
        let outstanding: i64 = s.cooperatives.iter().map(|c| c.outstanding.fen()).sum();
        assert_eq!(km.map_or(0, |m| m.billed.fen()), s.totals.billed.fen());
        assert_eq!(km.map_or(0, |m| m.paid.fen()), s.totals.paid.fen());
        assert_eq!(km.map_or(0, |m| m.allocations_received.fen()), allocated);
        assert_eq!(km.map_or(0, |m| m.settlements_received.fen()), settled);
        if let Some(m) = km {
            assert_eq!(m.outstanding.fen(), outstanding, "{company} {month}");
        }
    }
    let k01 = r.companies.iter().find(|k| k.company == "K01").unwrap();
    assert_eq!(k01.settlements_received, y("5.00"));
    assert!(k01.allocations_received.is_positive());

    // Arrears: what the open bills still owe, by company, aged at the report date.
    for k in &r.companies {
        let open = l
            .app
            .store
            .company_open_bills(&k.company)
            .await
            .expect("open bills")
            .expect("known company");
        let owed: i64 = open.iter().map(|(_, _, a, s)| a.fen() - s.fen()).sum();
        assert_eq!(k.arrears.total.fen(), owed, "{}", k.company);
        // 2026-09-01 and 2026-10-01 are 62 and 32 days before 2026-11-02: both 31-90.
        assert!(open.iter().all(|b| b.1 == "2026-09" || b.1 == "2026-10"));
        assert!(owed > 0);
        assert_eq!(k.arrears.days_31_90.fen(), owed, "{}", k.company);
        assert_eq!(k.arrears.days_0_30, Amount::ZERO);
        assert_eq!(k.arrears.days_91_180, Amount::ZERO);
        assert_eq!(k.arrears.over_180, Amount::ZERO);
    }

    // By grid and building, for the month asked.
    let r = report(l, Some("2026-09")).await;
    for g in &r.grids {
        let want: Vec<&Expected> = expected
            .iter()
            .filter(|((c, grid, _, m), _)| c == &g.compound && grid == &g.grid && m == "2026-09")
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            g.fees.billed.fen(),
            want.iter().map(|e| e.billed).sum::<i64>(),
            "{g:?}"
        );
        assert_eq!(
            g.fees.collected_late.fen(),
            want.iter().map(|e| e.late).sum::<i64>()
        );
        assert_eq!(g.fees.paid.fen(), want.iter().map(|e| e.paid).sum::<i64>());
    }
    let grid1 = r
        .grids
        .iter()
        .find(|g| g.compound == "HX01" && g.grid == "第1网格")
        .expect("grid 1");
    assert_eq!(
        (grid1.households, grid1.holders),
        (2, 2),
        "G1 and G2 hold credit"
    );
    assert_eq!(
        grid1.participation.topup_households, 1,
        "G1 twice in September"
    );
    assert_eq!(grid1.participation.topups, 2);
    assert_eq!(grid1.participation.credit_spent, y("25.00"));
    let b = r
        .buildings
        .iter()
        .find(|b| b.grid == "第2网格" && b.building.as_deref() == Some("1栋"))
        .expect("G3's building");
    assert_eq!(b.households, 1);
    let g3_sep = &expected[&(
        "HX01".to_string(),
        "第2网格".to_string(),
        "1栋".to_string(),
        "2026-09".to_string(),
    )];
    assert_eq!(b.fees.billed.fen(), g3_sep.billed);
    assert_eq!(b.fees.collected_late.fen(), g3_sep.late);
    assert!(g3_sep.late > 0, "G3's November payment went to September");
    // The grid lines of a compound add up to the compound's month.
    let hx01 = r.compounds.iter().find(|c| c.compound == "HX01").unwrap();
    let sum: i64 = r
        .grids
        .iter()
        .filter(|g| g.compound == "HX01")
        .map(|g| g.fees.billed.fen())
        .sum();
    assert_eq!(sum, month_of(&hx01.months, "2026-09").fees.billed.fen());
}

async fn participation_and_cooperative_figures_agree_with_the_closes(backend: Backend) {
    let built = build(backend).await;
    // verify recomputes the maintained figures from the ledger, and they hold.
    let checked = built.l.app.store.verify().await.expect("verify");
    assert!(checked.ok(), "{checked:?}");
    let r = report(&built.l, None).await;

    for ((compound, month), (count, households, paid, bonus)) in &built.topups {
        let c = r
            .compounds
            .iter()
            .find(|c| &c.compound == compound)
            .unwrap();
        let p = &month_of(&c.months, month).participation;
        assert_eq!(p.topups, *count, "{compound} {month}");
        assert_eq!(
            p.topup_households,
            households.len() as u64,
            "{compound} {month}"
        );
        assert_eq!(p.credit_sold, *paid, "{compound} {month}");
        assert_eq!(p.bonus_granted, *bonus, "{compound} {month}");
    }
    let hx01 = r.compounds.iter().find(|c| c.compound == "HX01").unwrap();
    assert_eq!(hx01.households, 6);
    assert_eq!(hx01.holders, 4);
    assert_eq!(
        hx01.holder_share.map(|x| x.0.to_string()),
        Some("0.6667".into())
    );
    let sep = &month_of(&hx01.months, "2026-09").participation;
    assert_eq!(sep.topup_households, 3, "H1, G1 (twice), H2");
    assert_eq!(
        sep.topup_share.map(|x| x.0.to_string()),
        Some("0.5000".into())
    );
    assert_eq!(sep.credit_spent, y("135.00"));
    assert_eq!(sep.spend_households, 2, "H1, and G1 twice");
    let oct = &month_of(&hx01.months, "2026-10").participation;
    assert_eq!((oct.topup_households, oct.spend_households), (1, 1));
    assert_eq!(oct.credit_spent, y("40.00"));

    // The cooperative: credit and cash sales add up to the close's sales, month by month.
    let coop = r
        .cooperatives
        .iter()
        .find(|c| c.cooperative == COOP)
        .unwrap();
    for (month, credit, cash) in [
        ("2026-09", "135.00", "1000.00"),
        ("2026-10", "40.00", "-10.00"),
    ] {
        let m = coop.months.iter().find(|m| m.month == month).unwrap();
        assert_eq!(
            (m.credit_sales, m.cash_sales),
            (y(credit), y(cash)),
            "{month}"
        );
        let receipt = &built.closes[month];
        let close = m.close.as_ref().expect("closed");
        assert_eq!(m.sales, receipt.sales, "{month}");
        assert_eq!(close.sales, receipt.sales);
        assert_eq!(close.margin.fen(), receipt.sales.fen() - receipt.cogs.fen());
        assert_eq!(close.profit, receipt.profit);
        assert_eq!(close.pool, receipt.pool);
        assert_eq!(close.reserve, receipt.reserve);
        assert_eq!(close.loss_carried_out, receipt.loss_carried_out);
        // What the close allocated reached the compounds' fees for that month.
        let allocated: i64 = r
            .compounds
            .iter()
            .filter_map(|c| c.months.iter().find(|x| x.month == month))
            .map(|x| x.fees.allocated.fen())
            .sum();
        assert_eq!(allocated, receipt.allocated.fen(), "{month}");
    }
    // Prepaid now, as the cooperative's own report has it.
    let own = hongxin::reports::prepaid(
        built.l.app.store.as_ref(),
        &built.l.app.policies,
        COOP,
        date("2026-11-02"),
        None,
    )
    .await
    .expect("prepaid")
    .expect("known cooperative");
    assert_eq!(coop.prepaid.paid, own.total.paid);
    assert_eq!(coop.prepaid.bonus, own.total.bonus);
    assert_eq!(coop.prepaid.wallets, own.wallets.count);
    assert_eq!(
        coop.prepaid.vouchers,
        own.vouchers.count + own.expired_vouchers.count
    );

    // The summary is the report's month, and the month before for the trend.
    let s = alliance::summary(&report(&built.l, Some("2026-10")).await);
    assert_eq!(s.month, "2026-10");
    let totals_oct = month_of(&r.totals, "2026-10");
    assert_eq!(&s.totals, totals_oct);
    assert_eq!(s.previous.as_ref(), Some(month_of(&r.totals, "2026-09")));
    assert_eq!(s.compounds.len(), 3);
    let billed: i64 = r
        .compounds
        .iter()
        .map(|c| {
            c.months
                .iter()
                .find(|m| m.month == "2026-10")
                .map_or(0, |m| m.fees.billed.fen())
        })
        .sum();
    assert_eq!(s.totals.fees.billed.fen(), billed);
}

/// The statements at the end of migration 0015 that fill the new tables from what a database
/// already held, for this backend.
fn backfill_sql(backend: Backend) -> String {
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!(
        "{}/migrations/{dir}/0015_alliance.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("the migration");
    let (_, backfill) = text
        .split_once("-- What was written before these tables existed")
        .expect("the backfill part");
    // The rest of the marker's comment line stays a comment.
    format!("--{backfill}")
}

async fn exec(l: &TestLedger, sql: &str) {
    use sqlx::Connection;
    match l.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&l.settings.database)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&l.settings.database)
                .await
                .expect("connect");
            sqlx::raw_sql(sql).execute(&mut c).await.expect(sql);
        }
    }
}

/// Per compound and month, the maintained figures with the collected split summed.
fn by_compound(f: &hongxin::store::ProgrammeFigures) -> BTreeMap<(String, String), [i64; 11]> {
    let mut out: BTreeMap<(String, String), [i64; 11]> = BTreeMap::new();
    for m in &f.months {
        let slot = out
            .entry((m.compound.clone(), m.month.clone()))
            .or_default();
        let add = [
            m.bills as i64,
            m.billed.fen(),
            m.collected_in_month.fen() + m.collected_late.fen(),
            m.paid.fen(),
            m.allocated.fen(),
            m.topups as i64,
            m.topup_households as i64,
            m.credit_sold.fen(),
            m.bonus_granted.fen(),
            m.credit_spent.fen(),
            m.spend_households as i64,
        ];
        for (s, a) in slot.iter_mut().zip(add) {
            *s += a;
        }
    }
    out
}

/// A database written before migration 0015 gets the same figures from its backfill as the
/// write path would have kept (the split of collected money aside, which it cannot know).
async fn the_migration_fills_the_figures_of_an_existing_ledger(backend: Backend) {
    let built = build(backend).await;
    let l = &built.l;
    let kept = l.app.store.programme_figures().await.expect("figures");
    // As the database was before the migration: no grids, no figures.
    exec(
        l,
        "UPDATE households SET grid = NULL, building = NULL;
         DELETE FROM programme_months; DELETE FROM coop_months;",
    )
    .await;
    assert!(l
        .app
        .store
        .programme_figures()
        .await
        .unwrap()
        .months
        .is_empty());
    exec(l, &backfill_sql(backend)).await;
    let filled = l.app.store.programme_figures().await.expect("figures");
    assert_eq!(by_compound(&filled), by_compound(&kept));
    assert!(filled
        .months
        .iter()
        .all(|m| m.grid.is_empty() && m.building.is_empty()));
    assert!(filled
        .months
        .iter()
        .all(|m| m.collected_late == Amount::ZERO));
    assert_eq!(filled.coop_months, kept.coop_months);
    assert!(!kept.coop_months.is_empty() && !kept.months.is_empty());
    let checked = l.app.store.verify().await.expect("verify");
    assert!(checked.ok(), "{checked:?}");
}

// ---------------------------------------------------------------------------------------------
// Who may read it, and what it shows
// ---------------------------------------------------------------------------------------------

async fn serve(l: &TestLedger) -> (Running, String) {
    for (secret, role, scope) in [
        (ADMIN, Role::Admin, None),
        (ALLIANCE, Role::Alliance, None),
        (COMPANY, Role::Company, Some("K01")),
        (ACCOUNTANT, Role::CoopAccountant, Some(COOP)),
        (CASHIER, Role::Cashier, Some(SHOP)),
        (RESIDENT, Role::Resident, Some("H1")),
    ] {
        let r = l
            .run(Command::CreateToken(NewToken {
                parent: None,
                hash: token_hash(secret),
                role,
                scope: scope.map(str::to_string),
                label: None,
                expires_at: None,
            }))
            .await;
        assert!(matches!(r, Ok(Receipt::Created(_))), "{secret}: {r:?}");
    }
    let running = Running::start(
        AppState::new(l.app.clone(), HttpConfig::default()),
        "127.0.0.1:0",
    )
    .await
    .expect("serve on port 0");
    let base = format!("http://{}", running.addr);
    (running, base)
}

async fn call(
    base: &str,
    method: reqwest::Method,
    token: Option<&str>,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req = req.json(&b).header("Idempotency-Key", format!("k-{n}"));
    }
    let response = req.send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (
        status,
        content_type,
        response.bytes().await.expect("body").to_vec(),
    )
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

async fn the_alliance_reads_everything_writes_nothing_and_sees_no_one(backend: Backend) {
    let built = build(backend).await;
    let l = &built.l;
    let (running, base) = serve(l).await;
    let get = reqwest::Method::GET;

    // The report, as the store gives it.
    let (status, _, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/alliance/report",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let want = serde_json::to_value(report(l, None).await).unwrap();
    assert_eq!(json_of(&body), want);
    // No household codes, no names: counts and sums only.
    let text = String::from_utf8(body).unwrap();
    for private in ["\"H1\"", "\"G1\"", "王", "household\":"] {
        assert!(
            !text.contains(private),
            "{private} in the alliance's report"
        );
    }
    let (status, _, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/alliance/summary?month=2026-10",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["month"], json!("2026-10"));
    assert!(!String::from_utf8(body).unwrap().contains("王"));

    // CSV: one table a file, the same figures.
    let (status, content_type, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/alliance/report?format=csv&table=cooperatives",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let csv = String::from_utf8(body).unwrap();
    assert!(csv.starts_with("\u{feff}合作社 Cooperative,"), "{csv}");
    assert!(csv.contains("\nCOOP,2026-10,40.00,-10.00,30.00,"), "{csv}");
    let (status, _, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/alliance/report?format=csv",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(body).unwrap();
    assert_eq!(
        csv.lines().count(),
        1 + 3 + 2 + 2,
        "HX01: 3 months, HX02: 2, HX11: 2\n{csv}"
    );
    assert!(!csv.contains("G1") && !csv.contains("王"));
    // XLSX: a workbook.
    let (status, content_type, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/alliance/report?format=xlsx",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.contains("spreadsheetml"), "{content_type}");
    assert!(body.starts_with(b"PK"), "a zip file");

    // Bad queries say which field.
    for (path, field) in [
        ("/v1/alliance/report?format=pdf", "format"),
        ("/v1/alliance/report?table=households&format=csv", "table"),
        ("/v1/alliance/report?month=2026-13", "month"),
        ("/v1/alliance/summary?month=soon", "month"),
    ] {
        let (status, _, body) = call(&base, get.clone(), Some(ALLIANCE), path, None).await;
        assert_eq!(status.as_u16(), 422, "{path}");
        let body = json_of(&body);
        assert!(
            body["field"] == json!(field) || body["detail"].as_str().unwrap_or("").contains(field),
            "{path}: {body}"
        );
    }

    // The alliance reads the cooperative's prepaid report too (no personal data in it).
    let (status, _, body) = call(
        &base,
        get.clone(),
        Some(ALLIANCE),
        "/v1/reports/prepaid?cooperative=COOP",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // …but no household, statement, till report or audit.
    for path in [
        "/v1/households/H1",
        "/v1/households/H1/history",
        "/v1/companies/K01/statements/2026-10",
        "/v1/reports/till?date=2026-11-02",
        "/v1/audit/head",
    ] {
        let (status, _, body) = call(&base, get.clone(), Some(ALLIANCE), path, None).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }

    // It writes nothing: every write is refused, and the journal and balances stay as they were.
    let before = l.snapshot().await;
    let post = reqwest::Method::POST;
    for (method, path, body) in [
        (
            post.clone(),
            "/v1/topups",
            json!({"household": "H1", "paid": "50", "method": "cash", "deliver": "wallet"}),
        ),
        (
            post.clone(),
            "/v1/sales",
            json!({"amount": "5", "tenders": [{"type": "cash", "amount": "5"}]}),
        ),
        (post.clone(), "/v1/fees/bills", json!({"month": "2026-11"})),
        (
            post.clone(),
            "/v1/fees/payments",
            json!({"household": "H1", "amount": "5", "method": "cash", "reference": "x"}),
        ),
        (post.clone(), "/v1/months/2026-10/close", json!({})),
        (
            post.clone(),
            "/v1/settlements",
            json!({"company": "K01", "amount": "1", "reference": "x"}),
        ),
        (
            post.clone(),
            "/v1/expenses",
            json!({"category": "rent", "amount": "1", "date": "2026-11-02"}),
        ),
        (
            post.clone(),
            "/v1/compounds",
            json!({"code": "HX99", "name": "x", "company": "K01", "eligible": true}),
        ),
        (
            post.clone(),
            "/v1/households",
            json!({"code": "Z1", "compound": "HX01", "area_m2": "50"}),
        ),
        (
            reqwest::Method::PUT,
            "/v1/compounds/HX01/takeover",
            json!({"taken_over_on": "2026-01-01"}),
        ),
    ] {
        let (status, _, body) = call(&base, method, Some(ALLIANCE), path, Some(body)).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(l.snapshot().await, before);
    assert_eq!(
        report(l, None).await.compounds[0].taken_over_on,
        Some(date("2026-08-15"))
    );

    // Only the alliance and the admin read the alliance's figures.
    for token in [COMPANY, ACCOUNTANT, CASHIER, RESIDENT] {
        let (status, _, _) =
            call(&base, get.clone(), Some(token), "/v1/alliance/report", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}");
    }
    let (status, _, _) = call(&base, get.clone(), None, "/v1/alliance/report", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&base, get.clone(), Some(ADMIN), "/v1/alliance/report", None).await;
    assert_eq!(status, StatusCode::OK);

    // The admin sets a takeover date (and clears it); a bad one names the field.
    let put = reqwest::Method::PUT;
    let (status, _, body) = call(
        &base,
        put.clone(),
        Some(ADMIN),
        "/v1/compounds/HX02/takeover",
        Some(json!({"taken_over_on": "2026-10-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let hx02 = report(l, None)
        .await
        .compounds
        .into_iter()
        .find(|c| c.compound == "HX02")
        .unwrap();
    assert_eq!(hx02.taken_over_on, Some(date("2026-10-01")));
    assert_eq!(month_of(&hx02.months, "2026-09").since_takeover, Some(-1));
    let (status, _, body) = call(
        &base,
        put.clone(),
        Some(ADMIN),
        "/v1/compounds/HX02/takeover",
        Some(json!({"taken_over_on": "2026-02-30"})),
    )
    .await;
    assert_eq!(status.as_u16(), 422);
    assert_eq!(
        json_of(&body)["field"],
        json!("taken_over_on"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = call(
        &base,
        put.clone(),
        Some(ADMIN),
        "/v1/compounds/NOPE/takeover",
        Some(json!({"taken_over_on": null})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(
        &base,
        put.clone(),
        Some(ADMIN),
        "/v1/compounds/HX02/takeover",
        Some(json!({"taken_over_on": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Clearing is said with null: an empty object is refused, naming the field, as the
    // OpenAPI document says (the field is required there).
    let (status, _, body) = call(
        &base,
        put.clone(),
        Some(ADMIN),
        "/v1/compounds/HX02/takeover",
        Some(json!({})),
    )
    .await;
    assert_eq!(status.as_u16(), 422);
    assert_eq!(json_of(&body)["field"], json!("taken_over_on"));
    let hx02 = report(l, None)
        .await
        .compounds
        .into_iter()
        .find(|c| c.compound == "HX02")
        .unwrap();
    assert_eq!(hx02.taken_over_on, None);

    // An admin adds a household with its building and grid; a blank grid names the field.
    let post = reqwest::Method::POST;
    let (status, _, body) = call(
        &base,
        post.clone(),
        Some(ADMIN),
        "/v1/households",
        Some(json!({"code": "Z9", "compound": "HX02", "area_m2": "50", "grid": "第3网格", "building": "9栋"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, body) = call(
        &base,
        post,
        Some(ADMIN),
        "/v1/households",
        Some(json!({"code": "Z8", "compound": "HX02", "area_m2": "50", "grid": " "})),
    )
    .await;
    assert_eq!(status.as_u16(), 422);
    assert_eq!(json_of(&body)["field"], json!("grid"));
    let (_, _, body) = call(&base, get.clone(), Some(ADMIN), "/v1/households/Z9", None).await;
    let z9 = json_of(&body);
    assert_eq!(
        (z9["grid"].clone(), z9["building"].clone()),
        (json!("第3网格"), json!("9栋"))
    );
    let places = report(l, None).await.grids;
    let grid3 = places
        .iter()
        .find(|g| g.compound == "HX02" && g.grid == "第3网格")
        .expect("the new grid");
    assert_eq!((grid3.households, grid3.holders), (1, 0));

    // Households carry their building and grid in the API.
    let (status, _, body) = call(&base, get.clone(), Some(ADMIN), "/v1/households/G1", None).await;
    assert_eq!(status, StatusCode::OK);
    let g1 = json_of(&body);
    assert_eq!(
        (g1["grid"].clone(), g1["building"].clone()),
        (json!("第1网格"), json!("1栋"))
    );

    // Both paths are in the served OpenAPI document.
    let (_, _, doc) = call(&base, get, None, "/openapi.json", None).await;
    let doc = json_of(&doc);
    for (path, method) in [
        ("/v1/alliance/report", "get"),
        ("/v1/alliance/summary", "get"),
        ("/v1/compounds/{compound}/takeover", "put"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path}");
    }
    running.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------------
// The demo and the command line
// ---------------------------------------------------------------------------------------------

fn hongxin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hongxin"))
        .current_dir(dir)
        .env_remove("HONGXIN_DATABASE")
        .env_remove("HONGXIN_KEY_FILE")
        .env_remove("HONGXIN_CONFIG")
        .env_remove("HONGXIN_POLICIES")
        .env("HONGXIN_TODAY", "2026-11-20")
        .args(["--policies", &repo_policies().display().to_string()])
        .args(["--database", "sqlite://demo.db"])
        .args(args)
        .output()
        .expect("run hongxin")
}

/// The demo fills grids, buildings and takeover dates and prints an alliance token; the admin
/// sets and clears a takeover date from the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_grids_and_takeovers_and_the_command_line_sets_them() {
    let dir = tempfile::tempdir().unwrap();
    let demo = hongxin(dir.path(), &["demo", "--households", "400", "--weeks", "5"]);
    let out = String::from_utf8_lossy(&demo.stdout).into_owned();
    assert!(
        demo.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("alliance") && l.contains(" hx_")),
        "{out}"
    );
    assert!(out.contains("/alliance"), "{out}");
    let set = hongxin(
        dir.path(),
        &[
            "compound",
            "takeover",
            "--compound",
            "HX12",
            "--date",
            "2026-10-08",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let cleared = hongxin(
        dir.path(),
        &["compound", "takeover", "--compound", "HX01", "--clear"],
    );
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    let unknown = hongxin(
        dir.path(),
        &["compound", "takeover", "--compound", "NOPE", "--clear"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not_found"));
    let neither = hongxin(dir.path(), &["compound", "takeover", "--compound", "HX01"]);
    assert_eq!(neither.status.code(), Some(2));

    let settings = hongxin::app::Settings {
        database: format!("sqlite://{}", dir.path().join("demo.db").display()),
        policies_dir: repo_policies(),
        key_file: None,
        today: Some(date("2026-11-20")),
    };
    let app = hongxin::app::App::open(&settings)
        .await
        .expect("open the demo");
    let r = alliance::alliance(app.store.as_ref(), &app.policies, date("2026-11-20"), None)
        .await
        .expect("report");
    assert_eq!(r.households, 400);
    assert!(
        r.grids.iter().all(|g| g.grid.starts_with('第')),
        "{:?}",
        r.grids
    );
    assert!(r.buildings.len() > r.grids.len());
    assert!(r.grids.iter().any(|g| g.fees.billed.is_positive()));
    let takeover = |code: &str| {
        r.compounds
            .iter()
            .find(|c| c.compound == code)
            .and_then(|c| c.taken_over_on)
    };
    assert_eq!(takeover("HX12"), Some(date("2026-10-08")));
    assert_eq!(takeover("HX01"), None);
    assert!(
        takeover("HX02").is_some(),
        "the demo dates the programme's compounds"
    );
    assert!(r.totals.iter().any(|m| m.participation.topups > 0));
}

// ---------------------------------------------------------------------------------------------
// The paid part of the prepaid liability per month, and the custody deposit it implies
// ---------------------------------------------------------------------------------------------

/// The oracle: the paid credit outstanding at the end of `day` recomputed from the journal's
/// postings (`prepaid_figures` as of a date), wallets and vouchers.
async fn paid_from_postings(l: &TestLedger, day: &str) -> (Amount, Amount) {
    let f = l
        .app
        .store
        .prepaid_figures(COOP, date(day), Some(date(day)))
        .await
        .expect("prepaid figures")
        .expect("known cooperative");
    (f.wallets.paid, f.vouchers.paid)
}

/// Every way paid credit moves (top-ups to wallets and vouchers, wallet and voucher spending,
/// a sale refund back to credit, cash-outs, a voided voucher, an expired voucher still owed)
/// and an unrelated reversal, over several quarters; then, for every month, the maintained
/// figures against the balances recomputed from postings, and the custody deposit of the
/// prepaid report and of the alliance's report against the old computation.
async fn custody_figures_agree_with_the_postings(backend: Backend) {
    let mut l = TestLedger::on(backend, "2026-08-10").await;
    let mut days = vec!["2026-08-10"];
    l.top_up("H1", "600", Delivery::Wallet)
        .await
        .expect("top-up");
    let v1 = l.issue_voucher("H2", "500").await;
    let v2 = l.issue_voucher("H3", "100").await;
    l.sell(sale_amount(Some("H1"), "110", vec![wallet("110")]))
        .await
        .expect("wallet sale");

    l.reopen("2026-09-12").await;
    days.push("2026-09-12");
    let by_voucher = l
        .sell(sale_amount(None, "200", vec![voucher(&v1, "200")]))
        .await
        .expect("voucher sale");
    let by_wallet = l
        .sell(sale_amount(Some("H1"), "55", vec![wallet("55")]))
        .await
        .expect("wallet sale");
    let expense = l
        .expense("utilities", "30.00", "2026-09-12")
        .await
        .expect("expense");
    l.reverse(expense.entry, "entered twice")
        .await
        .expect("reversal");

    l.reopen("2026-10-20").await;
    days.push("2026-10-20");
    l.refund_sale(by_voucher.sale, Some(SHOP), Some("50.00"))
        .await
        .expect("voucher refund");
    l.refund_sale(by_wallet.sale, Some(SHOP), None)
        .await
        .expect("wallet refund");
    l.cash_out("H1", Some("40.00")).await.expect("cash-out");
    l.top_up("H3", "100", Delivery::Wallet)
        .await
        .expect("top-up");

    l.reopen("2027-01-15").await;
    days.push("2027-01-15");
    l.void_voucher(&v2).await.expect("void");
    l.refund_credit("H3").await.expect("whole cash-out");

    // Three years on, the first voucher expires: its credit stays owed (no breakage under the
    // shipped policy), so its paid part stays in the liability the deposit covers; then it is
    // exchanged for a new voucher, which moves the paid credit between vouchers and leaves the
    // cooperative's figure as it was.
    l.reopen("2029-09-03").await;
    days.push("2029-09-03");
    let left = l.voucher_balance(&v1).await;
    assert!(left > Amount::ZERO, "{left:?}");
    let r = l.run(Command::ExpireVouchers).await;
    assert!(
        matches!(r, Ok(Receipt::Expired(ref x)) if x.vouchers >= 1 && x.broken == 0),
        "{r:?}"
    );
    assert_eq!(l.voucher_balance(&v1).await, left);
    let r = l
        .run(Command::ExchangeVoucher(ExchangeVoucher {
            code: v1.clone(),
            shop: SHOP.into(),
        }))
        .await;
    assert!(matches!(r, Ok(Receipt::Exchanged(_))), "{r:?}");
    assert_eq!(l.voucher_balance(&v1).await, Amount::ZERO);
    l.top_up("H4", "50", Delivery::Wallet)
        .await
        .expect("top-up");

    let checked = l.app.store.verify().await.expect("verify");
    assert!(checked.ok(), "{checked:?}");

    let months = l
        .app
        .store
        .paid_credit_months(COOP)
        .await
        .expect("months")
        .expect("known cooperative");
    assert!(months.len() >= 5, "{months:?}");
    let report = alliance::alliance(
        l.app.store.as_ref(),
        &l.app.policies,
        date("2029-09-03"),
        None,
    )
    .await
    .expect("report");
    let coop = report
        .cooperatives
        .iter()
        .find(|c| c.cooperative == COOP)
        .expect("COOP");
    let mut checked_months = 0;
    let mut some_nonzero = false;
    for line in &coop.months {
        let (_, last) = hongxin::fees::month_bounds("month", &line.month).unwrap();
        let (w, v) = paid_from_postings(&l, &last.to_string()).await;
        assert_eq!(line.prepaid_paid.fen(), w.fen() + v.fen(), "{}", line.month);
        let on = last.min(date("2029-09-03"));
        let quarter_end = hongxin::reports::previous_quarter_end(on);
        let (qw, qv) = paid_from_postings(&l, &quarter_end.to_string()).await;
        let base = qw.fen() + qv.fen();
        assert_eq!(line.custody_base.fen(), base, "{}", line.month);
        // 0.40 × base, half-up to the fen.
        let deposit = (base * 40 + 50).div_euclid(100);
        assert_eq!(
            line.custody_deposit.map(|a| a.fen()),
            Some(deposit),
            "{}",
            line.month
        );
        some_nonzero |= base > 0;
        checked_months += 1;
    }
    assert!(some_nonzero);
    // Every month of the report with figures from August 2026 on.
    assert_eq!(checked_months, 5, "{:?}", report.months);
    // October 2026 rests on September's end (spending takes paid and bonus in proportion):
    // 0.40 × 868.18 = 347.272 → 347.27; before October, nothing was due.
    let oct = coop.months.iter().find(|m| m.month == "2026-10").unwrap();
    assert_eq!(oct.custody_base, y("868.18"));
    assert_eq!(oct.custody_deposit, Some(y("347.27")));
    let sep = coop.months.iter().find(|m| m.month == "2026-09").unwrap();
    assert_eq!(sep.custody_deposit, Some(Amount::ZERO));
    assert!(sep.prepaid_paid > Amount::ZERO);
    // The exports carry the same figures, a row per cooperative and month.
    use hongxin::reports::alliance_export::{tables, Cell};
    let all = tables(&report);
    let table = all.iter().find(|t| t.name == "cooperatives").unwrap();
    let col = |name: &str| {
        table
            .headings
            .iter()
            .position(|h| h.contains(name))
            .unwrap()
    };
    let (paid_at, base_at, deposit_at) = (
        col("Prepaid paid at month end"),
        col("Last quarter's prepaid balance"),
        col("Custody deposit"),
    );
    assert_eq!(table.rows.len(), coop.months.len());
    for (row, line) in table.rows.iter().zip(&coop.months) {
        assert_eq!(row[1], Cell::Text(line.month.clone()));
        assert_eq!(row[paid_at], Cell::Money(line.prepaid_paid));
        assert_eq!(row[base_at], Cell::Money(line.custody_base));
        assert_eq!(
            row[deposit_at],
            Cell::Money(line.custody_deposit.expect("a policy in effect"))
        );
    }

    // The cooperative's own report on each day, against the old computation.
    for day in days
        .iter()
        .copied()
        .chain(["2026-12-31", "2027-04-01", "2029-07-01"])
    {
        let d = date(day);
        let own = hongxin::reports::prepaid(
            l.app.store.as_ref(),
            &l.app.policies,
            COOP,
            date("2029-09-03"),
            Some(d),
        )
        .await
        .expect("prepaid")
        .expect("known cooperative");
        let (w, v) = paid_from_postings(&l, &own.custody.quarter_end.to_string()).await;
        assert_eq!(
            (own.custody.wallets_paid, own.custody.vouchers_paid),
            (w, v),
            "{day}"
        );
        assert_eq!(
            own.custody.deposit.fen(),
            ((w.fen() + v.fen()) * 40 + 50).div_euclid(100),
            "{day}"
        );
    }

    // The migration's backfill gives an existing ledger the same rows.
    exec(&l, "DELETE FROM paid_credit_months").await;
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let text = std::fs::read_to_string(format!(
        "{}/migrations/{dir}/0022_paid_credit_months.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("the migration");
    let (_, backfill) = text
        .split_once("-- What was written before this table existed.")
        .expect("the backfill part");
    exec(&l, backfill).await;
    let again = l
        .app
        .store
        .paid_credit_months(COOP)
        .await
        .expect("months")
        .expect("known cooperative");
    assert_eq!(again, months);
    // And verify notices a maintained figure off by a fen.
    exec(
        &l,
        "UPDATE paid_credit_months SET wallet_paid = wallet_paid + 1
         WHERE month = '2026-10'",
    )
    .await;
    let checked = l.app.store.verify().await.expect("verify");
    assert!(!checked.ok());
    assert!(
        format!("{checked:?}").contains("paid_credit_months"),
        "{checked:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Every body above on every backend
// ---------------------------------------------------------------------------------------------

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::pg_support::available() {
                        return;
                    }
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_every_backend! {
    fee_figures_agree_with_the_model_and_the_statements,
    participation_and_cooperative_figures_agree_with_the_closes,
    the_migration_fills_the_figures_of_an_existing_ledger,
    the_alliance_reads_everything_writes_nothing_and_sees_no_one,
    custody_figures_agree_with_the_postings,
}
