//! Schemas for the OpenAPI document (`/openapi.json`) that state the limits the server
//! enforces on input: codes, months, quantities, areas, free text and request amounts, and the
//! values of the reports' `format`, `lang` and `table`. A request field names one with
//! `#[schema(value_type = …)]` or `#[param(value_type = …)]`; what the field holds in Rust is
//! unchanged. A pattern forbids only what the server refuses (schemathesis's negative cases,
//! `.ci/schemathesis`, check that); a range a pattern cannot hold is in the description.
//! Documentation only: nothing here parses input.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

fn string(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

/// The code of a company, compound, cooperative, shop or household, or a catalogue SKU
/// (`domain::master::check_code`).
pub struct Code;

pub const CODE_PATTERN: &str = "^[A-Za-z0-9_-]{1,32}$";

impl PartialSchema for Code {
    fn schema() -> RefOr<Schema> {
        string(
            CODE_PATTERN,
            "A code the client chose for master data, or a catalogue SKU: 1–32 ASCII letters, digits, '-' or '_'.",
        )
        .min_length(Some(1))
        .max_length(Some(32))
        .examples([serde_json::json!("HX01-0001")])
        .into()
    }
}
impl ToSchema for Code {}

/// A calendar month, `YYYY-MM` (`fees::month_bounds`).
pub struct Month;

pub const MONTH_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])$";

impl PartialSchema for Month {
    fn schema() -> RefOr<Schema> {
        string(MONTH_PATTERN, "A calendar month written YYYY-MM.")
            .examples([serde_json::json!("2026-11")])
            .into()
    }
}
impl ToSchema for Month {}

/// A quantity in plain decimal notation (`money::parse_plain_decimal`, `domain::sale`).
pub struct Quantity;

pub const QUANTITY_PATTERN: &str = r"^0*[0-9]{1,6}(\.[0-9]{1,3})?$";

impl PartialSchema for Quantity {
    fn schema() -> RefOr<Schema> {
        string(
            QUANTITY_PATTERN,
            "A quantity as a string in plain decimal notation, like \"2\" or \"1.5\" (no exponent, sign, spaces or separators): more than zero, at most 100000, at most three decimals.",
        )
        .examples([serde_json::json!("1.5")])
        .into()
    }
}
impl ToSchema for Quantity {}

/// A floor area in m² (`domain::master::area_dm2`). Its pattern allows a '-' as [`Price`]'s does.
pub struct Area;

pub const AREA_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?$";

impl PartialSchema for Area {
    fn schema() -> RefOr<Schema> {
        string(
            AREA_PATTERN,
            "A floor area in m² as a string in plain decimal notation (no exponent, sign '+', spaces or separators): 0 to 100000 with at most two decimals (trailing zeros aside).",
        )
        .examples([serde_json::json!("87.35")])
        .into()
    }
}
impl ToSchema for Area {}

/// An amount a request asks to move: at most 1,000,000.00 (`domain::within_ceiling`).
pub struct RequestAmount;

pub const REQUEST_AMOUNT_PATTERN: &str = r"^0*([0-9]{1,6}(\.[0-9]{1,2})?|1000000(\.0{1,2})?)$";

impl PartialSchema for RequestAmount {
    fn schema() -> RefOr<Schema> {
        string(
            REQUEST_AMOUNT_PATTERN,
            "An amount of CNY in yuan as a string with at most two decimals (\"55.00\", \"55\", \"55.5\"; JSON numbers are refused): more than zero, and at most 1,000,000.00 or the lower `max_amount` of a policy in force (else `invalid_amount`).",
        )
        .examples([serde_json::json!("100.00")])
        .into()
    }
}
impl ToSchema for RequestAmount {}

/// A price or cost of the catalogue: an amount that is not negative (the pattern allows a '-'
/// because "-0" is zero, which the server takes).
pub struct Price;

pub const PRICE_PATTERN: &str = r"^-?[0-9]+(\.[0-9]{1,2})?$";

impl PartialSchema for Price {
    fn schema() -> RefOr<Schema> {
        string(
            PRICE_PATTERN,
            "An amount of CNY in yuan as a string with at most two decimals (JSON numbers are refused); not negative.",
        )
        .examples([serde_json::json!("6.50")])
        .into()
    }
}
impl ToSchema for Price {}

/// Characters free text may not hold (`domain::master::check_text`): control characters and
/// the invisible or direction-changing format characters. As a character-class body.
macro_rules! not_text {
    () => {
        r"\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    };
}

/// Free text: not blank, at most so many characters, no control or invisible characters.
pub const TEXT_PATTERN: &str = concat!(
    "^[^",
    not_text!(),
    r"]*[^\s",
    not_text!(),
    "][^",
    not_text!(),
    "]*$"
);

macro_rules! text_schemas {
    ($($name:ident = $max:literal),* $(,)?) => {$(
        #[doc = concat!("Free text of at most ", $max, " characters.")]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string(
                    TEXT_PATTERN,
                    concat!(
                        "Text of 1 to ", $max,
                        " characters, not only spaces, without control characters or invisible and direction-changing ones."
                    ),
                )
                .min_length(Some(1))
                .max_length(Some($max))
                .into()
            }
        }
        impl ToSchema for $name {}
    )*};
}

text_schemas!(
    Text10 = 10,
    Text30 = 30,
    Text50 = 50,
    Text100 = 100,
    Text200 = 200
);

/// `format` of a statement or the alliance's report.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

/// `format` of the till report.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TillFormat {
    Json,
    Csv,
}

/// The words of a CSV: Chinese for people, or the JSON's field names.
#[derive(ToSchema)]
pub enum Lang {
    #[schema(rename = "zh-CN")]
    ZhCn,
    #[schema(rename = "en")]
    En,
}

/// The alliance report's table, for CSV.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AllianceTable {
    Totals,
    Compounds,
    Grids,
    Buildings,
    Cooperatives,
    Companies,
    Arrears,
}
