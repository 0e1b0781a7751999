//! The HTTP test harness: a [`TestApp`] starts the application exactly as production does
//! (`App::open` with [`Settings`], then [`Running::start`] on port 0) on a fresh database of its
//! own, seeds the master data every test shares, creates bearer tokens with known secrets, and
//! offers typed helpers (`post`, `get`, `top_up`, `sell`, `wallet`, `head`…) over a real client.
//!
//! Test bodies take a `&TestApp` and the test functions build one per [`Backend`], so the same
//! body runs against every store implementation: SQLite in a temporary file, and PostgreSQL in a
//! fresh database of the test's own (see `pg_support`).
//!
//! Master data (business date 2026-11-16):
//! - cooperative `COOP` with shops `S1`, `S2`; cooperative `COOP2` with shop `T1`
//! - companies `K01`, `K02`
//! - compounds `HX01` (eligible, K01), `HX02` (eligible, K02), `HX11` (not eligible, K01)
//! - households `H1` (HX01, named 王小明), `H2` (HX01), `H3` (HX02), `H9` (HX11)
//! - catalogue of COOP and of COOP2: see [`CATALOGUE`]
//!
//! Tokens: one per role and scope, see the constants below; [`REVOKED`] was revoked.

#![allow(dead_code)] // each test binary uses its own part of the harness

// A test binary that uses both harnesses (tests/fees.rs) gets two copies, each with a cluster
// of its own if it runs PostgreSQL tests through both: wasteful but harmless.
#[allow(clippy::duplicate_mod)]
#[path = "../pg_support/mod.rs"]
pub mod pg_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use hongxin::app::{App, Settings};
use hongxin::domain::{
    CatalogItemInput, Command, NewCompany, NewCompound, NewCooperative, NewHousehold, NewShop,
    NewToken, Receipt, Role,
};
use hongxin::http::extract::token_hash;
use hongxin::http::{AppState, HttpConfig, Running};
use hongxin::money::Amount;

/// The business date every test runs on.
pub const TODAY: &str = "2026-11-16";
/// The top-up policy that ships in `policies/`.
pub const POLICY_V1: &str = "spend-50-get-55@1";

// Bearer token secrets, each created with a known role and scope.
pub const ADMIN: &str = "test-admin";
pub const CASHIER_S1: &str = "test-cashier-s1";
pub const CASHIER_S2: &str = "test-cashier-s2";
pub const CASHIER_T1: &str = "test-cashier-t1";
pub const ACCOUNTANT_COOP: &str = "test-accountant-coop";
pub const ACCOUNTANT_COOP2: &str = "test-accountant-coop2";
pub const COMPANY_K01: &str = "test-company-k01";
pub const COMPANY_K02: &str = "test-company-k02";
pub const RESIDENT_H1: &str = "test-resident-h1";
pub const RESIDENT_H3: &str = "test-resident-h3";
pub const REVOKED: &str = "test-revoked-cashier";

/// `(secret, role, scope)` of every token [`TestApp`] creates.
pub const TOKENS: &[(&str, Role, Option<&str>)] = &[
    (ADMIN, Role::Admin, None),
    (CASHIER_S1, Role::Cashier, Some("S1")),
    (CASHIER_S2, Role::Cashier, Some("S2")),
    (CASHIER_T1, Role::Cashier, Some("T1")),
    (ACCOUNTANT_COOP, Role::CoopAccountant, Some("COOP")),
    (ACCOUNTANT_COOP2, Role::CoopAccountant, Some("COOP2")),
    (COMPANY_K01, Role::Company, Some("K01")),
    (COMPANY_K02, Role::Company, Some("K02")),
    (RESIDENT_H1, Role::Resident, Some("H1")),
    (RESIDENT_H3, Role::Resident, Some("H3")),
    (REVOKED, Role::Cashier, Some("S1")),
];

/// `(sku, name, unit, price, cost)` of each cooperative's catalogue.
pub const CATALOGUE: &[(&str, &str, &str, &str, &str)] = &[
    ("APPLE", "苹果", "斤", "1.25", "0.80"),
    ("PEAR", "梨", "斤", "2.25", "1.45"),
    ("EGG", "鸡蛋", "个", "0.95", "0.60"),
    ("RICE", "大米", "袋", "37.80", "30.00"),
];

/// A store implementation the test bodies run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a request came back with: status, body (JSON, or the text as a JSON string when the
/// body is not JSON, or `Null` when empty) and headers.
pub type Reply = (StatusCode, Value, HeaderMap);

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    pub client: reqwest::Client,
    /// The application behind the server, for seeding and for checks below the API.
    pub app: App,
    /// The server's state: its metrics and limits, for checks below the API.
    pub state: AppState,
    pub backend: Backend,
    /// Token ids by secret.
    pub token_ids: BTreeMap<&'static str, i64>,
    running: Option<Running>,
    next_key: AtomicU64,
    /// The PostgreSQL database, dropped when the test ends.
    pg: Option<pg_support::TestDatabase>,
    /// Holds the database (or the key file) until the test ends.
    dir: tempfile::TempDir,
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .unwrap_or_else(|e| panic!("bad date literal {s:?}: {e}"))
}

fn amount(s: &str) -> Amount {
    Amount::parse(s).unwrap_or_else(|e| panic!("bad amount literal {s:?}: {e}"))
}

impl TestApp {
    /// SQLite, default HTTP settings.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Backend::Sqlite, HttpConfig::default()).await
    }

    /// SQLite with these HTTP settings (small quotas, a small body limit…).
    pub async fn spawn_config(config: HttpConfig) -> TestApp {
        TestApp::spawn_with(Backend::Sqlite, config).await
    }

    pub async fn spawn_with(backend: Backend, config: HttpConfig) -> TestApp {
        TestApp::spawn_with_policies(
            backend,
            config,
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into(),
        )
        .await
    }

    /// With the policies of another directory (a variation of the shipped ones).
    pub async fn spawn_with_policies(
        backend: Backend,
        config: HttpConfig,
        policies_dir: std::path::PathBuf,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (database, pg, key_file) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("t.db").display()),
                None,
                None,
            ),
            Backend::Postgres => {
                let db = pg_support::fresh_database().await;
                (db.url.clone(), Some(db), Some(dir.path().join("keys.toml")))
            }
        };
        let settings = Settings {
            database,
            policies_dir,
            key_file,
            today: Some(date(TODAY)),
        };
        let app = App::open(&settings)
            .await
            .expect("App::open on a fresh database");
        seed(&app).await;
        let mut token_ids = BTreeMap::new();
        for (secret, role, scope) in TOKENS {
            let id = created(
                &app,
                Command::CreateToken(NewToken {
                    parent: None,
                    hash: token_hash(secret),
                    role: *role,
                    scope: scope.map(str::to_string),
                    label: Some(format!("test {secret}")),
                    expires_at: None,
                }),
            )
            .await;
            token_ids.insert(*secret, id);
        }
        created(
            &app,
            Command::RevokeToken {
                id: token_ids[REVOKED],
            },
        )
        .await;

        let state = AppState::new(app.clone(), config);
        let running = Running::start(state.clone(), "127.0.0.1:0")
            .await
            .expect("start the server on port 0");
        let base = format!("http://{}", running.addr);
        TestApp {
            base,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("HTTP client"),
            app,
            state,
            backend,
            token_ids,
            running: Some(running),
            next_key: AtomicU64::new(1),
            pg,
            dir,
        }
    }

    /// Stops the server, letting requests in flight finish.
    pub async fn shutdown(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("graceful shutdown");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The database URL the app was opened on, for checks below the API.
    pub fn database_url(&self) -> String {
        match &self.pg {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("t.db").display()),
        }
    }

    /// A fresh Idempotency-Key, unique within this app.
    pub fn key(&self) -> String {
        format!("k-{}", self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    /// Any request; `body` is sent as JSON.
    pub async fn request(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        reply(req.send().await.expect("request sent")).await
    }

    /// A request with a raw body and content type (for malformed and oversized bodies).
    pub async fn request_raw(
        &self,
        method: Method,
        token: Option<&str>,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        reply(req.send().await.expect("request sent")).await
    }

    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> Reply {
        self.request(
            Method::POST,
            Some(token),
            path,
            Some(&body),
            idempotency_key,
        )
        .await
    }

    /// A POST with a fresh Idempotency-Key.
    pub async fn post_keyed(&self, token: &str, path: &str, body: Value) -> Reply {
        let key = self.key();
        self.post(token, path, body, Some(&key)).await
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.request(Method::GET, Some(token), path, None, None)
            .await
    }

    /// A GET whose answer must be 200; its body.
    pub async fn get_ok(&self, token: &str, path: &str) -> Value {
        let (status, body, _) = self.get(token, path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A top-up by `token` (a cashier), paid in cash; asserts 201 and returns the receipt.
    pub async fn top_up(&self, token: &str, household: &str, paid: &str, deliver: &str) -> Value {
        let (status, body, _) = self
            .post_keyed(
                token,
                "/v1/topups",
                json!({ "household": household, "paid": paid, "method": "cash", "deliver": deliver }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "top-up {household} {paid} {deliver}: {body}"
        );
        body
    }

    /// A voucher of `paid` + bonus for `household`, issued at S1; its printed code.
    pub async fn voucher(&self, household: &str, paid: &str) -> String {
        let receipt = self.top_up(CASHIER_S1, household, paid, "voucher").await;
        receipt["voucher"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no voucher code in {receipt}"))
            .to_string()
    }

    /// POSTs `(token, path, body, Idempotency-Key)` all at once, released together by a
    /// barrier; the replies in the order given.
    pub async fn concurrently(
        &self,
        requests: Vec<(&str, String, Value, Option<String>)>,
    ) -> Vec<Reply> {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(token, path, body, key)| {
                let mut req = self
                    .client
                    .post(self.url(&path))
                    .bearer_auth(token)
                    .json(&body);
                if let Some(k) = key {
                    req = req.header("Idempotency-Key", k);
                }
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    reply(req.send().await.expect("request sent")).await
                })
            })
            .collect();
        let mut replies = Vec::with_capacity(tasks.len());
        for t in tasks {
            replies.push(t.await.expect("request task"));
        }
        replies
    }

    /// Sends `head` (request line and headers, without the blank line) and `body` over a
    /// fresh TCP connection with `Transfer-Encoding: chunked`, which the client cannot do
    /// without a streams feature; the status and the raw response text.
    pub async fn chunked(&self, head: &str, body: &[u8]) -> (StatusCode, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "{head}\r\nHost: {addr}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for chunk in body.chunks(100) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        stream.write_all(&request).await.expect("write request");
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .expect("read response");
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        (status, text)
    }

    /// A sale with a fresh Idempotency-Key; the raw reply. A sale that spends a household's
    /// wallet and names no `resident` is sent with the household card's link, as a till that
    /// scanned it would.
    pub async fn sell(&self, token: &str, sale: Value) -> Reply {
        let sale = self.with_card(sale).await;
        self.post_keyed(token, "/v1/sales", sale).await
    }

    /// The household card's signed link, as scanned at a till.
    pub async fn card(&self, household: &str) -> String {
        let link = self
            .get_ok(ADMIN, &format!("/v1/households/{household}/link"))
            .await;
        link["url"].as_str().expect("link url").to_string()
    }

    /// `sale` with the household card's link as its `resident` proof, when it spends a wallet
    /// and has none.
    pub async fn with_card(&self, mut sale: Value) -> Value {
        let spends_wallet = sale["tenders"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["type"] == json!("wallet")));
        if spends_wallet && sale.get("resident").is_none() {
            if let Some(h) = sale["household"].as_str().map(str::to_string) {
                if self.get(ADMIN, &format!("/v1/households/{h}/link")).await.0 == StatusCode::OK {
                    sale["resident"] = json!({ "card": self.card(&h).await });
                }
            }
        }
        sale
    }

    /// A sale that must succeed; its receipt.
    pub async fn sell_ok(&self, token: &str, sale: Value) -> Value {
        let (status, body, _) = self.sell(token, sale.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "sale {sale}: {body}");
        body
    }

    /// The household as an admin sees it.
    pub async fn household(&self, household: &str) -> Value {
        self.get_ok(ADMIN, &format!("/v1/households/{household}"))
            .await
    }

    /// The household's wallet over all cooperatives, as an admin sees it.
    pub async fn wallet(&self, household: &str) -> Value {
        self.household(household).await["wallet"].clone()
    }

    /// Sequence of the journal's newest entry.
    pub async fn head(&self) -> i64 {
        let head = self.get_ok(ADMIN, "/v1/audit/head").await;
        head["seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("no seq in {head}"))
    }

    /// Asserts the journal verifies: hash chain and balances.
    pub async fn assert_verifies(&self) {
        let v = self.get_ok(ADMIN, "/v1/audit/verify").await;
        assert_eq!(v["ok"], json!(true), "audit verify: {v}");
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("response body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body, headers)
}

/// The `content-type` header, or "".
pub fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Asserts a problem+json answer with this status, code and (when given) field.
#[track_caller]
pub fn assert_problem(reply: &Reply, status: StatusCode, code: &str, field: Option<&str>) {
    let (got, body, headers) = reply;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(
        content_type(headers),
        "application/problem+json",
        "content type of {body}"
    );
    assert_eq!(body["code"], json!(code), "code of {body}");
    assert_eq!(
        body["status"],
        json!(status.as_u16()),
        "status field of {body}"
    );
    assert_eq!(
        body["type"],
        json!(format!("urn:hongxin:problem:{code}")),
        "type of {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "detail of {body}"
    );
    if let Some(f) = field {
        assert_eq!(body["field"], json!(f), "field of {body}");
    }
}

/// Runs a command as the operator and returns the id it created.
async fn created(app: &App, command: Command) -> i64 {
    let what = format!("{command:?}");
    match app.run(command).await {
        Ok(Ok(Receipt::Created(c))) => c.id,
        other => panic!("seeding {what}: {other:?}"),
    }
}

pub async fn seed(app: &App) {
    for (code, name) in [("COOP", "红心农场合作社"), ("COOP2", "第二合作社")] {
        created(
            app,
            Command::CreateCooperative(NewCooperative {
                code: code.into(),
                name: name.into(),
            }),
        )
        .await;
    }
    for (code, coop) in [("S1", "COOP"), ("S2", "COOP"), ("T1", "COOP2")] {
        let shop = NewShop {
            code: code.into(),
            name: format!("shop {code}"),
            cooperative: coop.into(),
        };
        created(app, Command::CreateShop(shop)).await;
    }
    for code in ["K01", "K02"] {
        created(
            app,
            Command::CreateCompany(NewCompany {
                code: code.into(),
                name: format!("物业 {code}"),
            }),
        )
        .await;
    }
    for (code, company, eligible) in [
        ("HX01", "K01", true),
        ("HX02", "K02", true),
        ("HX11", "K01", false),
    ] {
        let compound = NewCompound {
            code: code.into(),
            name: format!("小区 {code}"),
            company: company.into(),
            eligible,
        };
        created(app, Command::CreateCompound(compound)).await;
    }
    for (code, compound, name) in [
        ("H1", "HX01", Some("王小明")),
        ("H2", "HX01", None),
        ("H3", "HX02", None),
        ("H9", "HX11", None),
    ] {
        let household = NewHousehold {
            code: code.into(),
            compound: compound.into(),
            area_m2: "87.35".parse().expect("area"),
            name: name.map(str::to_string),
            building: None,
            grid: None,
        };
        created(app, Command::CreateHousehold(household)).await;
    }
    for coop in ["COOP", "COOP2"] {
        for (sku, name, unit, price, cost) in CATALOGUE {
            let item = CatalogItemInput {
                sku: (*sku).into(),
                name: (*name).into(),
                unit: (*unit).into(),
                price: amount(price),
                cost: amount(cost),
                barcode: None,
            };
            created(
                app,
                Command::UpsertCatalogItem {
                    cooperative: coop.into(),
                    item,
                },
            )
            .await;
        }
    }
}
