//! The alliance's view (红心物业联盟): is the programme working? Figures for the alliance's board
//! and the sector committee, across every company, with no personal data: no names, no
//! household rows, only counts and sums per compound, grid (网格), building (楼栋), company and
//! cooperative.
//!
//! - Per compound and month: households billed; fees billed, collected within the month,
//!   collected late, still outstanding; the collection rate (collected ÷ billed) counted from the
//!   month the company took the compound over; the share of the fees the cooperative's profit
//!   covered (合作社盈利用物业).
//! - Participation (居民购物50元换55元): households that topped up or spent credit in the month, and
//!   that hold credit now, as counts and as shares of the compound's households; credit sold and
//!   bonus granted.
//! - The cooperative: sales by month, paid with credit or with money; for closed months the close's
//!   own figures (margin, expenses, profit or loss, pool, reserve, loss carried); the paid part
//!   of the prepaid liability at each month's end and the custody deposit due in the month
//!   (from the maintained `paid_credit_months`, as the cooperative's prepaid report); the
//!   prepaid credit outstanding now.
//! - Per company: allocations received, settlements received, what is still owed, arrears by age.
//!
//! Everything is read from figures the write path keeps per month ([`Store::programme_figures`]),
//! never from the journal, and assembled here: the API, the CSV and XLSX exports and the page
//! show the same numbers. Bills and allocations count in the month they are for, payments and
//! settlements in the month of their date, as on the company statement, so each company's
//! monthly figures agree with its statement to the fen.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use utoipa::ToSchema;

use super::prepaid::custody;
use super::ReportError;
use crate::domain::CloseReceipt;
use crate::fees::{age_bucket, month_bounds};
use crate::money::Amount;
use crate::policy::PolicySet;
use crate::store::{paid_credit_at, PaidCreditMonth, ProgrammeFigures, ProgrammeMonth, Store};

/// A share or rate, 0 to 1 (or above, where money paid ahead covers more than the month
/// billed), rounded half-up to four places; `null` where there is nothing to divide by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(value_type = String, example = "0.8532")]
pub struct Ratio(#[serde(with = "rust_decimal::serde::str")] pub Decimal);

impl Ratio {
    /// `part ÷ whole`, or `None` when `whole` is zero.
    pub fn of(part: i64, whole: i64) -> Option<Ratio> {
        if whole == 0 {
            return None;
        }
        let mut r = Decimal::from(part)
            .checked_div(Decimal::from(whole))?
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
        // Always four places: 0.5000, not 0.5.
        r.rescale(4);
        Some(Ratio(r))
    }
}

/// Property fees of a month (物业费).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeeFigures {
    /// Bills made for the month.
    pub households_billed: u64,
    pub billed: Amount,
    /// Of the month's bills: settled by money of that month or earlier (a payment dated in the
    /// month, the close of that month, money paid ahead)…
    pub collected_in_month: Amount,
    /// …settled by later months' payments and closes…
    pub collected_late: Amount,
    /// …and still unpaid now.
    pub outstanding: Amount,
    /// collected_in_month + collected_late.
    pub collected: Amount,
    /// collected ÷ billed.
    pub collection_rate: Option<Ratio>,
    /// collected_in_month ÷ billed.
    pub in_month_rate: Option<Ratio>,
    /// Residents' payments dated in the month (the statement's `paid`).
    pub paid: Amount,
    /// The cooperative's allocations for the month (the statement's `allocated`).
    pub allocated: Amount,
    /// allocated ÷ billed: the share of the month's fees the cooperative's profit covered.
    pub covered_by_cooperative: Option<Ratio>,
    /// What the households owe at the month's end (negative: paid ahead): the sum of billed −
    /// paid − allocated up to the month, the statement's closing balance.
    pub balance: Amount,
}

/// Spend 50, get 55 (居民购物50元换55元) in a month.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Participation {
    pub topups: u64,
    /// Households that topped up in the month…
    pub topup_households: u64,
    /// …as a share of the households there now.
    pub topup_share: Option<Ratio>,
    /// Paid credit sold.
    pub credit_sold: Amount,
    /// Bonus credit granted on top.
    pub bonus_granted: Amount,
    /// Wallet credit spent at the cooperative (before refunds).
    pub credit_spent: Amount,
    /// Households that spent wallet credit in the month, and their share.
    pub spend_households: u64,
    pub spend_share: Option<Ratio>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompoundMonth {
    pub month: String,
    /// Months since the company took the compound over: 0 in the month of the takeover,
    /// negative before it; `null` without a takeover date.
    pub since_takeover: Option<i64>,
    pub fees: FeeFigures,
    pub participation: Participation,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompoundReport {
    pub compound: String,
    pub name: String,
    pub company: String,
    pub eligible: bool,
    pub taken_over_on: Option<NaiveDate>,
    /// Households there now…
    pub households: u64,
    /// …those holding wallet credit or a voucher balance now, and their share.
    pub holders: u64,
    pub holder_share: Option<Ratio>,
    /// Every month with figures, oldest first.
    pub months: Vec<CompoundMonth>,
}

/// A grid, or a building of a grid, in the report's month. Households without a grid or
/// building are under the empty name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlaceReport {
    pub compound: String,
    pub grid: String,
    /// `null` on a grid's line.
    pub building: Option<String>,
    pub households: u64,
    pub holders: u64,
    pub holder_share: Option<Ratio>,
    pub fees: FeeFigures,
    pub participation: Participation,
}

/// What a month close computed (a closed month only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CloseFigures {
    pub sales: Amount,
    pub cogs: Amount,
    /// sales − cogs.
    pub margin: Amount,
    /// Bonus credit granted (promotion expense).
    pub promotion: Amount,
    pub expenses: Amount,
    /// sales − cogs − promotion − expenses: negative is a loss.
    pub profit: Amount,
    pub loss_carried_in: Amount,
    pub loss_carried_out: Amount,
    /// The pool shared toward fees (distributed + reserve carried in)…
    pub pool: Amount,
    /// …what reached households' fees…
    pub allocated: Amount,
    /// …and what stays in reserve for the next close.
    pub reserve: Amount,
    pub households: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CoopMonthReport {
    pub month: String,
    /// Sales paid with wallet credit or vouchers, net of refunds…
    pub credit_sales: Amount,
    /// …and with money (cash, WeChat, Alipay).
    pub cash_sales: Amount,
    pub sales: Amount,
    /// `null` while the month is open.
    pub close: Option<CloseFigures>,
    /// The paid part of the prepaid liability (wallets and vouchers, the residents' own money)
    /// outstanding at the month's end.
    pub prepaid_paid: Amount,
    /// The paid part outstanding at the end of the quarter before the month (last quarter's
    /// prepaid balance)…
    pub custody_base: Amount,
    /// …and the custody deposit (存管资金) due in the month: the top-up policy's
    /// `custody_deposit_ratio` (in effect at the month's end, or on the report date in the
    /// current month) × `custody_base`, rounded once, half-up, as the cooperative's prepaid
    /// report has it. `null` where no top-up policy is in effect.
    pub custody_deposit: Option<Amount>,
}

/// Prepaid credit outstanding now (wallets and vouchers): what the cooperative owes residents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct PrepaidNow {
    pub paid: Amount,
    pub bonus: Amount,
    pub total: Amount,
    pub wallets: u64,
    pub vouchers: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CoopReport {
    pub cooperative: String,
    pub months: Vec<CoopMonthReport>,
    pub prepaid: PrepaidNow,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompanyMonth {
    pub month: String,
    pub billed: Amount,
    pub paid: Amount,
    /// Credited to its households' fees by the cooperatives' closes of the month.
    pub allocations_received: Amount,
    /// Paid over by the cooperatives in the month.
    pub settlements_received: Amount,
    /// Still due from the cooperatives at the month's end.
    pub outstanding: Amount,
}

/// Unpaid fees by how long ago their bill's month began, at the report date.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArrearsAges {
    #[serde(rename = "0-30")]
    pub days_0_30: Amount,
    #[serde(rename = "31-90")]
    pub days_31_90: Amount,
    #[serde(rename = "91-180")]
    pub days_91_180: Amount,
    #[serde(rename = "over-180")]
    pub over_180: Amount,
    pub total: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CompanyReport {
    pub company: String,
    pub name: String,
    pub compounds: u64,
    pub households: u64,
    pub months: Vec<CompanyMonth>,
    pub allocations_received: Amount,
    pub settlements_received: Amount,
    /// Due from the cooperatives now.
    pub outstanding: Amount,
    pub arrears: ArrearsAges,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AllianceReport {
    /// The business date the report was made on; arrears are aged at it.
    pub as_of: NaiveDate,
    /// The month the grid and building tables and the summary show.
    pub month: String,
    /// Every month with figures, oldest first.
    pub months: Vec<String>,
    /// All compounds together, per month.
    pub totals: Vec<CompoundMonth>,
    pub households: u64,
    pub holders: u64,
    pub compounds: Vec<CompoundReport>,
    pub grids: Vec<PlaceReport>,
    pub buildings: Vec<PlaceReport>,
    pub cooperatives: Vec<CoopReport>,
    pub companies: Vec<CompanyReport>,
}

/// The board's one page for a month: the programme in a few lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MonthSummary {
    pub month: String,
    pub as_of: NaiveDate,
    pub households: u64,
    pub holders: u64,
    pub holder_share: Option<Ratio>,
    pub totals: CompoundMonth,
    /// The month before, for the trend.
    pub previous: Option<CompoundMonth>,
    pub compounds: Vec<SummaryLine>,
    pub cooperatives: Vec<SummaryCoop>,
    pub companies: Vec<SummaryCompany>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SummaryLine {
    pub compound: String,
    pub name: String,
    pub company: String,
    pub taken_over_on: Option<NaiveDate>,
    pub figures: CompoundMonth,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SummaryCoop {
    pub cooperative: String,
    pub month: CoopMonthReport,
    pub prepaid: PrepaidNow,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SummaryCompany {
    pub company: String,
    pub name: String,
    pub month: CompanyMonth,
    pub arrears: ArrearsAges,
}

fn add(a: Amount, b: Amount) -> Result<Amount, ReportError> {
    a.checked_add(b).ok_or(ReportError::Overflow)
}

fn sub(a: Amount, b: Amount) -> Result<Amount, ReportError> {
    a.checked_sub(b).ok_or(ReportError::Overflow)
}

/// The maintained counters of one month, summed over the rows given.
#[derive(Clone, Debug, Default)]
struct Counters {
    bills: u64,
    billed: Amount,
    in_month: Amount,
    late: Amount,
    paid: Amount,
    allocated: Amount,
    topups: u64,
    topup_households: u64,
    credit_sold: Amount,
    bonus: Amount,
    spent: Amount,
    spend_households: u64,
}

impl Counters {
    fn add(&mut self, m: &ProgrammeMonth) -> Result<(), ReportError> {
        self.bills += m.bills;
        self.billed = add(self.billed, m.billed)?;
        self.in_month = add(self.in_month, m.collected_in_month)?;
        self.late = add(self.late, m.collected_late)?;
        self.paid = add(self.paid, m.paid)?;
        self.allocated = add(self.allocated, m.allocated)?;
        self.topups += m.topups;
        self.topup_households += m.topup_households;
        self.credit_sold = add(self.credit_sold, m.credit_sold)?;
        self.bonus = add(self.bonus, m.bonus_granted)?;
        self.spent = add(self.spent, m.credit_spent)?;
        self.spend_households += m.spend_households;
        Ok(())
    }

    fn outstanding(&self) -> Result<Amount, ReportError> {
        sub(sub(self.billed, self.in_month)?, self.late)
    }

    fn figures(
        &self,
        households: u64,
        balance: Amount,
    ) -> Result<(FeeFigures, Participation), ReportError> {
        let collected = add(self.in_month, self.late)?;
        let billed = self.billed.fen();
        let homes = i64::try_from(households).unwrap_or(i64::MAX);
        Ok((
            FeeFigures {
                households_billed: self.bills,
                billed: self.billed,
                collected_in_month: self.in_month,
                collected_late: self.late,
                outstanding: self.outstanding()?,
                collected,
                collection_rate: Ratio::of(collected.fen(), billed),
                in_month_rate: Ratio::of(self.in_month.fen(), billed),
                paid: self.paid,
                allocated: self.allocated,
                covered_by_cooperative: Ratio::of(self.allocated.fen(), billed),
                balance,
            },
            Participation {
                topups: self.topups,
                topup_households: self.topup_households,
                topup_share: Ratio::of(self.topup_households as i64, homes),
                credit_sold: self.credit_sold,
                bonus_granted: self.bonus,
                credit_spent: self.spent,
                spend_households: self.spend_households,
                spend_share: Ratio::of(self.spend_households as i64, homes),
            },
        ))
    }
}

/// Months from `from` to `month` (`YYYY-MM`), negative when `month` is earlier.
fn months_between(from: NaiveDate, month: &str) -> Option<i64> {
    let (first, _) = month_bounds("month", month).ok()?;
    Some(
        i64::from(first.year() - from.year()) * 12 + i64::from(first.month())
            - i64::from(from.month()),
    )
}

/// A month series of counters: the balance carried from month to month.
fn series(
    counters: &BTreeMap<String, Counters>,
    households: u64,
    taken_over_on: Option<NaiveDate>,
) -> Result<Vec<CompoundMonth>, ReportError> {
    let mut balance = Amount::ZERO;
    let mut out = Vec::with_capacity(counters.len());
    for (month, c) in counters {
        balance = sub(sub(add(balance, c.billed)?, c.paid)?, c.allocated)?;
        let (fees, participation) = c.figures(households, balance)?;
        out.push(CompoundMonth {
            month: month.clone(),
            since_takeover: taken_over_on.and_then(|d| months_between(d, month)),
            fees,
            participation,
        });
    }
    Ok(out)
}

fn close_figures(result: &str) -> Result<CloseFigures, ReportError> {
    let r: CloseReceipt = serde_json::from_str(result)
        .map_err(|e| crate::domain::StoreError(format!("a stored close is unreadable: {e}")))?;
    Ok(CloseFigures {
        margin: sub(r.sales, r.cogs)?,
        sales: r.sales,
        cogs: r.cogs,
        promotion: r.promotion,
        expenses: r.expenses,
        profit: r.profit,
        loss_carried_in: r.loss_carried_in,
        loss_carried_out: r.loss_carried_out,
        pool: r.pool,
        allocated: r.allocated,
        reserve: r.reserve,
        households: r.households,
    })
}

/// Builds the report from the store's figures; `month` picks the month of the grid and
/// building tables (default: the latest month with figures, or `today`'s).
pub fn build(
    f: &ProgrammeFigures,
    policies: &PolicySet,
    prepaid: BTreeMap<String, PrepaidNow>,
    today: NaiveDate,
    month: Option<&str>,
) -> Result<AllianceReport, ReportError> {
    let months: BTreeSet<String> = f
        .months
        .iter()
        .map(|m| m.month.clone())
        .chain(f.coop_months.iter().map(|m| m.month.clone()))
        .chain(f.closes.iter().map(|c| c.1.clone()))
        .chain(f.settlements.iter().map(|s| s.2.clone()))
        .chain(f.paid_credit.iter().map(|m| m.month.clone()))
        .collect();
    let month = month
        .map(str::to_string)
        .or_else(|| months.iter().next_back().cloned())
        .unwrap_or_else(|| crate::domain::month_of(today));

    // Households now, per compound and per place.
    let mut homes: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    let mut grid_homes: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    let mut building_homes: BTreeMap<(&str, &str, &str), (u64, u64)> = BTreeMap::new();
    for p in &f.places {
        for slot in [
            homes.entry(&p.compound).or_default(),
            grid_homes.entry((&p.compound, &p.grid)).or_default(),
            building_homes
                .entry((&p.compound, &p.grid, &p.building))
                .or_default(),
        ] {
            slot.0 += p.households;
            slot.1 += p.holders;
        }
    }

    // Counters per compound and month, all compounds per month, and the report month's per place.
    let mut per_compound: BTreeMap<&str, BTreeMap<String, Counters>> = BTreeMap::new();
    let mut all: BTreeMap<String, Counters> = BTreeMap::new();
    let mut grid_balance: BTreeMap<(&str, &str), Amount> = BTreeMap::new();
    let mut building_balance: BTreeMap<(&str, &str, &str), Amount> = BTreeMap::new();
    let mut grid_month: BTreeMap<(&str, &str), Counters> = BTreeMap::new();
    let mut building_month: BTreeMap<(&str, &str, &str), Counters> = BTreeMap::new();
    for m in &f.months {
        per_compound
            .entry(&m.compound)
            .or_default()
            .entry(m.month.clone())
            .or_default()
            .add(m)?;
        all.entry(m.month.clone()).or_default().add(m)?;
        if m.month <= month {
            let moved = sub(sub(m.billed, m.paid)?, m.allocated)?;
            for slot in [
                grid_balance.entry((&m.compound, &m.grid)).or_default(),
                building_balance
                    .entry((&m.compound, &m.grid, &m.building))
                    .or_default(),
            ] {
                *slot = add(*slot, moved)?;
            }
        }
        if m.month == month {
            grid_month
                .entry((&m.compound, &m.grid))
                .or_default()
                .add(m)?;
            building_month
                .entry((&m.compound, &m.grid, &m.building))
                .or_default()
                .add(m)?;
        }
    }

    let households: u64 = homes.values().map(|h| h.0).sum();
    let holders: u64 = homes.values().map(|h| h.1).sum();
    let share = |part: u64, whole: u64| Ratio::of(part as i64, whole as i64);
    let empty = BTreeMap::new();

    let mut compounds = Vec::with_capacity(f.compounds.len());
    for c in &f.compounds {
        let (n, holding) = homes.get(c.code.as_str()).copied().unwrap_or_default();
        let counters = per_compound.get(c.code.as_str()).unwrap_or(&empty);
        compounds.push(CompoundReport {
            compound: c.code.clone(),
            name: c.name.clone(),
            company: c.company.clone(),
            eligible: c.eligible,
            taken_over_on: c.taken_over_on,
            households: n,
            holders: holding,
            holder_share: share(holding, n),
            months: series(counters, n, c.taken_over_on)?,
        });
    }

    let place = |compound: &str,
                 grid: &str,
                 building: Option<&str>,
                 (n, holding): (u64, u64),
                 counters: Option<&Counters>,
                 balance: Amount|
     -> Result<PlaceReport, ReportError> {
        let (fees, participation) = counters.cloned().unwrap_or_default().figures(n, balance)?;
        Ok(PlaceReport {
            compound: compound.to_string(),
            grid: grid.to_string(),
            building: building.map(str::to_string),
            households: n,
            holders: holding,
            holder_share: share(holding, n),
            fees,
            participation,
        })
    };
    let mut grids = Vec::with_capacity(grid_homes.len());
    for (&(compound, grid), &counts) in &grid_homes {
        let key = (compound, grid);
        grids.push(place(
            compound,
            grid,
            None,
            counts,
            grid_month.get(&key),
            grid_balance.get(&key).copied().unwrap_or_default(),
        )?);
    }
    let mut buildings = Vec::with_capacity(building_homes.len());
    for (&(compound, grid, building), &counts) in &building_homes {
        let key = (compound, grid, building);
        buildings.push(place(
            compound,
            grid,
            Some(building),
            counts,
            building_month.get(&key),
            building_balance.get(&key).copied().unwrap_or_default(),
        )?);
    }

    // The cooperatives: sales per month, and each closed month's own figures.
    let mut closes: BTreeMap<(&str, &str), CloseFigures> = BTreeMap::new();
    for (coop, m, result) in &f.closes {
        closes.insert((coop, m), close_figures(result)?);
    }
    let mut cooperatives = Vec::with_capacity(f.cooperatives.len());
    for coop in &f.cooperatives {
        let mut by_month: BTreeMap<&str, (Amount, Amount)> = BTreeMap::new();
        for m in f.coop_months.iter().filter(|m| &m.cooperative == coop) {
            by_month.insert(&m.month, (m.credit_sales, m.cash_sales));
        }
        for (c, m) in closes.keys() {
            if *c == coop.as_str() {
                by_month.entry(m).or_default();
            }
        }
        let paid_credit: Vec<PaidCreditMonth> = f
            .paid_credit
            .iter()
            .filter(|m| &m.cooperative == coop)
            .cloned()
            .collect();
        // Every month from its first with figures on: credit outstanding is owed, and its
        // deposit held, in months without sales too.
        let first = by_month
            .keys()
            .copied()
            .chain(paid_credit.iter().map(|m| m.month.as_str()))
            .min();
        if let Some(first) = first {
            for m in months.range(first.to_string()..) {
                by_month.entry(m).or_default();
            }
        }
        let mut lines = Vec::with_capacity(by_month.len());
        for (m, (credit, cash)) in by_month {
            let (w, v) = paid_credit_at(&paid_credit, m).ok_or(ReportError::Overflow)?;
            let (_, last) = month_bounds("month", m)?;
            let custody = match custody(policies, &paid_credit, last.min(today)) {
                Ok(c) => Some(c),
                Err(ReportError::Rejected(_)) => None,
                Err(e) => return Err(e),
            };
            lines.push(CoopMonthReport {
                month: m.to_string(),
                credit_sales: credit,
                cash_sales: cash,
                sales: add(credit, cash)?,
                close: closes.get(&(coop.as_str(), m)).cloned(),
                prepaid_paid: add(w, v)?,
                custody_base: custody.as_ref().map_or(Amount::ZERO, |c| c.prepaid_balance),
                custody_deposit: custody.map(|c| c.deposit),
            });
        }
        cooperatives.push(CoopReport {
            cooperative: coop.clone(),
            months: lines,
            prepaid: prepaid.get(coop).cloned().unwrap_or_default(),
        });
    }

    // The companies: allocations from the closes' per-company shares, settlements by month,
    // fees and arrears from their compounds' counters.
    let mut received: BTreeMap<(String, String), Amount> = BTreeMap::new();
    for (_, m, result) in &f.closes {
        let r: CloseReceipt = serde_json::from_str(result)
            .map_err(|e| crate::domain::StoreError(format!("a stored close is unreadable: {e}")))?;
        for share in &r.companies {
            let slot = received
                .entry((share.company.clone(), m.clone()))
                .or_default();
            *slot = add(*slot, share.amount)?;
        }
    }
    let mut settled: BTreeMap<(String, String), Amount> = BTreeMap::new();
    for (_, company, m, amount) in &f.settlements {
        let slot = settled.entry((company.clone(), m.clone())).or_default();
        *slot = add(*slot, *amount)?;
    }
    let mut companies = Vec::with_capacity(f.companies.len());
    for (code, name) in &f.companies {
        let mine: Vec<&CompoundReport> = compounds.iter().filter(|c| &c.company == code).collect();
        let mut fees: BTreeMap<&str, (Amount, Amount)> = BTreeMap::new();
        let mut arrears = ArrearsAges::default();
        // A compound's month counts for the company it was with in that month: a moved
        // compound's months before the move stay its old company's.
        for (c, info) in compounds.iter().zip(&f.compounds) {
            for m in c
                .months
                .iter()
                .filter(|m| info.company_in(&m.month) == code)
            {
                let slot = fees.entry(&m.month).or_default();
                slot.0 = add(slot.0, m.fees.billed)?;
                slot.1 = add(slot.1, m.fees.paid)?;
                let (first, _) = month_bounds("month", &m.month)?;
                let bucket = match age_bucket(first, today) {
                    0 => &mut arrears.days_0_30,
                    1 => &mut arrears.days_31_90,
                    2 => &mut arrears.days_91_180,
                    _ => &mut arrears.over_180,
                };
                *bucket = add(*bucket, m.fees.outstanding)?;
                arrears.total = add(arrears.total, m.fees.outstanding)?;
            }
        }
        // A payment the old company took after the move is its own, not the compound's
        // company's that month.
        for (was, paid_to, m, amount) in &f.paid_elsewhere {
            if was == code {
                let slot = fees.entry(m).or_default();
                slot.1 = sub(slot.1, *amount)?;
            }
            if paid_to == code {
                let slot = fees.entry(m).or_default();
                slot.1 = add(slot.1, *amount)?;
            }
        }
        let mut company_months: BTreeSet<&str> = fees.keys().copied().collect();
        for (k, m) in received.keys().chain(settled.keys()) {
            if k == code {
                company_months.insert(m);
            }
        }
        let (mut total_received, mut total_settled) = (Amount::ZERO, Amount::ZERO);
        let mut lines = Vec::with_capacity(company_months.len());
        for m in company_months {
            let key = (code.clone(), m.to_string());
            let got = received.get(&key).copied().unwrap_or_default();
            let paid_over = settled.get(&key).copied().unwrap_or_default();
            total_received = add(total_received, got)?;
            total_settled = add(total_settled, paid_over)?;
            let (billed, paid) = fees.get(m).copied().unwrap_or_default();
            lines.push(CompanyMonth {
                month: m.to_string(),
                billed,
                paid,
                allocations_received: got,
                settlements_received: paid_over,
                outstanding: sub(total_received, total_settled)?,
            });
        }
        companies.push(CompanyReport {
            company: code.clone(),
            name: name.clone(),
            compounds: mine.len() as u64,
            households: mine.iter().map(|c| c.households).sum(),
            months: lines,
            allocations_received: total_received,
            settlements_received: total_settled,
            outstanding: sub(total_received, total_settled)?,
            arrears,
        });
    }

    Ok(AllianceReport {
        as_of: today,
        month,
        months: months.into_iter().collect(),
        totals: series(&all, households, None)?,
        households,
        holders,
        compounds,
        grids,
        buildings,
        cooperatives,
        companies,
    })
}

/// The alliance's report, read from the store: `month` as in [`build`].
pub async fn alliance(
    store: &dyn Store,
    policies: &PolicySet,
    today: NaiveDate,
    month: Option<&str>,
) -> Result<AllianceReport, ReportError> {
    if let Some(m) = month {
        month_bounds("month", m)?;
    }
    let figures = store.programme_figures().await?;
    let mut prepaid = BTreeMap::new();
    for coop in &figures.cooperatives {
        if let Some(p) = store.prepaid_figures(coop, today, None).await? {
            let paid = add(p.wallets.paid, p.vouchers.paid)?;
            let bonus = add(p.wallets.bonus, p.vouchers.bonus)?;
            prepaid.insert(
                coop.clone(),
                PrepaidNow {
                    paid,
                    bonus,
                    total: add(paid, bonus)?,
                    wallets: p.wallets.holders,
                    vouchers: p.vouchers.holders,
                },
            );
        }
    }
    build(&figures, policies, prepaid, today, month)
}

/// The board's one-page summary of `month`, from the report.
pub fn summary(report: &AllianceReport) -> MonthSummary {
    let month = report.month.as_str();
    let at = |series: &[CompoundMonth], m: &str| series.iter().find(|x| x.month == m).cloned();
    let blank = |m: &str| CompoundMonth {
        month: m.to_string(),
        since_takeover: None,
        fees: FeeFigures::default(),
        participation: Participation::default(),
    };
    let previous_month = month_bounds("month", month)
        .ok()
        .and_then(|(first, _)| first.pred_opt())
        .map(crate::domain::month_of);
    MonthSummary {
        month: month.to_string(),
        as_of: report.as_of,
        households: report.households,
        holders: report.holders,
        holder_share: Ratio::of(report.holders as i64, report.households as i64),
        totals: at(&report.totals, month).unwrap_or_else(|| blank(month)),
        previous: previous_month.and_then(|p| at(&report.totals, &p)),
        compounds: report
            .compounds
            .iter()
            .map(|c| SummaryLine {
                compound: c.compound.clone(),
                name: c.name.clone(),
                company: c.company.clone(),
                taken_over_on: c.taken_over_on,
                figures: at(&c.months, month).unwrap_or_else(|| blank(month)),
            })
            .collect(),
        cooperatives: report
            .cooperatives
            .iter()
            .map(|c| SummaryCoop {
                cooperative: c.cooperative.clone(),
                month: c
                    .months
                    .iter()
                    .find(|m| m.month == month)
                    .cloned()
                    .unwrap_or(CoopMonthReport {
                        month: month.to_string(),
                        credit_sales: Amount::ZERO,
                        cash_sales: Amount::ZERO,
                        sales: Amount::ZERO,
                        close: None,
                        prepaid_paid: Amount::ZERO,
                        custody_base: Amount::ZERO,
                        custody_deposit: None,
                    }),
                prepaid: c.prepaid.clone(),
            })
            .collect(),
        companies: report
            .companies
            .iter()
            .map(|k| SummaryCompany {
                company: k.company.clone(),
                name: k.name.clone(),
                month: k
                    .months
                    .iter()
                    .find(|m| m.month == month)
                    .cloned()
                    .unwrap_or_else(|| CompanyMonth {
                        month: month.to_string(),
                        outstanding: k
                            .months
                            .iter()
                            .rev()
                            .find(|m| m.month.as_str() < month)
                            .map_or(Amount::ZERO, |m| m.outstanding),
                        ..CompanyMonth::default()
                    }),
                arrears: k.arrears,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_up_to_four_places_and_never_divide_by_zero() {
        assert_eq!(
            Ratio::of(1, 3).map(|r| r.0.to_string()),
            Some("0.3333".into())
        );
        assert_eq!(
            Ratio::of(2, 3).map(|r| r.0.to_string()),
            Some("0.6667".into())
        );
        // 1/8 = 0.125 exactly, 0.00125 → 0.0013 half-up (half-even would give 0.0012).
        assert_eq!(
            Ratio::of(1, 800).map(|r| r.0.to_string()),
            Some("0.0013".into())
        );
        assert_eq!(
            Ratio::of(1, 2).map(|r| r.0.to_string()),
            Some("0.5000".into())
        );
        assert_eq!(
            Ratio::of(0, 2).map(|r| r.0.to_string()),
            Some("0.0000".into())
        );
        assert_eq!(Ratio::of(5, 0), None);
    }

    #[test]
    fn months_since_takeover_count_calendar_months() {
        let d = NaiveDate::from_ymd_opt(2025, 11, 20).unwrap();
        assert_eq!(months_between(d, "2025-11"), Some(0));
        assert_eq!(months_between(d, "2026-02"), Some(3));
        assert_eq!(months_between(d, "2025-09"), Some(-2));
    }
}
