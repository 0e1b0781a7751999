//! `hongxin compound takeover`: the admin records the day a compound's company took it over
//! (接管), which the alliance's reports count the collection rate from and mark on its chart.

use chrono::NaiveDate;
use clap::{ArgGroup, Args, Subcommand};

use crate::cli::{accepted, open_existing};
use crate::config::Config;
use crate::domain::Command;

#[derive(Subcommand)]
pub enum CompoundCommand {
    /// Set (or with --clear remove) the day the compound's company took it over
    Takeover(TakeoverArgs),
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
    }
}
