//! The checked rules of each policy kind, and the small calculations that belong to the rule
//! itself (how many units a top-up buys, what a compound's monthly fee is). Everything here was
//! validated when the file was read, so these functions only fail on what the caller passes in.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::money::{round_to_fen, Amount, MoneyError, Rounding};

/// The ceiling on any single amount (a top-up, a sale, a line, a tender, a refund, an expense,
/// a stock receipt, a fee payment, a settlement) when no policy in force sets `max_amount`:
/// 1,000,000.00 yuan. Far below what the ledger's sums can hold, so a month of such amounts
/// can always be closed.
pub const DEFAULT_MAX_AMOUNT: Amount = Amount::from_yuan(1_000_000);

/// Rules of `kind = "topup_bonus"` (居民购物50元换55元): pay whole units, get a bonus per unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopupPolicy {
    /// The pay unit; a top-up is a whole number of these.
    pub unit: Amount,
    /// Credit added per unit on top of the unit itself (50 paid → 55 credit means 5.00).
    pub bonus_per_unit: Amount,
    pub max_units_per_topup: u32,
    /// Bonus one household may receive in a calendar month.
    pub monthly_bonus_cap: Amount,
    pub eligibility: Eligibility,
    /// How a top-up may be paid.
    pub methods: Vec<TopupMethod>,
    /// Cap on a named (registered) credit balance.
    pub wallet_cap: Amount,
    /// Cap on the face value of one bearer voucher.
    pub voucher_face_cap: Amount,
    /// Bearer vouchers stay valid at least this long (prepaid-card rule: >= 36).
    pub voucher_validity_months: u32,
    /// Share of last quarter's prepaid balance to hold in custody, 0..=1.
    pub custody_deposit_ratio: Decimal,
    /// The most any single amount may be while this version is in force.
    pub max_amount: Amount,
    /// Wallet spending in one sale above this needs the resident present: the household card's
    /// signed link scanned at the till, or the household PIN. 0.00 (the default): always.
    pub resident_factor_over: Amount,
    /// An expired voucher's credit stays owed to its holder (who may exchange the voucher)
    /// until it has been expired this many months, by business date; only then does the expiry
    /// job recognise breakage. `None` (the default, the key absent): never.
    pub breakage_after_months: Option<u32>,
}

/// Units bought by one top-up and the bonus credit they earn (before the monthly cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bonus {
    pub units: u32,
    pub bonus: Amount,
}

/// Why a top-up amount does not fit the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopupRuleError {
    #[error("a top-up must be a whole number of {unit} yuan units")]
    NotWholeUnits { unit: Amount },
    #[error("a top-up must be a positive amount")]
    NotPositive,
    #[error("a top-up may be at most {max} units")]
    TooManyUnits { max: u32 },
    #[error("amount overflow while computing the bonus")]
    Overflow,
}

impl TopupPolicy {
    /// Units and bonus for a payment of `paid`. Errors are checked in the order a cashier would
    /// explain them: nothing paid, then not whole units, then too many.
    pub fn bonus_for(&self, paid: Amount) -> Result<Bonus, TopupRuleError> {
        if !paid.is_positive() {
            return Err(TopupRuleError::NotPositive);
        }
        // unit > 0 is guaranteed by the loader; checking it again keeps a hand-built policy
        // with a zero unit from dividing by zero.
        if !self.unit.is_positive() || paid.fen() % self.unit.fen() != 0 {
            return Err(TopupRuleError::NotWholeUnits { unit: self.unit });
        }
        let units = paid.fen() / self.unit.fen();
        let too_many = TopupRuleError::TooManyUnits {
            max: self.max_units_per_topup,
        };
        let units = u32::try_from(units).map_err(|_| too_many.clone())?;
        if units > self.max_units_per_topup {
            return Err(too_many);
        }
        let bonus = self
            .bonus_per_unit
            .checked_mul(i64::from(units))
            .ok_or(TopupRuleError::Overflow)?;
        Ok(Bonus { units, bonus })
    }

    /// Bonus a household may still receive this month, given what it already received.
    /// Never negative: a cap lowered mid-month leaves room 0, it does not claw back.
    pub fn bonus_room(&self, granted_this_month: Amount) -> Amount {
        match self.monthly_bonus_cap.checked_sub(granted_this_month) {
            Some(room) if room.is_positive() => room,
            _ => Amount::ZERO,
        }
    }

    pub fn accepts(&self, method: TopupMethod) -> bool {
        self.methods.contains(&method)
    }
}

/// Which households may top up with a bonus.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Eligibility {
    /// Every compound marked eligible in master data.
    EligibleCompounds,
    /// Only these compounds, and only while they are also marked eligible.
    Compounds(Vec<String>),
}

impl Eligibility {
    /// A listed compound must also be marked eligible: the list narrows master data, it never
    /// overrides a compound that was taken out of the programme.
    pub fn admits(&self, compound_code: &str, compound_marked_eligible: bool) -> bool {
        compound_marked_eligible
            && match self {
                Eligibility::EligibleCompounds => true,
                Eligibility::Compounds(codes) => codes.iter().any(|c| c == compound_code),
            }
    }
}

/// How a top-up is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TopupMethod {
    Cash,
    Wechat,
    Alipay,
}

impl TopupMethod {
    pub const ALL: [TopupMethod; 3] = [TopupMethod::Cash, TopupMethod::Wechat, TopupMethod::Alipay];

    pub fn as_str(self) -> &'static str {
        match self {
            TopupMethod::Cash => "cash",
            TopupMethod::Wechat => "wechat",
            TopupMethod::Alipay => "alipay",
        }
    }
}

impl fmt::Display for TopupMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TopupMethod {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopupMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownName::new(s, &["cash", "wechat", "alipay"]))
    }
}

/// Rules of `kind = "profit_to_fees"` (合作社盈利用物业).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProfitPolicy {
    /// Share of a month's positive profit that goes to property fees, 0..=1.
    pub share: Decimal,
    pub basis: AllocationBasis,
    /// A household never gets more than it owes; the excess stays in the pool.
    pub cap_at_fees_owed: bool,
    /// A loss month is netted against later profit before anything is shared.
    pub carry_losses_forward: bool,
    /// Cost of goods assumed for sales recorded without catalogue items, 0..=1.
    pub default_cost_ratio: Decimal,
    pub rounding: Rounding,
    /// The most any single amount may be while this version is in force.
    pub max_amount: Amount,
}

/// How the fee pool is split between households.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationBasis {
    /// In proportion to the credit each household spent in the month.
    #[default]
    CreditSpend,
    /// The same for every participating household.
    Equal,
    /// In proportion to each household's fee due.
    FeeDue,
}

impl AllocationBasis {
    pub const ALL: [AllocationBasis; 3] = [
        AllocationBasis::CreditSpend,
        AllocationBasis::Equal,
        AllocationBasis::FeeDue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AllocationBasis::CreditSpend => "credit_spend",
            AllocationBasis::Equal => "equal",
            AllocationBasis::FeeDue => "fee_due",
        }
    }
}

impl fmt::Display for AllocationBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AllocationBasis {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllocationBasis::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| UnknownName::new(s, &["credit_spend", "equal", "fee_due"]))
    }
}

/// The policy files' names for [`Rounding`]; kept here so a file is read the same way whatever
/// serde attributes `Rounding` carries.
pub fn rounding_name(r: Rounding) -> &'static str {
    match r {
        Rounding::HalfUp => "half_up",
        Rounding::HalfEven => "half_even",
        Rounding::Down => "down",
    }
}

pub(crate) fn parse_rounding(s: &str) -> Result<Rounding, UnknownName> {
    [Rounding::HalfUp, Rounding::HalfEven, Rounding::Down]
        .into_iter()
        .find(|r| rounding_name(*r) == s)
        .ok_or_else(|| UnknownName::new(s, &["half_up", "half_even", "down"]))
}

/// A name that is not one of the allowed ones; the message lists them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not one of {allowed}")]
pub struct UnknownName {
    pub given: String,
    pub allowed: String,
}

impl UnknownName {
    fn new(given: &str, allowed: &[&str]) -> UnknownName {
        UnknownName {
            given: given.to_owned(),
            allowed: allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A property fee rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeRate {
    /// Yuan per m² of floor area per month.
    PerM2(Decimal),
    /// The same amount per household per month.
    Flat(Amount),
}

/// Rules of `kind = "property_fees"` (物业费).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FeePolicy {
    /// Rate for compounds without a schedule of their own.
    pub default: FeeRate,
    pub compounds: BTreeMap<String, FeeRate>,
    pub rounding: Rounding,
    /// The most any single amount may be while this version is in force.
    pub max_amount: Amount,
}

impl FeePolicy {
    pub fn rate_for(&self, compound: &str) -> &FeeRate {
        self.compounds.get(compound).unwrap_or(&self.default)
    }

    /// One household's fee for one month. Area × rate is computed exactly and rounded once, so
    /// 87.35 m² × 0.55 = 48.0425 → 48.04, never a sum of pre-rounded parts. `area_m2` comes
    /// from master data, which is where a negative area is refused.
    pub fn monthly_fee(&self, compound: &str, area_m2: Decimal) -> Result<Amount, MoneyError> {
        match self.rate_for(compound) {
            FeeRate::Flat(amount) => Ok(*amount),
            FeeRate::PerM2(rate) => {
                let exact = area_m2.checked_mul(*rate).ok_or(MoneyError::Overflow)?;
                round_to_fen(exact, self.rounding)
            }
        }
    }
}
