//! Master data changes with effective dates (issue 14, life events), on both backends: a
//! compound's eligibility switched off from a day refuses top-ups from that day and not before;
//! a household's area corrected from a month changes that month's bill by exactly rate × Δarea
//! and leaves bills issued as they were; a compound moved to another company from a month is
//! billed, stated and allocated under the new company from then on and under the old one
//! before; names change from now on with the journal keeping old and new. Every refusal names
//! its field and changes nothing; verify holds after each change and fails when a change row
//! is edited.

mod common;

use common::*;
use hongxin::domain::{
    CloseMonth, CloseReceipt, Command, Delivery, GenerateBills, MasterChange, MasterChangeRecord,
    Receipt, Rejection, Subject,
};

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
    a_moved_compound_s_arrears_stay_with_its_old_company,
    eligibility_switches_off_from_a_day,
    an_area_correction_changes_the_next_bill_by_rate_times_the_difference,
    a_compound_moves_to_another_company_from_a_month,
    names_change_from_now_on_and_refusals_change_nothing,
);

fn change(subject: Subject, code: &str, field: &str, value: &str, from: Option<&str>) -> Command {
    Command::ChangeMasterData(MasterChange {
        subject,
        code: code.into(),
        field: field.into(),
        value: value.into(),
        effective_from: from.map(str::to_string),
    })
}

/// H1 tops up 500.00 and spends 300.00 of it, a cash sale of 3000.00 makes the profit, and on
/// `on` the cooperative closes `month`: what the close shared.
async fn spend_and_close(t: &mut TestLedger, on: &str, month: &str) -> CloseReceipt {
    t.top_up("H1", "500.00", Delivery::Wallet)
        .await
        .expect("top-up");
    t.sell(sale_amount(Some("H1"), "300.00", vec![wallet("300.00")]))
        .await
        .expect("sale");
    t.sell(sale_amount(None, "3000.00", vec![cash("3000.00")]))
        .await
        .expect("cash sale");
    t.reopen(on).await;
    match t
        .run(Command::CloseMonth(CloseMonth {
            cooperative: "COOP".into(),
            month: month.into(),
            dry_run: false,
            estimate: false,
        }))
        .await
    {
        Ok(Receipt::MonthClose(c)) => c,
        other => panic!("close: {other:?}"),
    }
}

async fn changed(t: &TestLedger, command: Command) -> MasterChangeRecord {
    match t.run(command).await {
        Ok(Receipt::MasterChanged(r)) => r,
        other => panic!("a change answered {other:?}"),
    }
}

/// A refusal naming `field` that changes nothing: balances, the journal and the history.
async fn refused_unchanged(t: &TestLedger, command: Command, field: &str) -> Rejection {
    let before = (
        t.snapshot().await,
        t.app.store.master_changes(None, None).await.unwrap(),
    );
    let e = refused(t.run(command).await, "invalid_input", Some(field));
    let after = (
        t.snapshot().await,
        t.app.store.master_changes(None, None).await.unwrap(),
    );
    assert_eq!(before, after, "a refusal changed something: {e:?}");
    e
}

async fn bills(t: &TestLedger, company: &str, month: &str) -> u64 {
    match t
        .run(Command::GenerateBills(GenerateBills {
            company: company.into(),
            month: month.into(),
        }))
        .await
    {
        Ok(Receipt::Bills(b)) => b.count,
        other => panic!("bills answered {other:?}"),
    }
}

/// The bill of `household` for `month` among the company's open bills.
async fn bill(t: &TestLedger, company: &str, household: &str, month: &str) -> Option<Amount> {
    t.app
        .store
        .company_open_bills(company)
        .await
        .unwrap()
        .unwrap_or_default()
        .into_iter()
        .find(|(h, m, _, _)| h == household && m == month)
        .map(|(_, _, amount, _)| amount)
}

async fn stated(t: &TestLedger, company: &str, month: &str) -> Vec<String> {
    let s = t
        .app
        .store
        .statement(company, month)
        .await
        .unwrap()
        .expect("a statement");
    s.households.into_iter().map(|l| l.household).collect()
}

use hongxin::money::Amount;

/// One household's line of a company's statement for a month, if listed.
async fn line(
    t: &TestLedger,
    company: &str,
    month: &str,
    household: &str,
) -> Option<hongxin::fees::statement::HouseholdLine> {
    let s = t
        .app
        .store
        .statement(company, month)
        .await
        .unwrap()
        .expect("a statement");
    assert!(s.ties_out, "{s:?}");
    s.households.into_iter().find(|l| l.household == household)
}

/// A household's figures on a statement: opening, billed, paid, allocated, closing.
async fn figures(t: &TestLedger, company: &str, month: &str, household: &str) -> [Amount; 5] {
    let l = line(t, company, month, household)
        .await
        .unwrap_or_else(|| panic!("{household} is not on {company}'s statement for {month}"));
    [l.opening, l.billed, l.paid, l.allocated, l.closing]
}

fn fen5(a: [&str; 5]) -> [Amount; 5] {
    a.map(y)
}

/// A statement as JSON with the journal head blanked: the head moves with every entry, the
/// figures must not.
async fn statement_json(t: &TestLedger, company: &str, month: &str) -> String {
    let mut s = t
        .app
        .store
        .statement(company, month)
        .await
        .unwrap()
        .expect("a statement");
    s.journal_seq = 0;
    s.journal_hash = String::new();
    serde_json::to_string(&s).unwrap()
}

fn pay(household: &str, amount: &str, company: Option<&str>, shop: Option<&str>) -> Command {
    Command::PayFee(hongxin::domain::FeePayment {
        household: household.into(),
        amount: y(amount),
        method: hongxin::domain::PayMethod::Cash,
        reference: format!("{household} {amount}"),
        company: company.map(str::to_string),
        shop: shop.map(str::to_string),
    })
}

async fn paid(t: &TestLedger, command: Command) -> hongxin::domain::FeePaymentReceipt {
    match t.run(command).await {
        Ok(Receipt::FeePayment(r)) => r,
        other => panic!("a payment answered {other:?}"),
    }
}

/// What `company` shows owed by `household` on its open bills (the arrears report's source).
async fn open_at(t: &TestLedger, company: &str, household: &str) -> Amount {
    let open = t
        .app
        .store
        .company_open_bills(company)
        .await
        .unwrap()
        .unwrap_or_default();
    Amount::from_fen(
        open.iter()
            .filter(|(h, ..)| h == household)
            .map(|(_, _, amount, settled)| amount.fen() - settled.fen())
            .sum(),
    )
}

/// A refusal that changes nothing: balances, journal, master data.
async fn refused_as(t: &TestLedger, command: Command, code: &str, field: &str) -> Rejection {
    let before = t.snapshot().await;
    let e = refused(t.run(command).await, code, Some(field));
    assert_eq!(
        before,
        t.snapshot().await,
        "a refusal changed something: {e:?}"
    );
    e
}

async fn a_moved_compound_s_arrears_stay_with_its_old_company(backend: Backend) {
    // H1 (HX01, K01) is billed 48.04 a month. February and March billed by K01; in March it
    // pays K01 20.00 at the office.
    let mut t = TestLedger::on(backend, "2026-03-15").await;
    assert_eq!(bills(&t, "K01", "2026-02").await, 4);
    assert_eq!(bills(&t, "K01", "2026-03").await, 4);
    let r = paid(&t, pay("H1", "20.00", Some("K01"), None)).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K01", 1));
    let march_k01 = statement_json(&t, "K01", "2026-03").await;
    let march_k02 = statement_json(&t, "K02", "2026-03").await;
    let feb_k01 = statement_json(&t, "K01", "2026-02").await;

    // Recorded in March, in force from May: HX01 moves to K02.
    changed(
        &t,
        change(Subject::Compound, "HX01", "company", "K02", Some("2026-05")),
    )
    .await;
    assert_eq!(statement_json(&t, "K01", "2026-03").await, march_k01);
    assert_eq!(statement_json(&t, "K02", "2026-03").await, march_k02);
    // Before May the compound is still K01's: K02's office cannot take H1's fees (nothing
    // changes), K01's office and the till take them for K01, numbered in K01's sequence.
    refused_as(
        &t,
        pay("H1", "10.00", Some("K02"), None),
        "not_found",
        "household",
    )
    .await;
    let r = paid(&t, pay("H1", "10.00", Some("K01"), None)).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K01", 2));
    let r = paid(&t, pay("H1", "5.00", None, Some("S1"))).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K01", 3));
    assert_eq!(t.coop_balance("due_to:K01").await, y("5.00"));
    // February's bill: 48.04, settled 35.00 by the three payments.
    assert_eq!(open_at(&t, "K01", "H1").await, y("61.08"));
    let march_k01 = statement_json(&t, "K01", "2026-03").await;

    // April: still K01's.
    t.reopen("2026-04-10").await;
    assert_eq!(bills(&t, "K01", "2026-04").await, 4);
    assert_eq!(bills(&t, "K02", "2026-04").await, 1);
    // May: K02 bills HX01; K01 bills only HX11's H9 and keeps H1's arrears (109.12).
    t.reopen("2026-05-10").await;
    assert_eq!(bills(&t, "K01", "2026-05").await, 1);
    assert_eq!(bills(&t, "K02", "2026-05").await, 4);
    assert_eq!(bill(&t, "K02", "H1", "2026-05").await, Some(y("48.04")));
    assert_eq!(open_at(&t, "K01", "H1").await, y("109.12"));
    assert_eq!(open_at(&t, "K02", "H1").await, y("48.04"));

    // A payment to the company in force (the admin's, the till's) settles K02's bill only,
    // numbered in K02's sequence: K01's older bills stay open.
    let r = paid(&t, pay("H1", "30.00", None, None)).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K02", 1));
    assert_eq!(r.applied.len(), 1);
    assert_eq!(
        (r.applied[0].month.as_str(), r.applied[0].amount),
        ("2026-05", y("30.00"))
    );
    let r = paid(&t, pay("H1", "5.00", None, Some("S1"))).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K02", 2));
    assert_eq!(t.coop_balance("due_to:K02").await, y("5.00"));
    assert_eq!(t.coop_balance("due_to:K01").await, y("5.00"));
    assert_eq!(open_at(&t, "K02", "H1").await, y("13.04"));
    assert_eq!(open_at(&t, "K01", "H1").await, y("109.12"));
    // K01's office may still take what is owed on its own bills, no more (nothing changes).
    let e = refused_as(
        &t,
        pay("H1", "109.13", Some("K01"), None),
        "invalid_amount",
        "amount",
    )
    .await;
    assert!(e.to_string().contains("109.12"), "{e}");
    let r = paid(&t, pay("H1", "20.00", Some("K01"), None)).await;
    assert_eq!((r.company.as_str(), r.receipt), ("K01", 4));
    assert_eq!(
        r.applied
            .iter()
            .map(|a| (a.month.as_str(), a.amount))
            .collect::<Vec<_>>(),
        vec![("2026-02", y("13.04")), ("2026-03", y("6.96"))]
    );
    assert_eq!(open_at(&t, "K01", "H1").await, y("89.12"));
    // K02's household with no bill of K01 is not K01's to take money for.
    refused_as(
        &t,
        pay("H4", "1.00", Some("K01"), None),
        "not_found",
        "household",
    )
    .await;

    // May's close, in June: H1 weighs what it owes K02 (13.04), not K01's arrears; the share
    // goes to K02 and settles K02's bill.
    let close = spend_and_close(&mut t, "2026-06-02", "2026-05").await;
    assert_eq!(close.allocated, y("13.04"), "{close:?}");
    assert_eq!(
        close
            .companies
            .iter()
            .map(|c| (c.company.as_str(), c.amount))
            .collect::<Vec<_>>(),
        vec![("K02", y("13.04"))]
    );
    assert_eq!(t.coop_balance("due_to:K02").await, y("18.04"));
    assert_eq!(open_at(&t, "K02", "H1").await, y("0.00"));
    assert_eq!(open_at(&t, "K01", "H1").await, y("89.12"));

    // The statements, per company and month: opening, billed, paid, allocated, closing.
    let cases = [
        (
            "K01",
            "2026-03",
            Some(["48.04", "48.04", "35.00", "0.00", "61.08"]),
        ),
        (
            "K01",
            "2026-04",
            Some(["61.08", "48.04", "0.00", "0.00", "109.12"]),
        ),
        (
            "K01",
            "2026-05",
            Some(["109.12", "0.00", "20.00", "0.00", "89.12"]),
        ),
        (
            "K01",
            "2026-06",
            Some(["89.12", "0.00", "0.00", "0.00", "89.12"]),
        ),
        ("K02", "2026-03", None),
        ("K02", "2026-04", None),
        (
            "K02",
            "2026-05",
            Some(["0.00", "48.04", "35.00", "13.04", "0.00"]),
        ),
        (
            "K02",
            "2026-06",
            Some(["0.00", "0.00", "0.00", "0.00", "0.00"]),
        ),
    ];
    for (company, month, want) in cases {
        match want {
            Some(want) => assert_eq!(
                figures(&t, company, month, "H1").await,
                fen5(want),
                "{company} {month}"
            ),
            None => assert!(
                line(&t, company, month, "H1").await.is_none(),
                "{company} {month}"
            ),
        }
    }
    // The old company's closing is what its open bills show (the arrears report), the new
    // one's likewise.
    assert_eq!(
        figures(&t, "K01", "2026-06", "H1").await[4],
        open_at(&t, "K01", "H1").await
    );
    // Statements of the months before the move read as they did before it.
    assert_eq!(statement_json(&t, "K01", "2026-02").await, feb_k01);
    assert_eq!(
        statement_json(&t, "K02", "2026-03").await,
        march_k02,
        "K02's March is untouched"
    );
    assert_eq!(statement_json(&t, "K01", "2026-03").await, march_k01);

    // The alliance's per-company figures agree with the statements to the fen, month by month
    // (a moved compound's months before the move, and K01's own collection after it, stay
    // K01's), and its arrears with the open bills.
    let r = hongxin::reports::alliance::alliance(
        t.app.store.as_ref(),
        &t.app.policies,
        date("2026-06-02"),
        None,
    )
    .await
    .expect("the alliance report");
    for company in ["K01", "K02"] {
        let k = r.companies.iter().find(|k| k.company == company).unwrap();
        for month in ["2026-02", "2026-03", "2026-04", "2026-05", "2026-06"] {
            let s = t
                .app
                .store
                .statement(company, month)
                .await
                .unwrap()
                .unwrap();
            let km = k.months.iter().find(|m| m.month == month);
            assert_eq!(
                (
                    km.map_or(Amount::ZERO, |m| m.billed),
                    km.map_or(Amount::ZERO, |m| m.paid)
                ),
                (s.totals.billed, s.totals.paid),
                "{company} {month}"
            );
        }
        let open: i64 = t
            .app
            .store
            .company_open_bills(company)
            .await
            .unwrap()
            .unwrap()
            .iter()
            .map(|(_, _, a, s)| a.fen() - s.fen())
            .sum();
        assert_eq!(k.arrears.total.fen(), open, "{company}");
    }
    let k01 = r.companies.iter().find(|k| k.company == "K01").unwrap();
    let may = k01.months.iter().find(|m| m.month == "2026-05").unwrap();
    assert_eq!((may.billed, may.paid), (y("27.75"), y("20.00")));

    let report = t.app.store.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
}

async fn eligibility_switches_off_from_a_day(backend: Backend) {
    let mut t = TestLedger::on(backend, "2026-03-15").await;
    let off = changed(
        &t,
        change(
            Subject::Compound,
            "HX01",
            "eligible",
            "false",
            Some("2026-03-20"),
        ),
    )
    .await;
    assert_eq!(
        (off.old.as_deref(), off.new.as_str(), off.effective_from),
        (Some("true"), "false", date("2026-03-20"))
    );
    t.assert_sound().await;
    // Before the day: still in the programme.
    t.top_up("H1", "100.00", Delivery::Wallet)
        .await
        .expect("eligible until 2026-03-20");
    assert_eq!(t.wallet("H1").await, (y("100.00"), y("10.00")));
    t.reopen("2026-03-19").await;
    t.top_up("H1", "50.00", Delivery::Wallet)
        .await
        .expect("eligible on the day before");
    // From the day: refused, nothing moves.
    t.reopen("2026-03-20").await;
    let before = t.snapshot().await;
    refused(
        t.top_up("H1", "50.00", Delivery::Wallet).await,
        "not_eligible",
        Some("household"),
    );
    assert_eq!(t.snapshot().await, before);
    assert_eq!(t.wallet("H1").await, (y("150.00"), y("15.00")));
    // Another compound is untouched.
    t.top_up("H4", "50.00", Delivery::Wallet)
        .await
        .expect("HX02");
    // A later change cannot take effect before an earlier one; switching back on works.
    refused_unchanged(
        &t,
        change(
            Subject::Compound,
            "HX01",
            "eligible",
            "true",
            Some("2026-03-19"),
        ),
        "effective_from",
    )
    .await;
    refused_unchanged(
        &t,
        change(
            Subject::Compound,
            "HX01",
            "eligible",
            "false",
            Some("2026-03-25"),
        ),
        "value",
    )
    .await;
    changed(
        &t,
        change(
            Subject::Compound,
            "HX01",
            "eligible",
            "true",
            Some("2026-03-25"),
        ),
    )
    .await;
    t.reopen("2026-03-24").await;
    refused(
        t.top_up("H1", "50.00", Delivery::Wallet).await,
        "not_eligible",
        Some("household"),
    );
    t.reopen("2026-03-25").await;
    t.top_up("H1", "50.00", Delivery::Wallet)
        .await
        .expect("eligible again from 2026-03-25");
    assert_eq!(t.wallet("H1").await, (y("200.00"), y("20.00")));
    let history = t
        .app
        .store
        .master_changes(Some(Subject::Compound), Some("HX01"))
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    t.assert_sound().await;
}

async fn an_area_correction_changes_the_next_bill_by_rate_times_the_difference(backend: Backend) {
    let t = TestLedger::on(backend, "2026-03-15").await;
    assert_eq!(bills(&t, "K01", "2026-02").await, 4);
    // 87.35 m² × 0.55 = 48.0425 → 48.04.
    assert_eq!(bill(&t, "K01", "H1", "2026-02").await, Some(y("48.04")));
    // A month already billed for the household is refused, naming the field.
    refused_unchanged(
        &t,
        change(
            Subject::Household,
            "H1",
            "area_m2",
            "97.35",
            Some("2026-02"),
        ),
        "effective_from",
    )
    .await;
    refused_unchanged(
        &t,
        change(Subject::Household, "H1", "area_m2", "-1", Some("2026-03")),
        "value",
    )
    .await;
    refused_unchanged(
        &t,
        change(
            Subject::Household,
            "H1",
            "area_m2",
            "87.35",
            Some("2026-03"),
        ),
        "value",
    )
    .await;
    refused_unchanged(
        &t,
        change(Subject::Household, "H1", "area_m2", "97.35", None),
        "effective_from",
    )
    .await;
    let r = changed(
        &t,
        change(
            Subject::Household,
            "H1",
            "area_m2",
            "97.35",
            Some("2026-03"),
        ),
    )
    .await;
    assert_eq!(
        (r.old.as_deref(), r.new.as_str(), r.effective_from),
        (Some("87.35"), "97.35", date("2026-03-01"))
    );
    t.assert_sound().await;
    // A correction from a later month leaves the month before on the old area.
    changed(
        &t,
        change(
            Subject::Household,
            "H2",
            "area_m2",
            "74.10",
            Some("2026-04"),
        ),
    )
    .await;
    assert_eq!(bills(&t, "K01", "2026-03").await, 4);
    // 97.35 × 0.55 = 53.5425 → 53.54: exactly 0.55 × 10.00 m² more.
    let march = bill(&t, "K01", "H1", "2026-03").await.expect("March bill");
    assert_eq!(march, y("53.54"));
    assert_eq!(march.checked_sub(y("48.04")), Some(y("5.50")));
    // The bill issued before is unchanged; H2 is billed on its old area in March.
    assert_eq!(bill(&t, "K01", "H1", "2026-02").await, Some(y("48.04")));
    // 64.10 × 0.55 = 35.255 → 35.26 (half up).
    assert_eq!(bill(&t, "K01", "H2", "2026-03").await, Some(y("35.26")));
    let mut t = t;
    t.reopen("2026-04-02").await;
    assert_eq!(bills(&t, "K01", "2026-04").await, 4);
    // 74.10 × 0.55 = 40.755 → 40.76: 0.55 × 10.00 m² = 5.50 more than March.
    assert_eq!(bill(&t, "K01", "H2", "2026-04").await, Some(y("40.76")));
    t.assert_sound().await;
}

async fn a_compound_moves_to_another_company_from_a_month(backend: Backend) {
    let mut t = TestLedger::on(backend, "2026-03-15").await;
    assert_eq!(bills(&t, "K01", "2026-02").await, 4);
    refused_unchanged(
        &t,
        change(Subject::Compound, "HX01", "company", "K01", Some("2026-03")),
        "value",
    )
    .await;
    refused_unchanged(
        &t,
        change(Subject::Compound, "HX01", "company", "K02", Some("2026-02")),
        "effective_from",
    )
    .await;
    let e = refused(
        t.run(change(
            Subject::Compound,
            "HX01",
            "company",
            "NOPE",
            Some("2026-03"),
        ))
        .await,
        "not_found",
        Some("value"),
    );
    let _ = e;
    let r = changed(
        &t,
        change(Subject::Compound, "HX01", "company", "K02", Some("2026-03")),
    )
    .await;
    assert_eq!((r.old.as_deref(), r.new.as_str()), (Some("K01"), "K02"));
    t.assert_sound().await;
    // March: HX01's households are billed by K02 (with H4), K01 keeps only HX11's H9.
    assert_eq!(bills(&t, "K01", "2026-03").await, 1);
    assert_eq!(bills(&t, "K02", "2026-03").await, 4);
    assert_eq!(bill(&t, "K02", "H1", "2026-03").await, Some(y("48.04")));
    assert_eq!(bill(&t, "K01", "H1", "2026-03").await, None);
    // February's bill stays K01's.
    assert_eq!(bill(&t, "K01", "H1", "2026-02").await, Some(y("48.04")));
    // Statements: February under K01, March under K02.
    assert!(stated(&t, "K01", "2026-02")
        .await
        .contains(&"H1".to_string()));
    assert!(!stated(&t, "K02", "2026-02")
        .await
        .contains(&"H1".to_string()));
    // K01's March statement still lists H1, for its February bill (K01's arrears), billing
    // nothing in March.
    let k01 = line(&t, "K01", "2026-03", "H1").await.expect("H1 owes K01");
    assert_eq!(
        (k01.opening, k01.billed, k01.closing),
        (y("48.04"), y("0.00"), y("48.04"))
    );
    let k02 = stated(&t, "K02", "2026-03").await;
    for h in ["H1", "H2", "H3", "H4"] {
        assert!(k02.contains(&h.to_string()), "{h} in {k02:?}");
    }
    // Spending in March, closed in April: HX01's share is credited to K02.
    let close = spend_and_close(&mut t, "2026-04-02", "2026-03").await;
    assert!(close.allocated.is_positive(), "{close:?}");
    let k02 = close
        .companies
        .iter()
        .find(|c| c.company == "K02")
        .expect("K02 credited");
    assert_eq!(k02.amount, close.allocated, "{close:?}");
    assert!(
        close
            .companies
            .iter()
            .all(|c| c.company != "K01" || c.amount.is_zero()),
        "{close:?}"
    );
    // A move into a closed month is refused.
    refused_unchanged(
        &t,
        change(Subject::Compound, "HX01", "company", "K01", Some("2026-03")),
        "effective_from",
    )
    .await;
    // (The books-balance helper does not classify a close's accounts; verify replays them.)
    let report = t.app.store.verify().await.expect("verify");
    assert!(report.ok(), "{report:?}");
}

async fn names_change_from_now_on_and_refusals_change_nothing(backend: Backend) {
    let t = TestLedger::on(backend, "2026-03-15").await;
    for (subject, code) in [
        (Subject::Cooperative, "COOP"),
        (Subject::Company, "K01"),
        (Subject::Compound, "HX01"),
        (Subject::Household, "H1"),
    ] {
        let r = changed(&t, change(subject, code, "name", "新名字", None)).await;
        assert_eq!(r.new, "新名字");
        assert_eq!(r.effective_from, date("2026-03-15"));
    }
    let h = t.app.store.household("H1").await.unwrap().expect("H1");
    assert_eq!(h.name.as_deref(), Some("新名字"));
    refused_unchanged(
        &t,
        change(Subject::Household, "H1", "color", "red", None),
        "field",
    )
    .await;
    refused_unchanged(
        &t,
        change(
            Subject::Household,
            "H1",
            "eligible",
            "false",
            Some("2026-04-01"),
        ),
        "field",
    )
    .await;
    refused_unchanged(
        &t,
        change(
            Subject::Compound,
            "HX01",
            "name",
            "别名",
            Some("2026-04-01"),
        ),
        "effective_from",
    )
    .await;
    refused_unchanged(
        &t,
        change(Subject::Compound, "HX01", "name", " ", None),
        "value",
    )
    .await;
    refused_unchanged(
        &t,
        change(Subject::Compound, "HX01", "name", "新名字", None),
        "value",
    )
    .await;
    refused(
        t.run(change(Subject::Compound, "NOPE", "name", "x", None))
            .await,
        "not_found",
        Some("code"),
    );
    let history = t.app.store.master_changes(None, None).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[2].subject, Subject::Compound);
    assert_eq!(history[2].new, "新名字");
    assert!(history[2].old.is_some());
    t.assert_sound().await;
    // A change row edited is caught by verify, naming the table.
    let sql = "UPDATE master_changes SET new_value = 'edited' WHERE id = (SELECT MIN(id) FROM master_changes)";
    match backend {
        Backend::Sqlite => {
            use sqlx::ConnectOptions;
            let options: sqlx::sqlite::SqliteConnectOptions =
                t.settings.database.parse().expect("sqlite URL");
            let mut conn = options.connect().await.expect("connection");
            sqlx::query(sql).execute(&mut conn).await.expect("edit");
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&t.settings.database)
                .await
                .expect("connection");
            sqlx::query(sql).execute(&mut conn).await.expect("edit");
        }
    }
    let report = t.app.store.verify().await.expect("verify");
    let problem = report.first_problem.expect("an edited change is caught");
    assert!(problem.contains("master_changes"), "{problem}");
}
