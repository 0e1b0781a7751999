//! Reading one policy file: TOML text → checked rules. Every complaint, syntax or semantic,
//! carries the 1-based line of the offending key, taken from toml's spans, so the operator can
//! go straight to it.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::rules::{
    parse_rounding, AllocationBasis, Eligibility, FeePolicy, FeeRate, ProfitPolicy, TopupMethod,
    TopupPolicy, DEFAULT_MAX_AMOUNT,
};
use super::{PolicyError, PolicyKind};
use crate::money::{Amount, Rounding};

/// The prepaid-card rule: bearer cards must stay valid for at least three years.
pub const MIN_VOUCHER_VALIDITY_MONTHS: u32 = 36;

/// One file, read and checked, before it is placed among the other files.
#[derive(Debug)]
pub(super) struct ParsedFile {
    pub kind: PolicyKind,
    pub id: String,
    pub id_line: usize,
    pub version: u32,
    pub version_line: usize,
    pub effective_from: NaiveDate,
    pub effective_line: usize,
    pub title: String,
    pub rules: ParsedRules,
}

#[derive(Debug)]
pub(super) enum ParsedRules {
    Topup(TopupPolicy),
    Profit(ProfitPolicy),
    Fees(FeePolicy),
}

/// A decimal written as a string. Bare TOML numbers are refused on purpose: `50.1` as a float is
/// not exactly 50.1, and an amount must never pass through a float.
#[derive(Debug)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a quoted decimal such as \"50.00\" (bare numbers are refused: a float \
                     cannot hold every fen exactly)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// A whole number; the wrapper exists for a plain-words message instead of serde's "i64".
#[derive(Debug, Clone, Copy)]
struct Whole(i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number such as 20")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
        }
        d.deserialize_i64(V)
    }
}

/// First pass: only `kind`, to know which set of keys the file may have.
#[derive(Deserialize)]
struct KindProbe {
    kind: Option<Spanned<String>>,
}

// The header keys are repeated in each kind's struct rather than flattened, because serde's
// `flatten` does not work together with `deny_unknown_fields`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopup {
    #[allow(dead_code)] // read by the probe; listed so that it is not an unknown key
    kind: Spanned<String>,
    id: Spanned<String>,
    version: Spanned<Whole>,
    effective_from: Spanned<toml::Value>,
    title: Spanned<String>,
    /// The most any single amount sent to the ledger may be ([`DEFAULT_MAX_AMOUNT`]).
    max_amount: Option<Spanned<Text>>,
    unit: Spanned<Text>,
    bonus_per_unit: Spanned<Text>,
    max_units_per_topup: Spanned<Whole>,
    monthly_bonus_cap: Spanned<Text>,
    eligibility: Spanned<String>,
    compounds: Option<Spanned<Vec<Spanned<String>>>>,
    methods: Spanned<Vec<Spanned<String>>>,
    wallet_cap: Spanned<Text>,
    voucher_face_cap: Spanned<Text>,
    voucher_validity_months: Spanned<Whole>,
    custody_deposit_ratio: Spanned<Text>,
    /// Wallet spending per sale allowed without the resident's card or PIN (default 0.00).
    resident_factor_over: Option<Spanned<Text>>,
    /// Months after expiry before an expired voucher's credit becomes breakage (default never).
    breakage_after_months: Option<Spanned<Whole>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfit {
    #[allow(dead_code)]
    kind: Spanned<String>,
    id: Spanned<String>,
    version: Spanned<Whole>,
    effective_from: Spanned<toml::Value>,
    title: Spanned<String>,
    /// The most any single amount sent to the ledger may be ([`DEFAULT_MAX_AMOUNT`]).
    max_amount: Option<Spanned<Text>>,
    share: Spanned<Text>,
    basis: Option<Spanned<String>>,
    cap_at_fees_owed: bool,
    carry_losses_forward: bool,
    default_cost_ratio: Spanned<Text>,
    rounding: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFees {
    #[allow(dead_code)]
    kind: Spanned<String>,
    id: Spanned<String>,
    version: Spanned<Whole>,
    effective_from: Spanned<toml::Value>,
    title: Spanned<String>,
    /// The most any single amount sent to the ledger may be ([`DEFAULT_MAX_AMOUNT`]).
    max_amount: Option<Spanned<Text>>,
    default: Spanned<RawRate>,
    rounding: Option<Spanned<String>>,
    #[serde(default)]
    compound: Vec<Spanned<RawCompound>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    per_m2: Option<Spanned<Text>>,
    flat: Option<Spanned<Text>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompound {
    code: Spanned<String>,
    per_m2: Option<Spanned<Text>>,
    flat: Option<Spanned<Text>>,
}

/// The text being read, for turning byte spans into lines.
struct Src<'a> {
    file: &'a str,
    text: &'a str,
}

type R<T> = Result<T, PolicyError>;

impl Src<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn err(&self, span: Range<usize>, reason: impl Into<String>) -> PolicyError {
        PolicyError::Malformed {
            file: self.file.to_owned(),
            line: self.line_of(span.start),
            reason: reason.into(),
        }
    }

    /// toml's own errors (syntax, unknown key, wrong type, missing key) keep only the message,
    /// because its multi-line rendering with a caret would not fit `file:line: reason`; the
    /// offending line is quoted instead, and serde's "field" becomes the file's word, "key".
    fn toml_err(&self, e: &toml::de::Error) -> PolicyError {
        let span = e.span().unwrap_or(0..0);
        let message = e
            .message()
            .trim()
            .replace("unknown field", "unknown key")
            .replace("missing field", "missing key");
        let reason = match self.line_text(span.start) {
            // A missing key is reported at the start of its table, whose line says nothing.
            Some(line) if !message.starts_with("missing") && line.chars().count() <= 80 => {
                format!("{message} (in `{line}`)")
            }
            _ => message,
        };
        self.err(span, reason)
    }

    fn line_text(&self, offset: usize) -> Option<&str> {
        let start = self.text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
        let line = self.text.get(start..)?.lines().next()?.trim();
        (!line.is_empty()).then_some(line)
    }

    fn decimal(&self, key: &str, v: &Spanned<Text>) -> R<Decimal> {
        let s = v.get_ref().0.as_str();
        // Plain decimal notation only: Decimal::from_str would also take "1_0" and similar.
        let digits = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let plain = !int.is_empty()
            && !frac.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit());
        let parsed = if plain {
            Decimal::from_str(s).ok()
        } else {
            None
        };
        parsed.ok_or_else(|| {
            self.err(
                v.span(),
                format!("{key} \"{s}\" is not a decimal number; write it like \"0.55\""),
            )
        })
    }

    fn ratio(&self, key: &str, v: &Spanned<Text>) -> R<Decimal> {
        let d = self.decimal(key, v)?;
        if d < Decimal::ZERO || d > Decimal::ONE {
            return Err(self.err(
                v.span(),
                format!("{key} must be between 0 and 1, got \"{}\"", v.get_ref().0),
            ));
        }
        Ok(d)
    }

    fn amount(&self, key: &str, v: &Spanned<Text>) -> R<Amount> {
        let s = v.get_ref().0.as_str();
        Amount::parse(s).map_err(|e| self.err(v.span(), format!("{key} \"{s}\" {e}")))
    }

    fn positive_amount(&self, key: &str, v: &Spanned<Text>) -> R<Amount> {
        let a = self.amount(key, v)?;
        if !a.is_positive() {
            return Err(self.err(
                v.span(),
                format!("{key} must be greater than 0, got \"{}\"", v.get_ref().0),
            ));
        }
        Ok(a)
    }

    /// `max_amount`, when the file sets one; [`DEFAULT_MAX_AMOUNT`] otherwise.
    fn max_amount(&self, v: Option<&Spanned<Text>>) -> R<Amount> {
        v.map_or(Ok(DEFAULT_MAX_AMOUNT), |v| {
            self.positive_amount("max_amount", v)
        })
    }

    fn non_negative_amount(&self, key: &str, v: &Spanned<Text>) -> R<Amount> {
        let a = self.amount(key, v)?;
        if a.is_negative() {
            return Err(self.err(
                v.span(),
                format!("{key} must not be negative, got \"{}\"", v.get_ref().0),
            ));
        }
        Ok(a)
    }

    fn count(&self, key: &str, v: &Spanned<Whole>, min: u32, why: &str) -> R<u32> {
        let n = v.get_ref().0;
        match u32::try_from(n) {
            Ok(n) if n >= min => Ok(n),
            _ => Err(self.err(
                v.span(),
                format!("{key} must be at least {min}{why}, got {n}"),
            )),
        }
    }

    fn rounding(&self, v: Option<&Spanned<String>>) -> R<Rounding> {
        match v {
            None => Ok(Rounding::default()),
            Some(v) => {
                parse_rounding(v.get_ref()).map_err(|e| self.err(v.span(), format!("rounding {e}")))
            }
        }
    }

    fn header(
        &self,
        kind: PolicyKind,
        id: &Spanned<String>,
        version: &Spanned<Whole>,
        effective_from: &Spanned<toml::Value>,
        title: &Spanned<String>,
        rules: ParsedRules,
    ) -> R<ParsedFile> {
        let id_text = id.get_ref();
        // '@' would make the recorded "id@version" ambiguous; the rest keeps ids file-name safe.
        let id_ok = !id_text.is_empty()
            && id_text.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
            });
        if !id_ok {
            return Err(self.err(
                id.span(),
                format!(
                    "id \"{id_text}\" must be non-empty and use only a-z, 0-9, '-', '_' and '.'"
                ),
            ));
        }
        let version_n = self.count("version", version, 1, "")?;
        let date = self.date(effective_from)?;
        if title.get_ref().trim().is_empty() {
            return Err(self.err(title.span(), "title must not be empty"));
        }
        Ok(ParsedFile {
            kind,
            id: id_text.clone(),
            id_line: self.line_of(id.span().start),
            version: version_n,
            version_line: self.line_of(version.span().start),
            effective_from: date,
            effective_line: self.line_of(effective_from.span().start),
            title: title.get_ref().clone(),
            rules,
        })
    }

    /// `effective_from` may be a TOML date (`2024-01-01`) or the same as a string.
    fn date(&self, v: &Spanned<toml::Value>) -> R<NaiveDate> {
        let bad = || {
            self.err(
                v.span(),
                format!(
                    "effective_from must be a date written YYYY-MM-DD, got {}",
                    v.get_ref()
                ),
            )
        };
        match v.get_ref() {
            toml::Value::String(s) => {
                let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
                // chrono also accepts "2024-1-1"; insist on the one spelling.
                if d.format("%Y-%m-%d").to_string() != *s {
                    return Err(bad());
                }
                Ok(d)
            }
            toml::Value::Datetime(dt) => match (dt.date, dt.time, dt.offset) {
                (Some(d), None, None) => {
                    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                        .ok_or_else(bad)
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    fn topup(&self) -> R<ParsedFile> {
        let raw: RawTopup = toml::from_str(self.text).map_err(|e| self.toml_err(&e))?;
        let unit = self.positive_amount("unit", &raw.unit)?;
        let bonus_per_unit = self.non_negative_amount("bonus_per_unit", &raw.bonus_per_unit)?;
        let max_units_per_topup =
            self.count("max_units_per_topup", &raw.max_units_per_topup, 1, "")?;
        let monthly_bonus_cap =
            self.positive_amount("monthly_bonus_cap", &raw.monthly_bonus_cap)?;
        let eligibility = self.eligibility(&raw.eligibility, raw.compounds.as_ref())?;
        let methods = self.methods(&raw.methods)?;
        let wallet_cap = self.positive_amount("wallet_cap", &raw.wallet_cap)?;
        let voucher_face_cap = self.positive_amount("voucher_face_cap", &raw.voucher_face_cap)?;
        let voucher_validity_months = self.count(
            "voucher_validity_months",
            &raw.voucher_validity_months,
            MIN_VOUCHER_VALIDITY_MONTHS,
            " (prepaid-card rule: bearer vouchers stay valid for 3 years or more)",
        )?;
        let custody_deposit_ratio =
            self.ratio("custody_deposit_ratio", &raw.custody_deposit_ratio)?;
        let max_amount = self.max_amount(raw.max_amount.as_ref())?;
        let resident_factor_over = match &raw.resident_factor_over {
            Some(v) => self.non_negative_amount("resident_factor_over", v)?,
            None => Amount::ZERO,
        };
        let breakage_after_months = match &raw.breakage_after_months {
            Some(v) => Some(self.count("breakage_after_months", v, 0, "")?),
            None => None,
        };
        let rules = ParsedRules::Topup(TopupPolicy {
            unit,
            bonus_per_unit,
            max_units_per_topup,
            monthly_bonus_cap,
            eligibility,
            methods,
            wallet_cap,
            voucher_face_cap,
            voucher_validity_months,
            custody_deposit_ratio,
            max_amount,
            resident_factor_over,
            breakage_after_months,
        });
        self.header(
            PolicyKind::TopupBonus,
            &raw.id,
            &raw.version,
            &raw.effective_from,
            &raw.title,
            rules,
        )
    }

    fn eligibility(
        &self,
        which: &Spanned<String>,
        compounds: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> R<Eligibility> {
        match (which.get_ref().as_str(), compounds) {
            ("eligible_compounds", None) => Ok(Eligibility::EligibleCompounds),
            ("eligible_compounds", Some(list)) => Err(self.err(
                list.span(),
                "compounds is only read with eligibility = \"compounds\"; \
                 remove it or change eligibility",
            )),
            ("compounds", None) => Err(self.err(
                which.span(),
                "eligibility = \"compounds\" needs a list: compounds = [\"HX01\", ...]",
            )),
            ("compounds", Some(list)) => {
                if list.get_ref().is_empty() {
                    return Err(self.err(list.span(), "compounds must name at least one compound"));
                }
                let mut seen = BTreeSet::new();
                for code in list.get_ref() {
                    self.check_code(code)?;
                    if !seen.insert(code.get_ref().as_str()) {
                        return Err(self.err(
                            code.span(),
                            format!("compound \"{}\" is listed twice", code.get_ref()),
                        ));
                    }
                }
                Ok(Eligibility::Compounds(
                    list.get_ref().iter().map(|c| c.get_ref().clone()).collect(),
                ))
            }
            (other, _) => Err(self.err(
                which.span(),
                format!("eligibility `{other}` is not one of `eligible_compounds`, `compounds`"),
            )),
        }
    }

    fn check_code(&self, code: &Spanned<String>) -> R<()> {
        let c = code.get_ref();
        if c.is_empty() || c.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            return Err(self.err(
                code.span(),
                format!("compound code \"{c}\" must be non-empty without spaces"),
            ));
        }
        Ok(())
    }

    fn methods(&self, list: &Spanned<Vec<Spanned<String>>>) -> R<Vec<TopupMethod>> {
        if list.get_ref().is_empty() {
            return Err(self.err(list.span(), "methods must name at least one payment method"));
        }
        let mut out = Vec::new();
        for m in list.get_ref() {
            let method = TopupMethod::from_str(m.get_ref())
                .map_err(|e| self.err(m.span(), format!("methods: {e}")))?;
            if out.contains(&method) {
                return Err(self.err(m.span(), format!("method `{method}` is listed twice")));
            }
            out.push(method);
        }
        Ok(out)
    }

    fn profit(&self) -> R<ParsedFile> {
        let raw: RawProfit = toml::from_str(self.text).map_err(|e| self.toml_err(&e))?;
        let share = self.ratio("share", &raw.share)?;
        let basis = match &raw.basis {
            None => AllocationBasis::default(),
            Some(b) => AllocationBasis::from_str(b.get_ref())
                .map_err(|e| self.err(b.span(), format!("basis {e}")))?,
        };
        let default_cost_ratio = self.ratio("default_cost_ratio", &raw.default_cost_ratio)?;
        let rounding = self.rounding(raw.rounding.as_ref())?;
        let max_amount = self.max_amount(raw.max_amount.as_ref())?;
        let rules = ParsedRules::Profit(ProfitPolicy {
            share,
            basis,
            cap_at_fees_owed: raw.cap_at_fees_owed,
            carry_losses_forward: raw.carry_losses_forward,
            default_cost_ratio,
            rounding,
            max_amount,
        });
        self.header(
            PolicyKind::ProfitToFees,
            &raw.id,
            &raw.version,
            &raw.effective_from,
            &raw.title,
            rules,
        )
    }

    fn fees(&self) -> R<ParsedFile> {
        let raw: RawFees = toml::from_str(self.text).map_err(|e| self.toml_err(&e))?;
        let default = self.rate(
            "default",
            raw.default.span(),
            raw.default.get_ref().per_m2.as_ref(),
            raw.default.get_ref().flat.as_ref(),
        )?;
        let rounding = self.rounding(raw.rounding.as_ref())?;
        let mut compounds = std::collections::BTreeMap::new();
        for entry in &raw.compound {
            let c = entry.get_ref();
            self.check_code(&c.code)?;
            let rate = self.rate(
                &format!("compound \"{}\"", c.code.get_ref()),
                c.code.span(),
                c.per_m2.as_ref(),
                c.flat.as_ref(),
            )?;
            if compounds.insert(c.code.get_ref().clone(), rate).is_some() {
                return Err(self.err(
                    c.code.span(),
                    format!(
                        "compound \"{}\" has two schedules; keep one",
                        c.code.get_ref()
                    ),
                ));
            }
        }
        let max_amount = self.max_amount(raw.max_amount.as_ref())?;
        let rules = ParsedRules::Fees(FeePolicy {
            default,
            compounds,
            rounding,
            max_amount,
        });
        self.header(
            PolicyKind::PropertyFees,
            &raw.id,
            &raw.version,
            &raw.effective_from,
            &raw.title,
            rules,
        )
    }

    /// Exactly one of `per_m2` and `flat`. With both, the later key is the one pointed at.
    fn rate(
        &self,
        what: &str,
        at: Range<usize>,
        per_m2: Option<&Spanned<Text>>,
        flat: Option<&Spanned<Text>>,
    ) -> R<FeeRate> {
        match (per_m2, flat) {
            (Some(p), None) => {
                let d = self.decimal("per_m2", p)?;
                if d < Decimal::ZERO {
                    return Err(self.err(
                        p.span(),
                        format!("per_m2 must not be negative, got \"{}\"", p.get_ref().0),
                    ));
                }
                Ok(FeeRate::PerM2(d))
            }
            (None, Some(f)) => Ok(FeeRate::Flat(self.non_negative_amount("flat", f)?)),
            (Some(p), Some(f)) => Err(self.err(
                if p.span().start > f.span().start {
                    p.span()
                } else {
                    f.span()
                },
                format!("{what} has both per_m2 and flat; give exactly one"),
            )),
            (None, None) => Err(self.err(
                at,
                format!("{what} needs a rate: per_m2 = \"0.50\" or flat = \"45.00\""),
            )),
        }
    }
}

/// Reads one policy file. `file` is only used in error messages.
pub(super) fn parse_file(file: &str, text: &str) -> R<ParsedFile> {
    let src = Src { file, text };
    let probe: KindProbe = toml::from_str(text).map_err(|e| src.toml_err(&e))?;
    let Some(kind) = probe.kind else {
        return Err(src.err(
            0..0,
            format!("missing key `kind` (one of {})", PolicyKind::names_list()),
        ));
    };
    match PolicyKind::from_name(kind.get_ref()) {
        Some(PolicyKind::TopupBonus) => src.topup(),
        Some(PolicyKind::ProfitToFees) => src.profit(),
        Some(PolicyKind::PropertyFees) => src.fees(),
        None => Err(src.err(
            kind.span(),
            format!(
                "kind `{}` is not one of {}",
                kind.get_ref(),
                PolicyKind::names_list()
            ),
        )),
    }
}

/// Bytes → text, pointing at the line of the first byte that is not UTF-8.
pub(super) fn utf8<'a>(file: &str, bytes: &'a [u8]) -> R<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        PolicyError::Malformed {
            file: file.to_owned(),
            line,
            reason: "the file is not valid UTF-8".to_owned(),
        }
    })
}
