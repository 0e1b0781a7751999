//! `hongxin credit refund`: the cooperative's accountant pays a household's paid credit back
//! from the operator's shell — the whole wallet, or a part of it (issue 14's partial cash-out).
//! The unused bonus goes with it in proportion (`domain::credit::cash_out_parts`), as on the
//! cooperative's page. `hongxin credit void-topup`: the accountant voids a top-up whose credit
//! is untouched (`domain::topup::void_top_up`), any day.

use clap::{Args, Subcommand};

use crate::cli::fees::{parse_amount, parse_method};
use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, PayMethod, Receipt, RefundCredit, VoidTopUp};
use crate::money::Amount;

#[derive(Subcommand)]
pub enum CreditCommand {
    /// Pay a household's paid credit back (all of it, or --amount of it); the bonus is forfeited
    /// in proportion
    Refund(RefundArgs),
    /// Void a top-up (named by its receipt's entry) while none of its credit was used: the
    /// paid part goes back by its method, the bonus is withdrawn, a voucher is void
    VoidTopup(VoidTopupArgs),
}

#[derive(Args)]
pub struct VoidTopupArgs {
    /// The top-up's entry, as its receipt names it
    #[arg(long, value_name = "ENTRY")]
    pub topup: i64,
    /// The cooperative that took it (the accountant's scope)
    #[arg(long, value_name = "CODE")]
    pub cooperative: String,
    /// Why (kept in the void entry's memo)
    #[arg(long)]
    pub memo: Option<String>,
}

#[derive(Args)]
pub struct RefundArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// The cooperative whose wallet it is
    #[arg(long, value_name = "CODE")]
    pub cooperative: String,
    /// How the money is handed back: cash, wechat, alipay or bank
    #[arg(long, value_parser = parse_method)]
    pub method: PayMethod,
    /// Paid credit to hand back, in yuan (default: all of it)
    #[arg(long, value_parser = parse_amount)]
    pub amount: Option<Amount>,
}

pub async fn run(config: &Config, command: CreditCommand) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    match command {
        CreditCommand::Refund(args) => {
            let household = args.household.clone();
            let command = Command::RefundCredit(RefundCredit {
                household: args.household,
                cooperative: args.cooperative,
                method: args.method,
                amount: args.amount,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::CreditRefund(r) => r,
                other => anyhow::bail!("unexpected receipt for a credit refund: {other:?}"),
            };
            println!(
                "refunded {} to {household} by {} (entry {}); bonus forfeited {}",
                r.refunded,
                r.method.as_str(),
                r.entry,
                r.forfeited
            );
            if let Some(left) = r.left {
                println!(
                    "wallet left: paid {}, bonus {}, total {}",
                    left.paid, left.bonus, left.total
                );
            }
        }
        CreditCommand::VoidTopup(args) => {
            let command = Command::VoidTopUp(VoidTopUp {
                topup: args.topup,
                shop: None,
                cooperative: Some(args.cooperative),
                memo: args.memo,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::TopUpVoid(r) => r,
                other => anyhow::bail!("unexpected receipt for a top-up void: {other:?}"),
            };
            println!(
                "voided top-up {} of {} (entry {}): paid {} back by {}, bonus {} withdrawn",
                r.topup,
                r.household,
                r.entry,
                r.paid,
                r.method.as_str(),
                r.bonus
            );
            if let Some(w) = r.wallet {
                println!(
                    "wallet now: paid {}, bonus {}, total {}",
                    w.paid, w.bonus, w.total
                );
            }
        }
    }
    Ok(())
}
