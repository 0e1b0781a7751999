//! The company statement for a month (对账单): per compound and household the opening balance,
//! billed, paid by the resident, covered by the cooperative's allocation and the closing
//! balance; the summary the companies reconcile by; and what the cooperative owes.
//! It ties out: opening + billed − paid − allocated = closing, per household and in total.
//! Bills and allocations count in the month they are for (a bill's month, the month closed),
//! payments and settlements in the month of their business date: the store reads the
//! `entry_months` view (see docs/architecture.md, "Which month a bill and an allocation belong
//! to"). Each household's figures are only the movements that belong to the statement's company
//! (a moved compound's bills, payments and allocations stay with the company they were made
//! for: docs/architecture.md, "A compound's move: whose figures are whose").

use serde::Serialize;

use crate::money::Amount;

/// One household's fee movements in the month, as the store sums them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HouseholdLine {
    pub compound: String,
    pub household: String,
    /// Floor area in m², e.g. `87.35`.
    pub area_m2: String,
    /// The occupant's name where recorded.
    pub occupant: Option<String>,
    /// The household's building (楼栋) and grid (网格) where recorded.
    pub building: Option<String>,
    pub grid: Option<String>,
    pub opening: Amount,
    pub billed: Amount,
    pub paid: Amount,
    pub allocated: Amount,
    pub closing: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    pub opening: Amount,
    pub billed: Amount,
    pub paid: Amount,
    pub allocated: Amount,
    pub closing: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CompoundTotals {
    pub compound: String,
    /// The compound's name, filled in by the HTTP layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub households: u64,
    #[serde(flatten)]
    pub totals: Totals,
}

/// The lines the companies reconcile by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Owed at the start of the month (positive openings).
    pub arrears_brought_forward: Amount,
    /// This month's billing still unpaid at its end.
    pub arrears_this_month: Amount,
    pub billed: Amount,
    /// Payments and allocations that went to earlier months' debt.
    pub arrears_recovered: Amount,
    /// Paid ahead at the end of the month (negative closings).
    pub prepaid: Amount,
    /// Paid by residents.
    pub received: Amount,
    /// Covered by the cooperative's profit.
    pub covered_by_cooperative: Amount,
}

/// What the cooperative owes the company: from allocations, less settlements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CooperativePosition {
    pub cooperative: String,
    /// The cooperative's name, filled in by the HTTP layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooperative_name: Option<String>,
    pub opening: Amount,
    pub allocated: Amount,
    pub settled: Amount,
    /// Property fees the cooperative's tills collected for the company this month (代收), owed
    /// to it with the allocations: opening + allocated + collected − settled = outstanding.
    #[serde(default)]
    pub collected: Amount,
    /// Still due at the end of the month.
    pub outstanding: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub company: String,
    /// The company's name, filled in by the HTTP layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    pub month: String,
    pub households: Vec<HouseholdLine>,
    pub compounds: Vec<CompoundTotals>,
    pub totals: Totals,
    pub summary: Summary,
    pub cooperatives: Vec<CooperativePosition>,
    /// The journal head when the statement was made: sequence and hash.
    pub journal_seq: i64,
    pub journal_hash: String,
    /// opening + billed − paid − allocated = closing for every household and in total.
    pub ties_out: bool,
}

fn add(a: Amount, b: Amount) -> Amount {
    // Sums of stored fen balances: far below i64, saturating keeps this total.
    Amount::from_fen(a.fen().saturating_add(b.fen()))
}

fn sub(a: Amount, b: Amount) -> Amount {
    Amount::from_fen(a.fen().saturating_sub(b.fen()))
}

fn pos(a: Amount) -> Amount {
    a.max(Amount::ZERO)
}

impl Totals {
    fn add_line(&mut self, h: &HouseholdLine) {
        self.opening = add(self.opening, h.opening);
        self.billed = add(self.billed, h.billed);
        self.paid = add(self.paid, h.paid);
        self.allocated = add(self.allocated, h.allocated);
        self.closing = add(self.closing, h.closing);
    }
}

/// One household's statement figures for each of `months`, from its fee-account movements
/// summed by (service month, entry kind) as the store reads them
/// ([`crate::store::Store::household_fee_movements`]): the statement's own sums for one
/// household — opening, every movement of earlier months; billed, paid and allocated, the
/// month's bills, payments (negated) and profit allocations (negated); closing, every movement
/// up to the month's end. `None` on overflow.
pub fn household_months(
    movements: &[(String, String, Amount)],
    months: &[String],
) -> Option<Vec<(String, Totals)>> {
    let mut out = Vec::with_capacity(months.len());
    for month in months {
        let mut t = Totals::default();
        for (m, kind, amount) in movements {
            let m = m.as_str();
            if m < month.as_str() {
                t.opening = t.opening.checked_add(*amount)?;
            } else if m == month.as_str() {
                match kind.as_str() {
                    "fee_bill" => t.billed = t.billed.checked_add(*amount)?,
                    "fee_payment" => t.paid = t.paid.checked_sub(*amount)?,
                    "profit_allocation" => t.allocated = t.allocated.checked_sub(*amount)?,
                    _ => {}
                }
            }
            if m <= month.as_str() {
                t.closing = t.closing.checked_add(*amount)?;
            }
        }
        out.push((month.clone(), t));
    }
    Some(out)
}

/// Square decimetres as the m² a statement shows: 8735 → `87.35`.
pub fn area_m2(dm2: i64) -> String {
    format!("{}.{:02}", dm2 / 100, dm2 % 100)
}

/// Assembles the statement from household lines (whose `closing` the store computed from the
/// journal independently) and the cooperatives' positions.
pub fn build(
    company: &str,
    month: &str,
    mut households: Vec<HouseholdLine>,
    cooperatives: Vec<CooperativePosition>,
    journal_seq: i64,
    journal_hash: String,
) -> Statement {
    households.sort_by(|a, b| (&a.compound, &a.household).cmp(&(&b.compound, &b.household)));
    let mut totals = Totals::default();
    let mut summary = Summary::default();
    let mut compounds: Vec<CompoundTotals> = Vec::new();
    let mut ties_out = true;
    for h in &households {
        let expected = sub(sub(add(h.opening, h.billed), h.paid), h.allocated);
        ties_out &= expected == h.closing;
        totals.add_line(h);
        if compounds.last().is_none_or(|c| c.compound != h.compound) {
            compounds.push(CompoundTotals {
                compound: h.compound.clone(),
                name: None,
                households: 0,
                totals: Totals::default(),
            });
        }
        if let Some(c) = compounds.last_mut() {
            c.households += 1;
            c.totals.add_line(h);
        }
        let credits = add(h.paid, h.allocated);
        let owed_before = pos(h.opening);
        summary.arrears_brought_forward = add(summary.arrears_brought_forward, owed_before);
        // Credits go to the oldest debt first: earlier months, then this month's bill.
        summary.arrears_recovered = add(summary.arrears_recovered, credits.min(owed_before));
        summary.arrears_this_month = add(summary.arrears_this_month, pos(h.closing).min(h.billed));
        summary.prepaid = add(summary.prepaid, pos(Amount::from_fen(-h.closing.fen())));
        summary.received = add(summary.received, h.paid);
        summary.covered_by_cooperative = add(summary.covered_by_cooperative, h.allocated);
    }
    summary.billed = totals.billed;
    ties_out &= sub(
        sub(add(totals.opening, totals.billed), totals.paid),
        totals.allocated,
    ) == totals.closing;
    Statement {
        company: company.to_string(),
        company_name: None,
        month: month.to_string(),
        households,
        compounds,
        totals,
        summary,
        cooperatives,
        journal_seq,
        journal_hash,
        ties_out,
    }
}

/// The words of the CSV's headers, row kinds and summary lines in Chinese, for a person; the
/// English ones are the field names of the JSON, for programs as much as for people.
fn chinese(word: &str) -> &str {
    match word {
        "row" => "类别",
        "compound" => "小区",
        "household" => "住户",
        "opening" => "期初",
        "billed" => "应收",
        "paid" => "住户缴纳",
        "allocated" => "合作社抵扣",
        "closing" => "期末",
        "cooperative" => "合作社",
        "settled" => "已结算",
        "outstanding" => "待结算",
        "area_m2" => "面积（平方米）",
        "occupant" => "住户姓名",
        "building" => "楼栋",
        "grid" => "网格",
        "total" => "合计",
        "summary" => "汇总",
        "journal" => "账本",
        "arrears_brought_forward" => "上期结转欠费",
        "arrears_this_month" => "本月新增欠费",
        "arrears_recovered" => "收回往期欠费",
        "prepaid" => "预缴余额",
        "received" => "住户缴纳合计",
        "covered_by_cooperative" => "合作社抵扣合计",
        other => other,
    }
}

/// The statement as CSV with English headers (the JSON's field names): one row per household,
/// then compound and total rows, then the summary.
pub fn to_csv(s: &Statement) -> Result<Vec<u8>, csv::Error> {
    to_csv_in(s, false)
}

/// The statement as CSV, its headers, row kinds and summary lines in Chinese (`chinese`) or
/// English; Chinese starts with a byte-order mark, so that spreadsheet programs read it right.
pub fn to_csv_in(s: &Statement, chinese_words: bool) -> Result<Vec<u8>, csv::Error> {
    let k = |word: &'static str| -> &'static str {
        if chinese_words {
            chinese(word)
        } else {
            word
        }
    };
    let start = if chinese_words {
        vec![0xEF, 0xBB, 0xBF]
    } else {
        Vec::new()
    };
    let mut w = csv::Writer::from_writer(start);
    // Every figure sits under the header that names it. The first eight columns serve the
    // household, compound and total rows (and keep their places for readers that count);
    // the cooperative rows add the columns only they have, and the household rows end with the
    // household's area, occupant, building and grid.
    w.write_record(
        [
            "row",
            "compound",
            "household",
            "opening",
            "billed",
            "paid",
            "allocated",
            "closing",
            "cooperative",
            "settled",
            "outstanding",
            "area_m2",
            "occupant",
            "building",
            "grid",
        ]
        .map(k),
    )?;
    for h in &s.households {
        w.write_record([
            k("household"),
            &h.compound,
            &h.household,
            &h.opening.to_string(),
            &h.billed.to_string(),
            &h.paid.to_string(),
            &h.allocated.to_string(),
            &h.closing.to_string(),
            "",
            "",
            "",
            &h.area_m2,
            h.occupant.as_deref().unwrap_or(""),
            h.building.as_deref().unwrap_or(""),
            h.grid.as_deref().unwrap_or(""),
        ])?;
    }
    for c in &s.compounds {
        let t = &c.totals;
        w.write_record([
            k("compound"),
            &c.compound,
            "",
            &t.opening.to_string(),
            &t.billed.to_string(),
            &t.paid.to_string(),
            &t.allocated.to_string(),
            &t.closing.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ])?;
    }
    let t = &s.totals;
    w.write_record([
        k("total"),
        "",
        "",
        &t.opening.to_string(),
        &t.billed.to_string(),
        &t.paid.to_string(),
        &t.allocated.to_string(),
        &t.closing.to_string(),
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ])?;
    let m = &s.summary;
    for (label, value) in [
        ("arrears_brought_forward", m.arrears_brought_forward),
        ("arrears_this_month", m.arrears_this_month),
        ("billed", m.billed),
        ("arrears_recovered", m.arrears_recovered),
        ("prepaid", m.prepaid),
        ("received", m.received),
        ("covered_by_cooperative", m.covered_by_cooperative),
    ] {
        w.write_record([
            k("summary"),
            k(label),
            "",
            &value.to_string(),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ])?;
    }
    for c in &s.cooperatives {
        w.write_record([
            k("cooperative"),
            "",
            "",
            &c.opening.to_string(),
            "",
            "",
            &c.allocated.to_string(),
            "",
            &c.cooperative,
            &c.settled.to_string(),
            &c.outstanding.to_string(),
            "",
            "",
            "",
            "",
        ])?;
    }
    w.write_record([
        k("journal"),
        &s.journal_seq.to_string(),
        &s.journal_hash,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ])?;
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_household_s_months_sum_its_movements_as_the_statement_does() {
        let mv = |m: &str, kind: &str, fen: i64| {
            (m.to_string(), kind.to_string(), Amount::from_fen(fen))
        };
        let movements = [
            mv("2026-09", "fee_bill", 4_804),
            mv("2026-10", "fee_bill", 4_804),
            mv("2026-10", "fee_payment", -3_000),
            mv("2026-10", "profit_allocation", -1_234),
            // A reversal moves the balance but is none of the month's three columns.
            mv("2026-10", "reversal", 10),
            mv("2026-12", "fee_payment", -1_000),
        ];
        let months = ["2026-12", "2026-11", "2026-10"].map(String::from);
        let got = household_months(&movements, &months).expect("no overflow");
        let t = |o, b, p, a, c| Totals {
            opening: Amount::from_fen(o),
            billed: Amount::from_fen(b),
            paid: Amount::from_fen(p),
            allocated: Amount::from_fen(a),
            closing: Amount::from_fen(c),
        };
        assert_eq!(
            got,
            vec![
                ("2026-12".to_string(), t(5_384, 0, 1_000, 0, 4_384)),
                ("2026-11".to_string(), t(5_384, 0, 0, 0, 5_384)),
                ("2026-10".to_string(), t(4_804, 4_804, 3_000, 1_234, 5_384)),
            ]
        );
    }

    fn line(h: &str, opening: i64, billed: i64, paid: i64, allocated: i64) -> HouseholdLine {
        HouseholdLine {
            compound: "HX01".into(),
            household: h.into(),
            area_m2: "87.35".into(),
            occupant: None,
            building: None,
            grid: None,
            opening: Amount::from_fen(opening),
            billed: Amount::from_fen(billed),
            paid: Amount::from_fen(paid),
            allocated: Amount::from_fen(allocated),
            closing: Amount::from_fen(opening + billed - paid - allocated),
        }
    }

    #[test]
    fn summary_lines() {
        let s = build(
            "K01",
            "2026-11",
            vec![
                // owed 100 from before, billed 48.04, paid 120: recovers 100, this month 28.04 left
                line("a", 10000, 4804, 12000, 0),
                // prepaid 20 before, billed 48.55, covered 10 by the cooperative: owes 18.55
                line("b", -2000, 4855, 0, 1000),
                // pays ahead
                line("c", 0, 4804, 10000, 0),
            ],
            vec![],
            7,
            "ab".into(),
        );
        assert!(s.ties_out);
        assert_eq!(s.summary.arrears_brought_forward, Amount::from_fen(10000));
        assert_eq!(s.summary.arrears_recovered, Amount::from_fen(10000));
        assert_eq!(s.summary.arrears_this_month, Amount::from_fen(2804 + 1855));
        assert_eq!(s.summary.prepaid, Amount::from_fen(5196));
        assert_eq!(s.summary.received, Amount::from_fen(22000));
        assert_eq!(s.summary.covered_by_cooperative, Amount::from_fen(1000));
        assert_eq!(s.totals.closing, Amount::from_fen(2804 + 1855 - 5196));
        let csv = String::from_utf8(to_csv(&s).unwrap()).unwrap();
        assert!(csv.contains("household,HX01,a,100.00,48.04,120.00,0.00,28.04,,,"));
        // A closing that does not follow from its movements is flagged.
        let mut bad = line("d", 0, 100, 0, 0);
        bad.closing = Amount::from_fen(99);
        assert!(!build("K01", "2026-11", vec![bad], vec![], 0, String::new()).ties_out);
    }

    #[test]
    fn each_cooperative_figure_is_under_its_own_header() {
        let s = build(
            "K01",
            "2026-11",
            vec![line("a", 0, 4804, 0, 1000)],
            vec![CooperativePosition {
                cooperative_name: None,
                cooperative: "COOP".into(),
                opening: Amount::from_fen(50_000),
                allocated: Amount::from_fen(1000),
                settled: Amount::from_fen(30_000),
                outstanding: Amount::from_fen(21_000),
                collected: Amount::ZERO,
            }],
            7,
            "ab".into(),
        );
        let bytes = to_csv(&s).unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let headers = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let cell = |r: &csv::StringRecord, name: &str| -> String {
            let i = headers.iter().position(|h| h == name).unwrap();
            r[i].to_string()
        };
        assert!(rows.iter().all(|r| r.len() == headers.len()));
        let coop = rows.iter().find(|r| &r[0] == "cooperative").unwrap();
        assert_eq!(cell(coop, "cooperative"), "COOP");
        assert_eq!(cell(coop, "opening"), "500.00");
        assert_eq!(cell(coop, "allocated"), "10.00");
        assert_eq!(cell(coop, "settled"), "300.00");
        assert_eq!(cell(coop, "outstanding"), "210.00");
        for other in ["compound", "household", "billed", "paid", "closing"] {
            assert_eq!(cell(coop, other), "", "{other}");
        }
        let household = rows.iter().find(|r| &r[0] == "household").unwrap();
        assert_eq!(cell(household, "allocated"), "10.00");
        assert_eq!(cell(household, "closing"), "38.04");
        for theirs in ["cooperative", "settled", "outstanding"] {
            assert_eq!(cell(household, theirs), "", "{theirs}");
        }
    }
}
