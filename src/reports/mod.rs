//! Cooperative reports (SPEC §7), read-only: the daily till report per shop, and the
//! outstanding prepaid liability (wallets and vouchers, paid and bonus) with the custody deposit
//! it implies. Figures come from the store's read methods and rules from the policies; nothing
//! here knows SQL or HTTP, so the API and the command line render the same numbers.

pub mod alliance;
pub mod alliance_export;
pub mod prepaid;
pub mod till;

use chrono::NaiveDate;

use crate::domain::{Rejection, StoreError};
use crate::money::MoneyError;

pub use prepaid::{prepaid, previous_quarter_end, Breakage, CreditLine, Custody, PrepaidReport};
pub use till::{till, to_csv as till_csv, total_of, ShopFilter, ShopTill, TillReport, TillTotal};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the report rests on is missing (no top-up policy in effect, say).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("amount overflow in the report")]
    Overflow,
}

impl From<MoneyError> for ReportError {
    fn from(_: MoneyError) -> Self {
        ReportError::Overflow
    }
}

fn no_policy(kind: &str, date: NaiveDate) -> ReportError {
    ReportError::Rejected(Rejection::NoPolicy {
        kind: kind.into(),
        date,
    })
}
