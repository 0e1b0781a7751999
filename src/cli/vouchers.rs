//! `hongxin vouchers expire`: marks bearer vouchers whose validity has ended expired (a daily
//! job). Their credit stays owed to the holder, who may have the voucher exchanged; breakage is
//! recognised only for vouchers expired at least the top-up policy's `breakage_after_months`.
//! `hongxin vouchers exchange CODE --shop SHOP`: exchanges an expired voucher for a new one (换新券)
//! and prints the new code.

use clap::Subcommand;

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, ExchangeVoucher, ExpiredReceipt, Receipt};
use crate::money::Amount;

/// Each run of the command expires a bounded batch; this bounds how many runs one call makes.
const MAX_RUNS: usize = 10_000;

#[derive(Subcommand)]
pub enum VouchersCommand {
    /// Expire every active voucher whose validity ended before the business date (its credit
    /// stays owed), and recognise breakage where the policy's breakage_after_months has passed
    Expire,
    /// Exchange an expired voucher with credit left for a new one (换新券), as at a till
    Exchange {
        /// The expired voucher's code, as printed
        code: String,
        /// The shop whose till makes the exchange
        #[arg(long)]
        shop: String,
    },
}

fn add(a: Amount, b: Amount) -> anyhow::Result<Amount> {
    a.checked_add(b)
        .ok_or_else(|| anyhow::anyhow!("amount overflow"))
}

pub async fn run(config: &Config, command: VouchersCommand) -> anyhow::Result<()> {
    match command {
        VouchersCommand::Expire => {
            let app = open_existing(config).await?;
            let mut total = ExpiredReceipt {
                vouchers: 0,
                owed_paid: Amount::ZERO,
                owed_bonus: Amount::ZERO,
                broken: 0,
                paid: Amount::ZERO,
                bonus: Amount::ZERO,
            };
            // The ledger expires a bounded batch per command, so repeat until one finds nothing.
            for _ in 0..MAX_RUNS {
                let r = match accepted(app.run(Command::ExpireVouchers).await)? {
                    Receipt::Expired(r) => r,
                    other => anyhow::bail!("unexpected receipt for expiring vouchers: {other:?}"),
                };
                if r.vouchers == 0 && r.broken == 0 {
                    break;
                }
                total.vouchers += r.vouchers;
                total.broken += r.broken;
                total.owed_paid = add(total.owed_paid, r.owed_paid)?;
                total.owed_bonus = add(total.owed_bonus, r.owed_bonus)?;
                total.paid = add(total.paid, r.paid)?;
                total.bonus = add(total.bonus, r.bonus)?;
            }
            println!(
                "expired {} vouchers as of {}: {} paid and {} bonus credit on them stays owed (the holder may exchange them)",
                total.vouchers,
                app.clock.today(),
                total.owed_paid,
                total.owed_bonus,
            );
            println!(
                "breakage recognised on {} expired vouchers: {} unused paid credit became breakage income, {} unused bonus forfeited",
                total.broken, total.paid, total.bonus
            );
            Ok(())
        }
        VouchersCommand::Exchange { code, shop } => {
            let app = open_existing(config).await?;
            let r = match accepted(
                app.run(Command::ExchangeVoucher(ExchangeVoucher { code, shop }))
                    .await,
            )? {
                Receipt::Exchanged(r) => r,
                other => anyhow::bail!("unexpected receipt for an exchange: {other:?}"),
            };
            println!(
                "new voucher {} carries {} ({} paid, {} bonus; {} paid and {} bonus of it reinstated from breakage), valid until {}; the old code no longer works",
                r.voucher.code,
                r.voucher.balance,
                r.paid,
                r.bonus,
                r.reinstated_paid,
                r.reinstated_bonus,
                r.voucher.expires_on
            );
            Ok(())
        }
    }
}
