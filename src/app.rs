//! Starting the application the same way everywhere (command line, server, tests): settings in,
//! an [`App`] out, holding the store, the policies, the keys and the clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;

use crate::clock::Clock;
use crate::domain::{Command, Receipt, Rejection, StoreError};
use crate::policy::PolicySet;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Services, SqliteStore};
use crate::store::{Envelope, Outcome, Store, VoucherRow};
use crate::voucher::{KeyFile, VoucherCode, VoucherCodeError};

/// Where things are. Secrets never appear here: they live in the key file (and a database
/// password, if any, is redacted from `Debug`).
#[derive(Clone)]
pub struct Settings {
    /// `sqlite://path` (created on first use) or `postgres://…`.
    pub database: String,
    pub policies_dir: PathBuf,
    /// Defaults to `<database file>.keys.toml` beside an SQLite database.
    pub key_file: Option<PathBuf>,
    pub today: Option<NaiveDate>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &redact_url(&self.database))
            .field("policies_dir", &self.policies_dir)
            .field("key_file", &self.key_file)
            .field("today", &self.today)
            .finish()
    }
}

impl Settings {
    pub fn key_file_path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.key_file {
            return Ok(p.clone());
        }
        match sqlite_path(&self.database) {
            Some(db) => Ok(PathBuf::from(format!("{}.keys.toml", db.display()))),
            None => anyhow::bail!(
                "set HONGXIN_KEY_FILE (or --key-file): the key file cannot sit beside {}",
                redact_url(&self.database)
            ),
        }
    }

    pub fn clock(&self) -> Clock {
        match self.today {
            Some(d) => Clock::Fixed(d),
            None => Clock::System,
        }
    }
}

/// The file path of an `sqlite:` URL.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// A database URL safe to print: any password replaced, in the authority or the query.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = redact_authority(base);
    match query {
        None => base,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

fn redact_authority(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// True when an SQLite database has no journal entries yet (or cannot be read as one).
async fn sqlite_is_empty(url: &str) -> bool {
    use sqlx::ConnectOptions;
    use std::str::FromStr;
    let Ok(options) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
        return true;
    };
    let Ok(mut conn) = options.read_only(true).connect().await else {
        return true;
    };
    let entries: Result<i64, _> = sqlx::query_scalar("SELECT COUNT(*) FROM entries")
        .fetch_one(&mut conn)
        .await;
    !matches!(entries, Ok(n) if n > 0)
}

/// Whether a PostgreSQL URL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// True when the database has no journal entries yet. A PostgreSQL server that cannot be asked
/// is an error: new keys must not be generated for a database that may hold data.
async fn database_is_empty(url: &str) -> anyhow::Result<bool> {
    if is_postgres(url) {
        PostgresStore::journal_is_empty(url)
            .await
            .with_context(|| format!("checking {} for entries", redact_url(url)))
    } else {
        Ok(sqlite_is_empty(url).await)
    }
}

#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub policies: Arc<PolicySet>,
    pub keys: Arc<KeyFile>,
    pub clock: Clock,
}

impl App {
    pub async fn open(settings: &Settings) -> anyhow::Result<App> {
        Self::open_with_clock(settings, settings.clock()).await
    }

    pub async fn open_with_clock(settings: &Settings, clock: Clock) -> anyhow::Result<App> {
        let policies = PolicySet::load_dir(&settings.policies_dir).with_context(|| {
            format!("loading policies from {}", settings.policies_dir.display())
        })?;
        let key_path = settings.key_file_path()?;
        let database_exists = match sqlite_path(&settings.database) {
            Some(db) => db.exists(),
            // A server database always exists; only its journal can tell (below).
            None => true,
        };
        if !key_path.exists() && database_exists && !database_is_empty(&settings.database).await? {
            anyhow::bail!(
                "the key file {} is missing but the database {} already holds data: vouchers issued \
                 under the lost keys would no longer verify. Restore the key file from the backup \
                 (or point --key-file at it) instead of generating new keys.",
                key_path.display(),
                redact_url(&settings.database)
            );
        }
        let (keys, created) = KeyFile::load_or_create(&key_path)
            .with_context(|| format!("opening key file {}", key_path.display()))?;
        if created {
            tracing::info!(path = %key_path.display(), "generated a new key file; back it up with the database");
        }
        let policies = Arc::new(policies);
        let keys = Arc::new(keys);
        let services = Services {
            policies: policies.clone(),
            keys: Arc::new(keys.vouchers.clone()),
            clock: clock.clone(),
        };
        let store: Arc<dyn Store> = if settings.database.starts_with("sqlite:") {
            if let Some(parent) =
                sqlite_path(&settings.database).and_then(|p| p.parent().map(Path::to_path_buf))
            {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(&parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
            }
            Arc::new(SqliteStore::open(&settings.database, services).await?)
        } else if is_postgres(&settings.database) {
            Arc::new(PostgresStore::open(&settings.database, services).await?)
        } else {
            anyhow::bail!(
                "unsupported database URL {}: this build stores in sqlite://PATH or postgres://…",
                redact_url(&settings.database)
            );
        };
        Ok(App {
            store,
            policies,
            keys,
            clock,
        })
    }

    /// Runs a command as the operator (no token, no idempotency key).
    pub async fn run(&self, command: Command) -> Result<Result<Receipt, Rejection>, StoreError> {
        Ok(self
            .store
            .execute(Envelope::operator(command))
            .await?
            .result)
    }

    pub async fn execute(&self, envelope: Envelope) -> Result<Outcome, StoreError> {
        self.store.execute(envelope).await
    }

    /// What a cashier's lookup may learn of a code: a usable voucher, or nothing. Unknown,
    /// forged, spent, void and expired codes are all `Ok(None)`; only a typo is told apart.
    pub async fn voucher_lookup(
        &self,
        code: &str,
    ) -> Result<Result<Option<VoucherRow>, VoucherCodeError>, StoreError> {
        let code = match VoucherCode::verify(&self.keys.vouchers, code) {
            Ok(c) => c,
            Err(VoucherCodeError::Typo) => return Ok(Err(VoucherCodeError::Typo)),
            Err(_) => return Ok(Ok(None)),
        };
        let today = self.clock.today();
        Ok(Ok(self.store.voucher(code.serial()).await?.filter(|v| {
            v.status == crate::domain::VoucherStatus::Active
                && v.expires_on >= today
                && v.balance.is_positive()
        })))
    }

    /// `hongxin verify`: the journal (hash chain, balances) and then every stored month close,
    /// recomputed from its inputs and compared with what its entry posted.
    pub async fn verify(&self) -> Result<crate::ledger::VerifyReport, StoreError> {
        self.verify_expecting(None).await
    }

    /// [`Self::verify`], and with `expect` also that the entry of that head is still in the
    /// chain with that hash: a journal cut short fails.
    pub async fn verify_expecting(
        &self,
        expect: Option<&crate::ledger::ExpectedHead>,
    ) -> Result<crate::ledger::VerifyReport, StoreError> {
        let mut report = self.store.verify().await?;
        if report.first_problem.is_some() {
            return Ok(report);
        }
        if let Some(expect) = expect {
            let found = if expect.seq == 0 {
                Some(hex::encode(crate::ledger::GENESIS_HASH))
            } else if expect.seq > report.head_seq {
                None
            } else {
                self.store
                    .journal_chunk(expect.seq - 1, 1)
                    .await?
                    .into_iter()
                    .find(|e| e.seq == expect.seq)
                    .map(|e| e.hash)
            };
            match found {
                None => {
                    report.fail(format!(
                        "expected head {expect}: entry {} is not in the chain (it ends at {}):                          the journal was cut short",
                        expect.seq, report.head_seq
                    ));
                    return Ok(report);
                }
                Some(hash) if hash != expect.hash => {
                    report.fail(format!(
                        "expected head {expect}: entry {} now has hash {hash}",
                        expect.seq
                    ));
                    return Ok(report);
                }
                Some(_) => {}
            }
        }
        // The loss each cooperative's last close carried out, as recomputed.
        let mut loss_out: std::collections::HashMap<i64, crate::money::Amount> =
            std::collections::HashMap::new();
        for run in self.store.close_runs().await? {
            report.close_runs += 1;
            let name = format!("month close {} {}", run.cooperative, run.month);
            if let Some(p) = self.recheck_close_figures(&report.summary, &run, &mut loss_out) {
                report.first_problem = Some(format!("{name} (month_closes): {p}"));
                break;
            }
            if let Some(p) = self.recheck_close_weights(&run).await? {
                report.first_problem = Some(format!("{name} (month_closes): {p}"));
                break;
            }
            let problem = match serde_json::from_str::<crate::fees::CloseInputs>(&run.inputs) {
                Err(e) => Some(format!("stored inputs unreadable: {e}")),
                Ok(inputs) => crate::fees::recheck_close(&inputs, &run.shares).or_else(|| {
                    let stored: std::collections::BTreeMap<&str, crate::money::Amount> = run
                        .shares
                        .iter()
                        .filter(|s| s.3.is_positive())
                        .map(|s| (s.0.as_str(), s.3))
                        .collect();
                    let posted: std::collections::BTreeMap<&str, crate::money::Amount> =
                        run.posted.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                    (stored != posted)
                        .then(|| "its entry does not post the stored shares".to_string())
                }),
            };
            if let Some(p) = problem {
                report.first_problem = Some(format!("{name}: {p}"));
                break;
            }
        }
        Ok(report)
    }

    /// A stored close's weights and caps against those of its candidates, read again as of the
    /// end of its month from the entries up to its own, by the close's own read and rule.
    /// `None` when they agree. A close from before closes were always entries posted nothing
    /// and has no place in the chain to read up to: its weights are taken as stored.
    async fn recheck_close_weights(
        &self,
        run: &crate::store::CloseRun,
    ) -> Result<Option<String>, StoreError> {
        let Some(seq) = run.entry_seq else {
            return Ok(None);
        };
        let last = match crate::fees::month_bounds("month", &run.month) {
            Ok((_, last)) => last,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let Some(policy) = self.policies.profit(last) else {
            return Ok(Some(format!("no profit policy in force on {last}")));
        };
        let candidates = self
            .store
            .close_candidates(run.cooperative_id, &run.month, seq)
            .await?;
        Ok(crate::fees::recheck_close_weights(
            &policy.rules,
            &candidates,
            &run.shares,
        ))
    }

    /// A stored close's result and inputs against the journal and the policy in force: the
    /// month's totals, profit, loss carried in (the previous close's, recomputed) and out, the
    /// reserve carried in and out, the pool and what was allocated. `None` when they agree.
    fn recheck_close_figures(
        &self,
        summary: &crate::ledger::ChainSummary,
        run: &crate::store::CloseRun,
        loss_out: &mut std::collections::HashMap<i64, crate::money::Amount>,
    ) -> Option<String> {
        use crate::fees::{close_figures_from_chain, close_seed, month_bounds, CloseFigures};
        let result: crate::domain::CloseReceipt = match serde_json::from_str(&run.result) {
            Ok(r) => r,
            Err(e) => return Some(format!("stored result unreadable: {e}")),
        };
        let inputs: crate::fees::CloseInputs = match serde_json::from_str(&run.inputs) {
            Ok(i) => i,
            Err(e) => return Some(format!("stored inputs unreadable: {e}")),
        };
        let last = match month_bounds("month", &run.month) {
            Ok((_, last)) => last,
            Err(e) => return Some(e.to_string()),
        };
        let Some(policy) = self.policies.profit(last) else {
            return Some(format!("no profit policy in force on {last}"));
        };
        let rules = &policy.rules;
        let in_force = crate::fees::CloseInputs {
            policy: policy.reference.to_string(),
            policy_hash: policy.reference.hash.clone(),
            basis: rules.basis.as_str().to_string(),
            share: rules.share.to_string(),
            cap_at_fees_owed: rules.cap_at_fees_owed,
            seed: close_seed(&run.cooperative, &run.month),
            pool: inputs.pool,
        };
        if inputs != in_force || result.policy != in_force.policy || result.basis != in_force.basis
        {
            return Some("stored inputs differ from the policy in force".into());
        }
        let Some(seq) = run.entry_seq else {
            // A close from before closes were always entries, which posted nothing: whether it
            // may stand is the store's check (month_closes); its loss is taken as stored.
            loss_out.insert(run.cooperative_id, result.loss_carried_out);
            return None;
        };
        let loss_in = if rules.carry_losses_forward {
            loss_out
                .get(&run.cooperative_id)
                .copied()
                .unwrap_or(crate::money::Amount::ZERO)
        } else {
            crate::money::Amount::ZERO
        };
        let Some(allocated) = crate::money::Amount::checked_sum(run.shares.iter().map(|s| s.3))
        else {
            return Some("stored shares add up beyond any amount".into());
        };
        let (figures, reserve_after) = match close_figures_from_chain(
            summary,
            run.cooperative_id,
            &run.month,
            seq,
            rules,
            loss_in,
            allocated,
        ) {
            Ok(f) => f,
            Err(e) => return Some(e),
        };
        loss_out.insert(run.cooperative_id, figures.loss_carried_out);
        let stored = CloseFigures::of(&result);
        if stored != figures {
            return Some(format!(
                "stored result {stored:?} but the journal gives {figures:?}"
            ));
        }
        if inputs.pool != figures.pool {
            return Some(format!(
                "stored pool {} but the journal gives {}",
                inputs.pool, figures.pool
            ));
        }
        if reserve_after != figures.reserve {
            return Some(format!(
                "the reserve after its entry is {reserve_after}, not the {} it carried out",
                figures.reserve
            ));
        }
        let households = run.shares.iter().filter(|s| s.3.is_positive()).count() as u64;
        let by_company =
            crate::money::Amount::checked_sum(result.companies.iter().map(|c| c.amount));
        if result.households != households || by_company != Some(figures.allocated) {
            return Some("stored households or companies do not add up to the shares".into());
        }
        None
    }

    /// The printed code of a stored voucher, while its key is not retired.
    pub fn voucher_code(&self, v: &VoucherRow) -> Option<String> {
        VoucherCode::reissue(&self.keys.vouchers, v.key_id, v.serial).map(|c| c.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            sqlite_path("sqlite://hongxin.db"),
            Some(PathBuf::from("hongxin.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(sqlite_path("postgres://u:p@h/db"), None);
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret"),
            "postgres://h/db?user=u&password=***"
        );
        let s = Settings {
            database: "postgres://u:secret@h/db".into(),
            policies_dir: "policies".into(),
            key_file: None,
            today: None,
        };
        assert!(!format!("{s:?}").contains("secret"));
    }
}
