//! `hongxin init`: the first run of a real installation. It creates and migrates the database,
//! generates the key file (mode 0600), loads and checks the policies, and prints the first admin
//! token once, alone on standard output. A database that anyone has used (a token or an entry)
//! or a key file that already exists is refused, so a second `init` can neither hand out a
//! second "first" token nor replace the keys that signed the vouchers in circulation.

use clap::Args;

use crate::app::{redact_url, App};
use crate::cli::CliError;
use crate::config::Config;
use crate::domain::Role;

#[derive(Args, Clone, Debug)]
pub struct InitArgs {
    /// A note on the first admin token, shown by token listings and in the audit trail
    #[arg(long, value_name = "TEXT", default_value = "first admin")]
    pub label: String,
}

pub async fn run(config: &Config, args: InitArgs) -> anyhow::Result<()> {
    let settings = &config.settings;
    let key_path = settings.key_file_path()?;
    if key_path.exists() {
        return Err(CliError::Failed(format!(
            "the key file {} already exists: this installation is initialised (create more \
             tokens with hongxin token create)",
            key_path.display()
        ))
        .into());
    }
    let app = App::open(settings).await?;
    if app.store.holds_data().await? {
        // The key file was made by this open only if the database had no entries; a database
        // with tokens but no entries must not keep a key file nobody asked for.
        let _ = std::fs::remove_file(&key_path);
        return Err(CliError::Failed(format!(
            "the database {} already holds tokens or entries: this installation is initialised \
             (create more tokens with hongxin token create)",
            redact_url(&settings.database)
        ))
        .into());
    }
    let today = app.clock.today();
    let mut in_force = Vec::new();
    if let Some(p) = app.policies.topup(today) {
        in_force.push(p.reference.to_string());
    }
    if let Some(p) = app.policies.profit(today) {
        in_force.push(p.reference.to_string());
    }
    if let Some(p) = app.policies.fees(today) {
        in_force.push(p.reference.to_string());
    }
    let (id, token) =
        super::token::create(&app, Role::Admin, None, Some(args.label.clone())).await?;
    eprintln!(
        "initialised {}\n  key file {} (owner-only): back it up with the database, separately \
         and encrypted; without it the vouchers in circulation cannot be verified\n  policies \
         in force on {today}: {}\n  admin token id {id} below, shown only this once (revoke: \
         hongxin token revoke {id})",
        redact_url(&settings.database),
        key_path.display(),
        if in_force.is_empty() {
            "none".to_string()
        } else {
            in_force.join(", ")
        },
    );
    println!("{token}");
    Ok(())
}
