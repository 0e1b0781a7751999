//! `hongxin report till|prepaid`: the cooperative's reports (SPEC §7) for the operator, as
//! text for a person or `--json` (the API's own document) for a script.

use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::cli::{open_existing, CliError};
use crate::clock::parse_date;
use crate::config::Config;
use crate::money::Amount;
use crate::reports::{self, PrepaidReport, ShopFilter, ShopTill};

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Daily till report per shop: top-ups by method, sales by tender, refunds, vouchers redeemed
    Till(TillArgs),
    /// Outstanding prepaid credit (wallets, vouchers, expired vouchers still owed; paid and
    /// bonus), the breakage recognised, and the custody deposit
    Prepaid(PrepaidArgs),
}

#[derive(Args)]
pub struct TillArgs {
    /// Business date of the report
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: NaiveDate,
    /// One shop (default: every shop)
    #[arg(long, value_name = "CODE", conflicts_with = "cooperative")]
    pub shop: Option<String>,
    /// The shops of one cooperative
    #[arg(long, value_name = "CODE")]
    pub cooperative: Option<String>,
    /// Print the report as JSON, as the API answers it
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PrepaidArgs {
    /// One cooperative (default: every cooperative with shops)
    #[arg(long, value_name = "CODE")]
    pub cooperative: Option<String>,
    /// Balances at the end of this business date (default: today)
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// Print the reports as JSON, as the API answers them
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, command: ReportCommand) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    match command {
        ReportCommand::Till(args) => {
            let filter = match (args.shop, args.cooperative) {
                (Some(shop), _) => ShopFilter::Shop(shop),
                (None, Some(coop)) => ShopFilter::Cooperative(coop),
                (None, None) => ShopFilter::All,
            };
            let Some(report) = reports::till(app.store.as_ref(), args.date, &filter).await? else {
                return Err(CliError::Failed("no such shop".into()).into());
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for shop in &report.shops {
                    print!("{}", till_text(report.date, shop));
                }
            }
        }
        ReportCommand::Prepaid(args) => {
            let coops = match args.cooperative {
                Some(c) => vec![c],
                None => {
                    let mut coops: Vec<String> = app
                        .store
                        .shops()
                        .await?
                        .into_iter()
                        .map(|s| s.cooperative)
                        .collect();
                    coops.sort();
                    coops.dedup();
                    coops
                }
            };
            let mut all = Vec::with_capacity(coops.len());
            for coop in &coops {
                let report = reports::prepaid(
                    app.store.as_ref(),
                    &app.policies,
                    coop,
                    app.clock.today(),
                    args.date,
                )
                .await?
                .ok_or_else(|| CliError::Failed(format!("no cooperative {coop}")))?;
                all.push(report);
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for report in &all {
                    print!("{}", prepaid_text(report));
                }
            }
        }
    }
    Ok(())
}

/// A right-aligned amount column.
fn a(x: Amount) -> String {
    format!("{:>12}", x.to_string())
}

pub fn till_text(date: NaiveDate, s: &ShopTill) -> String {
    let mut t = format!(
        "Till report {date} — shop {} {} ({})\n",
        s.shop, s.name, s.cooperative
    );
    t += &format!(
        "  top-ups     {:<9}{:>7}{:>12}{:>12}{:>12}   as vouchers\n",
        "method", "count", "paid", "bonus", "credited"
    );
    for m in &s.topups.by_method {
        t += &format!(
            "              {:<9}{:>7}{}{}{}   {} ({})\n",
            m.method,
            m.count,
            a(m.paid),
            a(m.bonus),
            a(m.credited),
            m.as_vouchers,
            m.voucher_credit
        );
    }
    t += &format!(
        "              {:<9}{:>7}{}{}{}\n",
        "total",
        s.topups.count,
        a(s.topups.paid),
        a(s.topups.bonus),
        a(s.topups.credited)
    );
    t += &format!(
        "  sales       {:<9}{:>7}{:>12}\n",
        "tender", "count", "amount"
    );
    for l in &s.sales.by_tender {
        t += &format!(
            "              {:<9}{:>7}{}\n",
            l.tender,
            l.count,
            a(l.amount)
        );
    }
    t += &format!(
        "              {:<9}{:>7}{}\n",
        "total",
        s.sales.count,
        a(s.sales.total)
    );
    t += &format!(
        "  refunds     {:<9}{:>7}{}\n",
        "total",
        s.refunds.count,
        a(s.refunds.amount)
    );
    for l in &s.refunds.by_tender {
        t += &format!("              {:<9}{:>7}{}\n", l.tender, "", a(l.amount));
    }
    let v = &s.vouchers_redeemed;
    t += &format!(
        "  vouchers redeemed: {} tenders on {} vouchers, {} (paid {}, bonus {})\n",
        v.count, v.vouchers, v.amount, v.paid, v.bonus
    );
    t += &format!(
        "  drawer      {:<9}{:>12}{:>12}{:>12}{:>12}\n",
        "method", "top-ups", "sales", "refunds", "net"
    );
    for d in &s.drawer {
        t += &format!(
            "              {:<9}{}{}{}{}\n",
            d.method,
            a(d.topups),
            a(d.sales),
            a(d.refunds),
            a(d.net)
        );
    }
    t + "\n"
}

pub fn prepaid_text(r: &PrepaidReport) -> String {
    let mut t = format!(
        "Prepaid liability of {} at the end of {}\n",
        r.cooperative, r.as_of
    );
    t += &format!(
        "  {:<10}{:>9}{:>14}{:>14}{:>14}\n",
        "", "count", "paid", "bonus", "total"
    );
    for (label, l) in [
        ("wallets", &r.wallets),
        ("vouchers", &r.vouchers),
        ("expired", &r.expired_vouchers),
        ("total", &r.total),
    ] {
        t += &format!(
            "  {label:<10}{:>9}{:>14}{:>14}{:>14}\n",
            l.count,
            l.paid.to_string(),
            l.bonus.to_string(),
            l.total.to_string()
        );
    }
    t += "  (expired: vouchers past their validity, still owed and exchangeable)\n";
    t += &format!(
        "  breakage recognised to date: {} paid credit to breakage income, {} bonus forfeited\n",
        r.breakage.paid, r.breakage.bonus
    );
    let c = &r.custody;
    t += &format!(
        "  custody deposit: {} × {} (paid credit outstanding at {}: wallets {}, vouchers {}) = {}  [{}]\n\n",
        c.ratio, c.prepaid_balance, c.quarter_end, c.wallets_paid, c.vouchers_paid, c.deposit, c.policy
    );
    t
}
