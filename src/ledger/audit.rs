//! Holding the tables that repeat or derive from the journal to what the chain says: vouchers to
//! their issue, void and expiry facts, month closes to their close entries, each fee bill's
//! `settled` to a replay of the household's fee postings, and each sale tender's paid and bonus
//! parts to the sale entry's postings. Stores read the rows (entries named by chain sequence);
//! the rules live here, once for both backends. Each check returns the first problem, naming the
//! table.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use super::{ChainSummary, EntryKind, Fact, Movement, Owner};

/// `id, serial, key id, cooperative id, household id, issued on, expires on, status, the voucher
/// it was exchanged from`.
pub type VoucherTableRow = (
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    Option<i64>,
);

/// `cooperative id, month, sequence of its entry`.
pub type CloseTableRow = (i64, String, Option<i64>);

/// `id, household id, company id, month, amount, settled, sequence of its entry`.
pub type BillTableRow = (i64, i64, i64, String, i64, i64, i64);

/// `sequence of the sale's entry, type, household id, voucher id, amount, paid part, bonus part,
/// refunded, refunded paid, refunded bonus`.
pub type TenderTableRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
);

/// The last day of a `YYYY-MM` month.
fn month_end(month: &str) -> Option<NaiveDate> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    next.pred_opt()
}

/// The month a date falls in, `YYYY-MM`.
pub fn month_of(d: NaiveDate) -> String {
    format!("{:04}-{:02}", d.year(), d.month())
}

/// Every voucher row agrees with its issue fact (serial, key, cooperative, holder, dates, and
/// the voucher an exchange issued it for) and its status with the last of its void, expiry or
/// exchange facts; every voucher the chain issued has a row. Vouchers issued before the chain recorded facts (legacy) are checked on status only
/// where a fact names them.
pub fn check_vouchers(summary: &ChainSummary, rows: &[VoucherTableRow]) -> Option<String> {
    let mut issued: HashMap<i64, (i64, &Fact)> = HashMap::new();
    let mut status: HashMap<i64, &str> = HashMap::new();
    let mut replaced: HashMap<i64, i64> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        match fact {
            Fact::VoucherIssued { voucher, .. } => {
                issued.insert(*voucher, (*seq, fact));
                status.insert(*voucher, "active");
            }
            Fact::VoucherExchanged {
                voucher, replaces, ..
            } => {
                issued.insert(*voucher, (*seq, fact));
                status.insert(*voucher, "active");
                status.insert(*replaces, "exchanged");
                replaced.insert(*voucher, *replaces);
            }
            Fact::VoucherVoided { voucher } => {
                status.insert(*voucher, "void");
            }
            Fact::VoucherExpired { voucher } => {
                status.insert(*voucher, "expired");
            }
            _ => {}
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (id, serial, key_id, coop, household, issued_on, expires_on, stored_status, from) in rows {
        seen.insert(*id);
        let name = format!("vouchers: voucher {id}");
        if replaced.get(id) != from.as_ref() {
            return Some(format!(
                "{name} names {from:?} as the voucher it was exchanged from, the chain {:?}",
                replaced.get(id)
            ));
        }
        match issued.get(id) {
            Some((
                seq,
                Fact::VoucherIssued {
                    serial: s,
                    key_id: k,
                    cooperative: c,
                    household: h,
                    issued_on: i,
                    expires_on: e,
                    ..
                }
                | Fact::VoucherExchanged {
                    serial: s,
                    key_id: k,
                    cooperative: c,
                    household: h,
                    issued_on: i,
                    expires_on: e,
                    ..
                },
            )) => {
                let agrees = i64::try_from(*s).ok() == Some(*serial)
                    && i64::from(*k) == *key_id
                    && c == coop
                    && h == household
                    && i.to_string() == *issued_on
                    && e.to_string() == *expires_on;
                if !agrees {
                    return Some(format!(
                        "{name} differs from its issue in entry {seq} (serial, key, owner or dates)"
                    ));
                }
            }
            _ if summary.legacy_vouchers.binary_search(id).is_ok() => {}
            _ => return Some(format!("{name} was never issued in the chain")),
        }
        if let Some(expected) = status.get(id) {
            if expected != stored_status {
                return Some(format!(
                    "{name} is {stored_status} but the chain says {expected}"
                ));
            }
        }
    }
    let mut missing: Vec<&i64> = issued.keys().filter(|id| !seen.contains(*id)).collect();
    missing.sort();
    missing
        .first()
        .map(|id| format!("vouchers: voucher {id} issued in the chain has no row"))
}

/// Every stored close has its close entry, which names that cooperative and month and is dated
/// after the month; every close entry has its row.
pub fn check_closes(summary: &ChainSummary, rows: &[CloseTableRow]) -> Option<String> {
    let mut closes: BTreeMap<(i64, &str), i64> = BTreeMap::new();
    let mut fact_at: HashMap<i64, (i64, &str)> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        if let Fact::MonthClosed { cooperative, month } = fact {
            closes.insert((*cooperative, month.as_str()), *seq);
            fact_at.insert(*seq, (*cooperative, month.as_str()));
        }
    }
    for (coop, month, entry) in rows {
        let name = format!("month_closes: cooperative {coop} month {month}");
        let Some(end) = month_end(month) else {
            return Some(format!("{name}: not a month"));
        };
        let Some(seq) = entry else {
            return Some(format!("{name} has no close entry in the chain"));
        };
        let Some((kind, date)) = summary.entry(*seq) else {
            return Some(format!("{name}: its entry {seq} is not in the chain"));
        };
        if kind != EntryKind::ProfitAllocation {
            return Some(format!("{name}: its entry {seq} is not a close"));
        }
        match fact_at.get(seq) {
            Some(named) if *named == (*coop, month.as_str()) => {}
            // A close posted before the chain recorded facts names its month in its memo only.
            None if summary.last_v1_date.is_some_and(|d| date <= d) => {}
            _ => {
                return Some(format!(
                    "{name}: its entry {seq} closes another cooperative or month"
                ))
            }
        }
        if date <= end {
            return Some(format!(
                "{name}: its entry {seq} is dated {date}, inside the month closed"
            ));
        }
        closes.remove(&(*coop, month.as_str()));
    }
    closes.into_iter().next().map(|((coop, month), seq)| {
        format!(
            "month_closes: the close of cooperative {coop} month {month} in entry {seq} has no row"
        )
    })
}

/// Replays each household's fee postings in chain order the way bills are settled: a new bill
/// takes what was paid ahead (a negative fee balance), and every payment or allocation covers
/// open bills oldest month first. Every bill must be posted by its entry for its amount, for the
/// month and company its entry names, and its `settled` must be what the replay gives.
pub fn check_bills(summary: &ChainSummary, rows: &[BillTableRow]) -> Option<String> {
    // (household, entry) -> index in rows
    let mut by_entry: HashMap<(i64, i64), usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if by_entry.insert((row.1, row.6), i).is_some() {
            return Some(format!(
                "fee_bills: entry {} bills household {} twice",
                row.6, row.1
            ));
        }
    }
    let bill_facts: HashMap<i64, (i64, &str)> = summary
        .facts
        .iter()
        .filter_map(|(seq, _, f)| match f {
            Fact::FeeBills { company, month } => Some((*seq, (*company, month.as_str()))),
            _ => None,
        })
        .collect();
    let mut settled: Vec<Option<i64>> = vec![None; rows.len()];
    let company_of = MovementCompanies::of(summary);
    // (household, company) -> (fee balance, open bills by index): a payment or allocation
    // settles the bills of its own company only (a moved compound's old bills stay its old
    // company's), and only money paid ahead to a company settles that company's new bill.
    let mut households: HashMap<(i64, Option<i64>), (i64, Vec<usize>)> = HashMap::new();
    for m in &summary.movements {
        let (Owner::Household(h), "fees") = (m.owner, m.name.as_str()) else {
            continue;
        };
        let bill = (m.kind == EntryKind::FeeBill && m.amount > 0)
            .then(|| by_entry.get(&(h, m.seq)).copied())
            .flatten();
        let company = company_of.company(h, m, bill.map(|i| rows[i].2));
        let (balance, open) = households.entry((h, company)).or_default();
        if m.kind == EntryKind::FeeBill && m.amount > 0 {
            let Some(&i) = by_entry.get(&(h, m.seq)) else {
                return Some(format!(
                    "fee_bills: entry {} bills household {h} but no bill names it",
                    m.seq
                ));
            };
            let (id, _, company, month, amount, _, _) = &rows[i];
            if *amount != m.amount {
                return Some(format!(
                    "fee_bills: bill {id} is for {amount} fen but its entry {} posts {}",
                    m.seq, m.amount
                ));
            }
            if let Some(named) = bill_facts.get(&m.seq) {
                if *named != (*company, month.as_str()) {
                    return Some(format!(
                        "fee_bills: bill {id} differs from the company or month its entry {} names",
                        m.seq
                    ));
                }
            }
            let prepaid = balance.checked_neg().unwrap_or(0).max(0);
            settled[i] = Some(prepaid.min(*amount));
            open.push(i);
        } else if m.amount < 0 {
            let mut left = m.amount.checked_neg().unwrap_or(0);
            open.sort_by(|a, b| rows[*a].3.cmp(&rows[*b].3));
            for &i in open.iter() {
                if left <= 0 {
                    break;
                }
                let done = settled[i].unwrap_or(0);
                let take = (rows[i].4 - done).min(left);
                if take > 0 {
                    settled[i] = Some(done + take);
                    left -= take;
                }
            }
            open.retain(|&i| settled[i].unwrap_or(0) < rows[i].4);
        }
        *balance = balance.saturating_add(m.amount);
    }
    for (i, row) in rows.iter().enumerate() {
        match settled[i] {
            None => {
                return Some(format!(
                    "fee_bills: bill {} is not posted by its entry {}",
                    row.0, row.6
                ))
            }
            Some(s) if s != row.5 => {
                return Some(format!(
                    "fee_bills: bill {} says {} fen settled but the fee postings settle {s}",
                    row.0, row.5
                ))
            }
            Some(_) => {}
        }
    }
    None
}

/// Which company each movement of a household's fee account belongs to, from the chain's facts
/// alone, by the rule the statement reads (`rows::fee_company` in src/store/rows.rs): a bill to
/// its company, a payment to the company its receipt names, anything else (an allocation, a
/// payment from before receipts) to the company with the household's compound in the
/// movement's month (the month closed, for an allocation) — the compound's company then being
/// the old value of the first move dated after that month began, else the latest. A household
/// whose compound the chain does not name (created before the chain recorded facts) keeps all
/// its movements together, as one account.
struct MovementCompanies<'a> {
    compound_of: HashMap<i64, i64>,
    latest: HashMap<i64, i64>,
    moves: HashMap<i64, Vec<(NaiveDate, Option<i64>)>>,
    receipts: HashMap<(i64, i64), i64>,
    closes: HashMap<i64, &'a str>,
}

impl<'a> MovementCompanies<'a> {
    fn of(summary: &'a ChainSummary) -> Self {
        let mut c = MovementCompanies {
            compound_of: HashMap::new(),
            latest: HashMap::new(),
            moves: HashMap::new(),
            receipts: HashMap::new(),
            closes: HashMap::new(),
        };
        for (seq, _, fact) in &summary.facts {
            match fact {
                Fact::Households { rows } => {
                    for (id, _, compound, _) in rows {
                        c.compound_of.insert(*id, *compound);
                    }
                }
                Fact::Compound { id, company, .. } => {
                    c.latest.insert(*id, *company);
                }
                Fact::MasterChanged {
                    subject,
                    id,
                    field,
                    old,
                    new,
                    effective_from,
                } if subject == "compound" && field == "company" => {
                    let old = old.as_deref().and_then(|o| o.parse().ok());
                    c.moves.entry(*id).or_default().push((*effective_from, old));
                    if let Ok(new) = new.parse() {
                        c.latest.insert(*id, new);
                    }
                }
                Fact::FeeReceipt {
                    company, household, ..
                } => {
                    c.receipts.insert((*seq, *household), *company);
                }
                Fact::MonthClosed { month, .. } => {
                    c.closes.insert(*seq, month.as_str());
                }
                _ => {}
            }
        }
        c
    }

    /// The company of movement `m` of household `h`'s fees (`bill`: the company of the bill it
    /// posts, if it is one); `None` for a household whose compound the chain does not name.
    fn company(&self, h: i64, m: &Movement, bill: Option<i64>) -> Option<i64> {
        let compound = self.compound_of.get(&h)?;
        if let Some(company) = bill {
            return Some(company);
        }
        if let Some(company) = self.receipts.get(&(m.seq, h)) {
            return Some(*company);
        }
        let first = match self.closes.get(&m.seq) {
            Some(month) => month_end(month)?.with_day(1)?,
            None => m.business_date.with_day(1)?,
        };
        let in_force = self
            .moves
            .get(compound)
            .and_then(|changes| changes.iter().find(|(from, _)| *from > first))
            .map(|(_, old)| *old);
        match in_force {
            Some(old) => old,
            None => self.latest.get(compound).copied(),
        }
    }
}

/// Each sale's wallet and voucher tenders take from each holder exactly what the sale entry
/// debits that holder's paid and bonus accounts; other tenders have no paid or bonus part.
pub fn check_tenders(summary: &ChainSummary, rows: &[TenderTableRow]) -> Option<String> {
    // (sale entry, holder) -> (paid, bonus)
    let mut posted: BTreeMap<(i64, Owner), (i64, i64)> = BTreeMap::new();
    for m in &summary.movements {
        if m.kind != EntryKind::Sale {
            continue;
        }
        let holder = match (m.owner, m.name.as_str()) {
            (Owner::Voucher(_), _) => m.owner,
            (Owner::Household(_), name) if name.starts_with("wallet:") => m.owner,
            _ => continue,
        };
        let slot = posted.entry((m.seq, holder)).or_default();
        if m.name.ends_with("paid") {
            slot.0 += m.amount;
        } else {
            slot.1 += m.amount;
        }
    }
    let mut stored: BTreeMap<(i64, Owner), (i64, i64)> = BTreeMap::new();
    for (seq, kind, household, voucher, amount, paid, bonus, ..) in rows {
        let holder = match (kind.as_str(), household, voucher) {
            ("wallet", Some(h), _) => Owner::Household(*h),
            ("voucher", _, Some(v)) => Owner::Voucher(*v),
            _ => {
                if *paid != 0 || *bonus != 0 {
                    return Some(format!(
                        "sale_tenders: a {kind} tender of entry {seq} has a paid or bonus part"
                    ));
                }
                continue;
            }
        };
        if paid + bonus != *amount {
            return Some(format!(
                "sale_tenders: a {kind} tender of entry {seq} splits {amount} fen as {paid} paid and {bonus} bonus"
            ));
        }
        let slot = stored.entry((*seq, holder)).or_default();
        slot.0 += paid;
        slot.1 += bonus;
    }
    if posted != stored {
        let differs = posted
            .iter()
            .find(|(k, v)| stored.get(k) != Some(v))
            .or_else(|| stored.iter().find(|(k, v)| posted.get(k) != Some(v)))
            .map_or(0, |((seq, _), _)| *seq);
        return Some(format!(
            "sales, sale_tenders: the tenders of entry {differs} differ from what its postings take from wallets and vouchers"
        ));
    }
    None
}

/// `sequence of its entry, cooperative id, household id, method, paid, bonus, voucher id,
/// business date, month, stored id of its entry, sequence of the entry that voided it` of a
/// top-up.
pub type TopupTableRow = (
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    Option<i64>,
    String,
    String,
    i64,
    Option<i64>,
);

/// `sequence of its entry, cooperative id, company id, amount, business date` of a settlement.
pub type SettlementTableRow = (i64, i64, i64, i64, String);

/// `sequence of its entry, household id, kind, amount, method` of a fee credit.
pub type FeeCreditTableRow = (i64, i64, String, i64, Option<String>);

/// `sequence of its entry, company id, number, household id, amount, method, cooperative id,
/// shop id` of a numbered fee receipt.
pub type FeeReceiptTableRow = (i64, i64, i64, i64, i64, String, Option<i64>, Option<i64>);

/// `sequence of its entry, stored id of the sale's entry, amount, cost` of a sale refund.
pub type SaleRefundTableRow = (i64, i64, i64, i64);

/// `sequence of its entry, stored id of its entry, cooperative id, total, cost, refunded,
/// refunded cost, business date` of a sale.
pub type SaleTableRow = (i64, i64, i64, i64, i64, i64, i64, String);

/// `sequence of the refund's entry, stored id of the sale's entry, tender index, amount, and
/// what the tender says was refunded to it in all (none when the sale has no such tender)` of
/// what one refund gave back to one tender.
pub type RefundTenderTableRow = (i64, i64, i64, i64, Option<i64>);

/// The records the write path keeps beside the entries they describe.
pub struct Records<'a> {
    pub topups: &'a [TopupTableRow],
    pub settlements: &'a [SettlementTableRow],
    pub fee_credits: &'a [FeeCreditTableRow],
    pub fee_receipts: &'a [FeeReceiptTableRow],
    pub sale_refunds: &'a [SaleRefundTableRow],
    pub sales: &'a [SaleTableRow],
    pub refund_tenders: &'a [RefundTenderTableRow],
}

/// What one entry posted to each audited account: `(owner, account name) -> fen`.
fn postings_of(summary: &ChainSummary) -> HashMap<i64, BTreeMap<(Owner, &str), i64>> {
    let mut out: HashMap<i64, BTreeMap<(Owner, &str), i64>> = HashMap::new();
    for m in &summary.movements {
        *out.entry(m.seq)
            .or_default()
            .entry((m.owner, m.name.as_str()))
            .or_default() += m.amount;
    }
    out
}

/// A top-up is marked voided exactly when a void entry of the chain reverses it, and that entry
/// posted the top-up's own postings negated: what the void gave back is what the top-up
/// credited, to the fen, on every account.
fn check_topup_voids(summary: &ChainSummary, topups: &[TopupTableRow]) -> Option<String> {
    let posted = postings_of(summary);
    let empty = BTreeMap::new();
    let at = |seq: i64| posted.get(&seq).unwrap_or(&empty);
    let reverses: HashMap<i64, i64> = summary.reverses.iter().copied().collect();
    // The void entries of the chain, by the stored id of the top-up each reverses.
    let mut voids: HashMap<i64, i64> = HashMap::new();
    for (seq, kind, _) in &summary.entries {
        if *kind != EntryKind::TopUpVoid {
            continue;
        }
        let Some(topup) = reverses.get(seq) else {
            return Some(format!(
                "topups: the top-up void of entry {seq} names no top-up"
            ));
        };
        if voids.insert(*topup, *seq).is_some() {
            return Some(format!(
                "topups: the top-up {topup} is voided twice (entry {seq})"
            ));
        }
    }
    let mut marked = 0usize;
    for (seq, .., stored, voided) in topups {
        let expected = voids.get(stored).copied();
        if *voided != expected {
            return Some(format!(
                "topups: the top-up of entry {seq} is marked voided by {voided:?}, the chain says {expected:?}"
            ));
        }
        if let Some(v) = voided {
            marked += 1;
            let undone = at(*v);
            let done = at(*seq);
            let mirrors = done.len() == undone.len()
                && done.iter().all(|(k, fen)| undone.get(k) == Some(&-fen));
            if !mirrors {
                return Some(format!(
                    "topups: the void of entry {v} does not reverse the top-up of entry {seq} exactly"
                ));
            }
        }
    }
    if marked != voids.len() {
        return Some("topups: a top-up void of the chain reverses no top-up on file".into());
    }
    None
}

/// Each record agrees with the entry it describes: its kind and date, and the amounts, holder,
/// method and owners its postings show; each entry of those kinds has its record.
pub fn check_records(summary: &ChainSummary, r: &Records<'_>) -> Option<String> {
    let posted = postings_of(summary);
    let empty = BTreeMap::new();
    let at = |seq: i64| posted.get(&seq).unwrap_or(&empty);
    let kind_date = |seq: i64, kind: EntryKind, date: Option<&str>| -> bool {
        summary
            .entry(seq)
            .is_some_and(|(k, d)| k == kind && date.is_none_or(|date| d.to_string() == date))
    };
    let sum_of = |p: &BTreeMap<(Owner, &str), i64>, owner: Owner, pred: &dyn Fn(&str) -> bool| {
        p.iter()
            .filter(|((o, n), _)| *o == owner && pred(n))
            .map(|(_, a)| *a)
            .sum::<i64>()
    };
    // The voucher each top-up entry issued, and to whom.
    let issued_at: HashMap<i64, (i64, Option<i64>)> = summary
        .facts
        .iter()
        .filter_map(|(s, _, f)| match f {
            Fact::VoucherIssued {
                voucher, household, ..
            } => Some((*s, (*voucher, *household))),
            _ => None,
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    if let Some(problem) = check_topup_voids(summary, r.topups) {
        return Some(problem);
    }
    for (seq, coop, household, method, paid, bonus, voucher, date, month, _, _) in r.topups {
        seen.insert(*seq);
        let p = at(*seq);
        let holder = voucher.map_or(Owner::Household(*household), Owner::Voucher);
        let ok = kind_date(*seq, EntryKind::TopUp, Some(date))
            && summary
                .entry(*seq)
                .is_some_and(|(_, d)| month_of(d) == *month)
            && sum_of(p, holder, &|n| n.ends_with("paid")) == -paid
            && sum_of(p, holder, &|n| n.ends_with("bonus")) == -bonus
            && p.get(&(Owner::Cooperative(*coop), format!("cash:{method}").as_str())) == Some(paid)
            && sum_of(p, Owner::Cooperative(*coop), &|n| n == "promotion") == *bonus;
        let issued_to = issued_at.get(seq).copied();
        let voucher_ok = match (voucher, issued_to) {
            (None, None) => true,
            (Some(v), Some((iv, ih))) => *v == iv && ih == Some(*household),
            // An entry from before vouchers were facts: its postings name the voucher.
            (Some(_), None) => summary.last_v1_date.is_some(),
            (None, Some(_)) => false,
        };
        if !ok || !voucher_ok {
            return Some(format!(
                "topups: the top-up of entry {seq} differs from its entry"
            ));
        }
    }
    if let Some((seq, _, _)) = summary
        .entries
        .iter()
        .find(|(s, k, _)| *k == EntryKind::TopUp && !seen.contains(s))
    {
        return Some(format!("topups: entry {seq} is a top-up with no record"));
    }
    for (seq, coop, company, amount, date) in r.settlements {
        let p = at(*seq);
        let ok = kind_date(*seq, EntryKind::Settlement, Some(date))
            && p.get(&(Owner::Cooperative(*coop), "cash:bank")) == Some(&-amount)
            && p.get(&(Owner::Company(*company), "cash:bank")) == Some(amount);
        if !ok {
            return Some(format!(
                "settlements: the settlement of entry {seq} differs from its entry"
            ));
        }
    }
    let mut paid_entries = std::collections::HashSet::new();
    for (seq, household, kind, amount, method) in r.fee_credits {
        let p = at(*seq);
        let entry_kind = match kind.as_str() {
            "payment" => EntryKind::FeePayment,
            _ => EntryKind::ProfitAllocation,
        };
        let method_ok = match (entry_kind, method) {
            // The office's cash, or the cooperative's when its till collected the fee.
            (EntryKind::FeePayment, Some(m)) => p.iter().any(|((o, n), a)| {
                matches!(o, Owner::Company(_) | Owner::Cooperative(_))
                    && *n == format!("cash:{m}")
                    && a == amount
            }),
            (EntryKind::FeePayment, None) => false,
            _ => true,
        };
        let ok = kind_date(*seq, entry_kind, None)
            && p.get(&(Owner::Household(*household), "fees")) == Some(&-amount)
            && method_ok;
        if !ok {
            return Some(format!(
                "fee_credits: the {kind} of entry {seq} differs from its entry"
            ));
        }
        paid_entries.insert(*seq);
    }
    if let Some((seq, _, _)) = summary
        .entries
        .iter()
        .find(|(s, k, _)| *k == EntryKind::FeePayment && !paid_entries.contains(s))
    {
        return Some(format!(
            "fee_credits: entry {seq} is a fee payment with no record"
        ));
    }
    let reverses: HashMap<i64, i64> = summary.reverses.iter().copied().collect();
    let mut refunded: HashMap<i64, (i64, i64)> = HashMap::new();
    for (seq, sale_entry, amount, cost) in r.sale_refunds {
        let p = at(*seq);
        let coop_sales: i64 = p
            .iter()
            .filter(|((o, n), _)| matches!(o, Owner::Cooperative(_)) && *n == "sales")
            .map(|(_, a)| *a)
            .sum();
        let coop_cogs: i64 = p
            .iter()
            .filter(|((o, n), _)| matches!(o, Owner::Cooperative(_)) && *n == "cogs")
            .map(|(_, a)| *a)
            .sum();
        let ok = kind_date(*seq, EntryKind::SaleRefund, None)
            && reverses.get(seq) == Some(sale_entry)
            && coop_sales == *amount
            && coop_cogs == -cost;
        if !ok {
            return Some(format!(
                "sale_refunds: the refund of entry {seq} differs from its entry"
            ));
        }
        let t = refunded.entry(*sale_entry).or_default();
        t.0 += amount;
        t.1 += cost;
    }
    for (seq, entry_id, coop, total, cost, refunded_total, refunded_cost, date) in r.sales {
        let p = at(*seq);
        let ok = kind_date(*seq, EntryKind::Sale, Some(date))
            && p.get(&(Owner::Cooperative(*coop), "sales")) == Some(&-total)
            && sum_of(p, Owner::Cooperative(*coop), &|n| n == "cogs") == *cost
            && refunded.get(entry_id).copied().unwrap_or((0, 0))
                == (*refunded_total, *refunded_cost);
        if !ok {
            return Some(format!(
                "sales: the sale of entry {seq} differs from its entry or refunds"
            ));
        }
    }
    None
}

/// What has been refunded to each tender: within what it paid, split into paid and bonus for a
/// wallet or voucher, adding up to the sale's refunded total, and per wallet or voucher what the
/// sale's refund entries gave back to it (unless the voucher could no longer take credit back:
/// void or past its expiry at the refund, when the refund went out in cash).
pub fn check_tender_refunds(
    summary: &ChainSummary,
    tenders: &[TenderTableRow],
    records: &Records<'_>,
) -> Option<String> {
    let entry_id_of: HashMap<i64, i64> = records.sales.iter().map(|s| (s.0, s.1)).collect();
    let sale_refunded: HashMap<i64, i64> = records.sales.iter().map(|s| (s.0, s.5)).collect();
    // Per sale (by its entry's sequence): the refunded total of its tenders, and per holder
    // what the tenders say was refunded (paid, bonus).
    let mut totals: HashMap<i64, i64> = HashMap::new();
    let mut stored: BTreeMap<(i64, Owner), (i64, i64)> = BTreeMap::new();
    for (seq, kind, household, voucher, amount, _, _, refunded, r_paid, r_bonus) in tenders {
        let name = format!("sale_tenders: a {kind} tender of entry {seq}");
        if refunded < &0 || refunded > amount || *r_paid < 0 || *r_bonus < 0 {
            return Some(format!("{name} says {refunded} fen refunded of {amount}"));
        }
        *totals.entry(*seq).or_default() += refunded;
        let holder = match (kind.as_str(), household, voucher) {
            ("wallet", Some(h), _) => Owner::Household(*h),
            ("voucher", _, Some(v)) => Owner::Voucher(*v),
            _ => {
                if *r_paid != 0 || *r_bonus != 0 {
                    return Some(format!("{name} has a refunded paid or bonus part"));
                }
                continue;
            }
        };
        if r_paid + r_bonus != *refunded {
            return Some(format!(
                "{name} splits its {refunded} fen refunded as {r_paid} paid and {r_bonus} bonus"
            ));
        }
        let slot = stored.entry((*seq, holder)).or_default();
        slot.0 += r_paid;
        slot.1 += r_bonus;
    }
    for (seq, total) in &totals {
        if sale_refunded.get(seq) != Some(total) {
            return Some(format!(
                "sales, sale_tenders: the tenders of entry {seq} add up to {total} fen refunded"
            ));
        }
    }
    // What the refund entries gave back to each holder, by the sale's entry.
    let seq_of_sale: HashMap<i64, i64> = entry_id_of.iter().map(|(s, id)| (*id, *s)).collect();
    let refund_of: HashMap<i64, i64> = records
        .sale_refunds
        .iter()
        .filter_map(|r| seq_of_sale.get(&r.1).map(|sale| (r.0, *sale)))
        .collect();
    let mut ended: HashMap<i64, i64> = HashMap::new();
    let mut expiry: HashMap<i64, NaiveDate> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        match fact {
            Fact::VoucherVoided { voucher }
            | Fact::VoucherExpired { voucher }
            | Fact::VoucherExchanged {
                replaces: voucher, ..
            } => {
                ended.entry(*voucher).or_insert(*seq);
            }
            _ => {}
        }
        match fact {
            Fact::VoucherIssued {
                voucher,
                expires_on,
                ..
            }
            | Fact::VoucherExchanged {
                voucher,
                expires_on,
                ..
            } => {
                expiry.insert(*voucher, *expires_on);
            }
            _ => {}
        }
    }
    let mut given: BTreeMap<(i64, Owner), (i64, i64)> = BTreeMap::new();
    // Bonus a sale's refunds forfeited to promotion: what a wallet could not take back under
    // its cap (the paid part of that went back as money).
    let mut forfeited: HashMap<i64, i64> = HashMap::new();
    let mut unattributable = std::collections::HashSet::new();
    for m in &summary.movements {
        let Some(sale) = refund_of.get(&m.seq) else {
            continue;
        };
        if matches!(m.owner, Owner::Cooperative(_)) && m.name == "promotion" {
            *forfeited.entry(*sale).or_default() -= m.amount;
            continue;
        }
        let holder = match (m.owner, m.name.as_str()) {
            (Owner::Voucher(_), _) => m.owner,
            (Owner::Household(_), name) if name.starts_with("wallet:") => m.owner,
            _ => continue,
        };
        let slot = given.entry((*sale, holder)).or_default();
        if m.name.ends_with("paid") {
            slot.0 -= m.amount;
        } else {
            slot.1 -= m.amount;
        }
    }
    let mut vouchers_of: HashMap<i64, Vec<i64>> = HashMap::new();
    for t in tenders {
        if let Some(v) = t.3 {
            vouchers_of.entry(t.0).or_default().push(v);
        }
    }
    for refund in records.sale_refunds {
        let (Some(sale), Some((_, date))) = (refund_of.get(&refund.0), summary.entry(refund.0))
        else {
            continue;
        };
        for v in vouchers_of.get(sale).into_iter().flatten() {
            // A voucher issued before its facts were recorded has no expiry in the chain.
            let gone = ended.get(v).is_some_and(|s| *s < refund.0)
                || expiry.get(v).is_none_or(|e| *e < date);
            if gone {
                unattributable.insert((*sale, Owner::Voucher(*v)));
            }
        }
    }
    // A wallet takes back what fits under its cap; the rest of the paid part goes back as money
    // and the rest of the bonus is forfeited. So a wallet may have been given back less than its
    // tenders say, and the bonus it was not given is what the sale's refunds forfeited.
    let mut short_bonus: HashMap<i64, i64> = HashMap::new();
    let mut unsure: std::collections::HashSet<i64> = std::collections::HashSet::new();
    for (key, refunded) in &stored {
        if unattributable.contains(key) {
            unsure.insert(key.0);
            continue;
        }
        let back = given.get(key).copied().unwrap_or((0, 0));
        let fits = match key.1 {
            Owner::Household(_) => back.0 <= refunded.0 && back.1 <= refunded.1,
            _ => back == *refunded,
        };
        if !fits {
            return Some(format!(
                "sale_tenders: the tenders of entry {} say {refunded:?} (paid, bonus) refunded to a holder, its refunds gave back {back:?}",
                key.0
            ));
        }
        *short_bonus.entry(key.0).or_default() += refunded.1 - back.1;
    }
    for (sale, short) in &short_bonus {
        let lost = forfeited.get(sale).copied().unwrap_or(0);
        if !unsure.contains(sale) && *short != lost {
            return Some(format!(
                "sale_tenders: the tenders of entry {sale} say {short} fen of bonus was not given back to their wallets, its refunds forfeited {lost}"
            ));
        }
    }
    None
}

/// What each refund gave back to each tender (`sale_refund_tenders`, which a month close reads to
/// weigh a month's spending as of its end) agrees with the refunds and the tenders: every row
/// names a refund of its sale and a tender of that sale, a refund's rows add up to its amount
/// (itself checked against its entry), and a tender's rows add up to what the tender says was
/// refunded to it (itself replayed from the refund entries) — exactly once every refund of the
/// sale has its rows. Refunds made before the table existed have none; every refund after the
/// first one that has rows must have them.
pub fn check_refund_tenders(r: &Records<'_>) -> Option<String> {
    let refunds: HashMap<i64, (i64, i64)> =
        r.sale_refunds.iter().map(|x| (x.0, (x.1, x.2))).collect();
    // Sums in i128: no count of i64 rows can overflow them.
    let mut by_refund: BTreeMap<i64, i128> = BTreeMap::new();
    let mut by_tender: BTreeMap<(i64, i64), (i128, i128)> = BTreeMap::new();
    for (seq, sale, idx, amount, tender_refunded) in r.refund_tenders {
        let name = format!("sale_refund_tenders: the refund of entry {seq}");
        match refunds.get(seq) {
            Some((of_sale, _)) if of_sale == sale => {}
            _ => return Some(format!("{name} is not a refund of the sale it names")),
        }
        let Some(tender_refunded) = tender_refunded else {
            return Some(format!("{name} names no tender {idx} of its sale"));
        };
        if *amount <= 0 {
            return Some(format!("{name} gives back {amount} fen to tender {idx}"));
        }
        *by_refund.entry(*seq).or_default() += i128::from(*amount);
        by_tender
            .entry((*sale, *idx))
            .or_insert((0, i128::from(*tender_refunded)))
            .0 += i128::from(*amount);
    }
    for (seq, total) in &by_refund {
        if refunds.get(seq).map(|x| i128::from(x.1)) != Some(*total) {
            return Some(format!(
                "sale_refund_tenders: the refund of entry {seq} gives back {total} fen over its tenders"
            ));
        }
    }
    let first_listed = by_refund.keys().next().copied();
    let mut complete: HashMap<i64, bool> = HashMap::new();
    for (seq, sale, _, _) in r.sale_refunds {
        let listed = by_refund.contains_key(seq);
        if !listed && first_listed.is_some_and(|f| *seq > f) {
            return Some(format!(
                "sale_refund_tenders: the refund of entry {seq} has no rows"
            ));
        }
        *complete.entry(*sale).or_insert(true) &= listed;
    }
    for ((sale, idx), (given, refunded)) in &by_tender {
        let whole = complete.get(sale).copied().unwrap_or(false);
        if given > refunded || (whole && given != refunded) {
            return Some(format!(
                "sale_refund_tenders: tender {idx} of the sale of entry id {sale} was given back {given} fen, it says {refunded}"
            ));
        }
    }
    None
}

/// Every fee receipt row says what its payment entry's hashed [`Fact::FeeReceipt`] says, and
/// its amount and method are what the entry posted (to the office's cash, or to the collecting
/// cooperative's); every receipt fact has its row; and each company's numbers, in chain order,
/// run 1, 2, 3… with no gap and no repeat.
pub fn check_receipts(summary: &ChainSummary, r: &Records<'_>) -> Option<String> {
    let posted = postings_of(summary);
    let empty = BTreeMap::new();
    let mut facts: HashMap<i64, &Fact> = HashMap::new();
    let mut next: HashMap<i64, i64> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        if let Fact::FeeReceipt {
            company, number, ..
        } = fact
        {
            let expected = next.entry(*company).or_insert(1);
            if *number != *expected {
                return Some(format!(
                    "fee_receipts: entry {seq} numbers receipt {number} of company {company}, \
                     the next in its sequence is {expected}"
                ));
            }
            *expected += 1;
            facts.insert(*seq, fact);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (seq, company, number, household, amount, method, coop, shop) in r.fee_receipts {
        let p = posted.get(seq).unwrap_or(&empty);
        let fact_ok = match facts.get(seq) {
            Some(Fact::FeeReceipt {
                company: fc,
                number: fnum,
                household: fh,
                amount: fa,
                method: fm,
                cooperative: fcoop,
                shop: fshop,
            }) => {
                (fc, fnum, fh, fa, fm, fcoop, fshop)
                    == (company, number, household, amount, method, coop, shop)
            }
            _ => false,
        };
        let cash = match coop {
            Some(c) => Owner::Cooperative(*c),
            None => Owner::Company(*company),
        };
        let ok = fact_ok
            && summary
                .entry(*seq)
                .is_some_and(|(k, _)| k == EntryKind::FeePayment)
            && p.get(&(Owner::Household(*household), "fees")) == Some(&-amount)
            && p.get(&(cash, format!("cash:{method}").as_str())) == Some(amount);
        if !ok {
            return Some(format!(
                "fee_receipts: receipt {number} of company {company} differs from its entry {seq}"
            ));
        }
        seen.insert(*seq);
    }
    if let Some(seq) = facts.keys().filter(|s| !seen.contains(s)).min() {
        return Some(format!(
            "fee_receipts: entry {seq} numbers a fee receipt that has no row"
        ));
    }
    None
}

/// All of the above, in order; the first problem found.
pub fn check_tables(
    summary: &ChainSummary,
    vouchers: &[VoucherTableRow],
    closes: &[CloseTableRow],
    bills: &[BillTableRow],
    tenders: &[TenderTableRow],
    records: &Records<'_>,
) -> Option<String> {
    check_vouchers(summary, vouchers)
        .or_else(|| check_closes(summary, closes))
        .or_else(|| check_bills(summary, bills))
        .or_else(|| check_tenders(summary, tenders))
        .or_else(|| check_records(summary, records))
        .or_else(|| check_receipts(summary, records))
        .or_else(|| check_tender_refunds(summary, tenders, records))
        .or_else(|| check_refund_tenders(records))
}

/// `id, code, cooperative id`: a shop row.
pub type ShopTableRow = (i64, String, i64);
/// `id, code, company id, eligible`: a compound row.
pub type CompoundTableRow = (i64, String, i64, bool);
/// `id, code, compound id, area in dm²`: a household row.
pub type HouseholdTableRow = (i64, String, i64, i64);
/// `id, cooperative id, sku, price, cost`: a catalogue item row.
pub type CatalogTableRow = (i64, i64, String, i64, i64);

/// `id, sequence of its entry, subject, subject id, field, old value, new value, effective
/// from`: a master data change row.
pub type ChangeTableRow = (
    i64,
    i64,
    String,
    i64,
    String,
    Option<String>,
    String,
    String,
);

/// The master data tables, as stored.
pub struct MasterRows<'a> {
    /// `id, code` of each cooperative.
    pub cooperatives: &'a [(i64, String)],
    pub shops: &'a [ShopTableRow],
    /// `id, code` of each company.
    pub companies: &'a [(i64, String)],
    pub compounds: &'a [CompoundTableRow],
    pub households: &'a [HouseholdTableRow],
    pub catalog: &'a [CatalogTableRow],
    pub changes: &'a [ChangeTableRow],
}

/// One master table against the master data facts: `recorded` maps a row's key to what the
/// last fact naming it says. Each row a fact names must say the same; each recorded key must
/// have its row. A row no fact names is accepted only if it was made before the chain
/// recorded this table's rows (its id below that of every row a fact names, or no fact names
/// the table yet), as vouchers issued before voucher facts are.
fn check_master_table<K, V>(
    table: &str,
    recorded: &BTreeMap<K, (i64, V)>,
    rows: impl Iterator<Item = (i64, K, V)>,
) -> Option<String>
where
    K: Ord + Clone + std::fmt::Debug,
    V: PartialEq + std::fmt::Debug,
{
    let rows: Vec<(i64, K, V)> = rows.collect();
    let first_recorded = rows
        .iter()
        .filter(|(_, k, _)| recorded.contains_key(k))
        .map(|(id, _, _)| *id)
        .min();
    let mut seen = std::collections::BTreeSet::new();
    for (id, key, stored) in &rows {
        seen.insert(key.clone());
        match recorded.get(key) {
            Some((seq, value)) if value != stored => {
                return Some(format!(
                    "{table}: row {id} says {stored:?} but the chain (entry {seq}) says {value:?}"
                ));
            }
            Some(_) => {}
            None if first_recorded.is_none_or(|first| *id < first) => {}
            None => {
                return Some(format!(
                    "{table}: row {id} ({key:?}) was never recorded in the chain"
                ))
            }
        }
    }
    recorded
        .iter()
        .find(|(k, _)| !seen.contains(*k))
        .map(|(k, (seq, _))| {
            format!("{table}: {k:?} recorded in the chain (entry {seq}) has no row")
        })
}

/// Every master data row that money depends on agrees with the last master data fact naming
/// it: codes (which name accounts and break ties), the cooperative a shop sells for, the
/// company that bills a compound and whether it shares closes, a household's compound and
/// area (its next fees), a catalogue item's price and cost (the next sale's). Rows are keyed
/// by id, catalogue items by cooperative and SKU.
pub fn check_master(summary: &ChainSummary, r: &MasterRows<'_>) -> Option<String> {
    let mut coops: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    let mut shops: BTreeMap<i64, (i64, (String, i64))> = BTreeMap::new();
    let mut companies: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    let mut compounds: BTreeMap<i64, (i64, (String, i64, bool))> = BTreeMap::new();
    let mut households: BTreeMap<i64, (i64, (String, i64, i64))> = BTreeMap::new();
    let mut catalog: BTreeMap<(i64, String), (i64, (i64, i64))> = BTreeMap::new();
    type Change = (String, i64, String, Option<String>, String, String);
    let mut changes: BTreeMap<i64, (i64, Change)> = BTreeMap::new();
    for (seq, _, fact) in &summary.facts {
        let seq = *seq;
        match fact {
            Fact::Cooperative { id, code } => {
                coops.insert(*id, (seq, code.clone()));
            }
            Fact::Shop {
                id,
                code,
                cooperative,
            } => {
                shops.insert(*id, (seq, (code.clone(), *cooperative)));
            }
            Fact::Company { id, code } => {
                companies.insert(*id, (seq, code.clone()));
            }
            Fact::Compound {
                id,
                code,
                company,
                eligible,
            } => {
                compounds.insert(*id, (seq, (code.clone(), *company, *eligible)));
            }
            Fact::Households { rows } => {
                for (id, code, compound, area) in rows {
                    households.insert(*id, (seq, (code.clone(), *compound, *area)));
                }
            }
            Fact::CatalogItems { cooperative, rows } => {
                for (sku, price, cost) in rows {
                    catalog.insert((*cooperative, sku.clone()), (seq, (*price, *cost)));
                }
            }
            Fact::MasterChanged {
                subject,
                id,
                field,
                old,
                new,
                effective_from,
            } => {
                changes.insert(
                    seq,
                    (
                        seq,
                        (
                            subject.clone(),
                            *id,
                            field.clone(),
                            old.clone(),
                            new.clone(),
                            effective_from.to_string(),
                        ),
                    ),
                );
                // The row holds the latest value a change recorded.
                match (subject.as_str(), field.as_str()) {
                    ("compound", "eligible") => {
                        if let Some((s, row)) = compounds.get_mut(id) {
                            *s = seq;
                            row.2 = new == "true";
                        }
                    }
                    ("compound", "company") => {
                        if let (Some((s, row)), Ok(company)) = (compounds.get_mut(id), new.parse())
                        {
                            *s = seq;
                            row.1 = company;
                        }
                    }
                    ("household", "area") => {
                        if let (Some((s, row)), Ok(area)) = (households.get_mut(id), new.parse()) {
                            *s = seq;
                            row.2 = area;
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    check_master_table(
        "cooperatives",
        &coops,
        r.cooperatives
            .iter()
            .map(|(id, code)| (*id, *id, code.clone())),
    )
    .or_else(|| {
        check_master_table(
            "shops",
            &shops,
            r.shops
                .iter()
                .map(|(id, code, coop)| (*id, *id, (code.clone(), *coop))),
        )
    })
    .or_else(|| {
        check_master_table(
            "companies",
            &companies,
            r.companies
                .iter()
                .map(|(id, code)| (*id, *id, code.clone())),
        )
    })
    .or_else(|| {
        check_master_table(
            "compounds",
            &compounds,
            r.compounds.iter().map(|(id, code, company, eligible)| {
                (*id, *id, (code.clone(), *company, *eligible))
            }),
        )
    })
    .or_else(|| {
        check_master_table(
            "households",
            &households,
            r.households
                .iter()
                .map(|(id, code, compound, area)| (*id, *id, (code.clone(), *compound, *area))),
        )
    })
    .or_else(|| {
        check_master_table(
            "catalog_items",
            &catalog,
            r.catalog
                .iter()
                .map(|(id, coop, sku, price, cost)| (*id, (*coop, sku.clone()), (*price, *cost))),
        )
    })
    .or_else(|| {
        // Keyed by the entry that records the change: each change row is its entry's fact.
        check_master_table(
            "master_changes",
            &changes,
            r.changes.iter().map(
                |(id, seq, subject, subject_id, field, old, new, effective_from)| {
                    (
                        *id,
                        *seq,
                        (
                            subject.clone(),
                            *subject_id,
                            field.clone(),
                            old.clone(),
                            new.clone(),
                            effective_from.clone(),
                        ),
                    )
                },
            ),
        )
    })
}

/// `sequence of the sale's entry, shop id, household id`: a sale row.
pub type SaleTillRow = (i64, i64, Option<i64>);
/// `sequence of the sale's entry, index, sku, quantity, price, amount, cost`: a sale line.
pub type SaleLineTableRow = (i64, i64, String, String, i64, i64, i64);

/// Each sale row names the shop and household its entry's sale fact names, and its lines
/// digest to what the fact records; each top-up row names the shop its entry's fact names.
/// Entries posted before the chain named the till carry no such fact and are not checked
/// (an entry's facts are hashed, so a fact cannot be taken off an entry to escape this).
/// `lines` are ordered by sale and index.
pub fn check_till(
    summary: &ChainSummary,
    sales: &[SaleTillRow],
    lines: &[SaleLineTableRow],
    topups: &[(i64, i64)],
) -> Option<String> {
    let mut sold: HashMap<i64, (i64, Option<i64>, &str)> = HashMap::new();
    let mut till: HashMap<i64, i64> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        match fact {
            Fact::Sold {
                shop,
                household,
                lines,
            } => {
                sold.insert(*seq, (*shop, *household, lines.as_str()));
            }
            Fact::ToppedUp { shop }
            | Fact::VoucherIssued {
                shop: Some(shop), ..
            } => {
                till.insert(*seq, *shop);
            }
            _ => {}
        }
    }
    let mut by_sale: HashMap<i64, Vec<&SaleLineTableRow>> = HashMap::new();
    for line in lines {
        by_sale.entry(line.0).or_default().push(line);
    }
    for (seq, shop, household) in sales {
        let Some((s, h, digest)) = sold.get(seq) else {
            continue;
        };
        if s != shop || h != household {
            return Some(format!(
                "sales: the sale of entry {seq} names shop {shop} and household {household:?}, its entry says shop {s} and household {h:?}"
            ));
        }
        let stored = super::lines_digest(by_sale.get(seq).into_iter().flatten().map(
            |(_, idx, sku, qty, price, amount, cost)| {
                (*idx, sku.as_str(), qty.as_str(), *price, *amount, *cost)
            },
        ));
        if stored != *digest {
            return Some(format!(
                "sale_lines: the lines of the sale of entry {seq} differ from those its entry records"
            ));
        }
        by_sale.remove(seq);
    }
    let rows: std::collections::HashSet<i64> = sales.iter().map(|(seq, _, _)| *seq).collect();
    if let Some(seq) = by_sale.keys().filter(|s| !rows.contains(*s)).min() {
        return Some(format!(
            "sale_lines: lines (of entry {seq}) that belong to no sale row"
        ));
    }
    topups.iter().find_map(|(seq, shop)| {
        till.get(seq).filter(|s| *s != shop).map(|s| {
            format!("topups: the top-up of entry {seq} names shop {shop}, its entry says shop {s}")
        })
    })
}

/// `policy id, version, content hash`: a `policy_applications` row.
pub type PolicyTableRow = (String, i64, String);

/// `policy_applications` lists exactly the policies the entries applied: each row is an
/// `id@version` and content hash some entry carries in its hashed policy reference, and each
/// reference entries carry has its row (which the app checks the policy files against when it
/// opens, so a policy file changed after it was applied is refused).
pub fn check_policies(summary: &ChainSummary, rows: &[PolicyTableRow]) -> Option<String> {
    let applied: BTreeMap<(&str, i64), (&str, i64)> = summary
        .policies
        .iter()
        .filter_map(|(name, hash, seq)| {
            let (id, version) = name.rsplit_once('@')?;
            Some(((id, version.parse().ok()?), (hash.as_str(), *seq)))
        })
        .collect();
    for (id, version, hash) in rows {
        match applied.get(&(id.as_str(), *version)) {
            Some((h, _)) if h == hash => {}
            Some((h, seq)) => {
                return Some(format!(
                    "policy_applications: {id}@{version} has hash {hash}, entry {seq} applied it with hash {h}"
                ))
            }
            None => {
                return Some(format!(
                    "policy_applications: {id}@{version} was applied by no entry"
                ))
            }
        }
    }
    applied
        .iter()
        .find(|((id, version), _)| !rows.iter().any(|(i, v, _)| i == id && v == version))
        .map(|((id, version), (_, seq))| {
            format!("policy_applications: {id}@{version}, applied by entry {seq}, has no row")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(facts: Vec<Fact>) -> ChainSummary {
        let day = NaiveDate::from_ymd_opt(2026, 10, 5).expect("date");
        ChainSummary {
            facts: facts
                .into_iter()
                .enumerate()
                .map(|(i, f)| (i as i64 + 1, day, f))
                .collect(),
            ..ChainSummary::default()
        }
    }

    fn check(
        s: &ChainSummary,
        households: &[HouseholdTableRow],
        catalog: &[CatalogTableRow],
    ) -> Option<String> {
        check_master(
            s,
            &MasterRows {
                cooperatives: &[],
                shops: &[],
                companies: &[],
                compounds: &[],
                households,
                catalog,
                changes: &[],
            },
        )
    }

    #[test]
    fn a_change_moves_the_row_s_recorded_value_and_its_row_is_held_to_its_fact() {
        let change = Fact::MasterChanged {
            subject: "household".into(),
            id: 7,
            field: "area".into(),
            old: Some("8000".into()),
            new: "8550".into(),
            effective_from: NaiveDate::from_ymd_opt(2026, 11, 1).expect("day"),
        };
        let s = summary(vec![
            Fact::Households {
                rows: vec![(7, "H7".into(), 1, 8000)],
            },
            change,
        ]);
        let row: ChangeTableRow = (
            1,
            2,
            "household".into(),
            7,
            "area".into(),
            Some("8000".into()),
            "8550".into(),
            "2026-11-01".into(),
        );
        let run = |area: i64, rows: &[ChangeTableRow]| {
            check_master(
                &s,
                &MasterRows {
                    cooperatives: &[],
                    shops: &[],
                    companies: &[],
                    compounds: &[],
                    households: &[(7, "H7".into(), 1, area)],
                    catalog: &[],
                    changes: rows,
                },
            )
        };
        assert_eq!(run(8550, std::slice::from_ref(&row)), None);
        let stale = run(8000, std::slice::from_ref(&row)).expect("the old area is caught");
        assert!(stale.contains("households"), "{stale}");
        let mut edited = row.clone();
        edited.6 = "9000".into();
        let problem = run(8550, &[edited]).expect("an edited change is caught");
        assert!(problem.contains("master_changes"), "{problem}");
        let missing = run(8550, &[]).expect("a deleted change is caught");
        assert!(missing.contains("master_changes"), "{missing}");
    }

    #[test]
    fn master_rows_are_held_to_the_last_fact_naming_them() {
        let s = summary(vec![
            Fact::Households {
                rows: vec![(2, "H2".into(), 1, 100), (3, "H3".into(), 1, 200)],
            },
            Fact::CatalogItems {
                cooperative: 1,
                rows: vec![("A".into(), 125, 80)],
            },
            // A later price for A replaces the first.
            Fact::CatalogItems {
                cooperative: 1,
                rows: vec![("A".into(), 130, 80)],
            },
        ]);
        let households = [(2, "H2".to_string(), 1, 100), (3, "H3".to_string(), 1, 200)];
        let catalog = [(5, 1, "A".to_string(), 130, 80)];
        assert_eq!(check(&s, &households, &catalog), None);
        // A row made before the chain recorded households (a lower id) passes unrecorded.
        let mut with_legacy = vec![(1, "H1".to_string(), 1, 50)];
        with_legacy.extend(households.iter().cloned());
        assert_eq!(check(&s, &with_legacy, &catalog), None);
        // An edited area, an old price, a row added later, a row removed: each names its table.
        let mut area = households.clone();
        area[1].3 = 201;
        let p = check(&s, &area, &catalog).expect("an area edit");
        assert!(p.starts_with("households: row 3"), "{p}");
        let p = check(&s, &households, &[(5, 1, "A".to_string(), 125, 80)]).expect("old price");
        assert!(p.starts_with("catalog_items: row 5"), "{p}");
        let mut added = households.to_vec();
        added.push((4, "H4".to_string(), 1, 10));
        let p = check(&s, &added, &catalog).expect("a row never recorded");
        assert!(
            p.contains("households: row 4") && p.contains("never recorded"),
            "{p}"
        );
        let p = check(&s, &households[..1], &catalog).expect("a row removed");
        assert!(
            p.starts_with("households: 3") && p.contains("has no row"),
            "{p}"
        );
        let p = check(&s, &households, &[(5, 2, "A".to_string(), 130, 80)]).expect("moved");
        assert!(p.starts_with("catalog_items:"), "{p}");
    }

    #[test]
    fn the_tills_records_are_held_to_their_entries_facts() {
        let line = |seq: i64, idx: i64, qty: &str| -> SaleLineTableRow {
            (seq, idx, "APPLE".into(), qty.into(), 125, 250, 160)
        };
        let lines = [line(2, 0, "2"), line(2, 1, "1")];
        let digest = super::super::lines_digest(
            lines
                .iter()
                .map(|(_, i, s, q, p, a, c)| (*i, s.as_str(), q.as_str(), *p, *a, *c)),
        );
        let issued = Fact::VoucherIssued {
            voucher: 1,
            serial: 7,
            key_id: 1,
            cooperative: 1,
            household: Some(1),
            issued_on: NaiveDate::from_ymd_opt(2026, 10, 5).expect("date"),
            expires_on: NaiveDate::from_ymd_opt(2029, 10, 5).expect("date"),
            shop: Some(3),
        };
        let s = summary(vec![
            Fact::ToppedUp { shop: 3 },
            Fact::Sold {
                shop: 3,
                household: Some(9),
                lines: digest,
            },
            issued,
        ]);
        let sales = [(2, 3, Some(9))];
        let topups = [(1, 3), (3, 3)];
        assert_eq!(check_till(&s, &sales, &lines, &topups), None);
        // A sale whose entry has no fact (posted before the chain named the till) is not checked.
        assert_eq!(
            check_till(&s, &[(2, 3, Some(9)), (5, 4, None)], &lines, &topups),
            None
        );
        let p = check_till(&s, &[(2, 4, Some(9))], &lines, &topups).expect("another shop");
        assert!(p.starts_with("sales:"), "{p}");
        let p = check_till(&s, &[(2, 3, None)], &lines, &topups).expect("no customer");
        assert!(p.starts_with("sales:"), "{p}");
        let p = check_till(&s, &sales, &[line(2, 0, "2"), line(2, 1, "2")], &topups)
            .expect("a quantity");
        assert!(p.starts_with("sale_lines:"), "{p}");
        let p = check_till(&s, &sales, &lines[..1], &topups).expect("a line removed");
        assert!(p.starts_with("sale_lines:"), "{p}");
        let mut orphan = lines.to_vec();
        orphan.push(line(-1, 0, "1"));
        let p = check_till(&s, &sales, &orphan, &topups).expect("a line of no sale");
        assert!(p.starts_with("sale_lines:"), "{p}");
        // The wallet top-up's shop, and the voucher top-up's (in its issue fact).
        for topups in [[(1, 4), (3, 3)], [(1, 3), (3, 4)]] {
            let p = check_till(&s, &sales, &lines, &topups).expect("another till");
            assert!(p.starts_with("topups:"), "{p}");
        }
    }

    #[test]
    fn policy_applications_list_exactly_the_policies_entries_applied() {
        let s = ChainSummary {
            policies: vec![
                ("topup@1".into(), "aa".into(), 1),
                ("fees@2".into(), "bb".into(), 4),
            ],
            ..ChainSummary::default()
        };
        let rows = |r: &[(&str, i64, &str)]| -> Vec<PolicyTableRow> {
            r.iter()
                .map(|(i, v, h)| (i.to_string(), *v, h.to_string()))
                .collect()
        };
        assert_eq!(
            check_policies(&s, &rows(&[("fees", 2, "bb"), ("topup", 1, "aa")])),
            None
        );
        for bad in [
            rows(&[("fees", 2, "bc"), ("topup", 1, "aa")]),
            rows(&[("fees", 3, "bb"), ("topup", 1, "aa")]),
            rows(&[("topup", 1, "aa")]),
            rows(&[("fees", 2, "bb"), ("topup", 1, "aa"), ("other", 1, "cc")]),
        ] {
            let p = check_policies(&s, &bad).expect("a mismatch");
            assert!(p.starts_with("policy_applications:"), "{p}");
        }
    }
}
