//! Expenses come out of cash, except spoilage and shrinkage (损耗), which write goods off stock.

use hongxin::app::{App, Settings};
use hongxin::domain::{Command, Expense, NewCooperative, PayMethod};
use hongxin::money::Amount;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoilage_is_written_off_inventory_and_rent_is_paid_in_cash() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(&Settings {
        database: format!("sqlite://{}/t.db", dir.path().display()),
        policies_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        key_file: None,
        today: chrono::NaiveDate::from_ymd_opt(2026, 11, 16),
    })
    .await
    .unwrap();
    app.run(Command::CreateCooperative(NewCooperative {
        code: "COOP".into(),
        name: "合作社".into(),
    }))
    .await
    .unwrap()
    .unwrap();
    for (category, yuan) in [("rent", 800), ("spoilage", 35)] {
        app.run(Command::Expense(Expense {
            cooperative: "COOP".into(),
            category: category.into(),
            amount: Amount::from_yuan(yuan),
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 15).unwrap(),
            memo: None,
            method: PayMethod::Cash,
        }))
        .await
        .unwrap()
        .unwrap();
    }
    let balances = app.store.balances().await.unwrap();
    let get = |k: &str| balances.get(k).copied().unwrap_or(Amount::ZERO);
    assert_eq!(get("cooperative:COOP:expense:rent"), Amount::from_yuan(800));
    assert_eq!(
        get("cooperative:COOP:expense:spoilage"),
        Amount::from_yuan(35)
    );
    assert_eq!(get("cooperative:COOP:cash:cash"), Amount::from_yuan(-800));
    assert_eq!(get("cooperative:COOP:inventory"), Amount::from_yuan(-35));
    assert!(app.verify().await.unwrap().ok());
}
