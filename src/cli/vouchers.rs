//! `hongxin vouchers expire`: closes bearer vouchers whose validity has ended (a daily job). The
//! unused paid part becomes the cooperative's breakage income and the unused bonus is forfeited.

use clap::Subcommand;

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, ExpiredReceipt, Receipt};
use crate::money::Amount;

/// Each run of the command expires a bounded batch; this bounds how many runs one call makes.
const MAX_RUNS: usize = 10_000;

#[derive(Subcommand)]
pub enum VouchersCommand {
    /// Expire every active voucher whose validity ended before the business date
    Expire,
}

pub async fn run(config: &Config, command: VouchersCommand) -> anyhow::Result<()> {
    match command {
        VouchersCommand::Expire => {
            let app = open_existing(config).await?;
            let mut total = ExpiredReceipt {
                vouchers: 0,
                paid: Amount::ZERO,
                bonus: Amount::ZERO,
            };
            // The ledger expires a bounded batch per command, so repeat until one finds nothing.
            for _ in 0..MAX_RUNS {
                let r = match accepted(app.run(Command::ExpireVouchers).await)? {
                    Receipt::Expired(r) => r,
                    other => anyhow::bail!("unexpected receipt for expiring vouchers: {other:?}"),
                };
                if r.vouchers == 0 {
                    break;
                }
                total.vouchers += r.vouchers;
                total.paid = total
                    .paid
                    .checked_add(r.paid)
                    .ok_or_else(|| anyhow::anyhow!("amount overflow"))?;
                total.bonus = total
                    .bonus
                    .checked_add(r.bonus)
                    .ok_or_else(|| anyhow::anyhow!("amount overflow"))?;
            }
            println!(
                "expired {} vouchers as of {}: {} unused paid credit became breakage income, {} unused bonus forfeited",
                total.vouchers,
                app.clock.today(),
                total.paid,
                total.bonus
            );
            Ok(())
        }
    }
}
