//! The alliance's report as tables, for CSV (one table per file) and XLSX (one sheet per
//! table): the same figures as the JSON and the page, laid out as the board's spreadsheets
//! want them. Headings are bilingual, Chinese first.
//!
//! Amounts go into XLSX cells as numbers made from the exact fen at the cell boundary, as the
//! company statement does (see `crate::fees::xlsx`); nothing is computed from them.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::alliance::{
    AllianceReport, CompoundMonth, FeeFigures, Participation, PlaceReport, Ratio,
};
use crate::money::Amount;

/// One cell of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Count(u64),
    Money(Amount),
    /// A share; empty where there was nothing to divide by.
    Ratio(Option<Ratio>),
    /// A signed whole number (months since takeover); empty when unknown.
    Number(Option<i64>),
}

/// A named table: its headings and rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// The name a CSV request picks it by (`?table=`) and the XLSX sheet's name.
    pub name: &'static str,
    pub headings: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

/// The tables a CSV export may pick.
pub const TABLES: [&str; 7] = [
    "totals",
    "compounds",
    "grids",
    "buildings",
    "cooperatives",
    "companies",
    "arrears",
];

const FEE_HEADINGS: [&str; 12] = [
    "开单户数 Households billed",
    "应收 Billed",
    "当月收缴 Collected in month",
    "逾期收缴 Collected late",
    "未收 Outstanding",
    "收缴率 Collection rate",
    "当月收缴率 In-month rate",
    "居民缴费 Paid",
    "合作社抵扣 Allocated",
    "合作社抵扣占比 Covered by cooperative",
    "期末欠费 Balance",
    "已收 Collected",
];

const PARTICIPATION_HEADINGS: [&str; 8] = [
    "充值笔数 Top-ups",
    "充值户数 Households topping up",
    "充值户占比 Share topping up",
    "售出储值 Credit sold",
    "赠送 Bonus granted",
    "消费储值 Credit spent",
    "消费户数 Households spending",
    "消费户占比 Share spending",
];

fn fee_cells(f: &FeeFigures) -> Vec<Cell> {
    vec![
        Cell::Count(f.households_billed),
        Cell::Money(f.billed),
        Cell::Money(f.collected_in_month),
        Cell::Money(f.collected_late),
        Cell::Money(f.outstanding),
        Cell::Ratio(f.collection_rate),
        Cell::Ratio(f.in_month_rate),
        Cell::Money(f.paid),
        Cell::Money(f.allocated),
        Cell::Ratio(f.covered_by_cooperative),
        Cell::Money(f.balance),
        Cell::Money(f.collected),
    ]
}

fn participation_cells(p: &Participation) -> Vec<Cell> {
    vec![
        Cell::Count(p.topups),
        Cell::Count(p.topup_households),
        Cell::Ratio(p.topup_share),
        Cell::Money(p.credit_sold),
        Cell::Money(p.bonus_granted),
        Cell::Money(p.credit_spent),
        Cell::Count(p.spend_households),
        Cell::Ratio(p.spend_share),
    ]
}

fn month_cells(m: &CompoundMonth) -> Vec<Cell> {
    let mut cells = vec![Cell::Text(m.month.clone()), Cell::Number(m.since_takeover)];
    cells.extend(fee_cells(&m.fees));
    cells.extend(participation_cells(&m.participation));
    cells
}

fn headings(lead: &[&'static str]) -> Vec<&'static str> {
    let mut h = lead.to_vec();
    h.extend(["月份 Month", "接管后月数 Months since takeover"]);
    h.extend(FEE_HEADINGS);
    h.extend(PARTICIPATION_HEADINGS);
    h
}

fn place_rows(places: &[PlaceReport], month: &str) -> Vec<Vec<Cell>> {
    places
        .iter()
        .map(|p| {
            let mut row = vec![
                Cell::Text(p.compound.clone()),
                Cell::Text(p.grid.clone()),
                Cell::Text(p.building.clone().unwrap_or_default()),
                Cell::Count(p.households),
                Cell::Count(p.holders),
                Cell::Ratio(p.holder_share),
                Cell::Text(month.to_string()),
                Cell::Number(None),
            ];
            row.extend(fee_cells(&p.fees));
            row.extend(participation_cells(&p.participation));
            row
        })
        .collect()
}

/// Every table of the report.
pub fn tables(r: &AllianceReport) -> Vec<Table> {
    let totals = Table {
        name: "totals",
        headings: headings(&["户数 Households", "持有余额户数 Holders"]),
        rows: r
            .totals
            .iter()
            .map(|m| {
                let mut row = vec![Cell::Count(r.households), Cell::Count(r.holders)];
                row.extend(month_cells(m));
                row
            })
            .collect(),
    };
    let compounds = Table {
        name: "compounds",
        headings: headings(&[
            "小区 Compound",
            "名称 Name",
            "物业公司 Company",
            "接管日期 Taken over",
            "户数 Households",
            "持有余额户数 Holders",
            "持有占比 Share holding",
        ]),
        rows: r
            .compounds
            .iter()
            .flat_map(|c| {
                c.months.iter().map(move |m| {
                    let mut row = vec![
                        Cell::Text(c.compound.clone()),
                        Cell::Text(c.name.clone()),
                        Cell::Text(c.company.clone()),
                        Cell::Text(c.taken_over_on.map(|d| d.to_string()).unwrap_or_default()),
                        Cell::Count(c.households),
                        Cell::Count(c.holders),
                        Cell::Ratio(c.holder_share),
                    ];
                    row.extend(month_cells(m));
                    row
                })
            })
            .collect(),
    };
    let place_headings = headings(&[
        "小区 Compound",
        "网格 Grid",
        "楼栋 Building",
        "户数 Households",
        "持有余额户数 Holders",
        "持有占比 Share holding",
    ]);
    let grids = Table {
        name: "grids",
        headings: place_headings.clone(),
        rows: place_rows(&r.grids, &r.month),
    };
    let buildings = Table {
        name: "buildings",
        headings: place_headings,
        rows: place_rows(&r.buildings, &r.month),
    };
    let cooperatives = Table {
        name: "cooperatives",
        headings: vec![
            "合作社 Cooperative",
            "月份 Month",
            "储值销售 Credit sales",
            "现金销售 Cash sales",
            "销售额 Sales",
            "已结账 Closed",
            "成本 COGS",
            "毛利 Margin",
            "赠送 Promotion",
            "费用 Expenses",
            "利润 Profit",
            "结转亏损 Loss carried",
            "分配池 Pool",
            "已分配 Allocated",
            "储备 Reserve",
            "月末预付余额(本金) Prepaid paid at month end",
            "上季末预付余额(本金) Last quarter's prepaid balance",
            "应存管金额 Custody deposit",
            "预付余额(本金) Prepaid paid",
            "预付余额(赠送) Prepaid bonus",
        ],
        rows: r
            .cooperatives
            .iter()
            .flat_map(|c| {
                c.months.iter().map(move |m| {
                    let close = m.close.as_ref();
                    let money = |f: fn(&super::alliance::CloseFigures) -> Amount| {
                        close.map_or(Cell::Text(String::new()), |x| Cell::Money(f(x)))
                    };
                    vec![
                        Cell::Text(c.cooperative.clone()),
                        Cell::Text(m.month.clone()),
                        Cell::Money(m.credit_sales),
                        Cell::Money(m.cash_sales),
                        Cell::Money(m.sales),
                        Cell::Text(if close.is_some() { "是 yes" } else { "否 no" }.into()),
                        money(|x| x.cogs),
                        money(|x| x.margin),
                        money(|x| x.promotion),
                        money(|x| x.expenses),
                        money(|x| x.profit),
                        money(|x| x.loss_carried_out),
                        money(|x| x.pool),
                        money(|x| x.allocated),
                        money(|x| x.reserve),
                        Cell::Money(m.prepaid_paid),
                        Cell::Money(m.custody_base),
                        m.custody_deposit
                            .map_or(Cell::Text(String::new()), Cell::Money),
                        Cell::Money(c.prepaid.paid),
                        Cell::Money(c.prepaid.bonus),
                    ]
                })
            })
            .collect(),
    };
    let companies = Table {
        name: "companies",
        headings: vec![
            "物业公司 Company",
            "名称 Name",
            "月份 Month",
            "应收 Billed",
            "居民缴费 Paid",
            "合作社分配 Allocations received",
            "合作社结算 Settlements received",
            "合作社待付 Outstanding from cooperatives",
        ],
        rows: r
            .companies
            .iter()
            .flat_map(|k| {
                k.months.iter().map(move |m| {
                    vec![
                        Cell::Text(k.company.clone()),
                        Cell::Text(k.name.clone()),
                        Cell::Text(m.month.clone()),
                        Cell::Money(m.billed),
                        Cell::Money(m.paid),
                        Cell::Money(m.allocations_received),
                        Cell::Money(m.settlements_received),
                        Cell::Money(m.outstanding),
                    ]
                })
            })
            .collect(),
    };
    let arrears = Table {
        name: "arrears",
        headings: vec![
            "物业公司 Company",
            "名称 Name",
            "0-30天 0-30 days",
            "31-90天 31-90 days",
            "91-180天 91-180 days",
            "180天以上 Over 180 days",
            "合计 Total",
        ],
        rows: r
            .companies
            .iter()
            .map(|k| {
                vec![
                    Cell::Text(k.company.clone()),
                    Cell::Text(k.name.clone()),
                    Cell::Money(k.arrears.days_0_30),
                    Cell::Money(k.arrears.days_31_90),
                    Cell::Money(k.arrears.days_91_180),
                    Cell::Money(k.arrears.over_180),
                    Cell::Money(k.arrears.total),
                ]
            })
            .collect(),
    };
    vec![
        totals,
        compounds,
        grids,
        buildings,
        cooperatives,
        companies,
        arrears,
    ]
}

fn text(c: &Cell) -> String {
    match c {
        Cell::Text(t) => t.clone(),
        Cell::Count(n) => n.to_string(),
        Cell::Money(a) => a.to_string(),
        Cell::Ratio(r) => r.map(|r| r.0.to_string()).unwrap_or_default(),
        Cell::Number(n) => n.map(|n| n.to_string()).unwrap_or_default(),
    }
}

/// One table as CSV, UTF-8 with a byte-order mark (so Excel and WPS read the Chinese).
pub fn to_csv(table: &Table) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    w.write_record(&table.headings)?;
    for row in &table.rows {
        w.write_record(row.iter().map(text))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Yuan for a cell: the float boundary of the module comment.
fn cell_value(a: Amount) -> f64 {
    a.fen() as f64 / 100.0
}

/// Every table as a sheet of one workbook.
pub fn to_xlsx(tables: &[Table]) -> Result<Vec<u8>, XlsxError> {
    let heading = Format::new().set_bold();
    let money = Format::new().set_num_format("0.00");
    let ratio = Format::new().set_num_format("0.00%");
    let mut workbook = Workbook::new();
    for table in tables {
        let sheet = workbook.add_worksheet();
        sheet.set_name(table.name)?;
        for (col, h) in table.headings.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *h, &heading)?;
        }
        for (i, row) in table.rows.iter().enumerate() {
            let r = i as u32 + 1;
            for (col, cell) in row.iter().enumerate() {
                let col = col as u16;
                match cell {
                    Cell::Text(t) => {
                        sheet.write_string(r, col, t)?;
                    }
                    Cell::Count(n) => {
                        sheet.write_number(r, col, *n as f64)?;
                    }
                    Cell::Money(a) => {
                        sheet.write_number_with_format(r, col, cell_value(*a), &money)?;
                    }
                    Cell::Ratio(Some(x)) => {
                        // A ratio of four places is exact enough as a double to display.
                        let v: f64 = x.0.to_string().parse().unwrap_or_default();
                        sheet.write_number_with_format(r, col, v, &ratio)?;
                    }
                    Cell::Number(Some(n)) => {
                        sheet.write_number(r, col, *n as f64)?;
                    }
                    Cell::Ratio(None) | Cell::Number(None) => {}
                }
            }
        }
    }
    workbook.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_writes_exact_amounts_and_blank_ratios() {
        let table = Table {
            name: "t",
            headings: vec!["a", "b", "c"],
            rows: vec![vec![
                Cell::Money(Amount::from_fen(4804)),
                Cell::Ratio(None),
                Cell::Ratio(Ratio::of(1, 3)),
            ]],
        };
        let text = String::from_utf8(to_csv(&table).unwrap()).unwrap();
        assert_eq!(text, "\u{feff}a,b,c\n48.04,,0.3333\n");
    }
}
