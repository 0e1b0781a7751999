//! The rows and balances a batch works on, in memory, and what the batch will write.
//!
//! A store fills a [`State`] with what the batch's commands will read ([`super::Keys`], loaded
//! in bulk), the engine runs the commands against it one by one, and the store writes the
//! [`Effects`] at once. Every change a command makes is logged so that a refused command leaves
//! the state exactly as it found it ([`State::mark`], [`State::undo`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;

use crate::domain::{
    CatalogItem, HouseholdRef, NewVoucher, OpError, OpResult, Posted, Rejection, SaleRecord,
    SaleRefundRecord, ShopRef, StoreError, TopupRecord, VoucherRecord,
};
use crate::ledger::{entry_hash_v2, AccountId, AccountSpec, EntryDraft, EntryHeader, Owner};
use crate::money::Amount;

/// An account as loaded: its id and its balance on its normal side, in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub spec: AccountSpec,
    pub balance: i64,
}

/// A remembered outcome of an idempotency key: the request's fingerprint and the stored text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    pub fingerprint: String,
    pub outcome: String,
}

/// Where the journal stands: the last entry's sequence and hash, and its business date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: [u8; 32],
    pub business_date: Option<NaiveDate>,
}

/// The first ids the batch gives to rows it creates (the store reads them under its write lock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextIds {
    pub account: i64,
    pub voucher: i64,
    pub sale: i64,
}

/// Ids a store reserved for the rows a batch may create, in the order the batch takes them.
/// PostgreSQL draws them from sequences that other processes share, so they need not be
/// consecutive; without them (SQLite's single writer) ids count up from [`NextIds`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    pub entries: Vec<i64>,
    pub sales: Vec<i64>,
    pub vouchers: Vec<i64>,
}

/// What a store loaded for a batch. Absent keys are absent rows.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub shops: HashMap<String, ShopRef>,
    pub households: HashMap<String, HouseholdRef>,
    /// By (cooperative id, SKU).
    pub catalog: HashMap<(i64, String), CatalogItem>,
    /// By id.
    pub vouchers: HashMap<i64, VoucherRecord>,
    /// Serials drawn for new vouchers that are already taken.
    pub taken_serials: Vec<u64>,
    pub sales: HashMap<i64, SaleRecord>,
    /// Bonus granted by top-ups, by (household id, month).
    pub bonus: HashMap<(i64, String), Amount>,
    /// Every account of the owners the batch touches.
    pub accounts: Vec<Account>,
    /// By (scope, key).
    pub idempotency: HashMap<(String, String), Remembered>,
}

impl Loaded {
    /// Vouchers the loaded sales were paid with that the first reads did not load: the store
    /// reads them next.
    pub fn tendered_vouchers(&self) -> BTreeSet<i64> {
        self.sales
            .values()
            .flat_map(|s| s.tenders.iter().filter_map(|t| t.voucher))
            .filter(|v| !self.vouchers.contains_key(v))
            .collect()
    }

    /// The catalogue items the keys name, as (cooperative id, SKU), for the shops loaded.
    pub fn catalog_keys<'k>(&self, keys: &'k super::Keys) -> Vec<(i64, &'k str)> {
        keys.items
            .iter()
            .filter_map(|(shop, sku)| Some((self.shops.get(shop)?.coop.id, sku.as_str())))
            .collect()
    }

    /// Whose accounts the batch weighs, by owner kind: the cooperatives of its shops and of
    /// the sales refunded, the households named or paid from, and the vouchers.
    pub fn account_owners(&self) -> [(&'static str, BTreeSet<i64>); 3] {
        let mut coops: BTreeSet<i64> = self.shops.values().map(|s| s.coop.id).collect();
        let mut households: BTreeSet<i64> = self.households.values().map(|h| h.id).collect();
        let mut vouchers: BTreeSet<i64> = self.vouchers.keys().copied().collect();
        for sale in self.sales.values() {
            coops.insert(sale.coop);
            for t in &sale.tenders {
                households.extend(t.household);
                vouchers.extend(t.voucher);
            }
        }
        [
            ("cooperative", coops),
            ("household", households),
            ("voucher", vouchers),
        ]
    }
}

/// An entry as the batch posts it: sequence, chain hashes, and postings by account id, each
/// with the change to its account's balance.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// The entry's id: its sequence, unless the store reserved ids ([`Reserved`]).
    pub id: i64,
    pub seq: i64,
    pub header: EntryHeader,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    /// (account, amount in fen: positive = debit).
    pub postings: Vec<(AccountId, i64)>,
}

/// Everything a batch writes, in the order the commands produced it.
#[derive(Clone, Debug, Default)]
pub struct Effects {
    pub accounts: Vec<(AccountId, AccountSpec)>,
    pub entries: Vec<NewEntry>,
    /// Balance changes on the accounts' normal side, summed per account.
    pub balances: BTreeMap<i64, i64>,
    pub vouchers: Vec<(i64, NewVoucher)>,
    pub topups: Vec<TopupRecord>,
    pub sales: Vec<SaleRecord>,
    /// (sale id, refund).
    pub refunds: Vec<(i64, SaleRefundRecord)>,
    /// Policies applied: (`id@version`, content hash).
    pub policies: Vec<(String, String)>,
    /// (scope, key, fingerprint, outcome).
    pub idempotency: Vec<(String, String, String, String)>,
}

enum Undo {
    /// The balance before, and whether the batch's summed delta for the account existed.
    Balance(AccountId, i64, bool),
    NewAccount(Owner, String),
    Sale(SaleRecord),
    NewSale(i64),
    Bonus((i64, String), Amount),
    NewVoucher(i64, u64),
    Remembered((String, String)),
}

/// Where a command began, to undo it.
pub struct Mark {
    undo: usize,
    lens: [usize; 8],
    head: Head,
    next: NextIds,
}

/// The in-memory state a batch runs on.
pub struct State {
    shops: HashMap<String, ShopRef>,
    households: HashMap<String, HouseholdRef>,
    catalog: HashMap<(i64, String), CatalogItem>,
    vouchers: HashMap<i64, VoucherRecord>,
    serials: HashMap<u64, i64>,
    taken_serials: Vec<u64>,
    sales: HashMap<i64, SaleRecord>,
    bonus: HashMap<(i64, String), Amount>,
    /// By (owner, name); the index into `balances`.
    accounts: HashMap<(Owner, String), Account>,
    balances: HashMap<AccountId, (Owner, String)>,
    idempotency: HashMap<(String, String), Remembered>,
    head: Head,
    next: NextIds,
    /// With reserved ids, `next`'s sale and voucher counters and the sequence past
    /// `first_seq` index into them.
    reserved: Option<Reserved>,
    first_seq: i64,
    undo: Vec<Undo>,
    pub effects: Effects,
}

/// A posting names an account by owner and name that exists with another type or bound.
pub fn another_type(spec: &AccountSpec) -> StoreError {
    StoreError(format!(
        "account {}:{}:{} has another type",
        spec.owner.kind(),
        spec.owner.id(),
        spec.name
    ))
}

fn too_large(field: &str) -> OpError {
    Rejection::bad_amount(field, "is too large").into()
}

impl State {
    pub fn new(loaded: Loaded, head: Head, next: NextIds) -> State {
        let serials = loaded.vouchers.values().map(|v| (v.serial, v.id)).collect();
        let mut accounts = HashMap::with_capacity(loaded.accounts.len());
        let mut balances = HashMap::with_capacity(loaded.accounts.len());
        for a in loaded.accounts {
            let key = (a.spec.owner, a.spec.name.clone());
            balances.insert(a.id, key.clone());
            accounts.insert(key, a);
        }
        State {
            shops: loaded.shops,
            households: loaded.households,
            catalog: loaded.catalog,
            vouchers: loaded.vouchers,
            serials,
            taken_serials: loaded.taken_serials,
            sales: loaded.sales,
            bonus: loaded.bonus,
            accounts,
            balances,
            idempotency: loaded.idempotency,
            head,
            next,
            reserved: None,
            first_seq: head.seq,
            undo: Vec::new(),
            effects: Effects::default(),
        }
    }

    /// The same state, giving new entries, sales and vouchers the ids `reserved` holds.
    pub fn with_reserved(mut self, reserved: Reserved) -> State {
        self.next.sale = 0;
        self.next.voucher = 0;
        self.first_seq = self.head.seq;
        self.reserved = Some(reserved);
        self
    }

    /// The id of the `n`th row of a kind the batch creates (counting from `first`).
    fn issued(&self, pick: fn(&Reserved) -> &Vec<i64>, first: i64, n: i64) -> OpResult<i64> {
        match &self.reserved {
            None => Ok(n),
            Some(r) => usize::try_from(n - first)
                .ok()
                .and_then(|i| pick(r).get(i).copied())
                .ok_or_else(|| StoreError("the batch ran out of reserved ids".into()).into()),
        }
    }

    pub fn head(&self) -> Head {
        self.head
    }

    // ---- reads ----

    pub fn shop(&self, code: &str) -> Option<ShopRef> {
        self.shops.get(code).cloned()
    }

    pub fn household(&self, code: &str) -> Option<HouseholdRef> {
        self.households.get(code).cloned()
    }

    pub fn catalog_item(&self, coop: i64, sku: &str) -> Option<CatalogItem> {
        self.catalog.get(&(coop, sku.to_string())).cloned()
    }

    pub fn voucher(&self, serial: u64) -> Option<VoucherRecord> {
        self.serials
            .get(&serial)
            .and_then(|id| self.vouchers.get(id))
            .cloned()
    }

    pub fn voucher_by_id(&self, id: i64) -> Option<VoucherRecord> {
        self.vouchers.get(&id).cloned()
    }

    pub fn sale(&self, id: i64) -> Option<SaleRecord> {
        self.sales.get(&id).cloned()
    }

    /// Bonus granted to a household by top-ups dated in `month`. The month must have been
    /// loaded ([`super::Keys`] names it).
    pub fn bonus_in_month(&self, household: i64, month: &str) -> OpResult<Amount> {
        self.bonus
            .get(&(household, month.to_string()))
            .copied()
            .ok_or_else(|| {
                StoreError(format!(
                    "bonus of household {household} in {month} was not loaded"
                ))
                .into()
            })
    }

    /// Balance of an account on its normal side; zero if it was never used.
    pub fn balance(&self, spec: &AccountSpec) -> Amount {
        self.accounts
            .get(&(spec.owner, spec.name.clone()))
            .map_or(Amount::ZERO, |a| Amount::from_fen(a.balance))
    }

    /// The account an id stands for in this state (loaded or opened by the batch).
    pub fn spec_of(&self, id: AccountId) -> Option<&AccountSpec> {
        let key = self.balances.get(&id)?;
        self.accounts.get(key).map(|a| &a.spec)
    }

    pub fn remembered(&self, scope: &str, key: &str) -> Option<&Remembered> {
        self.idempotency.get(&(scope.to_string(), key.to_string()))
    }

    // ---- writes ----

    /// A serial for a new voucher: one of those drawn for the batch that is free.
    pub fn free_serial(&self, drawn: &[u64]) -> OpResult<u64> {
        drawn
            .iter()
            .copied()
            .find(|s| !self.taken_serials.contains(s) && !self.serials.contains_key(s))
            .ok_or_else(|| StoreError("every serial drawn for a voucher is taken".into()).into())
    }

    pub fn insert_voucher(&mut self, v: &NewVoucher) -> OpResult<i64> {
        let id = self.issued(|r| &r.vouchers, 0, self.next.voucher)?;
        self.next.voucher += 1;
        self.vouchers.insert(
            id,
            VoucherRecord {
                id,
                serial: v.serial,
                coop: v.coop,
                household: v.household,
                issued_on: v.issued_on,
                expires_on: v.expires_on,
                status: crate::domain::VoucherStatus::Active,
            },
        );
        self.serials.insert(v.serial, id);
        self.undo.push(Undo::NewVoucher(id, v.serial));
        self.effects.vouchers.push((id, v.clone()));
        Ok(id)
    }

    pub fn insert_topup(&mut self, t: &TopupRecord) {
        let key = (t.household, crate::domain::month_of(t.business_date));
        let before = self.bonus.get(&key).copied().unwrap_or(Amount::ZERO);
        self.bonus
            .insert(key.clone(), before.checked_add(t.bonus).unwrap_or(before));
        self.undo.push(Undo::Bonus(key, before));
        self.effects.topups.push(t.clone());
    }

    /// Records a sale; returns its id.
    pub fn insert_sale(&mut self, s: &SaleRecord) -> OpResult<i64> {
        let id = self.issued(|r| &r.sales, 0, self.next.sale)?;
        self.next.sale += 1;
        let mut s = s.clone();
        s.id = id;
        self.sales.insert(id, s.clone());
        self.undo.push(Undo::NewSale(id));
        self.effects.sales.push(s);
        Ok(id)
    }

    pub fn record_sale_refund(&mut self, sale: i64, refund: &SaleRefundRecord) -> OpResult<()> {
        let record = self
            .sales
            .get_mut(&sale)
            .ok_or_else(|| StoreError(format!("sale {sale} was not loaded")))?;
        let before = record.clone();
        let add = |a: Amount, b: Amount| a.checked_add(b).ok_or_else(|| too_large("amount"));
        record.refunded = add(record.refunded, refund.amount)?;
        record.refunded_cost = add(record.refunded_cost, refund.cost)?;
        for (t, (total, paid, bonus)) in record.tenders.iter_mut().zip(&refund.tenders) {
            t.refunded = add(t.refunded, *total)?;
            t.refunded_paid = add(t.refunded_paid, *paid)?;
            t.refunded_bonus = add(t.refunded_bonus, *bonus)?;
        }
        self.undo.push(Undo::Sale(before));
        self.effects.refunds.push((sale, refund.clone()));
        Ok(())
    }

    /// Remembers a command's outcome under its idempotency key.
    pub fn remember(&mut self, scope: &str, key: &str, fingerprint: &str, outcome: String) {
        let k = (scope.to_string(), key.to_string());
        self.idempotency.insert(
            k.clone(),
            Remembered {
                fingerprint: fingerprint.to_string(),
                outcome: outcome.clone(),
            },
        );
        self.undo.push(Undo::Remembered(k));
        self.effects.idempotency.push((
            scope.to_string(),
            key.to_string(),
            fingerprint.to_string(),
            outcome,
        ));
    }

    /// Posts a balanced entry: resolves (or opens) its accounts, refuses to take a bounded
    /// account below zero (as `insufficient_funds` on `field`) or any balance past what fen
    /// can hold, and extends the hash chain.
    pub fn post(&mut self, entry: EntryDraft, field: &str) -> OpResult<Posted> {
        let EntryDraft { header, postings } = entry;
        let mut ids = Vec::with_capacity(postings.len());
        for (spec, fen) in &postings {
            let key = (spec.owner, spec.name.clone());
            let account = match self.accounts.get_mut(&key) {
                Some(a) => {
                    if a.spec != *spec {
                        return Err(another_type(spec).into());
                    }
                    a
                }
                None => {
                    let id = AccountId(self.next.account);
                    self.next.account += 1;
                    self.undo
                        .push(Undo::NewAccount(spec.owner, spec.name.clone()));
                    self.effects.accounts.push((id, spec.clone()));
                    self.balances.insert(id, key.clone());
                    self.accounts.entry(key).or_insert(Account {
                        id,
                        spec: spec.clone(),
                        balance: 0,
                    })
                }
            };
            let delta = fen
                .checked_mul(spec.kind.normal_sign())
                .ok_or_else(|| too_large(field))?;
            let after = account.balance.checked_add(delta);
            if spec.bounded && delta < 0 && after.is_none_or(|a| a < 0) {
                return Err(Rejection::InsufficientFunds {
                    field: field.into(),
                    available: Amount::from_fen(account.balance),
                }
                .into());
            }
            let after = after.ok_or_else(|| too_large(field))?;
            let had_delta = self.effects.balances.contains_key(&account.id.0);
            self.undo
                .push(Undo::Balance(account.id, account.balance, had_delta));
            account.balance = after;
            let summed = self.effects.balances.entry(account.id.0).or_insert(0);
            *summed = summed.checked_add(delta).ok_or_else(|| too_large(field))?;
            ids.push((account.id, *fen));
        }
        let seq = self.head.seq + 1;
        let id = self.issued(|r| &r.entries, self.first_seq + 1, seq)?;
        let identities: Vec<&AccountSpec> = postings.iter().map(|(spec, _)| spec).collect();
        let hash = entry_hash_v2(&self.head.hash, seq, &header, &ids, &identities);
        if let Some(policy) = &header.policy {
            if !self.effects.policies.contains(policy) {
                self.effects.policies.push(policy.clone());
            }
        }
        let business_date = header.business_date;
        self.effects.entries.push(NewEntry {
            id,
            seq,
            header,
            prev_hash: self.head.hash,
            hash,
            postings: ids,
        });
        self.head = Head {
            seq,
            hash,
            business_date: Some(business_date),
        };
        Ok(Posted {
            id,
            hash: hex::encode(hash),
            business_date,
        })
    }

    // ---- undo ----

    pub fn mark(&self) -> Mark {
        let e = &self.effects;
        Mark {
            undo: self.undo.len(),
            lens: [
                e.accounts.len(),
                e.entries.len(),
                e.vouchers.len(),
                e.topups.len(),
                e.sales.len(),
                e.refunds.len(),
                e.policies.len(),
                e.idempotency.len(),
            ],
            head: self.head,
            next: self.next,
        }
    }

    /// Puts everything back as it was at `mark`: a refused command leaves no trace.
    pub fn undo(&mut self, mark: Mark) {
        while self.undo.len() > mark.undo {
            match self.undo.pop().expect("undo entries above the mark") {
                Undo::Balance(id, before, had_delta) => {
                    if let Some(key) = self.balances.get(&id) {
                        if let Some(a) = self.accounts.get_mut(key) {
                            let delta = a.balance - before;
                            a.balance = before;
                            if !had_delta {
                                self.effects.balances.remove(&id.0);
                            } else if let Some(sum) = self.effects.balances.get_mut(&id.0) {
                                *sum -= delta;
                            }
                        }
                    }
                }
                Undo::NewAccount(owner, name) => {
                    if let Some(a) = self.accounts.remove(&(owner, name)) {
                        self.balances.remove(&a.id);
                        self.effects.balances.remove(&a.id.0);
                    }
                }
                Undo::Sale(before) => {
                    self.sales.insert(before.id, before);
                }
                Undo::NewSale(id) => {
                    self.sales.remove(&id);
                }
                Undo::Bonus(key, before) => {
                    self.bonus.insert(key, before);
                }
                Undo::NewVoucher(id, serial) => {
                    self.vouchers.remove(&id);
                    self.serials.remove(&serial);
                }
                Undo::Remembered(key) => {
                    self.idempotency.remove(&key);
                }
            }
        }
        let e = &mut self.effects;
        let [accounts, entries, vouchers, topups, sales, refunds, policies, idempotency] =
            mark.lens;
        e.accounts.truncate(accounts);
        e.entries.truncate(entries);
        e.vouchers.truncate(vouchers);
        e.topups.truncate(topups);
        e.sales.truncate(sales);
        e.refunds.truncate(refunds);
        e.policies.truncate(policies);
        e.idempotency.truncate(idempotency);
        self.head = mark.head;
        self.next = mark.next;
    }
}
