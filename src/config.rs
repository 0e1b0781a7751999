//! Settings for every command: the command line and `HONGXIN_*` environment variables first,
//! then an optional TOML file (`--config` / `HONGXIN_CONFIG`), then built-in defaults.
//!
//! The file takes the same keys as the options: `database`, `policies`, `key_file`, `today`,
//! `log`, and a `[serve]` table with `serve`'s options (`listen`, `public_url`, …). One rule
//! for every option: a flag wins, then its `HONGXIN_*` variable, then the file, then the default. Relative paths in it are taken from the working directory, like those on the command
//! line, so one file means the same thing whichever way a value arrives. Database URLs may carry
//! a password (PostgreSQL), so [`Config`]'s `Debug` prints them redacted.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::Args;
use serde::Deserialize;

use crate::app::{redact_url, Settings};
use crate::clock::parse_date;

pub const DEFAULT_DATABASE: &str = "sqlite://hongxin.db";
pub const DEFAULT_POLICIES: &str = "policies";
/// Command-line tools stay quiet unless asked: their output is the answer, not a log.
pub const DEFAULT_LOG: &str = "warn";

/// The options every subcommand takes. No `Debug`: the database URL may hold a password.
#[derive(Args, Clone, Default)]
pub struct GlobalOptions {
    /// Database URL [default: sqlite://hongxin.db]
    #[arg(
        help_heading = "Global options",
        long,
        env = "HONGXIN_DATABASE",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// Directory of policy files (*.toml) [default: policies]
    #[arg(
        help_heading = "Global options",
        long,
        env = "HONGXIN_POLICIES",
        global = true,
        value_name = "DIR"
    )]
    pub policies: Option<PathBuf>,

    /// Secret key file [default: <database file>.keys.toml beside an SQLite database]
    #[arg(
        help_heading = "Global options",
        long,
        env = "HONGXIN_KEY_FILE",
        global = true,
        value_name = "PATH"
    )]
    pub key_file: Option<PathBuf>,

    /// Fix the business date (Asia/Shanghai) for demos, training and tests
    #[arg(help_heading = "Global options", long, env = "HONGXIN_TODAY", global = true, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub today: Option<NaiveDate>,

    /// TOML file with database, policies, key_file, today and log; options above win over it
    #[arg(
        help_heading = "Global options",
        long,
        env = "HONGXIN_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

/// The configuration file. Unknown keys are refused so that a misspelt `databse` cannot
/// silently send a command to the default database.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database: Option<String>,
    pub policies: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub today: Option<String>,
    /// A tracing filter such as `info` or `hongxin=debug,sqlx=warn`.
    pub log: Option<String>,
    /// `hongxin serve`'s options.
    #[serde(default)]
    pub serve: ServeFile,
}

/// The `[serve]` table: `serve`'s options by the names of its flags, with `_` for `-`. A flag
/// or its `HONGXIN_*` variable wins over the file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub body_limit: Option<usize>,
    pub idempotency_days: Option<u64>,
    pub resident_session_minutes: Option<u64>,
    pub staff_session_hours: Option<u64>,
    pub voucher_rate: Option<u32>,
    pub resident_rate: Option<u32>,
    pub auth_failure_rate: Option<u32>,
    pub header_timeout: Option<u64>,
    pub request_timeout: Option<u64>,
    pub max_connections: Option<usize>,
    pub housekeeping_seconds: Option<u64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("configuration file {}", path.display()))
    }
}

/// Everything a command needs to start.
#[derive(Clone)]
pub struct Config {
    pub settings: Settings,
    /// The tracing filter when neither `HONGXIN_LOG` nor `RUST_LOG` is set.
    pub log: String,
    /// The file's `[serve]` table, for `serve` to merge under its own options.
    pub serve: ServeFile,
}

impl Config {
    /// Reads the file named by `--config`, if any, and merges it under the options.
    pub fn load(options: &GlobalOptions) -> anyhow::Result<Config> {
        let file = match &options.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Config::merge(options, file)
    }

    pub fn merge(options: &GlobalOptions, file: FileConfig) -> anyhow::Result<Config> {
        let today = match (options.today, &file.today) {
            (Some(d), _) => Some(d),
            (None, Some(s)) => {
                Some(parse_date(s).map_err(|e| anyhow::anyhow!("configuration file: today: {e}"))?)
            }
            (None, None) => None,
        };
        Ok(Config {
            settings: Settings {
                database: options
                    .database
                    .clone()
                    .or(file.database)
                    .unwrap_or_else(|| DEFAULT_DATABASE.to_string()),
                policies_dir: options
                    .policies
                    .clone()
                    .or(file.policies)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICIES)),
                key_file: options.key_file.clone().or(file.key_file),
                today,
            },
            log: file.log.unwrap_or_else(|| DEFAULT_LOG.to_string()),
            serve: file.serve,
        })
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &redact_url(&self.settings.database))
            .field("policies_dir", &self.settings.policies_dir)
            .field("key_file", &self.settings.key_file)
            .field("today", &self.settings.today)
            .field("log", &self.log)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_win_over_the_file_and_defaults_fill_the_rest() {
        let file: FileConfig = toml::from_str(
            "database = \"sqlite://from-file.db\"\npolicies = \"/etc/hongxin/policies\"\ntoday = \"2026-11-02\"\nlog = \"info\"\n",
        )
        .unwrap();
        let options = GlobalOptions {
            database: Some("sqlite://cli.db".into()),
            ..GlobalOptions::default()
        };
        let config = Config::merge(&options, file).unwrap();
        assert_eq!(config.settings.database, "sqlite://cli.db");
        assert_eq!(
            config.settings.policies_dir,
            PathBuf::from("/etc/hongxin/policies")
        );
        assert_eq!(config.settings.today, NaiveDate::from_ymd_opt(2026, 11, 2));
        assert_eq!(config.log, "info");

        let config = Config::merge(&GlobalOptions::default(), FileConfig::default()).unwrap();
        assert_eq!(config.settings.database, DEFAULT_DATABASE);
        assert_eq!(
            config.settings.policies_dir,
            PathBuf::from(DEFAULT_POLICIES)
        );
        assert_eq!(config.settings.key_file, None);
        assert_eq!(config.log, DEFAULT_LOG);
    }

    #[test]
    fn the_file_is_checked() {
        assert!(toml::from_str::<FileConfig>("databse = \"x\"").is_err());
        let file = FileConfig {
            today: Some("2026-13-01".into()),
            ..FileConfig::default()
        };
        let err = Config::merge(&GlobalOptions::default(), file).unwrap_err();
        assert!(err.to_string().contains("today"), "{err}");
    }

    #[test]
    fn debug_hides_the_database_password() {
        let options = GlobalOptions {
            database: Some("postgres://hongxin:s3cret@db.internal/hongxin".into()),
            ..GlobalOptions::default()
        };
        let config = Config::merge(&options, FileConfig::default()).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("postgres://hongxin:***@db.internal/hongxin"),
            "{shown}"
        );
    }
}
