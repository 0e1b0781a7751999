//! `hongxin token create|revoke`: bearer tokens for tills, back offices, company staff and
//! residents (SPEC §8).
//!
//! A token is `hx_` followed by 32 random bytes from the operating system in hex. Only the
//! SHA-256 of the whole token string, as a client sends it, reaches the database; the token itself
//! is printed once, alone on standard output, so a script can capture it.

use clap::{ArgGroup, Args, Subcommand};
use rand::rngs::OsRng;
use rand::TryRngCore;

use crate::app::App;
use crate::cli::{accepted, open_existing, CliError};
use crate::config::Config;
use crate::domain::{Command, NewToken, Receipt, Role};

pub const TOKEN_PREFIX: &str = "hx_";
const TOKEN_BYTES: usize = 32;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it alone on standard output (it is shown only this once)
    Create(CreateArgs),
    /// Revoke a token by its id (printed to standard error when it was created)
    Revoke {
        /// The token's id
        id: i64,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("scope").multiple(false)))]
pub struct CreateArgs {
    /// admin, cashier (needs --shop), coop_accountant (--cooperative), company (--company),
    /// resident (--household) or alliance (the alliance's board: reads programme figures only)
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The shop a cashier's till belongs to
    #[arg(long, group = "scope", value_name = "CODE")]
    pub shop: Option<String>,
    /// The cooperative of an accountant
    #[arg(long, group = "scope", value_name = "CODE")]
    pub cooperative: Option<String>,
    /// The property company of its staff
    #[arg(long, group = "scope", value_name = "CODE")]
    pub company: Option<String>,
    /// The household of a resident
    #[arg(long, group = "scope", value_name = "CODE")]
    pub household: Option<String>,
    /// A note to tell tokens apart, e.g. "S1 till 2"
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| {
        format!("{s:?} is not a role: use admin, cashier, coop_accountant, company, resident or alliance")
    })
}

/// The option a role's scope is given with.
fn scope_option(role: Role) -> Option<&'static str> {
    match role {
        Role::Admin | Role::Alliance => None,
        Role::Cashier => Some("--shop"),
        Role::CoopAccountant => Some("--cooperative"),
        Role::Company => Some("--company"),
        Role::Resident => Some("--household"),
    }
}

impl CreateArgs {
    /// The scope code, checked against what the role needs before anything is stored.
    fn scope(&self) -> Result<Option<String>, CliError> {
        let given = [
            ("--shop", &self.shop),
            ("--cooperative", &self.cooperative),
            ("--company", &self.company),
            ("--household", &self.household),
        ]
        .into_iter()
        .find_map(|(option, value)| value.as_ref().map(|v| (option, v.clone())));
        let role = self.role.as_str();
        match (scope_option(self.role), given) {
            (None, None) => Ok(None),
            (None, Some((option, _))) => Err(CliError::Usage(format!(
                "an admin token is not bound to anything: drop {option}"
            ))),
            (Some(needed), None) => Err(CliError::Usage(format!(
                "a {role} token needs {needed} CODE"
            ))),
            (Some(needed), Some((option, _))) if option != needed => Err(CliError::Usage(format!(
                "a {role} token is bound with {needed} CODE, not {option}"
            ))),
            (Some(_), Some((_, code))) => Ok(Some(code)),
        }
    }
}

/// A fresh token and the SHA-256 hex that is stored for it.
pub fn new_token() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        anyhow::anyhow!("the operating system's random number generator failed: {e}")
    })?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// What the store keeps of a token: SHA-256 of the whole string, prefix included, in hex —
/// the server's own function, so what is stored here is what a request is looked up by.
pub fn token_hash(token: &str) -> String {
    crate::http::extract::token_hash(token)
}

/// Creates a token through the ledger; returns (id, token). A refusal (unknown shop, bad label)
/// is the caller's wrong input, so it is a usage error.
pub async fn create(
    app: &App,
    role: Role,
    scope: Option<String>,
    label: Option<String>,
) -> anyhow::Result<(i64, String)> {
    let (token, hash) = new_token()?;
    let command = Command::CreateToken(NewToken {
        parent: None,
        hash,
        role,
        scope,
        label,
        // Operators' tokens live until revoked; only residents' sign-in sessions expire.
        expires_at: None,
    });
    match app.run(command).await? {
        Ok(Receipt::Created(created)) => Ok((created.id, token)),
        Ok(other) => anyhow::bail!("unexpected receipt for a new token: {other:?}"),
        Err(rejection) => {
            Err(CliError::Usage(format!("{rejection} ({})", rejection.code())).into())
        }
    }
}

pub async fn run(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let scope = args.scope()?;
            let app = open_existing(config).await?;
            let (id, token) = create(&app, args.role, scope.clone(), args.label).await?;
            let bound = scope.map(|s| format!(" for {s}")).unwrap_or_default();
            eprintln!(
                "created {} token id {id}{bound}; it is shown only once (revoke: hongxin token revoke {id})",
                args.role.as_str()
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let app = open_existing(config).await?;
            accepted(app.run(Command::RevokeToken { id }).await)?;
            println!("token {id} revoked");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_hex_and_stored_hashed() {
        let (token, hash) = new_token().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token.len(), TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
        assert!(token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        assert_eq!(hash, token_hash(&token));
        assert_eq!(hash.len(), 64);
        assert_ne!(new_token().unwrap().0, token);
    }

    fn args(role: Role) -> CreateArgs {
        CreateArgs {
            role,
            shop: None,
            cooperative: None,
            company: None,
            household: None,
            label: None,
        }
    }

    #[test]
    fn each_role_takes_its_own_scope() {
        assert_eq!(args(Role::Admin).scope().unwrap(), None);
        assert!(args(Role::Cashier).scope().is_err());
        let mut cashier = args(Role::Cashier);
        cashier.company = Some("K01".into());
        assert!(cashier.scope().is_err());
        cashier.company = None;
        cashier.shop = Some("S1".into());
        assert_eq!(cashier.scope().unwrap(), Some("S1".into()));
        let mut admin = args(Role::Admin);
        admin.household = Some("HX01-0001".into());
        assert!(admin.scope().is_err());
        assert!(parse_role("root").is_err());
    }
}
