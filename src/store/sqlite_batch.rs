//! The SQLite side of the write engine ([`crate::engine`]): `load` reads what a batch's keys
//! name with one query per table, `persist` writes a batch's effects.
//!
//! Both run synchronously on the writer's own thread, on the writer connection's raw handle
//! (through rusqlite, while sqlx's lock on the handle is held): every statement is prepared once
//! and kept, and no statement waits for a hop to sqlx's worker thread. In process, a prepared
//! single-row INSERT run once per row costs what a multi-row one does, without the bind limit
//! or a statement shape per batch size, so `persist` writes row by row.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, Row};

use crate::domain::{
    CatalogItem, CoopRef, SaleLineRecord, SaleRecord, ShopRef, StoreError, TenderRecord,
    TenderType, VoucherRecord,
};
use crate::engine::{self, Account, Effects, Keys, Loaded, NextIds, Remembered};
use crate::ledger::{canonical_time, AccountId, AccountSpec, AccountType, Owner, HASH_VERSION};
use crate::money::Amount;
use crate::store::rows::{self, date, VOUCHER_COLUMNS};

fn amount(r: &Row<'_>, i: usize) -> rusqlite::Result<Amount> {
    Ok(Amount::from_fen(r.get(i)?))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

fn voucher(r: &Row<'_>) -> Result<VoucherRecord, StoreError> {
    rows::voucher_record((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

/// Runs a prepared query with one bound value and hands each row to `each`.
fn each_row(
    db: &Connection,
    sql: &str,
    bound: &dyn rusqlite::ToSql,
    mut each: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = db.prepare_cached(sql)?;
    let mut rows = stmt.query([bound])?;
    while let Some(r) = rows.next()? {
        each(r)?;
    }
    Ok(())
}

/// As [`each_row`], with several values bound.
fn each_row2(
    db: &Connection,
    sql: &str,
    bound: impl rusqlite::Params,
    mut each: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = db.prepare_cached(sql)?;
    let mut rows = stmt.query(bound)?;
    while let Some(r) = rows.next()? {
        each(r)?;
    }
    Ok(())
}

/// The head of the chain: the last entry's id, hash and business date (genesis when none).
pub(super) fn head(db: &Connection) -> Result<engine::Head, StoreError> {
    let mut stmt =
        db.prepare_cached("SELECT id, hash, business_date FROM entries ORDER BY id DESC LIMIT 1")?;
    let mut rows = stmt.query([])?;
    match rows.next()? {
        None => Ok(engine::Head {
            seq: 0,
            hash: crate::ledger::GENESIS_HASH,
            business_date: None,
        }),
        Some(r) => {
            let hash: String = r.get(1)?;
            let day: String = r.get(2)?;
            Ok(engine::Head {
                seq: r.get(0)?,
                hash: crate::store::rows::hash32(&hash)?,
                business_date: Some(date(&day)?),
            })
        }
    }
}

/// Reads what the keys name, in one transaction with the writes that follow, and the first
/// free ids.
pub(super) fn load(db: &Connection, keys: &Keys) -> Result<(Loaded, NextIds), StoreError> {
    let mut loaded = Loaded::default();
    if !keys.idempotency.is_empty() {
        let pairs: Vec<(&str, &str)> = keys
            .idempotency
            .iter()
            .map(|(s, k)| (s.as_str(), k.as_str()))
            .collect();
        let sql = "SELECT i.scope, i.key, i.fingerprint, i.outcome FROM json_each(?1) j
                   JOIN idempotency i ON i.scope = json_extract(j.value, '$[0]')
                                     AND i.key = json_extract(j.value, '$[1]')";
        each_row(db, sql, &json(&pairs)?, |r| {
            loaded.idempotency.insert(
                (r.get(0)?, r.get(1)?),
                Remembered {
                    fingerprint: r.get(2)?,
                    outcome: r.get(3)?,
                },
            );
            Ok(())
        })?;
    }
    if !keys.shops.is_empty() {
        let sql = "SELECT s.id, s.code, c.id, c.code FROM shops s
                   JOIN cooperatives c ON c.id = s.cooperative_id
                   WHERE s.code IN (SELECT value FROM json_each(?1))";
        each_row(db, sql, &json(&keys.shops)?, |r| {
            let shop = ShopRef {
                id: r.get(0)?,
                code: r.get(1)?,
                coop: CoopRef {
                    id: r.get(2)?,
                    code: r.get(3)?,
                },
            };
            loaded.shops.insert(shop.code.clone(), shop);
            Ok(())
        })?;
    }
    if !keys.households.is_empty() {
        // Eligibility as in force on the batch's business date (a change may switch it).
        let sql = format!(
            "SELECT {} WHERE h.code IN (SELECT value FROM json_each(?1))",
            rows::household_ref_columns(Some("?2"))
        );
        each_row2(db, &sql, (&json(&keys.households)?, &keys.day), |r| {
            let h = rows::household_ref((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ));
            loaded.households.insert(h.code.clone(), h);
            Ok(())
        })?;
    }
    let serials: BTreeSet<i64> = keys
        .serials
        .iter()
        .chain(&keys.drawn)
        .map(|s| *s as i64)
        .collect();
    if !serials.is_empty() {
        let sql = format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE serial IN (SELECT value FROM json_each(?1))"
        );
        each_row(db, &sql, &json(&serials)?, |r| {
            let v = voucher(r)?;
            if keys.drawn.contains(&v.serial) {
                loaded.taken_serials.push(v.serial);
            }
            if keys.serials.contains(&v.serial) {
                loaded.vouchers.insert(v.id, v);
            }
            Ok(())
        })?;
    }
    if !keys.sales.is_empty() {
        load_sales(db, keys, &mut loaded)?;
    }

    let tender_vouchers = loaded.tendered_vouchers();
    if !tender_vouchers.is_empty() {
        let sql = format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id IN (SELECT value FROM json_each(?1))"
        );
        each_row(db, &sql, &json(&tender_vouchers)?, |r| {
            let v = voucher(r)?;
            loaded.vouchers.insert(v.id, v);
            Ok(())
        })?;
    }
    let items = loaded.catalog_keys(keys);
    if !items.is_empty() {
        let sql = "SELECT c.cooperative_id, c.id, c.sku, c.name, c.unit, c.price, c.cost, c.barcode
                   FROM json_each(?1) j JOIN catalog_items c
                     ON c.cooperative_id = json_extract(j.value, '$[0]')
                    AND c.sku = json_extract(j.value, '$[1]')";
        each_row(db, sql, &json(&items)?, |r| {
            let item = CatalogItem {
                id: r.get(1)?,
                sku: r.get(2)?,
                name: r.get(3)?,
                unit: r.get(4)?,
                price: amount(r, 5)?,
                cost: amount(r, 6)?,
                barcode: r.get(7)?,
            };
            loaded.catalog.insert((r.get(0)?, item.sku.clone()), item);
            Ok(())
        })?;
    }
    let topped: Vec<i64> = loaded.households.values().map(|h| h.id).collect();
    if !topped.is_empty() {
        for h in &topped {
            loaded.bonus.insert((*h, keys.month.clone()), Amount::ZERO);
        }
        let mut stmt = db.prepare_cached(
            "SELECT household_id, SUM(bonus) FROM topups
             WHERE month = ?1 AND household_id IN (SELECT value FROM json_each(?2))
               AND void_entry_id IS NULL
             GROUP BY household_id",
        )?;
        let mut rows = stmt.query(params![keys.month, json(&topped)?])?;
        while let Some(r) = rows.next()? {
            loaded
                .bonus
                .insert((r.get(0)?, keys.month.clone()), amount(r, 1)?);
        }
    }
    let owners = loaded.account_owners();
    let mut stmt = db.prepare_cached(
        "SELECT a.id, a.owner_id, a.name, a.type, a.bounded, a.balance
         FROM json_each(?2) j CROSS JOIN accounts a
         ON a.owner_kind = ?1 AND a.owner_id = j.value",
    )?;
    for (kind, ids) in owners {
        if ids.is_empty() {
            continue;
        }
        let mut rows = stmt.query(params![kind, json(&ids)?])?;
        while let Some(r) = rows.next()? {
            let type_text: String = r.get(3)?;
            let owner = Owner::from_parts(kind, r.get(1)?)
                .ok_or_else(|| StoreError(format!("bad owner {kind}")))?;
            loaded.accounts.push(Account {
                id: AccountId(r.get(0)?),
                spec: AccountSpec {
                    owner,
                    name: r.get(2)?,
                    kind: AccountType::parse(&type_text)
                        .ok_or_else(|| StoreError(format!("bad type {type_text}")))?,
                    bounded: r.get::<_, i64>(4)? != 0,
                },
                balance: r.get(5)?,
            });
        }
    }
    let next = db
        .prepare_cached(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM accounts), (SELECT COALESCE(MAX(id), 0) FROM vouchers),
                    (SELECT COALESCE(MAX(id), 0) FROM sales)",
        )?
        .query_row([], |r| {
            Ok(NextIds {
                account: r.get::<_, i64>(0)? + 1,
                voucher: r.get::<_, i64>(1)? + 1,
                sale: r.get::<_, i64>(2)? + 1,
            })
        })?;
    Ok((loaded, next))
}

fn load_sales(db: &Connection, keys: &Keys, loaded: &mut Loaded) -> Result<(), StoreError> {
    let ids = json(&keys.sales)?;
    let sql =
        "SELECT s.id, s.entry_id, s.cooperative_id, c.code, s.shop_id, s.household_id, s.total,
                      s.cost, s.refunded, s.refunded_cost, s.business_date
               FROM sales s JOIN cooperatives c ON c.id = s.cooperative_id
               WHERE s.id IN (SELECT value FROM json_each(?1))";
    each_row(db, sql, &ids, |r| {
        let day: String = r.get(10)?;
        let sale = SaleRecord {
            id: r.get(0)?,
            entry: r.get(1)?,
            coop: r.get(2)?,
            coop_code: r.get(3)?,
            shop: r.get(4)?,
            household: r.get(5)?,
            total: amount(r, 6)?,
            cost: amount(r, 7)?,
            refunded: amount(r, 8)?,
            refunded_cost: amount(r, 9)?,
            business_date: date(&day)?,
            lines: Vec::new(),
            tenders: Vec::new(),
        };
        loaded.sales.insert(sale.id, sale);
        Ok(())
    })?;
    let sql = "SELECT sale_id, sku, qty, price, amount, cost FROM sale_lines
               WHERE sale_id IN (SELECT value FROM json_each(?1)) ORDER BY sale_id, idx";
    each_row(db, sql, &ids, |r| {
        if let Some(sale) = loaded.sales.get_mut(&r.get(0)?) {
            sale.lines.push(SaleLineRecord {
                sku: r.get(1)?,
                qty: r.get(2)?,
                price: amount(r, 3)?,
                amount: amount(r, 4)?,
                cost: amount(r, 5)?,
            });
        }
        Ok(())
    })?;
    let sql = "SELECT sale_id, type, household_id, voucher_id, amount, paid_part, bonus_part,
                      refunded, refunded_paid, refunded_bonus
               FROM sale_tenders WHERE sale_id IN (SELECT value FROM json_each(?1))
               ORDER BY sale_id, idx";
    each_row(db, sql, &ids, |r| {
        let kind: String = r.get(1)?;
        if let Some(sale) = loaded.sales.get_mut(&r.get(0)?) {
            sale.tenders.push(TenderRecord {
                kind: TenderType::parse(&kind)
                    .ok_or_else(|| StoreError(format!("bad tender {kind}")))?,
                household: r.get(2)?,
                voucher: r.get(3)?,
                amount: amount(r, 4)?,
                paid_part: amount(r, 5)?,
                bonus_part: amount(r, 6)?,
                refunded: amount(r, 7)?,
                refunded_paid: amount(r, 8)?,
                refunded_bonus: amount(r, 9)?,
            });
        }
        Ok(())
    })
}

/// Writes a batch's effects, in one transaction with the reads before it.
pub(super) fn persist(db: &Connection, effects: &Effects, now: &str) -> Result<(), StoreError> {
    let mut stmt = db.prepare_cached(
        "INSERT INTO accounts (id, owner_kind, owner_id, name, type, bounded) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (id, spec) in &effects.accounts {
        stmt.execute(params![
            id.0,
            spec.owner.kind(),
            spec.owner.id(),
            spec.name,
            spec.kind.as_str(),
            i64::from(spec.bounded)
        ])?;
    }
    // Hot accounts (a cooperative's cash, sales, promotion) move once per batch, by the sum.
    let mut stmt = db.prepare_cached("UPDATE accounts SET balance = balance + ?1 WHERE id = ?2")?;
    for (id, delta) in effects.balances.iter().filter(|(_, d)| **d != 0) {
        if stmt.execute(params![delta, id])? != 1 {
            return Err(StoreError(format!("a balance change missed account {id}")));
        }
    }
    let mut entry = db.prepare_cached(
        "INSERT INTO entries (id, kind, business_date, created_at, actor_token_id, policy, policy_hash,
                              idempotency_key, memo, reverses, prev_hash, hash, hash_version, facts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?;
    let mut posting = db.prepare_cached(
        "INSERT INTO postings (entry_id, idx, account_id, amount) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &effects.entries {
        let h = &e.header;
        let (policy, policy_hash) = match &h.policy {
            Some((p, hash)) => (Some(p.as_str()), Some(hash.as_str())),
            None => (None, None),
        };
        entry.execute(params![
            e.seq,
            h.kind.as_str(),
            h.business_date.to_string(),
            canonical_time(&h.created_at),
            h.actor,
            policy,
            policy_hash,
            h.idempotency_key,
            h.memo,
            h.reverses,
            hex::encode(e.prev_hash),
            hex::encode(e.hash),
            HASH_VERSION,
            h.facts,
        ])?;
        for (i, (account, fen)) in e.postings.iter().enumerate() {
            posting.execute(params![e.seq, i as i64, account.0, fen])?;
        }
    }
    super::crash_point("persist_entries");
    let mut stmt = db.prepare_cached(
        "INSERT INTO vouchers (id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active')",
    )?;
    for (id, v) in &effects.vouchers {
        stmt.execute(params![
            id,
            v.serial as i64,
            i64::from(v.key_id),
            v.coop,
            v.household,
            v.issued_on.to_string(),
            v.expires_on.to_string()
        ])?;
    }
    let mut stmt = db.prepare_cached(
        "INSERT INTO topups (entry_id, cooperative_id, shop_id, household_id, method, paid, bonus,
                             voucher_id, business_date, month)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for t in &effects.topups {
        stmt.execute(params![
            t.entry,
            t.coop,
            t.shop,
            t.household,
            t.method.as_str(),
            t.paid.fen(),
            t.bonus.fen(),
            t.voucher,
            t.business_date.to_string(),
            crate::domain::month_of(t.business_date)
        ])?;
    }
    persist_sales(db, effects)?;
    persist_refunds(db, effects)?;
    let mut stmt = db.prepare_cached(
        "INSERT INTO policy_applications (policy_id, version, hash, first_applied_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?;
    for (name, hash) in &effects.policies {
        if let Some((id, version)) = crate::store::policy_version(name)? {
            stmt.execute(params![id, version, hash, now])?;
        }
    }
    let mut stmt = db.prepare_cached(
        "INSERT INTO idempotency (scope, key, fingerprint, outcome, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (scope, key, fingerprint, outcome) in &effects.idempotency {
        stmt.execute(params![scope, key, fingerprint, outcome, now])?;
    }
    Ok(())
}

fn persist_sales(db: &Connection, effects: &Effects) -> Result<(), StoreError> {
    let mut sale = db.prepare_cached(
        "INSERT INTO sales (id, entry_id, cooperative_id, shop_id, household_id, total, cost, business_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut line = db.prepare_cached(
        "INSERT INTO sale_lines (sale_id, idx, sku, qty, price, amount, cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut tender = db.prepare_cached(
        "INSERT INTO sale_tenders (sale_id, idx, type, household_id, voucher_id, amount, paid_part, bonus_part)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for s in &effects.sales {
        sale.execute(params![
            s.id,
            s.entry,
            s.coop,
            s.shop,
            s.household,
            s.total.fen(),
            s.cost.fen(),
            s.business_date.to_string()
        ])?;
        for (i, l) in s.lines.iter().enumerate() {
            line.execute(params![
                s.id,
                i as i64,
                l.sku,
                l.qty,
                l.price.fen(),
                l.amount.fen(),
                l.cost.fen()
            ])?;
        }
        for (i, t) in s.tenders.iter().enumerate() {
            tender.execute(params![
                s.id,
                i as i64,
                t.kind.as_str(),
                t.household,
                t.voucher,
                t.amount.fen(),
                t.paid_part.fen(),
                t.bonus_part.fen()
            ])?;
        }
    }
    Ok(())
}

fn persist_refunds(db: &Connection, effects: &Effects) -> Result<(), StoreError> {
    if effects.refunds.is_empty() {
        return Ok(());
    }
    let mut stmt = db.prepare_cached(
        "UPDATE sales SET refunded = refunded + ?1, refunded_cost = refunded_cost + ?2 WHERE id = ?3",
    )?;
    for (id, (amount, cost)) in engine::sale_refunds(effects) {
        if stmt.execute(params![amount, cost, id])? != 1 {
            return Err(StoreError(format!("a refund missed sale {id}")));
        }
    }
    let mut stmt = db.prepare_cached(
        "UPDATE sale_tenders SET refunded = refunded + ?1, refunded_paid = refunded_paid + ?2,
                refunded_bonus = refunded_bonus + ?3 WHERE sale_id = ?4 AND idx = ?5",
    )?;
    for ((sale, idx), (amount, paid, bonus)) in engine::tender_refunds(effects) {
        if stmt.execute(params![amount, paid, bonus, sale, idx])? != 1 {
            return Err(StoreError(format!(
                "a refund missed tender {idx} of sale {sale}"
            )));
        }
    }
    let mut part = db.prepare_cached(
        "INSERT INTO sale_refund_tenders (entry_id, sale_id, idx, amount) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut refund = db.prepare_cached(
        "INSERT INTO sale_refunds (entry_id, sale_id, amount, cost) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (sale, r) in &effects.refunds {
        for (i, (total, _, _)) in r.tenders.iter().enumerate() {
            if !total.is_zero() {
                part.execute(params![r.entry, sale, i as i64, total.fen()])?;
            }
        }
        refund.execute(params![r.entry, sale, r.amount.fen(), r.cost.fen()])?;
    }
    Ok(())
}
