//! The SQLite side of the write engine ([`crate::engine`]): `load` reads what a batch's keys
//! name with one query per table, `persist` writes a batch's effects with one multi-row
//! statement per table (split into power-of-two chunks, so that each table has a handful of
//! statement shapes that stay prepared).

use std::collections::BTreeSet;

use sqlx::query_builder::Separated;
use sqlx::sqlite::{Sqlite, SqliteConnection, SqliteRow};
use sqlx::{QueryBuilder, Row};

use crate::domain::{
    CatalogItem, CoopRef, HouseholdRef, SaleLineRecord, SaleRecord, ShopRef, StoreError,
    TenderRecord, TenderType,
};
use crate::engine::{self, Account, Effects, Keys, Loaded, NextIds, Remembered};
use crate::ledger::{canonical_time, AccountId, AccountSpec, AccountType, Owner, HASH_VERSION};
use crate::money::Amount;
use crate::store::rows::date;

/// SQLite binds at most 32,766 values in one statement.
const MAX_BINDS: usize = 32_766;
/// The most rows one statement writes.
const MAX_ROWS: usize = 1_024;

fn amount(r: &SqliteRow, i: usize) -> Result<Amount, StoreError> {
    Ok(Amount::from_fen(r.try_get(i)?))
}

fn voucher_record(r: &SqliteRow) -> Result<crate::domain::VoucherRecord, StoreError> {
    super::voucher_record(r).map_err(|e| match e {
        crate::domain::OpError::Store(e) => e,
        crate::domain::OpError::Rejected(r) => StoreError(r.to_string()),
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))
}

async fn rows_in(
    conn: &mut SqliteConnection,
    sql: &str,
    list: String,
) -> Result<Vec<SqliteRow>, StoreError> {
    Ok(sqlx::query(sql).bind(list).fetch_all(conn).await?)
}

/// Reads what the keys name, in one transaction with the writes that follow, and the first
/// free ids.
pub(super) async fn load(
    conn: &mut SqliteConnection,
    keys: &Keys,
) -> Result<(Loaded, NextIds), StoreError> {
    let mut loaded = Loaded::default();
    if !keys.idempotency.is_empty() {
        let pairs: Vec<(&str, &str)> = keys
            .idempotency
            .iter()
            .map(|(s, k)| (s.as_str(), k.as_str()))
            .collect();
        let sql = "SELECT i.scope, i.key, i.fingerprint, i.outcome FROM json_each(?) j
                   JOIN idempotency i ON i.scope = json_extract(j.value, '$[0]')
                                     AND i.key = json_extract(j.value, '$[1]')";
        for r in rows_in(conn, sql, json(&pairs)?).await? {
            loaded.idempotency.insert(
                (r.try_get(0)?, r.try_get(1)?),
                Remembered {
                    fingerprint: r.try_get(2)?,
                    outcome: r.try_get(3)?,
                },
            );
        }
    }
    if !keys.shops.is_empty() {
        let sql = "SELECT s.id, s.code, c.id, c.code FROM shops s
                   JOIN cooperatives c ON c.id = s.cooperative_id
                   WHERE s.code IN (SELECT value FROM json_each(?))";
        for r in rows_in(conn, sql, json(&keys.shops)?).await? {
            let shop = ShopRef {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
                coop: CoopRef {
                    id: r.try_get(2)?,
                    code: r.try_get(3)?,
                },
            };
            loaded.shops.insert(shop.code.clone(), shop);
        }
    }
    if !keys.households.is_empty() {
        let sql = "SELECT h.id, h.code, c.id, c.code, c.eligible, c.company_id, h.area_dm2
                   FROM households h JOIN compounds c ON c.id = h.compound_id
                   WHERE h.code IN (SELECT value FROM json_each(?))";
        for r in rows_in(conn, sql, json(&keys.households)?).await? {
            let h = HouseholdRef {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
                compound_id: r.try_get(2)?,
                compound_code: r.try_get(3)?,
                compound_eligible: r.try_get::<i64, _>(4)? != 0,
                company_id: r.try_get(5)?,
                area_dm2: r.try_get(6)?,
            };
            loaded.households.insert(h.code.clone(), h);
        }
    }
    let serials: BTreeSet<i64> = keys
        .serials
        .iter()
        .chain(&keys.drawn)
        .map(|s| *s as i64)
        .collect();
    if !serials.is_empty() {
        let sql = "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status
                   FROM vouchers WHERE serial IN (SELECT value FROM json_each(?))";
        for r in rows_in(conn, sql, json(&serials)?).await? {
            let v = voucher_record(&r)?;
            if keys.drawn.contains(&v.serial) {
                loaded.taken_serials.push(v.serial);
            }
            if keys.serials.contains(&v.serial) {
                loaded.vouchers.insert(v.id, v);
            }
        }
    }
    if !keys.sales.is_empty() {
        load_sales(conn, keys, &mut loaded).await?;
    }

    // What the first reads name: the cooperatives, households and vouchers whose accounts,
    // catalogue items and bonus the commands weigh.
    let mut coops: BTreeSet<i64> = loaded.shops.values().map(|s| s.coop.id).collect();
    let mut households: BTreeSet<i64> = loaded.households.values().map(|h| h.id).collect();
    let mut vouchers: BTreeSet<i64> = loaded.vouchers.keys().copied().collect();
    let mut tender_vouchers = BTreeSet::new();
    for sale in loaded.sales.values() {
        coops.insert(sale.coop);
        for t in &sale.tenders {
            households.extend(t.household);
            if let Some(v) = t.voucher {
                vouchers.insert(v);
                if !loaded.vouchers.contains_key(&v) {
                    tender_vouchers.insert(v);
                }
            }
        }
    }
    if !tender_vouchers.is_empty() {
        let sql = "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status
                   FROM vouchers WHERE id IN (SELECT value FROM json_each(?))";
        for r in rows_in(conn, sql, json(&tender_vouchers)?).await? {
            let v = voucher_record(&r)?;
            loaded.vouchers.insert(v.id, v);
        }
    }
    let items: Vec<(i64, &str)> = keys
        .items
        .iter()
        .filter_map(|(shop, sku)| Some((loaded.shops.get(shop)?.coop.id, sku.as_str())))
        .collect();
    if !items.is_empty() {
        let sql = "SELECT c.cooperative_id, c.id, c.sku, c.name, c.unit, c.price, c.cost
                   FROM json_each(?) j JOIN catalog_items c
                     ON c.cooperative_id = json_extract(j.value, '$[0]')
                    AND c.sku = json_extract(j.value, '$[1]')";
        for r in rows_in(conn, sql, json(&items)?).await? {
            let item = CatalogItem {
                id: r.try_get(1)?,
                sku: r.try_get(2)?,
                name: r.try_get(3)?,
                unit: r.try_get(4)?,
                price: amount(&r, 5)?,
                cost: amount(&r, 6)?,
            };
            loaded
                .catalog
                .insert((r.try_get(0)?, item.sku.clone()), item);
        }
    }
    let topped: Vec<i64> = loaded.households.values().map(|h| h.id).collect();
    if !topped.is_empty() {
        for h in &topped {
            loaded.bonus.insert((*h, keys.month.clone()), Amount::ZERO);
        }
        let rows = sqlx::query(
            "SELECT household_id, SUM(bonus) FROM topups
             WHERE month = ? AND household_id IN (SELECT value FROM json_each(?))
             GROUP BY household_id",
        )
        .bind(&keys.month)
        .bind(json(&topped)?)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            loaded
                .bonus
                .insert((r.try_get(0)?, keys.month.clone()), amount(&r, 1)?);
        }
    }
    let owners = [
        ("cooperative", coops),
        ("household", households),
        ("voucher", vouchers),
    ];
    for (kind, ids) in owners {
        if ids.is_empty() {
            continue;
        }
        let rows = sqlx::query(
            "SELECT a.id, a.owner_id, a.name, a.type, a.bounded, a.balance
             FROM json_each(?2) j CROSS JOIN accounts a
             ON a.owner_kind = ?1 AND a.owner_id = j.value",
        )
        .bind(kind)
        .bind(json(&ids)?)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let type_text: String = r.try_get(3)?;
            let owner = Owner::from_parts(kind, r.try_get(1)?)
                .ok_or_else(|| StoreError(format!("bad owner {kind}")))?;
            loaded.accounts.push(Account {
                id: AccountId(r.try_get(0)?),
                spec: AccountSpec {
                    owner,
                    name: r.try_get(2)?,
                    kind: AccountType::parse(&type_text)
                        .ok_or_else(|| StoreError(format!("bad type {type_text}")))?,
                    bounded: r.try_get::<i64, _>(4)? != 0,
                },
                balance: r.try_get(5)?,
            });
        }
    }
    let r = sqlx::query(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM accounts), (SELECT COALESCE(MAX(id), 0) FROM vouchers),
                (SELECT COALESCE(MAX(id), 0) FROM sales)",
    )
    .fetch_one(&mut *conn)
    .await?;
    let next = NextIds {
        account: r.try_get::<i64, _>(0)? + 1,
        voucher: r.try_get::<i64, _>(1)? + 1,
        sale: r.try_get::<i64, _>(2)? + 1,
    };
    Ok((loaded, next))
}

async fn load_sales(
    conn: &mut SqliteConnection,
    keys: &Keys,
    loaded: &mut Loaded,
) -> Result<(), StoreError> {
    let ids = json(&keys.sales)?;
    let sql =
        "SELECT s.id, s.entry_id, s.cooperative_id, c.code, s.shop_id, s.household_id, s.total,
                      s.cost, s.refunded, s.refunded_cost, s.business_date
               FROM sales s JOIN cooperatives c ON c.id = s.cooperative_id
               WHERE s.id IN (SELECT value FROM json_each(?))";
    for r in rows_in(conn, sql, ids.clone()).await? {
        let sale = SaleRecord {
            id: r.try_get(0)?,
            entry: r.try_get(1)?,
            coop: r.try_get(2)?,
            coop_code: r.try_get(3)?,
            shop: r.try_get(4)?,
            household: r.try_get(5)?,
            total: amount(&r, 6)?,
            cost: amount(&r, 7)?,
            refunded: amount(&r, 8)?,
            refunded_cost: amount(&r, 9)?,
            business_date: date(r.try_get(10)?)?,
            lines: Vec::new(),
            tenders: Vec::new(),
        };
        loaded.sales.insert(sale.id, sale);
    }
    let sql = "SELECT sale_id, sku, qty, price, amount, cost FROM sale_lines
               WHERE sale_id IN (SELECT value FROM json_each(?)) ORDER BY sale_id, idx";
    for r in rows_in(conn, sql, ids.clone()).await? {
        if let Some(sale) = loaded.sales.get_mut(&r.try_get(0)?) {
            sale.lines.push(SaleLineRecord {
                sku: r.try_get(1)?,
                qty: r.try_get(2)?,
                price: amount(&r, 3)?,
                amount: amount(&r, 4)?,
                cost: amount(&r, 5)?,
            });
        }
    }
    let sql = "SELECT sale_id, type, household_id, voucher_id, amount, paid_part, bonus_part,
                      refunded, refunded_paid, refunded_bonus
               FROM sale_tenders WHERE sale_id IN (SELECT value FROM json_each(?))
               ORDER BY sale_id, idx";
    for r in rows_in(conn, sql, ids).await? {
        let kind: String = r.try_get(1)?;
        if let Some(sale) = loaded.sales.get_mut(&r.try_get(0)?) {
            sale.tenders.push(TenderRecord {
                kind: TenderType::parse(&kind)
                    .ok_or_else(|| StoreError(format!("bad tender {kind}")))?,
                household: r.try_get(2)?,
                voucher: r.try_get(3)?,
                amount: amount(&r, 4)?,
                paid_part: amount(&r, 5)?,
                bonus_part: amount(&r, 6)?,
                refunded: amount(&r, 7)?,
                refunded_paid: amount(&r, 8)?,
                refunded_bonus: amount(&r, 9)?,
            });
        }
    }
    Ok(())
}

/// Inserts `rows` with `head` (`INSERT INTO t (cols) `), `binds` values per row, in chunks of
/// power-of-two sizes: each table keeps a few prepared statement shapes whatever the batch.
async fn insert<'a, T>(
    conn: &mut SqliteConnection,
    head: &str,
    rows: &'a [T],
    binds: usize,
    tail: &str,
    mut push: impl FnMut(&mut Separated<'_, 'a, Sqlite, &'static str>, &'a T),
) -> Result<u64, StoreError> {
    let most = (MAX_BINDS / binds).min(MAX_ROWS);
    let mut done = 0;
    let mut affected = 0;
    while done < rows.len() {
        let left = (rows.len() - done).min(most);
        let size = 1usize << (usize::BITS - 1 - left.leading_zeros());
        let mut q = QueryBuilder::<Sqlite>::new(head);
        q.push_values(&rows[done..done + size], |mut b, row| push(&mut b, row));
        q.push(tail);
        affected += q.build().execute(&mut *conn).await?.rows_affected();
        done += size;
    }
    Ok(affected)
}

/// Writes a batch's effects, in one transaction with the reads before it.
pub(super) async fn persist(
    conn: &mut SqliteConnection,
    effects: &Effects,
    now: &str,
) -> Result<(), StoreError> {
    insert(
        conn,
        "INSERT INTO accounts (id, owner_kind, owner_id, name, type, bounded) ",
        &effects.accounts,
        6,
        "",
        |b, (id, spec)| {
            b.push_bind(id.0)
                .push_bind(spec.owner.kind())
                .push_bind(spec.owner.id())
                .push_bind(spec.name.as_str())
                .push_bind(spec.kind.as_str())
                .push_bind(i64::from(spec.bounded));
        },
    )
    .await?;
    let changes: Vec<(i64, i64)> = effects
        .balances
        .iter()
        .filter(|(_, d)| **d != 0)
        .map(|(id, d)| (*id, *d))
        .collect();
    let moved = insert(
        conn,
        "WITH change (id, delta) AS (",
        &changes,
        2,
        ") UPDATE accounts SET balance = balance + change.delta FROM change
           WHERE accounts.id = change.id",
        |b, (id, delta)| {
            b.push_bind(*id).push_bind(*delta);
        },
    )
    .await?;
    if moved != changes.len() as u64 {
        return Err(StoreError("a balance change missed its account".into()));
    }
    let hashes: Vec<(String, String)> = effects
        .entries
        .iter()
        .map(|e| (hex::encode(e.prev_hash), hex::encode(e.hash)))
        .collect();
    let rows: Vec<(&engine::NewEntry, &(String, String))> =
        effects.entries.iter().zip(&hashes).collect();
    insert(
        conn,
        "INSERT INTO entries (id, kind, business_date, created_at, actor_token_id, policy, policy_hash,
                              idempotency_key, memo, reverses, prev_hash, hash, hash_version, facts) ",
        &rows,
        14,
        "",
        |b, (e, (prev, hash))| {
            let h = &e.header;
            let (policy, policy_hash) = match &h.policy {
                Some((p, hash)) => (Some(p.as_str()), Some(hash.as_str())),
                None => (None, None),
            };
            b.push_bind(e.seq)
                .push_bind(h.kind.as_str())
                .push_bind(h.business_date.to_string())
                .push_bind(canonical_time(&h.created_at))
                .push_bind(h.actor)
                .push_bind(policy)
                .push_bind(policy_hash)
                .push_bind(h.idempotency_key.as_deref())
                .push_bind(h.memo.as_deref())
                .push_bind(h.reverses)
                .push_bind(prev.as_str())
                .push_bind(hash.as_str())
                .push_bind(HASH_VERSION)
                .push_bind(h.facts.as_deref());
        },
    )
    .await?;
    let postings: Vec<(i64, i64, i64, i64)> = effects
        .entries
        .iter()
        .flat_map(|e| {
            e.postings
                .iter()
                .enumerate()
                .map(move |(i, (account, fen))| (e.seq, i as i64, account.0, *fen))
        })
        .collect();
    insert(
        conn,
        "INSERT INTO postings (entry_id, idx, account_id, amount) ",
        &postings,
        4,
        "",
        |b, (entry, idx, account, fen)| {
            b.push_bind(*entry)
                .push_bind(*idx)
                .push_bind(*account)
                .push_bind(*fen);
        },
    )
    .await?;
    insert(
        conn,
        "INSERT INTO vouchers (id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status) ",
        &effects.vouchers,
        8,
        "",
        |b, (id, v)| {
            b.push_bind(*id)
                .push_bind(v.serial as i64)
                .push_bind(i64::from(v.key_id))
                .push_bind(v.coop)
                .push_bind(v.household)
                .push_bind(v.issued_on.to_string())
                .push_bind(v.expires_on.to_string())
                .push_bind("active");
        },
    )
    .await?;
    insert(
        conn,
        "INSERT INTO topups (entry_id, cooperative_id, shop_id, household_id, method, paid, bonus,
                             voucher_id, business_date, month) ",
        &effects.topups,
        10,
        "",
        |b, t| {
            b.push_bind(t.entry)
                .push_bind(t.coop)
                .push_bind(t.shop)
                .push_bind(t.household)
                .push_bind(t.method.as_str())
                .push_bind(t.paid.fen())
                .push_bind(t.bonus.fen())
                .push_bind(t.voucher)
                .push_bind(t.business_date.to_string())
                .push_bind(crate::domain::month_of(t.business_date));
        },
    )
    .await?;
    insert(
        conn,
        "INSERT INTO sales (id, entry_id, cooperative_id, shop_id, household_id, total, cost, business_date) ",
        &effects.sales,
        8,
        "",
        |b, s| {
            b.push_bind(s.id)
                .push_bind(s.entry)
                .push_bind(s.coop)
                .push_bind(s.shop)
                .push_bind(s.household)
                .push_bind(s.total.fen())
                .push_bind(s.cost.fen())
                .push_bind(s.business_date.to_string());
        },
    )
    .await?;
    let lines: Vec<(i64, i64, &SaleLineRecord)> = effects
        .sales
        .iter()
        .flat_map(|s| {
            s.lines
                .iter()
                .enumerate()
                .map(move |(i, l)| (s.id, i as i64, l))
        })
        .collect();
    insert(
        conn,
        "INSERT INTO sale_lines (sale_id, idx, sku, qty, price, amount, cost) ",
        &lines,
        7,
        "",
        |b, (sale, idx, l)| {
            b.push_bind(*sale)
                .push_bind(*idx)
                .push_bind(l.sku.as_str())
                .push_bind(l.qty.as_str())
                .push_bind(l.price.fen())
                .push_bind(l.amount.fen())
                .push_bind(l.cost.fen());
        },
    )
    .await?;
    let tenders: Vec<(i64, i64, &TenderRecord)> = effects
        .sales
        .iter()
        .flat_map(|s| {
            s.tenders
                .iter()
                .enumerate()
                .map(move |(i, t)| (s.id, i as i64, t))
        })
        .collect();
    insert(
        conn,
        "INSERT INTO sale_tenders (sale_id, idx, type, household_id, voucher_id, amount, paid_part, bonus_part) ",
        &tenders,
        8,
        "",
        |b, (sale, idx, t)| {
            b.push_bind(*sale)
                .push_bind(*idx)
                .push_bind(t.kind.as_str())
                .push_bind(t.household)
                .push_bind(t.voucher)
                .push_bind(t.amount.fen())
                .push_bind(t.paid_part.fen())
                .push_bind(t.bonus_part.fen());
        },
    )
    .await?;
    persist_refunds(conn, effects).await?;
    let policies: Vec<(&str, i64, &str)> = effects
        .policies
        .iter()
        .filter_map(|(name, hash)| {
            let (id, version) = name.rsplit_once('@')?;
            Some((id, version.parse().ok()?, hash.as_str()))
        })
        .collect();
    insert(
        conn,
        "INSERT INTO policy_applications (policy_id, version, hash, first_applied_at) ",
        &policies,
        4,
        " ON CONFLICT DO NOTHING",
        |b, (id, version, hash)| {
            b.push_bind(*id)
                .push_bind(*version)
                .push_bind(*hash)
                .push_bind(now);
        },
    )
    .await?;
    insert(
        conn,
        "INSERT INTO idempotency (scope, key, fingerprint, outcome, created_at) ",
        &effects.idempotency,
        5,
        "",
        |b, (scope, key, fingerprint, outcome)| {
            b.push_bind(scope.as_str())
                .push_bind(key.as_str())
                .push_bind(fingerprint.as_str())
                .push_bind(outcome.as_str())
                .push_bind(now);
        },
    )
    .await?;
    Ok(())
}

async fn persist_refunds(conn: &mut SqliteConnection, effects: &Effects) -> Result<(), StoreError> {
    if effects.refunds.is_empty() {
        return Ok(());
    }
    let sales: Vec<(i64, (i64, i64))> = engine::sale_refunds(effects).into_iter().collect();
    let updated = insert(
        conn,
        "WITH r (id, amount, cost) AS (",
        &sales,
        3,
        ") UPDATE sales SET refunded = refunded + r.amount, refunded_cost = refunded_cost + r.cost
           FROM r WHERE sales.id = r.id",
        |b, (id, (amount, cost))| {
            b.push_bind(*id).push_bind(*amount).push_bind(*cost);
        },
    )
    .await?;
    if updated != sales.len() as u64 {
        return Err(StoreError("a refund missed its sale".into()));
    }
    let tenders: Vec<((i64, i64), (i64, i64, i64))> =
        engine::tender_refunds(effects).into_iter().collect();
    let updated = insert(
        conn,
        "WITH r (sale_id, idx, amount, paid, bonus) AS (",
        &tenders,
        5,
        ") UPDATE sale_tenders SET refunded = refunded + r.amount,
                  refunded_paid = refunded_paid + r.paid, refunded_bonus = refunded_bonus + r.bonus
           FROM r WHERE sale_tenders.sale_id = r.sale_id AND sale_tenders.idx = r.idx",
        |b, ((sale, idx), (amount, paid, bonus))| {
            b.push_bind(*sale)
                .push_bind(*idx)
                .push_bind(*amount)
                .push_bind(*paid)
                .push_bind(*bonus);
        },
    )
    .await?;
    if updated != tenders.len() as u64 {
        return Err(StoreError("a refund missed its tender".into()));
    }
    let parts: Vec<(i64, i64, i64, i64)> = effects
        .refunds
        .iter()
        .flat_map(|(sale, r)| {
            r.tenders
                .iter()
                .enumerate()
                .filter(|(_, (total, _, _))| !total.is_zero())
                .map(move |(i, (total, _, _))| (r.entry, *sale, i as i64, total.fen()))
        })
        .collect();
    insert(
        conn,
        "INSERT INTO sale_refund_tenders (entry_id, sale_id, idx, amount) ",
        &parts,
        4,
        "",
        |b, (entry, sale, idx, total)| {
            b.push_bind(*entry)
                .push_bind(*sale)
                .push_bind(*idx)
                .push_bind(*total);
        },
    )
    .await?;
    insert(
        conn,
        "INSERT INTO sale_refunds (entry_id, sale_id, amount, cost) ",
        &effects.refunds,
        4,
        "",
        |b, (sale, r)| {
            b.push_bind(r.entry)
                .push_bind(*sale)
                .push_bind(r.amount.fen())
                .push_bind(r.cost.fen());
        },
    )
    .await?;
    Ok(())
}
