//! The whole journal in Beancount syntax (v2 and v3), for `bean-check` and the tools around it
//! (SPEC §7): an `open` directive per account, then one transaction per entry in sequence order,
//! each posting in CNY with hongxin's own sign (debit positive, credit negative), so Beancount's
//! balances are hongxin's on the debit side.
//!
//! Account names are built from type, owner and name: `cooperative:COOP:cash:wechat` (an asset)
//! becomes `Assets:Coop:COOP:Cash:Wechat`, a household's `wallet:COOP:paid` becomes
//! `Liabilities:Household:HX01-0001:Wallet:COOP:Paid`, a voucher's `paid` becomes
//! `Liabilities:Voucher:V<serial>:Paid`. Beancount allows only letters, digits and `-` in a
//! name component, starting with a capital or a digit: `_` becomes `-`, each `_`-separated word
//! is capitalised, any other character becomes `U` and its code point in hex. Should two
//! accounts still come out the same, the later one gets `-A<id>`, so names stay distinct.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use crate::domain::StoreError;
use crate::ledger::{AccountId, AccountType};
use crate::money::Amount;
use crate::store::{AccountInfo, JournalEntry, Store, MAX_JOURNAL_CHUNK};

/// Entries read from the store per call.
pub const CHUNK: u32 = 2_000;
const _: () = assert!(CHUNK <= MAX_JOURNAL_CHUNK);

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing the balances: {0}")]
    Csv(#[from] csv::Error),
    #[error("entry {entry} posts to account {account}, which the store does not list")]
    UnknownAccount { entry: i64, account: i64 },
    #[error("entry {entry} does not balance; run `hongxin verify`")]
    Unbalanced { entry: i64 },
    #[error(
        "account {account}: stored balance {stored} but the exported postings sum to {exported}; \
         run `hongxin verify`"
    )]
    Mismatch {
        account: String,
        stored: Amount,
        exported: Amount,
    },
}

/// What was exported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub postings: u64,
    pub accounts: u64,
    /// The last entry exported: the journal's head when the export started.
    pub head_seq: i64,
    pub head_hash: String,
    /// Accounts whose stored balance differed from their exported postings because entries
    /// were posted while the export ran (the export stops at the head it started from). Zero
    /// on a quiet ledger; a difference on a quiet ledger is an error instead.
    pub moved_accounts: u64,
}

/// The Beancount root of an account type.
pub fn root(kind: AccountType) -> &'static str {
    match kind {
        AccountType::Asset => "Assets",
        AccountType::Liability => "Liabilities",
        AccountType::Equity => "Equity",
        AccountType::Revenue => "Income",
        AccountType::Expense => "Expenses",
    }
}

/// One name component as Beancount allows it: `fee_revenue` → `Fee-Revenue`, `wechat` →
/// `Wechat`, `HX01-0001` unchanged, `租金` → `U79DFU91D1`.
pub fn component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for (i, word) in s.split('_').enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, c) in word.chars().enumerate() {
            match c {
                'a'..='z' if j == 0 => out.push(c.to_ascii_uppercase()),
                'A'..='Z' | 'a'..='z' | '0'..='9' | '-' => out.push(c),
                _ => out.push_str(&format!("U{:04X}", u32::from(c))),
            }
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        out.insert(0, 'X');
    }
    out
}

/// The readable Beancount name of an account (before any disambiguation).
pub fn account_name(a: &AccountInfo) -> String {
    let owner = match a.owner_kind.as_str() {
        "cooperative" => "Coop".to_string(),
        "company" => "Company".to_string(),
        "household" => "Household".to_string(),
        "voucher" => "Voucher".to_string(),
        other => component(other),
    };
    let code = match a.owner_kind.as_str() {
        "voucher" => format!("V{}", component(&a.owner_code)),
        _ => component(&a.owner_code),
    };
    let mut name = format!("{}:{owner}:{code}", root(a.kind));
    for part in a.name.split(':') {
        name.push(':');
        name.push_str(&component(part));
    }
    name
}

/// Beancount names of every account, distinct, by id.
pub struct Names {
    by_id: HashMap<AccountId, (String, AccountType)>,
}

impl Names {
    pub fn new(accounts: &[AccountInfo]) -> Names {
        let mut used = HashSet::with_capacity(accounts.len());
        let mut by_id = HashMap::with_capacity(accounts.len());
        // Accounts come in id order, so the same ledger always gets the same names.
        for a in accounts {
            let mut name = account_name(a);
            if used.contains(&name) {
                name = format!("{name}-A{}", a.id.0);
            }
            used.insert(name.clone());
            by_id.insert(a.id, (name, a.kind));
        }
        Names { by_id }
    }

    pub fn get(&self, id: AccountId) -> Option<&str> {
        self.by_id.get(&id).map(|(n, _)| n.as_str())
    }
}

/// A Beancount string literal: quotes and backslashes escaped, control characters as spaces.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_entry(
    out: &mut dyn Write,
    names: &Names,
    e: &JournalEntry,
    sums: &mut HashMap<AccountId, i64>,
) -> Result<(), ExportError> {
    if e.postings.is_empty() && e.kind.may_be_empty() {
        // A ledger event without postings (a close that posted nothing, an empty voucher voided
        // or expired, master data written): an `event` directive keeps it in the export, moving no balance.
        writeln!(
            out,
            "{} event {} {}",
            e.business_date,
            quoted(e.kind.as_str()),
            quoted(e.memo.as_deref().unwrap_or(""))
        )?;
        writeln!(out, "  hongxin-entry: {}", e.seq)?;
        writeln!(out, "  hash: {}", quoted(&e.hash))?;
        writeln!(out)?;
        return Ok(());
    }
    let total: i128 = e.postings.iter().map(|(_, a)| i128::from(*a)).sum();
    if total != 0 || e.postings.len() < 2 {
        return Err(ExportError::Unbalanced { entry: e.seq });
    }
    writeln!(
        out,
        "{} * {} {}",
        e.business_date,
        quoted(e.kind.as_str()),
        quoted(e.memo.as_deref().unwrap_or(""))
    )?;
    writeln!(out, "  hongxin-entry: {}", e.seq)?;
    writeln!(out, "  hash: {}", quoted(&e.hash))?;
    if let Some(p) = &e.policy {
        writeln!(out, "  policy: {}", quoted(p))?;
    }
    if let Some(r) = e.reverses {
        writeln!(out, "  reverses: {r}")?;
    }
    for (account, amount) in &e.postings {
        let name = names.get(*account).ok_or(ExportError::UnknownAccount {
            entry: e.seq,
            account: account.0,
        })?;
        writeln!(out, "  {name}  {} CNY", Amount::from_fen(*amount))?;
        let sum = sums.entry(*account).or_insert(0);
        *sum = sum
            .checked_add(*amount)
            .ok_or(ExportError::Unbalanced { entry: e.seq })?;
    }
    writeln!(out)?;
    Ok(())
}

/// Writes the journal up to its current head to `out`, and, when asked, a CSV of every
/// account's Beancount name, hongxin path, type and stored balance (normal side) to `balances`.
/// `progress` is told the sequence of each chunk's last entry.
pub async fn export(
    store: &dyn Store,
    out: &mut dyn Write,
    balances: Option<&mut dyn Write>,
    progress: &(dyn Fn(i64) + Sync),
) -> Result<Summary, ExportError> {
    // The head first, then the accounts: every account the exported entries post to is listed.
    let head = store.head().await?;
    let accounts = store.accounts().await?;
    let names = Names::new(&accounts);

    writeln!(
        out,
        "; hongxin (红心) journal: entries 1..{} (head hash {})",
        head.seq, head.hash
    )?;
    writeln!(out, "option \"title\" \"hongxin 红心\"")?;
    writeln!(out, "option \"operating_currency\" \"CNY\"")?;
    writeln!(out)?;
    // An account with no postings yet opens with the earliest one that has some.
    let earliest = accounts
        .iter()
        .filter_map(|a| a.first_posted)
        .min()
        .or(head.business_date)
        .unwrap_or_default();
    for a in &accounts {
        let name = names.get(a.id).unwrap_or_default();
        writeln!(
            out,
            "{} open {name} CNY\n  hongxin-account: {}",
            a.first_posted.unwrap_or(earliest),
            quoted(&a.path())
        )?;
    }
    writeln!(out)?;

    let mut sums: HashMap<AccountId, i64> = HashMap::with_capacity(accounts.len());
    let (mut entries, mut postings, mut after) = (0u64, 0u64, 0i64);
    'chunks: while after < head.seq {
        let chunk = store.journal_chunk(after, CHUNK).await?;
        if chunk.is_empty() {
            break;
        }
        for e in &chunk {
            if e.seq > head.seq {
                break 'chunks;
            }
            write_entry(out, &names, e, &mut sums)?;
            entries += 1;
            postings += e.postings.len() as u64;
            after = e.seq;
        }
        progress(after);
    }
    out.flush()?;

    let mut mismatched = Vec::new();
    for a in &accounts {
        let exported = sums.get(&a.id).copied().unwrap_or(0) * a.kind.normal_sign();
        if exported != a.balance.fen() {
            mismatched.push((a.path(), a.balance, Amount::from_fen(exported)));
        }
    }
    let moved_accounts = mismatched.len() as u64;
    if let Some((account, stored, exported)) = mismatched.into_iter().next() {
        // Only a journal that grew meanwhile explains a difference.
        if store.head().await?.seq == head.seq {
            return Err(ExportError::Mismatch {
                account,
                stored,
                exported,
            });
        }
    }
    if let Some(w) = balances {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["account", "hongxin_account", "type", "balance"])?;
        for a in &accounts {
            let name = names.get(a.id).unwrap_or_default();
            csv.write_record([name, &a.path(), a.kind.as_str(), &a.balance.to_string()])?;
        }
        csv.flush()?;
    }
    Ok(Summary {
        entries,
        postings,
        accounts: accounts.len() as u64,
        head_seq: after,
        head_hash: head.hash,
        moved_accounts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: i64, owner_kind: &str, code: &str, name: &str, kind: AccountType) -> AccountInfo {
        AccountInfo {
            id: AccountId(id),
            owner_kind: owner_kind.into(),
            owner_code: code.into(),
            name: name.into(),
            kind,
            balance: Amount::ZERO,
            first_posted: None,
        }
    }

    #[test]
    fn names_are_valid_beancount_accounts() {
        let cases = [
            (
                info(1, "cooperative", "COOP", "cash:wechat", AccountType::Asset),
                "Assets:Coop:COOP:Cash:Wechat",
            ),
            (
                info(
                    2,
                    "household",
                    "HX01-0001",
                    "wallet:COOP:paid",
                    AccountType::Liability,
                ),
                "Liabilities:Household:HX01-0001:Wallet:COOP:Paid",
            ),
            (
                info(3, "voucher", "123456", "bonus", AccountType::Liability),
                "Liabilities:Voucher:V123456:Bonus",
            ),
            (
                info(4, "company", "K01", "fee_revenue", AccountType::Revenue),
                "Income:Company:K01:Fee-Revenue",
            ),
            (
                info(5, "household", "HX01-0001", "fees", AccountType::Asset),
                "Assets:Household:HX01-0001:Fees",
            ),
            (
                info(
                    6,
                    "cooperative",
                    "coop",
                    "expense:租金",
                    AccountType::Expense,
                ),
                "Expenses:Coop:Coop:Expense:U79DFU91D1",
            ),
            (
                info(7, "cooperative", "_x", "due_to:K01", AccountType::Liability),
                "Liabilities:Coop:X-X:Due-To:K01",
            ),
        ];
        for (a, want) in &cases {
            assert_eq!(account_name(a), *want);
            for c in want.split(':') {
                assert!(c.starts_with(|c: char| c.is_ascii_uppercase() || c.is_ascii_digit()));
                assert!(c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            }
        }
        assert_eq!(component(""), "X");
        assert_eq!(component("-a"), "X-a");
    }

    #[test]
    fn names_stay_distinct() {
        let accounts = [
            info(
                1,
                "cooperative",
                "COOP",
                "expense:rent",
                AccountType::Expense,
            ),
            info(
                2,
                "cooperative",
                "COOP",
                "expense:Rent",
                AccountType::Expense,
            ),
        ];
        let names = Names::new(&accounts);
        assert_eq!(
            names.get(AccountId(1)),
            Some("Expenses:Coop:COOP:Expense:Rent")
        );
        assert_eq!(
            names.get(AccountId(2)),
            Some("Expenses:Coop:COOP:Expense:Rent-A2")
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quoted("a \"b\" \\ c\nd"), "\"a \\\"b\\\" \\\\ c d\"");
    }
}
