//! `hongxin household`: a household's life after import, from the operator's shell.
//!
//! `move-out`: the occupant leaves and another moves in (搬离/换户) — the same command as
//! `POST /v1/households/{code}/move-out` (`domain::move_out`): wallets cashed out or
//! transferred, fees settled first or carried, the new occupant's name, a new card link, the PIN
//! cleared. `set-area` and `rename`: master data changes (`POST /v1/master-changes`), run by
//! [`crate::cli::compound`] with the compound's own.

use clap::{Args, Subcommand, ValueEnum};

use crate::cli::compound::{self, HouseholdRenameArgs, SetAreaArgs};
use crate::cli::fees::parse_method;
use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, FeesOnMoveOut, MoveOut, PayMethod, Receipt, WalletDisposition};

#[derive(Subcommand)]
pub enum HouseholdCommand {
    /// Move a household's occupant out: wallets cashed out or transferred to the new occupant,
    /// fees settled or carried, the card's link rotated and the PIN cleared
    MoveOut(MoveOutArgs),
    /// Correct the household's floor area from a billing month (bills issued stay as they are)
    SetArea(SetAreaArgs),
    /// Correct the household's name from now on
    Rename(HouseholdRenameArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum WalletArg {
    /// Pay every wallet's paid credit back; the bonus is forfeited
    CashOut,
    /// Leave the wallets with the household for the new occupant (both agreed)
    Transfer,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FeesArg {
    /// Refuse while the household owes fees
    Settled,
    /// Leave what the household owes on it for the company to pursue
    Carry,
}

#[derive(Args)]
pub struct MoveOutArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// What becomes of the leaving occupant's wallets
    #[arg(long, value_enum)]
    pub wallet: WalletArg,
    /// The new occupant's name (default: none recorded)
    #[arg(long, value_name = "NAME")]
    pub new_occupant: Option<String>,
    /// How a cash-out is handed over: cash, wechat, alipay or bank
    #[arg(long, value_parser = parse_method, default_value = "cash")]
    pub method: PayMethod,
    /// Fees the household owes
    #[arg(long, value_enum, default_value = "settled")]
    pub fees: FeesArg,
    /// Pay a cash-out from this cooperative only (credit held at another refuses it)
    #[arg(long, value_name = "CODE")]
    pub cooperative: Option<String>,
}

pub async fn run(config: &Config, command: HouseholdCommand) -> anyhow::Result<()> {
    match command {
        HouseholdCommand::MoveOut(args) => {
            let app = open_existing(config).await?;
            let command = Command::MoveOut(MoveOut {
                household: args.household,
                new_occupant: args.new_occupant,
                wallet: match args.wallet {
                    WalletArg::CashOut => WalletDisposition::CashOut,
                    WalletArg::Transfer => WalletDisposition::Transfer,
                },
                method: args.method,
                fees: match args.fees {
                    FeesArg::Settled => FeesOnMoveOut::Settled,
                    FeesArg::Carry => FeesOnMoveOut::Carry,
                },
                cooperative: args.cooperative,
                company: None,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::MoveOut(r) => r,
                other => anyhow::bail!("unexpected receipt for a move-out: {other:?}"),
            };
            println!(
                "moved out of {} (entry {}): wallets {}, fees {}",
                r.household,
                r.entry,
                r.wallet.as_str(),
                r.fees.as_str()
            );
            for w in &r.wallets {
                println!(
                    "  {}: paid {}, bonus {}; refunded {}, forfeited {}",
                    w.cooperative, w.paid, w.bonus, w.refunded, w.forfeited
                );
            }
            println!(
                "refunded {} by {}, bonus forfeited {}; arrears carried {}",
                r.refunded,
                r.method.as_str(),
                r.forfeited,
                r.arrears
            );
            println!(
                "new occupant: {}; card link version {}; PIN cleared",
                r.occupant.as_deref().unwrap_or("-"),
                r.link_version
            );
            Ok(())
        }
        HouseholdCommand::SetArea(a) => compound::set_area(config, a).await,
        HouseholdCommand::Rename(a) => compound::rename_household(config, a).await,
    }
}
