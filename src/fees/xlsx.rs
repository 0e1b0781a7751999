//! The company statement (对账单) as an XLSX workbook, for the companies' offices that reconcile
//! in Excel or WPS: one sheet, 对账单, with a title, the household lines grouped by compound
//! with a subtotal per compound and a total, the summary block, what the cooperative owes, and
//! the journal head the figures were read at.
//!
//! Amounts are written as numbers (so the office can sum and sort them) with the number format
//! `0.00`. This is the one place in hongxin where money passes through a float: the XLSX format
//! stores every number as an IEEE double, and `rust_xlsxwriter` takes an `f64`. The value is
//! made from the exact fen only at the cell boundary, `fen as f64 / 100.0`: every integer below
//! 2^53 is exact as a double, and the division gives the double nearest the two-decimal value,
//! which is written in its shortest round-trip form (48.04, not 48.0399…). Nothing is computed
//! from these floats; every total on the sheet comes from the statement's own integer sums.

use rust_xlsxwriter::{Format, FormatBorder, Workbook, Worksheet, XlsxError};

use super::statement::{Statement, Totals};
use crate::money::Amount;

/// The sheet's name, as the companies know the document.
pub const SHEET: &str = "对账单";

/// Column headings of the household table.
const HEADINGS: [&str; 11] = [
    "小区 Compound",
    "户号 Household",
    "期初 Opening",
    "本月应收 Billed",
    "居民缴费 Paid",
    "合作社抵扣 Allocated",
    "期末 Closing",
    "面积 m² Area",
    "住户姓名 Occupant",
    "楼栋 Building",
    "网格 Grid",
];

/// Yuan for a cell: the boundary described in the module comment, and nowhere else.
fn cell_value(a: Amount) -> f64 {
    a.fen() as f64 / 100.0
}

struct Formats {
    title: Format,
    heading: Format,
    money: Format,
    bold: Format,
    bold_money: Format,
}

impl Formats {
    fn new() -> Formats {
        Formats {
            title: Format::new().set_bold().set_font_size(14),
            heading: Format::new()
                .set_bold()
                .set_border_bottom(FormatBorder::Thin),
            money: Format::new().set_num_format("0.00"),
            bold: Format::new().set_bold(),
            bold_money: Format::new().set_bold().set_num_format("0.00"),
        }
    }
}

/// Writes the five amounts of a line (opening … closing) from column 2.
fn write_totals(
    sheet: &mut Worksheet,
    row: u32,
    t: &Totals,
    format: &Format,
) -> Result<(), XlsxError> {
    for (i, a) in [t.opening, t.billed, t.paid, t.allocated, t.closing]
        .into_iter()
        .enumerate()
    {
        sheet.write_number_with_format(row, 2 + i as u16, cell_value(a), format)?;
    }
    Ok(())
}

/// The statement as an XLSX file's bytes.
pub fn to_xlsx(s: &Statement) -> Result<Vec<u8>, XlsxError> {
    let f = Formats::new();
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name(SHEET)?;
    sheet.set_column_width(0, 16)?;
    sheet.set_column_width(1, 18)?;
    for col in 2..9 {
        sheet.set_column_width(col, 16)?;
    }

    let mut row: u32 = 0;
    sheet.write_string_with_format(
        row,
        0,
        format!(
            "物业费对账单 Property-fee statement — {} — {}",
            s.company_name
                .as_ref()
                .map_or(s.company.clone(), |n| format!("{n}（{}）", s.company)),
            s.month
        ),
        &f.title,
    )?;
    row += 2;

    for (col, heading) in HEADINGS.iter().enumerate() {
        sheet.write_string_with_format(row, col as u16, *heading, &f.heading)?;
    }
    row += 1;
    sheet.set_freeze_panes(row, 0)?;

    // Households arrive sorted by compound, so each compound's lines are contiguous; its
    // subtotal follows its last line.
    let mut lines = s.households.iter().peekable();
    while let Some(h) = lines.next() {
        sheet.write_string(row, 0, h.compound.as_str())?;
        sheet.write_string(row, 1, h.household.as_str())?;
        sheet.write_string(row, 7, h.area_m2.as_str())?;
        for (col, text) in [(8, &h.occupant), (9, &h.building), (10, &h.grid)] {
            if let Some(text) = text {
                sheet.write_string(row, col, text.as_str())?;
            }
        }
        let t = Totals {
            opening: h.opening,
            billed: h.billed,
            paid: h.paid,
            allocated: h.allocated,
            closing: h.closing,
        };
        write_totals(sheet, row, &t, &f.money)?;
        row += 1;
        let last_of_compound = lines.peek().is_none_or(|next| next.compound != h.compound);
        if last_of_compound {
            if let Some(c) = s.compounds.iter().find(|c| c.compound == h.compound) {
                sheet.write_string_with_format(
                    row,
                    0,
                    format!("小计 Subtotal {}", c.compound),
                    &f.bold,
                )?;
                sheet.write_string_with_format(
                    row,
                    1,
                    format!("{} 户 households", c.households),
                    &f.bold,
                )?;
                write_totals(sheet, row, &c.totals, &f.bold_money)?;
                row += 1;
            }
        }
    }
    sheet.write_string_with_format(row, 0, "合计 Total", &f.bold)?;
    sheet.write_string_with_format(
        row,
        1,
        format!("{} 户 households", s.households.len()),
        &f.bold,
    )?;
    write_totals(sheet, row, &s.totals, &f.bold_money)?;
    row += 2;

    sheet.write_string_with_format(row, 0, "汇总 Summary", &f.heading)?;
    row += 1;
    let m = &s.summary;
    for (label, value) in [
        (
            "上期欠费 Arrears brought forward",
            m.arrears_brought_forward,
        ),
        ("本月欠费 Arrears this month", m.arrears_this_month),
        ("本月应收 Billed", m.billed),
        ("收回欠费 Arrears recovered", m.arrears_recovered),
        ("预收 Prepaid", m.prepaid),
        ("居民缴费 Received", m.received),
        (
            "合作社抵扣 Covered by cooperative",
            m.covered_by_cooperative,
        ),
    ] {
        sheet.write_string(row, 0, label)?;
        sheet.write_number_with_format(row, 2, cell_value(value), &f.money)?;
        row += 1;
    }
    row += 1;

    sheet.write_string_with_format(row, 0, "合作社往来 Due from cooperative", &f.heading)?;
    row += 1;
    for (col, heading) in [
        "合作社 Cooperative",
        "",
        "期初 Opening",
        "本月抵扣 Allocated",
        "已结算 Settled",
        "未结算 Outstanding",
    ]
    .iter()
    .enumerate()
    {
        if !heading.is_empty() {
            sheet.write_string_with_format(row, col as u16, *heading, &f.bold)?;
        }
    }
    row += 1;
    for c in &s.cooperatives {
        sheet.write_string(row, 0, c.cooperative.as_str())?;
        for (i, a) in [c.opening, c.allocated, c.settled, c.outstanding]
            .into_iter()
            .enumerate()
        {
            sheet.write_number_with_format(row, 2 + i as u16, cell_value(a), &f.money)?;
        }
        row += 1;
    }
    row += 1;

    sheet.write_string_with_format(row, 0, "账本 Journal head", &f.heading)?;
    row += 1;
    sheet.write_string(row, 0, "序号 Sequence")?;
    // A sequence number, not money: exact as a double far beyond any journal's length.
    sheet.write_number(row, 2, s.journal_seq as f64)?;
    row += 1;
    sheet.write_string(row, 0, "哈希 SHA-256")?;
    sheet.write_string(row, 2, s.journal_hash.as_str())?;
    row += 1;
    sheet.write_string(row, 0, "勾稽 Ties out")?;
    sheet.write_string(
        row,
        2,
        if s.ties_out {
            "是 yes: opening + billed − paid − allocated = closing"
        } else {
            "否 NO: the lines do not tie out"
        },
    )?;

    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::statement::{build, CooperativePosition, HouseholdLine};

    fn line(compound: &str, h: &str, opening: i64, billed: i64, paid: i64) -> HouseholdLine {
        HouseholdLine {
            compound: compound.into(),
            household: h.into(),
            area_m2: "87.35".into(),
            occupant: None,
            building: None,
            grid: None,
            opening: Amount::from_fen(opening),
            billed: Amount::from_fen(billed),
            paid: Amount::from_fen(paid),
            allocated: Amount::ZERO,
            closing: Amount::from_fen(opening + billed - paid),
        }
    }

    #[test]
    fn cells_are_the_exact_two_decimal_values() {
        assert_eq!(cell_value(Amount::from_fen(4804)).to_string(), "48.04");
        assert_eq!(cell_value(Amount::from_fen(-5196)).to_string(), "-51.96");
        assert_eq!(cell_value(Amount::from_fen(33334)).to_string(), "333.34");
        // Far beyond any household's fees, still exact.
        assert_eq!(
            cell_value(Amount::from_fen(123_456_789_012_345)).to_string(),
            "1234567890123.45"
        );
    }

    #[test]
    fn a_statement_makes_a_workbook() {
        let s = build(
            "K01",
            "2026-11",
            vec![
                line("HX01", "H1", 0, 4804, 0),
                line("HX03", "H2", 4855, 4855, 4855),
                line("HX01", "H3", -1000, 4804, 0),
            ],
            vec![CooperativePosition {
                cooperative_name: None,
                cooperative: "COOP".into(),
                opening: Amount::ZERO,
                allocated: Amount::from_fen(100),
                settled: Amount::ZERO,
                outstanding: Amount::from_fen(100),
                collected: Amount::ZERO,
            }],
            3,
            "ab".repeat(32),
        );
        let bytes = to_xlsx(&s).unwrap();
        // An XLSX file is a zip archive.
        assert_eq!(&bytes[..2], b"PK");
        assert!(bytes.len() > 1000);
    }
}
