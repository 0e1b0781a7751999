//! The PostgreSQL store: the production backend, where several stateless hongxin processes
//! share one database. Integer fen in BIGINT; dates and timestamps are the same canonical text
//! as on SQLite (the entry hash covers that text).
//!
//! # The write path
//!
//! Each process runs [`WRITERS`] writer tasks, each with its own connection, taking commands
//! from one bounded queue. A writer drains what is waiting into a batch and runs it in one
//! transaction (READ COMMITTED) with a savepoint per command, then answers every caller once
//! the batch is committed: group commit, as on SQLite. What differs is that other writers, in
//! this process and in others, commit at the same time, so each invariant that SQLite gets from
//! its single writer is held here by a lock:
//!
//! - **The till's commands** (top-ups, sales, sale refunds) that follow each other in a batch
//!   run together through the write engine ([`crate::engine`], `postgres_batch.rs`), in one
//!   savepoint: their rows are read and locked with one query per table, their ids drawn from
//!   the sequences in one query, they execute in memory under the same rules as on SQLite,
//!   and their rows are written with one `UNNEST` statement per table. Their entries and
//!   balance changes then join the batch's, below. Other commands run one by one, each in its
//!   savepoint, through the `Tx` port.
//!
//! - **Bounded accounts** (wallets, vouchers) are read and changed only under their row lock
//!   (`SELECT … FOR NO KEY UPDATE`, in ascending id order within a posting), held to the end of
//!   the batch. A balance the domain reads to decide (a pro-rata split, a refund) is therefore
//!   the balance it changes; the `CHECK (balance >= 0)` is the backstop.
//! - **Hot accounts** (every unbounded account: the cooperative's cash, sales, cogs…, companies,
//!   household fees) take no lock while a batch runs. Their changes are added up in memory per
//!   batch and applied once, at the end, by one `UPDATE … SET balance = balance + delta`, while
//!   the batch holds the chain lock (below), so the row locks those updates take are never
//!   waited for by anyone but the next batch's end. A domain decision that reads an unbounded
//!   balance (a settlement against `due_to`, a close's reserve) takes a transaction-level
//!   advisory lock on that account, so two such decisions serialize without slowing sales.
//! - **The hash chain**: an entry is inserted when it is posted, with its identity `id` (what
//!   receipts and references name), but it gets its place in the chain (`seq`, `prev_hash`,
//!   `hash`) only at the end of the batch, under `SELECT … FROM chain_head FOR UPDATE`. The
//!   head is read from that row every time, never cached: another process may have moved it.
//!   The chain lock is held only for the batch's last few statements and its commit. Business
//!   dates are clamped to the head's date when the batch starts; if another process has since
//!   posted a later date (midnight, or a skewed clock), the batch is rolled back and rerun.
//! - **Deadlocks are avoided, not just detected.** Only the first command of a batch waits for
//!   a row lock; every later command asks with `NOWAIT` (advisory locks: `pg_try_…`), because it
//!   already holds the locks of the commands before it. A command that finds a lock taken is
//!   rolled back to its savepoint, which releases its own locks, and runs again first in the
//!   writer's next batch. The chain lock is taken last and its holder waits for nothing else,
//!   so it closes no cycle. What remains (two first commands locking the same wallet and
//!   voucher in opposite orders, unique-index waits) PostgreSQL detects; a deadlock, a
//!   serialization failure or a unique violation from a concurrent duplicate reruns the
//!   command the same way, a bounded number of times ([`MAX_DEFERRALS`]).
//! - **Idempotency**: the key's row is inserted inside the command's savepoint. A concurrent
//!   duplicate in another writer makes that insert wait for the other batch and then fail with a
//!   unique violation; the command is rolled back and rerun, and the rerun replays the stored
//!   outcome.
//! - **Other decisions** that read rows others change lock them the same way: a sale being
//!   refunded, a voucher's status, a household's top-ups this month (the cap), an entry being
//!   reversed, open fee bills. A month close takes an exclusive advisory lock on its
//!   cooperative and checking a month for being closed takes a shared one, so no expense lands
//!   in a month another process is closing.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row};
use tokio::sync::{mpsc, oneshot, Mutex};

use super::rows::{self, date, hash32};
use super::sqlite::Services;
use super::*;
use crate::domain::{
    self, BillingRow, Candidate, CatalogItem, CatalogItemInput, ChangeBounds, CoopRef, Ctx,
    EligibleHousehold, FeeReceiptRow, HouseholdRef, MonthTotals, NewCompany, NewCompound,
    NewCooperative, NewHousehold, NewShop, NewToken, OpError, OpResult, OpenBill, Posted, ShopRef,
    StoredChange, Subject, SubjectRow, TokenScopeIds, Tx, VoucherRecord,
};
use crate::engine;
use crate::fees::statement::{CooperativePosition, HouseholdLine, Statement};
use crate::ledger::{
    audit, canonical_time, entry_hash_v2, AccountId, AccountSpec, AccountType, EntryDraft,
    EntryHeader, EntryKind, Owner, Verifier, HASH_VERSION,
};

#[path = "postgres_batch.rs"]
mod batch;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Writer tasks (and so write connections) per process.
pub const WRITERS: usize = 4;
/// Read connections per process.
const READERS: u32 = 8;
/// How often one command may be put back because of another writer's lock before its caller
/// gets a store error (and may retry with the same idempotency key).
pub const MAX_DEFERRALS: u32 = 100;
/// How often a whole batch is run again after a failure that certainly left nothing behind.
const MAX_BATCH_ATTEMPTS: u32 = 4;
/// Entries read per query while verifying, so memory stays bounded on a large journal.
const VERIFY_CHUNK: i64 = 5_000;
/// Rows per multi-row INSERT (PostgreSQL allows 65,535 bound values per statement).
const INSERT_CHUNK: usize = 5_000;
/// The first provisional id the write engine gives an account it opens; `batch::open_accounts`
/// replaces it with the account's id once created. Real ids are positive.
const PROVISIONAL_ACCOUNT: i64 = -(1 << 40);
/// Advisory lock classes (the first key of `pg_advisory_xact_lock(int, int)`).
const LOCK_ACCOUNT: i32 = 0x6878_0001;
const LOCK_CLOSE: i32 = 0x6878_0002;
/// A company's fee receipt sequence (`fee_receipts`).
const LOCK_RECEIPT: i32 = 0x6878_0003;

/// SQLSTATEs after which a command (rolled back to its savepoint) or a batch (rolled back
/// before its commit) can simply run again: serialization failure, deadlock, lock not
/// available (NOWAIT), and a unique violation from a concurrent duplicate.
fn is_contention(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("40001" | "40P01" | "55P03" | "23505")
        ),
        _ => false,
    }
}

/// True when the transaction certainly did not commit: the server reported it rolled back.
fn certainly_aborted(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("40001" | "40P01")),
        _ => false,
    }
}

/// PostgreSQL text cannot hold NUL, and no stored code contains one (the domain refuses control
/// characters), so a key with NUL is simply not found, as it is on SQLite.
fn storable(key: &str) -> bool {
    !key.contains('\0')
}

fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("hongxin")
        .disable_statement_logging())
}

/// A token by the hash of its secret, from the database.
async fn token_by_hash(read: &PgPool, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    if !storable(hash) {
        return Ok(None);
    }
    let row: Option<rows::TokenTableRow> =
        sqlx::query_as(&format!("SELECT {} WHERE t.hash = $1", rows::TOKEN_COLUMNS))
            .bind(hash)
            .fetch_optional(read)
            .await?;
    row.map(rows::token).transpose()
}

/// The channel a committed revocation is announced on, to every process's token cache.
const TOKENS_CHANNEL: &str = "hongxin_tokens";

/// Empties `tokens` whenever any process announces a revocation. While the connection is
/// down nothing can be heard: the cache is emptied when listening starts again, and its
/// entries never outlive [`TOKEN_CACHE_TTL`] in any case.
async fn listen_for_revocations(read: PgPool, tokens: Arc<TokenCache>) {
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&read).await?;
            listener.listen(TOKENS_CHANNEL).await?;
            tokens.invalidate();
            loop {
                // `None`: the connection was lost (and is made again on the next call), so
                // an announcement may have been missed.
                let _announced = listener.try_recv().await?;
                tokens.invalidate();
            }
        };
        let result: Result<(), sqlx::Error> = listening.await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "listening for token revocations failed; listening again");
        }
        tokens.invalidate();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

struct Job {
    envelope: Envelope,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

pub struct PostgresStore {
    queue: mpsc::Sender<Job>,
    read: PgPool,
    stats: Arc<WriteStats>,
    tokens: Arc<TokenCache>,
}

impl PostgresStore {
    /// Connects to `url`, applies the migrations (under sqlx's advisory lock, so processes
    /// starting together are safe), checks that no applied policy was edited, and starts the
    /// writers.
    pub async fn open(url: &str, services: Services) -> Result<PostgresStore, StoreError> {
        // A multi-host URL goes through a forwarder to the host that suits it (pg_hosts).
        let forwarded = super::pg_hosts::resolve(url).await?;
        let options = connect_options(&forwarded)?;
        let read = PgPoolOptions::new()
            .max_connections(READERS)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        MIGRATOR
            .run(&read)
            .await
            .map_err(|e| StoreError(format!("migrating {}: {e}", crate::app::redact_url(url))))?;
        let store = PostgresStore {
            queue: mpsc::channel(1).0,
            read,
            stats: Arc::new(WriteStats::default()),
            tokens: Arc::new(TokenCache::default()),
        };
        let applied = store.applied_policies().await?;
        services
            .policies
            .check_applied(&applied)
            .map_err(|e| StoreError(e.to_string()))?;
        // Outcomes stored with a voucher code in clear (before codes were taken out of them)
        // are rewritten without it. Processes starting together write the same text.
        let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
            "SELECT scope, key, outcome FROM idempotency WHERE {}",
            super::OUTCOMES_WITH_CODES
        ))
        .fetch_all(&store.read)
        .await?;
        for (scope, key, text) in rows {
            if let Some(sealed) = super::outcome_without_code(&text, &services.keys) {
                sqlx::query("UPDATE idempotency SET outcome = $1 WHERE scope = $2 AND key = $3")
                    .bind(sealed)
                    .bind(scope)
                    .bind(key)
                    .execute(&store.read)
                    .await?;
            }
        }
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let shared = Arc::new(Shared {
            rx: Mutex::new(rx),
            services,
            stats: store.stats.clone(),
            tokens: store.tokens.clone(),
            accounts: RwLock::new(HashMap::new()),
            options,
        });
        for _ in 0..WRITERS {
            let conn = shared.options.connect().await?;
            let writer = Writer {
                shared: shared.clone(),
                conn: Some(conn),
            };
            tokio::spawn(writer.run());
        }
        tokio::spawn(listen_for_revocations(
            store.read.clone(),
            store.tokens.clone(),
        ));
        Ok(PostgresStore { queue, ..store })
    }

    /// Whether the database at `url` has no journal entries (or no schema yet). Used before
    /// generating a new key file: keys are never generated for a database that has data.
    pub async fn journal_is_empty(url: &str) -> Result<bool, StoreError> {
        let url = super::pg_hosts::first_suitable(url).await?;
        let mut conn = connect_options(&url)?.connect().await?;
        let found: Result<bool, sqlx::Error> =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM entries)")
                .fetch_one(&mut conn)
                .await;
        let _ = conn.close().await;
        match found {
            Ok(any) => Ok(!any),
            Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P01") => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// The read pool, for reports and tests that need plain SQL over the store.
    pub fn read_pool(&self) -> &PgPool {
        &self.read
    }
}

/// Bonus granted to a household by top-ups dated in `month` (`YYYY-MM`), into its wallets or
/// onto its vouchers: what the monthly bonus cap weighs. The one reading of it, for the top-up
/// in its transaction and for the till's quote.
async fn bonus_granted<'c, E>(db: E, household: i64, month: &str) -> Result<Amount, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let fen: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(bonus), 0)::BIGINT FROM topups
         WHERE household_id = $1 AND month = $2 AND void_entry_id IS NULL",
    )
    .bind(household)
    .bind(month)
    .fetch_one(db)
    .await?;
    Ok(Amount::from_fen(fen))
}

#[async_trait]
impl Store for PostgresStore {
    async fn execute(&self, envelope: Envelope) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { envelope, reply })
            .await
            .map_err(|_| StoreError("the writers have stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the writer stopped before answering".into()))?
    }

    async fn try_housekeeping_lease(&self) -> Result<Option<Lease>, StoreError> {
        let mut conn = self.read.acquire().await?.detach();
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(HOUSEKEEPING_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then_some(Lease::Postgres(conn)))
    }

    async fn holds_data(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tokens) OR EXISTS (SELECT 1 FROM entries)",
        )
        .fetch_one(&self.read)
        .await?)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let r = sqlx::query("SELECT seq, hash, business_date FROM chain_head WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        Ok(Head {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
            business_date: r
                .try_get::<Option<String>, _>(2)?
                .map(|d| date(&d))
                .transpose()?,
        })
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut conn = self.read.acquire().await?;
        // One snapshot, so the journal and the balances agree.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let report = verify_in(&mut conn).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        report
    }

    async fn household(&self, code: &str) -> Result<Option<HouseholdView>, StoreError> {
        if !storable(code) {
            return Ok(None);
        }
        let Some(r) = sqlx::query(
            "SELECT h.id, h.code, c.code, k.code, c.eligible, h.area_dm2, h.name, h.link_version,
                    h.building, h.grid
             FROM households h JOIN compounds c ON c.id = h.compound_id
             JOIN companies k ON k.id = c.company_id WHERE h.code = $1",
        )
        .bind(code)
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let id: i64 = r.try_get(0)?;
        let mut wallets: BTreeMap<String, (Amount, Amount)> = BTreeMap::new();
        let mut fees = Amount::ZERO;
        for a in sqlx::query(
            "SELECT name, balance FROM accounts WHERE owner_kind = 'household' AND owner_id = $1",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?
        {
            let name: String = a.try_get(0)?;
            let balance = Amount::from_fen(a.try_get(1)?);
            if name == "fees" {
                fees = balance;
            } else if let Some(rest) = name.strip_prefix("wallet:") {
                if let Some((coop, part)) = rest.rsplit_once(':') {
                    let w = wallets.entry(coop.to_string()).or_default();
                    if part == "paid" {
                        w.0 = balance;
                    } else {
                        w.1 = balance;
                    }
                }
            }
        }
        let vouchers = voucher_rows(&self.read, "v.household_id = $1", id).await?;
        Ok(Some(HouseholdView {
            id,
            code: r.try_get(1)?,
            compound: r.try_get(2)?,
            company: r.try_get(3)?,
            eligible: r.try_get(4)?,
            area_dm2: r.try_get(5)?,
            name: r.try_get(6)?,
            link_version: r.try_get(7)?,
            building: r.try_get(8)?,
            grid: r.try_get(9)?,
            wallets: wallets
                .into_iter()
                .map(|(cooperative, (paid, bonus))| WalletView {
                    cooperative,
                    paid,
                    bonus,
                    total: Amount::from_fen(paid.fen() + bonus.fen()),
                })
                .collect(),
            vouchers,
            fees_balance: fees,
        }))
    }

    async fn history(
        &self,
        household: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Option<HistoryPage>, StoreError> {
        if !storable(household) {
            return Ok(None);
        }
        let Some(id): Option<i64> = sqlx::query_scalar("SELECT id FROM households WHERE code = $1")
            .bind(household)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let limit = i64::from(limit.clamp(1, 100));
        let rows = sqlx::query(
            "WITH mine AS (
                SELECT id, name, type FROM accounts WHERE owner_kind = 'household' AND owner_id = $1
                UNION ALL
                SELECT a.id, 'voucher ' || v.id || ':' || a.name, a.type FROM accounts a
                JOIN vouchers v ON a.owner_kind = 'voucher' AND a.owner_id = v.id
                WHERE v.household_id = $1
             ),
             page AS (
                SELECT DISTINCT p.entry_id FROM postings p JOIN mine m ON m.id = p.account_id
                WHERE p.entry_id < $2 ORDER BY p.entry_id DESC LIMIT $3
             )
             SELECT e.id, e.kind, e.business_date, e.memo, m.name, m.type, p.amount
             FROM page JOIN entries e ON e.id = page.entry_id
             JOIN postings p ON p.entry_id = e.id JOIN mine m ON m.id = p.account_id
             ORDER BY e.id DESC, p.idx",
        )
        .bind(id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut items: Vec<HistoryItem> = Vec::new();
        for r in rows {
            let entry: i64 = r.try_get(0)?;
            if items.last().is_none_or(|i| i.entry != entry) {
                items.push(HistoryItem {
                    entry,
                    kind: r.try_get(1)?,
                    business_date: date(r.try_get(2)?)?,
                    memo: r.try_get(3)?,
                    changes: Vec::new(),
                });
            }
            let kind: String = r.try_get(5)?;
            let sign = AccountType::parse(&kind).map_or(1, AccountType::normal_sign);
            let amount: i64 = r.try_get(6)?;
            if let Some(item) = items.last_mut() {
                item.changes
                    .push((r.try_get(4)?, Amount::from_fen(amount * sign)));
            }
        }
        let next_before = if items.len() as i64 == limit {
            items.last().map(|i| i.entry)
        } else {
            None
        };
        Ok(Some(HistoryPage { items, next_before }))
    }

    async fn voucher(&self, serial: u64) -> Result<Option<VoucherRow>, StoreError> {
        Ok(voucher_rows(&self.read, "v.serial = $1", serial as i64)
            .await?
            .pop())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.tokens
            .read_through(hash, token_by_hash(&self.read, hash))
            .await
    }

    async fn tokens_labelled(
        &self,
        label: &str,
        cooperative: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let rows: Vec<rows::TokenTableRow> = sqlx::query_as(&format!(
            "SELECT {} WHERE t.label = $1 AND t.revoked_at IS NULL
               AND ($2::TEXT IS NULL OR c.code = $2)
             ORDER BY t.id LIMIT $3",
            rows::TOKEN_COLUMNS
        ))
        .bind(label)
        .bind(cooperative)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(rows::token).collect()
    }

    async fn household_credentials(
        &self,
        code: &str,
    ) -> Result<Option<HouseholdCredentials>, StoreError> {
        if !storable(code) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT id, code, pin_hash, link_version, pin_failures, pin_locked_until
             FROM households WHERE code = $1",
        )
        .bind(code)
        .fetch_optional(&self.read)
        .await?;
        Ok(match row {
            Some(r) => Some(HouseholdCredentials {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
                pin_hash: r.try_get(2)?,
                link_version: r.try_get(3)?,
                pin_failures: r.try_get(4)?,
                pin_locked_until: rows::time_opt(r.try_get(5)?)?,
            }),
            None => None,
        })
    }

    async fn balances(&self) -> Result<BTreeMap<String, Amount>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.owner_kind || ':' || COALESCE(c.code, k.code, h.code, v.serial::TEXT) || ':' || a.name,
                    a.balance
             FROM accounts a
             LEFT JOIN cooperatives c ON a.owner_kind = 'cooperative' AND c.id = a.owner_id
             LEFT JOIN companies k ON a.owner_kind = 'company' AND k.id = a.owner_id
             LEFT JOIN households h ON a.owner_kind = 'household' AND h.id = a.owner_id
             LEFT JOIN vouchers v ON a.owner_kind = 'voucher' AND v.id = a.owner_id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, Amount::from_fen(r.try_get(1)?))))
            .collect()
    }

    fn write_stats(&self) -> &WriteStats {
        &self.stats
    }

    async fn statement(&self, company: &str, month: &str) -> Result<Option<Statement>, StoreError> {
        if !storable(company) {
            return Ok(None);
        }
        let Some(company_id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE code = $1")
                .bind(company)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        crate::fees::month_bounds("month", month).map_err(|e| StoreError(e.to_string()))?;
        let mut conn = self.read.acquire().await?;
        // One snapshot for the lines, the positions and the head.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let parts = statement_in(&mut conn, company_id, month).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        let (lines, positions, seq, hash) = parts?;
        Ok(Some(crate::fees::statement::build(
            company, month, lines, positions, seq, hash,
        )))
    }

    async fn fee_receipt(
        &self,
        company: &str,
        number: i64,
    ) -> Result<Option<crate::fees::FeeReceiptView>, StoreError> {
        super::fee_receipt_row(&self.read, company, number).await
    }

    async fn open_bills(
        &self,
        household: &str,
        company: Option<&str>,
    ) -> Result<Vec<(String, Amount, Amount)>, StoreError> {
        if !storable(household) || !company.is_none_or(storable) {
            return Ok(Vec::new());
        }
        sqlx::query(
            "SELECT b.month, b.amount, b.settled FROM fee_bills b JOIN households h ON h.id = b.household_id
             WHERE h.code = $1 AND b.settled < b.amount
               AND ($2::TEXT IS NULL OR b.company_id = (SELECT id FROM companies WHERE code = $2))
             ORDER BY b.month",
        )
        .bind(household)
        .bind(company)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                Amount::from_fen(r.try_get(1)?),
                Amount::from_fen(r.try_get(2)?),
            ))
        })
        .collect()
    }

    async fn eligible_on(
        &self,
        household: &str,
        day: NaiveDate,
    ) -> Result<Option<bool>, StoreError> {
        super::eligible_on_in(&self.read, household, day).await
    }

    async fn master_changes(
        &self,
        subject: Option<Subject>,
        code: Option<&str>,
    ) -> Result<Vec<domain::MasterChangeRecord>, StoreError> {
        super::master_changes_in(&self.read, subject, code).await
    }

    async fn bonus_in_month(
        &self,
        household: &str,
        month: &str,
    ) -> Result<Option<Amount>, StoreError> {
        if !storable(household) {
            return Ok(None);
        }
        let Some(id): Option<i64> = sqlx::query_scalar("SELECT id FROM households WHERE code = $1")
            .bind(household)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(bonus_granted(&self.read, id, month).await?))
    }

    async fn close_candidates(
        &self,
        coop: i64,
        month: &str,
        entry_seq: i64,
    ) -> Result<Vec<Candidate>, StoreError> {
        let (first, last) =
            crate::fees::month_bounds("month", month).map_err(|e| StoreError(e.to_string()))?;
        let mut conn = self.read.acquire().await?;
        // One snapshot for the balances and the postings taken back out of them.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let reads = candidate_reads(&mut conn, coop, first, last, entry_seq).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        reads?.merge(&HashMap::new())
    }

    async fn closed_months(&self) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query(
            "SELECT c.code, m.month FROM month_closes m
             JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY m.month, c.code",
        )
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
    }

    async fn household_company_on(
        &self,
        household: &str,
        day: NaiveDate,
    ) -> Result<Option<String>, StoreError> {
        if !storable(household) {
            return Ok(None);
        }
        Ok(
            sqlx::query_scalar(&rows::household_company_on_sql("$1", "$2"))
                .bind(household)
                .bind(day.to_string())
                .fetch_optional(&self.read)
                .await?,
        )
    }

    async fn household_fee_positions(
        &self,
        household: &str,
    ) -> Result<Vec<(String, Amount)>, StoreError> {
        if !storable(household) {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64)> =
            sqlx::query_as(&rows::household_fee_positions_sql("$1", "::BIGINT"))
                .bind(household)
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(company, fen)| (company, Amount::from_fen(fen)))
            .collect())
    }

    async fn household_fee_movements(
        &self,
        household: &str,
    ) -> Result<Vec<(String, String, Amount)>, StoreError> {
        super::household_fee_rows(&self.read, household, false).await
    }

    async fn household_close_credits(
        &self,
        household: &str,
    ) -> Result<Vec<(String, String, Amount)>, StoreError> {
        super::household_fee_rows(&self.read, household, true).await
    }

    async fn close_runs(&self) -> Result<Vec<CloseRun>, StoreError> {
        let mut conn = self.read.acquire().await?;
        // One snapshot for the runs, their entries and the households they name.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let runs = close_runs_in(&mut conn).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        runs
    }

    async fn applied_policies(&self) -> Result<Vec<PolicyRef>, StoreError> {
        sqlx::query(
            "SELECT policy_id, version, hash FROM policy_applications ORDER BY policy_id, version",
        )
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(|r| {
            Ok(PolicyRef {
                id: r.try_get(0)?,
                version: u32::try_from(r.try_get::<i64, _>(1)?)
                    .map_err(|e| StoreError(e.to_string()))?,
                hash: r.try_get(2)?,
            })
        })
        .collect()
    }

    async fn programme_figures(&self) -> Result<ProgrammeFigures, StoreError> {
        let mut conn = self.read.acquire().await?;
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let figures = super::programme_figures_in::<sqlx::Postgres>(&mut conn).await;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        figures
    }

    async fn paid_credit_months(
        &self,
        cooperative: &str,
    ) -> Result<Option<Vec<PaidCreditMonth>>, StoreError> {
        if !storable(cooperative) {
            return Ok(None);
        }
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = $1")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT month, wallet_paid, voucher_paid FROM paid_credit_months
             WHERE cooperative_id = $1 ORDER BY month",
        )
        .bind(coop)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(month, wallets, vouchers)| PaidCreditMonth {
                    cooperative: cooperative.to_string(),
                    month,
                    wallet_paid: Amount::from_fen(wallets),
                    voucher_paid: Amount::from_fen(vouchers),
                })
                .collect(),
        ))
    }

    async fn catalog(&self, cooperative: &str) -> Result<Option<Vec<CatalogItem>>, StoreError> {
        if !storable(cooperative) {
            return Ok(None);
        }
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = $1")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT id, sku, name, unit, price, cost, barcode FROM catalog_items
             WHERE cooperative_id = $1 ORDER BY sku LIMIT $2",
        )
        .bind(coop)
        .bind(i64::from(super::MAX_CATALOG))
        .fetch_all(&self.read)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            items.push(CatalogItem {
                id: r.try_get(0)?,
                sku: r.try_get(1)?,
                name: r.try_get(2)?,
                unit: r.try_get(3)?,
                price: Amount::from_fen(r.try_get(4)?),
                cost: Amount::from_fen(r.try_get(5)?),
                barcode: r.try_get(6)?,
            });
        }
        Ok(Some(items))
    }

    async fn names(&self) -> Result<Names, StoreError> {
        let mut names = Names::default();
        for (table, map) in [
            ("cooperatives", &mut names.cooperatives),
            ("companies", &mut names.companies),
            ("compounds", &mut names.compounds),
        ] {
            let rows: Vec<(String, String)> =
                sqlx::query_as(&format!("SELECT code, name FROM {table}"))
                    .fetch_all(&self.read)
                    .await?;
            map.extend(rows);
        }
        Ok(names)
    }

    async fn shops(&self) -> Result<Vec<ShopInfo>, StoreError> {
        let shops: Vec<rows::ShopRow> = sqlx::query_as(
            "SELECT s.code, s.name, c.code FROM shops s
             JOIN cooperatives c ON c.id = s.cooperative_id ORDER BY s.code COLLATE \"C\"",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(shops.into_iter().map(rows::shop).collect())
    }

    async fn company_open_bills(
        &self,
        company: &str,
    ) -> Result<Option<Vec<(String, String, Amount, Amount)>>, StoreError> {
        if !storable(company) {
            return Ok(None);
        }
        let Some(company_id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE code = $1")
                .bind(company)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        // Codes in byte order, as on SQLite, whatever the database's collation.
        let bills = sqlx::query_as(
            "SELECT h.code, b.month, b.amount, b.settled
             FROM fee_bills b JOIN households h ON h.id = b.household_id
             WHERE b.company_id = $1 AND b.settled < b.amount
             ORDER BY h.code COLLATE \"C\", b.month",
        )
        .bind(company_id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(bills.into_iter().map(rows::open_bill).collect()))
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError> {
        // Entries take their place in the chain when their batch commits, so entry ids need not
        // follow it (nor business dates): an account's first date is the least of its postings'.
        let accounts: Vec<rows::AccountRow> = sqlx::query_as(
            "SELECT a.id, a.owner_kind, COALESCE(c.code, k.code, h.code, v.serial::TEXT),
                    a.name, a.type, a.balance, f.first_posted
             FROM accounts a
             LEFT JOIN cooperatives c ON a.owner_kind = 'cooperative' AND c.id = a.owner_id
             LEFT JOIN companies k ON a.owner_kind = 'company' AND k.id = a.owner_id
             LEFT JOIN households h ON a.owner_kind = 'household' AND h.id = a.owner_id
             LEFT JOIN vouchers v ON a.owner_kind = 'voucher' AND v.id = a.owner_id
             LEFT JOIN (
                SELECT p.account_id, MIN(e.business_date COLLATE \"C\") AS first_posted
                FROM postings p JOIN entries e ON e.id = p.entry_id
                GROUP BY p.account_id
             ) f ON f.account_id = a.id
             ORDER BY a.id",
        )
        .fetch_all(&self.read)
        .await?;
        accounts.into_iter().map(rows::account).collect()
    }

    async fn journal_chunk(&self, after: i64, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        // By place in the chain (`seq`); a reversal names the place of the entry it reverses.
        let journal = sqlx::query_as(
            "WITH page AS (
                SELECT id, seq, kind, business_date, memo, policy, hash, reverses FROM entries
                WHERE seq > $1 ORDER BY seq LIMIT $2
             )
             SELECT page.seq, page.kind, page.business_date, page.memo, page.policy, page.hash,
                    r.seq, p.account_id, p.amount
             FROM page LEFT JOIN entries r ON r.id = page.reverses
             LEFT JOIN postings p ON p.entry_id = page.id
             ORDER BY page.seq, p.idx",
        )
        .bind(after)
        .bind(i64::from(limit.clamp(1, MAX_JOURNAL_CHUNK)))
        .fetch_all(&self.read)
        .await?;
        rows::journal(journal)
    }

    async fn till_figures(
        &self,
        shop: &str,
        day: NaiveDate,
    ) -> Result<Option<TillFigures>, StoreError> {
        if !storable(shop) {
            return Ok(None);
        }
        let Some(shop): Option<i64> = sqlx::query_scalar("SELECT id FROM shops WHERE code = $1")
            .bind(shop)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let day = day.to_string();
        let mut conn = self.read.acquire().await?;
        // One snapshot: the figures are one picture of the till.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let figures = till_figures_in(&mut conn, shop, &day).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        figures.map(Some)
    }

    async fn shop_topups(
        &self,
        shop: &str,
        date: NaiveDate,
    ) -> Result<Option<Vec<super::ShopTopUp>>, StoreError> {
        if !storable(shop) {
            return Ok(None);
        }
        let Some(shop): Option<i64> = sqlx::query_scalar("SELECT id FROM shops WHERE code = $1")
            .bind(shop)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let rows: Vec<super::ShopTopUpRow> = sqlx::query_as(&super::shop_topups_sql("$1", "$2"))
            .bind(shop)
            .bind(date.to_string())
            .fetch_all(&self.read)
            .await?;
        rows.into_iter()
            .map(super::shop_topup)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn prepaid_figures(
        &self,
        cooperative: &str,
        today: NaiveDate,
        as_of: Option<NaiveDate>,
    ) -> Result<Option<PrepaidFigures>, StoreError> {
        if !storable(cooperative) {
            return Ok(None);
        }
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = $1")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let paid = format!("wallet:{cooperative}:paid");
        let bonus = format!("wallet:{cooperative}:bonus");
        let wallets = rows::credit_holders_sql(
            &credit_balances("owner_kind = 'household' AND name IN ($1, $2)", "$3", as_of),
            "$1",
            "$2",
            "::BIGINT",
        );
        let vouchers = rows::credit_holders_sql(
            &credit_balances(
                "owner_kind = 'voucher'
                 AND owner_id IN (SELECT id FROM vouchers WHERE cooperative_id = $1)",
                "$2",
                as_of,
            ),
            "'paid'",
            "'bonus'",
            "::BIGINT",
        );
        // Past validity on the report date: `expires_on` before it ($2).
        let expired = rows::credit_holders_sql(
            &credit_balances(
                "owner_kind = 'voucher'
                 AND owner_id IN (SELECT id FROM vouchers
                                  WHERE cooperative_id = $1 AND expires_on < $2)",
                "$3",
                as_of,
            ),
            "'paid'",
            "'bonus'",
            "::BIGINT",
        );
        let breakage = super::breakage_sql("$1", "$2", as_of.is_some());
        let day = as_of.map(|d| d.to_string());
        let on = as_of.unwrap_or(today).to_string();
        let mut conn = self.read.acquire().await?;
        // One snapshot: wallets and vouchers at the same moment.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *conn)
            .await?;
        let read = async {
            let mut q = sqlx::query_as(&wallets).bind(&paid).bind(&bonus);
            if let Some(d) = &day {
                q = q.bind(d);
            }
            let w = q.fetch_one(&mut *conn).await?;
            let mut q = sqlx::query_as(&vouchers).bind(coop);
            if let Some(d) = &day {
                q = q.bind(d);
            }
            let v = q.fetch_one(&mut *conn).await?;
            let mut q = sqlx::query_as(&expired).bind(coop).bind(&on);
            if let Some(d) = &day {
                q = q.bind(d);
            }
            let x = q.fetch_one(&mut *conn).await?;
            let mut q = sqlx::query_as(&breakage).bind(coop);
            if let Some(d) = &day {
                q = q.bind(d);
            }
            let (broken_paid, broken_bonus): (i64, i64) = q.fetch_one(&mut *conn).await?;
            Ok::<_, StoreError>(PrepaidFigures {
                wallets: rows::credit(w)?,
                vouchers: rows::credit(v)?,
                expired: rows::credit(x)?,
                breakage_paid: Amount::from_fen(broken_paid),
                breakage_bonus: Amount::from_fen(broken_bonus),
            })
        }
        .await;
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        read.map(Some)
    }
}

/// What passed over a shop's till on a day, read inside the caller's snapshot.
async fn till_figures_in(
    conn: &mut PgConnection,
    shop: i64,
    day: &str,
) -> Result<TillFigures, StoreError> {
    let topups = sqlx::query_as(
        "SELECT method, COUNT(*), SUM(paid)::BIGINT, SUM(bonus)::BIGINT, COUNT(voucher_id),
                COALESCE(SUM(CASE WHEN voucher_id IS NOT NULL THEN paid END), 0)::BIGINT,
                COALESCE(SUM(CASE WHEN voucher_id IS NOT NULL THEN bonus END), 0)::BIGINT
         FROM topups WHERE shop_id = $1 AND business_date = $2 AND void_entry_id IS NULL
         GROUP BY method ORDER BY method COLLATE \"C\"",
    )
    .bind(shop)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    let sales = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(total), 0)::BIGINT FROM sales
         WHERE shop_id = $1 AND business_date = $2",
    )
    .bind(shop)
    .bind(day)
    .fetch_one(&mut *conn)
    .await?;
    let tenders = sqlx::query_as(
        "SELECT t.type, COUNT(*), SUM(t.amount)::BIGINT, SUM(t.paid_part)::BIGINT,
                SUM(t.bonus_part)::BIGINT, COUNT(DISTINCT t.voucher_id)
         FROM sales s JOIN sale_tenders t ON t.sale_id = s.id
         WHERE s.shop_id = $1 AND s.business_date = $2
         GROUP BY t.type ORDER BY t.type COLLATE \"C\"",
    )
    .bind(shop)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    // Refunds count on the day they were posted, at the shop of the sale they refund.
    let refunds = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(r.amount), 0)::BIGINT
         FROM entries e JOIN sale_refunds r ON r.entry_id = e.id
         JOIN sales s ON s.id = r.sale_id
         WHERE e.business_date = $1 AND e.kind = 'sale_refund' AND s.shop_id = $2",
    )
    .bind(day)
    .bind(shop)
    .fetch_one(&mut *conn)
    .await?;
    // Where the money of those refunds went: the credits of their entries, but for the cost of
    // goods taken back.
    let refunded = sqlx::query_as(
        "SELECT went, (-SUM(amount))::BIGINT FROM (
            SELECT CASE WHEN a.owner_kind = 'household' THEN 'wallet'
                        WHEN a.owner_kind = 'voucher' THEN 'voucher'
                        WHEN a.name LIKE 'cash:%' THEN substr(a.name, 6)
                        ELSE 'forfeited' END AS went,
                   p.amount
            FROM entries e JOIN sale_refunds r ON r.entry_id = e.id
            JOIN sales s ON s.id = r.sale_id
            JOIN postings p ON p.entry_id = e.id JOIN accounts a ON a.id = p.account_id
            WHERE e.business_date = $1 AND e.kind = 'sale_refund' AND s.shop_id = $2
              AND p.amount < 0 AND NOT (a.owner_kind = 'cooperative' AND a.name = 'cogs')
         ) AS credits
         GROUP BY went ORDER BY went COLLATE \"C\"",
    )
    .bind(day)
    .bind(shop)
    .fetch_all(&mut *conn)
    .await?;
    rows::till(topups, sales, tenders, refunds, refunded)
}

/// The balances (`owner_kind, owner_id, name, balance`) of the wallet or voucher accounts that
/// `filter` picks: as stored, or as of a date (the parameter `date_param`) from the postings of
/// entries dated on or before it. Both are liabilities, so a credit (negative) adds to them.
fn credit_balances(filter: &str, date_param: &str, as_of: Option<NaiveDate>) -> String {
    match as_of {
        None => format!("SELECT owner_kind, owner_id, name, balance FROM accounts WHERE {filter}"),
        Some(_) => format!(
            "SELECT a.owner_kind, a.owner_id, a.name, -SUM(p.amount) AS balance
             FROM accounts a JOIN postings p ON p.account_id = a.id
             JOIN entries e ON e.id = p.entry_id
             WHERE {filter} AND e.business_date <= {date_param}
             GROUP BY a.id"
        ),
    }
}

/// Every stored close, read inside the caller's snapshot.
async fn close_runs_in(tx: &mut PgConnection) -> Result<Vec<CloseRun>, StoreError> {
    let closes = sqlx::query(
        "SELECT c.code, m.month, m.inputs, m.entry_id, m.shares, m.cooperative_id, m.result,
                (SELECT e.seq FROM entries e WHERE e.id = m.entry_id)
         FROM month_closes m
         JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY c.code, m.month",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut runs = Vec::with_capacity(closes.len());
    for m in closes {
        let shares = crate::fees::read_shares_document(m.try_get(4)?)
            .map_err(|e| StoreError(format!("stored shares unreadable: {e}")))?;
        // What the close's entry credited each household's fees.
        let posted: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT a.owner_id, -p.amount FROM postings p JOIN accounts a ON a.id = p.account_id
                 WHERE p.entry_id = $1 AND a.owner_kind = 'household' AND a.name = 'fees'",
        )
        .bind(m.try_get::<Option<i64>, _>(3)?)
        .fetch_all(&mut *tx)
        .await?;
        // Households are named by code: the allocator breaks ties by it.
        let mut ids: Vec<i64> = shares.iter().map(|s| s.household).collect();
        ids.extend(posted.iter().map(|(id, _)| *id));
        ids.sort_unstable();
        ids.dedup();
        let code_of: HashMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
            "SELECT id, code FROM households WHERE id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let code = |id: i64| {
            code_of
                .get(&id)
                .cloned()
                .ok_or_else(|| StoreError(format!("no household {id}")))
        };
        runs.push(CloseRun {
            cooperative: m.try_get(0)?,
            cooperative_id: m.try_get(5)?,
            month: m.try_get(1)?,
            entry_seq: m.try_get(7)?,
            inputs: m.try_get(2)?,
            result: m.try_get(6)?,
            shares: shares
                .iter()
                .map(|s| Ok((code(s.household)?, s.weight, s.cap, s.amount)))
                .collect::<Result<Vec<_>, StoreError>>()?,
            posted: posted
                .into_iter()
                .map(|(id, fen)| Ok((code(id)?, Amount::from_fen(fen))))
                .collect::<Result<BTreeMap<_, _>, StoreError>>()?,
        });
    }
    Ok(runs)
}

/// The verifier fed in chain order, a chunk of entries at a time, inside the caller's snapshot.
async fn verify_in(conn: &mut PgConnection) -> Result<VerifyReport, StoreError> {
    let accounts: Vec<rows::AccountRecordRow> = sqlx::query_as(
        "SELECT id, owner_kind, owner_id, name, type, bounded, balance FROM accounts",
    )
    .fetch_all(&mut *conn)
    .await?;
    let accounts = accounts
        .into_iter()
        .map(rows::account_record)
        .collect::<Result<Vec<_>, StoreError>>()?;
    let mut verifier = Verifier::new(accounts);
    let mut after = 0i64;
    loop {
        let chain: Vec<rows::ChainRow> = sqlx::query_as(
            "SELECT e.seq, e.kind, e.business_date, e.created_at, e.actor_token_id, e.policy,
                    e.policy_hash, e.idempotency_key, e.memo, e.reverses, e.prev_hash, e.hash,
                    p.account_id, p.amount, e.hash_version, e.facts
             FROM entries e LEFT JOIN postings p ON p.entry_id = e.id
             WHERE e.seq > $1 AND e.seq <= $2
             ORDER BY e.seq, p.idx",
        )
        .bind(after)
        .bind(after + VERIFY_CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        if chain.is_empty() {
            let more: Option<i64> =
                sqlx::query_scalar("SELECT MIN(seq) FROM entries WHERE seq > $1")
                    .bind(after)
                    .fetch_one(&mut *conn)
                    .await?;
            match more {
                // A gap in the sequence larger than a chunk: continue from there; the verifier
                // names the gap as a chain break.
                Some(next) => {
                    after = next - 1;
                    continue;
                }
                None => break,
            }
        }
        if !rows::feed_chain(&mut verifier, chain)? {
            break;
        }
        after += VERIFY_CHUNK;
    }
    let mut report = verifier.finish();
    if report.ok() {
        // The tables that repeat or derive from the journal, in the caller's snapshot; entries
        // named by their place in the chain.
        let vouchers: Vec<audit::VoucherTableRow> = sqlx::query_as(
            "SELECT id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status, exchanged_from
             FROM vouchers ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let closes: Vec<audit::CloseTableRow> = sqlx::query_as(
            "SELECT m.cooperative_id, m.month, e.seq FROM month_closes m
             LEFT JOIN entries e ON e.id = m.entry_id ORDER BY m.cooperative_id, m.month",
        )
        .fetch_all(&mut *conn)
        .await?;
        let bills: Vec<audit::BillTableRow> = sqlx::query_as(
            "SELECT b.id, b.household_id, b.company_id, b.month, b.amount, b.settled, e.seq
             FROM fee_bills b JOIN entries e ON e.id = b.entry_id ORDER BY b.id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let tenders: Vec<audit::TenderTableRow> = sqlx::query_as(
            "SELECT e.seq, t.type, t.household_id, t.voucher_id, t.amount, t.paid_part, t.bonus_part,
                    t.refunded, t.refunded_paid, t.refunded_bonus
             FROM sale_tenders t JOIN sales s ON s.id = t.sale_id JOIN entries e ON e.id = s.entry_id
             ORDER BY t.sale_id, t.idx",
        )
        .fetch_all(&mut *conn)
        .await?;
        let topups: Vec<audit::TopupTableRow> = sqlx::query_as(
            "SELECT e.seq, t.cooperative_id, t.household_id, t.method, t.paid, t.bonus, t.voucher_id,
                    t.business_date, t.month, t.entry_id, v.seq
             FROM topups t JOIN entries e ON e.id = t.entry_id
             LEFT JOIN entries v ON v.id = t.void_entry_id ORDER BY e.seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let settlements: Vec<audit::SettlementTableRow> = sqlx::query_as(
            "SELECT e.seq, s.cooperative_id, s.company_id, s.amount, s.business_date
             FROM settlements s JOIN entries e ON e.id = s.entry_id ORDER BY e.seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let fee_credits: Vec<audit::FeeCreditTableRow> = sqlx::query_as(
            "SELECT e.seq, c.household_id, c.kind, c.amount, c.method
             FROM fee_credits c JOIN entries e ON e.id = c.entry_id ORDER BY e.seq, c.household_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let fee_receipts: Vec<audit::FeeReceiptTableRow> = sqlx::query_as(
            "SELECT e.seq, r.company_id, r.number, r.household_id, r.amount, r.method,
                    r.cooperative_id, r.shop_id
             FROM fee_receipts r JOIN entries e ON e.id = r.entry_id ORDER BY e.seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let sale_refunds: Vec<audit::SaleRefundTableRow> = sqlx::query_as(
            "SELECT e.seq, s.entry_id, r.amount, r.cost FROM sale_refunds r
             JOIN sales s ON s.id = r.sale_id JOIN entries e ON e.id = r.entry_id ORDER BY e.seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let sales: Vec<audit::SaleTableRow> = sqlx::query_as(
            "SELECT e.seq, s.entry_id, s.cooperative_id, s.total, s.cost, s.refunded, s.refunded_cost,
                    s.business_date
             FROM sales s JOIN entries e ON e.id = s.entry_id ORDER BY e.seq",
        )
        .fetch_all(&mut *conn)
        .await?;
        let refund_tenders: Vec<audit::RefundTenderTableRow> = sqlx::query_as(
            "SELECT e.seq, s.entry_id, r.idx, r.amount, t.refunded FROM sale_refund_tenders r
             JOIN sales s ON s.id = r.sale_id JOIN entries e ON e.id = r.entry_id
             LEFT JOIN sale_tenders t ON t.sale_id = r.sale_id AND t.idx = r.idx
             ORDER BY e.seq, r.idx",
        )
        .fetch_all(&mut *conn)
        .await?;
        let records = audit::Records {
            topups: &topups,
            settlements: &settlements,
            fee_credits: &fee_credits,
            fee_receipts: &fee_receipts,
            sale_refunds: &sale_refunds,
            sales: &sales,
            refund_tenders: &refund_tenders,
        };
        if let Some(p) = audit::check_tables(
            &report.summary,
            &vouchers,
            &closes,
            &bills,
            &tenders,
            &records,
        ) {
            report.fail(p);
        }
        if let Some(p) =
            master_problem::<sqlx::Postgres>(&mut *conn, &report.summary, &TILL_SQL).await?
        {
            report.fail(p);
        }
        if let Some(p) = super::programme_problem::<sqlx::Postgres>(&mut *conn).await? {
            report.fail(p);
        }
        // The head every writer extends the chain from must be the chain's last entry.
        let (seq, hash, date): (i64, String, Option<String>) =
            sqlx::query_as("SELECT seq, hash, business_date FROM chain_head WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?;
        let last_date = report.summary.entries.last().map(|e| e.2.to_string());
        if (seq, hash.as_str(), date) != (report.head_seq, report.head_hash.as_str(), last_date) {
            report.fail(format!(
                "chain_head: says {seq} {hash} but the chain ends at {} {}",
                report.head_seq, report.head_hash
            ));
        }
    }
    Ok(report)
}

type StatementParts = (Vec<HouseholdLine>, Vec<CooperativePosition>, i64, String);

/// A company's statement lines and positions for `month`, every movement counted in its service
/// month (the `entry_months` view): bills and allocations in the month they are for, payments
/// and settlements in the month of their business date.
async fn statement_in(
    conn: &mut PgConnection,
    company_id: i64,
    month: &str,
) -> Result<StatementParts, StoreError> {
    // Per household, the movements that belong to the company (a moved compound's arrears stay
    // its old company's; `rows::statement_lines_sql`), each household's area then (master data
    // changes, migration 0021).
    let sql = rows::statement_lines_sql("$1", "$2", "::BIGINT");
    let rows = sqlx::query(&sql)
        .bind(month)
        .bind(company_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut lines = Vec::with_capacity(rows.len());
    for r in &rows {
        lines.push(HouseholdLine {
            compound: r.try_get(0)?,
            household: r.try_get(1)?,
            area_m2: crate::fees::statement::area_m2(r.try_get(7)?),
            occupant: r.try_get(8)?,
            building: r.try_get(9)?,
            grid: r.try_get(10)?,
            opening: Amount::from_fen(r.try_get(2)?),
            billed: Amount::from_fen(r.try_get(3)?),
            paid: Amount::from_fen(r.try_get(4)?),
            allocated: Amount::from_fen(r.try_get(5)?),
            closing: Amount::from_fen(r.try_get(6)?),
        });
    }
    let positions = sqlx::query(
        "SELECT substr(a.name, 10),
            COALESCE(SUM(CASE WHEN e.service_month < $1 THEN p.amount END), 0)::BIGINT,
            COALESCE(SUM(CASE WHEN e.service_month = $1 AND e.kind = 'profit_allocation' THEN p.amount END), 0)::BIGINT,
            COALESCE(SUM(CASE WHEN e.service_month = $1 AND e.kind = 'settlement' THEN -p.amount END), 0)::BIGINT,
            COALESCE(SUM(CASE WHEN e.service_month <= $1 THEN p.amount END), 0)::BIGINT,
            COALESCE(SUM(CASE WHEN e.service_month = $1 AND e.kind = 'fee_payment' THEN p.amount END), 0)::BIGINT
         FROM accounts a LEFT JOIN postings p ON p.account_id = a.id
         LEFT JOIN entry_months e ON e.entry_id = p.entry_id
         WHERE a.owner_kind = 'company' AND a.owner_id = $2 AND a.name LIKE 'due\\_from:%'
         GROUP BY a.id
         HAVING COUNT(CASE WHEN e.service_month <= $1 THEN 1 END) > 0
         ORDER BY a.name",
    )
    .bind(month)
    .bind(company_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| {
        Ok(CooperativePosition {
            cooperative_name: None,
            cooperative: r.try_get(0)?,
            opening: Amount::from_fen(r.try_get(1)?),
            allocated: Amount::from_fen(r.try_get(2)?),
            settled: Amount::from_fen(r.try_get(3)?),
            outstanding: Amount::from_fen(r.try_get(4)?),
            collected: Amount::from_fen(r.try_get(5)?),
        })
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let head = sqlx::query("SELECT seq, hash FROM chain_head WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok((lines, positions, head.try_get(0)?, head.try_get(1)?))
}

async fn voucher_rows(
    pool: &PgPool,
    filter: &str,
    value: i64,
) -> Result<Vec<VoucherRow>, StoreError> {
    let sql = format!(
        "SELECT v.id, v.serial, v.key_id, c.code, h.code, v.status, v.issued_on, v.expires_on,
                COALESCE((SELECT balance FROM accounts WHERE owner_kind = 'voucher' AND owner_id = v.id AND name = 'paid'), 0),
                COALESCE((SELECT balance FROM accounts WHERE owner_kind = 'voucher' AND owner_id = v.id AND name = 'bonus'), 0)
         FROM vouchers v JOIN cooperatives c ON c.id = v.cooperative_id
         LEFT JOIN households h ON h.id = v.household_id
         WHERE {filter} ORDER BY v.id"
    );
    let vouchers: Vec<rows::VoucherTuple> =
        sqlx::query_as(&sql).bind(value).fetch_all(pool).await?;
    vouchers.into_iter().map(rows::voucher).collect()
}

// ---------------------------------------------------------------------------------------------
// The writers

#[derive(Clone, Copy)]
struct AccountMeta {
    id: AccountId,
    sign: i64,
    bounded: bool,
}

type AccountKey = (&'static str, i64, String);

fn key_of(spec: &AccountSpec) -> AccountKey {
    (spec.owner.kind(), spec.owner.id(), spec.name.clone())
}

/// What the writers of one process share.
struct Shared {
    rx: Mutex<mpsc::Receiver<Job>>,
    services: Services,
    stats: Arc<WriteStats>,
    tokens: Arc<TokenCache>,
    /// Committed accounts by owner and name. An account's id, type and bound never change once
    /// committed, so this cache is safe across processes.
    accounts: RwLock<HashMap<AccountKey, AccountMeta>>,
    options: PgConnectOptions,
}

/// A command waiting for its batch, with how often it was put back for a lock.
struct Pending {
    job: Job,
    deferrals: u32,
}

// One per command of a batch, moved straight into the reply: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Step {
    Done(Result<Outcome, StoreError>),
    /// Rolled back because of another writer's lock: run it again in the next batch.
    Defer,
}

/// A batch that failed as a whole; `retry` when it certainly left nothing behind and running
/// it again may succeed.
struct BatchFailure {
    error: StoreError,
    retry: bool,
}

impl From<sqlx::Error> for BatchFailure {
    fn from(e: sqlx::Error) -> Self {
        // Before COMMIT, a failed batch is rolled back by the server whatever the cause.
        let retry = is_contention(&e) || matches!(e, sqlx::Error::Io(_));
        BatchFailure {
            error: e.into(),
            retry,
        }
    }
}

impl From<StoreError> for BatchFailure {
    fn from(error: StoreError) -> Self {
        BatchFailure {
            error,
            retry: false,
        }
    }
}

/// An entry posted in the running batch, waiting for its place in the chain.
struct PendingEntry {
    id: i64,
    header: EntryHeader,
    postings: Vec<(AccountId, i64)>,
    /// Each posting's account identity, hashed with it (hash version 2).
    identities: Vec<AccountSpec>,
}

/// What a batch has done that is not yet in the database, or must be undone when one of its
/// commands is rolled back to its savepoint.
#[derive(Default)]
struct BatchState {
    last_date: Option<NaiveDate>,
    entries: Vec<PendingEntry>,
    /// Changes to unbounded (hot) balances, applied at the end of the batch.
    deltas: HashMap<i64, i64>,
    delta_log: Vec<(i64, i64)>,
    /// Accounts created in this batch (not yet visible to others).
    new_accounts: HashMap<AccountKey, AccountMeta>,
    account_log: Vec<AccountKey>,
    /// (policy id, version, hash, first applied at)
    policies: Vec<(String, i64, String, String)>,
}

#[derive(Clone, Copy)]
struct Mark {
    entries: usize,
    deltas: usize,
    accounts: usize,
    policies: usize,
    last_date: Option<NaiveDate>,
}

impl BatchState {
    /// Notes a policy the batch applied (`id@version`), recorded at its end.
    fn applied(&mut self, name: &str, hash: &str, at: &str) -> Result<(), StoreError> {
        if let Some((id, version)) = super::policy_version(name)? {
            self.policies
                .push((id.to_string(), version, hash.to_string(), at.to_string()));
        }
        Ok(())
    }

    fn mark(&self) -> Mark {
        Mark {
            entries: self.entries.len(),
            deltas: self.delta_log.len(),
            accounts: self.account_log.len(),
            policies: self.policies.len(),
            last_date: self.last_date,
        }
    }

    /// Forgets what was done since `mark` (idempotent).
    fn undo(&mut self, mark: Mark) {
        self.entries.truncate(mark.entries);
        for (id, delta) in self
            .delta_log
            .drain(mark.deltas.min(self.delta_log.len())..)
        {
            *self.deltas.entry(id).or_default() -= delta;
        }
        for key in self
            .account_log
            .drain(mark.accounts.min(self.account_log.len())..)
        {
            self.new_accounts.remove(&key);
        }
        self.policies.truncate(mark.policies);
        self.last_date = mark.last_date;
    }
}

struct Writer {
    shared: Arc<Shared>,
    /// `None` after the connection broke; reconnected before the next batch.
    conn: Option<PgConnection>,
}

fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Pending>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(job) => batch.push(Pending { job, deferrals: 0 }),
            Err(_) => break,
        }
    }
}

impl Writer {
    async fn run(mut self) {
        let mut carry: Vec<Pending> = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut carry);
            if batch.is_empty() {
                let mut rx = self.shared.rx.lock().await;
                let Some(job) = rx.recv().await else { break };
                batch.push(Pending { job, deferrals: 0 });
                drain(&mut rx, &mut batch);
            } else if let Ok(mut rx) = self.shared.rx.try_lock() {
                drain(&mut rx, &mut batch);
            }
            carry = self.process(batch).await;
        }
    }

    /// Runs a batch (again, after failures that left nothing behind), answers what is done,
    /// and returns the commands to run again first in the next batch.
    async fn process(&mut self, batch: Vec<Pending>) -> Vec<Pending> {
        let shared = self.shared.clone();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = match self.connection().await {
                Ok(conn) => {
                    let mut state = BatchState::default();
                    let mut run = BatchRun {
                        conn,
                        shared: &shared,
                        state: &mut state,
                    };
                    run.run(&batch).await.map(|steps| (steps, state))
                }
                Err(e) => Err(BatchFailure {
                    error: e,
                    retry: attempt < 2,
                }),
            };
            match result {
                Ok((steps, state)) => {
                    if batch
                        .iter()
                        .any(|p| revokes_tokens(&p.job.envelope.command))
                    {
                        // Before anyone hears of the revocation, no cached token in this
                        // process outlives it (the others hear the NOTIFY).
                        self.shared.tokens.invalidate();
                    }
                    crash_point("before_reply");
                    self.shared.stats.record(batch.len());
                    if let Ok(mut cache) = self.shared.accounts.write() {
                        cache.extend(state.new_accounts);
                    }
                    let mut carry = Vec::new();
                    for (mut pending, step) in batch.into_iter().zip(steps) {
                        match step {
                            Step::Done(result) => {
                                let _ = pending.job.reply.send(result);
                            }
                            Step::Defer if pending.deferrals >= MAX_DEFERRALS => {
                                let _ = pending.job.reply.send(Err(StoreError(format!(
                                    "gave up after {MAX_DEFERRALS} lock conflicts with other writers; retry"
                                ))));
                            }
                            Step::Defer => {
                                pending.deferrals += 1;
                                carry.push(pending);
                            }
                        }
                    }
                    return carry;
                }
                Err(failure) => {
                    if let Some(conn) = self.conn.as_mut() {
                        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                            self.conn = None;
                        }
                    }
                    if failure.retry && attempt < MAX_BATCH_ATTEMPTS {
                        tracing::warn!(error = %failure.error, attempt, batch = batch.len(), "write batch rolled back; running it again");
                        tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                        continue;
                    }
                    tracing::error!(error = %failure.error, batch = batch.len(), "write batch failed; nothing in it was committed");
                    for pending in batch {
                        let _ = pending
                            .job
                            .reply
                            .send(Err(StoreError(failure.error.0.clone())));
                    }
                    return Vec::new();
                }
            }
        }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, StoreError> {
        if self.conn.is_none() {
            self.conn = Some(self.shared.options.connect().await?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError("no write connection".into()))
    }
}

/// One attempt at one batch.
struct BatchRun<'a> {
    conn: &'a mut PgConnection,
    shared: &'a Shared,
    state: &'a mut BatchState,
}

impl BatchRun<'_> {
    async fn run(&mut self, batch: &[Pending]) -> Result<Vec<Step>, BatchFailure> {
        sqlx::query("BEGIN").execute(&mut *self.conn).await?;
        let head_date: Option<String> =
            sqlx::query_scalar("SELECT business_date FROM chain_head WHERE id = 1")
                .fetch_one(&mut *self.conn)
                .await?;
        self.state.last_date = head_date.map(|d| date(&d)).transpose()?;
        let started = std::time::Instant::now();
        let mut steps = Vec::with_capacity(batch.len());
        let mut i = 0;
        while i < batch.len() {
            // Only what holds no locks yet may wait for one (see the module doc).
            let wait = i == 0;
            let till = batch[i..]
                .iter()
                .take_while(|p| engine::runs(&p.job.envelope.command))
                .count();
            if till > 0 {
                steps.extend(self.run_engine(&batch[i..i + till], wait).await?);
                i += till;
            } else {
                steps.push(self.run_one(&batch[i].job.envelope, wait).await?);
                i += 1;
            }
        }
        let ran = started.elapsed();
        let (locked, committed) = self.finish(started).await?;
        tracing::debug!(
            commands = batch.len(),
            run_s = ran.as_secs_f64(),
            chain_wait_s = (locked - ran).as_secs_f64(),
            under_chain_lock_s = (committed - locked).as_secs_f64(),
            "write batch"
        );
        Ok(steps)
    }

    /// Runs consecutive till commands through the write engine together, inside one savepoint:
    /// loaded and locked with one query per table, executed in memory, written with one
    /// statement per table. A lock conflict with another writer puts the whole run back; any
    /// other failure answers its commands with a store error and leaves the rest of the batch.
    async fn run_engine(&mut self, run: &[Pending], wait: bool) -> Result<Vec<Step>, BatchFailure> {
        sqlx::query("SAVEPOINT engine")
            .execute(&mut *self.conn)
            .await?;
        let mark = self.state.mark();
        let error = match self.engine_run(run, wait).await {
            Ok(outcomes) => {
                sqlx::query("RELEASE SAVEPOINT engine")
                    .execute(&mut *self.conn)
                    .await?;
                return Ok(outcomes.into_iter().map(Step::Done).collect());
            }
            Err(error) => error,
        };
        sqlx::query("ROLLBACK TO SAVEPOINT engine")
            .execute(&mut *self.conn)
            .await?;
        sqlx::query("RELEASE SAVEPOINT engine")
            .execute(&mut *self.conn)
            .await?;
        self.state.undo(mark);
        let error = match error {
            batch::RunError::Db(e) if is_contention(&e) => {
                return Ok(run.iter().map(|_| Step::Defer).collect());
            }
            batch::RunError::Db(e) => StoreError::from(e),
            batch::RunError::Store(e) => e,
        };
        tracing::warn!(%error, commands = run.len(), "till commands failed in the write engine");
        Ok(run
            .iter()
            .map(|_| Step::Done(Err(StoreError(error.0.clone()))))
            .collect())
    }

    /// One attempt at a run of till commands: keys, load (locking), reserve ids, execute,
    /// open new accounts, persist; then the entries, balance changes, new accounts and policies
    /// join the batch's, which takes them into the chain at its end.
    async fn engine_run(
        &mut self,
        run: &[Pending],
        wait: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, batch::RunError> {
        let shared = self.shared;
        let services = &shared.services;
        let envelopes: Vec<&Envelope> = run.iter().map(|p| &p.job.envelope).collect();
        let now = services.clock.now();
        let today = domain::business_date(self.state.last_date, services.clock.today());
        let plan = engine::keys(&envelopes, &services.keys, today);
        let loaded = batch::load(&mut *self.conn, &plan.keys, wait, &self.state.deltas).await?;
        let sales = envelopes
            .iter()
            .filter(|e| matches!(e.command, domain::Command::Sale(_)))
            .count();
        let vouchers = plan.drawn.iter().filter(|d| !d.is_empty()).count();
        let reserved = batch::reserve(&mut *self.conn, envelopes.len(), sales, vouchers).await?;
        // The engine's chain is provisional here: the batch gives entries their places and
        // hashes at its end, under the chain lock.
        let head = engine::Head {
            seq: 0,
            hash: crate::ledger::GENESIS_HASH,
            business_date: self.state.last_date,
        };
        let next = engine::NextIds {
            account: PROVISIONAL_ACCOUNT,
            voucher: 0,
            sale: 0,
        };
        let mut state = engine::State::new(loaded, head, next).with_reserved(reserved);
        let engine_services = engine::Services {
            policies: &services.policies,
            keys: &services.keys,
            today,
            now,
        };
        let outcomes = engine::execute(&mut state, &engine_services, &envelopes, &plan.drawn)?;
        let mut effects = std::mem::take(&mut state.effects);
        let mut pending = Vec::with_capacity(effects.entries.len());
        for e in &effects.entries {
            let identities = e
                .postings
                .iter()
                .map(|(id, _)| {
                    state
                        .spec_of(*id)
                        .cloned()
                        .ok_or_else(|| StoreError(format!("no account {} in the run", id.0)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            pending.push(identities);
        }
        let opened = batch::open_accounts(&mut *self.conn, &effects.accounts).await?;
        let real = |id: AccountId| opened.get(&id).copied().unwrap_or(id);
        for e in &mut effects.entries {
            for posting in &mut e.postings {
                posting.0 = real(posting.0);
            }
        }
        let now_text = canonical_time(&now);
        batch::persist(&mut *self.conn, &effects, &now_text).await?;
        for (id, spec) in &effects.accounts {
            let key = key_of(spec);
            self.state.new_accounts.insert(
                key.clone(),
                AccountMeta {
                    id: real(*id),
                    sign: spec.kind.normal_sign(),
                    bounded: spec.bounded,
                },
            );
            self.state.account_log.push(key);
        }
        // Bounded balances (wallets, vouchers: locked by this run) change now, so that a
        // later command of the batch reads them as they are; hot ones at the batch's end.
        let mut bounded: Vec<(i64, i64)> = Vec::new();
        for (id, delta) in &effects.balances {
            let is_bounded = state
                .spec_of(AccountId(*id))
                .map(|spec| spec.bounded)
                .ok_or_else(|| StoreError(format!("no account {id} in the run")))?;
            let id = real(AccountId(*id)).0;
            if is_bounded {
                bounded.push((id, *delta));
            } else {
                *self.state.deltas.entry(id).or_default() += delta;
                self.state.delta_log.push((id, *delta));
            }
        }
        batch::apply_bounded(&mut *self.conn, &bounded).await?;
        for (name, hash) in &effects.policies {
            self.state.applied(name, hash, &now_text)?;
        }
        for (e, identities) in effects.entries.into_iter().zip(pending) {
            self.state.last_date = Some(e.header.business_date);
            self.state.entries.push(PendingEntry {
                id: e.id,
                header: e.header,
                postings: e.postings,
                identities,
            });
        }
        Ok(outcomes)
    }

    /// The outer `Err` aborts the batch; `Step::Defer` puts this command back.
    async fn run_one(&mut self, envelope: &Envelope, wait: bool) -> Result<Step, BatchFailure> {
        let services = &self.shared.services;
        let now = services.clock.now();
        let clock_today = services.clock.today();
        // Business dates never run backwards against the journal.
        let today = domain::business_date(self.state.last_date, clock_today);
        sqlx::query("SAVEPOINT command")
            .execute(&mut *self.conn)
            .await?;
        let mark = self.state.mark();
        if let Some(idem) = &envelope.idempotency {
            let seen = sqlx::query(
                "SELECT fingerprint, outcome FROM idempotency WHERE scope = $1 AND key = $2",
            )
            .bind(&idem.scope)
            .bind(&idem.key)
            .fetch_optional(&mut *self.conn)
            .await;
            match seen {
                Err(e) => return self.abandon(mark, e).await,
                Ok(Some(r)) => {
                    sqlx::query("RELEASE SAVEPOINT command")
                        .execute(&mut *self.conn)
                        .await?;
                    let fingerprint: String = r.try_get(0)?;
                    if !idem.matches(&fingerprint) {
                        return Ok(Step::Done(Ok(Outcome {
                            result: Err(Rejection::IdempotencyKeyReused),
                            replayed: false,
                        })));
                    }
                    let outcome: String = r.try_get(1)?;
                    let result = super::outcome_from_store(&outcome, &services.keys)?;
                    return Ok(Step::Done(Ok(Outcome {
                        result,
                        replayed: true,
                    })));
                }
                Ok(None) => {}
            }
        }
        let ctx = Ctx {
            policies: &services.policies,
            keys: &services.keys,
            today,
            now,
            actor: envelope.actor,
            idempotency_key: envelope.idempotency.as_ref().map(|i| i.key.as_str()),
        };
        let (result, contended) = {
            let mut tx = PgTx {
                conn: &mut *self.conn,
                state: &mut *self.state,
                cache: &self.shared.accounts,
                now: canonical_time(&now),
                wait,
                contended: false,
            };
            let result = domain::run(&mut tx, &ctx, &envelope.command).await;
            (result, tx.contended)
        };
        let result = match result {
            Ok(receipt) => Ok(receipt),
            Err(OpError::Rejected(r)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT command")
                    .execute(&mut *self.conn)
                    .await?;
                self.state.undo(mark);
                Err(r)
            }
            Err(OpError::Store(e)) => {
                self.rollback_command(mark).await?;
                return Ok(if contended {
                    Step::Defer
                } else {
                    Step::Done(Err(e))
                });
            }
        };
        if let Some(idem) = &envelope.idempotency {
            let outcome = super::outcome_to_store(&result, &services.keys)?;
            let stored = sqlx::query(
                "INSERT INTO idempotency (scope, key, fingerprint, outcome, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&idem.scope)
            .bind(&idem.key)
            .bind(&idem.fingerprint)
            .bind(outcome)
            .bind(canonical_time(&Utc::now()))
            .execute(&mut *self.conn)
            .await;
            if let Err(e) = stored {
                // A unique violation: another writer stored this key first. Rerunning replays it.
                return self.abandon(mark, e).await;
            }
        }
        sqlx::query("RELEASE SAVEPOINT command")
            .execute(&mut *self.conn)
            .await?;
        Ok(Step::Done(Ok(Outcome {
            result,
            replayed: false,
        })))
    }

    async fn rollback_command(&mut self, mark: Mark) -> Result<(), BatchFailure> {
        sqlx::query("ROLLBACK TO SAVEPOINT command")
            .execute(&mut *self.conn)
            .await?;
        sqlx::query("RELEASE SAVEPOINT command")
            .execute(&mut *self.conn)
            .await?;
        self.state.undo(mark);
        Ok(())
    }

    /// Rolls the command back after a failed statement: put back when the failure was
    /// contention with another writer, answered with a store error otherwise.
    async fn abandon(&mut self, mark: Mark, e: sqlx::Error) -> Result<Step, BatchFailure> {
        self.rollback_command(mark).await?;
        Ok(if is_contention(&e) {
            Step::Defer
        } else {
            Step::Done(Err(e.into()))
        })
    }

    /// The end of the batch: under the chain lock, check the business date, apply the hot
    /// balances, give the new entries their places in the chain, move the head, commit.
    /// Returns when (since the batch started) the chain lock was held and the commit done.
    async fn finish(
        &mut self,
        started: std::time::Instant,
    ) -> Result<(Duration, Duration), BatchFailure> {
        let mut locked = started.elapsed();
        let mut hot: Vec<(i64, i64)> = self
            .state
            .deltas
            .iter()
            .filter(|(_, d)| **d != 0)
            .map(|(id, d)| (*id, *d))
            .collect();
        hot.sort_unstable();
        if !self.state.entries.is_empty() || !hot.is_empty() || !self.state.policies.is_empty() {
            let head = sqlx::query(
                "SELECT seq, hash, business_date FROM chain_head WHERE id = 1 FOR UPDATE",
            )
            .fetch_one(&mut *self.conn)
            .await?;
            locked = started.elapsed();
            let mut seq: i64 = head.try_get(0)?;
            let mut prev = hash32(head.try_get(1)?)?;
            let mut head_date = head
                .try_get::<Option<String>, _>(2)?
                .map(|d| date(&d))
                .transpose()?;
            if let (Some(first), Some(d)) = (self.state.entries.first(), head_date) {
                if first.header.business_date < d {
                    return Err(BatchFailure {
                        error: StoreError(format!(
                            "another writer posted business date {d} meanwhile"
                        )),
                        retry: true,
                    });
                }
            }
            if !hot.is_empty() {
                let (ids, deltas): (Vec<i64>, Vec<i64>) = hot.into_iter().unzip();
                sqlx::query(
                    "UPDATE accounts AS a SET balance = a.balance + d.delta
                     FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS d(id, delta) WHERE a.id = d.id",
                )
                .persistent(false)
                .bind(ids)
                .bind(deltas)
                .execute(&mut *self.conn)
                .await?;
            }
            if !self.state.entries.is_empty() {
                let n = self.state.entries.len();
                let (mut ids, mut seqs, mut prevs, mut hashes) = (
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                    Vec::with_capacity(n),
                );
                for e in &self.state.entries {
                    seq += 1;
                    let identities: Vec<&AccountSpec> = e.identities.iter().collect();
                    let hash = entry_hash_v2(&prev, seq, &e.header, &e.postings, &identities);
                    ids.push(e.id);
                    seqs.push(seq);
                    prevs.push(hex::encode(prev));
                    hashes.push(hex::encode(hash));
                    prev = hash;
                    head_date = Some(e.header.business_date);
                }
                sqlx::query(
                    "UPDATE entries AS e SET seq = u.seq, prev_hash = u.prev_hash, hash = u.hash
                     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[])
                          AS u(id, seq, prev_hash, hash)
                     WHERE e.id = u.id",
                )
                .persistent(false)
                .bind(ids)
                .bind(seqs)
                .bind(prevs)
                .bind(hashes)
                .execute(&mut *self.conn)
                .await?;
                sqlx::query(
                    "UPDATE chain_head SET seq = $1, hash = $2, business_date = $3 WHERE id = 1",
                )
                .bind(seq)
                .bind(hex::encode(prev))
                .bind(head_date.map(|d| d.to_string()))
                .execute(&mut *self.conn)
                .await?;
            }
            if !self.state.policies.is_empty() {
                let mut q = QueryBuilder::<Postgres>::new(
                    "INSERT INTO policy_applications (policy_id, version, hash, first_applied_at) ",
                );
                q.push_values(&self.state.policies, |mut b, (id, version, hash, at)| {
                    b.push_bind(id)
                        .push_bind(*version)
                        .push_bind(hash)
                        .push_bind(at);
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *self.conn).await?;
            }
        }
        crash_point("before_commit");
        if let Err(e) = sqlx::query("COMMIT").execute(&mut *self.conn).await {
            // Whether a COMMIT that failed took effect is unknown unless the server said it
            // rolled back; only then is running the batch again safe.
            let retry = certainly_aborted(&e);
            return Err(BatchFailure {
                error: e.into(),
                retry,
            });
        }
        Ok((locked, started.elapsed()))
    }
}

/// The transaction a command runs in: the batch's connection inside the command's savepoint.
struct PgTx<'a> {
    conn: &'a mut PgConnection,
    state: &'a mut BatchState,
    cache: &'a RwLock<HashMap<AccountKey, AccountMeta>>,
    now: String,
    /// Whether this command may wait for locks (it is the first of its batch).
    wait: bool,
    /// Set when a statement failed because of another writer: the command is put back.
    contended: bool,
}

/// Awaits a query on the command's connection, noting contention before the error becomes an
/// `OpError` (whose text alone could no longer tell).
macro_rules! db {
    ($tx:ident, $query:expr) => {{
        let result = $query.await;
        match result {
            Ok(value) => value,
            Err(e) => return Err($tx.fail(e)),
        }
    }};
}

impl PgTx<'_> {
    fn fail(&mut self, e: sqlx::Error) -> OpError {
        if is_contention(&e) {
            self.contended = true;
        }
        OpError::Store(e.into())
    }

    /// The row-lock clause for rows this command reads to decide and then changes.
    fn lock(&self) -> &'static str {
        if self.wait {
            "FOR NO KEY UPDATE"
        } else {
            "FOR NO KEY UPDATE NOWAIT"
        }
    }

    /// A transaction-level advisory lock on `(class, id)`, waiting or not as [`Self::lock`].
    async fn advisory(&mut self, class: i32, id: i64, shared: bool) -> OpResult<()> {
        // Ids beyond i32 fold onto others: that only ever adds waiting, never removes it.
        let key = (id & 0x7fff_ffff) as i32;
        let suffix = if shared { "_shared" } else { "" };
        if self.wait {
            let sql = format!("SELECT pg_advisory_xact_lock{suffix}($1, $2)::TEXT");
            db!(
                self,
                sqlx::query(&sql)
                    .bind(class)
                    .bind(key)
                    .execute(&mut *self.conn)
            );
        } else {
            let sql = format!("SELECT pg_try_advisory_xact_lock{suffix}($1, $2)");
            let got: bool = db!(
                self,
                sqlx::query_scalar(&sql)
                    .bind(class)
                    .bind(key)
                    .fetch_one(&mut *self.conn)
            );
            if !got {
                self.contended = true;
                return Err(StoreError("locked by another writer".into()).into());
            }
        }
        Ok(())
    }

    async fn resolve(&mut self, spec: &AccountSpec, create: bool) -> OpResult<Option<AccountMeta>> {
        let key = key_of(spec);
        if let Some(meta) = self.state.new_accounts.get(&key) {
            return Ok(Some(*meta));
        }
        if let Some(meta) = self.cache.read().ok().and_then(|c| c.get(&key).copied()) {
            return Ok(Some(meta));
        }
        if let Some(meta) = self.committed_account(spec, &key).await? {
            return Ok(Some(meta));
        }
        if !create {
            return Ok(None);
        }
        let id: Option<i64> = db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO accounts (owner_kind, owner_id, name, type, bounded) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (owner_kind, owner_id, name) DO NOTHING RETURNING id",
            )
            .bind(key.0)
            .bind(key.1)
            .bind(&key.2)
            .bind(spec.kind.as_str())
            .bind(spec.bounded)
            .fetch_optional(&mut *self.conn)
        );
        match id {
            Some(id) => {
                let meta = AccountMeta {
                    id: AccountId(id),
                    sign: spec.kind.normal_sign(),
                    bounded: spec.bounded,
                };
                self.state.new_accounts.insert(key.clone(), meta);
                self.state.account_log.push(key);
                Ok(Some(meta))
            }
            // Another writer committed it meanwhile.
            None => self.committed_account(spec, &key).await,
        }
    }

    /// An account committed by any writer (this batch's own are in `state.new_accounts`).
    async fn committed_account(
        &mut self,
        spec: &AccountSpec,
        key: &AccountKey,
    ) -> OpResult<Option<AccountMeta>> {
        let found = db!(
            self,
            sqlx::query(
                "SELECT id, type, bounded FROM accounts WHERE owner_kind = $1 AND owner_id = $2 AND name = $3",
            )
            .bind(key.0)
            .bind(key.1)
            .bind(&key.2)
            .fetch_optional(&mut *self.conn)
        );
        let Some(r) = found else {
            return Ok(None);
        };
        let kind: String = r.try_get(1)?;
        let kind =
            AccountType::parse(&kind).ok_or_else(|| StoreError(format!("bad type {kind}")))?;
        if kind != spec.kind || r.try_get::<bool, _>(2)? != spec.bounded {
            return Err(StoreError(format!(
                "account {}:{}:{} has another type",
                key.0, key.1, key.2
            ))
            .into());
        }
        let meta = AccountMeta {
            id: AccountId(r.try_get(0)?),
            sign: kind.normal_sign(),
            bounded: spec.bounded,
        };
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(key.clone(), meta);
        }
        Ok(Some(meta))
    }

    /// Locks one row of `table` by id, as [`Self::lock`]; false when there is none.
    async fn lock_row(&mut self, table: &str, id: i64) -> OpResult<bool> {
        let sql = format!("SELECT id FROM {table} WHERE id = $1 {}", self.lock());
        let found: Option<i64> = db!(
            self,
            sqlx::query_scalar(&sql)
                .bind(id)
                .fetch_optional(&mut *self.conn)
        );
        Ok(found.is_some())
    }

    async fn household_where(&mut self, code: &str) -> OpResult<Option<HouseholdRef>> {
        if !storable(code) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {} WHERE h.code = $1",
            rows::household_ref_columns(None)
        );
        let row: Option<rows::HouseholdRefRow> = db!(
            self,
            sqlx::query_as(&sql)
                .bind(code)
                .fetch_optional(&mut *self.conn)
        );
        Ok(row.map(rows::household_ref))
    }

    /// A voucher, its row locked: its status is what this command then changes or relies on.
    async fn voucher_where(&mut self, column: &str, value: i64) -> OpResult<Option<VoucherRecord>> {
        let sql = format!(
            "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers
             WHERE {column} = $1 {}",
            self.lock()
        );
        let row = db!(
            self,
            sqlx::query(&sql)
                .bind(value)
                .fetch_optional(&mut *self.conn)
        );
        row.map(|r| voucher_record(&r)).transpose()
    }
}

fn voucher_record(r: &PgRow) -> OpResult<VoucherRecord> {
    use sqlx::FromRow;
    Ok(rows::voucher_record(rows::VoucherTableRow::from_row(r)?)?)
}

fn amount(r: &PgRow, i: usize) -> OpResult<Amount> {
    Ok(Amount::from_fen(r.try_get(i)?))
}

impl PgTx<'_> {
    /// Posts an entry: inserted now with its id, given its place in the chain at the end of
    /// the batch.
    async fn post_entry(&mut self, entry: EntryDraft, field: &str) -> OpResult<Posted> {
        let EntryDraft { header, postings } = entry;
        let identities: Vec<AccountSpec> = postings.iter().map(|(spec, _)| spec.clone()).collect();
        let mut resolved = Vec::with_capacity(postings.len());
        for (spec, fen) in &postings {
            let meta = self
                .resolve(spec, true)
                .await?
                .ok_or_else(|| StoreError("account not created".into()))?;
            resolved.push((meta, *fen));
        }
        let mut bounded_ids: Vec<i64> = resolved
            .iter()
            .filter(|(m, _)| m.bounded)
            .map(|(m, _)| m.id.0)
            .collect();
        bounded_ids.sort_unstable();
        bounded_ids.dedup();
        let mut hot_ids: Vec<i64> = resolved
            .iter()
            .filter(|(m, _)| !m.bounded)
            .map(|(m, _)| m.id.0)
            .collect();
        hot_ids.sort_unstable();
        hot_ids.dedup();
        // Bounded balances under their row locks, taken in ascending id order.
        let mut balances: HashMap<i64, i64> = HashMap::new();
        if !bounded_ids.is_empty() {
            let sql = format!(
                "SELECT id, balance FROM accounts WHERE id = ANY($1) ORDER BY id {}",
                self.lock()
            );
            for r in db!(
                self,
                sqlx::query(&sql)
                    .bind(&bounded_ids)
                    .fetch_all(&mut *self.conn)
            ) {
                balances.insert(r.try_get(0)?, r.try_get(1)?);
            }
        }
        // Hot balances as committed plus this batch's changes, only to refuse an overflow.
        if !hot_ids.is_empty() {
            for r in db!(
                self,
                sqlx::query("SELECT id, balance FROM accounts WHERE id = ANY($1)")
                    .bind(&hot_ids)
                    .fetch_all(&mut *self.conn)
            ) {
                let id: i64 = r.try_get(0)?;
                let fen: i64 = r.try_get(1)?;
                let pending = self.state.deltas.get(&id).copied().unwrap_or(0);
                balances.insert(id, fen.saturating_add(pending));
            }
        }
        let mut hot_changes = Vec::new();
        for (meta, fen) in &resolved {
            let delta = fen
                .checked_mul(meta.sign)
                .ok_or_else(|| Rejection::bad_amount(field, "is too large"))?;
            let balance = balances
                .get(&meta.id.0)
                .copied()
                .ok_or_else(|| StoreError(format!("account {} vanished", meta.id.0)))?;
            if meta.bounded && delta < 0 && balance + delta < 0 {
                return Err(Rejection::InsufficientFunds {
                    field: field.into(),
                    available: Amount::from_fen(balance),
                }
                .into());
            }
            let after = balance
                .checked_add(delta)
                .ok_or_else(|| Rejection::bad_amount(field, "is too large"))?;
            balances.insert(meta.id.0, after);
            if !meta.bounded {
                hot_changes.push((meta.id.0, delta));
            }
        }
        if !bounded_ids.is_empty() {
            let after: Vec<i64> = bounded_ids.iter().map(|id| balances[id]).collect();
            db!(
                self,
                sqlx::query(
                    "UPDATE accounts AS a SET balance = u.balance
                     FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS u(id, balance) WHERE a.id = u.id",
                )
                .bind(&bounded_ids)
                .bind(after)
                .execute(&mut *self.conn)
            );
        }
        for (id, delta) in hot_changes {
            *self.state.deltas.entry(id).or_default() += delta;
            self.state.delta_log.push((id, delta));
        }
        let ids: Vec<(AccountId, i64)> = resolved.iter().map(|(m, fen)| (m.id, *fen)).collect();
        let (policy, policy_hash) = match &header.policy {
            Some((p, h)) => (Some(p.as_str()), Some(h.as_str())),
            None => (None, None),
        };
        let id: i64 = db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO entries (kind, business_date, created_at, actor_token_id, policy, policy_hash,
                                      idempotency_key, memo, reverses, hash_version, facts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(header.kind.as_str())
            .bind(header.business_date.to_string())
            .bind(canonical_time(&header.created_at))
            .bind(header.actor)
            .bind(policy)
            .bind(policy_hash)
            .bind(&header.idempotency_key)
            .bind(&header.memo)
            .bind(header.reverses)
            .bind(HASH_VERSION)
            .bind(&header.facts)
            .fetch_one(&mut *self.conn)
        );
        let accounts: Vec<i64> = ids.iter().map(|(a, _)| a.0).collect();
        let amounts: Vec<i64> = ids.iter().map(|(_, fen)| *fen).collect();
        db!(
            self,
            sqlx::query(
                "INSERT INTO postings (entry_id, idx, account_id, amount)
                 SELECT $1, u.i - 1, u.account, u.amount
                 FROM UNNEST($2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY AS u(account, amount, i)",
            )
            .bind(id)
            .bind(accounts)
            .bind(amounts)
            .execute(&mut *self.conn)
        );
        if let (Some(name), Some(hash)) = (policy, policy_hash) {
            self.state.applied(name, hash, &self.now)?;
        }
        let business_date = header.business_date;
        self.state.entries.push(PendingEntry {
            id,
            header,
            postings: ids,
            identities,
        });
        self.state.last_date = Some(business_date);
        // The hash is known only when the batch takes its place in the chain, at commit.
        Ok(Posted {
            id,
            hash: String::new(),
            business_date,
        })
    }
}

impl Tx for PgTx<'_> {
    async fn cooperative(&mut self, code: &str) -> OpResult<Option<CoopRef>> {
        if !storable(code) {
            return Ok(None);
        }
        let row = db!(
            self,
            sqlx::query("SELECT id, code FROM cooperatives WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *self.conn)
        );
        Ok(match row {
            Some(r) => Some(CoopRef {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
            }),
            None => None,
        })
    }

    async fn shop(&mut self, code: &str) -> OpResult<Option<ShopRef>> {
        if !storable(code) {
            return Ok(None);
        }
        let row = db!(
            self,
            sqlx::query(
                "SELECT s.id, s.code, c.id, c.code FROM shops s JOIN cooperatives c ON c.id = s.cooperative_id WHERE s.code = $1",
            )
            .bind(code)
            .fetch_optional(&mut *self.conn)
        );
        Ok(match row {
            Some(r) => Some(ShopRef {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
                coop: CoopRef {
                    id: r.try_get(2)?,
                    code: r.try_get(3)?,
                },
            }),
            None => None,
        })
    }

    async fn company(&mut self, code: &str) -> OpResult<Option<i64>> {
        if !storable(code) {
            return Ok(None);
        }
        Ok(db!(
            self,
            sqlx::query_scalar("SELECT id FROM companies WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *self.conn)
        ))
    }

    async fn compound(&mut self, code: &str) -> OpResult<Option<(i64, i64)>> {
        if !storable(code) {
            return Ok(None);
        }
        let row = db!(
            self,
            sqlx::query("SELECT id, company_id FROM compounds WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *self.conn)
        );
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn household(&mut self, code: &str) -> OpResult<Option<HouseholdRef>> {
        self.household_where(code).await
    }

    async fn catalog_sku_by_barcode(
        &mut self,
        coop: i64,
        barcode: &str,
    ) -> OpResult<Option<String>> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "SELECT sku FROM catalog_items WHERE cooperative_id = $1 AND barcode = $2",
            )
            .bind(coop)
            .bind(barcode)
            .fetch_optional(&mut *self.conn)
        ))
    }

    async fn catalog_item(&mut self, coop: i64, sku: &str) -> OpResult<Option<CatalogItem>> {
        if !storable(sku) {
            return Ok(None);
        }
        let row = db!(
            self,
            sqlx::query(
                "SELECT id, sku, name, unit, price, cost, barcode FROM catalog_items WHERE cooperative_id = $1 AND sku = $2",
            )
            .bind(coop)
            .bind(sku)
            .fetch_optional(&mut *self.conn)
        );
        Ok(match row {
            Some(r) => Some(CatalogItem {
                id: r.try_get(0)?,
                sku: r.try_get(1)?,
                name: r.try_get(2)?,
                unit: r.try_get(3)?,
                price: amount(&r, 4)?,
                cost: amount(&r, 5)?,
                barcode: r.try_get(6)?,
            }),
            None => None,
        })
    }

    async fn insert_cooperative(&mut self, c: &NewCooperative) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO cooperatives (code, name, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(&c.code)
            .bind(&c.name)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn insert_shop(&mut self, s: &NewShop, coop: i64) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO shops (code, name, cooperative_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(&s.code)
            .bind(&s.name)
            .bind(coop)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn insert_company(&mut self, c: &NewCompany) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO companies (code, name, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(&c.code)
            .bind(&c.name)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn insert_compound(&mut self, c: &NewCompound, company: i64) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO compounds (code, name, company_id, eligible, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&c.code)
            .bind(&c.name)
            .bind(company)
            .bind(c.eligible)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn insert_household(
        &mut self,
        h: &NewHousehold,
        compound: i64,
        area_dm2: i64,
    ) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO households (code, compound_id, area_dm2, name, building, grid, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&h.code)
            .bind(compound)
            .bind(area_dm2)
            .bind(&h.name)
            .bind(&h.building)
            .bind(&h.grid)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn upsert_catalog_item(&mut self, coop: i64, item: &CatalogItemInput) -> OpResult<bool> {
        let existed = self.catalog_item(coop, &item.sku).await?.is_some();
        db!(
            self,
            sqlx::query(
                "INSERT INTO catalog_items (cooperative_id, sku, name, unit, price, cost, updated_at, barcode)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (cooperative_id, sku) DO UPDATE SET
                   name = excluded.name, unit = excluded.unit, price = excluded.price,
                   cost = excluded.cost, updated_at = excluded.updated_at, barcode = excluded.barcode",
            )
            .bind(coop)
            .bind(&item.sku)
            .bind(&item.name)
            .bind(&item.unit)
            .bind(item.price.fen())
            .bind(item.cost.fen())
            .bind(&self.now)
            .bind(&item.barcode)
            .execute(&mut *self.conn)
        );
        Ok(!existed)
    }

    async fn insert_token(&mut self, t: &NewToken, scope: &TokenScopeIds) -> OpResult<i64> {
        Ok(db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO tokens (hash, role, cooperative_id, shop_id, company_id, household_id, label, created_at, expires_at, parent_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(&t.hash)
            .bind(t.role.as_str())
            .bind(scope.cooperative)
            .bind(scope.shop)
            .bind(scope.company)
            .bind(scope.household)
            .bind(&t.label)
            .bind(&self.now)
            .bind(t.expires_at.as_ref().map(canonical_time))
            .bind(t.parent)
            .fetch_one(&mut *self.conn)
        ))
    }

    async fn revoke_token(&mut self, id: i64) -> OpResult<bool> {
        let done = db!(
            self,
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(&self.now)
                .bind(id)
                .execute(&mut *self.conn)
        );
        // Every session made from it, and every session made from those, ends with it.
        db!(
            self,
            sqlx::query(
                "WITH RECURSIVE below(id) AS (
                     SELECT id FROM tokens WHERE parent_id = $2
                     UNION SELECT t.id FROM tokens t JOIN below b ON t.parent_id = b.id
                 )
                 UPDATE tokens SET revoked_at = $1
                 WHERE id IN (SELECT id FROM below) AND revoked_at IS NULL"
            )
            .bind(&self.now)
            .bind(id)
            .execute(&mut *self.conn)
        );
        // Every process's token cache forgets its tokens when this commits.
        db!(
            self,
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(TOKENS_CHANNEL)
                .execute(&mut *self.conn)
        );
        Ok(done.rows_affected() == 1)
    }

    async fn set_pin(&mut self, household: i64, pin_hash: Option<&str>) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "UPDATE households SET pin_hash = $1, pin_failures = 0, pin_locked_until = NULL
                 WHERE id = $2"
            )
            .bind(pin_hash)
            .bind(household)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn pin_failures(
        &mut self,
        household: i64,
    ) -> OpResult<(i64, Option<chrono::DateTime<Utc>>)> {
        let (failures, until): (i64, Option<String>) = db!(
            self,
            sqlx::query_as("SELECT pin_failures, pin_locked_until FROM households WHERE id = $1")
                .bind(household)
                .fetch_one(&mut *self.conn)
        );
        Ok((failures, rows::time_opt(until)?))
    }

    async fn set_pin_failures(
        &mut self,
        household: i64,
        failures: i64,
        locked_until: Option<chrono::DateTime<Utc>>,
    ) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "UPDATE households SET pin_failures = $1, pin_locked_until = $2 WHERE id = $3"
            )
            .bind(failures)
            .bind(locked_until.as_ref().map(canonical_time))
            .bind(household)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn set_compound_takeover(
        &mut self,
        compound: i64,
        taken_over_on: Option<NaiveDate>,
    ) -> OpResult<()> {
        db!(
            self,
            sqlx::query("UPDATE compounds SET taken_over_on = $1 WHERE id = $2")
                .bind(taken_over_on.map(|d| d.to_string()))
                .bind(compound)
                .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn household_wallet_coops(&mut self, household: i64) -> OpResult<Vec<String>> {
        let names: Vec<String> = db!(
            self,
            sqlx::query_scalar(
                "SELECT name FROM accounts WHERE owner_kind = 'household' AND owner_id = $1
                   AND name LIKE 'wallet:%:paid'",
            )
            .bind(household)
            .fetch_all(&mut *self.conn)
        );
        Ok(super::wallet_coops(&names))
    }

    async fn replace_occupant(
        &mut self,
        household: i64,
        name: Option<&str>,
    ) -> OpResult<Option<String>> {
        let before: Option<String> = db!(
            self,
            sqlx::query_scalar("SELECT name FROM households WHERE id = $1")
                .bind(household)
                .fetch_one(&mut *self.conn)
        );
        db!(
            self,
            sqlx::query("UPDATE households SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(household)
                .execute(&mut *self.conn)
        );
        Ok(before)
    }

    async fn master_subject(
        &mut self,
        subject: Subject,
        code: &str,
    ) -> OpResult<Option<SubjectRow>> {
        let sql = match subject {
            Subject::Compound => "SELECT c.id, c.name, c.eligible, c.company_id, k.code, NULL::BIGINT
                 FROM compounds c JOIN companies k ON k.id = c.company_id WHERE c.code = $1"
                .to_string(),
            Subject::Household => "SELECT id, name, NULL::BOOLEAN, NULL::BIGINT, NULL::TEXT, area_dm2
                 FROM households WHERE code = $1"
                .to_string(),
            _ => format!(
                "SELECT id, name, NULL::BOOLEAN, NULL::BIGINT, NULL::TEXT, NULL::BIGINT FROM {} WHERE code = $1",
                subject.table()
            ),
        };
        type Row = (
            i64,
            Option<String>,
            Option<bool>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = db!(
            self,
            sqlx::query_as(&sql)
                .bind(code)
                .fetch_optional(&mut *self.conn)
        );
        Ok(row.map(
            |(id, name, eligible, company, company_code, area_dm2)| SubjectRow {
                id,
                name,
                eligible,
                company,
                company_code,
                area_dm2,
            },
        ))
    }

    async fn master_change_bounds(&mut self, field: &str, id: i64) -> OpResult<ChangeBounds> {
        let last_effective: Option<String> = db!(
            self,
            sqlx::query_scalar(
                "SELECT MAX(effective_from) FROM master_changes WHERE field = $1 AND subject_id = $2",
            )
            .bind(field)
            .bind(id)
            .fetch_one(&mut *self.conn)
        );
        let billed = match field {
            "area" => Some("SELECT MAX(month) FROM fee_bills WHERE household_id = $1"),
            "company" => Some(
                "SELECT MAX(b.month) FROM fee_bills b JOIN households h ON h.id = b.household_id
                 WHERE h.compound_id = $1",
            ),
            _ => None,
        };
        let last_billed: Option<String> = match billed {
            Some(sql) => db!(
                self,
                sqlx::query_scalar(sql).bind(id).fetch_one(&mut *self.conn)
            ),
            None => None,
        };
        let last_closed: Option<String> = db!(
            self,
            sqlx::query_scalar("SELECT MAX(month) FROM month_closes").fetch_one(&mut *self.conn)
        );
        Ok(ChangeBounds {
            last_effective: last_effective.as_deref().map(rows::date).transpose()?,
            last_billed,
            last_closed,
        })
    }

    async fn insert_master_change(&mut self, entry: i64, change: &StoredChange) -> OpResult<i64> {
        let id: i64 = db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO master_changes (entry_id, subject, subject_id, field, old_value, new_value, effective_from)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(entry)
            .bind(change.subject.as_str())
            .bind(change.subject_id)
            .bind(change.field)
            .bind(&change.old)
            .bind(&change.new)
            .bind(change.effective_from.to_string())
            .fetch_one(&mut *self.conn)
        );
        let update = match change.field {
            "name" => format!(
                "UPDATE {} SET name = $1 WHERE id = $2",
                change.subject.table()
            ),
            "eligible" => "UPDATE compounds SET eligible = ($1 = 'true') WHERE id = $2".to_string(),
            "company" => {
                "UPDATE compounds SET company_id = CAST($1 AS BIGINT) WHERE id = $2".to_string()
            }
            "area" => {
                "UPDATE households SET area_dm2 = CAST($1 AS BIGINT) WHERE id = $2".to_string()
            }
            other => return Err(StoreError(format!("no master field {other}")).into()),
        };
        db!(
            self,
            sqlx::query(&update)
                .bind(&change.new)
                .bind(change.subject_id)
                .execute(&mut *self.conn)
        );
        Ok(id)
    }

    async fn rotate_link(&mut self, household: i64) -> OpResult<i64> {
        let version = db!(
            self,
            sqlx::query_scalar(
                "UPDATE households SET link_version = link_version + 1 WHERE id = $1 RETURNING link_version",
            )
            .bind(household)
            .fetch_one(&mut *self.conn)
        );
        // A new card ends the sessions the household's residents signed in to.
        db!(
            self,
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1
                 WHERE household_id = $2 AND role = 'resident' AND expires_at IS NOT NULL
                   AND revoked_at IS NULL"
            )
            .bind(&self.now)
            .bind(household)
            .execute(&mut *self.conn)
        );
        db!(
            self,
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(TOKENS_CHANNEL)
                .execute(&mut *self.conn)
        );
        Ok(version)
    }

    async fn prune_sessions(&mut self, before: chrono::DateTime<Utc>, limit: u32) -> OpResult<u64> {
        let done = db!(
            self,
            sqlx::query(
                "DELETE FROM tokens WHERE id IN (
                 SELECT t.id FROM tokens t
                 WHERE t.expires_at IS NOT NULL AND t.expires_at < $1
                   AND (t.role = 'resident' OR t.label = $2)
                   AND NOT EXISTS (SELECT 1 FROM tokens c WHERE c.parent_id = t.id)
                 LIMIT $3)"
            )
            .bind(canonical_time(&before))
            .bind(crate::web::session::PAIRING_LABEL)
            .bind(i64::from(limit))
            .execute(&mut *self.conn)
        );
        Ok(done.rows_affected())
    }

    async fn prune_idempotency(&mut self, before: chrono::DateTime<Utc>) -> OpResult<u64> {
        let done = db!(
            self,
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                .bind(canonical_time(&before))
                .execute(&mut *self.conn)
        );
        Ok(done.rows_affected())
    }

    async fn balance(&mut self, account: &AccountSpec) -> OpResult<Amount> {
        let Some(meta) = self.resolve(account, false).await? else {
            return Ok(Amount::ZERO);
        };
        if meta.bounded {
            let sql = format!("SELECT balance FROM accounts WHERE id = $1 {}", self.lock());
            let fen: i64 = db!(
                self,
                sqlx::query_scalar(&sql)
                    .bind(meta.id.0)
                    .fetch_one(&mut *self.conn)
            );
            return Ok(Amount::from_fen(fen));
        }
        // A decision on an unbounded balance serializes with other such decisions, not with
        // the postings that move it.
        self.advisory(LOCK_ACCOUNT, meta.id.0, false).await?;
        let fen: i64 = db!(
            self,
            sqlx::query_scalar("SELECT balance FROM accounts WHERE id = $1")
                .bind(meta.id.0)
                .fetch_one(&mut *self.conn)
        );
        let pending = self.state.deltas.get(&meta.id.0).copied().unwrap_or(0);
        let total = fen
            .checked_add(pending)
            .ok_or_else(|| StoreError("balance overflow".into()))?;
        Ok(Amount::from_fen(total))
    }

    async fn post(&mut self, entry: EntryDraft, field: &str) -> OpResult<Posted> {
        self.post_entry(entry, field).await
    }

    async fn entry_postings(
        &mut self,
        entry: i64,
    ) -> OpResult<Option<(EntryKind, Vec<(AccountSpec, i64)>)>> {
        let kind: Option<String> = db!(
            self,
            sqlx::query_scalar("SELECT kind FROM entries WHERE id = $1")
                .bind(entry)
                .fetch_optional(&mut *self.conn)
        );
        let Some(kind) = kind else {
            return Ok(None);
        };
        let kind = EntryKind::parse(&kind).ok_or_else(|| StoreError(format!("bad kind {kind}")))?;
        let rows = db!(
            self,
            sqlx::query(
                "SELECT a.owner_kind, a.owner_id, a.name, a.type, a.bounded, p.amount
                 FROM postings p JOIN accounts a ON a.id = p.account_id WHERE p.entry_id = $1 ORDER BY p.idx",
            )
            .bind(entry)
            .fetch_all(&mut *self.conn)
        );
        let mut postings = Vec::with_capacity(rows.len());
        for r in rows {
            let owner_kind: String = r.try_get(0)?;
            let kind: String = r.try_get(3)?;
            postings.push((
                AccountSpec {
                    owner: Owner::from_parts(&owner_kind, r.try_get(1)?)
                        .ok_or_else(|| StoreError(format!("bad owner {owner_kind}")))?,
                    name: r.try_get(2)?,
                    kind: AccountType::parse(&kind)
                        .ok_or_else(|| StoreError(format!("bad type {kind}")))?,
                    bounded: r.try_get(4)?,
                },
                r.try_get(5)?,
            ));
        }
        Ok(Some((kind, postings)))
    }

    async fn is_reversed(&mut self, entry: i64) -> OpResult<bool> {
        // Locking the entry makes two reversals of it take turns.
        self.lock_row("entries", entry).await?;
        let n: i64 = db!(
            self,
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM entries WHERE reverses = $1 AND kind = 'reversal'",
            )
            .bind(entry)
            .fetch_one(&mut *self.conn)
        );
        Ok(n > 0)
    }

    async fn topup(&mut self, entry: i64) -> OpResult<Option<crate::domain::TopupOnFile>> {
        // The row lock makes two voids of one top-up (from two processes) take turns.
        let sql = format!("{}$1 {} OF t", rows::TOPUP_ON_FILE, self.lock());
        let row: Option<rows::TopupOnFileRow> = db!(
            self,
            sqlx::query_as(&sql)
                .bind(entry)
                .fetch_optional(&mut *self.conn)
        );
        Ok(row.map(rows::topup_on_file).transpose()?)
    }

    async fn first_debit_after(
        &mut self,
        accounts: &[AccountSpec],
        after: i64,
    ) -> OpResult<Option<i64>> {
        let mut first: Option<i64> = None;
        for a in accounts {
            let found: Option<i64> = db!(
                self,
                sqlx::query_scalar(
                    "SELECT MIN(p.entry_id) FROM postings p JOIN accounts a ON a.id = p.account_id
                     WHERE a.owner_kind = $1 AND a.owner_id = $2 AND a.name = $3
                       AND p.entry_id > $4 AND p.amount > 0",
                )
                .bind(a.owner.kind())
                .bind(a.owner.id())
                .bind(&a.name)
                .bind(after)
                .fetch_one(&mut *self.conn)
            );
            first = match (first, found) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        Ok(first)
    }

    async fn mark_topup_voided(&mut self, topup: i64, void_entry: i64) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "UPDATE topups SET void_entry_id = $1 WHERE entry_id = $2 AND void_entry_id IS NULL"
            )
            .bind(void_entry)
            .bind(topup)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn voucher_by_id(&mut self, id: i64) -> OpResult<Option<VoucherRecord>> {
        self.voucher_where("id", id).await
    }

    async fn voucher(&mut self, serial: u64) -> OpResult<Option<VoucherRecord>> {
        self.voucher_where("serial", serial as i64).await
    }

    async fn set_voucher_status(&mut self, id: i64, status: VoucherStatus) -> OpResult<()> {
        db!(
            self,
            sqlx::query("UPDATE vouchers SET status = $1 WHERE id = $2")
                .bind(status.as_str())
                .bind(id)
                .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn vouchers_expiring_before(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>> {
        let sql = format!(
            "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers
             WHERE status = 'active' AND expires_on < $1 ORDER BY expires_on, id LIMIT $2 {}",
            self.lock()
        );
        let rows = db!(
            self,
            sqlx::query(&sql)
                .bind(date.to_string())
                .bind(i64::from(limit))
                .fetch_all(&mut *self.conn)
        );
        rows.iter().map(voucher_record).collect()
    }

    async fn vouchers_for_breakage(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>> {
        let sql = format!(
            "SELECT v.id, v.serial, v.cooperative_id, v.household_id, v.issued_on, v.expires_on, v.status FROM vouchers v
             WHERE v.status = 'expired' AND v.expires_on < $1
               AND EXISTS (SELECT 1 FROM accounts a WHERE a.owner_kind = 'voucher' AND a.owner_id = v.id AND a.balance > 0)
             ORDER BY v.expires_on, v.id LIMIT $2 {}",
            self.lock()
        );
        let rows = db!(
            self,
            sqlx::query(&sql)
                .bind(date.to_string())
                .bind(i64::from(limit))
                .fetch_all(&mut *self.conn)
        );
        rows.iter().map(voucher_record).collect()
    }

    async fn voucher_breakage(&mut self, voucher: i64) -> OpResult<(Amount, Amount)> {
        let sql = super::VOUCHER_BREAKAGE_SQL.replace('?', "$1");
        let (paid, bonus): (i64, i64) = db!(
            self,
            sqlx::query_as(&sql)
                .bind(voucher)
                .fetch_one(&mut *self.conn)
        );
        Ok((Amount::from_fen(paid), Amount::from_fen(bonus)))
    }

    async fn insert_voucher(
        &mut self,
        v: &crate::domain::NewVoucher,
        exchanged_from: Option<i64>,
    ) -> OpResult<i64> {
        let id: i64 = db!(
            self,
            sqlx::query_scalar(
                "INSERT INTO vouchers (serial, key_id, cooperative_id, household_id, issued_on, expires_on, status, exchanged_from)
                 VALUES ($1, $2, $3, $4, $5, $6, 'active', $7) RETURNING id",
            )
            .bind(v.serial as i64)
            .bind(i64::from(v.key_id))
            .bind(v.coop)
            .bind(v.household)
            .bind(v.issued_on.to_string())
            .bind(v.expires_on.to_string())
            .bind(exchanged_from)
            .fetch_one(&mut *self.conn)
        );
        Ok(id)
    }

    // ---- property fees and month close ----

    async fn households_to_bill(&mut self, company: i64, month: &str) -> OpResult<Vec<BillingRow>> {
        // The compounds with the company in the month billed, each household's area in it
        // (master data changes, migration 0021).
        let day = "($2 || '-01')";
        let sql = format!(
            "SELECT h.id, h.code, c.code, {} FROM households h
             JOIN compounds c ON c.id = h.compound_id
             WHERE {} = $1
               AND NOT EXISTS (SELECT 1 FROM fee_bills b WHERE b.household_id = h.id AND b.month = $2)
             ORDER BY h.id",
            rows::area_on(day),
            rows::company_on(day)
        );
        let rows = db!(
            self,
            sqlx::query(&sql)
                .bind(company)
                .bind(month)
                .fetch_all(&mut *self.conn)
        );
        rows.iter()
            .map(|r| {
                Ok(BillingRow {
                    household: r.try_get(0)?,
                    code: r.try_get(1)?,
                    compound: r.try_get(2)?,
                    area_dm2: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn fee_balances(&mut self, households: &[i64]) -> OpResult<HashMap<i64, Amount>> {
        let rows = db!(
            self,
            sqlx::query(
                "SELECT owner_id, id, balance FROM accounts
                 WHERE owner_kind = 'household' AND name = 'fees' AND owner_id = ANY($1)",
            )
            .bind(households)
            .fetch_all(&mut *self.conn)
        );
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let account: i64 = r.try_get(1)?;
            let fen: i64 = r.try_get(2)?;
            let pending = self.state.deltas.get(&account).copied().unwrap_or(0);
            out.insert(r.try_get::<i64, _>(0)?, Amount::from_fen(fen + pending));
        }
        Ok(out)
    }

    async fn insert_fee_bills(
        &mut self,
        entry: i64,
        company: i64,
        month: &str,
        bills: &[(i64, Amount, Amount)],
    ) -> OpResult<()> {
        for chunk in bills.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO fee_bills (household_id, company_id, month, amount, settled, entry_id) ",
            );
            q.push_values(chunk, |mut b, (household, amount, settled)| {
                b.push_bind(*household)
                    .push_bind(company)
                    .push_bind(month)
                    .push_bind(amount.fen())
                    .push_bind(settled.fen())
                    .push_bind(entry);
            });
            db!(self, q.build().execute(&mut *self.conn));
        }
        Ok(())
    }

    async fn fees_elsewhere(&mut self, company: i64) -> OpResult<HashMap<i64, Amount>> {
        let rows = db!(
            self,
            sqlx::query(&rows::fees_elsewhere_sql("$1", "::BIGINT"))
                .bind(company)
                .fetch_all(&mut *self.conn)
        );
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, Amount::from_fen(r.try_get(1)?))))
            .collect()
    }

    async fn household_company_on(&mut self, household: i64, day: NaiveDate) -> OpResult<i64> {
        let sql = format!(
            "SELECT {} FROM households h JOIN compounds c ON c.id = h.compound_id WHERE h.id = $2",
            rows::company_on("$1")
        );
        let row = db!(
            self,
            sqlx::query(&sql)
                .bind(day.to_string())
                .bind(household)
                .fetch_one(&mut *self.conn)
        );
        Ok(row.try_get(0)?)
    }

    async fn open_bills(&mut self, household: i64, company: i64) -> OpResult<Vec<OpenBill>> {
        // Payments settle these bills: payments of one household take turns.
        self.lock_row("households", household).await?;
        let rows = db!(
            self,
            sqlx::query(
                "SELECT id, month, amount, settled FROM fee_bills
                 WHERE household_id = $1 AND settled < amount AND company_id = $2 ORDER BY month",
            )
            .bind(household)
            .bind(company)
            .fetch_all(&mut *self.conn)
        );
        rows.iter()
            .map(|r| {
                Ok(OpenBill {
                    id: r.try_get(0)?,
                    month: r.try_get(1)?,
                    amount: amount(r, 2)?,
                    settled: amount(r, 3)?,
                })
            })
            .collect()
    }

    async fn settle_bills(&mut self, settled: &[(i64, Amount)]) -> OpResult<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = settled.iter().map(|(id, _)| *id).collect();
        let adds: Vec<i64> = settled.iter().map(|(_, a)| a.fen()).collect();
        db!(
            self,
            sqlx::query(
                "UPDATE fee_bills AS b SET settled = b.settled + u.add
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS u(id, add) WHERE b.id = u.id",
            )
            .bind(ids)
            .bind(adds)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn settle_bills_for(&mut self, credits: &[(i64, i64, Amount)]) -> OpResult<()> {
        if credits.is_empty() {
            return Ok(());
        }
        let households: Vec<i64> = credits.iter().map(|(h, _, _)| *h).collect();
        let companies: Vec<i64> = credits.iter().map(|(_, k, _)| *k).collect();
        let amounts: Vec<i64> = credits.iter().map(|(_, _, a)| a.fen()).collect();
        // Each open bill takes what is left of its household's credit after the older bills:
        // min(open, credit − open bills before it), oldest first.
        db!(
            self,
            sqlx::query(
                "UPDATE fee_bills AS b SET settled = b.settled + t.take
                 FROM (
                    SELECT id, LEAST(open_amount, credit - before)::BIGINT AS take FROM (
                        SELECT b.id, b.amount - b.settled AS open_amount, c.amount AS credit,
                               COALESCE(SUM(b.amount - b.settled) OVER (
                                   PARTITION BY b.household_id ORDER BY b.month
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
                        FROM fee_bills b
                        JOIN UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS c(household_id, amount, company_id)
                          ON c.household_id = b.household_id AND c.company_id = b.company_id
                        WHERE b.settled < b.amount) AS open
                    WHERE credit > before) AS t
                 WHERE b.id = t.id",
            )
            .bind(households)
            .bind(amounts)
            .bind(companies)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn insert_fee_credits(
        &mut self,
        entry: i64,
        kind: &str,
        rows: &[(i64, Amount, Option<String>, Option<String>)],
    ) -> OpResult<()> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut q = QueryBuilder::<Postgres>::new(
                "INSERT INTO fee_credits (entry_id, household_id, kind, amount, method, reference) ",
            );
            q.push_values(chunk, |mut b, (household, amount, method, reference)| {
                b.push_bind(entry)
                    .push_bind(*household)
                    .push_bind(kind)
                    .push_bind(amount.fen())
                    .push_bind(method.clone())
                    .push_bind(reference.clone());
            });
            db!(self, q.build().execute(&mut *self.conn));
        }
        Ok(())
    }

    async fn next_fee_receipt(&mut self, company: i64) -> OpResult<(i64, String)> {
        // Several processes may write: the company's receipt lock, held to the transaction's
        // end, makes reading the last number and using it one step.
        self.advisory(LOCK_RECEIPT, company, false).await?;
        let row = db!(
            self,
            sqlx::query(
                "SELECT c.code, COALESCE((SELECT MAX(number) FROM fee_receipts r
                                          WHERE r.company_id = c.id), 0) + 1
                 FROM companies c WHERE c.id = $1",
            )
            .bind(company)
            .fetch_one(&mut *self.conn)
        );
        Ok((row.try_get(1)?, row.try_get(0)?))
    }

    async fn insert_fee_receipt(&mut self, r: &FeeReceiptRow) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "INSERT INTO fee_receipts (company_id, number, entry_id, household_id, amount,
                                           method, cooperative_id, shop_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(r.company)
            .bind(r.number)
            .bind(r.entry)
            .bind(r.household)
            .bind(r.amount.fen())
            .bind(&r.method)
            .bind(r.cooperative)
            .bind(r.shop)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn month_close(&mut self, coop: i64, month: &str) -> OpResult<Option<String>> {
        // Shared with everyone asking whether a month is closed; a close takes it exclusively
        // (`latest_close`), so nothing lands in a month while another process closes it.
        self.advisory(LOCK_CLOSE, coop, true).await?;
        Ok(db!(
            self,
            sqlx::query_scalar(
                "SELECT result FROM month_closes WHERE cooperative_id = $1 AND month = $2",
            )
            .bind(coop)
            .bind(month)
            .fetch_optional(&mut *self.conn)
        ))
    }

    async fn latest_close(&mut self, coop: i64) -> OpResult<Option<(String, String)>> {
        // Asked only by a month close, before it computes anything.
        self.advisory(LOCK_CLOSE, coop, false).await?;
        let row = db!(
            self,
            sqlx::query(
                "SELECT month, result FROM month_closes WHERE cooperative_id = $1 ORDER BY month DESC LIMIT 1",
            )
            .bind(coop)
            .fetch_optional(&mut *self.conn)
        );
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn coop_month_totals(
        &mut self,
        coop: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> OpResult<MonthTotals> {
        let rows = db!(
            self,
            sqlx::query(
                "SELECT a.name, a.type, SUM(p.amount)::BIGINT FROM postings p
                 JOIN accounts a ON a.id = p.account_id
                 JOIN entries e ON e.id = p.entry_id
                 WHERE a.owner_kind = 'cooperative' AND a.owner_id = $1
                   AND (a.name IN ('sales', 'cogs', 'promotion') OR a.name LIKE 'expense:%')
                   AND e.business_date BETWEEN $2 AND $3
                 GROUP BY a.id",
            )
            .bind(coop)
            .bind(from.to_string())
            .bind(to.to_string())
            .fetch_all(&mut *self.conn)
        );
        let mut t = MonthTotals::default();
        for r in rows {
            let name: String = r.try_get(0)?;
            let kind: String = r.try_get(1)?;
            let sign = AccountType::parse(&kind).map_or(1, AccountType::normal_sign);
            let value = Amount::from_fen(r.try_get::<i64, _>(2)? * sign);
            let slot = match name.as_str() {
                "sales" => &mut t.sales,
                "cogs" => &mut t.cogs,
                "promotion" => &mut t.promotion,
                _ => &mut t.expenses,
            };
            *slot = slot
                .checked_add(value)
                .ok_or_else(|| StoreError("month totals overflow".into()))?;
        }
        Ok(t)
    }

    async fn close_candidates(
        &mut self,
        coop: i64,
        from: NaiveDate,
        to: NaiveDate,
    ) -> OpResult<Vec<Candidate>> {
        let reads = db!(self, candidate_reads(self.conn, coop, from, to, i64::MAX));
        // What this batch has posted but not yet written counts, as in every balance it reads.
        Ok(reads.merge(&self.state.deltas)?)
    }

    async fn insert_month_close(
        &mut self,
        coop: i64,
        month: &str,
        entry: Option<i64>,
        inputs: &str,
        result: &str,
        shares: &str,
    ) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "INSERT INTO month_closes (cooperative_id, month, entry_id, closed_on, inputs, result, shares)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(coop)
            .bind(month)
            .bind(entry)
            .bind(&self.now)
            .bind(inputs)
            .bind(result)
            .bind(shares)
            .execute(&mut *self.conn)
        );
        Ok(())
    }

    async fn insert_settlement(
        &mut self,
        entry: i64,
        coop: i64,
        company: i64,
        amount: Amount,
        reference: &str,
    ) -> OpResult<()> {
        db!(
            self,
            sqlx::query(
                "INSERT INTO settlements (entry_id, cooperative_id, company_id, amount, reference, business_date)
                 SELECT $1, $2, $3, $4, $5, business_date FROM entries WHERE id = $1",
            )
            .bind(entry)
            .bind(coop)
            .bind(company)
            .bind(amount.fen())
            .bind(reference)
            .execute(&mut *self.conn)
        );
        Ok(())
    }
}

/// What a close's candidates are made of, read on one connection: the writer's for the close,
/// a read snapshot for `verify`.
struct CandidateReads {
    households: Vec<EligibleHousehold>,
    /// Household fee accounts: owner → (account id, balance).
    fees: HashMap<i64, (i64, i64)>,
    /// What moved them after the month, taken back out ([`fee_changes_after_in`]).
    later: HashMap<i64, i64>,
    spend: HashMap<i64, i64>,
}

impl CandidateReads {
    /// The candidates, with the batch's pending balance changes (`deltas`, by account id)
    /// added to the stored balances; `verify` has none.
    fn merge(self, deltas: &HashMap<i64, i64>) -> Result<Vec<Candidate>, StoreError> {
        let CandidateReads {
            households,
            fees,
            later,
            spend,
        } = self;
        households
            .into_iter()
            .map(|h| {
                let (account, stored) = fees.get(&h.id).copied().unwrap_or((0, 0));
                let pending = deltas.get(&account).copied().unwrap_or(0);
                let after = later.get(&h.id).copied().unwrap_or(0);
                let balance = stored
                    .checked_add(pending)
                    .and_then(|b| b.checked_sub(after))
                    .ok_or_else(|| {
                        StoreError(format!("fee balance of household {} overflows", h.id))
                    })?;
                Ok(Candidate {
                    fees_balance: Amount::from_fen(balance),
                    credit_spend: spend.get(&h.id).copied().unwrap_or(0),
                    household: h,
                })
            })
            .collect()
    }
}

/// Per household, what moved its fees after `last`, the last day of `month`, that is not for
/// `month` or an earlier one: later months' bills and payments, and every close of `month` or a
/// later one (any cooperative's), so that the balance less this is the balance at the month's
/// end, before any close of it, whichever cooperative closed first. With `before` (a chain
/// place), every entry after it counts as after too: `verify` recomputing a close leaves out
/// what was posted since.
async fn fee_changes_after_in(
    conn: &mut PgConnection,
    month: &str,
    last: NaiveDate,
    before: i64,
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    // Anything for a later month, or posted after a close, is dated after `last`: the entries
    // index narrows the scan to the days since the month ended.
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT a.owner_id, SUM(p.amount)::BIGINT FROM entry_months e
         JOIN entries n ON n.id = e.entry_id
         JOIN postings p ON p.entry_id = e.entry_id
         JOIN accounts a ON a.id = p.account_id
         WHERE e.business_date > $1 AND a.owner_kind = 'household' AND a.name = 'fees'
           AND (e.service_month > $2 OR n.seq > $3
                OR e.entry_id IN (SELECT entry_id FROM month_closes WHERE month = $2))
         GROUP BY a.owner_id",
    )
    .bind(last.to_string())
    .bind(month)
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// The reads of a close's candidates as of `to` ([`domain::Tx::close_candidates`]); `before`
/// is the close's own place in the chain when `verify` recomputes it, `i64::MAX` for the close.
async fn candidate_reads(
    conn: &mut PgConnection,
    coop: i64,
    from: NaiveDate,
    to: NaiveDate,
    before: i64,
) -> Result<CandidateReads, sqlx::Error> {
    // The compounds in the programme at the month's end, with the company they were with in
    // that month (master data changes, migration 0021): read per compound, a handful.
    let sql = format!(
        "WITH f AS (SELECT c.id, {} AS company_id FROM compounds c WHERE {})
         SELECT h.id, h.code, k.id, k.code FROM households h
         JOIN f ON f.id = h.compound_id JOIN companies k ON k.id = f.company_id
         ORDER BY h.id",
        rows::company_on("$1"),
        rows::eligible_on("$1")
    );
    let households = sqlx::query(&sql)
        .bind(to.to_string())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(EligibleHousehold {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
                company: r.try_get(2)?,
                company_code: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let fees: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT owner_id, id, balance FROM accounts
         WHERE owner_kind = 'household' AND name = 'fees'",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut later = fee_changes_after_in(conn, &domain::month_of(from), to, before).await?;
    // A moved compound's household weighs what it owes the company it allocates through: what
    // belongs to another company is taken out too.
    let elsewhere: Vec<(i64, i64)> = sqlx::query_as(&rows::close_fees_elsewhere_sql(
        "$1", "$2", "$3", "::BIGINT",
    ))
    .bind(to.to_string())
    .bind(domain::month_of(from))
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    for (household, fen) in elsewhere {
        let slot = later.entry(household).or_insert(0);
        *slot = slot.saturating_add(fen);
    }
    // Wallet and voucher tenders of the month, net of what was refunded by its last day.
    let spend: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT COALESCE(t.household_id, v.household_id),
                SUM(t.amount - t.refunded + CASE WHEN t.refunded > 0 THEN (
                    SELECT COALESCE(SUM(r.amount), 0) FROM sale_refund_tenders r
                    JOIN entries re ON re.id = r.entry_id
                    WHERE r.sale_id = t.sale_id AND r.idx = t.idx AND re.business_date > $3)
                ELSE 0 END)::BIGINT
         FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
         LEFT JOIN vouchers v ON v.id = t.voucher_id
         WHERE s.cooperative_id = $1 AND s.business_date BETWEEN $2 AND $3
           AND t.type IN ('wallet', 'voucher')
           AND COALESCE(t.household_id, v.household_id) IS NOT NULL
         GROUP BY 1",
    )
    .bind(coop)
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_all(&mut *conn)
    .await?;
    Ok(CandidateReads {
        households,
        fees: fees
            .into_iter()
            .map(|(owner, account, balance)| (owner, (account, balance)))
            .collect(),
        later,
        spend: spend.into_iter().collect(),
    })
}

/// `verify`'s till reads: an entry's place in the chain is `entries.seq`.
const TILL_SQL: TillSql = TillSql {
    sales: "SELECT e.seq, s.shop_id, s.household_id FROM sales s
            JOIN entries e ON e.id = s.entry_id ORDER BY e.seq",
    lines: "SELECT COALESCE(e.seq, -1), l.idx, l.sku, l.qty, l.price, l.amount, l.cost
            FROM sale_lines l LEFT JOIN sales s ON s.id = l.sale_id
            LEFT JOIN entries e ON e.id = s.entry_id ORDER BY 1, l.idx",
    topups:
        "SELECT e.seq, t.shop_id FROM topups t JOIN entries e ON e.id = t.entry_id ORDER BY e.seq",
    changes: "SELECT m.id, COALESCE(e.seq, -1), m.subject, m.subject_id, m.field, m.old_value,
                     m.new_value, m.effective_from
              FROM master_changes m LEFT JOIN entries e ON e.id = m.entry_id ORDER BY m.id",
};
