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
    };
    for shop in &shops {
        // A shop listed a moment ago exists still: shops are never deleted.
        let figures = store
            .till_figures(&shop.code, date)
            .await?
            .unwrap_or_default();
        report.shops.push(shop_till(shop, &figures)?);
    }
    Ok(Some(report))
}
