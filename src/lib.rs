//! 红心 hongxin: the ledger behind the Red Heart Property Alliance's two preferential policies —
//! 居民购物50元换55元 (pay 50, get 55 of shopping credit at the cooperative's shops) and
//! 合作社盈利用物业 (the cooperative's profit pays toward residents' property fees).

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod export;
pub mod fees;
pub mod http;
pub mod ledger;
pub mod money;
pub mod openapi;
pub mod policy;
pub mod reports;
pub mod store;
pub mod voucher;
pub mod web;
