//! `hongxin keys list|rotate|retire`: the voucher signing keys in the key file (SPEC §6);
//! `hongxin keys rotate-links`: the secret that signs residents' card links.
//!
//! New codes are signed with the newest key that is not retired; older keys keep verifying until
//! retired. Secrets are never printed. A running server reads the key file at start-up, so it
//! must be restarted to see a change.

use clap::Subcommand;

use crate::config::Config;
use crate::voucher::KeyFile;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List key ids with when they were created and retired (never the secrets)
    List,
    /// Add a new key that signs every new voucher from now on; print its id
    Rotate,
    /// Stop a key from verifying: codes signed with it are no longer accepted
    Retire {
        /// The key id, as shown by `hongxin keys list`
        id: u8,
    },
    /// Replace the secret that signs households' card links: new links use the new one; cards
    /// already printed keep working for the grace period, then are refused
    RotateLinks {
        /// Days the old secret keeps verifying printed cards (0: refused at once)
        #[arg(long, default_value_t = 30)]
        grace_days: u32,
    },
}

pub fn run(config: &Config, command: KeysCommand) -> anyhow::Result<()> {
    let path = config.settings.key_file_path()?;
    if !path.exists() {
        anyhow::bail!(
            "no key file at {}: it is created when the database is first opened (e.g. by hongxin demo)",
            path.display()
        );
    }
    let mut file = KeyFile::load(&path)?;
    match command {
        KeysCommand::List => {
            let active = file.vouchers.active().id;
            println!("{:>3}  {:<25}  {:<25}  status", "id", "created", "retired");
            for key in file.vouchers.keys() {
                let retired = key
                    .retired_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "-".into());
                let status = if key.id == active {
                    "signs new vouchers"
                } else if key.is_retired() {
                    "retired"
                } else {
                    "verifies only"
                };
                println!(
                    "{:>3}  {:<25}  {:<25}  {status}",
                    key.id,
                    key.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    retired
                );
            }
        }
        KeysCommand::Rotate => {
            let id = file.vouchers.rotate()?;
            file.save(&path)?;
            eprintln!("key {id} now signs new vouchers; restart running servers to use it");
            println!("{id}");
        }
        KeysCommand::RotateLinks { grace_days } => {
            file.rotate_link_secret(chrono::Duration::days(i64::from(grace_days)));
            file.save(&path)?;
            let until = file
                .previous_link_until()
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default();
            println!("card links are signed with a new secret; old cards work until {until}");
            eprintln!(
                "restart running servers to use it, then print new cards (GET /v1/households/{{h}}/link)"
            );
        }
        KeysCommand::Retire { id } => {
            file.vouchers.retire(id)?;
            file.save(&path)?;
            println!("key {id} retired; vouchers signed with it no longer verify");
            eprintln!("restart running servers for this to take effect");
        }
    }
    Ok(())
}
