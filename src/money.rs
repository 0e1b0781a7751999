//! Money: [`Amount`] in integer fen (分, 1/100 yuan), strict parsing of the strings clients send,
//! rate arithmetic in `rust_decimal` rounded once, and [`allocate`], the one allocator that every
//! split of money in hongxin goes through.
//!
//! No float ever holds an amount. Arithmetic is checked: overflow is an error, never a wrap.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// An amount of CNY in fen. Signed, so that balances and postings can share the type; fields
/// that must not be negative say so where they are parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("is empty; amounts are strings like \"55.00\"")]
    Empty,
    #[error("is not an amount: write yuan with at most two decimals, like \"55.00\"")]
    Invalid,
    #[error("has more than two decimal places; the smallest unit is one fen (0.01)")]
    TooPrecise,
    #[error("is too large")]
    Overflow,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount overflow")]
    Overflow,
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    pub const fn from_fen(fen: i64) -> Amount {
        Amount(fen)
    }

    /// Whole yuan, for constants and tests.
    pub const fn from_yuan(yuan: i64) -> Amount {
        Amount(yuan * 100)
    }

    pub const fn fen(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Parses `"55"`, `"55.5"`, `"55.00"`, `"-3.20"`. Rejects exponents, `NaN`, spaces, a `+`,
    /// a bare `.`, more than two decimals and anything out of range.
    pub fn parse(s: &str) -> Result<Amount, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (digits, None),
        };
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Invalid);
        }
        let frac_fen = match frac {
            None => 0,
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(AmountError::Invalid)
            }
            Some(f) if f.len() > 2 => return Err(AmountError::TooPrecise),
            Some(f) => {
                let v: i64 = f.parse().map_err(|_| AmountError::Invalid)?;
                if f.len() == 1 {
                    v * 10
                } else {
                    v
                }
            }
        };
        // Built on the amount's own side of zero, so that i64::MIN ("-92233720368547758.08"),
        // whose magnitude has no positive i64, parses as Display writes it.
        let whole: i64 = whole.parse().map_err(|_| AmountError::Overflow)?;
        let fen = if negative {
            whole
                .checked_mul(-100)
                .and_then(|w| w.checked_sub(frac_fen))
        } else {
            whole.checked_mul(100).and_then(|w| w.checked_add(frac_fen))
        };
        fen.map(Amount).ok_or(AmountError::Overflow)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn checked_mul(self, n: i64) -> Option<Amount> {
        self.0.checked_mul(n).map(Amount)
    }

    pub fn checked_neg(self) -> Option<Amount> {
        self.0.checked_neg().map(Amount)
    }

    /// Sum of amounts, `None` on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Amount>>(items: I) -> Option<Amount> {
        items
            .into_iter()
            .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
    }

    /// The amount in yuan as an exact decimal.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an amount as a string, like \"55.00\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]{1,2})?$"))
            .description(Some(
                "An amount of CNY in yuan, as a string with at most two decimals: \"55.00\", \"55\" or \"55.5\". JSON numbers are refused.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Amount {}

/// A quantity or an area as clients write it: plain decimal notation only, `"1"`, `"1.5"`,
/// `"-0.25"`. Refuses what `Decimal::from_str` and `rust_decimal`'s serde would also take: an
/// exponent (`"1e1"`), digit separators (`"1_0"`), a `+`, spaces, a bare `.`.
pub fn parse_plain_decimal(s: &str) -> Option<Decimal> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if plain {
        Decimal::from_str(s).ok()
    } else {
        None
    }
}

/// `#[serde(with = "crate::money::plain_decimal")]`: a [`Decimal`] sent as a string in plain
/// notation ([`parse_plain_decimal`]), written back with `Display`.
pub mod plain_decimal {
    use super::*;

    /// The message a refused value gets (the field is named by the caller's path).
    pub const EXPECTED: &str =
        "is not a plain decimal number: write digits with an optional decimal point, like \"1.5\"";

    pub fn serialize<S: Serializer>(d: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(d)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number as a string, like \"1.5\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                parse_plain_decimal(v).ok_or_else(|| E::custom(EXPECTED))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// How a rate computation is rounded to fen, once, at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// 四舍五入: halves away from zero. The default.
    #[default]
    HalfUp,
    HalfEven,
    /// Toward zero.
    Down,
}

impl Rounding {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Rounding::HalfUp => RoundingStrategy::MidpointAwayFromZero,
            Rounding::HalfEven => RoundingStrategy::MidpointNearestEven,
            Rounding::Down => RoundingStrategy::ToZero,
        }
    }
}

/// Rounds an exact amount of yuan to fen.
pub fn round_to_fen(yuan: Decimal, rounding: Rounding) -> Result<Amount, MoneyError> {
    let rounded = yuan.round_dp_with_strategy(2, rounding.strategy());
    // After rounding the scale is at most 2, so the mantissa scaled up to 2 places is fen.
    let fen = rounded
        .mantissa()
        .checked_mul(10i128.pow(2u32.saturating_sub(rounded.scale())))
        .ok_or(MoneyError::Overflow)?;
    i64::try_from(fen)
        .map(Amount)
        .map_err(|_| MoneyError::Overflow)
}

/// `amount × rate`, computed exactly and rounded once.
pub fn mul_rate(amount: Amount, rate: Decimal, rounding: Rounding) -> Result<Amount, MoneyError> {
    let exact = amount
        .to_decimal()
        .checked_mul(rate)
        .ok_or(MoneyError::Overflow)?;
    round_to_fen(exact, rounding)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("cannot allocate a negative total")]
    NegativeTotal,
    #[error("a weight is negative")]
    NegativeWeight,
    #[error("nothing to allocate to: every weight is zero")]
    NoWeight,
}

/// Splits `total` over `shares` (recipient id, weight) by largest remainder (Hamilton) in fen.
///
/// Returns one part per share, in the order given. Each part is its exact share rounded down,
/// plus at most one fen; the parts sum to `total`; a zero weight gets zero. Ties in the
/// remainder go to the larger weight, then by SHA-256(`seed` ‖ id), then by id, so the result
/// depends only on the set of (id, weight) pairs and the seed, never on their order.
/// A total of zero over no weight is allowed and gives zeros.
pub fn allocate<K: AsRef<[u8]> + Ord>(
    total: Amount,
    shares: &[(K, i64)],
    seed: &[u8],
) -> Result<Vec<Amount>, AllocationError> {
    if total.is_negative() {
        return Err(AllocationError::NegativeTotal);
    }
    if shares.iter().any(|(_, w)| *w < 0) {
        return Err(AllocationError::NegativeWeight);
    }
    let weight_sum: i128 = shares.iter().map(|(_, w)| i128::from(*w)).sum();
    if weight_sum == 0 {
        return if total.is_zero() {
            Ok(vec![Amount::ZERO; shares.len()])
        } else {
            Err(AllocationError::NoWeight)
        };
    }
    let t = i128::from(total.fen());
    let mut parts = Vec::with_capacity(shares.len());
    let mut remainders = Vec::with_capacity(shares.len());
    let mut floors: i128 = 0;
    for (_, w) in shares {
        let exact = t * i128::from(*w);
        let floor = exact / weight_sum;
        floors += floor;
        // floor <= total, so it fits in i64.
        parts.push(floor as i64);
        remainders.push(exact % weight_sum);
    }
    let extra = (t - floors) as usize;
    debug_assert!(extra < shares.len().max(1));
    if extra > 0 {
        // The `extra` best by (remainder, weight) get one fen each. Only the group tied with
        // the last one in needs the hash tie-break, so a selection (linear) replaces a sort.
        let key_cmp = |a: &usize, b: &usize| {
            remainders[*b]
                .cmp(&remainders[*a])
                .then(shares[*b].1.cmp(&shares[*a].1))
        };
        let mut order: Vec<usize> = (0..shares.len()).collect();
        let (_, pivot, _) = order.select_nth_unstable_by(extra - 1, key_cmp);
        let pivot = *pivot;
        let mut winners = Vec::with_capacity(extra);
        let mut tied = Vec::new();
        for i in 0..shares.len() {
            match key_cmp(&i, &pivot) {
                Ordering::Less => winners.push(i),
                Ordering::Equal => tied.push(i),
                Ordering::Greater => {}
            }
        }
        let needed = extra - winners.len();
        if needed < tied.len() {
            let mut group: Vec<(usize, [u8; 32])> = tied
                .iter()
                .map(|&i| (i, tie_hash(seed, shares[i].0.as_ref())))
                .collect();
            group.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(shares[a.0].0.cmp(&shares[b.0].0)));
            tied = group.into_iter().take(needed).map(|(i, _)| i).collect();
        }
        for i in winners.into_iter().chain(tied) {
            parts[i] += 1;
        }
    }
    let parts: Vec<Amount> = parts.into_iter().map(Amount::from_fen).collect();
    debug_assert_eq!(
        parts.iter().map(|p| i128::from(p.fen())).sum::<i128>(),
        t,
        "allocation must sum to the total"
    );
    Ok(parts)
}

fn tie_hash(seed: &[u8], id: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(id);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn parses_what_the_spec_accepts() {
        assert_eq!(a("55.00").fen(), 5500);
        assert_eq!(a("55").fen(), 5500);
        assert_eq!(a("55.5").fen(), 5550);
        assert_eq!(a("0.01").fen(), 1);
        assert_eq!(a("-3.2").fen(), -320);
        assert_eq!(a("007.10").fen(), 710);
    }

    #[test]
    fn rejects_what_the_spec_refuses() {
        assert_eq!(Amount::parse("55.001"), Err(AmountError::TooPrecise));
        for bad in [
            "5e1", "NaN", "inf", "+5", " 5", "5 ", ".5", "5.", "1,000", "--1", "0x10",
        ] {
            assert_eq!(Amount::parse(bad), Err(AmountError::Invalid), "{bad}");
        }
        assert_eq!(Amount::parse(""), Err(AmountError::Empty));
        assert_eq!(
            Amount::parse("92233720368547758.08"),
            Err(AmountError::Overflow)
        );
        assert_eq!(
            Amount::parse("99999999999999999999999"),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn plain_decimals_only() {
        let d = |s: &str| parse_plain_decimal(s).map(|d| d.to_string());
        assert_eq!(d("1.5").as_deref(), Some("1.5"));
        assert_eq!(d("10").as_deref(), Some("10"));
        assert_eq!(d("0.125").as_deref(), Some("0.125"));
        assert_eq!(d("-2.50").as_deref(), Some("-2.50"));
        for bad in [
            "1e1", "1E1", "1.5e0", "1e-1", "1_0", "+1", " 1", "1 ", ".5", "5.", "", "-", "NaN",
            "inf", "0x10", "1,5", "--1",
        ] {
            assert_eq!(parse_plain_decimal(bad), None, "{bad}");
        }
        #[derive(Deserialize)]
        struct Q {
            #[serde(with = "plain_decimal")]
            qty: Decimal,
        }
        assert!(serde_json::from_str::<Q>(r#"{"qty":"1e1"}"#).is_err());
        assert!(serde_json::from_str::<Q>(r#"{"qty":10}"#).is_err());
        assert_eq!(
            serde_json::from_str::<Q>(r#"{"qty":"10"}"#).unwrap().qty,
            Decimal::from(10)
        );
    }

    #[test]
    fn json_numbers_are_refused() {
        assert!(serde_json::from_str::<Amount>("55").is_err());
        assert!(serde_json::from_str::<Amount>("55.0").is_err());
        assert_eq!(
            serde_json::from_str::<Amount>("\"55.5\"").unwrap().fen(),
            5550
        );
        assert_eq!(
            serde_json::to_string(&Amount::from_fen(5)).unwrap(),
            "\"0.05\""
        );
    }

    #[test]
    fn the_ends_of_i64_round_trip() {
        for fen in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1, 0, -1, 1] {
            let amount = Amount::from_fen(fen);
            assert_eq!(Amount::parse(&amount.to_string()), Ok(amount), "{fen}");
        }
        assert_eq!(
            Amount::parse("-92233720368547758.08"),
            Ok(Amount::from_fen(i64::MIN))
        );
        assert_eq!(
            Amount::parse("92233720368547758.07"),
            Ok(Amount::from_fen(i64::MAX))
        );
        // One fen past either end is refused, as is the negation of i64::MIN.
        for beyond in [
            "-92233720368547758.09",
            "92233720368547758.08",
            "-92233720368547759",
        ] {
            assert_eq!(
                Amount::parse(beyond),
                Err(AmountError::Overflow),
                "{beyond}"
            );
        }
    }

    #[test]
    fn formats_two_decimals() {
        assert_eq!(Amount::from_fen(5500).to_string(), "55.00");
        assert_eq!(Amount::from_fen(-5).to_string(), "-0.05");
        assert_eq!(
            Amount::from_fen(i64::MIN).to_string(),
            "-92233720368547758.08"
        );
    }

    #[test]
    fn rounding_is_once_and_half_up_by_default() {
        let fee = |area: &str, rate: &str, r| {
            let exact = Decimal::from_str(area).unwrap() * Decimal::from_str(rate).unwrap();
            round_to_fen(exact, r).unwrap().to_string()
        };
        assert_eq!(fee("87.35", "0.55", Rounding::HalfUp), "48.04");
        assert_eq!(fee("97.09", "0.50", Rounding::HalfUp), "48.55");
        assert_eq!(fee("97.09", "0.50", Rounding::HalfEven), "48.54");
        assert_eq!(fee("97.09", "0.50", Rounding::Down), "48.54");
        assert_eq!(
            mul_rate(a("-0.05"), Decimal::new(5, 1), Rounding::HalfUp).unwrap(),
            a("-0.03")
        );
    }

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(
            Amount::from_fen(i64::MAX).checked_add(Amount::from_fen(1)),
            None
        );
        assert_eq!(
            Amount::checked_sum([Amount::from_fen(i64::MAX), Amount::from_fen(1)]),
            None
        );
        assert_eq!(Amount::from_fen(i64::MIN).checked_neg(), None);
    }

    #[test]
    fn spec_worked_split_of_a_wallet_spend() {
        // wallet paid 100.00, bonus 10.00, spend 37.80 → paid 34.36, bonus 3.44
        let parts = allocate(a("37.80"), &[("paid", 10000), ("bonus", 1000)], b"").unwrap();
        assert_eq!(parts, vec![a("34.36"), a("3.44")]);
    }

    #[test]
    fn three_equal_spenders_tie_break_by_seeded_hash() {
        let shares = [("h1", 5), ("h2", 5), ("h3", 5)];
        let parts = allocate(a("1000.00"), &shares, b"2026-10").unwrap();
        let mut sorted = parts.clone();
        sorted.sort();
        assert_eq!(sorted, vec![a("333.33"), a("333.33"), a("333.34")]);
        let winner = shares
            .iter()
            .min_by_key(|(id, _)| tie_hash(b"2026-10", id.as_bytes()))
            .unwrap()
            .0;
        let got = shares[parts.iter().position(|p| *p == a("333.34")).unwrap()].0;
        assert_eq!(got, winner);
    }

    #[test]
    fn larger_weight_wins_an_equal_remainder() {
        // 1 fen over weights 1 and 3 of total 4: remainders 1 and 3 → weight 3 wins anyway;
        // weights 2 and 2 of 0.01 tie on both, then the hash decides.
        let parts = allocate(Amount::from_fen(1), &[("a", 1), ("b", 3)], b"").unwrap();
        assert_eq!(parts, vec![Amount::ZERO, Amount::from_fen(1)]);
        // 3 fen over weights 1, 2, 3 (W = 6): exact 0.5, 1, 1.5 → floors 0, 1, 1; the weight-1
        // and weight-3 shares tie on remainder and the larger weight takes the extra fen.
        let parts = allocate(Amount::from_fen(3), &[("a", 1), ("b", 2), ("c", 3)], b"s").unwrap();
        assert_eq!(
            parts,
            vec![Amount::ZERO, Amount::from_fen(1), Amount::from_fen(2)]
        );
    }

    #[test]
    fn refuses_what_cannot_be_split() {
        assert_eq!(
            allocate(Amount::from_fen(1), &[("a", 0)], b""),
            Err(AllocationError::NoWeight)
        );
        assert_eq!(
            allocate(Amount::from_fen(-1), &[("a", 1)], b""),
            Err(AllocationError::NegativeTotal)
        );
        assert_eq!(
            allocate(Amount::from_fen(1), &[("a", -1), ("b", 2)], b""),
            Err(AllocationError::NegativeWeight)
        );
        assert_eq!(
            allocate::<&str>(Amount::ZERO, &[], b"").unwrap(),
            Vec::<Amount>::new()
        );
    }

    proptest! {
        #[test]
        fn amount_round_trips_through_its_string(fen in any::<i64>()) {
            let amount = Amount::from_fen(fen);
            prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
        }

        /// The ends of the range, where `any::<i64>()` rarely looks.
        #[test]
        fn amount_round_trips_near_the_ends_of_i64(offset in 0i64..1_000_000) {
            for fen in [i64::MIN + offset, i64::MAX - offset, offset, -offset] {
                let amount = Amount::from_fen(fen);
                prop_assert_eq!(Amount::parse(&amount.to_string()), Ok(amount));
            }
        }

        /// Whatever `parse` accepts, `Display` writes back in canonical form and that parses
        /// to the same value; what is out of range is refused, never wrapped.
        #[test]
        fn parse_and_display_agree_past_the_ends(
            whole in -100_000_000_000_000_000i128..100_000_000_000_000_000,
            frac in 0u8..100,
        ) {
            let text = format!("{}.{:02}", whole, frac);
            let exact = whole * 100 + if whole < 0 { -i128::from(frac) } else { i128::from(frac) };
            match Amount::parse(&text) {
                Ok(a) => {
                    prop_assert_eq!(i128::from(a.fen()), exact);
                    prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
                }
                Err(e) => {
                    prop_assert_eq!(e, AmountError::Overflow);
                    prop_assert!(i64::try_from(exact).is_err(), "{} refused", text);
                }
            }
        }

        #[test]
        fn allocation_invariants(
            total in 0i64..10_000_000_000,
            weights in prop::collection::vec(0i64..1_000_000_000, 1..40),
            seed in prop::collection::vec(any::<u8>(), 0..8),
            rotate in 0usize..40,
        ) {
            let shares: Vec<(String, i64)> =
                weights.iter().enumerate().map(|(i, w)| (format!("r{i}"), *w)).collect();
            let weight_sum: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            let result = allocate(Amount::from_fen(total), &shares, &seed);
            if weight_sum == 0 {
                prop_assert_eq!(result.is_err(), total != 0);
                return Ok(());
            }
            let parts = result.unwrap();
            // parts sum exactly
            prop_assert_eq!(parts.iter().map(|p| i128::from(p.fen())).sum::<i128>(), i128::from(total));
            for (part, (_, w)) in parts.iter().zip(&shares) {
                let floor = (i128::from(total) * i128::from(*w)) / weight_sum;
                let fen = i128::from(part.fen());
                // each part is floor(exact) or floor(exact) + 1 fen
                prop_assert!(fen == floor || fen == floor + 1);
                // zero weight gets zero
                if *w == 0 { prop_assert_eq!(fen, 0); }
            }
            // input order does not matter
            let mut rotated = shares.clone();
            let k = rotate % rotated.len();
            rotated.rotate_left(k);
            rotated.reverse();
            let again = allocate(Amount::from_fen(total), &rotated, &seed).unwrap();
            for (id_w, part) in rotated.iter().zip(again) {
                let i = shares.iter().position(|s| s.0 == id_w.0).unwrap();
                prop_assert_eq!(parts[i], part);
            }
        }

        #[test]
        fn many_equal_weights_are_order_independent(n in 2usize..60, total in 0i64..1000, seed in any::<u64>()) {
            let shares: Vec<(String, i64)> = (0..n).map(|i| (format!("h{i}"), 7)).collect();
            let parts = allocate(Amount::from_fen(total), &shares, &seed.to_be_bytes()).unwrap();
            let mut reversed = shares.clone();
            reversed.reverse();
            let again = allocate(Amount::from_fen(total), &reversed, &seed.to_be_bytes()).unwrap();
            let again: Vec<Amount> = again.into_iter().rev().collect();
            prop_assert_eq!(parts, again);
        }
    }
}
