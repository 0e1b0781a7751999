//! Preferential policies as versioned data: reading `policies/*.toml`, checking them, and
//! choosing the version in effect on a business date.
//!
//! This module owns the policy file format (three kinds: `topup_bonus`, `profit_to_fees`,
//! `property_fees`), every start-up check on those files (syntax, semantics, duplicates, and
//! "an applied version was edited"), and the identity a ledger entry records: `id@version` plus
//! the SHA-256 of the file's bytes. It does not post anything; the ledger asks it for rules.

mod parse;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::money::Amount;

pub use parse::MIN_VOUCHER_VALIDITY_MONTHS;
pub use rules::{
    rounding_name, AllocationBasis, Bonus, Eligibility, FeePolicy, FeeRate, ProfitPolicy,
    TopupMethod, TopupPolicy, TopupRuleError, UnknownName, DEFAULT_MAX_AMOUNT,
};

use parse::{parse_file, utf8, ParsedFile, ParsedRules};

/// What a ledger entry records about the policy it applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PolicyRef {
    pub id: String,
    pub version: u32,
    /// SHA-256 of the policy file's bytes, lowercase hex.
    pub hash: String,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.version)
    }
}

/// One version of one policy, as read from its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Versioned<T> {
    pub reference: PolicyRef,
    /// First business date on which this version applies.
    pub effective_from: NaiveDate,
    pub title: String,
    pub rules: T,
}

/// The three kinds of policy file, named by their `kind` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    TopupBonus,
    ProfitToFees,
    PropertyFees,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [
        PolicyKind::TopupBonus,
        PolicyKind::ProfitToFees,
        PolicyKind::PropertyFees,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::TopupBonus => "topup_bonus",
            PolicyKind::ProfitToFees => "profit_to_fees",
            PolicyKind::PropertyFees => "property_fees",
        }
    }

    pub fn from_name(name: &str) -> Option<PolicyKind> {
        PolicyKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    fn names_list() -> String {
        PolicyKind::ALL
            .iter()
            .map(|k| format!("`{}`", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that stops start-up. Display is `file:line: reason` wherever a line is known.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: cannot read policy file: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    Malformed {
        file: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{file}:{line}: policy {policy} is defined twice (also in {first_file}); \
         each version lives in exactly one file"
    )]
    Duplicate {
        file: String,
        line: usize,
        /// `id@version`
        policy: String,
        first_file: String,
    },
    #[error("{file}:{line}: {reason}")]
    Conflict {
        file: String,
        line: usize,
        reason: String,
    },
    #[error(
        "{file}: policy {policy} was edited after it was applied (hash recorded {}…, file now {}…); \
         add a new version instead",
        short(recorded),
        short(current)
    )]
    EditedAfterApplied {
        file: String,
        /// `id@version`
        policy: String,
        recorded: String,
        current: String,
    },
    #[error(
        "policy {policy} was applied (hash {}…) but no policy file defines it any more; \
         restore its file — retire a policy by adding a new version, never by deleting one",
        short(hash)
    )]
    MissingApplied {
        /// `id@version`
        policy: String,
        hash: String,
    },
}

/// Enough of a hash to tell two apart in a message.
fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// SHA-256 of a policy file's bytes, lowercase hex: what a ledger entry records.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// All policy files, checked, with the versions of each kind in effective-date order.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    topup: Vec<Versioned<TopupPolicy>>,
    profit: Vec<Versioned<ProfitPolicy>>,
    fees: Vec<Versioned<FeePolicy>>,
    /// `(id, version)` → the file it came from, for messages.
    files: BTreeMap<(String, u32), String>,
}

/// Where a file's header keys sit, for set-level complaints.
struct Placed {
    file: String,
    kind: PolicyKind,
    id: String,
    version: u32,
    effective_from: NaiveDate,
    effective_line: usize,
}

impl PolicySet {
    /// Reads every `*.toml` in `dir`, in file-name order so that errors come out the same way
    /// on every machine. Names starting with '.' are skipped: editors leave lock and backup
    /// files there, and they are not policy versions.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let io = |file: &Path, source| PolicyError::Io {
            file: file.display().to_string(),
            source,
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".toml") || !path.is_file() {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            files.push((path.display().to_string(), bytes));
        }
        let borrowed: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        PolicySet::from_bytes(&borrowed)
    }

    /// Same checks as [`PolicySet::load_dir`] on files given in memory; the hash is of the text's
    /// UTF-8 bytes. Files are taken in name order, as from a directory.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<PolicySet, PolicyError> {
        let bytes: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        PolicySet::from_bytes(&bytes)
    }

    fn from_bytes(files: &[(&str, &[u8])]) -> Result<PolicySet, PolicyError> {
        let mut files = files.to_vec();
        files.sort_by(|a, b| a.0.cmp(b.0));
        let mut set = PolicySet::default();
        let mut placed: Vec<Placed> = Vec::new();
        for (file, bytes) in files {
            let text = utf8(file, bytes)?;
            let parsed = parse_file(file, text)?;
            set.admit(file, content_hash(bytes), parsed, &mut placed)?;
        }
        check_version_order(&placed)?;
        set.topup.sort_by_key(|v| v.effective_from);
        set.profit.sort_by_key(|v| v.effective_from);
        set.fees.sort_by_key(|v| v.effective_from);
        Ok(set)
    }

    /// Adds one parsed file after checking it against those already admitted.
    fn admit(
        &mut self,
        file: &str,
        hash: String,
        p: ParsedFile,
        placed: &mut Vec<Placed>,
    ) -> Result<(), PolicyError> {
        let policy = format!("{}@{}", p.id, p.version);
        for other in placed.iter() {
            if other.id == p.id && other.kind != p.kind {
                return Err(PolicyError::Conflict {
                    file: file.to_owned(),
                    line: p.id_line,
                    reason: format!(
                        "id `{}` is of kind `{}` here but of kind `{}` in {}; an id names one policy",
                        p.id, p.kind, other.kind, other.file
                    ),
                });
            }
            if other.kind == p.kind && other.id != p.id {
                return Err(PolicyError::Conflict {
                    file: file.to_owned(),
                    line: p.id_line,
                    reason: format!(
                        "second policy of kind `{}`: `{}` here, `{}` in {}; \
                         a kind has one policy id, so add a new version of `{}` instead",
                        p.kind, p.id, other.id, other.file, other.id
                    ),
                });
            }
        }
        // After the kind checks, so that one id on two kinds is reported as that.
        if let Some(first) = self.files.get(&(p.id.clone(), p.version)) {
            return Err(PolicyError::Duplicate {
                file: file.to_owned(),
                line: p.version_line,
                policy,
                first_file: first.clone(),
            });
        }
        placed.push(Placed {
            file: file.to_owned(),
            kind: p.kind,
            id: p.id.clone(),
            version: p.version,
            effective_from: p.effective_from,
            effective_line: p.effective_line,
        });
        self.files
            .insert((p.id.clone(), p.version), file.to_owned());
        let reference = PolicyRef {
            id: p.id,
            version: p.version,
            hash,
        };
        match p.rules {
            ParsedRules::Topup(rules) => self.topup.push(Versioned {
                reference,
                effective_from: p.effective_from,
                title: p.title,
                rules,
            }),
            ParsedRules::Profit(rules) => self.profit.push(Versioned {
                reference,
                effective_from: p.effective_from,
                title: p.title,
                rules,
            }),
            ParsedRules::Fees(rules) => self.fees.push(Versioned {
                reference,
                effective_from: p.effective_from,
                title: p.title,
                rules,
            }),
        }
        Ok(())
    }

    /// The top-up rule in effect on `date` (latest `effective_from` <= date).
    pub fn topup(&self, date: NaiveDate) -> Option<&Versioned<TopupPolicy>> {
        in_effect(&self.topup, date)
    }

    pub fn profit(&self, date: NaiveDate) -> Option<&Versioned<ProfitPolicy>> {
        in_effect(&self.profit, date)
    }

    pub fn fees(&self, date: NaiveDate) -> Option<&Versioned<FeePolicy>> {
        in_effect(&self.fees, date)
    }

    /// The ceiling on any single amount on `date`: the lowest `max_amount` of the versions in
    /// force (each defaults to [`DEFAULT_MAX_AMOUNT`]), or the default when none is.
    pub fn max_amount(&self, date: NaiveDate) -> Amount {
        [
            self.topup(date).map(|p| p.rules.max_amount),
            self.profit(date).map(|p| p.rules.max_amount),
            self.fees(date).map(|p| p.rules.max_amount),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(DEFAULT_MAX_AMOUNT)
    }

    /// All versions of every kind: top-up, then profit, then fees, each oldest first.
    pub fn topup_versions(&self) -> &[Versioned<TopupPolicy>] {
        &self.topup
    }

    pub fn profit_versions(&self) -> &[Versioned<ProfitPolicy>] {
        &self.profit
    }

    pub fn fee_versions(&self) -> &[Versioned<FeePolicy>] {
        &self.fees
    }

    /// Every loaded version's reference: top-up, profit, fees, each oldest first.
    pub fn references(&self) -> Vec<&PolicyRef> {
        self.topup
            .iter()
            .map(|v| &v.reference)
            .chain(self.profit.iter().map(|v| &v.reference))
            .chain(self.fees.iter().map(|v| &v.reference))
            .collect()
    }

    /// The loaded reference for `id@version`, if any.
    pub fn reference(&self, id: &str, version: u32) -> Option<&PolicyRef> {
        self.references()
            .into_iter()
            .find(|r| r.id == id && r.version == version)
    }

    /// The file a loaded version came from.
    pub fn file_of(&self, id: &str, version: u32) -> Option<&str> {
        self.files
            .get(&(id.to_owned(), version))
            .map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Refuses start-up if a version the journal already used has changed or gone: an entry's
    /// recorded hash must keep pointing at the rules that produced it. `applied` may repeat.
    pub fn check_applied(&self, applied: &[PolicyRef]) -> Result<(), PolicyError> {
        for a in applied {
            let Some(current) = self.reference(&a.id, a.version) else {
                return Err(PolicyError::MissingApplied {
                    policy: a.to_string(),
                    hash: a.hash.clone(),
                });
            };
            if !current.hash.eq_ignore_ascii_case(&a.hash) {
                return Err(PolicyError::EditedAfterApplied {
                    file: self.file_of(&a.id, a.version).unwrap_or("?").to_owned(),
                    policy: a.to_string(),
                    recorded: a.hash.clone(),
                    current: current.hash.clone(),
                });
            }
        }
        Ok(())
    }
}

fn in_effect<T>(versions: &[Versioned<T>], date: NaiveDate) -> Option<&Versioned<T>> {
    versions.iter().rev().find(|v| v.effective_from <= date)
}

/// A later version must take effect strictly later: with equal dates the choice would be
/// arbitrary, and an older version dated later would silently come back into force.
fn check_version_order(placed: &[Placed]) -> Result<(), PolicyError> {
    let mut by_id: BTreeMap<&str, Vec<&Placed>> = BTreeMap::new();
    for p in placed {
        by_id.entry(p.id.as_str()).or_default().push(p);
    }
    for versions in by_id.values_mut() {
        versions.sort_by_key(|p| p.version);
        for pair in versions.windows(2) {
            let (older, newer) = (pair[0], pair[1]);
            if newer.effective_from <= older.effective_from {
                return Err(PolicyError::Conflict {
                    file: newer.file.clone(),
                    line: newer.effective_line,
                    reason: format!(
                        "{}@{} takes effect {}, which is not after {}@{} ({}, in {}); \
                         each new version must take effect later than the one before",
                        newer.id,
                        newer.version,
                        newer.effective_from,
                        older.id,
                        older.version,
                        older.effective_from,
                        older.file
                    ),
                });
            }
        }
    }
    Ok(())
}
