//! The write engine: a batch of commands is run in three phases, in the shape of
//! TigerBeetle's state machine.
//!
//! 1. *Keys*: each command names what it will read ([`keys`]): shops, households, vouchers by
//!    serial, sales being refunded, catalogue items, idempotency keys, the month of its bonus.
//! 2. *Load*: the store reads all of it with one query per table into a [`State`].
//! 3. *Execute*: every command runs against the [`State`] in memory ([`execute`]), with no
//!    SQL and no `await`; a refused command is undone from the state's log. Then the store
//!    writes the batch's [`Effects`] with one statement per table and commits once.
//!
//! The engine runs the till's commands (top-ups, sales, sale refunds: [`runs`]); the others
//! still run one by one through [`crate::domain::run`].

pub mod ops;
mod state;

pub use state::{
    another_type, Account, Effects, Head, Loaded, Mark, NewEntry, NextIds, Remembered, Reserved,
    State,
};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{self, Command, Ctx, OpError, Rejection, StoreError, TenderType};
use crate::policy::PolicySet;
use crate::store::{Envelope, Outcome};
use crate::voucher::{random_serial, KeyRing, VoucherCode};

/// Serials drawn for each new voucher; a batch takes the first of them that is free.
const SERIALS_DRAWN: usize = 2;

/// Whether the engine runs this command.
pub fn runs(command: &Command) -> bool {
    matches!(
        command,
        Command::TopUp(_) | Command::Sale(_) | Command::RefundSale(_)
    )
}

/// What a batch of commands will read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    pub shops: BTreeSet<String>,
    pub households: BTreeSet<String>,
    /// Vouchers named by the codes tendered.
    pub serials: BTreeSet<u64>,
    /// Sales being refunded.
    pub sales: BTreeSet<i64>,
    /// Catalogue items by (shop code, SKU): the shop names the cooperative.
    pub items: BTreeSet<(String, String)>,
    /// Serials drawn for new vouchers, to be checked free.
    pub drawn: BTreeSet<u64>,
    /// (scope, key).
    pub idempotency: BTreeSet<(String, String)>,
    /// The month whose bonus the top-ups weigh (`YYYY-MM` of the business date).
    pub month: String,
    /// The business date (`YYYY-MM-DD`): the day whose master data (a compound's eligibility)
    /// the top-ups use.
    pub day: String,
}

/// A batch's commands with what they will read: the keys, and per command the serials drawn
/// for the voucher it may issue.
pub struct Plan {
    pub keys: Keys,
    pub drawn: Vec<Vec<u64>>,
}

/// The keys of a batch run on `today`.
pub fn keys(envelopes: &[&Envelope], ring: &KeyRing, today: NaiveDate) -> Plan {
    let mut keys = Keys {
        month: domain::month_of(today),
        day: today.to_string(),
        ..Keys::default()
    };
    let mut drawn = Vec::with_capacity(envelopes.len());
    for envelope in envelopes {
        if let Some(idem) = &envelope.idempotency {
            keys.idempotency
                .insert((idem.scope.clone(), idem.key.clone()));
        }
        let mut mine = Vec::new();
        match &envelope.command {
            Command::TopUp(t) => {
                keys.shops.insert(t.shop.clone());
                keys.households.insert(t.household.clone());
                if t.deliver == domain::Delivery::Voucher {
                    mine = (0..SERIALS_DRAWN).map(|_| random_serial()).collect();
                    keys.drawn.extend(&mine);
                }
            }
            Command::Sale(s) => {
                keys.shops.insert(s.shop.clone());
                if let Some(h) = &s.household {
                    keys.households.insert(h.clone());
                }
                for line in &s.lines {
                    keys.items.insert((s.shop.clone(), line.sku.clone()));
                }
                for t in &s.tenders {
                    if let (TenderType::Voucher, Some(code)) = (t.kind, &t.code) {
                        if let Ok(c) = VoucherCode::verify(ring, code) {
                            keys.serials.insert(c.serial());
                        }
                    }
                }
            }
            Command::RefundSale(r) => {
                keys.sales.insert(r.sale);
                if let Some(shop) = &r.shop {
                    keys.shops.insert(shop.clone());
                }
            }
            _ => {}
        }
        drawn.push(mine);
    }
    Plan { keys, drawn }
}

/// What the engine needs besides the state: the policies and keys, and the time the batch
/// runs at (one business date for the whole batch, never before the journal's).
pub struct Services<'a> {
    pub policies: &'a PolicySet,
    pub keys: &'a KeyRing,
    pub today: NaiveDate,
    pub now: DateTime<Utc>,
}

/// Runs the batch's commands against `state`, in order. The inner `Err` fails one command
/// alone (a store failure, not remembered); the outer one fails the whole batch.
pub fn execute(
    state: &mut State,
    services: &Services<'_>,
    envelopes: &[&Envelope],
    drawn: &[Vec<u64>],
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    let mut outcomes = Vec::with_capacity(envelopes.len());
    for (envelope, drawn) in envelopes.iter().zip(drawn) {
        outcomes.push(execute_one(state, services, envelope, drawn)?);
    }
    Ok(outcomes)
}

fn execute_one(
    state: &mut State,
    services: &Services<'_>,
    envelope: &Envelope,
    drawn: &[u64],
) -> Result<Result<Outcome, StoreError>, StoreError> {
    if let Some(idem) = &envelope.idempotency {
        if let Some(seen) = state.remembered(&idem.scope, &idem.key) {
            if !idem.matches(&seen.fingerprint) {
                return Ok(Ok(Outcome {
                    result: Err(Rejection::IdempotencyKeyReused),
                    replayed: false,
                }));
            }
            let result = crate::store::outcome_from_store(&seen.outcome, services.keys)?;
            return Ok(Ok(Outcome {
                result,
                replayed: true,
            }));
        }
    }
    let ctx = Ctx {
        policies: services.policies,
        keys: services.keys,
        today: services.today,
        now: services.now,
        actor: envelope.actor,
        idempotency_key: envelope.idempotency.as_ref().map(|i| i.key.as_str()),
    };
    let mark = state.mark();
    let result = match ops::run(state, &ctx, &envelope.command, drawn) {
        Ok(receipt) => Ok(receipt),
        Err(e) => {
            state.undo(mark);
            match e {
                OpError::Rejected(r) => Err(r),
                OpError::Store(e) => return Ok(Err(e)),
            }
        }
    };
    if let Some(idem) = &envelope.idempotency {
        let outcome = crate::store::outcome_to_store(&result, services.keys)?;
        state.remember(&idem.scope, &idem.key, &idem.fingerprint, outcome);
    }
    Ok(Ok(Outcome {
        result,
        replayed: false,
    }))
}

/// The refund tenders' running totals a batch leaves, per (sale, tender index): what a store
/// writes to `sale_tenders` (amount, paid, bonus), summed over the batch's refunds.
pub fn tender_refunds(effects: &Effects) -> BTreeMap<(i64, i64), (i64, i64, i64)> {
    let mut sums: BTreeMap<(i64, i64), (i64, i64, i64)> = BTreeMap::new();
    for (sale, refund) in &effects.refunds {
        for (i, (total, paid, bonus)) in refund.tenders.iter().enumerate() {
            if total.is_zero() {
                continue;
            }
            let s = sums.entry((*sale, i as i64)).or_default();
            s.0 += total.fen();
            s.1 += paid.fen();
            s.2 += bonus.fen();
        }
    }
    sums
}

/// The sales' refunded totals a batch leaves, per sale: (amount, cost), summed.
pub fn sale_refunds(effects: &Effects) -> BTreeMap<i64, (i64, i64)> {
    let mut sums: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (sale, refund) in &effects.refunds {
        let s = sums.entry(*sale).or_default();
        s.0 += refund.amount.fen();
        s.1 += refund.cost.fen();
    }
    sums
}

#[cfg(test)]
mod tests;
