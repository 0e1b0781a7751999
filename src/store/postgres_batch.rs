//! The PostgreSQL side of the write engine ([`crate::engine`]): `load` reads and locks what a
//! run of till commands names with one query per table, `reserve` draws the ids its rows may
//! take, and `persist` writes its effects with one statement per table (`UNNEST` of arrays, so
//! a statement's text and plan do not depend on the batch's size).
//!
//! What the engine decides on is locked while it is read, in one statement per table and in
//! ascending id order within it, always in the same order of tables: households (the monthly
//! bonus cap), vouchers, sales being refunded, then the bounded accounts (wallets and vouchers).
//! Two runs that wait for each other's locks therefore take them in the same order; a run that
//! is not the first thing its batch does asks with `NOWAIT` (see the module doc of `postgres`).
//! Unbounded (hot) accounts are read without a lock: the engine only checks them for overflow,
//! and their changes are applied at the end of the batch under the chain lock.

use std::collections::{BTreeSet, HashMap};

use sqlx::postgres::{PgArguments, PgConnection, PgRow, Postgres};
use sqlx::Row;

use crate::domain::{
    CatalogItem, CoopRef, SaleLineRecord, SaleRecord, ShopRef, StoreError, TenderRecord,
    TenderType, VoucherRecord,
};
use crate::engine::{self, Account, Effects, Keys, Loaded, Remembered, Reserved};
use crate::ledger::{canonical_time, AccountId, AccountSpec, AccountType, Owner, HASH_VERSION};
use crate::money::Amount;
use crate::store::rows::{self, date, VOUCHER_COLUMNS};

use super::storable;

/// A failure of a run: a statement PostgreSQL refused (contention among them), or a store
/// error of hongxin's own.
pub(super) enum RunError {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        RunError::Db(e)
    }
}

impl From<StoreError> for RunError {
    fn from(e: StoreError) -> Self {
        RunError::Store(e)
    }
}

type RunResult<T> = Result<T, RunError>;

/// A statement that finds rows by keys, planned with its values each time it runs (an unnamed
/// statement): a plan cached while the tables were nearly empty, on a fresh database, would
/// scan them whole once they are not. Plain inserts keep their prepared statements.
fn keyed(sql: &str) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(false)
}

fn amount(r: &PgRow, i: usize) -> RunResult<Amount> {
    Ok(Amount::from_fen(r.try_get(i)?))
}

fn voucher(r: &PgRow) -> RunResult<VoucherRecord> {
    use sqlx::FromRow;
    Ok(rows::voucher_record(rows::VoucherTableRow::from_row(r)?)?)
}

/// The codes PostgreSQL can hold (no NUL): any other names no row.
fn storable_only(codes: &BTreeSet<String>) -> Vec<&str> {
    codes
        .iter()
        .filter(|c| storable(c))
        .map(String::as_str)
        .collect()
}

/// The row-lock clause for the rows of `table` (its name or alias in the query): waiting for
/// another writer's lock, or failing at once (`NOWAIT`).
fn lock_clause(table: &str, wait: bool) -> String {
    let nowait = if wait { "" } else { " NOWAIT" };
    format!("FOR NO KEY UPDATE OF {table}{nowait}")
}

/// Reads what the keys name, locking what the engine decides on (waiting for other writers'
/// locks when `wait`, else failing at once with a lock-not-available error). `pending` holds the batch's unapplied changes to hot
/// balances, added to what is committed.
pub(super) async fn load(
    conn: &mut PgConnection,
    keys: &Keys,
    wait: bool,
    pending: &HashMap<i64, i64>,
) -> RunResult<Loaded> {
    let mut loaded = Loaded::default();
    if !keys.idempotency.is_empty() {
        let (scopes, names): (Vec<&str>, Vec<&str>) = keys
            .idempotency
            .iter()
            .filter(|(s, k)| storable(s) && storable(k))
            .map(|(s, k)| (s.as_str(), k.as_str()))
            .unzip();
        let rows = keyed(
            "SELECT i.scope, i.key, i.fingerprint, i.outcome
             FROM UNNEST($1::TEXT[], $2::TEXT[]) AS k(scope, key)
             JOIN idempotency i ON i.scope = k.scope AND i.key = k.key",
        )
        .bind(scopes)
        .bind(names)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
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
        let codes = storable_only(&keys.shops);
        let rows = keyed(
            "SELECT s.id, s.code, c.id, c.code FROM shops s
             JOIN cooperatives c ON c.id = s.cooperative_id WHERE s.code = ANY($1)",
        )
        .bind(codes)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
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
        // Locked: a household's top-ups this month (the bonus cap) are decided one at a time.
        let codes = storable_only(&keys.households);
        let sql = format!(
            "SELECT {} WHERE h.code = ANY($1) ORDER BY h.id {}",
            rows::household_ref_columns(Some("$2")),
            lock_clause("h", wait)
        );
        // Eligibility as in force on the batch's business date (a change may switch it).
        let found: Vec<rows::HouseholdRefRow> = sqlx::query_as(&sql)
            .persistent(false)
            .bind(codes)
            .bind(&keys.day)
            .fetch_all(&mut *conn)
            .await?;
        for h in found.into_iter().map(rows::household_ref) {
            loaded.households.insert(h.code.clone(), h);
        }
    }
    let serials: Vec<i64> = keys
        .serials
        .iter()
        .chain(&keys.drawn)
        .map(|s| *s as i64)
        .collect::<BTreeSet<i64>>()
        .into_iter()
        .collect();
    if !serials.is_empty() {
        let sql = format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE serial = ANY($1) ORDER BY id {}",
            lock_clause("vouchers", wait)
        );
        for r in keyed(&sql).bind(serials).fetch_all(&mut *conn).await? {
            let v = voucher(&r)?;
            if keys.drawn.contains(&v.serial) {
                loaded.taken_serials.push(v.serial);
            }
            if keys.serials.contains(&v.serial) {
                loaded.vouchers.insert(v.id, v);
            }
        }
    }
    if !keys.sales.is_empty() {
        load_sales(conn, keys, wait, &mut loaded).await?;
    }

    let tender_vouchers = loaded.tendered_vouchers();
    if !tender_vouchers.is_empty() {
        let ids: Vec<i64> = tender_vouchers.into_iter().collect();
        let sql = format!(
            "SELECT {VOUCHER_COLUMNS} FROM vouchers WHERE id = ANY($1) ORDER BY id {}",
            lock_clause("vouchers", wait)
        );
        for r in keyed(&sql).bind(ids).fetch_all(&mut *conn).await? {
            let v = voucher(&r)?;
            loaded.vouchers.insert(v.id, v);
        }
    }
    let (item_coops, skus): (Vec<i64>, Vec<&str>) = loaded
        .catalog_keys(keys)
        .into_iter()
        .filter(|(_, sku)| storable(sku))
        .unzip();
    if !skus.is_empty() {
        let rows = keyed(
            "SELECT c.cooperative_id, c.id, c.sku, c.name, c.unit, c.price, c.cost, c.barcode
             FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS k(coop, sku)
             JOIN catalog_items c ON c.cooperative_id = k.coop AND c.sku = k.sku",
        )
        .bind(item_coops)
        .bind(skus)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            let item = CatalogItem {
                id: r.try_get(1)?,
                sku: r.try_get(2)?,
                name: r.try_get(3)?,
                unit: r.try_get(4)?,
                price: amount(&r, 5)?,
                cost: amount(&r, 6)?,
                barcode: r.try_get(7)?,
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
        let rows = keyed(
            "SELECT household_id, SUM(bonus)::BIGINT FROM topups
             WHERE month = $1 AND household_id = ANY($2) AND void_entry_id IS NULL
             GROUP BY household_id",
        )
        .bind(&keys.month)
        .bind(topped)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            loaded
                .bonus
                .insert((r.try_get(0)?, keys.month.clone()), amount(&r, 1)?);
        }
    }
    let mut kinds = Vec::new();
    let mut owners = Vec::new();
    for (kind, ids) in loaded.account_owners() {
        for id in ids {
            kinds.push(kind);
            owners.push(id);
        }
    }
    if !owners.is_empty() {
        // Bounded balances under their row locks; hot ones as committed plus this batch's
        // changes, only to refuse an overflow.
        let select = "SELECT a.id, a.owner_kind, a.owner_id, a.name, a.type, a.bounded, a.balance
                      FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS o(kind, id)
                      JOIN accounts a ON a.owner_kind = o.kind AND a.owner_id = o.id";
        let bounded = format!(
            "{select} WHERE a.bounded ORDER BY a.id {}",
            lock_clause("a", wait)
        );
        let hot = format!("{select} WHERE NOT a.bounded");
        for sql in [bounded, hot] {
            let rows = keyed(&sql)
                .bind(&kinds)
                .bind(&owners)
                .fetch_all(&mut *conn)
                .await?;
            for r in rows {
                let kind: String = r.try_get(1)?;
                let type_text: String = r.try_get(4)?;
                let id: i64 = r.try_get(0)?;
                let balance: i64 = r.try_get(6)?;
                loaded.accounts.push(Account {
                    id: AccountId(id),
                    spec: AccountSpec {
                        owner: Owner::from_parts(&kind, r.try_get(2)?)
                            .ok_or_else(|| StoreError(format!("bad owner {kind}")))?,
                        name: r.try_get(3)?,
                        kind: AccountType::parse(&type_text)
                            .ok_or_else(|| StoreError(format!("bad type {type_text}")))?,
                        bounded: r.try_get(5)?,
                    },
                    balance: balance.saturating_add(pending.get(&id).copied().unwrap_or(0)),
                });
            }
        }
    }
    Ok(loaded)
}

async fn load_sales(
    conn: &mut PgConnection,
    keys: &Keys,
    wait: bool,
    loaded: &mut Loaded,
) -> RunResult<()> {
    // Locked: refunds of one sale are decided one at a time.
    let ids: Vec<i64> = keys.sales.iter().copied().collect();
    let sql = format!(
        "SELECT s.id, s.entry_id, s.cooperative_id, c.code, s.shop_id, s.household_id, s.total,
                s.cost, s.refunded, s.refunded_cost, s.business_date
         FROM sales s JOIN cooperatives c ON c.id = s.cooperative_id
         WHERE s.id = ANY($1) ORDER BY s.id {}",
        lock_clause("s", wait)
    );
    for r in keyed(&sql).bind(&ids).fetch_all(&mut *conn).await? {
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
    let rows = keyed(
        "SELECT sale_id, sku, qty, price, amount, cost FROM sale_lines
         WHERE sale_id = ANY($1) ORDER BY sale_id, idx",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
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
    let rows = keyed(
        "SELECT sale_id, type, household_id, voucher_id, amount, paid_part, bonus_part,
                refunded, refunded_paid, refunded_bonus
         FROM sale_tenders WHERE sale_id = ANY($1) ORDER BY sale_id, idx",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
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

/// Draws ids for up to `entries` entries, `sales` sales and `vouchers` vouchers from the
/// tables' sequences, in one round trip. Ids a refused command does not use are gaps, as any
/// rolled-back insert leaves.
pub(super) async fn reserve(
    conn: &mut PgConnection,
    entries: usize,
    sales: usize,
    vouchers: usize,
) -> RunResult<Reserved> {
    let r = sqlx::query(
        "SELECT ARRAY(SELECT nextval(pg_get_serial_sequence('entries', 'id')) FROM generate_series(1, $1)),
                ARRAY(SELECT nextval(pg_get_serial_sequence('sales', 'id')) FROM generate_series(1, $2)),
                ARRAY(SELECT nextval(pg_get_serial_sequence('vouchers', 'id')) FROM generate_series(1, $3))",
    )
    .bind(entries as i64)
    .bind(sales as i64)
    .bind(vouchers as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Reserved {
        entries: r.try_get(0)?,
        sales: r.try_get(1)?,
        vouchers: r.try_get(2)?,
    })
}

/// Creates the accounts the run opened (or finds them, when another writer created one since
/// the load) and returns their ids by the provisional ids the engine gave them.
pub(super) async fn open_accounts(
    conn: &mut PgConnection,
    opened: &[(AccountId, AccountSpec)],
) -> RunResult<HashMap<AccountId, AccountId>> {
    if opened.is_empty() {
        return Ok(HashMap::new());
    }
    let kinds: Vec<&str> = opened.iter().map(|(_, s)| s.owner.kind()).collect();
    let owners: Vec<i64> = opened.iter().map(|(_, s)| s.owner.id()).collect();
    let names: Vec<&str> = opened.iter().map(|(_, s)| s.name.as_str()).collect();
    let types: Vec<&str> = opened.iter().map(|(_, s)| s.kind.as_str()).collect();
    let bounded: Vec<bool> = opened.iter().map(|(_, s)| s.bounded).collect();
    sqlx::query(
        "INSERT INTO accounts (owner_kind, owner_id, name, type, bounded)
         SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BOOLEAN[])
         ON CONFLICT (owner_kind, owner_id, name) DO NOTHING",
    )
    .bind(&kinds)
    .bind(&owners)
    .bind(&names)
    .bind(&types)
    .bind(&bounded)
    .execute(&mut *conn)
    .await?;
    let rows = keyed(
        "SELECT k.i, a.id, a.type, a.bounded
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[]) WITH ORDINALITY AS k(kind, owner, name, i)
         JOIN accounts a ON a.owner_kind = k.kind AND a.owner_id = k.owner AND a.name = k.name",
    )
    .bind(&kinds)
    .bind(&owners)
    .bind(&names)
    .fetch_all(&mut *conn)
    .await?;
    let mut ids = HashMap::with_capacity(opened.len());
    for r in rows {
        let i: i64 = r.try_get(0)?;
        let (provisional, spec) = usize::try_from(i - 1)
            .ok()
            .and_then(|i| opened.get(i))
            .ok_or_else(|| StoreError(format!("no opened account {i}")))?;
        let kind: String = r.try_get(2)?;
        let bounded: bool = r.try_get(3)?;
        if kind != spec.kind.as_str() || bounded != spec.bounded {
            return Err(engine::another_type(spec).into());
        }
        ids.insert(*provisional, AccountId(r.try_get(1)?));
    }
    if ids.len() != opened.len() {
        return Err(StoreError("an opened account was not found".into()).into());
    }
    Ok(ids)
}

/// Applies a run's changes to bounded balances (rows the run holds locked).
pub(super) async fn apply_bounded(
    conn: &mut PgConnection,
    changes: &[(i64, i64)],
) -> RunResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let (ids, deltas): (Vec<i64>, Vec<i64>) = changes.iter().copied().unzip();
    let updated = keyed(
        "UPDATE accounts AS a SET balance = a.balance + d.delta
         FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS d(id, delta) WHERE a.id = d.id",
    )
    .bind(ids)
    .bind(deltas)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != changes.len() as u64 {
        return Err(StoreError("a balance change missed its account".into()).into());
    }
    Ok(())
}

/// Writes a run's rows: vouchers, entries and their postings, top-ups, sales, refunds and
/// idempotency keys, one statement per table. Entries are written without their place in the
/// chain and balances are not touched here: the batch does both at its end.
pub(super) async fn persist(
    conn: &mut PgConnection,
    effects: &Effects,
    now: &str,
) -> RunResult<()> {
    if !effects.vouchers.is_empty() {
        let vs = &effects.vouchers;
        sqlx::query(
            "INSERT INTO vouchers (id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status)
             SELECT *, 'active' FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[],
                                            $5::BIGINT[], $6::TEXT[], $7::TEXT[])",
        )
        .bind(vs.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| v.serial as i64).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| i64::from(v.key_id)).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| v.coop).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| v.household).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| v.issued_on.to_string()).collect::<Vec<_>>())
        .bind(vs.iter().map(|(_, v)| v.expires_on.to_string()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !effects.entries.is_empty() {
        let es = &effects.entries;
        let headers = es.iter().map(|e| &e.header);
        sqlx::query(
            "INSERT INTO entries (id, kind, business_date, created_at, actor_token_id, policy, policy_hash,
                                  idempotency_key, memo, reverses, facts, hash_version)
             SELECT *, $12::BIGINT FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                       $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[],
                                       $11::TEXT[])",
        )
        .bind(es.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.kind.as_str()).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.business_date.to_string()).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| canonical_time(&h.created_at)).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.actor).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.policy.as_ref().map(|p| p.0.as_str())).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.policy.as_ref().map(|p| p.1.as_str())).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.idempotency_key.as_deref()).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.memo.as_deref()).collect::<Vec<_>>())
        .bind(headers.clone().map(|h| h.reverses).collect::<Vec<_>>())
        .bind(headers.map(|h| h.facts.as_deref()).collect::<Vec<_>>())
        .bind(HASH_VERSION)
        .execute(&mut *conn)
        .await?;
        let mut entry_ids = Vec::new();
        let mut idxs = Vec::new();
        let mut accounts = Vec::new();
        let mut amounts = Vec::new();
        for e in es {
            for (i, (account, fen)) in e.postings.iter().enumerate() {
                entry_ids.push(e.id);
                idxs.push(i as i64);
                accounts.push(account.0);
                amounts.push(*fen);
            }
        }
        sqlx::query(
            "INSERT INTO postings (entry_id, idx, account_id, amount)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])",
        )
        .bind(entry_ids)
        .bind(idxs)
        .bind(accounts)
        .bind(amounts)
        .execute(&mut *conn)
        .await?;
    }
    super::crash_point("persist_entries");
    if !effects.topups.is_empty() {
        let ts = &effects.topups;
        sqlx::query(
            "INSERT INTO topups (entry_id, cooperative_id, shop_id, household_id, method, paid, bonus,
                                 voucher_id, business_date, month)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[],
                                  $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[])",
        )
        .bind(ts.iter().map(|t| t.entry).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.coop).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.shop).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.household).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.method.as_str()).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.paid.fen()).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.bonus.fen()).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.voucher).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| t.business_date.to_string()).collect::<Vec<_>>())
        .bind(ts.iter().map(|t| crate::domain::month_of(t.business_date)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    persist_sales(conn, effects).await?;
    persist_refunds(conn, effects).await?;
    if !effects.idempotency.is_empty() {
        let ks = &effects.idempotency;
        sqlx::query(
            "INSERT INTO idempotency (scope, key, fingerprint, outcome, created_at)
             SELECT *, $5::TEXT FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[])",
        )
        .bind(ks.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
        .bind(ks.iter().map(|k| k.1.as_str()).collect::<Vec<_>>())
        .bind(ks.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
        .bind(ks.iter().map(|k| k.3.as_str()).collect::<Vec<_>>())
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn persist_sales(conn: &mut PgConnection, effects: &Effects) -> RunResult<()> {
    let ss = &effects.sales;
    if ss.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sales (id, entry_id, cooperative_id, shop_id, household_id, total, cost, business_date)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[],
                              $6::BIGINT[], $7::BIGINT[], $8::TEXT[])",
    )
    .bind(ss.iter().map(|s| s.id).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.entry).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.coop).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.shop).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.household).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.total.fen()).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.cost.fen()).collect::<Vec<_>>())
    .bind(ss.iter().map(|s| s.business_date.to_string()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    let lines: Vec<(i64, i64, &SaleLineRecord)> = ss
        .iter()
        .flat_map(|s| s.lines.iter().enumerate().map(|(i, l)| (s.id, i as i64, l)))
        .collect();
    if !lines.is_empty() {
        sqlx::query(
            "INSERT INTO sale_lines (sale_id, idx, sku, qty, price, amount, cost)
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[],
                                  $6::BIGINT[], $7::BIGINT[])",
        )
        .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2.sku.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2.qty.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2.price.fen()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2.amount.fen()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.2.cost.fen()).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    let tenders: Vec<(i64, i64, &TenderRecord)> = ss
        .iter()
        .flat_map(|s| {
            s.tenders
                .iter()
                .enumerate()
                .map(|(i, t)| (s.id, i as i64, t))
        })
        .collect();
    sqlx::query(
        "INSERT INTO sale_tenders (sale_id, idx, type, household_id, voucher_id, amount, paid_part, bonus_part)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[],
                              $6::BIGINT[], $7::BIGINT[], $8::BIGINT[])",
    )
    .bind(tenders.iter().map(|t| t.0).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.1).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.kind.as_str()).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.household).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.voucher).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.amount.fen()).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.paid_part.fen()).collect::<Vec<_>>())
    .bind(tenders.iter().map(|t| t.2.bonus_part.fen()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn persist_refunds(conn: &mut PgConnection, effects: &Effects) -> RunResult<()> {
    if effects.refunds.is_empty() {
        return Ok(());
    }
    let sums = engine::sale_refunds(effects);
    let updated = keyed(
        "UPDATE sales AS s SET refunded = s.refunded + u.amount, refunded_cost = s.refunded_cost + u.cost
         FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS u(id, amount, cost)
         WHERE s.id = u.id",
    )
    .bind(sums.keys().copied().collect::<Vec<_>>())
    .bind(sums.values().map(|s| s.0).collect::<Vec<_>>())
    .bind(sums.values().map(|s| s.1).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != sums.len() as u64 {
        return Err(StoreError("a refund missed its sale".into()).into());
    }
    let tenders = engine::tender_refunds(effects);
    if !tenders.is_empty() {
        let updated = keyed(
            "UPDATE sale_tenders AS t SET refunded = t.refunded + u.amount,
                    refunded_paid = t.refunded_paid + u.paid, refunded_bonus = t.refunded_bonus + u.bonus
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[])
                  AS u(sale, idx, amount, paid, bonus)
             WHERE t.sale_id = u.sale AND t.idx = u.idx",
        )
        .bind(tenders.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(tenders.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(tenders.values().map(|s| s.0).collect::<Vec<_>>())
        .bind(tenders.values().map(|s| s.1).collect::<Vec<_>>())
        .bind(tenders.values().map(|s| s.2).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() != tenders.len() as u64 {
            return Err(StoreError("a refund missed a tender of its sale".into()).into());
        }
    }
    let mut parts = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (sale, r) in &effects.refunds {
        for (i, (total, _, _)) in r.tenders.iter().enumerate() {
            if !total.is_zero() {
                parts.0.push(r.entry);
                parts.1.push(*sale);
                parts.2.push(i as i64);
                parts.3.push(total.fen());
            }
        }
    }
    sqlx::query(
        "INSERT INTO sale_refund_tenders (entry_id, sale_id, idx, amount)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])",
    )
    .bind(parts.0)
    .bind(parts.1)
    .bind(parts.2)
    .bind(parts.3)
    .execute(&mut *conn)
    .await?;
    let rs = &effects.refunds;
    sqlx::query(
        "INSERT INTO sale_refunds (entry_id, sale_id, amount, cost)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])",
    )
    .bind(rs.iter().map(|(_, r)| r.entry).collect::<Vec<_>>())
    .bind(rs.iter().map(|(s, _)| *s).collect::<Vec<_>>())
    .bind(rs.iter().map(|(_, r)| r.amount.fen()).collect::<Vec<_>>())
    .bind(rs.iter().map(|(_, r)| r.cost.fen()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
