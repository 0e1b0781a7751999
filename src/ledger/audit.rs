//! Holding the tables that repeat or derive from the journal to what the chain says: vouchers to
//! their issue, void and expiry facts, month closes to their close entries, each fee bill's
//! `settled` to a replay of the household's fee postings, and each sale tender's paid and bonus
//! parts to the sale entry's postings. Stores read the rows (entries named by chain sequence);
//! the rules live here, once for both backends. Each check returns the first problem, naming the
//! table.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, NaiveDate};

use super::{ChainSummary, EntryKind, Fact, Owner};

/// `id, serial, key id, cooperative id, household id, issued on, expires on, status`.
pub type VoucherTableRow = (i64, i64, i64, i64, Option<i64>, String, String, String);

/// `cooperative id, month, sequence of its entry`.
pub type CloseTableRow = (i64, String, Option<i64>);

/// `id, household id, company id, month, amount, settled, sequence of its entry`.
pub type BillTableRow = (i64, i64, i64, String, i64, i64, i64);

/// `sequence of the sale's entry, type, household id, voucher id, amount, paid part, bonus part`.
pub type TenderTableRow = (i64, String, Option<i64>, Option<i64>, i64, i64, i64);

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

/// Every voucher row agrees with its issue fact (serial, key, cooperative, holder, dates) and
/// its status with the last of its void or expiry facts; every voucher the chain issued has a
/// row. Vouchers issued before the chain recorded facts (legacy) are checked on status only
/// where a fact names them.
pub fn check_vouchers(summary: &ChainSummary, rows: &[VoucherTableRow]) -> Option<String> {
    let mut issued: HashMap<i64, (i64, &Fact)> = HashMap::new();
    let mut status: HashMap<i64, &str> = HashMap::new();
    for (seq, _, fact) in &summary.facts {
        match fact {
            Fact::VoucherIssued { voucher, .. } => {
                issued.insert(*voucher, (*seq, fact));
                status.insert(*voucher, "active");
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
    for (id, serial, key_id, coop, household, issued_on, expires_on, stored_status) in rows {
        seen.insert(*id);
        let name = format!("vouchers: voucher {id}");
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
    // household -> (fee balance, open bills by index)
    let mut households: HashMap<i64, (i64, Vec<usize>)> = HashMap::new();
    for m in &summary.movements {
        let (Owner::Household(h), "fees") = (m.owner, m.name.as_str()) else {
            continue;
        };
        let (balance, open) = households.entry(h).or_default();
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
    for (seq, kind, household, voucher, amount, paid, bonus) in rows {
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

/// All of the above, in order; the first problem found.
pub fn check_tables(
    summary: &ChainSummary,
    vouchers: &[VoucherTableRow],
    closes: &[CloseTableRow],
    bills: &[BillTableRow],
    tenders: &[TenderTableRow],
) -> Option<String> {
    check_vouchers(summary, vouchers)
        .or_else(|| check_closes(summary, closes))
        .or_else(|| check_bills(summary, bills))
        .or_else(|| check_tenders(summary, tenders))
}
