//! The embedded SQLite store: WAL (an acknowledged entry survives power loss: see `Syncer`),
//! foreign keys, STRICT tables, integer fen.
//!
//! One writer, on a thread of its own, owns the only write connection. It drains the queue into
//! a batch, runs the batch under `BEGIN IMMEDIATE` (the till's commands through the write
//! engine, the others each in a savepoint), commits once, and hands the answers to the syncer,
//! which answers every caller once the commit is on disk: group commit, and no lock contention
//! because there is one writer. Reads use a separate pool of read-only connections.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row};
use tokio::sync::{mpsc, oneshot};

use super::rows::{self, date, hash32};
use super::*;
use crate::clock::Clock;
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
    EntryKind, Owner, Verifier, GENESIS_HASH, HASH_VERSION,
};
use crate::policy::PolicySet;
use crate::voucher::KeyRing;

#[path = "sqlite_batch.rs"]
mod batch;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// Entries read per query while verifying, so memory stays bounded on a large journal.
const VERIFY_CHUNK: i64 = 5_000;
/// Rows per multi-row INSERT: four bound values each stays under SQLite's 32,766 limit.
const ROWS_PER_INSERT: usize = 8_000;
/// Entries with more postings than this resolve accounts and move balances set-wise.
const BULK_POSTINGS: usize = 64;

/// What the write path needs besides the database.
#[derive(Clone)]
pub struct Services {
    pub policies: Arc<PolicySet>,
    pub keys: Arc<KeyRing>,
    pub clock: Clock,
}

struct Job {
    envelope: Envelope,
    reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

pub struct SqliteStore {
    queue: mpsc::Sender<Job>,
    read: SqlitePool,
    stats: Arc<WriteStats>,
    tokens: Arc<TokenCache>,
}

fn connect_options(url: &str) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("temp_store", "memory")
        .disable_statement_logging())
}

/// WAL pages after which the writer checkpoints inside a commit, should the background
/// checkpointer fall behind (SQLite's default is 1,000).
const BACKSTOP_CHECKPOINT_PAGES: u32 = 20_000;
/// How often the background checkpointer moves committed pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Moves committed pages from the WAL into the database file on a connection of its own, so
/// that a commit only appends to the WAL and syncs it: left to SQLite, every thousandth page
/// a commit would copy the WAL into the database and sync that too, holding up the batch and
/// every till waiting on it. A passive checkpoint never blocks the writer or the readers. It
/// stops with the writer's thread.
async fn checkpointer(options: SqliteConnectOptions) {
    let mut conn = match options.connect().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "no background checkpoints; the writer checkpoints alone");
            return;
        }
    };
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "a background checkpoint failed");
        }
    }
}

/// An online, consistent copy of the database at `url` into the new file `output`
/// (`VACUUM INTO`): one read transaction, so the copy holds exactly the commits before it
/// began, whatever the server writes meanwhile (WAL readers never block the writer). The copy
/// is made private (0600) before SQLite writes it, and synced. Returns the copy's head.
pub fn backup_into(url: &str, output: &Path) -> Result<Head, StoreError> {
    let source = crate::app::sqlite_path(url)
        .ok_or_else(|| StoreError(format!("{url} is not an SQLite database file")))?;
    if !source.exists() {
        return Err(StoreError(format!("no database at {}", source.display())));
    }
    let target = output
        .to_str()
        .ok_or_else(|| StoreError(format!("{} is not a UTF-8 path", output.display())))?;
    create_private(output, target)?;
    let copy = || -> Result<Head, rusqlite::Error> {
        let conn = rusqlite::Connection::open_with_flags(
            &source,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // VACUUM INTO fills an empty file in place, keeping its owner-only mode.
        conn.execute("VACUUM INTO ?1", [target])?;
        drop(conn);
        let copy = rusqlite::Connection::open_with_flags(
            output,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let head = copy
            .query_row(
                "SELECT id, hash, business_date FROM entries ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        Ok(match head {
            None => Head {
                seq: 0,
                hash: hex::encode(GENESIS_HASH),
                business_date: None,
            },
            Some((seq, hash, day)) => Head {
                seq,
                hash,
                business_date: NaiveDate::parse_from_str(&day, "%Y-%m-%d").ok(),
            },
        })
    };
    let head = copy().map_err(|e| {
        let _ = std::fs::remove_file(output);
        StoreError(format!(
            "backing up {} into {}: {e}",
            source.display(),
            output.display()
        ))
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(output, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError(format!("{}: {e}", output.display())))?;
    }
    std::fs::File::open(output)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError(format!("syncing {}: {e}", output.display())))?;
    Ok(head)
}

/// Creates a new database file readable and writable by its owner only (0600), before SQLite
/// would create it under the umask. SQLite gives the `-wal` and `-shm` files it makes beside a
/// database the database file's own permissions, so they are private too. An existing file is
/// left as it is; an in-memory database has no file.
fn create_private(path: &Path, url: &str) -> Result<(), StoreError> {
    let name = path.to_string_lossy();
    if name.is_empty() || name.starts_with("file:") || url.contains("mode=memory") {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(file) => {
            // The open mode is filtered by the umask; set it outright to be exact.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| StoreError(format!("restricting {}: {e}", path.display())))?;
            }
            drop(file);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError(format!("creating {}: {e}", path.display()))),
    }
}

/// Rewrites idempotency outcomes stored with a voucher code in clear (before codes were taken
/// out of them) so that none is left in the database.
async fn take_codes_out_of_stored_outcomes(
    conn: &mut SqliteConnection,
    ring: &crate::voucher::KeyRing,
) -> Result<(), StoreError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(&format!(
        "SELECT scope, key, outcome FROM idempotency WHERE {}",
        super::OUTCOMES_WITH_CODES
    ))
    .fetch_all(&mut *conn)
    .await?;
    for (scope, key, text) in rows {
        if let Some(sealed) = super::outcome_without_code(&text, ring) {
            sqlx::query("UPDATE idempotency SET outcome = ? WHERE scope = ? AND key = ?")
                .bind(sealed)
                .bind(scope)
                .bind(key)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// A token by the hash of its secret, from the database.
async fn token_by_hash(read: &SqlitePool, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    let row: Option<rows::TokenTableRow> =
        sqlx::query_as(&format!("SELECT {} WHERE t.hash = ?", rows::TOKEN_COLUMNS))
            .bind(hash)
            .fetch_optional(read)
            .await?;
    row.map(rows::token).transpose()
}

impl SqliteStore {
    /// Opens (creating and migrating on first use) the database at `url`, checks that no
    /// applied policy was edited, and starts the writer.
    pub async fn open(url: &str, services: Services) -> Result<SqliteStore, StoreError> {
        let options = connect_options(url)?;
        create_private(options.get_filename(), url)?;
        let mut conn = options.connect().await?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError(format!("migrating {url}: {e}")))?;
        take_codes_out_of_stored_outcomes(&mut conn, &services.keys).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone().read_only(true))
            .await?;
        let store = SqliteStore {
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
        let head = store.head().await?;
        let state = WriterState {
            head_seq: head.seq,
            head_hash: hash32(&head.hash)?,
            last_date: head.business_date,
            accounts: AccountCache::default(),
        };
        // Checkpoints run beside the writer (see `checkpointer`); the writer's own automatic
        // checkpoint stays as a backstop at a far larger WAL.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let checkpoints = (!in_memory).then(|| connect_options(url)).transpose()?;
        if checkpoints.is_some() {
            sqlx::query(&format!(
                "PRAGMA wal_autocheckpoint = {BACKSTOP_CHECKPOINT_PAGES}"
            ))
            .execute(&mut conn)
            .await?;
        }
        // A file-backed writer commits without waiting for the disk, and the syncer thread
        // makes each commit durable (fsync of the WAL) before its callers are answered, while
        // the writer goes on with the next batch (see `Syncer`).
        let syncer = match (in_memory, options.get_filename()) {
            (false, path) if !path.as_os_str().is_empty() => {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut conn)
                    .await?;
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                Some(Syncer::start(wal.into())?)
            }
            _ => None,
        };
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer = Writer {
            raw: None,
            conn,
            rx,
            state,
            services,
            syncer,
            stats: store.stats.clone(),
            tokens: store.tokens.clone(),
        };
        // The writer has a thread of its own: the engine's loads and writes run synchronously
        // on it, and nothing else waits behind them.
        std::thread::Builder::new()
            .name("hongxin-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(async move {
                        if let Some(options) = checkpoints {
                            tokio::spawn(checkpointer(options));
                        }
                        writer.run().await
                    }),
                    Err(e) => tracing::error!(error = %e, "the SQLite writer could not start"),
                }
            })
            .map_err(|e| StoreError(format!("starting the SQLite writer: {e}")))?;
        Ok(SqliteStore { queue, ..store })
    }

    /// The read pool, for reports and tests that need plain SQL over the store.
    pub fn read_pool(&self) -> &SqlitePool {
        &self.read
    }
}

/// Bonus granted to a household by top-ups dated in `month` (`YYYY-MM`), into its wallets or
/// onto its vouchers: what the monthly bonus cap weighs. The one reading of it, for the top-up
/// in its transaction and for the till's quote.
async fn bonus_granted<'c, E>(db: E, household: i64, month: &str) -> Result<Amount, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let fen: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(bonus), 0) FROM topups
         WHERE household_id = ? AND month = ? AND void_entry_id IS NULL",
    )
    .bind(household)
    .bind(month)
    .fetch_one(db)
    .await?;
    Ok(Amount::from_fen(fen))
}

#[async_trait]
impl Store for SqliteStore {
    async fn execute(&self, envelope: Envelope) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { envelope, reply })
            .await
            .map_err(|_| StoreError("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the writer stopped before answering".into()))?
    }

    async fn try_housekeeping_lease(&self) -> Result<Option<Lease>, StoreError> {
        Ok(Some(Lease::Local))
    }

    async fn holds_data(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM tokens) OR EXISTS (SELECT 1 FROM entries)",
        )
        .fetch_one(&self.read)
        .await?)
    }

    async fn head(&self) -> Result<Head, StoreError> {
        let row =
            sqlx::query("SELECT id, hash, business_date FROM entries ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.read)
                .await?;
        Ok(match row {
            None => Head {
                seq: 0,
                hash: hex::encode(GENESIS_HASH),
                business_date: None,
            },
            Some(r) => Head {
                seq: r.try_get(0)?,
                hash: r.try_get(1)?,
                business_date: Some(date(r.try_get(2)?)?),
            },
        })
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut conn = self.read.acquire().await?;
        // One read transaction, so the journal and the balances are one snapshot; ended
        // whatever happens, so the connection goes back to the pool outside a transaction.
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let report = verify_in(&mut conn).await;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        report
    }

    async fn household(&self, code: &str) -> Result<Option<HouseholdView>, StoreError> {
        let Some(r) = sqlx::query(
            "SELECT h.id, h.code, c.code, k.code, c.eligible, h.area_dm2, h.name, h.link_version,
                    h.building, h.grid
             FROM households h JOIN compounds c ON c.id = h.compound_id
             JOIN companies k ON k.id = c.company_id WHERE h.code = ?",
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
            "SELECT name, balance FROM accounts WHERE owner_kind = 'household' AND owner_id = ?",
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
        let vouchers = voucher_rows(&self.read, "v.household_id = ?", id).await?;
        Ok(Some(HouseholdView {
            id,
            code: r.try_get(1)?,
            compound: r.try_get(2)?,
            company: r.try_get(3)?,
            eligible: r.try_get::<i64, _>(4)? != 0,
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
        let Some(id): Option<i64> = sqlx::query_scalar("SELECT id FROM households WHERE code = ?")
            .bind(household)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let limit = i64::from(limit.clamp(1, 100));
        let rows = sqlx::query(
            "WITH mine AS (
                SELECT id, name, type FROM accounts WHERE owner_kind = 'household' AND owner_id = ?1
                UNION ALL
                SELECT a.id, 'voucher ' || v.id || ':' || a.name, a.type FROM accounts a
                JOIN vouchers v ON a.owner_kind = 'voucher' AND a.owner_id = v.id
                WHERE v.household_id = ?1
             ),
             page AS (
                SELECT DISTINCT p.entry_id FROM postings p JOIN mine m ON m.id = p.account_id
                WHERE p.entry_id < ?2 ORDER BY p.entry_id DESC LIMIT ?3
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
        Ok(voucher_rows(&self.read, "v.serial = ?", serial as i64)
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
            "SELECT {} WHERE t.label = ? AND t.revoked_at IS NULL AND (? IS NULL OR c.code = ?)
             ORDER BY t.id LIMIT ?",
            rows::TOKEN_COLUMNS
        ))
        .bind(label)
        .bind(cooperative)
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
        let row = sqlx::query(
            "SELECT id, code, pin_hash, link_version, pin_failures, pin_locked_until
             FROM households WHERE code = ?",
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
        let Some(id): Option<i64> = sqlx::query_scalar("SELECT id FROM households WHERE code = ?")
            .bind(household)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(bonus_granted(&self.read, id, month).await?))
    }

    async fn balances(&self) -> Result<BTreeMap<String, Amount>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.owner_kind || ':' || COALESCE(c.code, k.code, h.code, CAST(v.serial AS TEXT)) || ':' || a.name,
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
        let Some(company_id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE code = ?")
                .bind(company)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        crate::fees::month_bounds("month", month).map_err(|e| StoreError(e.to_string()))?;
        let mut conn = self.read.acquire().await?;
        // One snapshot for the lines, the positions and the head. Every movement counts in its
        // service month (the `entry_months` view): bills and allocations in the month they are
        // for, payments and settlements in the month of their business date.
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        // Per household, the movements that belong to the company (a moved compound's arrears
        // stay its old company's; `rows::statement_lines_sql`), each household's area then
        // (master data changes, migration 0021).
        let sql = rows::statement_lines_sql("?1", "?2", "");
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
                COALESCE(SUM(CASE WHEN e.service_month < ?1 THEN p.amount END), 0),
                COALESCE(SUM(CASE WHEN e.service_month = ?1 AND e.kind = 'profit_allocation' THEN p.amount END), 0),
                COALESCE(SUM(CASE WHEN e.service_month = ?1 AND e.kind = 'settlement' THEN -p.amount END), 0),
                COALESCE(SUM(CASE WHEN e.service_month <= ?1 THEN p.amount END), 0),
                COALESCE(SUM(CASE WHEN e.service_month = ?1 AND e.kind = 'fee_payment' THEN p.amount END), 0)
             FROM accounts a LEFT JOIN postings p ON p.account_id = a.id
             LEFT JOIN entry_months e ON e.entry_id = p.entry_id
             WHERE a.owner_kind = 'company' AND a.owner_id = ?2 AND a.name LIKE 'due_from:%'
             GROUP BY a.id
             HAVING COUNT(CASE WHEN e.service_month <= ?1 THEN 1 END) > 0
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
        let head = sqlx::query("SELECT id, hash FROM entries ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        let (seq, hash) = match head {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, hex::encode(GENESIS_HASH)),
        };
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
        sqlx::query(
            "SELECT b.month, b.amount, b.settled FROM fee_bills b JOIN households h ON h.id = b.household_id
             WHERE h.code = ?1 AND b.open = 1
               AND (?2 IS NULL OR b.company_id = (SELECT id FROM companies WHERE code = ?2))
             ORDER BY b.month",
        )
        .bind(household)
        .bind(company)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, Amount::from_fen(r.try_get(1)?), Amount::from_fen(r.try_get(2)?))))
        .collect()
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
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let read = close_candidates_in(&mut conn, coop, first, last, entry_seq).await;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        match read {
            Ok((candidates, _)) => Ok(candidates),
            Err(OpError::Store(e)) => Err(e),
            Err(OpError::Rejected(r)) => Err(StoreError(r.to_string())),
        }
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
        Ok(
            sqlx::query_scalar(&rows::household_company_on_sql("?1", "?2"))
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
        let rows: Vec<(String, i64)> = sqlx::query_as(&rows::household_fee_positions_sql("?1", ""))
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
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let closes = sqlx::query(
            "SELECT c.code, m.month, m.inputs, m.entry_id, m.shares, m.cooperative_id, m.result
             FROM month_closes m
             JOIN cooperatives c ON c.id = m.cooperative_id ORDER BY c.code, m.month",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut runs = Vec::with_capacity(closes.len());
        for m in closes {
            let shares = crate::fees::read_shares_document(m.try_get(4)?)
                .map_err(|e| StoreError(format!("stored shares unreadable: {e}")))?;
            // What the close's entry credited each household's fees.
            let posted = sqlx::query(
                "SELECT json_group_array(a.owner_id), json_group_array(-p.amount)
                 FROM postings p JOIN accounts a ON a.id = p.account_id
                 WHERE p.entry_id = ? AND a.owner_kind = 'household' AND a.name = 'fees'",
            )
            .bind(m.try_get::<Option<i64>, _>(3)?)
            .fetch_one(&mut *conn)
            .await?;
            let posted_to: Vec<i64> = json_column(&posted, 0)?;
            let posted_fen: Vec<i64> = json_column(&posted, 1)?;
            // Households are named by code: the allocator breaks ties by it.
            let mut ids: Vec<i64> = shares.iter().map(|s| s.household).collect();
            ids.extend(&posted_to);
            ids.sort_unstable();
            ids.dedup();
            // CROSS JOIN: the JSON array is the outer loop, parsed once.
            let named = sqlx::query(
                "SELECT json_group_array(h.id), json_group_array(h.code)
                 FROM json_each(?) j CROSS JOIN households h ON h.id = j.value",
            )
            .bind(serde_json::to_string(&ids).map_err(|e| StoreError(e.to_string()))?)
            .fetch_one(&mut *conn)
            .await?;
            let code_of: HashMap<i64, String> = json_column::<i64>(&named, 0)?
                .into_iter()
                .zip(json_column::<String>(&named, 1)?)
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
                entry_seq: m.try_get(3)?,
                inputs: m.try_get(2)?,
                result: m.try_get(6)?,
                shares: shares
                    .iter()
                    .map(|s| Ok((code(s.household)?, s.weight, s.cap, s.amount)))
                    .collect::<Result<Vec<_>, StoreError>>()?,
                posted: posted_to
                    .into_iter()
                    .zip(posted_fen)
                    .map(|(id, fen)| Ok((code(id)?, Amount::from_fen(fen))))
                    .collect::<Result<BTreeMap<_, _>, StoreError>>()?,
            });
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok(runs)
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

    async fn company_open_bills(
        &self,
        company: &str,
    ) -> Result<Option<Vec<(String, String, Amount, Amount)>>, StoreError> {
        let Some(company_id): Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE code = ?")
                .bind(company)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let bills = sqlx::query_as(
            "SELECT h.code, b.month, b.amount, b.settled
             FROM fee_bills b JOIN households h ON h.id = b.household_id
             WHERE b.company_id = ? AND b.open = 1
             ORDER BY h.code, b.month",
        )
        .bind(company_id)
        .fetch_all(&self.read)
        .await?;
        Ok(Some(bills.into_iter().map(rows::open_bill).collect()))
    }

    async fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError> {
        // Business dates never run backwards along the chain (the writer clamps them and
        // `verify` checks it), so an account's first posting by sequence is also its earliest by
        // date: one index probe per account instead of a scan of its postings.
        let accounts: Vec<rows::AccountRow> = sqlx::query_as(
            "SELECT a.id, a.owner_kind, COALESCE(c.code, k.code, h.code, CAST(v.serial AS TEXT)),
                    a.name, a.type, a.balance,
                    (SELECT e.business_date FROM postings p JOIN entries e ON e.id = p.entry_id
                     WHERE p.account_id = a.id ORDER BY p.entry_id LIMIT 1)
             FROM accounts a
             LEFT JOIN cooperatives c ON a.owner_kind = 'cooperative' AND c.id = a.owner_id
             LEFT JOIN companies k ON a.owner_kind = 'company' AND k.id = a.owner_id
             LEFT JOIN households h ON a.owner_kind = 'household' AND h.id = a.owner_id
             LEFT JOIN vouchers v ON a.owner_kind = 'voucher' AND v.id = a.owner_id
             ORDER BY a.id",
        )
        .fetch_all(&self.read)
        .await?;
        accounts.into_iter().map(rows::account).collect()
    }

    async fn journal_chunk(&self, after: i64, limit: u32) -> Result<Vec<JournalEntry>, StoreError> {
        // An entry's id is its sequence here, and so is the id it reverses.
        let journal = sqlx::query_as(
            "WITH page AS (
                SELECT id, kind, business_date, memo, policy, hash, reverses FROM entries
                WHERE id > ?1 ORDER BY id LIMIT ?2
             )
             SELECT page.id, page.kind, page.business_date, page.memo, page.policy, page.hash,
                    page.reverses, p.account_id, p.amount
             FROM page LEFT JOIN postings p ON p.entry_id = page.id
             ORDER BY page.id, p.idx",
        )
        .bind(after)
        .bind(i64::from(limit.clamp(1, MAX_JOURNAL_CHUNK)))
        .fetch_all(&self.read)
        .await?;
        rows::journal(journal)
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
             JOIN cooperatives c ON c.id = s.cooperative_id ORDER BY s.code",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(shops.into_iter().map(rows::shop).collect())
    }

    async fn till_figures(
        &self,
        shop: &str,
        day: NaiveDate,
    ) -> Result<Option<TillFigures>, StoreError> {
        let Some(shop): Option<i64> = sqlx::query_scalar("SELECT id FROM shops WHERE code = ?")
            .bind(shop)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let day = day.to_string();
        let mut conn = self.read.acquire().await?;
        // One read transaction: the figures are one snapshot of the till.
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let topups = sqlx::query_as(
            "SELECT method, COUNT(*), SUM(paid), SUM(bonus), COUNT(voucher_id),
                    COALESCE(SUM(CASE WHEN voucher_id IS NOT NULL THEN paid END), 0),
                    COALESCE(SUM(CASE WHEN voucher_id IS NOT NULL THEN bonus END), 0)
             FROM topups WHERE shop_id = ? AND business_date = ? AND void_entry_id IS NULL
             GROUP BY method ORDER BY method",
        )
        .bind(shop)
        .bind(&day)
        .fetch_all(&mut *conn)
        .await?;
        let sales = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(total), 0) FROM sales
             WHERE shop_id = ? AND business_date = ?",
        )
        .bind(shop)
        .bind(&day)
        .fetch_one(&mut *conn)
        .await?;
        let tenders = sqlx::query_as(
            "SELECT t.type, COUNT(*), SUM(t.amount), SUM(t.paid_part), SUM(t.bonus_part),
                    COUNT(DISTINCT t.voucher_id)
             FROM sales s JOIN sale_tenders t ON t.sale_id = s.id
             WHERE s.shop_id = ? AND s.business_date = ?
             GROUP BY t.type ORDER BY t.type",
        )
        .bind(shop)
        .bind(&day)
        .fetch_all(&mut *conn)
        .await?;
        // Refunds count on the day they were posted, at the shop of the sale they refund.
        let refunds = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(r.amount), 0)
             FROM entries e JOIN sale_refunds r ON r.entry_id = e.id
             JOIN sales s ON s.id = r.sale_id
             WHERE e.business_date = ? AND e.kind = 'sale_refund' AND s.shop_id = ?",
        )
        .bind(&day)
        .bind(shop)
        .fetch_one(&mut *conn)
        .await?;
        // Where the money of those refunds went: the credits of their entries, but for the
        // cost of goods taken back.
        let refunded = sqlx::query_as(
            "SELECT CASE WHEN a.owner_kind = 'household' THEN 'wallet'
                         WHEN a.owner_kind = 'voucher' THEN 'voucher'
                         WHEN a.name LIKE 'cash:%' THEN substr(a.name, 6)
                         ELSE 'forfeited' END AS went,
                    -SUM(p.amount)
             FROM entries e JOIN sale_refunds r ON r.entry_id = e.id
             JOIN sales s ON s.id = r.sale_id
             JOIN postings p ON p.entry_id = e.id JOIN accounts a ON a.id = p.account_id
             WHERE e.business_date = ? AND e.kind = 'sale_refund' AND s.shop_id = ?
               AND p.amount < 0 AND NOT (a.owner_kind = 'cooperative' AND a.name = 'cogs')
             GROUP BY went ORDER BY went",
        )
        .bind(&day)
        .bind(shop)
        .fetch_all(&mut *conn)
        .await?;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        rows::till(topups, sales, tenders, refunds, refunded).map(Some)
    }

    async fn shop_topups(
        &self,
        shop: &str,
        date: NaiveDate,
    ) -> Result<Option<Vec<super::ShopTopUp>>, StoreError> {
        let Some(shop): Option<i64> = sqlx::query_scalar("SELECT id FROM shops WHERE code = ?")
            .bind(shop)
            .fetch_optional(&self.read)
            .await?
        else {
            return Ok(None);
        };
        let rows: Vec<super::ShopTopUpRow> = sqlx::query_as(&super::shop_topups_sql("?", "?"))
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
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = ?")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let paid = format!("wallet:{cooperative}:paid");
        let bonus = format!("wallet:{cooperative}:bonus");
        let wallets = rows::credit_holders_sql(
            &credit_balances("owner_kind = 'household' AND name IN (?1, ?2)", "?3", as_of),
            "?1",
            "?2",
            "",
        );
        let vouchers = rows::credit_holders_sql(
            &credit_balances(
                "owner_kind = 'voucher'
                 AND owner_id IN (SELECT id FROM vouchers WHERE cooperative_id = ?1)",
                "?2",
                as_of,
            ),
            "'paid'",
            "'bonus'",
            "",
        );
        // Past validity on the report date: `expires_on` before it (?3).
        let expired = rows::credit_holders_sql(
            &credit_balances(
                "owner_kind = 'voucher'
                 AND owner_id IN (SELECT id FROM vouchers
                                  WHERE cooperative_id = ?1 AND expires_on < ?3)",
                "?2",
                as_of,
            ),
            "'paid'",
            "'bonus'",
            "",
        );
        let breakage = super::breakage_sql("?1", "?2", as_of.is_some());
        let day = as_of.map(|d| d.to_string());
        let on = as_of.unwrap_or(today).to_string();
        let mut conn = self.read.acquire().await?;
        // One read transaction: wallets and vouchers are one snapshot.
        sqlx::query("BEGIN").execute(&mut *conn).await?;
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
        // ?2 is bound (unused when the balances are the stored ones) so that ?3 is the date.
        let x = sqlx::query_as(&expired)
            .bind(coop)
            .bind(day.as_deref().unwrap_or(""))
            .bind(&on)
            .fetch_one(&mut *conn)
            .await?;
        let mut q = sqlx::query_as(&breakage).bind(coop);
        if let Some(d) = &day {
            q = q.bind(d);
        }
        let (broken_paid, broken_bonus): (i64, i64) = q.fetch_one(&mut *conn).await?;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok(Some(PrepaidFigures {
            wallets: rows::credit(w)?,
            vouchers: rows::credit(v)?,
            expired: rows::credit(x)?,
            breakage_paid: Amount::from_fen(broken_paid),
            breakage_bonus: Amount::from_fen(broken_bonus),
        }))
    }

    async fn programme_figures(&self) -> Result<ProgrammeFigures, StoreError> {
        let mut conn = self.read.acquire().await?;
        sqlx::query("BEGIN").execute(&mut *conn).await?;
        let figures = super::programme_figures_in::<sqlx::Sqlite>(&mut conn).await;
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        figures
    }

    async fn paid_credit_months(
        &self,
        cooperative: &str,
    ) -> Result<Option<Vec<PaidCreditMonth>>, StoreError> {
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = ?")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT month, wallet_paid, voucher_paid FROM paid_credit_months
             WHERE cooperative_id = ? ORDER BY month",
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
        let Some(coop): Option<i64> =
            sqlx::query_scalar("SELECT id FROM cooperatives WHERE code = ?")
                .bind(cooperative)
                .fetch_optional(&self.read)
                .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT id, sku, name, unit, price, cost, barcode FROM catalog_items
             WHERE cooperative_id = ? ORDER BY sku LIMIT ?",
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
}
/// The verifier fed in chain order, a chunk of entries at a time, then the tables that derive
/// from the journal, inside the caller's snapshot.
async fn verify_in(conn: &mut SqliteConnection) -> Result<VerifyReport, StoreError> {
    let accounts: Vec<rows::AccountRecordRow> = sqlx::query_as(
        "SELECT id, owner_kind, owner_id, name, type, bounded <> 0, balance FROM accounts",
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
            "SELECT e.id, e.kind, e.business_date, e.created_at, e.actor_token_id, e.policy,
                    e.policy_hash, e.idempotency_key, e.memo, e.reverses, e.prev_hash, e.hash,
                    p.account_id, p.amount, e.hash_version, e.facts
             FROM entries e LEFT JOIN postings p ON p.entry_id = e.id
             WHERE e.id > ? AND e.id <= ?
             ORDER BY e.id, p.idx",
        )
        .bind(after)
        .bind(after + VERIFY_CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        if chain.is_empty() {
            let more: Option<i64> = sqlx::query_scalar("SELECT MIN(id) FROM entries WHERE id > ?")
                .bind(after)
                .fetch_one(&mut *conn)
                .await?;
            match more {
                // A gap in the sequence larger than a chunk: continue from there, the
                // verifier names the gap as a chain break.
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
        // The tables that repeat or derive from the journal, in the same snapshot.
        let vouchers: Vec<audit::VoucherTableRow> = sqlx::query_as(
            "SELECT id, serial, key_id, cooperative_id, household_id, issued_on, expires_on, status, exchanged_from
             FROM vouchers ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let closes: Vec<audit::CloseTableRow> = sqlx::query_as(
            "SELECT cooperative_id, month, entry_id FROM month_closes ORDER BY cooperative_id, month",
        )
        .fetch_all(&mut *conn)
        .await?;
        let bills: Vec<audit::BillTableRow> = sqlx::query_as(
            "SELECT id, household_id, company_id, month, amount, settled, entry_id FROM fee_bills
             ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let tenders: Vec<audit::TenderTableRow> = sqlx::query_as(
            "SELECT s.entry_id, t.type, t.household_id, t.voucher_id, t.amount, t.paid_part, t.bonus_part,
                t.refunded, t.refunded_paid, t.refunded_bonus
             FROM sale_tenders t JOIN sales s ON s.id = t.sale_id ORDER BY t.sale_id, t.idx",
        )
        .fetch_all(&mut *conn)
        .await?;
        let topups: Vec<audit::TopupTableRow> = sqlx::query_as(
            "SELECT entry_id, cooperative_id, household_id, method, paid, bonus, voucher_id,
                    business_date, month, entry_id, void_entry_id FROM topups ORDER BY entry_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let settlements: Vec<audit::SettlementTableRow> = sqlx::query_as(
            "SELECT entry_id, cooperative_id, company_id, amount, business_date FROM settlements
             ORDER BY entry_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let fee_credits: Vec<audit::FeeCreditTableRow> = sqlx::query_as(
            "SELECT entry_id, household_id, kind, amount, method FROM fee_credits
             ORDER BY entry_id, household_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let fee_receipts: Vec<audit::FeeReceiptTableRow> = sqlx::query_as(
            "SELECT r.entry_id, r.company_id, r.number, r.household_id, r.amount, r.method,
                    r.cooperative_id, r.shop_id
             FROM fee_receipts r ORDER BY r.entry_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let sale_refunds: Vec<audit::SaleRefundTableRow> = sqlx::query_as(
            "SELECT r.entry_id, s.entry_id, r.amount, r.cost FROM sale_refunds r
             JOIN sales s ON s.id = r.sale_id ORDER BY r.entry_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let sales: Vec<audit::SaleTableRow> = sqlx::query_as(
            "SELECT entry_id, entry_id, cooperative_id, total, cost, refunded, refunded_cost,
                    business_date FROM sales ORDER BY entry_id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let refund_tenders: Vec<audit::RefundTenderTableRow> = sqlx::query_as(
            "SELECT r.entry_id, s.entry_id, r.idx, r.amount, t.refunded FROM sale_refund_tenders r
             JOIN sales s ON s.id = r.sale_id
             LEFT JOIN sale_tenders t ON t.sale_id = r.sale_id AND t.idx = r.idx
             ORDER BY r.entry_id, r.idx",
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
            master_problem::<sqlx::Sqlite>(&mut *conn, &report.summary, &TILL_SQL).await?
        {
            report.fail(p);
        }
        if let Some(p) = super::programme_problem::<sqlx::Sqlite>(&mut *conn).await? {
            report.fail(p);
        }
    }
    Ok(report)
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

async fn voucher_rows(
    pool: &SqlitePool,
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
// The writer

#[derive(Clone, Copy)]
struct AccountMeta {
    id: AccountId,
    sign: i64,
    bounded: bool,
}

/// Hashes a database id with one multiplication (Fibonacci hashing). The writer's account cache
/// holds a million of them for a month close, and SipHash's defence against chosen keys buys
/// nothing for ids the database hands out.
#[derive(Clone, Copy, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i64(&mut self, id: i64) {
        self.0 = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<i64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Account ids the writer has resolved: by owner kind, then name, then owner id, so that a
/// large entry (a month close credits a million households' `fees`) finds each of its accounts
/// without allocating. Accounts created by a command that is then rolled back are forgotten
/// again.
#[derive(Default)]
struct AccountCache {
    by_kind: [HashMap<String, IdMap<AccountMeta>>; 4],
    /// Accounts created since the batch began: (kind slot, name, owner ids).
    created: Vec<(usize, String, Vec<i64>)>,
}

fn kind_slot(owner: Owner) -> usize {
    match owner {
        Owner::Cooperative(_) => 0,
        Owner::Company(_) => 1,
        Owner::Household(_) => 2,
        Owner::Voucher(_) => 3,
    }
}

impl AccountCache {
    fn get(&self, spec: &AccountSpec) -> Option<AccountMeta> {
        self.by_kind[kind_slot(spec.owner)]
            .get(spec.name.as_str())?
            .get(&spec.owner.id())
            .copied()
    }

    fn group(&mut self, slot: usize, name: &str) -> &mut IdMap<AccountMeta> {
        self.by_kind[slot].entry(name.to_string()).or_default()
    }

    fn insert(&mut self, spec: &AccountSpec, meta: AccountMeta) {
        self.group(kind_slot(spec.owner), &spec.name)
            .insert(spec.owner.id(), meta);
    }

    /// Remembers that these accounts were created in the current command.
    fn created(&mut self, slot: usize, name: &str, owners: Vec<i64>) {
        self.created.push((slot, name.to_string(), owners));
    }

    /// Where the current command begins, for [`AccountCache::forget_since`].
    fn mark(&self) -> usize {
        self.created.len()
    }

    /// Forgets the accounts created since `mark`: their command was rolled back.
    fn forget_since(&mut self, mark: usize) {
        for (slot, name, owners) in self.created.drain(mark..) {
            if let Some(group) = self.by_kind[slot].get_mut(&name) {
                for owner in owners {
                    group.remove(&owner);
                }
            }
        }
    }

    /// The batch committed: what it created exists for good.
    fn committed(&mut self) {
        self.created.clear();
    }

    fn clear(&mut self) {
        *self = AccountCache::default();
    }
}

struct WriterState {
    head_seq: i64,
    head_hash: [u8; 32],
    last_date: Option<NaiveDate>,
    accounts: AccountCache,
}

struct Writer {
    /// The write connection's handle as rusqlite sees it, for the engine's loads and writes;
    /// used only while sqlx's lock on the handle is held. Declared before `conn` so that its
    /// prepared statements are finalized before sqlx closes the handle.
    raw: Option<rusqlite::Connection>,
    conn: SqliteConnection,
    rx: mpsc::Receiver<Job>,
    state: WriterState,
    services: Services,
    /// `None` for an in-memory database: answered at once.
    syncer: Option<std::sync::mpsc::Sender<Committed>>,
    stats: Arc<WriteStats>,
    tokens: Arc<TokenCache>,
}

/// A committed batch's answers, waiting for its commit to be durable.
type Committed = Vec<(
    oneshot::Sender<Result<Outcome, StoreError>>,
    Result<Outcome, StoreError>,
)>;

/// Makes the writer's commits durable and then answers them: group commit, pipelined.
///
/// The writer connection runs with `synchronous = NORMAL`: its COMMIT appends the batch to the
/// WAL and returns without waiting for the disk. The batch's answers then go to this thread,
/// which takes every batch waiting, syncs the WAL file once (`fdatasync`), and only then
/// answers them. Meanwhile the writer runs the next batch. The WAL is written in order, so a
/// sync covers every batch committed before it: a power loss can only take batches that no
/// caller was told about, and only a latest part of the journal, never a middle one (SQLite
/// recovers the WAL up to its first invalid frame). Checkpoints sync the WAL before copying it
/// into the database file and that file after (SQLite's rule for `NORMAL` in WAL mode).
struct Syncer;

impl Syncer {
    fn start(wal: std::path::PathBuf) -> Result<std::sync::mpsc::Sender<Committed>, StoreError> {
        let (tx, rx) = std::sync::mpsc::channel::<Committed>();
        std::thread::Builder::new()
            .name("hongxin-syncer".into())
            .spawn(move || {
                let mut file: Option<std::fs::File> = None;
                while let Ok(first) = rx.recv() {
                    let mut batches = vec![first];
                    batches.extend(rx.try_iter());
                    let synced = sync_wal(&wal, &mut file);
                    if let Err(e) = &synced {
                        tracing::error!(error = %e, "could not make committed batches durable");
                    }
                    crash_point("before_reply");
                    for (reply, outcome) in batches.into_iter().flatten() {
                        let answer = match &synced {
                            Ok(()) => outcome,
                            // Committed, but not known to be on disk: the caller retries with
                            // its idempotency key and gets the stored answer.
                            Err(e) => Err(StoreError(format!(
                                "the write was committed but could not be synced to disk ({e}); retry"
                            ))),
                        };
                        let _ = reply.send(answer);
                    }
                }
            })
            .map_err(|e| StoreError(format!("starting the SQLite syncer: {e}")))?;
        Ok(tx)
    }
}

/// Syncs the WAL file at `path`, opening it again when it is not the file held open (SQLite
/// deletes the WAL when its last connection closes and creates it again).
fn sync_wal(path: &Path, file: &mut Option<std::fs::File>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let current = std::fs::metadata(path)?;
    let same = match file {
        Some(f) => {
            let held = f.metadata()?;
            (held.dev(), held.ino()) == (current.dev(), current.ino())
        }
        None => false,
    };
    if !same {
        *file = Some(std::fs::OpenOptions::new().write(true).open(path)?);
    }
    match file {
        Some(f) => f.sync_data(),
        None => Ok(()),
    }
}

impl Writer {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            match self.run_batch(&jobs).await {
                Ok(outcomes) => {
                    if jobs.iter().any(|j| revokes_tokens(&j.envelope.command)) {
                        // Before anyone hears of the revocation, no cached token outlives it.
                        self.tokens.invalidate();
                    }
                    self.stats.record(jobs.len());
                    let answers: Committed = jobs
                        .into_iter()
                        .map(|job| job.reply)
                        .zip(outcomes)
                        .collect();
                    match &self.syncer {
                        Some(syncer) => {
                            if let Err(unsent) = syncer.send(answers) {
                                // Committed, but nobody can say it is on disk: the callers
                                // retry with their idempotency keys.
                                for (reply, _) in unsent.0 {
                                    let _ = reply.send(Err(StoreError(
                                        "the SQLite syncer stopped; retry".into(),
                                    )));
                                }
                            }
                        }
                        None => {
                            crash_point("before_reply");
                            for (reply, outcome) in answers {
                                let _ = reply.send(outcome);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, batch = jobs.len(), "write batch failed; nothing in it was committed");
                    let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
                    if let Err(e) = self.reload().await {
                        tracing::error!(error = %e, "could not reload the chain head");
                    }
                    for job in jobs {
                        let _ = job.reply.send(Err(StoreError(e.0.clone())));
                    }
                }
            }
        }
    }

    async fn reload(&mut self) -> Result<(), StoreError> {
        self.state.accounts.clear();
        self.reload_head().await
    }

    /// Reads the chain head from the database: another process (a command-line tool on the
    /// same file) may have extended the chain since this writer's last batch.
    async fn reload_head(&mut self) -> Result<(), StoreError> {
        let row =
            sqlx::query("SELECT id, hash, business_date FROM entries ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut self.conn)
                .await?;
        match row {
            None => {
                self.state.head_seq = 0;
                self.state.head_hash = GENESIS_HASH;
                self.state.last_date = None;
            }
            Some(r) => {
                self.state.head_seq = r.try_get(0)?;
                self.state.head_hash = hash32(r.try_get(1)?)?;
                self.state.last_date = Some(date(r.try_get(2)?)?);
            }
        }
        Ok(())
    }

    /// `Err` means the whole batch failed and nothing in it was committed.
    async fn run_batch(
        &mut self,
        jobs: &[Job],
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        if jobs.iter().all(|j| engine::runs(&j.envelope.command)) {
            // A batch of till commands only: all of it on the raw handle, no hop to sqlx's
            // worker thread for the transaction's begin, head and commit.
            let outcomes = self.run_engine(jobs, true).await?;
            self.state.accounts.committed();
            return Ok(outcomes);
        }
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        // Under the write lock, so the head read here is the one this batch extends.
        self.reload_head().await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut rest = jobs;
        while let Some(first) = rest.first() {
            // The till's commands run together through the engine; the others one by one.
            let run = if engine::runs(&first.envelope.command) {
                rest.iter()
                    .take_while(|j| engine::runs(&j.envelope.command))
                    .count()
            } else {
                1
            };
            let (now, later) = rest.split_at(run);
            if engine::runs(&first.envelope.command) {
                outcomes.extend(self.run_engine(now, false).await?);
            } else {
                outcomes.push(self.run_one(&first.envelope).await?);
            }
            rest = later;
        }
        crash_point("before_commit");
        let committing = std::time::Instant::now();
        sqlx::query("COMMIT").execute(&mut self.conn).await?;
        tracing::debug!(
            commands = jobs.len(),
            commit_s = committing.elapsed().as_secs_f64(),
            "write batch committed"
        );
        self.state.accounts.committed();
        Ok(outcomes)
    }

    /// Runs a run of the engine's commands: load what they read, execute them in memory,
    /// write what they did. With `whole_batch`, the run is the batch: it also begins the
    /// transaction, reads the head under the write lock and commits. The outer `Err` aborts
    /// the batch.
    async fn run_engine(
        &mut self,
        jobs: &[Job],
        whole_batch: bool,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        let envelopes: Vec<&Envelope> = jobs.iter().map(|j| &j.envelope).collect();
        let started = std::time::Instant::now();
        let mut handle = self.conn.lock_handle().await?;
        if self.raw.is_none() {
            // SAFETY: the handle is sqlx's open connection, which outlives `raw` (see the field
            // order of `Writer`); rusqlite does not close a handle it was given, and it is
            // used only while `lock_handle` keeps sqlx's worker off the connection.
            let raw =
                unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
            raw.set_prepared_statement_cache_capacity(64);
            self.raw = Some(raw);
        }
        let db = self
            .raw
            .as_ref()
            .ok_or_else(|| StoreError("no raw write connection".into()))?;
        if whole_batch {
            db.execute_batch("BEGIN IMMEDIATE")?;
            // Under the write lock, so the head read here is the one this batch extends.
            let head = batch::head(db)?;
            self.state.head_seq = head.seq;
            self.state.head_hash = head.hash;
            self.state.last_date = head.business_date;
        }
        let now = self.services.clock.now();
        let today = domain::business_date(self.state.last_date, self.services.clock.today());
        let plan = engine::keys(&envelopes, &self.services.keys, today);
        let (loaded, next) = batch::load(db, &plan.keys)?;
        let loaded_at = std::time::Instant::now();
        let head = engine::Head {
            seq: self.state.head_seq,
            hash: self.state.head_hash,
            business_date: self.state.last_date,
        };
        let mut state = engine::State::new(loaded, head, next);
        let services = engine::Services {
            policies: &self.services.policies,
            keys: &self.services.keys,
            today,
            now,
        };
        let outcomes = engine::execute(&mut state, &services, &envelopes, &plan.drawn)?;
        let executed_at = std::time::Instant::now();
        batch::persist(db, &state.effects, &canonical_time(&now))?;
        if whole_batch {
            crash_point("before_commit");
            db.execute_batch("COMMIT")?;
        }
        drop(handle);
        tracing::debug!(
            commands = jobs.len(),
            load_s = (loaded_at - started).as_secs_f64(),
            execute_s = (executed_at - loaded_at).as_secs_f64(),
            persist_s = executed_at.elapsed().as_secs_f64(),
            "engine run"
        );
        let head = state.head();
        self.state.head_seq = head.seq;
        self.state.head_hash = head.hash;
        self.state.last_date = head.business_date;
        Ok(outcomes)
    }

    /// The outer `Err` aborts the batch; the inner one fails this command alone.
    async fn run_one(
        &mut self,
        envelope: &Envelope,
    ) -> Result<Result<Outcome, StoreError>, StoreError> {
        let now = self.services.clock.now();
        let clock_today = self.services.clock.today();
        // Business dates never run backwards against the journal.
        let today = domain::business_date(self.state.last_date, clock_today);
        if let Some(idem) = &envelope.idempotency {
            let seen = sqlx::query(
                "SELECT fingerprint, outcome FROM idempotency WHERE scope = ? AND key = ?",
            )
            .bind(&idem.scope)
            .bind(&idem.key)
            .fetch_optional(&mut self.conn)
            .await?;
            if let Some(r) = seen {
                let fingerprint: String = r.try_get(0)?;
                if !idem.matches(&fingerprint) {
                    return Ok(Ok(Outcome {
                        result: Err(Rejection::IdempotencyKeyReused),
                        replayed: false,
                    }));
                }
                let outcome: String = r.try_get(1)?;
                let result = super::outcome_from_store(&outcome, &self.services.keys)?;
                return Ok(Ok(Outcome {
                    result,
                    replayed: true,
                }));
            }
        }
        sqlx::query("SAVEPOINT command")
            .execute(&mut self.conn)
            .await?;
        let saved = (
            self.state.head_seq,
            self.state.head_hash,
            self.state.last_date,
        );
        let mark = self.state.accounts.mark();
        let services = self.services.clone();
        let ctx = Ctx {
            policies: &services.policies,
            keys: &services.keys,
            today,
            now,
            actor: envelope.actor,
            idempotency_key: envelope.idempotency.as_ref().map(|i| i.key.as_str()),
        };
        let result = {
            let mut tx = SqliteTx {
                conn: &mut self.conn,
                state: &mut self.state,
                now: canonical_time(&now),
            };
            domain::run(&mut tx, &ctx, &envelope.command).await
        };
        let result = match result {
            Ok(receipt) => {
                sqlx::query("RELEASE command")
                    .execute(&mut self.conn)
                    .await?;
                Ok(receipt)
            }
            Err(e) => {
                sqlx::query("ROLLBACK TO command")
                    .execute(&mut self.conn)
                    .await?;
                sqlx::query("RELEASE command")
                    .execute(&mut self.conn)
                    .await?;
                (
                    self.state.head_seq,
                    self.state.head_hash,
                    self.state.last_date,
                ) = saved;
                self.state.accounts.forget_since(mark);
                match e {
                    OpError::Rejected(r) => Err(r),
                    OpError::Store(e) => return Ok(Err(e)),
                }
            }
        };
        if let Some(idem) = &envelope.idempotency {
            let outcome = super::outcome_to_store(&result, &services.keys)?;
            sqlx::query("INSERT INTO idempotency (scope, key, fingerprint, outcome, created_at) VALUES (?, ?, ?, ?, ?)")
                .bind(&idem.scope)
                .bind(&idem.key)
                .bind(&idem.fingerprint)
                .bind(outcome)
                .bind(canonical_time(&Utc::now()))
                .execute(&mut self.conn)
                .await?;
        }
        Ok(Ok(Outcome {
            result,
            replayed: false,
        }))
    }
}

struct SqliteTx<'a> {
    conn: &'a mut SqliteConnection,
    state: &'a mut WriterState,
    now: String,
}

impl SqliteTx<'_> {
    async fn resolve(&mut self, spec: &AccountSpec, create: bool) -> OpResult<Option<AccountMeta>> {
        if let Some(meta) = self.state.accounts.get(spec) {
            return Ok(Some(meta));
        }
        let (kind, owner) = (spec.owner.kind(), spec.owner.id());
        let found = sqlx::query("SELECT id, type, bounded FROM accounts WHERE owner_kind = ? AND owner_id = ? AND name = ?")
            .bind(kind)
            .bind(owner)
            .bind(&spec.name)
            .fetch_optional(&mut *self.conn)
            .await?;
        let meta = match found {
            Some(r) => {
                let kind_text: String = r.try_get(1)?;
                let account_type = AccountType::parse(&kind_text)
                    .ok_or_else(|| StoreError(format!("bad type {kind_text}")))?;
                if account_type != spec.kind || (r.try_get::<i64, _>(2)? != 0) != spec.bounded {
                    return Err(StoreError(format!(
                        "account {kind}:{owner}:{} has another type",
                        spec.name
                    ))
                    .into());
                }
                AccountMeta {
                    id: AccountId(r.try_get(0)?),
                    sign: account_type.normal_sign(),
                    bounded: spec.bounded,
                }
            }
            None if create => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO accounts (owner_kind, owner_id, name, type, bounded) VALUES (?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(kind)
                .bind(owner)
                .bind(&spec.name)
                .bind(spec.kind.as_str())
                .bind(i64::from(spec.bounded))
                .fetch_one(&mut *self.conn)
                .await?;
                self.state
                    .accounts
                    .created(kind_slot(spec.owner), &spec.name, vec![owner]);
                AccountMeta {
                    id: AccountId(id),
                    sign: spec.kind.normal_sign(),
                    bounded: spec.bounded,
                }
            }
            None => return Ok(None),
        };
        self.state.accounts.insert(spec, meta);
        Ok(Some(meta))
    }

    /// Resolves every posting's account, creating missing ones; set-wise for large entries.
    async fn resolve_all(
        &mut self,
        postings: &[(AccountSpec, i64)],
    ) -> OpResult<Vec<(AccountMeta, i64)>> {
        let mut known: Vec<Option<AccountMeta>> = postings
            .iter()
            .map(|(spec, _)| self.state.accounts.get(spec))
            .collect();
        if postings.len() > BULK_POSTINGS {
            // The accounts not yet known, by (owner kind, name): two statements per group.
            let mut missing: BTreeMap<(usize, &str), (&AccountSpec, Vec<i64>)> = BTreeMap::new();
            for ((spec, _), meta) in postings.iter().zip(&known) {
                if meta.is_none() {
                    missing
                        .entry((kind_slot(spec.owner), spec.name.as_str()))
                        .or_insert((spec, Vec::new()))
                        .1
                        .push(spec.owner.id());
                }
            }
            if !missing.is_empty() {
                for (template, owners) in missing.into_values() {
                    self.bulk_resolve(template, owners).await?;
                }
                for ((spec, _), meta) in postings.iter().zip(known.iter_mut()) {
                    if meta.is_none() {
                        *meta = self.state.accounts.get(spec);
                    }
                }
            }
        }
        let mut resolved = Vec::with_capacity(postings.len());
        for ((spec, fen), meta) in postings.iter().zip(known) {
            let meta = match meta {
                Some(meta) => meta,
                None => self
                    .resolve(spec, true)
                    .await?
                    .ok_or_else(|| StoreError("account not created".into()))?,
            };
            resolved.push((meta, *fen));
        }
        Ok(resolved)
    }

    /// Loads, creating where missing, the accounts named like `template` of these owners, with
    /// two statements whatever their number, into the writer's account cache.
    async fn bulk_resolve(&mut self, template: &AccountSpec, mut owners: Vec<i64>) -> OpResult<()> {
        owners.sort_unstable();
        owners.dedup();
        let kind = template.owner.kind();
        let owners_json = serde_json::to_string(&owners).map_err(|e| StoreError(e.to_string()))?;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO accounts (owner_kind, owner_id, name, type, bounded)
             SELECT ?1, value, ?2, ?3, ?4 FROM json_each(?5)",
        )
        .bind(kind)
        .bind(&template.name)
        .bind(template.kind.as_str())
        .bind(i64::from(template.bounded))
        .bind(&owners_json)
        .execute(&mut *self.conn)
        .await?;
        // CROSS JOIN keeps the JSON array the outer loop: parsed once, one index probe per owner.
        let row = sqlx::query(
            "SELECT json_group_array(a.owner_id), json_group_array(a.id),
                    COALESCE(SUM(a.type <> ?3 OR a.bounded <> ?4), 0)
             FROM json_each(?5) AS j
             CROSS JOIN accounts a ON a.owner_kind = ?1 AND a.owner_id = j.value AND a.name = ?2",
        )
        .bind(kind)
        .bind(&template.name)
        .bind(template.kind.as_str())
        .bind(i64::from(template.bounded))
        .bind(&owners_json)
        .fetch_one(&mut *self.conn)
        .await?;
        if row.try_get::<i64, _>(2)? != 0 {
            return Err(
                StoreError(format!("account {kind}:{} has another type", template.name)).into(),
            );
        }
        let found: Vec<i64> = json_column(&row, 0)?;
        let ids: Vec<i64> = json_column(&row, 1)?;
        if found.len() != owners.len() || ids.len() != owners.len() {
            return Err(
                StoreError(format!("accounts {kind}:{} not created", template.name)).into(),
            );
        }
        let slot = kind_slot(template.owner);
        let sign = template.kind.normal_sign();
        let group = self.state.accounts.group(slot, &template.name);
        group.reserve(ids.len());
        for (owner, id) in found.into_iter().zip(ids) {
            group.insert(
                owner,
                AccountMeta {
                    id: AccountId(id),
                    sign,
                    bounded: template.bounded,
                },
            );
        }
        if inserted.rows_affected() > 0 {
            // Which of them are new is not known: forget them all if the command rolls back.
            self.state.accounts.created(slot, &template.name, owners);
        }
        Ok(())
    }

    async fn household_where(
        &mut self,
        filter: &str,
        value: i64,
        code: &str,
    ) -> OpResult<Option<HouseholdRef>> {
        let sql = format!(
            "SELECT {} WHERE {filter}",
            rows::household_ref_columns(None)
        );
        let mut q = sqlx::query_as::<_, rows::HouseholdRefRow>(&sql);
        q = if filter.contains("h.code") {
            q.bind(code)
        } else {
            q.bind(value)
        };
        Ok(q.fetch_optional(&mut *self.conn)
            .await?
            .map(rows::household_ref))
    }

    async fn voucher_where(&mut self, column: &str, value: i64) -> OpResult<Option<VoucherRecord>> {
        let sql = format!(
            "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers WHERE {column} = ?"
        );
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.map(|r| voucher_record(&r)).transpose()
    }
}

fn voucher_record(r: &sqlx::sqlite::SqliteRow) -> OpResult<VoucherRecord> {
    use sqlx::FromRow;
    Ok(rows::voucher_record(rows::VoucherTableRow::from_row(r)?)?)
}

/// Wall time of the steps of a large read or write, logged at debug level
/// (`HONGXIN_LOG=hongxin=debug`): where a month close's seconds go.
struct Lap {
    on: bool,
    last: std::time::Instant,
}

impl Lap {
    /// Logs nothing unless `on`.
    fn new(on: bool) -> Lap {
        Lap {
            on,
            last: std::time::Instant::now(),
        }
    }

    fn done(&mut self, step: &str) {
        if self.on {
            let now = std::time::Instant::now();
            tracing::debug!(secs = (now - self.last).as_secs_f64(), "{step}");
            self.last = now;
        }
    }
}

/// A column holding a JSON array (`json_group_array`), decoded: one row instead of a million.
fn json_column<T: serde::de::DeserializeOwned>(
    r: &sqlx::sqlite::SqliteRow,
    i: usize,
) -> Result<Vec<T>, StoreError> {
    let text: Option<&str> = r.try_get(i)?;
    serde_json::from_str(text.unwrap_or("[]"))
        .map_err(|e| StoreError(format!("column {i} is not the JSON array expected: {e}")))
}

fn amount(r: &sqlx::sqlite::SqliteRow, i: usize) -> OpResult<Amount> {
    Ok(Amount::from_fen(r.try_get(i)?))
}

impl Tx for SqliteTx<'_> {
    async fn cooperative(&mut self, code: &str) -> OpResult<Option<CoopRef>> {
        let row = sqlx::query("SELECT id, code FROM cooperatives WHERE code = ?")
            .bind(code)
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(match row {
            Some(r) => Some(CoopRef {
                id: r.try_get(0)?,
                code: r.try_get(1)?,
            }),
            None => None,
        })
    }

    async fn shop(&mut self, code: &str) -> OpResult<Option<ShopRef>> {
        let row = sqlx::query(
            "SELECT s.id, s.code, c.id, c.code FROM shops s JOIN cooperatives c ON c.id = s.cooperative_id WHERE s.code = ?",
        )
        .bind(code)
        .fetch_optional(&mut *self.conn)
        .await?;
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
        Ok(
            sqlx::query_scalar("SELECT id FROM companies WHERE code = ?")
                .bind(code)
                .fetch_optional(&mut *self.conn)
                .await?,
        )
    }

    async fn compound(&mut self, code: &str) -> OpResult<Option<(i64, i64)>> {
        let row = sqlx::query("SELECT id, company_id FROM compounds WHERE code = ?")
            .bind(code)
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?)),
            None => None,
        })
    }

    async fn household(&mut self, code: &str) -> OpResult<Option<HouseholdRef>> {
        self.household_where("h.code = ?", 0, code).await
    }

    async fn catalog_sku_by_barcode(
        &mut self,
        coop: i64,
        barcode: &str,
    ) -> OpResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT sku FROM catalog_items WHERE cooperative_id = ? AND barcode = ?",
        )
        .bind(coop)
        .bind(barcode)
        .fetch_optional(&mut *self.conn)
        .await?)
    }

    async fn catalog_item(&mut self, coop: i64, sku: &str) -> OpResult<Option<CatalogItem>> {
        let row = sqlx::query("SELECT id, sku, name, unit, price, cost, barcode FROM catalog_items WHERE cooperative_id = ? AND sku = ?")
            .bind(coop)
            .bind(sku)
            .fetch_optional(&mut *self.conn)
            .await?;
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
        Ok(sqlx::query_scalar(
            "INSERT INTO cooperatives (code, name, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(&c.code)
        .bind(&c.name)
        .bind(&self.now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn insert_shop(&mut self, s: &NewShop, coop: i64) -> OpResult<i64> {
        Ok(sqlx::query_scalar("INSERT INTO shops (code, name, cooperative_id, created_at) VALUES (?, ?, ?, ?) RETURNING id")
            .bind(&s.code)
            .bind(&s.name)
            .bind(coop)
            .bind(&self.now)
            .fetch_one(&mut *self.conn)
            .await?)
    }

    async fn insert_company(&mut self, c: &NewCompany) -> OpResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO companies (code, name, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(&c.code)
        .bind(&c.name)
        .bind(&self.now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn insert_compound(&mut self, c: &NewCompound, company: i64) -> OpResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO compounds (code, name, company_id, eligible, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&c.code)
        .bind(&c.name)
        .bind(company)
        .bind(i64::from(c.eligible))
        .bind(&self.now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn insert_household(
        &mut self,
        h: &NewHousehold,
        compound: i64,
        area_dm2: i64,
    ) -> OpResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO households (code, compound_id, area_dm2, name, building, grid, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&h.code)
        .bind(compound)
        .bind(area_dm2)
        .bind(&h.name)
        .bind(&h.building)
        .bind(&h.grid)
        .bind(&self.now)
        .fetch_one(&mut *self.conn)
        .await?)
    }

    async fn upsert_catalog_item(&mut self, coop: i64, item: &CatalogItemInput) -> OpResult<bool> {
        let existed = self.catalog_item(coop, &item.sku).await?.is_some();
        sqlx::query(
            "INSERT INTO catalog_items (cooperative_id, sku, name, unit, price, cost, updated_at, barcode)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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
        .await?;
        Ok(!existed)
    }

    async fn insert_token(&mut self, t: &NewToken, scope: &TokenScopeIds) -> OpResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO tokens (hash, role, cooperative_id, shop_id, company_id, household_id, label, created_at, expires_at, parent_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
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
        .await?)
    }

    async fn set_pin(&mut self, household: i64, pin_hash: Option<&str>) -> OpResult<()> {
        sqlx::query(
            "UPDATE households SET pin_hash = ?, pin_failures = 0, pin_locked_until = NULL
             WHERE id = ?",
        )
        .bind(pin_hash)
        .bind(household)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn pin_failures(
        &mut self,
        household: i64,
    ) -> OpResult<(i64, Option<chrono::DateTime<Utc>>)> {
        let (failures, until): (i64, Option<String>) =
            sqlx::query_as("SELECT pin_failures, pin_locked_until FROM households WHERE id = ?")
                .bind(household)
                .fetch_one(&mut *self.conn)
                .await?;
        Ok((failures, rows::time_opt(until)?))
    }

    async fn set_pin_failures(
        &mut self,
        household: i64,
        failures: i64,
        locked_until: Option<chrono::DateTime<Utc>>,
    ) -> OpResult<()> {
        sqlx::query("UPDATE households SET pin_failures = ?, pin_locked_until = ? WHERE id = ?")
            .bind(failures)
            .bind(locked_until.as_ref().map(canonical_time))
            .bind(household)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn set_compound_takeover(
        &mut self,
        compound: i64,
        taken_over_on: Option<NaiveDate>,
    ) -> OpResult<()> {
        sqlx::query("UPDATE compounds SET taken_over_on = ? WHERE id = ?")
            .bind(taken_over_on.map(|d| d.to_string()))
            .bind(compound)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn household_wallet_coops(&mut self, household: i64) -> OpResult<Vec<String>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM accounts WHERE owner_kind = 'household' AND owner_id = ?
               AND name LIKE 'wallet:%:paid'",
        )
        .bind(household)
        .fetch_all(&mut *self.conn)
        .await?;
        Ok(super::wallet_coops(&names))
    }

    async fn replace_occupant(
        &mut self,
        household: i64,
        name: Option<&str>,
    ) -> OpResult<Option<String>> {
        let before: Option<String> = sqlx::query_scalar("SELECT name FROM households WHERE id = ?")
            .bind(household)
            .fetch_one(&mut *self.conn)
            .await?;
        sqlx::query("UPDATE households SET name = ? WHERE id = ?")
            .bind(name)
            .bind(household)
            .execute(&mut *self.conn)
            .await?;
        Ok(before)
    }

    async fn master_subject(
        &mut self,
        subject: Subject,
        code: &str,
    ) -> OpResult<Option<SubjectRow>> {
        let sql = match subject {
            Subject::Compound => {
                "SELECT c.id, c.name, CAST(c.eligible AS INTEGER), c.company_id, k.code, NULL
                 FROM compounds c JOIN companies k ON k.id = c.company_id WHERE c.code = ?"
                    .to_string()
            }
            Subject::Household => {
                "SELECT id, name, NULL, NULL, NULL, area_dm2 FROM households WHERE code = ?"
                    .to_string()
            }
            _ => format!(
                "SELECT id, name, NULL, NULL, NULL, NULL FROM {} WHERE code = ?",
                subject.table()
            ),
        };
        type Row = (
            i64,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(code)
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(row.map(
            |(id, name, eligible, company, company_code, area_dm2)| SubjectRow {
                id,
                name,
                eligible: eligible.map(|e| e != 0),
                company,
                company_code,
                area_dm2,
            },
        ))
    }

    async fn master_change_bounds(&mut self, field: &str, id: i64) -> OpResult<ChangeBounds> {
        let last_effective: Option<String> = sqlx::query_scalar(
            "SELECT MAX(effective_from) FROM master_changes WHERE field = ? AND subject_id = ?",
        )
        .bind(field)
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await?;
        let billed = match field {
            "area" => Some("SELECT MAX(month) FROM fee_bills WHERE household_id = ?"),
            "company" => Some(
                "SELECT MAX(b.month) FROM fee_bills b JOIN households h ON h.id = b.household_id
                 WHERE h.compound_id = ?",
            ),
            _ => None,
        };
        let last_billed: Option<String> = match billed {
            Some(sql) => {
                sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut *self.conn)
                    .await?
            }
            None => None,
        };
        let last_closed: Option<String> = sqlx::query_scalar("SELECT MAX(month) FROM month_closes")
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(ChangeBounds {
            last_effective: last_effective.as_deref().map(rows::date).transpose()?,
            last_billed,
            last_closed,
        })
    }

    async fn insert_master_change(&mut self, entry: i64, change: &StoredChange) -> OpResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO master_changes (entry_id, subject, subject_id, field, old_value, new_value, effective_from)
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(entry)
        .bind(change.subject.as_str())
        .bind(change.subject_id)
        .bind(change.field)
        .bind(&change.old)
        .bind(&change.new)
        .bind(change.effective_from.to_string())
        .fetch_one(&mut *self.conn)
        .await?;
        let update = match change.field {
            "name" => format!(
                "UPDATE {} SET name = ? WHERE id = ?",
                change.subject.table()
            ),
            "eligible" => "UPDATE compounds SET eligible = (? = 'true') WHERE id = ?".to_string(),
            "company" => {
                "UPDATE compounds SET company_id = CAST(? AS INTEGER) WHERE id = ?".to_string()
            }
            "area" => {
                "UPDATE households SET area_dm2 = CAST(? AS INTEGER) WHERE id = ?".to_string()
            }
            other => return Err(StoreError(format!("no master field {other}")).into()),
        };
        sqlx::query(&update)
            .bind(&change.new)
            .bind(change.subject_id)
            .execute(&mut *self.conn)
            .await?;
        Ok(id)
    }

    async fn rotate_link(&mut self, household: i64) -> OpResult<i64> {
        let version = sqlx::query_scalar("UPDATE households SET link_version = link_version + 1 WHERE id = ? RETURNING link_version")
            .bind(household)
            .fetch_one(&mut *self.conn)
            .await?;
        // A new card ends the sessions the household's residents signed in to.
        sqlx::query(
            "UPDATE tokens SET revoked_at = ?
             WHERE household_id = ? AND role = 'resident' AND expires_at IS NOT NULL
               AND revoked_at IS NULL",
        )
        .bind(&self.now)
        .bind(household)
        .execute(&mut *self.conn)
        .await?;
        Ok(version)
    }

    async fn prune_sessions(&mut self, before: chrono::DateTime<Utc>, limit: u32) -> OpResult<u64> {
        let done = sqlx::query(
            "DELETE FROM tokens WHERE id IN (
                 SELECT t.id FROM tokens t
                 WHERE t.expires_at IS NOT NULL AND t.expires_at < ?
                   AND (t.role = 'resident' OR t.label = ?)
                   AND NOT EXISTS (SELECT 1 FROM tokens c WHERE c.parent_id = t.id)
                 LIMIT ?)",
        )
        .bind(canonical_time(&before))
        .bind(crate::web::session::PAIRING_LABEL)
        .bind(i64::from(limit))
        .execute(&mut *self.conn)
        .await?;
        Ok(done.rows_affected())
    }

    async fn prune_idempotency(&mut self, before: chrono::DateTime<Utc>) -> OpResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency WHERE created_at < ?")
            .bind(canonical_time(&before))
            .execute(&mut *self.conn)
            .await?;
        Ok(done.rows_affected())
    }

    async fn revoke_token(&mut self, id: i64) -> OpResult<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(&self.now)
                .bind(id)
                .execute(&mut *self.conn)
                .await?;
        // Every session made from it, and every session made from those, ends with it.
        sqlx::query(
            "WITH RECURSIVE below(id) AS (
                 SELECT id FROM tokens WHERE parent_id = ?
                 UNION SELECT t.id FROM tokens t JOIN below b ON t.parent_id = b.id
             )
             UPDATE tokens SET revoked_at = ?
             WHERE id IN (SELECT id FROM below) AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(&self.now)
        .execute(&mut *self.conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn balance(&mut self, account: &AccountSpec) -> OpResult<Amount> {
        let Some(meta) = self.resolve(account, false).await? else {
            return Ok(Amount::ZERO);
        };
        let fen: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = ?")
            .bind(meta.id.0)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok(Amount::from_fen(fen))
    }

    async fn post(&mut self, entry: EntryDraft, field: &str) -> OpResult<Posted> {
        let EntryDraft { header, postings } = entry;
        let large = postings.len() > BULK_POSTINGS;
        let mut lap = Lap::new(large);
        let resolved = self.resolve_all(&postings).await?;
        lap.done("post: resolve accounts");
        // Bounded accounts (wallets, vouchers) are checked one by one; everything else moves
        // in a few statements when the entry is large (fee bills, a month close).
        let mut bulk: Vec<(i64, i64)> = Vec::new();
        for (meta, fen) in &resolved {
            let delta = fen * meta.sign;
            if !meta.bounded && large {
                bulk.push((meta.id.0, delta));
                continue;
            }
            if meta.bounded && delta < 0 {
                let balance: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE id = ?")
                    .bind(meta.id.0)
                    .fetch_one(&mut *self.conn)
                    .await?;
                if balance + delta < 0 {
                    return Err(Rejection::InsufficientFunds {
                        field: field.into(),
                        available: Amount::from_fen(balance),
                    }
                    .into());
                }
            }
            // SQLite turns an overflowing `+` into a REAL, which the STRICT column refuses as a
            // store failure; a balance beyond i64 fen is the request's fault, so refuse it here.
            let (sql, limit) = if delta >= 0 {
                (
                    "UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance <= ?",
                    i64::MAX - delta,
                )
            } else {
                (
                    "UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance >= ?",
                    i64::MIN - delta,
                )
            };
            let updated = sqlx::query(sql)
                .bind(delta)
                .bind(meta.id.0)
                .bind(limit)
                .execute(&mut *self.conn)
                .await?;
            if updated.rows_affected() != 1 {
                return Err(Rejection::bad_amount(field, "is too large").into());
            }
        }
        let seq = self.state.head_seq + 1;
        let ids: Vec<(AccountId, i64)> = resolved.iter().map(|(m, fen)| (m.id, *fen)).collect();
        drop(resolved);
        let identities: Vec<&AccountSpec> = postings.iter().map(|(spec, _)| spec).collect();
        let hash = entry_hash_v2(&self.state.head_hash, seq, &header, &ids, &identities);
        drop(identities);
        drop(postings);
        lap.done("post: hash");
        let (policy, policy_hash) = match &header.policy {
            Some((p, h)) => (Some(p.as_str()), Some(h.as_str())),
            None => (None, None),
        };
        sqlx::query(
            "INSERT INTO entries (id, kind, business_date, created_at, actor_token_id, policy, policy_hash,
                                  idempotency_key, memo, reverses, prev_hash, hash, hash_version, facts)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(header.kind.as_str())
        .bind(header.business_date.to_string())
        .bind(canonical_time(&header.created_at))
        .bind(header.actor)
        .bind(policy)
        .bind(policy_hash)
        .bind(&header.idempotency_key)
        .bind(&header.memo)
        .bind(header.reverses)
        .bind(hex::encode(self.state.head_hash))
        .bind(hex::encode(hash))
        .bind(HASH_VERSION)
        .bind(&header.facts)
        .execute(&mut *self.conn)
        .await?;
        // Multi-row INSERTs of a fixed size: SQLite prepares the statement once (sqlx caches
        // it) and binds plain integers, which beats unpacking JSON row by row.
        for (n, chunk) in ids.chunks(ROWS_PER_INSERT).enumerate() {
            let mut insert =
                QueryBuilder::new("INSERT INTO postings (entry_id, idx, account_id, amount) ");
            insert.push_values(chunk.iter().enumerate(), |mut b, (i, (account, fen))| {
                b.push_bind(seq)
                    .push_bind((n * ROWS_PER_INSERT + i) as i64)
                    .push_bind(account.0)
                    .push_bind(*fen);
            });
            insert.build().execute(&mut *self.conn).await?;
        }
        lap.done("post: insert postings");
        if !bulk.is_empty() {
            // Unbounded accounts of a large entry: one change per account, in id order.
            bulk.sort_unstable();
            let mut changes: Vec<(i64, i64)> = Vec::with_capacity(bulk.len());
            for (id, delta) in bulk {
                match changes.last_mut() {
                    Some((last, sum)) if *last == id => {
                        *sum = sum
                            .checked_add(delta)
                            .ok_or_else(|| Rejection::bad_amount(field, "is too large"))?;
                    }
                    _ => changes.push((id, delta)),
                }
            }
            for chunk in changes.chunks(ROWS_PER_INSERT * 2) {
                let mut update = QueryBuilder::new("WITH change (id, delta) AS (");
                update.push_values(chunk, |mut b, (id, delta)| {
                    b.push_bind(*id).push_bind(*delta);
                });
                update.push(
                    ") UPDATE accounts SET balance = balance + change.delta FROM change
                     WHERE accounts.id = change.id AND accounts.bounded = 0",
                );
                let updated = update.build().execute(&mut *self.conn).await?;
                if updated.rows_affected() != chunk.len() as u64 {
                    return Err(StoreError("a bulk balance update missed an account".into()).into());
                }
            }
            lap.done("post: move balances");
        }
        if let (Some(name), Some(hash)) = (policy, policy_hash) {
            if let Some((id, version)) = super::policy_version(name)? {
                sqlx::query(
                    "INSERT OR IGNORE INTO policy_applications (policy_id, version, hash, first_applied_at) VALUES (?, ?, ?, ?)",
                )
                .bind(id)
                .bind(version)
                .bind(hash)
                .bind(&self.now)
                .execute(&mut *self.conn)
                .await?;
            }
        }
        self.state.head_seq = seq;
        self.state.head_hash = hash;
        self.state.last_date = Some(header.business_date);
        Ok(Posted {
            id: seq,
            hash: hex::encode(hash),
            business_date: header.business_date,
        })
    }

    async fn entry_postings(
        &mut self,
        entry: i64,
    ) -> OpResult<Option<(EntryKind, Vec<(AccountSpec, i64)>)>> {
        let Some(kind): Option<String> =
            sqlx::query_scalar("SELECT kind FROM entries WHERE id = ?")
                .bind(entry)
                .fetch_optional(&mut *self.conn)
                .await?
        else {
            return Ok(None);
        };
        let kind = EntryKind::parse(&kind).ok_or_else(|| StoreError(format!("bad kind {kind}")))?;
        let rows = sqlx::query(
            "SELECT a.owner_kind, a.owner_id, a.name, a.type, a.bounded, p.amount
             FROM postings p JOIN accounts a ON a.id = p.account_id WHERE p.entry_id = ? ORDER BY p.idx",
        )
        .bind(entry)
        .fetch_all(&mut *self.conn)
        .await?;
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
                    bounded: r.try_get::<i64, _>(4)? != 0,
                },
                r.try_get(5)?,
            ));
        }
        Ok(Some((kind, postings)))
    }

    async fn is_reversed(&mut self, entry: i64) -> OpResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM entries WHERE reverses = ? AND kind = 'reversal'",
        )
        .bind(entry)
        .fetch_one(&mut *self.conn)
        .await?;
        Ok(n > 0)
    }

    async fn topup(&mut self, entry: i64) -> OpResult<Option<crate::domain::TopupOnFile>> {
        // One writer: nothing runs beside this transaction, so no row lock is needed.
        let sql = format!("{}?", rows::TOPUP_ON_FILE);
        let row: Option<rows::TopupOnFileRow> = sqlx::query_as(&sql)
            .bind(entry)
            .fetch_optional(&mut *self.conn)
            .await?;
        Ok(row.map(rows::topup_on_file).transpose()?)
    }

    async fn first_debit_after(
        &mut self,
        accounts: &[AccountSpec],
        after: i64,
    ) -> OpResult<Option<i64>> {
        let mut first: Option<i64> = None;
        for a in accounts {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(p.entry_id) FROM postings p JOIN accounts a ON a.id = p.account_id
                 WHERE a.owner_kind = ? AND a.owner_id = ? AND a.name = ?
                   AND p.entry_id > ? AND p.amount > 0",
            )
            .bind(a.owner.kind())
            .bind(a.owner.id())
            .bind(&a.name)
            .bind(after)
            .fetch_one(&mut *self.conn)
            .await?;
            first = match (first, found) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
        }
        Ok(first)
    }

    async fn mark_topup_voided(&mut self, topup: i64, void_entry: i64) -> OpResult<()> {
        sqlx::query(
            "UPDATE topups SET void_entry_id = ? WHERE entry_id = ? AND void_entry_id IS NULL",
        )
        .bind(void_entry)
        .bind(topup)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    async fn voucher_by_id(&mut self, id: i64) -> OpResult<Option<VoucherRecord>> {
        self.voucher_where("id", id).await
    }

    async fn voucher(&mut self, serial: u64) -> OpResult<Option<VoucherRecord>> {
        self.voucher_where("serial", serial as i64).await
    }

    async fn set_voucher_status(&mut self, id: i64, status: VoucherStatus) -> OpResult<()> {
        sqlx::query("UPDATE vouchers SET status = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    async fn vouchers_expiring_before(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>> {
        let rows = sqlx::query(
            "SELECT id, serial, cooperative_id, household_id, issued_on, expires_on, status FROM vouchers
             WHERE status = 'active' AND expires_on < ? ORDER BY expires_on, id LIMIT ?",
        )
        .bind(date.to_string())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter().map(voucher_record).collect()
    }

    async fn vouchers_for_breakage(
        &mut self,
        date: NaiveDate,
        limit: u32,
    ) -> OpResult<Vec<VoucherRecord>> {
        let rows = sqlx::query(
            "SELECT v.id, v.serial, v.cooperative_id, v.household_id, v.issued_on, v.expires_on, v.status FROM vouchers v
             WHERE v.status = 'expired' AND v.expires_on < ?
               AND EXISTS (SELECT 1 FROM accounts a WHERE a.owner_kind = 'voucher' AND a.owner_id = v.id AND a.balance > 0)
             ORDER BY v.expires_on, v.id LIMIT ?",
        )
        .bind(date.to_string())
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter().map(voucher_record).collect()
    }

    async fn voucher_breakage(&mut self, voucher: i64) -> OpResult<(Amount, Amount)> {
        let (paid, bonus): (i64, i64) = sqlx::query_as(super::VOUCHER_BREAKAGE_SQL)
            .bind(voucher)
            .fetch_one(&mut *self.conn)
            .await?;
        Ok((Amount::from_fen(paid), Amount::from_fen(bonus)))
    }

    async fn insert_voucher(
        &mut self,
        v: &crate::domain::NewVoucher,
        exchanged_from: Option<i64>,
    ) -> OpResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO vouchers (serial, key_id, cooperative_id, household_id, issued_on, expires_on, status, exchanged_from)
             VALUES (?, ?, ?, ?, ?, ?, 'active', ?) RETURNING id",
        )
        .bind(v.serial as i64)
        .bind(i64::from(v.key_id))
        .bind(v.coop)
        .bind(v.household)
        .bind(v.issued_on.to_string())
        .bind(v.expires_on.to_string())
        .bind(exchanged_from)
        .fetch_one(&mut *self.conn)
        .await?;
        Ok(id)
    }

    async fn households_to_bill(&mut self, company: i64, month: &str) -> OpResult<Vec<BillingRow>> {
        // The compounds with the company in the month billed, each household's area in it
        // (master data changes, migration 0021).
        let day = "(?2 || '-01')";
        let sql = format!(
            "SELECT h.id, h.code, c.code, {} FROM households h
             JOIN compounds c ON c.id = h.compound_id
             WHERE {} = ?1
               AND NOT EXISTS (SELECT 1 FROM fee_bills b WHERE b.household_id = h.id AND b.month = ?2)
             ORDER BY h.id",
            rows::area_on(day),
            rows::company_on(day)
        );
        let rows = sqlx::query(&sql)
            .bind(company)
            .bind(month)
            .fetch_all(&mut *self.conn)
            .await?;
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
        let mut out = HashMap::with_capacity(households.len());
        // Bounded IN lists: SQLite allows at most 32766 bound values per statement.
        for chunk in households.chunks(10_000) {
            let mut q = QueryBuilder::new(
                "SELECT owner_id, balance FROM accounts WHERE owner_kind = 'household' AND name = 'fees' AND owner_id IN (",
            );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *self.conn).await? {
                out.insert(r.try_get::<i64, _>(0)?, Amount::from_fen(r.try_get(1)?));
            }
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
        // Seven values a row: 4,000 rows stay under SQLite's 32,766 bound values.
        for chunk in bills.chunks(4_000) {
            let mut q = QueryBuilder::new("INSERT INTO fee_bills (household_id, company_id, month, amount, settled, entry_id, open) ");
            q.push_values(chunk, |mut b, (household, amount, settled)| {
                b.push_bind(*household)
                    .push_bind(company)
                    .push_bind(month)
                    .push_bind(amount.fen())
                    .push_bind(settled.fen())
                    .push_bind(entry)
                    .push_bind(i64::from(settled < amount));
            });
            q.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn fees_elsewhere(&mut self, company: i64) -> OpResult<HashMap<i64, Amount>> {
        let rows = sqlx::query(&rows::fees_elsewhere_sql("?1", ""))
            .bind(company)
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, Amount::from_fen(r.try_get(1)?))))
            .collect()
    }

    async fn household_company_on(&mut self, household: i64, day: NaiveDate) -> OpResult<i64> {
        let sql = format!(
            "SELECT {} FROM households h JOIN compounds c ON c.id = h.compound_id WHERE h.id = ?2",
            rows::company_on("?1")
        );
        Ok(sqlx::query_scalar(&sql)
            .bind(day.to_string())
            .bind(household)
            .fetch_one(&mut *self.conn)
            .await?)
    }

    async fn open_bills(&mut self, household: i64, company: i64) -> OpResult<Vec<OpenBill>> {
        let rows = sqlx::query(
            // The household's open bills by the partial index; with no statistics SQLite would
            // take fee_bills_by_company for `company_id = ?` and read every bill of the company
            // (a payment's cost growing with the months billed).
            "SELECT id, month, amount, settled FROM fee_bills INDEXED BY fee_bills_open
             WHERE household_id = ? AND open = 1 AND company_id = ? ORDER BY month",
        )
        .bind(household)
        .bind(company)
        .fetch_all(&mut *self.conn)
        .await?;
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
        for (bill, add) in settled {
            sqlx::query(
                "UPDATE fee_bills SET settled = settled + ?1, open = (settled + ?1 < amount)
                 WHERE id = ?2",
            )
            .bind(add.fen())
            .bind(bill)
            .execute(&mut *self.conn)
            .await?;
        }
        Ok(())
    }

    async fn settle_bills_for(&mut self, credits: &[(i64, i64, Amount)]) -> OpResult<()> {
        if credits.is_empty() {
            return Ok(());
        }
        let mut lap = Lap::new(credits.len() > BULK_POSTINGS);
        let mut credits: Vec<(i64, i64, i64)> =
            credits.iter().map(|(h, k, a)| (*h, *k, a.fen())).collect();
        credits.sort_unstable();
        // Every open bill, by household and oldest first (the partial index fee_bills_open
        // yields them in that order), as one row of JSON arrays; the credits are spread here and
        // written back in a few statements.
        let open = sqlx::query(
            "SELECT json_group_array(id), json_group_array(household_id), json_group_array(unpaid),
                    json_group_array(company_id)
             FROM (SELECT id, household_id, amount - settled AS unpaid, company_id FROM fee_bills
                   WHERE open = 1 ORDER BY household_id, month)",
        )
        .fetch_one(&mut *self.conn)
        .await?;
        let bills: Vec<i64> = json_column(&open, 0)?;
        let households: Vec<i64> = json_column(&open, 1)?;
        let amounts: Vec<i64> = json_column(&open, 2)?;
        let companies: Vec<i64> = json_column(&open, 3)?;
        drop(open);
        if households.len() != bills.len()
            || amounts.len() != bills.len()
            || companies.len() != bills.len()
        {
            return Err(StoreError("open bills: columns of unequal length".into()).into());
        }
        if households.windows(2).any(|w| w[0] > w[1]) {
            return Err(StoreError("open bills did not come in household order".into()).into());
        }
        // (bill, amount taken, whether that closes the bill)
        let mut takes: Vec<(i64, i64, bool)> = Vec::with_capacity(credits.len());
        let mut c = 0;
        for (((bill, household), unpaid), company) in bills
            .into_iter()
            .zip(households)
            .zip(amounts)
            .zip(companies)
        {
            while c < credits.len() && credits[c].0 < household {
                c += 1;
            }
            // A credit settles only the bills of its company (a moved compound's old bills are
            // its old company's).
            if let Some((h, k, credit)) = credits.get_mut(c) {
                let take = unpaid.min(*credit);
                if *h == household && *k == company && take > 0 {
                    takes.push((bill, take, take == unpaid));
                    *credit -= take;
                }
            }
        }
        takes.sort_unstable();
        lap.done("settle bills: open bills");
        // Bills that stay open keep their place in the index of open bills; only those that
        // close are taken out of it.
        for closing in [false, true] {
            let group: Vec<(i64, i64)> = takes
                .iter()
                .filter(|t| t.2 == closing)
                .map(|t| (t.0, t.1))
                .collect();
            for chunk in group.chunks(ROWS_PER_INSERT * 2) {
                let mut update = QueryBuilder::new("WITH take (id, amount) AS (");
                update.push_values(chunk, |mut b, (bill, take)| {
                    b.push_bind(*bill).push_bind(*take);
                });
                update.push(if closing {
                    ") UPDATE fee_bills SET settled = settled + take.amount, open = 0 FROM take
                     WHERE fee_bills.id = take.id"
                } else {
                    ") UPDATE fee_bills SET settled = settled + take.amount FROM take
                     WHERE fee_bills.id = take.id"
                });
                let updated = update.build().execute(&mut *self.conn).await?;
                if updated.rows_affected() != chunk.len() as u64 {
                    return Err(StoreError("a bill to settle is missing".into()).into());
                }
            }
        }
        lap.done("settle bills: update");
        Ok(())
    }

    async fn insert_fee_credits(
        &mut self,
        entry: i64,
        kind: &str,
        rows: &[(i64, Amount, Option<String>, Option<String>)],
    ) -> OpResult<()> {
        for chunk in rows.chunks(5_000) {
            let mut q = QueryBuilder::new("INSERT INTO fee_credits (entry_id, household_id, kind, amount, method, reference) ");
            q.push_values(chunk, |mut b, (household, amount, method, reference)| {
                b.push_bind(entry)
                    .push_bind(*household)
                    .push_bind(kind)
                    .push_bind(amount.fen())
                    .push_bind(method.clone())
                    .push_bind(reference.clone());
            });
            q.build().execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    async fn next_fee_receipt(&mut self, company: i64) -> OpResult<(i64, String)> {
        // The one writer holds the database: the last number is read and used in one
        // transaction, and UNIQUE (company_id, number) is the backstop.
        let row = sqlx::query(
            "SELECT c.code, COALESCE((SELECT MAX(number) FROM fee_receipts r
                                      WHERE r.company_id = c.id), 0) + 1
             FROM companies c WHERE c.id = ?",
        )
        .bind(company)
        .fetch_one(&mut *self.conn)
        .await?;
        Ok((row.try_get(1)?, row.try_get(0)?))
    }

    async fn insert_fee_receipt(&mut self, r: &FeeReceiptRow) -> OpResult<()> {
        sqlx::query(
            "INSERT INTO fee_receipts (company_id, number, entry_id, household_id, amount, method,
                                       cooperative_id, shop_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        .await?;
        Ok(())
    }

    async fn month_close(&mut self, coop: i64, month: &str) -> OpResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT result FROM month_closes WHERE cooperative_id = ? AND month = ?",
        )
        .bind(coop)
        .bind(month)
        .fetch_optional(&mut *self.conn)
        .await?)
    }

    async fn latest_close(&mut self, coop: i64) -> OpResult<Option<(String, String)>> {
        let row = sqlx::query("SELECT month, result FROM month_closes WHERE cooperative_id = ? ORDER BY month DESC LIMIT 1")
            .bind(coop)
            .fetch_optional(&mut *self.conn)
            .await?;
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
        let rows = sqlx::query(
            "SELECT a.name, a.type, SUM(p.amount) FROM postings p
             JOIN accounts a ON a.id = p.account_id
             JOIN entries e ON e.id = p.entry_id
             WHERE a.owner_kind = 'cooperative' AND a.owner_id = ?
               AND (a.name IN ('sales', 'cogs', 'promotion') OR a.name LIKE 'expense:%')
               AND e.business_date BETWEEN ? AND ?
             GROUP BY a.id",
        )
        .bind(coop)
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&mut *self.conn)
        .await?;
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
        let (candidates, fee_accounts) =
            close_candidates_in(self.conn, coop, from, to, i64::MAX).await?;
        // The accounts' ids for the writer's cache: the close credits them.
        let spec = crate::ledger::chart::household_fees(0);
        let cache = self.state.accounts.group(kind_slot(spec.owner), &spec.name);
        cache.reserve(fee_accounts.len());
        for (owner, account) in fee_accounts {
            let meta = AccountMeta {
                id: AccountId(account),
                sign: spec.kind.normal_sign(),
                bounded: spec.bounded,
            };
            cache.insert(owner, meta);
        }
        Ok(candidates)
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
        sqlx::query("INSERT INTO month_closes (cooperative_id, month, entry_id, closed_on, inputs, result, shares) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(coop)
            .bind(month)
            .bind(entry)
            .bind(&self.now)
            .bind(inputs)
            .bind(result)
            .bind(shares)
            .execute(&mut *self.conn)
            .await?;
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
        sqlx::query(
            "INSERT INTO settlements (entry_id, cooperative_id, company_id, amount, reference, business_date)
             SELECT ?, ?, ?, ?, ?, business_date FROM entries WHERE id = ?",
        )
        .bind(entry)
        .bind(coop)
        .bind(company)
        .bind(amount.fen())
        .bind(reference)
        .bind(entry)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

/// Per household, what moved its fees after `last`, the last day of `month`, that is not for
/// `month` or an earlier one: later months' bills and payments, and every close of `month` or a
/// later one (any cooperative's), so that the balance less this is the balance at the month's
/// end, before any close of it, whichever cooperative closed first. With `before` (a chain
/// place), every entry after it counts as after too: `verify` recomputing a close leaves out
/// what was posted since.
async fn fee_changes_after_in(
    conn: &mut SqliteConnection,
    month: &str,
    last: NaiveDate,
    before: i64,
) -> OpResult<HashMap<i64, Amount>> {
    // Anything for a later month, or posted after a close, is dated after `last`: the entries
    // index narrows the scan to the days since the month ended (CROSS JOIN keeps entries the
    // outer loop, rather than every household's fee postings).
    let rows = sqlx::query(
        "SELECT a.owner_id, SUM(p.amount) FROM entry_months e
         CROSS JOIN postings p ON p.entry_id = e.entry_id
         CROSS JOIN accounts a ON a.id = p.account_id
         WHERE e.business_date > ?1 AND a.owner_kind = 'household' AND a.name = 'fees'
           AND (e.service_month > ?2 OR e.entry_id > ?3
                OR e.entry_id IN (SELECT entry_id FROM month_closes WHERE month = ?2))
         GROUP BY a.owner_id",
    )
    .bind(last.to_string())
    .bind(month)
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, Amount::from_fen(r.try_get(1)?))))
        .collect()
}

/// A close's candidates as of `to` ([`domain::Tx::close_candidates`]), read on `conn`: the
/// writer's connection for the close, a read snapshot for `verify` (with `before`, the close's
/// own place in the chain; `i64::MAX` for the close itself). Also returns every household fee
/// account as (owner, account id), which the writer caches.
async fn close_candidates_in(
    conn: &mut SqliteConnection,
    coop: i64,
    from: NaiveDate,
    to: NaiveDate,
    before: i64,
) -> OpResult<(Vec<Candidate>, Vec<(i64, i64)>)> {
    // Each read is one row of JSON arrays, a column each, merged here by household id rather
    // than joined in SQL: a million households are then three rows and three sequential
    // scans, with no index probe per household (SPEC §12: a province-sized close).
    let mut lap = Lap::new(true);
    // CROSS JOIN keeps households the outer loop: they come in id order.
    // The compounds in the programme at the month's end, with the company they were with in
    // that month (master data changes, migration 0021): read per compound, a handful.
    let sql = format!(
        "WITH f AS (SELECT c.id, {} AS company_id FROM compounds c WHERE {})
         SELECT json_group_array(h.id), json_group_array(h.code), json_group_array(f.company_id)
         FROM households h CROSS JOIN f ON f.id = h.compound_id",
        rows::company_on("?1"),
        rows::eligible_on("?1")
    );
    let households = sqlx::query(&sql)
        .bind(to.to_string())
        .fetch_one(&mut *conn)
        .await?;
    let ids: Vec<i64> = json_column(&households, 0)?;
    let codes: Vec<String> = json_column(&households, 1)?;
    let companies: Vec<i64> = json_column(&households, 2)?;
    drop(households);
    if codes.len() != ids.len() || companies.len() != ids.len() {
        return Err(StoreError("close candidates: columns of unequal length".into()).into());
    }
    let mut households: Vec<(i64, String, i64)> = ids
        .into_iter()
        .zip(codes)
        .zip(companies)
        .map(|((id, code), company)| (id, code, company))
        .collect();
    households.sort_unstable_by_key(|h| h.0);
    lap.done("candidates: households");
    let company_codes: IdMap<String> =
        sqlx::query_as::<_, (i64, String)>("SELECT id, code FROM companies")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    let fees = sqlx::query(
        "SELECT json_group_array(owner_id), json_group_array(id), json_group_array(balance)
         FROM accounts NOT INDEXED
         WHERE owner_kind = 'household' AND name = 'fees' AND type = 'asset' AND bounded = 0",
    )
    .fetch_one(&mut *conn)
    .await?;
    let owners: Vec<i64> = json_column(&fees, 0)?;
    let accounts: Vec<i64> = json_column(&fees, 1)?;
    let balances: Vec<i64> = json_column(&fees, 2)?;
    drop(fees);
    let mut fees: Vec<(i64, i64, i64)> = owners
        .into_iter()
        .zip(accounts)
        .zip(balances)
        .map(|((owner, account), balance)| (owner, account, balance))
        .collect();
    fees.sort_unstable();
    // As of the month's last day: what moved the balances since, for later months, is taken
    // back out.
    let later = fee_changes_after_in(conn, &domain::month_of(from), to, before).await?;
    // A moved compound's household weighs what it owes the company it allocates through: what
    // belongs to another company is taken out too.
    let elsewhere: HashMap<i64, i64> =
        sqlx::query_as(&rows::close_fees_elsewhere_sql("?1", "?2", "?3", ""))
            .bind(to.to_string())
            .bind(domain::month_of(from))
            .bind(before)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
    for (owner, _, balance) in &mut fees {
        let change = later
            .get(owner)
            .map_or(0, |c| c.fen())
            .checked_add(elsewhere.get(owner).copied().unwrap_or(0))
            .and_then(|c| balance.checked_sub(c));
        *balance = change
            .ok_or_else(|| StoreError(format!("fee balance of household {owner} overflows")))?;
    }
    lap.done("candidates: fee balances");
    // Wallet and voucher tenders of the month, net of what was refunded by its last day,
    // summed here per household.
    let tenders = sqlx::query(
        "SELECT json_group_array(COALESCE(t.household_id, v.household_id)),
                json_group_array(t.amount - t.refunded + CASE WHEN t.refunded > 0 THEN (
                    SELECT COALESCE(SUM(r.amount), 0) FROM sale_refund_tenders r
                    JOIN entries re ON re.id = r.entry_id
                    WHERE r.sale_id = t.sale_id AND r.idx = t.idx AND re.business_date > ?3)
                ELSE 0 END)
         FROM sale_tenders t JOIN sales s ON s.id = t.sale_id
         LEFT JOIN vouchers v ON v.id = t.voucher_id
         WHERE s.cooperative_id = ?1 AND s.business_date BETWEEN ?2 AND ?3
           AND t.type IN ('wallet', 'voucher')",
    )
    .bind(coop)
    .bind(from.to_string())
    .bind(to.to_string())
    .fetch_one(&mut *conn)
    .await?;
    let spenders: Vec<Option<i64>> = json_column(&tenders, 0)?;
    let spent: Vec<i64> = json_column(&tenders, 1)?;
    drop(tenders);
    let mut spend: Vec<(i64, i64)> = spenders
        .into_iter()
        .zip(spent)
        .filter_map(|(household, fen)| Some((household?, fen)))
        .collect();
    spend.sort_unstable();
    lap.done("candidates: spending");
    // Merge the three by household id.
    let (mut f, mut t) = (0, 0);
    let mut candidates = Vec::with_capacity(households.len());
    for (id, code, company) in households {
        while f < fees.len() && fees[f].0 < id {
            f += 1;
        }
        let balance = match fees.get(f) {
            Some(row) if row.0 == id => row.2,
            _ => 0,
        };
        while t < spend.len() && spend[t].0 < id {
            t += 1;
        }
        let mut credit_spend = 0i64;
        while t < spend.len() && spend[t].0 == id {
            credit_spend = credit_spend
                .checked_add(spend[t].1)
                .ok_or_else(|| StoreError("credit spending overflows".into()))?;
            t += 1;
        }
        candidates.push(Candidate {
            credit_spend,
            fees_balance: Amount::from_fen(balance),
            household: EligibleHousehold {
                id,
                code,
                company,
                company_code: company_codes
                    .get(&company)
                    .cloned()
                    .ok_or_else(|| StoreError(format!("no company {company}")))?,
            },
        });
    }
    lap.done("candidates: merge");
    let fee_accounts = fees
        .into_iter()
        .map(|(owner, account, _)| (owner, account))
        .collect();
    Ok((candidates, fee_accounts))
}

/// `verify`'s till reads: an entry's id is its place in the chain.
const TILL_SQL: TillSql = TillSql {
    sales: "SELECT entry_id, shop_id, household_id FROM sales ORDER BY entry_id",
    lines: "SELECT COALESCE(s.entry_id, -1), l.idx, l.sku, l.qty, l.price, l.amount, l.cost
            FROM sale_lines l LEFT JOIN sales s ON s.id = l.sale_id ORDER BY 1, l.idx",
    topups: "SELECT entry_id, shop_id FROM topups ORDER BY entry_id",
    changes: "SELECT id, entry_id, subject, subject_id, field, old_value, new_value, effective_from
              FROM master_changes ORDER BY id",
};
