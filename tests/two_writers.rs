//! A command-line tool posting to the SQLite file while a server runs on it: the server's
//! writer must extend the chain from the database's head, not from the one it remembered.

use hongxin::app::{App, Settings};
use hongxin::domain::{
    Command, Delivery, NewCompany, NewCompound, NewCooperative, NewHousehold, NewShop, PayMethod,
    Receipt, TopUp,
};
use hongxin::money::Amount;

fn settings(dir: &std::path::Path) -> Settings {
    Settings {
        database: format!("sqlite://{}/t.db", dir.display()),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file: None,
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 16),
    }
}

async fn top_up(app: &App, paid: i64) -> i64 {
    let receipt = app
        .run(Command::TopUp(TopUp {
            shop: "S1".into(),
            household: "H1".into(),
            paid: Amount::from_yuan(paid),
            method: PayMethod::Cash,
            deliver: Delivery::Wallet,
            bonus: Default::default(),
        }))
        .await
        .expect("store")
        .expect("accepted");
    match receipt {
        Receipt::TopUp(t) => t.entry,
        other => panic!("not a top-up: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_on_the_same_file_does_not_break_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let server = App::open(&settings(dir.path())).await.unwrap();
    for command in [
        Command::CreateCooperative(NewCooperative {
            code: "COOP".into(),
            name: "合作社".into(),
        }),
        Command::CreateShop(NewShop {
            code: "S1".into(),
            name: "一号店".into(),
            cooperative: "COOP".into(),
        }),
        Command::CreateCompany(NewCompany {
            code: "K01".into(),
            name: "物业".into(),
        }),
        Command::CreateCompound(NewCompound {
            code: "HX01".into(),
            name: "小区".into(),
            company: "K01".into(),
            eligible: true,
        }),
        Command::CreateHousehold(NewHousehold {
            code: "H1".into(),
            compound: "HX01".into(),
            area_m2: "80.00".parse().unwrap(),
            name: None,
            building: None,
            grid: None,
        }),
    ] {
        server.run(command).await.unwrap().unwrap();
    }
    // The master data is in the chain: one entry each, no postings.
    let seeded = server.verify().await.unwrap().head_seq;
    assert_eq!(seeded, 5);
    assert_eq!(top_up(&server, 50).await, seeded + 1);
    // A tool opens the same file and posts while the server stays up.
    let tool = App::open(&settings(dir.path())).await.unwrap();
    assert_eq!(top_up(&tool, 50).await, seeded + 2);
    // The server posts next, chained after the tool's entry.
    assert_eq!(top_up(&server, 100).await, seeded + 3);
    let report = server.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.first_problem);
    assert_eq!(report.entries as i64, seeded + 3);
    let wallet = server.store.household("H1").await.unwrap().unwrap().wallets;
    assert_eq!(wallet[0].total, Amount::from_yuan(220));
}
