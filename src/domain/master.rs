//! Master data: cooperatives, shops, companies, compounds, households, the catalogue, tokens,
//! and CSV imports of households and catalogue items (all rows or none).

use rust_decimal::Decimal;

use super::*;
use crate::ledger::Fact;

/// Codes are what clients key master data by: short, printable, no spaces.
pub(crate) fn check_code(field: &str, code: &str) -> Result<(), Rejection> {
    let ok = !code.is_empty()
        && code.len() <= 32
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Rejection::invalid(
            field,
            "must be 1–32 letters, digits, '-' or '_'",
        ))
    }
}

/// A household's building (楼栋) and grid (网格): short labels, optional.
fn check_place(h: &NewHousehold) -> Result<(), Rejection> {
    if let Some(building) = &h.building {
        check_text("building", building, 30)?;
    }
    if let Some(grid) = &h.grid {
        check_text("grid", grid, 30)?;
    }
    Ok(())
}

/// Sets the day a compound's company took it over (接管), which the alliance's reports mark.
pub(crate) async fn set_compound_takeover<T: Tx>(
    tx: &mut T,
    compound: &str,
    taken_over_on: Option<chrono::NaiveDate>,
) -> OpResult<Created> {
    let (id, _) = tx
        .compound(compound)
        .await?
        .ok_or_else(|| Rejection::not_found("compound", "compound", compound))?;
    tx.set_compound_takeover(id, taken_over_on).await?;
    Ok(Created {
        id,
        code: compound.to_string(),
    })
}

pub(crate) fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), Rejection> {
    let n = text.chars().count();
    if text.trim().is_empty() {
        Err(Rejection::invalid(field, "must not be empty"))
    } else if n > max_chars {
        Err(Rejection::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ))
    } else if text.chars().any(char::is_control) {
        Err(Rejection::invalid(
            field,
            "must not contain control characters",
        ))
    } else if text.chars().any(is_format) {
        Err(Rejection::invalid(
            field,
            "must not contain invisible or direction-changing characters",
        ))
    } else {
        Ok(())
    }
}

/// Unicode format characters (general category Cf) that can hide or reorder what a name shows
/// on a receipt or a statement: direction marks, embeddings, overrides and isolates, zero-width
/// characters, the soft hyphen, the byte-order mark and interlinear annotation.
fn is_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Floor area in dm² (0.01 m²), so it is stored as an integer.
pub(crate) fn area_dm2(field: &str, area: Decimal) -> Result<i64, Rejection> {
    let bad = || {
        Rejection::invalid(
            field,
            "must be an area in m² between 0 and 100000 with at most two decimals",
        )
    };
    if area.is_sign_negative() || area > Decimal::from(100_000) || area.normalize().scale() > 2 {
        return Err(bad());
    }
    let dm2 = area * Decimal::ONE_HUNDRED;
    i64::try_from(dm2.trunc()).map_err(|_| bad())
}

pub(crate) async fn create_cooperative<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    c: &NewCooperative,
) -> OpResult<Created> {
    check_code("code", &c.code)?;
    check_text("name", &c.name, 100)?;
    if tx.cooperative(&c.code).await?.is_some() {
        return Err(Rejection::exists("code", "cooperative", &c.code).into());
    }
    let id = tx.insert_cooperative(c).await?;
    record(
        tx,
        ctx,
        Fact::Cooperative {
            id,
            code: c.code.clone(),
        },
    )
    .await?;
    Ok(Created {
        id,
        code: c.code.clone(),
    })
}

pub(crate) async fn create_shop<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    s: &NewShop,
) -> OpResult<Created> {
    check_code("code", &s.code)?;
    check_text("name", &s.name, 100)?;
    let coop = tx
        .cooperative(&s.cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", &s.cooperative))?;
    if tx.shop(&s.code).await?.is_some() {
        return Err(Rejection::exists("code", "shop", &s.code).into());
    }
    let id = tx.insert_shop(s, coop.id).await?;
    record(
        tx,
        ctx,
        Fact::Shop {
            id,
            code: s.code.clone(),
            cooperative: coop.id,
        },
    )
    .await?;
    Ok(Created {
        id,
        code: s.code.clone(),
    })
}

pub(crate) async fn create_company<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    c: &NewCompany,
) -> OpResult<Created> {
    check_code("code", &c.code)?;
    check_text("name", &c.name, 100)?;
    if tx.company(&c.code).await?.is_some() {
        return Err(Rejection::exists("code", "company", &c.code).into());
    }
    let id = tx.insert_company(c).await?;
    record(
        tx,
        ctx,
        Fact::Company {
            id,
            code: c.code.clone(),
        },
    )
    .await?;
    Ok(Created {
        id,
        code: c.code.clone(),
    })
}

pub(crate) async fn create_compound<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    c: &NewCompound,
) -> OpResult<Created> {
    check_code("code", &c.code)?;
    check_text("name", &c.name, 100)?;
    let company = tx
        .company(&c.company)
        .await?
        .ok_or_else(|| Rejection::not_found("company", "company", &c.company))?;
    if tx.compound(&c.code).await?.is_some() {
        return Err(Rejection::exists("code", "compound", &c.code).into());
    }
    let id = tx.insert_compound(c, company).await?;
    record(
        tx,
        ctx,
        Fact::Compound {
            id,
            code: c.code.clone(),
            company,
            eligible: c.eligible,
        },
    )
    .await?;
    Ok(Created {
        id,
        code: c.code.clone(),
    })
}

pub(crate) async fn create_household<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    h: &NewHousehold,
) -> OpResult<Created> {
    check_code("code", &h.code)?;
    let area = area_dm2("area_m2", h.area_m2)?;
    if let Some(name) = &h.name {
        check_text("name", name, 50)?;
    }
    check_place(h)?;
    let (compound, _) = tx
        .compound(&h.compound)
        .await?
        .ok_or_else(|| Rejection::not_found("compound", "compound", &h.compound))?;
    if tx.household(&h.code).await?.is_some() {
        return Err(Rejection::exists("code", "household", &h.code).into());
    }
    let id = tx.insert_household(h, compound, area).await?;
    record(
        tx,
        ctx,
        Fact::Households {
            rows: vec![(id, h.code.clone(), compound, area)],
        },
    )
    .await?;
    Ok(Created {
        id,
        code: h.code.clone(),
    })
}

fn check_catalog_item(item: &CatalogItemInput) -> Result<(), Rejection> {
    check_code("sku", &item.sku)?;
    check_text("name", &item.name, 100)?;
    check_text("unit", &item.unit, 10)?;
    if item.price.is_negative() {
        return Err(Rejection::bad_amount("price", "must not be negative"));
    }
    if item.cost.is_negative() {
        return Err(Rejection::bad_amount("cost", "must not be negative"));
    }
    if let Some(code) = &item.barcode {
        if !(8..=14).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Rejection::invalid(
                "barcode",
                "a product barcode is 8 to 14 digits (EAN-8, UPC-A, EAN-13, ITF-14)",
            ));
        }
    }
    Ok(())
}

/// A barcode names one item of a cooperative: the till's scanner must not have to choose.
async fn barcode_free<T: Tx>(tx: &mut T, coop: i64, item: &CatalogItemInput) -> OpResult<()> {
    let Some(barcode) = &item.barcode else {
        return Ok(());
    };
    match tx.catalog_sku_by_barcode(coop, barcode).await? {
        Some(sku) if sku != item.sku => Err(Rejection::AlreadyExists {
            field: "barcode".into(),
            what: format!("barcode (on {sku})"),
            key: barcode.clone(),
        }
        .into()),
        _ => Ok(()),
    }
}

pub(crate) async fn upsert_catalog_item<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    cooperative: &str,
    item: &CatalogItemInput,
) -> OpResult<Created> {
    check_catalog_item(item)?;
    let coop = tx
        .cooperative(cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", cooperative))?;
    barcode_free(tx, coop.id, item).await?;
    tx.upsert_catalog_item(coop.id, item).await?;
    record(
        tx,
        ctx,
        Fact::CatalogItems {
            cooperative: coop.id,
            rows: vec![(item.sku.clone(), item.price.fen(), item.cost.fen())],
        },
    )
    .await?;
    let stored = tx.catalog_item(coop.id, &item.sku).await?;
    let id = stored.map(|s| s.id).unwrap_or_default();
    Ok(Created {
        id,
        code: item.sku.clone(),
    })
}

/// Validates every row first and reports every bad one with its line; writes only when all
/// rows are good, so an import is never half done.
pub(crate) async fn import_households<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    rows: &[Lined<NewHousehold>],
) -> OpResult<Imported> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut resolved = Vec::with_capacity(rows.len());
    let mut compounds = std::collections::HashMap::new();
    for Lined { line, row } in rows {
        match check_household_row(tx, row, &mut seen, &mut compounds).await? {
            Ok(r) => resolved.push(r),
            Err(e) => errors.push(LineError {
                line: *line,
                reason: e.to_string(),
            }),
        }
    }
    if !errors.is_empty() {
        return Err(Rejection::ImportFailed { errors }.into());
    }
    let mut written = Vec::with_capacity(rows.len());
    for (Lined { row, .. }, (compound, area)) in rows.iter().zip(resolved) {
        let id = tx.insert_household(row, compound, area).await?;
        written.push((id, row.code.clone(), compound, area));
    }
    for chunk in written.chunks(FACT_ROWS) {
        let rows = chunk.to_vec();
        record(tx, ctx, Fact::Households { rows }).await?;
    }
    Ok(Imported {
        created: rows.len() as u64,
        updated: 0,
    })
}

/// One row of a household import: `Ok(Err(..))` is a bad row, `Err(..)` a store failure.
async fn check_household_row<T: Tx>(
    tx: &mut T,
    row: &NewHousehold,
    seen: &mut std::collections::HashSet<String>,
    compounds: &mut std::collections::HashMap<String, i64>,
) -> OpResult<Result<(i64, i64), Rejection>> {
    let checked = check_code("code", &row.code)
        .and_then(|()| area_dm2("area_m2", row.area_m2))
        .and_then(|area| match &row.name {
            Some(name) => check_text("name", name, 50).map(|()| area),
            None => Ok(area),
        })
        .and_then(|area| check_place(row).map(|()| area));
    let area = match checked {
        Ok(area) => area,
        Err(e) => return Ok(Err(e)),
    };
    if !seen.insert(row.code.clone()) {
        return Ok(Err(Rejection::invalid(
            "code",
            format!("{} appears twice in the file", row.code),
        )));
    }
    let compound = match compounds.get(&row.compound) {
        Some(c) => *c,
        None => match tx.compound(&row.compound).await? {
            Some((c, _)) => {
                compounds.insert(row.compound.clone(), c);
                c
            }
            None => {
                return Ok(Err(Rejection::not_found(
                    "compound",
                    "compound",
                    &row.compound,
                )))
            }
        },
    };
    if tx.household(&row.code).await?.is_some() {
        return Ok(Err(Rejection::exists("code", "household", &row.code)));
    }
    Ok(Ok((compound, area)))
}

pub(crate) async fn import_catalog<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    cooperative: &str,
    rows: &[Lined<CatalogItemInput>],
) -> OpResult<Imported> {
    let coop = tx
        .cooperative(cooperative)
        .await?
        .ok_or_else(|| Rejection::not_found("cooperative", "cooperative", cooperative))?;
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut barcodes = std::collections::HashSet::new();
    for Lined { line, row } in rows {
        let result = check_catalog_item(row).and_then(|()| {
            if !seen.insert(row.sku.clone()) {
                return Err(Rejection::invalid(
                    "sku",
                    format!("{} appears twice in the file", row.sku),
                ));
            }
            match &row.barcode {
                Some(b) if !barcodes.insert(b.clone()) => Err(Rejection::invalid(
                    "barcode",
                    format!("{b} appears twice in the file"),
                )),
                _ => Ok(()),
            }
        });
        if let Err(e) = result {
            errors.push(LineError {
                line: *line,
                reason: e.to_string(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(Rejection::ImportFailed { errors }.into());
    }
    let (mut created, mut updated) = (0, 0);
    let mut written = Vec::with_capacity(rows.len());
    for Lined { line, row } in rows {
        match barcode_free(tx, coop.id, row).await {
            Ok(()) => {}
            Err(OpError::Rejected(e)) => {
                return Err(Rejection::ImportFailed {
                    errors: vec![LineError {
                        line: *line,
                        reason: e.to_string(),
                    }],
                }
                .into())
            }
            Err(other) => return Err(other),
        }
        if tx.upsert_catalog_item(coop.id, row).await? {
            created += 1;
        } else {
            updated += 1;
        }
        written.push((row.sku.clone(), row.price.fen(), row.cost.fen()));
    }
    for chunk in written.chunks(FACT_ROWS) {
        let fact = Fact::CatalogItems {
            cooperative: coop.id,
            rows: chunk.to_vec(),
        };
        record(tx, ctx, fact).await?;
    }
    Ok(Imported { created, updated })
}

/// Rows one master data fact lists at most (about 30 KB of JSON): an import of more posts one
/// entry per this many rows, all in the import's transaction, so no entry grows without bound.
pub const FACT_ROWS: usize = 1000;

/// Posts the master data entry that records `fact` in the hashed chain: no postings, so no
/// figure moves, but `verify` holds the rows to it.
async fn record<T: Tx>(tx: &mut T, ctx: &Ctx<'_>, fact: Fact) -> OpResult<()> {
    let mut header = ctx.header(EntryKind::MasterData);
    header.facts = Some(fact.encode());
    let entry = EntryDraft::new(header)
        .balanced()
        .map_err(|e| StoreError(e.to_string()))?;
    tx.post(entry, "code").await?;
    Ok(())
}

pub(crate) async fn create_token<T: Tx>(tx: &mut T, t: &NewToken) -> OpResult<Created> {
    if t.hash.len() != 64 || !t.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::invalid("hash", "must be a SHA-256 in hex").into());
    }
    let needs = match t.role {
        Role::Admin => None,
        Role::Cashier => Some("shop"),
        Role::CoopAccountant => Some("cooperative"),
        Role::Company => Some("company"),
        Role::Resident => Some("household"),
        Role::Alliance => None,
    };
    let mut scope = TokenScopeIds::default();
    match (needs, t.scope.as_deref()) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err(Rejection::invalid(
                "scope",
                format!("an {} token is not bound to anything", t.role.as_str()),
            )
            .into())
        }
        (Some(what), None) => {
            return Err(Rejection::invalid(
                what,
                format!("a {} token needs a {what}", t.role.as_str()),
            )
            .into())
        }
        (Some(what), Some(code)) => {
            let missing = || Rejection::not_found(what, what, code);
            match t.role {
                Role::Cashier => {
                    let shop = tx.shop(code).await?.ok_or_else(missing)?;
                    scope.shop = Some(shop.id);
                    scope.cooperative = Some(shop.coop.id);
                }
                Role::CoopAccountant => {
                    scope.cooperative = Some(tx.cooperative(code).await?.ok_or_else(missing)?.id)
                }
                Role::Company => scope.company = Some(tx.company(code).await?.ok_or_else(missing)?),
                Role::Resident => {
                    let h = tx.household(code).await?.ok_or_else(missing)?;
                    scope.household = Some(h.id);
                    scope.company = Some(h.company_id);
                }
                Role::Admin | Role::Alliance => {}
            }
        }
    }
    if let Some(label) = &t.label {
        check_text("label", label, 100)?;
    }
    let id = tx.insert_token(t, &scope).await?;
    Ok(Created {
        id,
        code: t.role.as_str().to_string(),
    })
}

pub(crate) async fn revoke_token<T: Tx>(tx: &mut T, id: i64) -> OpResult<Created> {
    if !tx.revoke_token(id).await? {
        return Err(Rejection::not_found("id", "live token", id.to_string()).into());
    }
    Ok(Created {
        id,
        code: "revoked".into(),
    })
}

pub(crate) async fn set_pin<T: Tx>(
    tx: &mut T,
    household: &str,
    pin_hash: Option<&str>,
) -> OpResult<Created> {
    let h = tx
        .household(household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", household))?;
    if let Some(hash) = pin_hash {
        if !hash.starts_with("$argon2") {
            return Err(Rejection::invalid("pin", "must be stored as an argon2 hash").into());
        }
    }
    tx.set_pin(h.id, pin_hash).await?;
    Ok(Created {
        id: h.id,
        code: h.code,
    })
}

/// Failed PIN attempts in a row that lock a household's PIN.
pub const PIN_FAILURES_PER_LOCK: i64 = 5;
/// The first lockout; each further [`PIN_FAILURES_PER_LOCK`] failures double it.
pub const PIN_FIRST_LOCK_MINUTES: i64 = 15;
/// The longest lockout: a day.
pub const PIN_LONGEST_LOCK_MINUTES: i64 = 24 * 60;

/// When a PIN that has failed `failures` times in a row is locked until, if it is.
pub fn pin_lock_after(
    failures: i64,
    at: DateTime<Utc>,
    previous: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if failures < PIN_FAILURES_PER_LOCK || failures % PIN_FAILURES_PER_LOCK != 0 {
        return previous;
    }
    let doublings = u32::try_from(failures / PIN_FAILURES_PER_LOCK - 1).unwrap_or(u32::MAX);
    let minutes = PIN_FIRST_LOCK_MINUTES
        .checked_mul(1_i64.checked_shl(doublings.min(16)).unwrap_or(i64::MAX))
        .unwrap_or(PIN_LONGEST_LOCK_MINUTES)
        .min(PIN_LONGEST_LOCK_MINUTES);
    Some(at + chrono::Duration::minutes(minutes))
}

pub(crate) async fn record_pin_attempt<T: Tx>(
    tx: &mut T,
    household: &str,
    ok: bool,
    at: DateTime<Utc>,
) -> OpResult<Created> {
    let h = tx
        .household(household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", household))?;
    let (failures, locked_until) = tx.pin_failures(h.id).await?;
    if ok {
        tx.set_pin_failures(h.id, 0, None).await?;
    } else {
        let failures = failures.saturating_add(1);
        tx.set_pin_failures(h.id, failures, pin_lock_after(failures, at, locked_until))
            .await?;
    }
    Ok(Created {
        id: h.id,
        code: h.code,
    })
}

pub(crate) async fn rotate_link<T: Tx>(tx: &mut T, household: &str) -> OpResult<Created> {
    let h = tx
        .household(household)
        .await?
        .ok_or_else(|| Rejection::not_found("household", "household", household))?;
    let version = tx.rotate_link(h.id).await?;
    Ok(Created {
        id: version,
        code: h.code,
    })
}

/// A change of master data after it was made (issue 14): a name from now on, a compound's
/// eligibility from a day, a compound's company or a household's area from a month. Posts a
/// master data entry whose fact carries old and new value and the day in force, stores the
/// change, and writes the new value into the master row (which holds the latest value; what was
/// in force on a day is read through `master_changes`, see migration 0021).
///
/// Refused, naming the field and changing nothing: a field the subject does not have, a value
/// the same as now, a company or area change reaching into a month already billed or closed, an
/// eligibility change on or before the last closed month's end, a date before an earlier change
/// of the same field.
pub(crate) async fn change_master_data<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    c: &MasterChange,
) -> OpResult<MasterChangeRecord> {
    let subject = c.subject;
    if !subject.fields().contains(&c.field.as_str()) {
        return Err(Rejection::invalid(
            "field",
            format!(
                "a {}'s {:?} cannot be changed; one of: {}",
                subject.as_str(),
                c.field,
                subject.fields().join(", ")
            ),
        )
        .into());
    }
    let row = tx
        .master_subject(subject, &c.code)
        .await?
        .ok_or_else(|| Rejection::not_found("code", subject.as_str(), &c.code))?;
    let same = |what: String| Err(Rejection::invalid("value", what).into());
    let (field, old, new, shown_old, shown_new): (&'static str, _, String, _, String) =
        match c.field.as_str() {
            "name" => {
                let max = if subject == Subject::Household {
                    50
                } else {
                    100
                };
                check_text("value", &c.value, max)?;
                if row.name.as_deref() == Some(c.value.as_str()) {
                    return same(format!("{} is already named {}", c.code, c.value));
                }
                (
                    "name",
                    row.name.clone(),
                    c.value.clone(),
                    row.name.clone(),
                    c.value.clone(),
                )
            }
            "eligible" => {
                let new = match c.value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Rejection::invalid("value", "must be true or false").into()),
                };
                if row.eligible == Some(new) {
                    let now = if new { "eligible" } else { "not eligible" };
                    return same(format!("{} is already {now}", c.code));
                }
                let old = row.eligible.map(|b| b.to_string());
                (
                    "eligible",
                    old.clone(),
                    new.to_string(),
                    old,
                    new.to_string(),
                )
            }
            "company" => {
                let company = tx
                    .company(&c.value)
                    .await?
                    .ok_or_else(|| Rejection::not_found("value", "company", &c.value))?;
                if row.company == Some(company) {
                    return same(format!("{} is already with {}", c.code, c.value));
                }
                (
                    "company",
                    row.company.map(|id| id.to_string()),
                    company.to_string(),
                    row.company_code.clone(),
                    c.value.clone(),
                )
            }
            "area_m2" => {
                let area: Decimal = c.value.trim().parse().map_err(|_| {
                    Rejection::invalid("value", "must be an area in m², e.g. 85.50")
                })?;
                let dm2 = area_dm2("value", area)?;
                if row.area_dm2 == Some(dm2) {
                    return same(format!("{} already has {} m²", c.code, c.value));
                }
                (
                    "area",
                    row.area_dm2.map(|a| a.to_string()),
                    dm2.to_string(),
                    row.area_dm2.map(area_text),
                    area_text(dm2),
                )
            }
            _ => unreachable!("checked against the subject's fields"),
        };
    let effective_from = effective_from(tx, ctx, c, field, row.id).await?;
    let fact = Fact::MasterChanged {
        subject: subject.as_str().to_string(),
        id: row.id,
        field: field.to_string(),
        old: old.clone(),
        new: new.clone(),
        effective_from,
    };
    let mut header = ctx.header(EntryKind::MasterData);
    header.memo = Some(format!(
        "{} {} {}: {} -> {} from {effective_from}",
        subject.as_str(),
        c.code,
        c.field,
        shown_old.as_deref().unwrap_or("-"),
        shown_new
    ));
    header.facts = Some(fact.encode());
    let entry = EntryDraft::new(header)
        .balanced()
        .map_err(|e| StoreError(e.to_string()))?;
    let posted = tx.post(entry, "field").await?;
    let id = tx
        .insert_master_change(
            posted.id,
            &StoredChange {
                subject,
                subject_id: row.id,
                field,
                old,
                new,
                effective_from,
            },
        )
        .await?;
    Ok(MasterChangeRecord {
        id,
        entry: posted.id,
        subject,
        code: c.code.clone(),
        field: c.field.clone(),
        old: shown_old,
        new: shown_new,
        effective_from,
        recorded_at: ctx.now.to_rfc3339(),
        actor: ctx.actor,
        actor_label: None,
        actor_role: None,
    })
}

/// An area in dm² as m² text with two decimals.
pub fn area_text(dm2: i64) -> String {
    Decimal::new(dm2, 2).to_string()
}

/// The day a change is in force from, checked against the closed and billed months and the
/// changes before it.
async fn effective_from<T: Tx>(
    tx: &mut T,
    ctx: &Ctx<'_>,
    c: &MasterChange,
    field: &str,
    id: i64,
) -> OpResult<NaiveDate> {
    let text = c.effective_from.as_deref();
    if field == "name" {
        return match text {
            None => Ok(ctx.today),
            Some(_) => Err(Rejection::invalid(
                "effective_from",
                "a name is corrected from now on: leave effective_from out",
            )
            .into()),
        };
    }
    let Some(text) = text else {
        return Err(Rejection::invalid(
            "effective_from",
            format!("a change of {} needs the day it is in force from", c.field),
        )
        .into());
    };
    let by_month = field != "eligible";
    let day = if by_month {
        // A month, or the first day of one.
        let month = match text.len() {
            10 if text.ends_with("-01") => &text[..7],
            _ => text,
        };
        crate::fees::month_bounds("effective_from", month)?.0
    } else {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .filter(|_| text.len() == 10)
            .ok_or_else(|| {
                Rejection::invalid("effective_from", "must be a day written YYYY-MM-DD")
            })?
    };
    let month = month_of(day);
    let bounds = tx.master_change_bounds(field, id).await?;
    if let Some(closed) = bounds
        .last_closed
        .filter(|closed| month.as_str() <= closed.as_str())
    {
        return Err(Rejection::invalid(
            "effective_from",
            format!("{closed} is closed: a change can take effect from the month after it"),
        )
        .into());
    }
    if by_month {
        if let Some(billed) = bounds.last_billed.filter(|b| month.as_str() <= b.as_str()) {
            return Err(Rejection::invalid(
                "effective_from",
                format!(
                    "{billed} is already billed for {}: bills issued stay as they are, a change can take effect from the month after it",
                    c.code
                ),
            )
            .into());
        }
    }
    if let Some(last) = bounds.last_effective.filter(|last| day < *last) {
        return Err(Rejection::invalid(
            "effective_from",
            format!(
                "a change of {} from {last} is recorded: a later one cannot take effect before it",
                c.field
            ),
        )
        .into());
    }
    Ok(day)
}
