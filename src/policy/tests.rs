//! Tests for policy loading, validation with file:line, version choice, the applied-hash check
//! and the rule calculations.

use std::path::PathBuf;

use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::money::{Amount, Rounding};

const TOPUP: &str = r#"kind = "topup_bonus"
id = "spend-50-get-55"
version = 1
effective_from = "2024-01-01"
title = "居民购物50元换55元 / Pay 50, shop for 55"
unit = "50.00"
bonus_per_unit = "5.00"
max_units_per_topup = 20
monthly_bonus_cap = "100.00"
eligibility = "eligible_compounds"
methods = ["cash", "wechat", "alipay"]
wallet_cap = "5000.00"
voucher_face_cap = "1000.00"
voucher_validity_months = 36
custody_deposit_ratio = "0.40"
"#;

const PROFIT: &str = r#"kind = "profit_to_fees"
id = "coop-profit-to-fees"
version = 1
effective_from = "2024-01-01"
title = "合作社盈利用物业 / Profit to fees"
share = "0.60"
basis = "credit_spend"
cap_at_fees_owed = true
carry_losses_forward = true
default_cost_ratio = "0.70"
rounding = "half_up"
"#;

const FEES: &str = r#"kind = "property_fees"
id = "property-fees"
version = 1
effective_from = "2024-01-01"
title = "物业费 / Property fees"
rounding = "half_up"
default = { per_m2 = "0.50" }

[[compound]]
code = "HX01"
per_m2 = "0.55"

[[compound]]
code = "HX02"
per_m2 = "0.60"

[[compound]]
code = "HX07"
flat = "45.00"
"#;

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

fn amt(s: &str) -> Amount {
    Amount::parse(s).expect("test amount")
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("test decimal")
}

/// Replaces the line that starts with `key =` and returns the new text and that line's number.
fn with_line(text: &str, key: &str, new_line: &str) -> (String, usize) {
    let prefix = format!("{key} =");
    let mut found = None;
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if found.is_none() && l.starts_with(&prefix) {
                found = Some(i + 1);
                new_line.to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect();
    (
        lines.join("\n") + "\n",
        found.unwrap_or_else(|| panic!("no key {key}")),
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle}"))
        + 1
}

/// Loads one file named `policies/x.toml` and returns its Malformed (file, line, reason).
fn malformed(text: &str) -> (usize, String) {
    match PolicySet::from_sources(&[("policies/x.toml", text)]) {
        Err(PolicyError::Malformed { file, line, reason }) => {
            assert_eq!(file, "policies/x.toml");
            (line, reason)
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn assert_malformed_at(base: &str, key: &str, new_line: &str, reason_has: &str) {
    let (text, line) = with_line(base, key, new_line);
    let (got_line, reason) = malformed(&text);
    assert_eq!(got_line, line, "line for `{new_line}` (reason: {reason})");
    assert!(
        reason.contains(reason_has),
        "reason for `{new_line}` was {reason:?}, wanted it to contain {reason_has:?}"
    );
}

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

#[test]
fn shipped_policies_load_with_the_agreed_numbers() {
    let set = PolicySet::load_dir(&shipped_dir()).expect("shipped policies load");
    let day = date("2024-01-01");

    let topup = set.topup(day).expect("topup in effect");
    assert_eq!(topup.reference.to_string(), "spend-50-get-55@1");
    assert!(topup.title.contains("50") && !topup.title.is_ascii());
    let t = &topup.rules;
    assert_eq!(t.unit, amt("50.00"));
    assert_eq!(t.bonus_per_unit, amt("5.00"));
    assert_eq!(t.max_units_per_topup, 20);
    assert_eq!(t.monthly_bonus_cap, amt("100.00"));
    assert_eq!(t.eligibility, Eligibility::EligibleCompounds);
    assert_eq!(
        t.methods,
        vec![TopupMethod::Cash, TopupMethod::Wechat, TopupMethod::Alipay]
    );
    assert_eq!(t.wallet_cap, amt("5000.00"));
    assert_eq!(t.voucher_face_cap, amt("1000.00"));
    assert_eq!(t.voucher_validity_months, 36);
    assert_eq!(t.custody_deposit_ratio, dec("0.40"));
    // Not in the file: wallet spending always needs the resident's card or PIN.
    assert_eq!(t.resident_factor_over, amt("0.00"));

    let profit = set.profit(day).expect("profit in effect");
    assert_eq!(profit.reference.to_string(), "coop-profit-to-fees@1");
    let p = &profit.rules;
    assert_eq!(p.share, dec("0.60"));
    assert_eq!(p.basis, AllocationBasis::CreditSpend);
    assert!(p.cap_at_fees_owed && p.carry_losses_forward);
    assert_eq!(p.default_cost_ratio, dec("0.70"));
    assert_eq!(p.rounding, Rounding::HalfUp);

    let fees = set.fees(day).expect("fees in effect");
    assert_eq!(fees.reference.to_string(), "property-fees@1");
    let f = &fees.rules;
    assert_eq!(f.default, FeeRate::PerM2(dec("0.50")));
    assert_eq!(f.rate_for("HX01"), &FeeRate::PerM2(dec("0.55")));
    assert_eq!(f.rate_for("HX02"), &FeeRate::PerM2(dec("0.60")));
    assert_eq!(f.rate_for("HX07"), &FeeRate::Flat(amt("45.00")));
    assert_eq!(f.rate_for("HX12"), &FeeRate::PerM2(dec("0.50")));

    // Every version starts 2024-01-01: nothing applies the day before.
    let before = date("2023-12-31");
    assert!(set.topup(before).is_none() && set.profit(before).is_none());
    assert!(set.fees(before).is_none());

    // The recorded hash is SHA-256 of the file's bytes, and the files are where they say.
    assert_eq!(set.references().len(), 3);
    for r in set.references() {
        let file = set.file_of(&r.id, r.version).expect("file known");
        assert!(file.ends_with(&format!("{}.v{}.toml", r.id, r.version)));
        let bytes = std::fs::read(file).expect("read shipped file");
        assert_eq!(r.hash, content_hash(&bytes));
        assert_eq!(r.hash.len(), 64);
    }
    set.check_applied(&set.references().into_iter().cloned().collect::<Vec<_>>())
        .expect("unchanged files pass");
}

#[test]
fn base_texts_are_valid() {
    let set = PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", PROFIT), ("c.toml", FEES)])
        .expect("base texts load");
    assert_eq!(set.references().len(), 3);
}

#[test]
fn breakage_after_months_is_never_unless_named() {
    let rules = |text: &str| {
        let set =
            PolicySet::from_sources(&[("a.toml", text), ("b.toml", PROFIT), ("c.toml", FEES)])
                .expect("loads");
        set.topup(date("2024-06-01"))
            .expect("topup in effect")
            .rules
            .breakage_after_months
    };
    assert_eq!(rules(TOPUP), None, "absent: never");
    let named = format!("{TOPUP}\nbreakage_after_months = 24\n");
    assert_eq!(rules(&named), Some(24));
    let shipped = PolicySet::load_dir(&shipped_dir()).expect("shipped policies load");
    assert_eq!(
        shipped
            .topup(date("2026-11-16"))
            .expect("topup")
            .rules
            .breakage_after_months,
        None,
        "the shipped policy recognises no breakage"
    );
}

#[test]
fn topup_semantic_errors_point_at_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("unit", r#"unit = "0.00""#, "unit must be greater than 0"),
        ("unit", r#"unit = "-50.00""#, "unit must be greater than 0"),
        ("unit", r#"unit = "50.001""#, "more than two decimal places"),
        ("unit", r#"unit = "fifty""#, "unit \"fifty\""),
        ("unit", "unit = 50", "quoted decimal"),
        ("unit", "unit = 50.0", "quoted decimal"),
        (
            "bonus_per_unit",
            r#"bonus_per_unit = "-1.00""#,
            "bonus_per_unit must not be negative",
        ),
        (
            "max_units_per_topup",
            "max_units_per_topup = 0",
            "max_units_per_topup must be at least 1",
        ),
        (
            "monthly_bonus_cap",
            r#"monthly_bonus_cap = "0""#,
            "monthly_bonus_cap must be greater than 0",
        ),
        (
            "wallet_cap",
            r#"wallet_cap = "0.00""#,
            "wallet_cap must be greater than 0",
        ),
        (
            "voucher_face_cap",
            r#"voucher_face_cap = "-5""#,
            "voucher_face_cap must be greater than 0",
        ),
        (
            "voucher_validity_months",
            "voucher_validity_months = 24",
            "voucher_validity_months must be at least 36",
        ),
        (
            "custody_deposit_ratio",
            r#"custody_deposit_ratio = "1.01""#,
            "custody_deposit_ratio must be between 0 and 1",
        ),
        (
            "custody_deposit_ratio",
            r#"custody_deposit_ratio = "-0.1""#,
            "custody_deposit_ratio must be between 0 and 1",
        ),
        (
            "custody_deposit_ratio",
            r#"custody_deposit_ratio = "4e-1""#,
            "not a decimal number",
        ),
        (
            "methods",
            r#"methods = ["cash", "bitcoin"]"#,
            "`bitcoin` is not one of `cash`, `wechat`, `alipay`",
        ),
        ("methods", "methods = []", "at least one payment method"),
        (
            "methods",
            r#"methods = ["cash", "cash"]"#,
            "method `cash` is listed twice",
        ),
        (
            "eligibility",
            r#"eligibility = "everyone""#,
            "`everyone` is not one of",
        ),
        (
            "eligibility",
            r#"eligibility = "compounds""#,
            "needs a list",
        ),
        ("version", "version = 0", "version must be at least 1"),
        ("version", "version = -3", "version must be at least 1"),
        ("version", r#"version = "1""#, "expected a whole number"),
        ("version", "version = 1.5", "expected a whole number"),
        (
            "effective_from",
            r#"effective_from = "2024-13-01""#,
            "effective_from must be a date",
        ),
        (
            "effective_from",
            r#"effective_from = "2024-1-1""#,
            "effective_from must be a date",
        ),
        (
            "effective_from",
            "effective_from = 2024-01-01T08:00:00",
            "effective_from must be a date",
        ),
        ("id", r#"id = "spend@50""#, "id \"spend@50\" must"),
        ("title", r#"title = "  ""#, "title must not be empty"),
        (
            "kind",
            r#"kind = "discount""#,
            "kind `discount` is not one of",
        ),
    ];
    for (key, line, reason) in cases {
        assert_malformed_at(TOPUP, key, line, reason);
    }
}

#[test]
fn compounds_list_errors_point_at_the_offending_code() {
    let text = TOPUP.replace(
        r#"eligibility = "eligible_compounds""#,
        "eligibility = \"compounds\"\ncompounds = [\n  \"HX01\",\n  \"HX02\",\n  \"HX01\",\n]",
    );
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "compounds = [") + 3);
    assert!(reason.contains("\"HX01\" is listed twice"), "{reason}");

    // A list without eligibility = "compounds": the list's own line.
    let (text, line) = with_line(
        TOPUP,
        "eligibility",
        "eligibility = \"eligible_compounds\"\ncompounds = [\"HX01\"]",
    );
    let (got, reason) = malformed(&text);
    assert_eq!(got, line + 1);
    assert!(reason.contains("compounds is only read with"), "{reason}");

    let ok = TOPUP.replace(
        r#"eligibility = "eligible_compounds""#,
        "eligibility = \"compounds\"\ncompounds = [\"HX01\", \"HX03\"]",
    );
    let set = PolicySet::from_sources(&[("a.toml", &ok)]).expect("narrowed list loads");
    let rules = &set.topup(date("2024-02-01")).expect("in effect").rules;
    assert_eq!(
        rules.eligibility,
        Eligibility::Compounds(vec!["HX01".into(), "HX03".into()])
    );
}

#[test]
fn profit_semantic_errors_point_at_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("share", r#"share = "1.5""#, "share must be between 0 and 1"),
        (
            "share",
            r#"share = "-0.01""#,
            "share must be between 0 and 1",
        ),
        ("share", "share = 0.6", "quoted decimal"),
        (
            "default_cost_ratio",
            r#"default_cost_ratio = "1.0001""#,
            "default_cost_ratio must be between 0 and 1",
        ),
        (
            "basis",
            r#"basis = "by_area""#,
            "basis `by_area` is not one of",
        ),
        (
            "rounding",
            r#"rounding = "up""#,
            "rounding `up` is not one of",
        ),
        (
            "cap_at_fees_owed",
            r#"cap_at_fees_owed = "yes""#,
            "invalid type",
        ),
    ];
    for (key, line, reason) in cases {
        assert_malformed_at(PROFIT, key, line, reason);
    }
    // The exact operator-facing form.
    let (text, line) = with_line(PROFIT, "share", r#"share = "1.2""#);
    let err = PolicySet::from_sources(&[("policies/x.toml", &text)]).expect_err("share > 1");
    assert_eq!(
        err.to_string(),
        format!("policies/x.toml:{line}: share must be between 0 and 1, got \"1.2\"")
    );
}

#[test]
fn profit_defaults_apply_when_keys_are_left_out() {
    let text: String = PROFIT
        .lines()
        .filter(|l| !l.starts_with("basis") && !l.starts_with("rounding"))
        .map(|l| format!("{l}\n"))
        .collect();
    let set = PolicySet::from_sources(&[("p.toml", &text)]).expect("loads");
    let rules = &set.profit(date("2024-01-01")).expect("in effect").rules;
    assert_eq!(rules.basis, AllocationBasis::CreditSpend);
    assert_eq!(rules.rounding, Rounding::HalfUp);
}

#[test]
fn resident_factor_over_is_read_and_checked() {
    let set = PolicySet::from_sources(&[("t.toml", TOPUP)]).expect("loads");
    let rules = &set.topup(date("2024-01-01")).expect("in effect").rules;
    assert_eq!(rules.resident_factor_over, amt("0.00"));
    let text = format!("{TOPUP}resident_factor_over = \"20.00\"\n");
    let set = PolicySet::from_sources(&[("t.toml", &text)]).expect("loads");
    let rules = &set.topup(date("2024-01-01")).expect("in effect").rules;
    assert_eq!(rules.resident_factor_over, amt("20.00"));
    let bad = format!("{TOPUP}resident_factor_over = \"-1.00\"\n");
    let (line, reason) = malformed(&bad);
    assert_eq!(line, TOPUP.lines().count() + 1);
    assert!(
        reason.contains("resident_factor_over must not be negative"),
        "{reason}"
    );
}

#[test]
fn fee_semantic_errors_point_at_the_key() {
    // A negative per-m² rate, on the compound's own line.
    let text = FEES.replace(r#"per_m2 = "0.60""#, r#"per_m2 = "-0.60""#);
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "-0.60"));
    assert!(reason.contains("per_m2 must not be negative"), "{reason}");

    let text = FEES.replace(r#"flat = "45.00""#, r#"flat = "-45.00""#);
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "-45.00"));
    assert!(reason.contains("flat must not be negative"), "{reason}");

    // Both rates: the later of the two keys.
    let text = FEES.replace(r#"flat = "45.00""#, "flat = \"45.00\"\nper_m2 = \"0.40\"");
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "0.40"));
    assert!(
        reason.contains("compound \"HX07\" has both per_m2 and flat"),
        "{reason}"
    );

    // Neither rate: the compound's code line.
    let text = FEES.replace(
        "[[compound]]\ncode = \"HX07\"\nflat = \"45.00\"\n",
        "[[compound]]\ncode = \"HX07\"\n",
    );
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "\"HX07\""));
    assert!(
        reason.contains("compound \"HX07\" needs a rate"),
        "{reason}"
    );

    // The same code twice: the second one.
    let text = FEES.replace("code = \"HX02\"", "code = \"HX01\"");
    let (line, reason) = malformed(&text);
    assert_eq!(line, line_of(&text, "per_m2 = \"0.60\"") - 1);
    assert!(
        reason.contains("compound \"HX01\" has two schedules"),
        "{reason}"
    );

    // The default rate.
    assert_malformed_at(
        FEES,
        "default",
        r#"default = { per_m2 = "0.50", flat = "30.00" }"#,
        "default has both per_m2 and flat",
    );
    assert_malformed_at(FEES, "default", "default = {}", "default needs a rate");
    assert_malformed_at(
        FEES,
        "default",
        r#"default = { per_m2 = "0.5.0" }"#,
        "per_m2 \"0.5.0\" is not a decimal number",
    );
    assert_malformed_at(FEES, "rounding", r#"rounding = "ceil""#, "rounding `ceil`");
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let (text, line) = with_line(TOPUP, "unit", "unit = \"50.00\"\nbonus = \"5.00\"");
    let (got, reason) = malformed(&text);
    assert_eq!(got, line + 1);
    assert!(reason.contains("unknown key `bonus`"), "{reason}");

    let text = FEES.replace("code = \"HX02\"", "code = \"HX02\"\nper_sqm = \"0.6\"");
    let (got, reason) = malformed(&text);
    assert_eq!(got, line_of(&text, "per_sqm"));
    assert!(reason.contains("unknown key `per_sqm`"), "{reason}");

    let text = FEES.replace(
        r#"default = { per_m2 = "0.50" }"#,
        r#"default = { per_m2 = "0.50", per_household = "1.00" }"#,
    );
    let (got, reason) = malformed(&text);
    assert_eq!(got, line_of(&text, "per_household"));
    assert!(reason.contains("unknown key `per_household`"), "{reason}");
}

#[test]
fn syntax_errors_report_file_and_line() {
    let (text, line) = with_line(PROFIT, "share", r#"share = "0.60"#);
    let (got, _) = malformed(&text);
    assert_eq!(got, line);

    let (text, line) = with_line(PROFIT, "version", "version = 1 2");
    let (got, _) = malformed(&text);
    assert_eq!(got, line);

    let (text, line) = with_line(
        FEES,
        "rounding",
        "rounding = \"half_up\"\nrounding = \"down\"",
    );
    let (got, reason) = malformed(&text);
    assert_eq!(got, line + 1);
    assert!(reason.contains("duplicate key"), "{reason}");

    let (text, line) = with_line(TOPUP, "methods", "methods = [\"cash\",");
    let (got, _) = malformed(&text);
    assert!(got >= line, "{got} < {line}");

    // Display is `file:line: reason`.
    let (text, line) = with_line(PROFIT, "share", r#"share = "0.60"#);
    let err = PolicySet::from_sources(&[("policies/x.toml", &text)]).expect_err("syntax");
    assert!(
        err.to_string()
            .starts_with(&format!("policies/x.toml:{line}: ")),
        "{err}"
    );
}

#[test]
fn missing_keys_are_named() {
    let (line, reason) = malformed("id = \"x\"\n");
    assert_eq!(line, 1);
    assert!(reason.contains("missing key `kind`"), "{reason}");

    let text: String = TOPUP
        .lines()
        .filter(|l| !l.starts_with("unit ="))
        .map(|l| format!("{l}\n"))
        .collect();
    let (_, reason) = malformed(&text);
    assert!(reason.contains("missing key `unit`"), "{reason}");

    let text = FEES.replace("code = \"HX02\"\n", "");
    let (line, reason) = malformed(&text);
    assert!(reason.contains("missing key `code`"), "{reason}");
    assert_eq!(line, line_of(&text, "per_m2 = \"0.60\"") - 1);
}

#[test]
fn non_utf8_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = TOPUP.as_bytes().to_vec();
    bytes.extend_from_slice(b"# \xff\xfe\n");
    std::fs::write(dir.path().join("a.toml"), &bytes).expect("write");
    match PolicySet::load_dir(dir.path()) {
        Err(PolicyError::Malformed { file, line, reason }) => {
            assert!(file.ends_with("a.toml"));
            assert_eq!(line, TOPUP.lines().count() + 1);
            assert!(reason.contains("UTF-8"));
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn load_dir_reads_only_toml_files_and_reports_a_missing_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.toml"), TOPUP).expect("write");
    std::fs::write(dir.path().join("README.md"), "not a policy").expect("write");
    std::fs::write(dir.path().join(".#a.toml"), "lock file = [").expect("write");
    std::fs::create_dir(dir.path().join("old.toml")).expect("mkdir");
    let set = PolicySet::load_dir(dir.path()).expect("loads");
    assert_eq!(set.references().len(), 1);
    assert!(!set.is_empty());

    let gone = dir.path().join("nope");
    let err = PolicySet::load_dir(&gone).expect_err("missing dir");
    assert!(matches!(err, PolicyError::Io { .. }));
    assert!(err.to_string().contains("nope"), "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    let set = PolicySet::load_dir(empty.path()).expect("empty dir is an empty set");
    assert!(set.is_empty() && set.topup(date("2024-01-01")).is_none());
}

fn topup_v2(bonus: &str, from: &str) -> String {
    TOPUP
        .replace("version = 1", "version = 2")
        .replace(
            r#"bonus_per_unit = "5.00""#,
            &format!("bonus_per_unit = \"{bonus}\""),
        )
        .replace(r#""2024-01-01""#, &format!("\"{from}\""))
}

#[test]
fn the_version_in_effect_is_the_latest_started_on_or_before_the_date() {
    let v2 = topup_v2("6.00", "2024-07-01");
    // Given out of order on purpose.
    let set = PolicySet::from_sources(&[("spend.v2.toml", &v2), ("spend.v1.toml", TOPUP)])
        .expect("two versions load");
    let pick = |d: &str| set.topup(date(d)).map(|v| v.reference.version);
    assert_eq!(pick("2023-12-31"), None);
    assert_eq!(pick("2024-01-01"), Some(1));
    assert_eq!(pick("2024-06-30"), Some(1));
    assert_eq!(pick("2024-07-01"), Some(2));
    assert_eq!(pick("2031-01-01"), Some(2));
    let v = set.topup(date("2024-07-01")).expect("v2");
    assert_eq!(v.rules.bonus_per_unit, amt("6.00"));
    assert_eq!(v.reference.hash, content_hash(v2.as_bytes()));
    assert_eq!(set.topup_versions().len(), 2);
    assert_eq!(set.file_of("spend-50-get-55", 2), Some("spend.v2.toml"));

    // A TOML date works as well as the string form.
    let bare = TOPUP.replace(
        r#"effective_from = "2024-01-01""#,
        "effective_from = 2024-01-01",
    );
    let set = PolicySet::from_sources(&[("a.toml", &bare)]).expect("bare date");
    assert_eq!(
        set.topup(date("2024-01-01")).map(|v| v.effective_from),
        Some(date("2024-01-01"))
    );
}

#[test]
fn versions_must_start_later_than_the_one_before() {
    for from in ["2024-01-01", "2023-06-01"] {
        let v2 = topup_v2("6.00", from);
        let err = PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", &v2)])
            .expect_err("v2 not later");
        match &err {
            PolicyError::Conflict { file, line, reason } => {
                assert_eq!(file, "b.toml");
                assert_eq!(*line, line_of(&v2, "effective_from"));
                assert!(reason.contains("spend-50-get-55@2"), "{reason}");
            }
            other => panic!("expected Conflict, got {other:?}"),
        }
    }
}

#[test]
fn duplicates_and_conflicts_are_refused() {
    // Same id@version in two files.
    let copy = TOPUP.replace("title = ", "# a copy\ntitle = ");
    match PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", &copy)]) {
        Err(PolicyError::Duplicate {
            file,
            line,
            policy,
            first_file,
        }) => {
            assert_eq!((file.as_str(), first_file.as_str()), ("b.toml", "a.toml"));
            assert_eq!(line, line_of(&copy, "version"));
            assert_eq!(policy, "spend-50-get-55@1");
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }

    // Two ids of one kind.
    let other_id = TOPUP.replace(r#"id = "spend-50-get-55""#, r#"id = "spend-100-get-112""#);
    match PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", &other_id)]) {
        Err(PolicyError::Conflict { file, line, reason }) => {
            assert_eq!(file, "b.toml");
            assert_eq!(line, line_of(&other_id, "id ="));
            assert!(
                reason.contains("second policy of kind `topup_bonus`"),
                "{reason}"
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }

    // One id on two kinds.
    let same_id = PROFIT.replace(r#"id = "coop-profit-to-fees""#, r#"id = "spend-50-get-55""#);
    match PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", &same_id)]) {
        Err(PolicyError::Conflict { reason, .. }) => {
            assert!(reason.contains("an id names one policy"), "{reason}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[test]
fn check_applied_accepts_the_same_hash_and_refuses_edits_and_removals() {
    let set = PolicySet::from_sources(&[("policies/a.toml", TOPUP), ("policies/b.toml", PROFIT)])
        .expect("loads");
    let recorded: Vec<PolicyRef> = set.references().into_iter().cloned().collect();
    set.check_applied(&recorded).expect("same files");
    set.check_applied(&[]).expect("nothing applied yet");
    // Repeats (many entries, one version) and upper-case hex are fine.
    let mut upper = recorded[0].clone();
    upper.hash = upper.hash.to_uppercase();
    set.check_applied(&[recorded[0].clone(), recorded[0].clone(), upper])
        .expect("repeats");

    // The same version, with a changed number.
    let edited = TOPUP.replace(r#"bonus_per_unit = "5.00""#, r#"bonus_per_unit = "6.00""#);
    let after =
        PolicySet::from_sources(&[("policies/a.toml", &edited), ("policies/b.toml", PROFIT)])
            .expect("edited file is valid on its own");
    let err = after.check_applied(&recorded).expect_err("edited");
    match &err {
        PolicyError::EditedAfterApplied {
            file,
            policy,
            recorded: was,
            current,
        } => {
            assert_eq!(file, "policies/a.toml");
            assert_eq!(policy, "spend-50-get-55@1");
            assert_eq!(*was, content_hash(TOPUP.as_bytes()));
            assert_eq!(*current, content_hash(edited.as_bytes()));
        }
        other => panic!("expected EditedAfterApplied, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("policy spend-50-get-55@1 was edited after it was applied (hash recorded ")
            && msg.contains(&content_hash(TOPUP.as_bytes())[..12])
            && msg.contains(&format!(
                "file now {}…",
                &content_hash(edited.as_bytes())[..12]
            ))
            && msg.ends_with("add a new version instead"),
        "{msg}"
    );

    // Even a comment is an edit: the hash is of the bytes.
    let commented = format!("# tidied\n{TOPUP}");
    let after = PolicySet::from_sources(&[("policies/a.toml", &commented)]).expect("loads");
    assert!(matches!(
        after.check_applied(&recorded[..1]),
        Err(PolicyError::EditedAfterApplied { .. })
    ));

    // The file is gone.
    let after = PolicySet::from_sources(&[("policies/a.toml", TOPUP)]).expect("loads");
    let err = after
        .check_applied(&recorded)
        .expect_err("profit file gone");
    assert!(
        matches!(&err, PolicyError::MissingApplied { policy, .. } if policy == "coop-profit-to-fees@1")
    );
    assert!(err.to_string().contains("coop-profit-to-fees@1"), "{err}");
}

#[test]
fn editing_an_applied_file_on_disk_is_caught_at_the_next_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("spend-50-get-55.v1.toml");
    std::fs::write(&path, TOPUP).expect("write");
    let first = PolicySet::load_dir(dir.path()).expect("first start");
    let journal: Vec<PolicyRef> = first.references().into_iter().cloned().collect();
    // The journal stores refs as JSON; what comes back must compare equal.
    let stored = serde_json::to_string(&journal).expect("to json");
    let journal: Vec<PolicyRef> = serde_json::from_str(&stored).expect("from json");

    std::fs::write(
        &path,
        TOPUP.replace("max_units_per_topup = 20", "max_units_per_topup = 30"),
    )
    .expect("edit");
    let second = PolicySet::load_dir(dir.path()).expect("edited file still parses");
    let err = second.check_applied(&journal).expect_err("edit refused");
    assert!(err.to_string().contains("spend-50-get-55.v1.toml"), "{err}");

    // The fix: restore v1 and add v2.
    std::fs::write(&path, TOPUP).expect("restore");
    let v2 = topup_v2("5.00", "2024-09-01")
        .replace("max_units_per_topup = 20", "max_units_per_topup = 30");
    std::fs::write(dir.path().join("spend-50-get-55.v2.toml"), v2).expect("v2");
    let third = PolicySet::load_dir(dir.path()).expect("third start");
    third.check_applied(&journal).expect("v1 untouched");
    assert_eq!(
        third
            .topup(date("2024-09-01"))
            .map(|v| v.rules.max_units_per_topup),
        Some(30)
    );
}

#[test]
fn policy_ref_displays_and_serializes() {
    let r = PolicyRef {
        id: "spend-50-get-55".into(),
        version: 3,
        hash: "ab".repeat(32),
    };
    assert_eq!(r.to_string(), "spend-50-get-55@3");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["id"], "spend-50-get-55");
    assert_eq!(json["version"], 3);
    let back: PolicyRef = serde_json::from_value(json).expect("back");
    assert_eq!(back, r);
}

fn topup_rules() -> TopupPolicy {
    let set = PolicySet::from_sources(&[("a.toml", TOPUP)]).expect("loads");
    set.topup(date("2024-01-01"))
        .expect("in effect")
        .rules
        .clone()
}

#[test]
fn bonus_for_whole_units() {
    let t = topup_rules();
    assert_eq!(
        t.bonus_for(amt("100.00")),
        Ok(Bonus {
            units: 2,
            bonus: amt("10.00")
        })
    );
    assert_eq!(
        t.bonus_for(amt("50")),
        Ok(Bonus {
            units: 1,
            bonus: amt("5.00")
        })
    );
    assert_eq!(
        t.bonus_for(amt("1000.00")),
        Ok(Bonus {
            units: 20,
            bonus: amt("100.00")
        })
    );
    assert_eq!(
        t.bonus_for(amt("75.00")),
        Err(TopupRuleError::NotWholeUnits { unit: amt("50.00") })
    );
    assert_eq!(t.bonus_for(Amount::ZERO), Err(TopupRuleError::NotPositive));
    assert_eq!(t.bonus_for(amt("-50.00")), Err(TopupRuleError::NotPositive));
    assert_eq!(
        t.bonus_for(amt("1050.00")),
        Err(TopupRuleError::TooManyUnits { max: 20 })
    );
    assert_eq!(
        t.bonus_for(Amount::from_fen(i64::MAX - i64::MAX % 5000)),
        Err(TopupRuleError::TooManyUnits { max: 20 })
    );
    assert_eq!(
        TopupRuleError::NotWholeUnits { unit: amt("50") }.to_string(),
        "a top-up must be a whole number of 50.00 yuan units"
    );
}

#[test]
fn bonus_room_and_methods() {
    let t = topup_rules();
    assert_eq!(t.bonus_room(Amount::ZERO), amt("100.00"));
    assert_eq!(t.bonus_room(amt("95.00")), amt("5.00"));
    assert_eq!(t.bonus_room(amt("100.00")), Amount::ZERO);
    assert_eq!(t.bonus_room(amt("120.00")), Amount::ZERO);
    assert!(t.accepts(TopupMethod::Wechat));
    assert_eq!("alipay".parse::<TopupMethod>(), Ok(TopupMethod::Alipay));
    assert!("card".parse::<TopupMethod>().is_err());
    assert_eq!(TopupMethod::Cash.as_str(), "cash");
    assert_eq!(
        serde_json::to_string(&TopupMethod::Wechat).expect("json"),
        "\"wechat\""
    );
}

#[test]
fn eligibility_list_narrows_but_never_overrides_master_data() {
    let all = Eligibility::EligibleCompounds;
    assert!(all.admits("HX05", true));
    assert!(!all.admits("HX05", false));
    let some = Eligibility::Compounds(vec!["HX01".into(), "HX02".into()]);
    assert!(some.admits("HX01", true));
    assert!(!some.admits("HX01", false));
    assert!(!some.admits("HX03", true));
}

fn fee_rules(rounding: &str) -> FeePolicy {
    let text = FEES.replace(
        r#"rounding = "half_up""#,
        &format!("rounding = \"{rounding}\""),
    );
    let set = PolicySet::from_sources(&[("f.toml", &text)]).expect("loads");
    set.fees(date("2024-01-01"))
        .expect("in effect")
        .rules
        .clone()
}

#[test]
fn monthly_fee_rounds_once() {
    let up = fee_rules("half_up");
    // 87.35 × 0.55 = 48.0425 → 48.04
    assert_eq!(up.monthly_fee("HX01", dec("87.35")), Ok(amt("48.04")));
    // 97.09 × 0.50 = 48.545 → 48.55 half-up (default rate)
    assert_eq!(up.monthly_fee("HX09", dec("97.09")), Ok(amt("48.55")));
    let even = fee_rules("half_even");
    assert_eq!(even.monthly_fee("HX09", dec("97.09")), Ok(amt("48.54")));
    assert_eq!(even.monthly_fee("HX01", dec("87.35")), Ok(amt("48.04")));
    let down = fee_rules("down");
    assert_eq!(down.monthly_fee("HX09", dec("97.09")), Ok(amt("48.54")));
    // HX02 at 0.60: 100 m² → 60.00.
    assert_eq!(up.monthly_fee("HX02", dec("100")), Ok(amt("60.00")));
}

#[test]
fn flat_fee_ignores_area() {
    let f = fee_rules("half_up");
    assert_eq!(f.monthly_fee("HX07", dec("87.35")), Ok(amt("45.00")));
    assert_eq!(f.monthly_fee("HX07", dec("210.5")), Ok(amt("45.00")));
    assert_eq!(f.monthly_fee("HX07", Decimal::ZERO), Ok(amt("45.00")));
}

#[test]
fn monthly_fee_overflow_is_an_error_not_a_panic() {
    let f = fee_rules("half_up");
    assert!(f.monthly_fee("HX01", Decimal::MAX).is_err());
}

proptest! {
    #[test]
    fn bonus_is_units_times_bonus_per_unit(units in 1u32..=20) {
        let t = topup_rules();
        let paid = t.unit.checked_mul(i64::from(units)).expect("small");
        let b = t.bonus_for(paid).expect("whole units");
        prop_assert_eq!(b.units, units);
        prop_assert_eq!(b.bonus.fen(), 500 * i64::from(units));
    }

    #[test]
    fn a_part_unit_is_refused(fen in 1i64..=100_000) {
        prop_assume!(fen % 5000 != 0);
        let t = topup_rules();
        prop_assert_eq!(
            t.bonus_for(Amount::from_fen(fen)),
            Err(TopupRuleError::NotWholeUnits { unit: t.unit })
        );
    }

    #[test]
    fn reported_line_moves_with_the_text(blank in 0usize..30) {
        let (text, line) = with_line(PROFIT, "share", r#"share = "2""#);
        let shifted = format!("{}{text}", "# note\n".repeat(blank));
        let (got, _) = malformed(&shifted);
        prop_assert_eq!(got, line + blank);
    }

    #[test]
    fn fee_equals_exact_product_rounded_once(hundredths in 0i64..10_000_000) {
        let f = fee_rules("half_up");
        let area = Decimal::new(hundredths, 2);
        let exact = area * dec("0.55");
        let fen = (exact * Decimal::ONE_HUNDRED)
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        prop_assert_eq!(
            f.monthly_fee("HX01", area).expect("fits").to_decimal() * Decimal::ONE_HUNDRED,
            fen
        );
    }
}

#[test]
fn the_amount_ceiling_is_the_lowest_max_amount_in_force() {
    // None of the files sets one: the default.
    let set = PolicySet::from_sources(&[("a.toml", TOPUP), ("b.toml", PROFIT), ("c.toml", FEES)])
        .expect("base texts");
    assert_eq!(set.max_amount(date("2026-11-16")), DEFAULT_MAX_AMOUNT);
    assert_eq!(DEFAULT_MAX_AMOUNT, amt("1000000.00"));
    // No policy in force yet: still the default.
    assert_eq!(set.max_amount(date("2020-01-01")), DEFAULT_MAX_AMOUNT);

    // A later version lowers it from its date; another kind may lower it further.
    let v2 = topup_v2("5.00", "2026-01-01").replace(
        "custody_deposit_ratio = \"0.40\"",
        "custody_deposit_ratio = \"0.40\"\nmax_amount = \"20000.00\"",
    );
    let fees = FEES.replace(
        "rounding = \"half_up\"",
        "rounding = \"half_up\"\nmax_amount = \"5000.00\"",
    );
    let set = PolicySet::from_sources(&[
        ("a.toml", TOPUP),
        ("a2.toml", &v2),
        ("b.toml", PROFIT),
        ("c.toml", &fees),
    ])
    .expect("with ceilings");
    assert_eq!(set.max_amount(date("2025-12-31")), amt("5000.00"));
    let set = PolicySet::from_sources(&[("a.toml", TOPUP), ("a2.toml", &v2), ("b.toml", PROFIT)])
        .expect("with a top-up ceiling");
    assert_eq!(set.max_amount(date("2025-12-31")), DEFAULT_MAX_AMOUNT);
    assert_eq!(set.max_amount(date("2026-01-01")), amt("20000.00"));

    // It is an amount, more than zero.
    let profit = |v: &str| {
        PROFIT.replace(
            "rounding = \"half_up\"",
            &format!("rounding = \"half_up\"\nmax_amount = {v}"),
        )
    };
    for bad in ["\"0\"", "\"-1.00\"", "\"1e6\"", "\"1.001\""] {
        let (line, reason) = malformed(&profit(bad));
        assert_eq!(line, line_of(&profit(bad), "max_amount"), "{bad}");
        assert!(reason.contains("max_amount"), "{bad}: {reason}");
    }
}
