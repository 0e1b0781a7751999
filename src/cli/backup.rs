//! `hongxin backup` and `hongxin restore`: an online copy of an SQLite ledger while the server
//! runs, and putting one back only once its hash chain and every balance verify.
//!
//! PostgreSQL has its own tools for this (`pg_dump -Fc`, `pg_basebackup` with WAL archiving),
//! described in docs/deployment.md; restoring one is followed by `hongxin verify`.
//!
//! Neither copies the key file: it is a secret, and it belongs with the backup but apart from
//! it (encrypted). Both commands say so.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::app::{is_postgres, redact_url, sqlite_path, App, Settings};
use crate::cli::CliError;
use crate::config::Config;

#[derive(Args)]
pub struct BackupArgs {
    /// The new backup file (it must not exist yet)
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A backup made by hongxin backup
    #[arg(long, short, value_name = "FILE")]
    pub input: PathBuf,
}

fn not_for_postgres(database: &str, what: &str) -> anyhow::Result<()> {
    if is_postgres(database) {
        return Err(CliError::Usage(format!(
            "{what} copies SQLite files; for PostgreSQL use pg_dump -Fc (or pg_basebackup with \
             WAL archiving) and, after pg_restore, hongxin verify: see docs/deployment.md"
        ))
        .into());
    }
    Ok(())
}

pub async fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<()> {
    let database = &config.settings.database;
    not_for_postgres(database, "hongxin backup")?;
    if args.output.exists() {
        return Err(CliError::Usage(format!(
            "{} already exists: a backup never overwrites a file",
            args.output.display()
        ))
        .into());
    }
    let (url, output) = (database.clone(), args.output.clone());
    let head =
        tokio::task::spawn_blocking(move || crate::store::sqlite::backup_into(&url, &output))
            .await??;
    let key_file = config.settings.key_file_path()?;
    eprintln!(
        "backed up {} into {} (owner-only), consistent at entry {}\n  check it later with: \
         hongxin verify --expect-head {}:{}\n  the key file {} is NOT in the backup: keep a copy \
         with it, separately and encrypted; without it the vouchers in circulation cannot be \
         verified",
        redact_url(database),
        args.output.display(),
        head.seq,
        head.seq,
        head.hash,
        key_file.display()
    );
    println!("{}:{}", head.seq, head.hash);
    Ok(())
}

pub async fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let database = &config.settings.database;
    not_for_postgres(database, "hongxin restore")?;
    let target = sqlite_path(database)
        .ok_or_else(|| CliError::Usage(format!("{database} is not an SQLite database file")))?;
    if target.exists() {
        return Err(CliError::Usage(format!(
            "{} exists: restore only into a new file (move the old one aside first, with its \
             -wal and -shm files, and stop the server)",
            target.display()
        ))
        .into());
    }
    if !args.input.is_file() {
        return Err(CliError::Usage(format!("no backup at {}", args.input.display())).into());
    }
    // Check a scratch copy, so that neither the backup nor the target is touched by the
    // check (opening a database migrates it and may write its WAL).
    let scratch = tempdir_beside(&target)?;
    let check = scratch.join("check.db");
    std::fs::copy(&args.input, &check)?;
    let settings = Settings {
        database: format!("sqlite://{}", check.display()),
        ..config.settings.clone()
    };
    let verdict = async {
        let app = App::open_with_clock(&settings, config.settings.clock()).await?;
        anyhow::Ok(app.verify().await?)
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let report = verdict?;
    if let Some(problem) = report.first_problem {
        return Err(CliError::Failed(format!(
            "the backup {} does not verify, nothing restored: {problem}",
            args.input.display()
        ))
        .into());
    }
    // Copy under a temporary name and rename, so a crash leaves no half database in place.
    let partial = target.with_extension("restoring");
    copy_private(&args.input, &partial)?;
    std::fs::rename(&partial, &target)?;
    eprintln!(
        "restored {} into {}: {} entries verified, head {}:{}\n  use the key file that was \
         backed up with it (--key-file / HONGXIN_KEY_FILE)",
        args.input.display(),
        target.display(),
        report.entries,
        report.head_seq,
        report.head_hash
    );
    println!("{}:{}", report.head_seq, report.head_hash);
    Ok(())
}

/// A new private directory next to `target`, on the same file system.
fn tempdir_beside(target: &Path) -> anyhow::Result<PathBuf> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let dir = parent.join(format!(".hongxin-restore-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

/// Copies `from` to the new file `to` with owner-only permissions, synced.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(to)?;
    std::io::copy(&mut std::fs::File::open(from)?, &mut out)?;
    out.sync_all()?;
    Ok(())
}
