//! `hongxin compound takeover`: the admin records the day a compound's company took it over
//! (接管), which the alliance's reports count the collection rate from and mark on its chart.
//! `hongxin compound set-eligible|move|rename` and `hongxin household set-area|rename`: master
//! data changes from a date, each recorded in the chain with old and new value.

use chrono::NaiveDate;
use clap::{ArgGroup, Args, Subcommand};

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::{Command, MasterChange, Receipt, Subject};

#[derive(Subcommand)]
pub enum CompoundCommand {
    /// Set (or with --clear remove) the day the compound's company took it over
    Takeover(TakeoverArgs),
    /// Put the compound in (true) or out of (false) spend-50-get-55 from a day
    SetEligible(SetEligibleArgs),
    /// Move the compound to another company from a month (bills, statements, closes follow)
    Move(MoveArgs),
    /// Correct the compound's name from now on
    Rename(RenameArgs),
}

#[derive(Args)]
pub struct SetEligibleArgs {
    /// The compound's code
    #[arg(long, value_name = "CODE")]
    pub compound: String,
    /// true or false
    #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
    pub eligible: bool,
    /// The first day it holds, YYYY-MM-DD
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: NaiveDate,
}

#[derive(Args)]
pub struct MoveArgs {
    /// The compound's code
    #[arg(long, value_name = "CODE")]
    pub compound: String,
    /// The company it moves to
    #[arg(long, value_name = "CODE")]
    pub company: String,
    /// The first month the new company bills, YYYY-MM
    #[arg(long, value_name = "YYYY-MM")]
    pub from: String,
}

#[derive(Args)]
pub struct RenameArgs {
    /// The compound's code
    #[arg(long, value_name = "CODE")]
    pub compound: String,
    /// The new name
    #[arg(long)]
    pub name: String,
}

/// `hongxin household ...`: a household's master data changes.
#[derive(Args)]
pub struct SetAreaArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// The floor area in m², e.g. 85.50
    #[arg(long)]
    pub area: String,
    /// The first month billed on it, YYYY-MM
    #[arg(long, value_name = "YYYY-MM")]
    pub from: String,
}

#[derive(Args)]
pub struct HouseholdRenameArgs {
    /// The household's code
    #[arg(long, value_name = "CODE")]
    pub household: String,
    /// The new name
    #[arg(long)]
    pub name: String,
}

/// Runs a change and prints what the journal recorded.
async fn change(
    config: &Config,
    subject: Subject,
    code: String,
    field: &str,
    value: String,
    effective_from: Option<String>,
) -> anyhow::Result<()> {
    let app = open_existing(config).await?;
    let receipt = accepted(
        app.run(Command::ChangeMasterData(MasterChange {
            subject,
            code,
            field: field.into(),
            value,
            effective_from,
        }))
        .await,
    )?;
    if let Receipt::MasterChanged(r) = receipt {
        println!(
            "{} {} {}: {} -> {} from {} (entry {})",
            r.subject.as_str(),
            r.code,
            r.field,
            r.old.as_deref().unwrap_or("-"),
            r.new,
            r.effective_from,
            r.entry
        );
    }
    Ok(())
}

/// `hongxin household set-area`: the floor area from a billing month.
pub async fn set_area(config: &Config, a: SetAreaArgs) -> anyhow::Result<()> {
    change(
        config,
        Subject::Household,
        a.household,
        "area_m2",
        a.area,
        Some(a.from),
    )
    .await
}

/// `hongxin household rename`: the household's name from now on.
pub async fn rename_household(config: &Config, a: HouseholdRenameArgs) -> anyhow::Result<()> {
    change(
        config,
        Subject::Household,
        a.household,
        "name",
        a.name,
        None,
    )
    .await
}

#[derive(Args)]
#[command(group(ArgGroup::new("when").required(true).multiple(false)))]
pub struct TakeoverArgs {
    /// The compound's code
    #[arg(long, value_name = "CODE")]
    pub compound: String,
    /// The takeover date, YYYY-MM-DD
    #[arg(long, group = "when", value_name = "YYYY-MM-DD")]
    pub date: Option<NaiveDate>,
    /// Remove the takeover date
    #[arg(long, group = "when")]
    pub clear: bool,
}

pub async fn run(config: &Config, command: CompoundCommand) -> anyhow::Result<()> {
    match command {
        CompoundCommand::Takeover(args) => {
            let app = open_existing(config).await?;
            accepted(
                app.run(Command::SetCompoundTakeover {
                    compound: args.compound.clone(),
                    taken_over_on: args.date,
                })
                .await,
            )?;
            match args.date {
                Some(d) => println!("{} taken over on {d}", args.compound),
                None => println!("{} has no takeover date", args.compound),
            }
            Ok(())
        }
        CompoundCommand::SetEligible(a) => {
            change(
                config,
                Subject::Compound,
                a.compound,
                "eligible",
                a.eligible.to_string(),
                Some(a.from.to_string()),
            )
            .await
        }
        CompoundCommand::Move(a) => {
            change(
                config,
                Subject::Compound,
                a.compound,
                "company",
                a.company,
                Some(a.from),
            )
            .await
        }
        CompoundCommand::Rename(a) => {
            change(config, Subject::Compound, a.compound, "name", a.name, None).await
        }
    }
}
