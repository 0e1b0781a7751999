//! `hongxin import households|catalog FILE.csv`: master data from spreadsheets, every row or
//! none.
//!
//! The file is read here only as far as turning text into values (an area, an amount); the
//! ledger checks everything else — codes, references, duplicates — and imports all rows or
//! none. Line numbers are the file's own (the header is line 1), so a clerk can find the row.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use rust_decimal::Decimal;

use crate::app::App;
use crate::cli::{byte_progress_bar, open_existing, CliError};
use crate::config::Config;
use crate::domain::{CatalogItemInput, Command, Lined, NewHousehold, Receipt, Rejection};
use crate::money::Amount;

/// One import is one ledger command; larger files are split by the operator.
pub const MAX_ROWS: usize = 200_000;
/// The file is read whole, to number its lines exactly.
pub const MAX_BYTES: u64 = 64 << 20;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Households from CSV with the header code,compound,area_m2[,name]
    Households {
        /// The CSV file (UTF-8)
        file: PathBuf,
    },
    /// A cooperative's catalogue from CSV with the header sku,name,unit,price,cost[,barcode]; known SKUs are updated
    Catalog {
        /// The CSV file (UTF-8)
        file: PathBuf,
        /// The cooperative whose shops sell these items
        #[arg(long, value_name = "CODE")]
        cooperative: String,
    },
}

pub async fn run(config: &Config, command: ImportCommand) -> anyhow::Result<()> {
    match command {
        ImportCommand::Households { file } => {
            let table = read_csv(
                &file,
                &["code", "compound", "area_m2"],
                &["name", "building", "grid"],
            )?;
            let mut bad = table.bad;
            let mut rows = Vec::with_capacity(table.rows.len());
            for row in &table.rows {
                let household = match parse_household(row) {
                    Ok(h) => h,
                    Err(problem) => {
                        bad.insert(row.line, problem);
                        unparsable_household(row)
                    }
                };
                rows.push(Lined {
                    line: row.line,
                    row: household,
                });
            }
            let app = open_existing(config).await?;
            let receipt = send(&app, Command::ImportHouseholds { rows }, bad).await?;
            println!("imported {} households from {}", receipt.0, file.display());
            Ok(())
        }
        ImportCommand::Catalog { file, cooperative } => {
            let table = read_csv(
                &file,
                &["sku", "name", "unit", "price", "cost"],
                &["barcode"],
            )?;
            let mut bad = table.bad;
            let mut rows = Vec::with_capacity(table.rows.len());
            for row in &table.rows {
                let item = match parse_catalog_item(row) {
                    Ok(i) => i,
                    Err(problem) => {
                        bad.insert(row.line, problem);
                        unparsable_item(row)
                    }
                };
                rows.push(Lined {
                    line: row.line,
                    row: item,
                });
            }
            let app = open_existing(config).await?;
            let (created, updated) = send(
                &app,
                Command::ImportCatalog {
                    cooperative: cooperative.clone(),
                    rows,
                },
                bad,
            )
            .await?;
            println!(
                "imported {} catalogue items for {cooperative} from {}: {created} new, {updated} updated",
                created + updated,
                file.display()
            );
            Ok(())
        }
    }
}

/// Sends the import and merges the ledger's verdict with the rows that could not be read.
///
/// Rows that could not be read are still sent, with a value the ledger always refuses, so that
/// it checks every other row in the same pass and, refusing the import, imports nothing.
async fn send(
    app: &App,
    command: Command,
    mut bad: BTreeMap<u64, String>,
) -> anyhow::Result<(u64, u64)> {
    let result = app.run(command).await?;
    match result {
        Ok(Receipt::Imported(imported)) if bad.is_empty() => Ok((imported.created, imported.updated)),
        Ok(other) => anyhow::bail!(
            "the ledger accepted an import with unreadable rows (lines {:?}): {other:?}; please report this",
            bad.keys().collect::<Vec<_>>()
        ),
        Err(Rejection::ImportFailed { errors }) => {
            for e in errors {
                // The reading problem says more than the ledger's answer to its stand-in value.
                bad.entry(e.line).or_insert(e.reason);
            }
            for (line, problem) in &bad {
                eprintln!("line {line}: {problem}");
            }
            Err(CliError::Failed(format!("{} bad rows; nothing was imported", bad.len())).into())
        }
        Err(rejection) => Err(CliError::Rejected(rejection).into()),
    }
}

/// A data row: its line in the file and its fields by column name.
#[derive(Debug)]
struct Row {
    line: u64,
    fields: HashMap<String, String>,
}

impl Row {
    fn get(&self, column: &str) -> &str {
        self.fields.get(column).map(String::as_str).unwrap_or("")
    }
}

#[derive(Debug)]
struct Table {
    rows: Vec<Row>,
    /// Lines that are not even rows (wrong field count, not UTF-8), with the problem.
    bad: BTreeMap<u64, String>,
}

fn read_csv(path: &Path, required: &[&str], optional: &[&str]) -> anyhow::Result<Table> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("opening {}", path.display()))?
        .len();
    if size > MAX_BYTES {
        anyhow::bail!(
            "{}: larger than {} MiB; split the file",
            path.display(),
            MAX_BYTES >> 20
        );
    }
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines = LineIndex::new(&data);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&data[..]);
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("reading the header of {}", path.display()))?
        .iter()
        // Spreadsheets often save UTF-8 with a byte-order mark.
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let expected = || {
        let mut all = required.join(",");
        for o in optional {
            all.push_str(&format!("[,{o}]"));
        }
        all
    };
    for column in required {
        if !headers.iter().any(|h| h == column) {
            anyhow::bail!(
                "{}: line 1: the header has no column {column}; expected {}",
                path.display(),
                expected()
            );
        }
    }
    for (i, h) in headers.iter().enumerate() {
        if !required.contains(&h.as_str()) && !optional.contains(&h.as_str()) {
            anyhow::bail!(
                "{}: line 1: unknown column {h:?}; expected {}",
                path.display(),
                expected()
            );
        }
        if headers[..i].contains(h) {
            anyhow::bail!("{}: line 1: column {h} appears twice", path.display());
        }
    }

    let bar = byte_progress_bar(size, "reading");
    let mut table = Table {
        rows: Vec::new(),
        bad: BTreeMap::new(),
    };
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| lines.line_at(p.byte()));
                match (e.kind(), line) {
                    (csv::ErrorKind::Utf8 { .. }, Some(line)) => {
                        table
                            .bad
                            .insert(line, "is not UTF-8 text; save the file as CSV UTF-8".into());
                        continue;
                    }
                    _ => return Err(e).with_context(|| format!("reading {}", path.display())),
                }
            }
        };
        let line = record
            .position()
            .map(|p| lines.line_at(p.byte()))
            .unwrap_or(0);
        if table.rows.len() + table.bad.len() >= MAX_ROWS {
            anyhow::bail!(
                "{}: more than {MAX_ROWS} rows; split the file",
                path.display()
            );
        }
        // A spreadsheet may leave trailing optional cells out altogether; anything else short
        // or long is a broken row.
        let fits = record.len() == headers.len()
            || (record.len() < headers.len()
                && headers[record.len()..]
                    .iter()
                    .all(|h| optional.contains(&h.as_str())));
        if !fits {
            table.bad.insert(
                line,
                format!(
                    "has {} fields, the header has {}",
                    record.len(),
                    headers.len()
                ),
            );
            continue;
        }
        // Zipping stops at the shorter side: omitted optional cells read as empty.
        let fields = headers
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_string))
            .collect();
        table.rows.push(Row { line, fields });
        if table.rows.len() % 256 == 0 {
            if let Some(p) = record.position() {
                bar.set_position(p.byte());
            }
        }
    }
    bar.finish_and_clear();
    if table.rows.is_empty() && table.bad.is_empty() {
        anyhow::bail!("{}: no rows below the header", path.display());
    }
    Ok(table)
}

/// Line numbers (from 1) of byte offsets in a file. The csv crate's own line count drifts after
/// blank lines and CRLF endings, and a record's offset may point at the previous line's end, so
/// the line is found from the bytes themselves.
struct LineIndex<'a> {
    data: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(data: &'a [u8]) -> LineIndex<'a> {
        let newlines = data
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        LineIndex { data, newlines }
    }

    /// The line of the first byte at or after `byte` that is not a line ending: where the
    /// record really starts.
    fn line_at(&self, byte: u64) -> u64 {
        let mut start = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        while start < self.data.len() && matches!(self.data[start], b'\r' | b'\n') {
            start += 1;
        }
        1 + self.newlines.partition_point(|&n| n < start) as u64
    }
}

fn parse_household(row: &Row) -> Result<NewHousehold, String> {
    let area = row.get("area_m2");
    let area_m2 = crate::money::parse_plain_decimal(area)
        .ok_or_else(|| format!("area_m2: {area:?} is not a number of square metres like 87.35"))?;
    let optional = |column: &str| {
        let text = row.get(column);
        (!text.is_empty()).then(|| text.to_string())
    };
    Ok(NewHousehold {
        code: row.get("code").to_string(),
        compound: row.get("compound").to_string(),
        area_m2,
        name: optional("name"),
        building: optional("building"),
        grid: optional("grid"),
    })
}

/// A stand-in for a row that could not be read: a negative area is always refused.
fn unparsable_household(row: &Row) -> NewHousehold {
    NewHousehold {
        code: row.get("code").to_string(),
        compound: row.get("compound").to_string(),
        area_m2: Decimal::NEGATIVE_ONE,
        name: None,
        building: None,
        grid: None,
    }
}

fn parse_catalog_item(row: &Row) -> Result<CatalogItemInput, String> {
    let amount = |column: &str| {
        let text = row.get(column);
        Amount::parse(text).map_err(|e| format!("{column}: {text:?} {e}"))
    };
    Ok(CatalogItemInput {
        sku: row.get("sku").to_string(),
        name: row.get("name").to_string(),
        unit: row.get("unit").to_string(),
        price: amount("price")?,
        cost: amount("cost")?,
        barcode: Some(row.get("barcode").trim())
            .filter(|b| !b.is_empty())
            .map(str::to_string),
    })
}

/// A stand-in for a row that could not be read: a negative price is always refused.
fn unparsable_item(row: &Row) -> CatalogItemInput {
    CatalogItemInput {
        sku: row.get("sku").to_string(),
        name: row.get("name").to_string(),
        unit: row.get("unit").to_string(),
        price: Amount::from_fen(-1),
        cost: Amount::ZERO,
        barcode: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn lines_are_the_files_own() {
        let f = write("\u{feff}code,compound,area_m2,name\nA,HX01,80.5\n\nB,HX01,9x,王*\nC,HX01\n\"D\nE\",HX01,1,\nF,HX01,2,李*\n");
        let table = read_csv(f.path(), &["code", "compound", "area_m2"], &["name"]).unwrap();
        let lines: Vec<u64> = table.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 6, 8]);
        assert_eq!(table.rows[3].get("name"), "李*");
        assert_eq!(table.bad.keys().copied().collect::<Vec<_>>(), vec![5]);
        let err = parse_household(&table.rows[1]).unwrap_err();
        assert!(err.starts_with("area_m2: \"9x\""), "{err}");
        let h = parse_household(&table.rows[0]).unwrap();
        assert_eq!(h.area_m2, Decimal::new(805, 1));
        assert_eq!(h.name, None);
    }

    #[test]
    fn building_and_grid_are_optional_columns() {
        let f =
            write("code,compound,area_m2,grid,building\nA,HX01,80.5,第1网格,3栋\nB,HX01,70,,\n");
        let table = read_csv(
            f.path(),
            &["code", "compound", "area_m2"],
            &["name", "building", "grid"],
        )
        .unwrap();
        let a = parse_household(&table.rows[0]).unwrap();
        assert_eq!(a.grid.as_deref(), Some("第1网格"));
        assert_eq!(a.building.as_deref(), Some("3栋"));
        let b = parse_household(&table.rows[1]).unwrap();
        assert_eq!((b.grid, b.building), (None, None));
    }

    #[test]
    fn an_area_is_a_plain_decimal() {
        let f = write("code,compound,area_m2\nA,HX01,1e2\nB,HX01,1_00\nC,HX01,100\n");
        let table = read_csv(f.path(), &["code", "compound", "area_m2"], &["name"]).unwrap();
        for (row, text) in table.rows[..2].iter().zip(["1e2", "1_00"]) {
            let err = parse_household(row).unwrap_err();
            assert!(err.starts_with(&format!("area_m2: {text:?}")), "{err}");
        }
        assert_eq!(
            parse_household(&table.rows[2]).unwrap().area_m2,
            Decimal::from(100)
        );
    }

    #[test]
    fn crlf_files_count_lines_too() {
        let f = write("sku,name,unit,price,cost\r\nA,a,斤,1,1\r\n\r\nB,b,斤,1,1\r\n\"C\r\nc\",c,斤,1,1\r\nD,d,斤,1,1\r\n");
        let table = read_csv(f.path(), &["sku", "name", "unit", "price", "cost"], &[]).unwrap();
        let lines: Vec<u64> = table.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 5, 7]);
    }

    #[test]
    fn the_header_is_checked() {
        let f = write("code,compound\nA,HX01\n");
        let err = read_csv(f.path(), &["code", "compound", "area_m2"], &["name"]).unwrap_err();
        assert!(err.to_string().contains("no column area_m2"), "{err}");
        let f = write("code,compound,area_m2,phone\nA,HX01,1,123\n");
        let err = read_csv(f.path(), &["code", "compound", "area_m2"], &["name"]).unwrap_err();
        assert!(
            err.to_string().contains("unknown column \"phone\""),
            "{err}"
        );
    }

    #[test]
    fn catalogue_amounts_are_strict() {
        let f = write("sku,name,unit,price,cost\nV01,大白菜,斤,1.20,0.80\nV02,土豆,斤,1.805,1\n");
        let table = read_csv(f.path(), &["sku", "name", "unit", "price", "cost"], &[]).unwrap();
        let item = parse_catalog_item(&table.rows[0]).unwrap();
        assert_eq!(
            (item.price, item.cost),
            (Amount::from_fen(120), Amount::from_fen(80))
        );
        let err = parse_catalog_item(&table.rows[1]).unwrap_err();
        assert!(err.starts_with("price: \"1.805\""), "{err}");
    }
}
