//! `hongxin fees bill|pay`: a company office's property-fee work from the operator's shell —
//! a month's bills for a company's households, and a resident's payment.

use clap::{Args, Subcommand};

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, FeePayment, GenerateBills, PayMethod, Receipt};
use crate::money::Amount;

#[derive(Subcommand)]
pub enum FeesCommand {
    /// Bill a month's property fees to every household of a company not yet billed for it
    Bill(BillArgs),
    /// Record a resident's payment, applied to the oldest unpaid bill first
    Pay(PayArgs),
}

#[derive(Args)]
pub struct BillArgs {
    /// The company's code, e.g. K01
    #[arg(long, value_name = "CODE")]
    pub company: String,
    /// The month billed, YYYY-MM; it must have begun
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
}

#[derive(Args)]
pub struct PayArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// Yuan with at most two decimals, e.g. 48.04
    #[arg(long, value_parser = parse_amount)]
    pub amount: Amount,
    /// cash, wechat, alipay or bank
    #[arg(long, value_parser = parse_method)]
    pub method: PayMethod,
    /// The receipt or transfer reference
    #[arg(long, value_name = "TEXT")]
    pub reference: String,
}

pub(crate) fn parse_amount(s: &str) -> Result<Amount, String> {
    Amount::parse(s).map_err(|e| format!("{s:?} is not an amount in yuan: {e}"))
}

pub(crate) fn parse_method(s: &str) -> Result<PayMethod, String> {
    Ok(match s {
        "cash" => PayMethod::Cash,
        "wechat" => PayMethod::Wechat,
        "alipay" => PayMethod::Alipay,
        "bank" => PayMethod::Bank,
        _ => {
            return Err(format!(
                "{s:?} is not a method: use cash, wechat, alipay or bank"
            ))
        }
    })
}

pub async fn run(config: &Config, command: FeesCommand) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    match command {
        FeesCommand::Bill(args) => {
            let command = Command::GenerateBills(GenerateBills {
                company: args.company,
                month: args.month,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::Bills(r) => r,
                other => anyhow::bail!("unexpected receipt for bills: {other:?}"),
            };
            match r.entry {
                Some(entry) => println!(
                    "billed {} {}: {} households, total {} (entry {entry}, {})",
                    r.company, r.month, r.count, r.total, r.policy
                ),
                None => println!(
                    "billed {} {}: nothing new, every household already has its bill",
                    r.company, r.month
                ),
            }
        }
        FeesCommand::Pay(args) => {
            let command = Command::PayFee(FeePayment {
                household: args.household,
                amount: args.amount,
                method: args.method,
                reference: args.reference,
                company: None,
                shop: None,
            });
            let r = match accepted(app.run(command).await)? {
                Receipt::FeePayment(r) => r,
                other => anyhow::bail!("unexpected receipt for a fee payment: {other:?}"),
            };
            println!("paid {} for {} (entry {})", r.amount, r.household, r.entry);
            for a in &r.applied {
                println!("  {}  {}", a.month, a.amount);
            }
            if r.prepaid.is_positive() {
                println!("  paid ahead  {}", r.prepaid);
            }
            println!("balance {} (positive owes, negative paid ahead)", r.balance);
        }
    }
    Ok(())
}
