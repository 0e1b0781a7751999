//! Requests, receipts and the records stores keep for them.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Amount;

/// Every write the application knows, as one serializable value so a store's write path can
/// queue, batch and remember it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    CreateCooperative(NewCooperative),
    CreateShop(NewShop),
    CreateCompany(NewCompany),
    CreateCompound(NewCompound),
    CreateHousehold(NewHousehold),
    UpsertCatalogItem {
        cooperative: String,
        item: CatalogItemInput,
    },
    ImportHouseholds {
        rows: Vec<Lined<NewHousehold>>,
    },
    ImportCatalog {
        cooperative: String,
        rows: Vec<Lined<CatalogItemInput>>,
    },
    CreateToken(NewToken),
    RevokeToken {
        id: i64,
    },
    /// Sets (or with `None` clears) a household's PIN, given as its argon2 hash.
    SetHouseholdPin {
        household: String,
        pin_hash: Option<String>,
    },
    /// Records a PIN attempt on a household: a failure counts toward its lockout (5 failures →
    /// 15 minutes, doubling with each further 5), a success clears the count.
    RecordPinAttempt {
        household: String,
        ok: bool,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Moves a household's signed-link version on, so the links on old cards stop working.
    RotateHouseholdLink {
        household: String,
    },
    /// Sets (or with `None` clears) the day a compound's company took it over (接管).
    SetCompoundTakeover {
        compound: String,
        taken_over_on: Option<NaiveDate>,
    },
    /// Changes master data after it was made: a name, a compound's eligibility or company, a
    /// household's floor area, from a date; recorded in the chain with old and new values.
    ChangeMasterData(MasterChange),
    /// Forgets idempotency keys older than `before` (retention).
    PruneIdempotency {
        before: chrono::DateTime<chrono::Utc>,
    },
    /// Deletes the token rows of sessions and pairing codes that expired before `before` and
    /// never acted: residents' sessions (they only read) and unused or spent pairing codes.
    /// Staff sessions stay, since the journal names them as the actor of what they posted.
    PruneExpiredSessions {
        before: chrono::DateTime<chrono::Utc>,
    },
    TopUp(TopUp),
    Sale(Sale),
    RefundSale(RefundSale),
    RefundCredit(RefundCredit),
    VoidVoucher(VoidVoucher),
    /// Voids (作废) a top-up whose credit is untouched: see [`VoidTopUp`].
    VoidTopUp(VoidTopUp),
    /// Marks every active voucher whose validity ended before the business date expired (its
    /// balance stays owed), and recognises breakage on vouchers expired at least the top-up
    /// policy's `breakage_after_months` (never, when the policy names none).
    ExpireVouchers,
    /// Exchanges an expired voucher with credit left for a new one (换新券) at a till.
    ExchangeVoucher(ExchangeVoucher),
    Expense(Expense),
    StockReceipt(StockReceipt),
    Reverse(Reverse),
    /// Monthly property-fee bills for a company's households.
    GenerateBills(GenerateBills),
    PayFee(FeePayment),
    CloseMonth(CloseMonth),
    Settle(Settlement),
    /// A household's occupant leaves and another moves in (搬离/换户): wallets cashed out or
    /// handed on, fees settled or carried, the new occupant's name, a new card, no PIN.
    MoveOut(MoveOut),
}

impl Command {
    /// Whether the command may post ledger entries (and so needs a business date).
    pub fn moves_money(&self) -> bool {
        matches!(
            self,
            Command::TopUp(_)
                | Command::Sale(_)
                | Command::RefundSale(_)
                | Command::RefundCredit(_)
                | Command::VoidVoucher(_)
                | Command::VoidTopUp(_)
                | Command::ExpireVouchers
                | Command::ExchangeVoucher(_)
                | Command::Expense(_)
                | Command::StockReceipt(_)
                | Command::Reverse(_)
                | Command::GenerateBills(_)
                | Command::PayFee(_)
                | Command::CloseMonth(_)
                | Command::Settle(_)
                | Command::MoveOut(_)
        )
    }
}

/// A row of an import, with the line of the file it came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Lined<T> {
    pub line: u64,
    pub row: T,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCooperative {
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    #[schema(value_type = crate::openapi::Text100)]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShop {
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    #[schema(value_type = crate::openapi::Text100)]
    pub name: String,
    #[schema(value_type = crate::openapi::Code)]
    pub cooperative: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompany {
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    #[schema(value_type = crate::openapi::Text100)]
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCompound {
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    #[schema(value_type = crate::openapi::Text100)]
    pub name: String,
    #[schema(value_type = crate::openapi::Code)]
    pub company: String,
    /// One of the programme's formerly unmanaged compounds (无物业小区).
    pub eligible: bool,
}

/// The master data a change names.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Cooperative,
    Shop,
    Company,
    Compound,
    Household,
}

impl Subject {
    pub fn as_str(&self) -> &'static str {
        match self {
            Subject::Cooperative => "cooperative",
            Subject::Shop => "shop",
            Subject::Company => "company",
            Subject::Compound => "compound",
            Subject::Household => "household",
        }
    }

    pub fn parse(s: &str) -> Option<Subject> {
        [
            Subject::Cooperative,
            Subject::Shop,
            Subject::Company,
            Subject::Compound,
            Subject::Household,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// The master table its rows live in.
    pub fn table(&self) -> &'static str {
        match self {
            Subject::Cooperative => "cooperatives",
            Subject::Shop => "shops",
            Subject::Company => "companies",
            Subject::Compound => "compounds",
            Subject::Household => "households",
        }
    }

    /// The fields of it that may be changed.
    pub fn fields(&self) -> &'static [&'static str] {
        match self {
            Subject::Compound => &["name", "eligible", "company"],
            Subject::Household => &["name", "area_m2"],
            _ => &["name"],
        }
    }
}

/// A change to master data: `name` of any subject (from now on), `eligible` of a compound
/// (`true`/`false`, from a day), `company` of a compound (another company's code, from a
/// month), `area_m2` of a household (from a billing month).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MasterChange {
    pub subject: Subject,
    /// The code of the cooperative, shop, company, compound or household changed.
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    /// `name`, `eligible`, `company` or `area_m2`.
    #[schema(max_length = 32, example = "eligible")]
    pub field: String,
    /// The new value, as text: a name; `true` or `false`; a company code; an area in m².
    #[schema(max_length = 100, example = "false")]
    pub value: String,
    /// From when: a day `YYYY-MM-DD` for `eligible`, a month `YYYY-MM` for `company` and
    /// `area_m2` (bills of that month and later), absent for `name` (from now on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 10, example = "2026-11-01")]
    pub effective_from: Option<String>,
}

/// A change as the journal keeps it: old and new value (a company by its code, an area in m²),
/// the day it is in force from, and the entry that records who made it and when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MasterChangeRecord {
    pub id: i64,
    /// The master data entry in the chain.
    pub entry: i64,
    pub subject: Subject,
    pub code: String,
    pub field: String,
    pub old: Option<String>,
    pub new: String,
    pub effective_from: NaiveDate,
    /// When it was recorded (the entry's time), RFC 3339.
    #[serde(default)]
    pub recorded_at: String,
    /// The token that recorded it, when a token did.
    #[serde(default)]
    pub actor: Option<i64>,
    /// That token's label (who: a person's name, e.g. 王芳; for a web session, the label of the
    /// staff token it was signed in with) and role, in the history (`GET /v1/master-changes`);
    /// the change's own answer leaves them out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_role: Option<Role>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHousehold {
    #[schema(value_type = crate::openapi::Code)]
    pub code: String,
    #[schema(value_type = crate::openapi::Code)]
    pub compound: String,
    /// Floor area in m², at most two decimals.
    #[serde(with = "crate::money::plain_decimal")]
    #[schema(value_type = crate::openapi::Area)]
    pub area_m2: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::Text50>)]
    pub name: Option<String>,
    /// The building (楼栋) it is in, as the compound numbers them, e.g. `3栋`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::Text30>)]
    pub building: Option<String>,
    /// The grid (网格) of the neighbourhood committee it belongs to, about 150 households.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::Text30>)]
    pub grid: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogItemInput {
    pub sku: String,
    pub name: String,
    /// Selling unit, e.g. 斤, kg, 个, 袋.
    pub unit: String,
    pub price: Amount,
    pub cost: Amount,
    /// The product's printed barcode (EAN-8, UPC-A, EAN-13 or ITF-14: 8 to 14 digits), which
    /// the till's scanner reads; none for goods sold loose.
    #[serde(default)]
    pub barcode: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Cashier,
    CoopAccountant,
    Company,
    Resident,
    /// The alliance's board and the sector committee: reads the programme's figures across all
    /// companies, with no personal data and no household rows; writes nothing.
    Alliance,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Cashier => "cashier",
            Role::CoopAccountant => "coop_accountant",
            Role::Company => "company",
            Role::Resident => "resident",
            Role::Alliance => "alliance",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "admin" => Role::Admin,
            "cashier" => Role::Cashier,
            "coop_accountant" => Role::CoopAccountant,
            "company" => Role::Company,
            "resident" => Role::Resident,
            "alliance" => Role::Alliance,
            _ => return None,
        })
    }
}

/// A new bearer token; only the SHA-256 of the secret reaches the store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewToken {
    pub hash: String,
    pub role: Role,
    /// The code of what the role is bound to: a shop, cooperative, company or household.
    pub scope: Option<String>,
    pub label: Option<String>,
    /// Residents' sessions expire; `None` lives until revoked.
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The token a web session was made from: revoking that token ends the session too.
    #[serde(default)]
    pub parent: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenScopeIds {
    pub cooperative: Option<i64>,
    pub shop: Option<i64>,
    pub company: Option<i64>,
    pub household: Option<i64>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayMethod {
    Cash,
    Wechat,
    Alipay,
    Bank,
}

impl PayMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::Cash => "cash",
            PayMethod::Wechat => "wechat",
            PayMethod::Alipay => "alipay",
            PayMethod::Bank => "bank",
        }
    }

    pub fn parse(s: &str) -> Option<PayMethod> {
        [
            PayMethod::Cash,
            PayMethod::Wechat,
            PayMethod::Alipay,
            PayMethod::Bank,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    #[default]
    Wallet,
    Voucher,
}

/// What a top-up does when its bonus would pass the household's monthly bonus cap.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BonusRule {
    /// The whole bonus or nothing: past the cap the top-up is refused.
    #[default]
    Full,
    /// Accept the top-up with the bonus the cap still allows (possibly none).
    Allowed,
}

/// 居民购物50元换55元: a resident pays `paid` and is credited paid + bonus.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TopUp {
    pub shop: String,
    pub household: String,
    pub paid: Amount,
    pub method: PayMethod,
    #[serde(default)]
    pub deliver: Delivery,
    #[serde(default)]
    pub bonus: BonusRule,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    #[schema(value_type = crate::openapi::Code)]
    pub sku: String,
    #[serde(with = "crate::money::plain_decimal")]
    #[schema(value_type = crate::openapi::Quantity)]
    pub qty: Decimal,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenderType {
    Wallet,
    Voucher,
    Cash,
    Wechat,
    Alipay,
}

impl TenderType {
    pub fn as_str(self) -> &'static str {
        match self {
            TenderType::Wallet => "wallet",
            TenderType::Voucher => "voucher",
            TenderType::Cash => "cash",
            TenderType::Wechat => "wechat",
            TenderType::Alipay => "alipay",
        }
    }

    pub fn parse(s: &str) -> Option<TenderType> {
        Some(match s {
            "wallet" => TenderType::Wallet,
            "voucher" => TenderType::Voucher,
            "cash" => TenderType::Cash,
            "wechat" => TenderType::Wechat,
            "alipay" => TenderType::Alipay,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tender {
    #[serde(rename = "type")]
    pub kind: TenderType,
    #[schema(value_type = crate::openapi::RequestAmount)]
    pub amount: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// A sale at a till: by catalogue lines or by amount, paid by one or more tenders.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sale {
    pub shop: String,
    #[serde(default)]
    pub household: Option<String>,
    #[serde(default)]
    pub lines: Vec<SaleLine>,
    #[serde(default)]
    pub amount: Option<Amount>,
    pub tenders: Vec<Tender>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundSale {
    pub sale: i64,
    /// When set, only a sale of this shop may be refunded (a cashier's scope).
    pub shop: Option<String>,
    /// When set, only a sale of this cooperative may be refunded (an accountant's scope).
    #[serde(default)]
    pub cooperative: Option<String>,
    /// `None`: everything not yet refunded.
    pub amount: Option<Amount>,
}

/// What a move-out does with the leaving occupant's wallets.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletDisposition {
    /// Every wallet's paid credit paid out by the usual cash-out rule, its bonus forfeited.
    CashOut,
    /// The wallets stay with the household for the new occupant (both occupants agreed); no
    /// money moves.
    Transfer,
}

impl WalletDisposition {
    pub fn as_str(self) -> &'static str {
        match self {
            WalletDisposition::CashOut => "cash_out",
            WalletDisposition::Transfer => "transfer",
        }
    }
}

/// What a move-out does about property fees the household owes.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeesOnMoveOut {
    /// The household owes nothing (else the move-out is refused, `arrears_outstanding`).
    #[default]
    Settled,
    /// Arrears stay on the household for the company to pursue.
    Carry,
}

impl FeesOnMoveOut {
    pub fn as_str(self) -> &'static str {
        match self {
            FeesOnMoveOut::Settled => "settled",
            FeesOnMoveOut::Carry => "carry",
        }
    }
}

/// A change of occupant. `cooperative`, when set, is the only cooperative whose cash may pay a
/// cash-out (an accountant's scope): credit held at another one refuses the move-out. `company`,
/// when set, is the only company whose household it may be (an office's scope).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MoveOut {
    pub household: String,
    /// The new occupant's name; `None` leaves the household without one.
    #[serde(default)]
    pub new_occupant: Option<String>,
    pub wallet: WalletDisposition,
    /// How a cash-out is handed over.
    pub method: PayMethod,
    #[serde(default)]
    pub fees: FeesOnMoveOut,
    #[serde(default)]
    pub cooperative: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
}

/// Cash-out of a household's unused credit: the paid part is returned, the bonus forfeited.
/// With `amount`, only that much paid credit is paid out and the bonus is forfeited in
/// proportion (amount ÷ paid of it, by the allocator); without, the whole wallet.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundCredit {
    pub household: String,
    pub cooperative: String,
    pub method: PayMethod,
    #[serde(default)]
    pub amount: Option<Amount>,
}

/// Voids a top-up taken by mistake (wrong household, wrong amount, the customer changed their
/// mind): one entry reverses its postings exactly, the top-up is marked voided and its bonus
/// no longer counts towards the month's cap. Only while none of its credit was used: a wallet
/// top-up while nothing was drawn from that wallet after it, a voucher top-up while the voucher
/// is active and untouched (the void kills the voucher). Scopes: a cashier voids only what
/// their shop took that business day; an accountant anything of their cooperative; an admin
/// anything.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VoidTopUp {
    /// The top-up's entry, as its receipt names it (`entry`).
    pub topup: i64,
    /// When set, a cashier's scope: only a top-up this shop took, on the business date.
    #[serde(default)]
    pub shop: Option<String>,
    /// When set, an accountant's scope: only a top-up of this cooperative.
    #[serde(default)]
    pub cooperative: Option<String>,
    #[serde(default)]
    pub memo: Option<String>,
}

/// A top-up as filed, for its void.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopupOnFile {
    pub entry: i64,
    pub coop: i64,
    pub coop_code: String,
    pub shop: i64,
    pub shop_code: String,
    pub household: i64,
    pub household_code: String,
    pub method: PayMethod,
    pub paid: Amount,
    pub bonus: Amount,
    pub voucher: Option<i64>,
    pub business_date: NaiveDate,
    /// The entry that voided it, once voided.
    pub void_entry: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VoidVoucher {
    pub code: String,
    pub cooperative: String,
    /// How the remaining paid part is handed back.
    pub method: PayMethod,
    #[serde(default)]
    pub memo: Option<String>,
}

/// An expired voucher's code presented at `shop`'s till, to be exchanged for a new voucher with
/// the same paid and bonus credit and a fresh validity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExchangeVoucher {
    pub code: String,
    pub shop: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Expense {
    pub cooperative: String,
    pub category: String,
    pub amount: Amount,
    /// The day the expense was incurred, as the accountant states it.
    pub date: NaiveDate,
    #[serde(default)]
    pub memo: Option<String>,
    #[serde(default = "cash")]
    pub method: PayMethod,
}

fn cash() -> PayMethod {
    PayMethod::Cash
}

/// Goods bought into the cooperative's stock.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StockReceipt {
    pub cooperative: String,
    pub amount: Amount,
    #[serde(default)]
    pub supplier: Option<String>,
    #[serde(default)]
    pub memo: Option<String>,
    #[serde(default = "cash")]
    pub method: PayMethod,
}

/// Reverses an expense or a stock receipt posted in error.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reverse {
    pub entry: i64,
    pub memo: String,
}

/// Bills for `month` (`YYYY-MM`) for every household of the company not yet billed for it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenerateBills {
    pub company: String,
    pub month: String,
}

/// A resident's payment of property fees, applied to the oldest unpaid bill first.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeePayment {
    pub household: String,
    pub amount: Amount,
    pub method: PayMethod,
    pub reference: String,
    /// When set, the household must belong to this company (a company's scope).
    #[serde(default)]
    pub company: Option<String>,
    /// When set, a cooperative's till (this shop) collects the fee on the company's behalf:
    /// the money is the cooperative's cash, owed to the company (`due_to`), and reaches it at
    /// settlement.
    #[serde(default)]
    pub shop: Option<String>,
}

/// A numbered fee receipt as stored (`fee_receipts`): ids, amount in fen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeeReceiptRow {
    pub company: i64,
    pub number: i64,
    pub entry: i64,
    pub household: i64,
    pub amount: Amount,
    pub method: String,
    pub cooperative: Option<i64>,
    pub shop: Option<i64>,
}

/// Close `month` for a cooperative: profit → pool → allocation toward residents' fees.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseMonth {
    pub cooperative: String,
    pub month: String,
    /// Compute and show, post nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// With `dry_run`: a month not yet ended, estimated from its first day to the business date
    /// (its profit and pool so far, as a close would compute them today).
    #[serde(default)]
    pub estimate: bool,
}

/// The cooperative pays a company what it owes for covered fees, by bank transfer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settlement {
    pub cooperative: String,
    pub company: String,
    pub amount: Amount,
    pub reference: String,
}

// ---- what the store reads back ----

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoopRef {
    pub id: i64,
    pub code: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShopRef {
    pub id: i64,
    pub code: String,
    pub coop: CoopRef,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HouseholdRef {
    pub id: i64,
    pub code: String,
    pub compound_id: i64,
    pub compound_code: String,
    pub compound_eligible: bool,
    pub company_id: i64,
    pub area_dm2: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogItem {
    pub id: i64,
    pub sku: String,
    pub name: String,
    pub unit: String,
    pub price: Amount,
    pub cost: Amount,
    pub barcode: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopupRecord {
    pub entry: i64,
    pub coop: i64,
    pub shop: i64,
    pub household: i64,
    pub method: PayMethod,
    pub paid: Amount,
    pub bonus: Amount,
    pub voucher: Option<i64>,
    pub business_date: NaiveDate,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VoucherStatus {
    Active,
    Void,
    Expired,
    /// Exchanged for a new voucher (换新券): the code is dead, the credit moved on.
    Exchanged,
}

impl VoucherStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VoucherStatus::Active => "active",
            VoucherStatus::Void => "void",
            VoucherStatus::Expired => "expired",
            VoucherStatus::Exchanged => "exchanged",
        }
    }

    pub fn parse(s: &str) -> Option<VoucherStatus> {
        Some(match s {
            "active" => VoucherStatus::Active,
            "void" => VoucherStatus::Void,
            "expired" => VoucherStatus::Expired,
            "exchanged" => VoucherStatus::Exchanged,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewVoucher {
    pub serial: u64,
    pub key_id: u8,
    pub coop: i64,
    pub household: Option<i64>,
    pub issued_on: NaiveDate,
    pub expires_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoucherRecord {
    pub id: i64,
    pub serial: u64,
    pub coop: i64,
    pub household: Option<i64>,
    pub issued_on: NaiveDate,
    pub expires_on: NaiveDate,
    pub status: VoucherStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleRecord {
    pub id: i64,
    pub entry: i64,
    pub coop: i64,
    pub coop_code: String,
    pub shop: i64,
    pub household: Option<i64>,
    pub total: Amount,
    pub cost: Amount,
    pub refunded: Amount,
    pub refunded_cost: Amount,
    pub business_date: NaiveDate,
    pub lines: Vec<SaleLineRecord>,
    pub tenders: Vec<TenderRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleLineRecord {
    pub sku: String,
    pub qty: String,
    pub price: Amount,
    pub amount: Amount,
    pub cost: Amount,
}

/// One tender of a sale and what it drew from paid and bonus credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenderRecord {
    pub kind: TenderType,
    pub household: Option<i64>,
    pub voucher: Option<i64>,
    pub amount: Amount,
    pub paid_part: Amount,
    pub bonus_part: Amount,
    pub refunded: Amount,
    pub refunded_paid: Amount,
    pub refunded_bonus: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaleRefundRecord {
    pub entry: i64,
    pub amount: Amount,
    pub cost: Amount,
    /// Per tender, in the sale's order: (refunded, of which paid, of which bonus).
    pub tenders: Vec<(Amount, Amount, Amount)>,
}

// ---- receipts ----

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Receipt {
    Created(Created),
    Imported(Imported),
    TopUp(TopUpReceipt),
    Sale(SaleReceipt),
    SaleRefund(SaleRefundReceipt),
    CreditRefund(CreditRefundReceipt),
    TopUpVoid(TopUpVoidReceipt),
    Expired(ExpiredReceipt),
    Exchanged(ExchangeReceipt),
    Posted(PostedReceipt),
    Bills(BillsReceipt),
    FeePayment(FeePaymentReceipt),
    MonthClose(CloseReceipt),
    Settlement(SettlementReceipt),
    MoveOut(MoveOutReceipt),
    MasterChanged(MasterChangeRecord),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Created {
    pub id: i64,
    pub code: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Imported {
    pub created: u64,
    pub updated: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct WalletBalance {
    pub paid: Amount,
    pub bonus: Amount,
    pub total: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct IssuedVoucher {
    pub code: String,
    pub balance: Amount,
    pub expires_on: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TopUpReceipt {
    pub entry: i64,
    pub household: String,
    pub paid: Amount,
    pub bonus: Amount,
    pub credited: Amount,
    pub method: PayMethod,
    /// The household's wallet after the top-up (unchanged when delivered as a voucher).
    pub wallet: WalletBalance,
    pub voucher: Option<IssuedVoucher>,
    /// `id@version` of the policy applied.
    pub policy: String,
    pub business_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TenderReceipt {
    #[serde(rename = "type")]
    pub kind: TenderType,
    pub amount: Amount,
    /// Of a wallet or voucher tender, the part drawn from paid credit and from bonus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paid: Option<Amount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bonus: Option<Amount>,
    /// A voucher's balance after the sale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voucher_balance: Option<Amount>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SaleReceipt {
    pub sale: i64,
    pub entry: i64,
    pub total: Amount,
    pub cost: Amount,
    pub tenders: Vec<TenderReceipt>,
    /// The household's wallet after the sale, when one was named.
    pub wallet: Option<WalletBalance>,
    pub business_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SaleRefundReceipt {
    pub sale: i64,
    pub entry: i64,
    pub amount: Amount,
    pub tenders: Vec<TenderReceipt>,
    /// What is still refundable on the sale.
    pub remaining: Amount,
    /// The business date the refund is booked on.
    pub business_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CreditRefundReceipt {
    pub entry: i64,
    /// The paid part handed back.
    pub refunded: Amount,
    /// The unused bonus given up.
    pub forfeited: Amount,
    pub method: PayMethod,
    /// A wallet's credit after the cash-out (absent for a voucher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left: Option<WalletBalance>,
}

/// A voided top-up: what went back (the paid part to the method it was paid by, the bonus
/// withdrawn from promotion).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TopUpVoidReceipt {
    /// The void's entry.
    pub entry: i64,
    /// The top-up's entry.
    pub topup: i64,
    pub household: String,
    /// The paid part handed back, by `method`.
    pub paid: Amount,
    /// The bonus withdrawn.
    pub bonus: Amount,
    pub method: PayMethod,
    /// The wallet after the void (absent for a voucher top-up, whose voucher is now void).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet: Option<WalletBalance>,
    /// The business date the void is booked on.
    pub business_date: NaiveDate,
}

/// One cooperative's wallet at a move-out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MovedWallet {
    #[schema(value_type = crate::openapi::Code)]
    pub cooperative: String,
    /// The wallet before the move-out.
    pub paid: Amount,
    pub bonus: Amount,
    /// Paid credit handed back and bonus forfeited (zero for a transfer).
    pub refunded: Amount,
    pub forfeited: Amount,
    /// The cash-out's `credit_refund` entry.
    pub refund_entry: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MoveOutReceipt {
    /// The move-out's own entry (its hashed record).
    pub entry: i64,
    #[schema(value_type = crate::openapi::Code)]
    pub household: String,
    pub wallet: WalletDisposition,
    pub method: PayMethod,
    /// Every wallet that held credit.
    pub wallets: Vec<MovedWallet>,
    /// Totals over `wallets`.
    pub refunded: Amount,
    pub forfeited: Amount,
    pub fees: FeesOnMoveOut,
    /// The fee balance at the move-out, owed (positive) or paid ahead (negative); it stays on
    /// the household.
    pub fee_balance: Amount,
    /// The arrears carried (the positive part of `fee_balance`).
    pub arrears: Amount,
    /// The new occupant's name as recorded.
    pub occupant: Option<String>,
    /// The household card's new link version; earlier cards and their sessions are refused.
    pub link_version: i64,
    /// The PIN was cleared: the new occupant gets one from the office.
    pub pin_cleared: bool,
    pub business_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ExpiredReceipt {
    /// Vouchers marked expired by this run; their credit stays owed to the holder.
    pub vouchers: u64,
    /// The paid and bonus credit of those vouchers, still a prepaid liability.
    pub owed_paid: Amount,
    pub owed_bonus: Amount,
    /// Expired vouchers whose breakage this run recognised (policy `breakage_after_months`).
    pub broken: u64,
    /// Their unused paid part, now the cooperative's breakage income…
    pub paid: Amount,
    /// …and their unused bonus, forfeited against promotion.
    pub bonus: Amount,
}

/// An exchanged voucher: the new one (printed like a top-up's voucher) and what it carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ExchangeReceipt {
    pub entry: i64,
    /// The new voucher: its code, balance and fresh expiry.
    pub voucher: IssuedVoucher,
    pub paid: Amount,
    pub bonus: Amount,
    /// Of `paid` and `bonus`, what had been recognised as breakage (and forfeited bonus) and
    /// this exchange gave back to the holder.
    pub reinstated_paid: Amount,
    pub reinstated_bonus: Amount,
    pub business_date: NaiveDate,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PostedReceipt {
    pub entry: i64,
    pub amount: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BillsReceipt {
    pub company: String,
    pub month: String,
    /// Bills created now; households already billed for the month are skipped.
    pub count: u64,
    pub total: Amount,
    pub entry: Option<i64>,
    pub policy: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AppliedToBill {
    pub month: String,
    pub amount: Amount,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FeePaymentReceipt {
    pub entry: i64,
    pub household: String,
    pub amount: Amount,
    /// The household's company, whose receipt sequence numbered this payment.
    #[serde(default)]
    pub company: String,
    /// The receipt number (收据号): one gapless sequence per company, office and tills alike.
    #[serde(default)]
    pub receipt: i64,
    #[serde(default = "default_method")]
    pub method: PayMethod,
    /// The cooperative and shop whose till collected it; absent when the office took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooperative: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop: Option<String>,
    pub business_date: Option<NaiveDate>,
    /// The bills it paid, oldest first.
    pub applied: Vec<AppliedToBill>,
    /// What was left over after every bill: paid ahead.
    pub prepaid: Amount,
    /// The household's fee balance after: positive owes, negative paid ahead.
    pub balance: Amount,
}

fn default_method() -> PayMethod {
    PayMethod::Cash
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CompanyShare {
    pub company: String,
    pub households: u64,
    pub amount: Amount,
}

/// The result of a month close (or of its dry run).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CloseReceipt {
    pub cooperative: String,
    pub month: String,
    pub dry_run: bool,
    pub entry: Option<i64>,
    pub policy: String,
    pub basis: String,
    pub sales: Amount,
    pub cogs: Amount,
    pub promotion: Amount,
    pub expenses: Amount,
    /// sales − cogs − promotion − expenses of the month.
    pub profit: Amount,
    /// Losses of earlier months still to be made good (when the policy carries them).
    pub loss_carried_in: Amount,
    pub loss_carried_out: Amount,
    /// share × profit left after losses, when positive.
    pub distributed: Amount,
    pub reserve_in: Amount,
    /// distributed + reserve carried in.
    pub pool: Amount,
    pub allocated: Amount,
    /// What was not allocated, carried to the next close.
    pub reserve: Amount,
    pub households: u64,
    pub companies: Vec<CompanyShare>,
    /// An estimate's last business date: the month so far, not its close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_to: Option<NaiveDate>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SettlementReceipt {
    pub entry: i64,
    pub company: String,
    pub amount: Amount,
    /// Still owed to the company after this payment.
    pub outstanding: Amount,
}

/// A household due a property-fee bill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillingRow {
    pub household: i64,
    pub code: String,
    pub compound: String,
    pub area_dm2: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenBill {
    pub id: i64,
    pub month: String,
    pub amount: Amount,
    pub settled: Amount,
}

/// A household of an eligible compound, as a month close sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EligibleHousehold {
    pub id: i64,
    pub code: String,
    pub company: i64,
    pub company_code: String,
}

/// An eligible household with what a month close weighs it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub household: EligibleHousehold,
    /// Its fee balance now: positive owes.
    pub fees_balance: Amount,
    /// Its wallet and voucher spending at the cooperative in the month, net of refunds.
    pub credit_spend: i64,
}

/// The cooperative's books for one month, each on its normal side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonthTotals {
    pub sales: Amount,
    pub cogs: Amount,
    pub promotion: Amount,
    pub expenses: Amount,
}

/// A household's share of a closed month, as stored for audit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareRow {
    pub household: i64,
    pub company: i64,
    pub weight: i64,
    pub cap: Option<Amount>,
    pub amount: Amount,
}
