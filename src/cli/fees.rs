//! `hongxin fees bill|pay|receipt`: a company office's property-fee work from the operator's
//! shell — a month's bills for a company's households, a resident's payment, and a numbered
//! fee receipt (收据) printed again.

use clap::{Args, Subcommand};

use crate::cli::{accepted, open_existing, CliError};
use crate::config::Config;
use crate::domain::{Command, FeePayment, GenerateBills, PayMethod, Receipt, Rejection};
use crate::money::Amount;

#[derive(Subcommand)]
pub enum FeesCommand {
    /// Bill a month's property fees to every household of a company not yet billed for it
    Bill(BillArgs),
    /// Record a resident's payment, applied to the oldest unpaid bill first
    Pay(PayArgs),
    /// Print a company's numbered fee receipt (收据) again, amount in figures and in capitals
    Receipt(ReceiptArgs),
}

#[derive(Args)]
pub struct ReceiptArgs {
    /// The company's code, e.g. K01
    #[arg(long, value_name = "CODE")]
    pub company: String,
    /// The receipt's number in the company's sequence, e.g. 12 for No. 000012
    #[arg(long, value_name = "N")]
    pub number: i64,
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
            println!(
                "receipt {} of {}",
                crate::fees::receipt_number_text(r.receipt),
                r.company
            );
            for a in &r.applied {
                println!("  {}  {}", a.month, a.amount);
            }
            if r.prepaid.is_positive() {
                println!("  paid ahead  {}", r.prepaid);
            }
            println!("balance {} (positive owes, negative paid ahead)", r.balance);
        }
        FeesCommand::Receipt(args) => {
            let r = app
                .store
                .fee_receipt(&args.company, args.number)
                .await?
                .ok_or_else(|| {
                    CliError::Rejected(Rejection::not_found(
                        "number",
                        "receipt",
                        args.number.to_string(),
                    ))
                })?;
            print!("{}", receipt_text(&r));
        }
    }
    Ok(())
}

/// A fee receipt as the shell prints it: the figures of `GET /v1/companies/{company}/
/// fee-receipts/{number}`, one to a line.
fn receipt_text(r: &crate::fees::FeeReceiptView) -> String {
    let collected = match (&r.cooperative, &r.shop) {
        (Some(coop), shop) => {
            let name = r
                .cooperative_name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            let shop = shop
                .as_deref()
                .map(|s| format!(", shop {s}"))
                .unwrap_or_default();
            format!("{coop}{name}{shop} (代收)")
        }
        (None, _) => "the company's office".to_string(),
    };
    format!(
        "收据 receipt {}\n\
         company    {} {}\n\
         household  {}\n\
         amount     {}\n\
         大写       {}\n\
         method     {}\n\
         collected  {collected}\n\
         date       {}\n\
         entry      {}\n",
        r.printed_number,
        r.company,
        r.company_name,
        r.household,
        r.amount,
        r.amount_in_words,
        r.method,
        r.business_date,
        r.entry,
    )
}
