//! The daily till report (日结): per shop and business date, top-ups by payment method (and how
//! many went out as vouchers), sales by tender, refunds by where the money went, vouchers
//! redeemed, and the money each method should have brought into the till.
//!
//! Top-ups and sales count on their own business date; a refund counts on the date it was
//! posted, at the shop of the sale it refunds.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use utoipa::ToSchema;

use super::ReportError;
use crate::money::Amount;
use crate::store::{ShopInfo, Store, TillFigures};

/// Which shops a report covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShopFilter {
    All,
    Cooperative(String),
    Shop(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TillReport {
    pub date: NaiveDate,
    /// By shop code.
    pub shops: Vec<ShopTill>,
    /// Every shop of the report added up, line by line.
    pub total: TillTotal,
}

/// The shops of a till report added up: what the cooperative took over all its tills.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct TillTotal {
    pub shops: u64,
    pub topups: Topups,
    pub sales: Sales,
    pub refunds: Refunds,
    pub vouchers_redeemed: VouchersRedeemed,
    pub drawer: Vec<DrawerLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShopTill {
    pub shop: String,
    pub name: String,
    pub cooperative: String,
    pub topups: Topups,
    pub sales: Sales,
    pub refunds: Refunds,
    pub vouchers_redeemed: VouchersRedeemed,
    /// Money in by method: top-ups and sales paid that way, less refunds paid back that way.
    pub drawer: Vec<DrawerLine>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Topups {
    pub count: u64,
    /// What residents paid.
    pub paid: Amount,
    /// The bonus credit given on top (居民购物50元换55元: 5.00 per 50.00).
    pub bonus: Amount,
    /// paid + bonus.
    pub credited: Amount,
    pub by_method: Vec<TopupLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TopupLine {
    /// cash, wechat, alipay…
    pub method: String,
    pub count: u64,
    pub paid: Amount,
    pub bonus: Amount,
    pub credited: Amount,
    /// How many of these top-ups were delivered as bearer vouchers…
    pub as_vouchers: u64,
    /// …and the credit (paid + bonus) those vouchers carry.
    pub voucher_credit: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Sales {
    pub count: u64,
    pub total: Amount,
    pub by_tender: Vec<TenderLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TenderLine {
    /// wallet, voucher, cash, wechat or alipay.
    pub tender: String,
    /// Tenders of this type (a split sale counts once per tender).
    pub count: u64,
    pub amount: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Refunds {
    pub count: u64,
    pub amount: Amount,
    /// Where the refunded money went: back to a wallet or voucher, out in a payment method,
    /// or `forfeited` (the bonus part of a voucher that can no longer take it back).
    pub by_tender: Vec<RefundLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RefundLine {
    pub tender: String,
    pub amount: Amount,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct VouchersRedeemed {
    /// Voucher tenders taken.
    pub count: u64,
    /// Distinct vouchers among them.
    pub vouchers: u64,
    pub amount: Amount,
    /// Of the amount, what was paid credit and what was bonus.
    pub paid: Amount,
    pub bonus: Amount,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct DrawerLine {
    pub method: String,
    pub topups: Amount,
    pub sales: Amount,
    pub refunds: Amount,
    /// topups + sales − refunds: what the till should hold, or the app account have received.
    pub net: Amount,
}

/// Tenders and refund destinations that are money coming into or out of the till.
fn is_money(method: &str) -> bool {
    !matches!(method, "wallet" | "voucher" | "forfeited")
}

fn add(a: Amount, b: Amount) -> Result<Amount, ReportError> {
    a.checked_add(b).ok_or(ReportError::Overflow)
}

fn sub(a: Amount, b: Amount) -> Result<Amount, ReportError> {
    a.checked_sub(b).ok_or(ReportError::Overflow)
}

/// One shop's report from the store's figures.
pub fn shop_till(shop: &ShopInfo, f: &TillFigures) -> Result<ShopTill, ReportError> {
    let mut topups = Topups::default();
    let mut drawer: BTreeMap<String, [Amount; 3]> = BTreeMap::new();
    for t in &f.topups {
        let credited = add(t.paid, t.bonus)?;
        topups.count += t.count;
        topups.paid = add(topups.paid, t.paid)?;
        topups.bonus = add(topups.bonus, t.bonus)?;
        topups.credited = add(topups.credited, credited)?;
        topups.by_method.push(TopupLine {
            method: t.method.clone(),
            count: t.count,
            paid: t.paid,
            bonus: t.bonus,
            credited,
            as_vouchers: t.vouchers,
            voucher_credit: add(t.voucher_paid, t.voucher_bonus)?,
        });
        let d = drawer.entry(t.method.clone()).or_default();
        d[0] = add(d[0], t.paid)?;
    }
    let mut vouchers = VouchersRedeemed::default();
    let mut by_tender = Vec::with_capacity(f.tenders.len());
    for t in &f.tenders {
        by_tender.push(TenderLine {
            tender: t.tender.clone(),
            count: t.count,
            amount: t.amount,
        });
        if t.tender == "voucher" {
            vouchers = VouchersRedeemed {
                count: t.count,
                vouchers: t.vouchers,
                amount: t.amount,
                paid: t.paid,
                bonus: t.bonus,
            };
        }
        if is_money(&t.tender) {
            let d = drawer.entry(t.tender.clone()).or_default();
            d[1] = add(d[1], t.amount)?;
        }
    }
    let mut refunds = Refunds {
        count: f.refunds,
        amount: f.refunds_total,
        by_tender: Vec::with_capacity(f.refunded.len()),
    };
    for (tender, amount) in &f.refunded {
        refunds.by_tender.push(RefundLine {
            tender: tender.clone(),
            amount: *amount,
        });
        if is_money(tender) {
            let d = drawer.entry(tender.clone()).or_default();
            d[2] = add(d[2], *amount)?;
        }
    }
    let drawer = drawer
        .into_iter()
        .map(|(method, [topups, sales, refunds])| {
            Ok(DrawerLine {
                method,
                topups,
                sales,
                refunds,
                net: sub(add(topups, sales)?, refunds)?,
            })
        })
        .collect::<Result<Vec<_>, ReportError>>()?;
    Ok(ShopTill {
        shop: shop.code.clone(),
        name: shop.name.clone(),
        cooperative: shop.cooperative.clone(),
        topups,
        sales: Sales {
            count: f.sales,
            total: f.sales_total,
            by_tender,
        },
        refunds,
        vouchers_redeemed: vouchers,
        drawer,
    })
}

/// The till report of the shops `filter` picks on `date`. `None` when it names a shop that
/// does not exist; a cooperative without shops gives an empty report.
pub async fn till(
    store: &dyn Store,
    date: NaiveDate,
    filter: &ShopFilter,
) -> Result<Option<TillReport>, ReportError> {
    let shops: Vec<ShopInfo> = store
        .shops()
        .await?
        .into_iter()
        .filter(|s| match filter {
            ShopFilter::All => true,
            ShopFilter::Cooperative(c) => s.cooperative == *c,
            ShopFilter::Shop(code) => s.code == *code,
        })
        .collect();
    if shops.is_empty() && matches!(filter, ShopFilter::Shop(_)) {
        return Ok(None);
    }
    let mut report = TillReport {
        date,
        shops: Vec::with_capacity(shops.len()),
        total: TillTotal::default(),
    };
    for shop in &shops {
        // A shop listed a moment ago exists still: shops are never deleted.
        let figures = store
            .till_figures(&shop.code, date)
            .await?
            .unwrap_or_default();
        report.shops.push(shop_till(shop, &figures)?);
    }
    report.total = total_of(&report.shops)?;
    Ok(Some(report))
}

/// Adds `amount` to the line keyed `key` of `lines`, appending the line when it is new.
fn merge<T>(
    lines: &mut Vec<T>,
    key: impl Fn(&T) -> &str,
    line: &T,
    add_into: impl Fn(&mut T, &T) -> Result<(), ReportError>,
) -> Result<(), ReportError>
where
    T: Clone,
{
    match lines.iter_mut().find(|l| key(l) == key(line)) {
        Some(l) => add_into(l, line),
        None => {
            lines.push(line.clone());
            Ok(())
        }
    }
}

/// The shops added up, each line by its method or tender (sorted by name).
pub fn total_of(shops: &[ShopTill]) -> Result<TillTotal, ReportError> {
    let mut t = TillTotal {
        shops: shops.len() as u64,
        ..TillTotal::default()
    };
    for s in shops {
        t.topups.count += s.topups.count;
        t.topups.paid = add(t.topups.paid, s.topups.paid)?;
        t.topups.bonus = add(t.topups.bonus, s.topups.bonus)?;
        t.topups.credited = add(t.topups.credited, s.topups.credited)?;
        for line in &s.topups.by_method {
            merge(
                &mut t.topups.by_method,
                |l| &l.method,
                line,
                |a, b| {
                    a.count += b.count;
                    a.paid = add(a.paid, b.paid)?;
                    a.bonus = add(a.bonus, b.bonus)?;
                    a.credited = add(a.credited, b.credited)?;
                    a.as_vouchers += b.as_vouchers;
                    a.voucher_credit = add(a.voucher_credit, b.voucher_credit)?;
                    Ok(())
                },
            )?;
        }
        t.sales.count += s.sales.count;
        t.sales.total = add(t.sales.total, s.sales.total)?;
        for line in &s.sales.by_tender {
            merge(
                &mut t.sales.by_tender,
                |l| &l.tender,
                line,
                |a, b| {
                    a.count += b.count;
                    a.amount = add(a.amount, b.amount)?;
                    Ok(())
                },
            )?;
        }
        t.refunds.count += s.refunds.count;
        t.refunds.amount = add(t.refunds.amount, s.refunds.amount)?;
        for line in &s.refunds.by_tender {
            merge(
                &mut t.refunds.by_tender,
                |l| &l.tender,
                line,
                |a, b| {
                    a.amount = add(a.amount, b.amount)?;
                    Ok(())
                },
            )?;
        }
        let v = &mut t.vouchers_redeemed;
        let w = &s.vouchers_redeemed;
        v.count += w.count;
        v.vouchers += w.vouchers;
        v.amount = add(v.amount, w.amount)?;
        v.paid = add(v.paid, w.paid)?;
        v.bonus = add(v.bonus, w.bonus)?;
        for line in &s.drawer {
            merge(
                &mut t.drawer,
                |l| &l.method,
                line,
                |a, b| {
                    a.topups = add(a.topups, b.topups)?;
                    a.sales = add(a.sales, b.sales)?;
                    a.refunds = add(a.refunds, b.refunds)?;
                    a.net = add(a.net, b.net)?;
                    Ok(())
                },
            )?;
        }
    }
    t.topups.by_method.sort_by(|a, b| a.method.cmp(&b.method));
    t.sales.by_tender.sort_by(|a, b| a.tender.cmp(&b.tender));
    t.refunds.by_tender.sort_by(|a, b| a.tender.cmp(&b.tender));
    t.drawer.sort_by(|a, b| a.method.cmp(&b.method));
    Ok(t)
}

/// The drawer's methods a CSV always has a column for, in this order; others follow.
const DRAWER_METHODS: [&str; 4] = ["cash", "wechat", "alipay", "bank"];

/// The report as CSV (UTF-8 with a byte-order mark, so that spreadsheet programs read the
/// Chinese right): one row per shop and a total row, headers in Chinese or English.
pub fn to_csv(report: &TillReport, english: bool) -> Result<Vec<u8>, csv::Error> {
    let mut methods: Vec<String> = DRAWER_METHODS.iter().map(|m| m.to_string()).collect();
    for line in &report.total.drawer {
        if !methods.contains(&line.method) {
            methods.push(line.method.clone());
        }
    }
    let mut out = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let mut header: Vec<String> = if english {
        [
            "Date",
            "Shop code",
            "Shop",
            "Top-ups",
            "Top-ups paid",
            "Bonus",
            "Credited",
            "Sales",
            "Sales total",
            "Refunds",
            "Refunded",
            "Vouchers redeemed",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect()
    } else {
        [
            "营业日",
            "门店代码",
            "门店",
            "充值笔数",
            "充值实收",
            "赠送",
            "到账",
            "销售笔数",
            "销售额",
            "退款笔数",
            "退款额",
            "券抵用",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect()
    };
    for m in &methods {
        header.push(if english {
            format!("Till net: {}", method_name(m, true))
        } else {
            format!("应收{}", method_name(m, false))
        });
    }
    out.write_record(&header)?;
    let date = report.date.to_string();
    let row = |code: &str,
               name: &str,
               topups: &Topups,
               sales: &Sales,
               refunds: &Refunds,
               vouchers: &VouchersRedeemed,
               drawer: &[DrawerLine]| {
        let mut r = vec![
            date.clone(),
            code.to_string(),
            name.to_string(),
            topups.count.to_string(),
            topups.paid.to_string(),
            topups.bonus.to_string(),
            topups.credited.to_string(),
            sales.count.to_string(),
            sales.total.to_string(),
            refunds.count.to_string(),
            refunds.amount.to_string(),
            vouchers.amount.to_string(),
        ];
        for m in &methods {
            let net = drawer
                .iter()
                .find(|d| &d.method == m)
                .map_or(Amount::ZERO, |d| d.net);
            r.push(net.to_string());
        }
        r
    };
    for s in &report.shops {
        out.write_record(row(
            &s.shop,
            &s.name,
            &s.topups,
            &s.sales,
            &s.refunds,
            &s.vouchers_redeemed,
            &s.drawer,
        ))?;
    }
    let t = &report.total;
    out.write_record(row(
        "",
        if english {
            "All shops"
        } else {
            "全部门店合计"
        },
        &t.topups,
        &t.sales,
        &t.refunds,
        &t.vouchers_redeemed,
        &t.drawer,
    ))?;
    out.into_inner().map_err(|e| e.into_error().into())
}

fn method_name(method: &str, english: bool) -> String {
    let (zh, en) = match method {
        "cash" => ("现金", "cash"),
        "wechat" => ("微信", "WeChat"),
        "alipay" => ("支付宝", "Alipay"),
        "bank" => ("银行", "bank"),
        other => (other, other),
    };
    if english { en } else { zh }.to_string()
}
