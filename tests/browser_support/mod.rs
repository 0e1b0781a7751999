//! Runs the web pages in a real headless Chromium, driven through chromedriver (WebDriver), against
//! the real `hongxin serve` binary on a copy of a small demo database.
//!
//! Each test gets its own database copy, server, chromedriver and browser profile; tests take
//! turns (one browser at a time on a 2-core machine). Without Chromium and chromedriver a test
//! prints that it was SKIPPED and passes — unless `CI` is set, where a missing browser fails.
//! `HONGXIN_CHROMIUM` and `HONGXIN_CHROMEDRIVER` point at other binaries.

#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
/// The business date of every browser test: the demo's history runs from 1 September, and
/// September and October are billed, paid, closed and partly settled.
pub const TODAY: &str = "2026-11-20";
/// A closed month of the demo, with a full statement.
pub const CLOSED_MONTH: &str = "2026-10";
/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(15);

/// What a test drives: the browser, the server's address, and tokens for each role.
pub struct Ctx {
    pub browser: Client,
    pub base: String,
    /// Admin token, for checking what the pages did through the API.
    pub admin: String,
    /// A cashier at shop S1.
    pub cashier: String,
    /// The cooperative COOP's accountant.
    pub accountant: String,
    /// Staff of property company K01.
    pub company: String,
    /// Where the browser saves downloads.
    pub downloads: PathBuf,
    pub dir: PathBuf,
    http: reqwest::Client,
}

struct Binaries {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn binaries() -> Option<Binaries> {
    let find = |var: &str, default: &str| {
        let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
        path.is_file().then_some(path)
    };
    Some(Binaries {
        chromium: find("HONGXIN_CHROMIUM", "/usr/bin/chromium")?,
        chromedriver: find("HONGXIN_CHROMEDRIVER", "/usr/bin/chromedriver")?,
    })
}

/// Runs one browser test, or says clearly that it was skipped.
pub fn browser_test<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    browser_test_at(name, TODAY, test)
}

/// Like [`browser_test`], with the server's business date at `today` (on or after [`TODAY`],
/// the demo's last day: the business clock never goes back).
pub fn browser_test_at<F, Fut>(name: &str, today: &str, test: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(bins) = binaries() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "browser test {name}: Chromium or chromedriver is missing and CI is set \
                 (apt-get install chromium chromium-driver)"
            );
        }
        eprintln!(
            "SKIPPED browser test {name}: Chromium and chromedriver are not installed \
             (apt-get install chromium chromium-driver, or set HONGXIN_CHROMIUM and \
             HONGXIN_CHROMEDRIVER)"
        );
        return;
    };
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());

    let dir = demo_copy();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let admin = create_token(dir.path(), today, &["--role", "admin"]);
        let cashier = create_token(
            dir.path(),
            today,
            &["--role", "cashier", "--shop", "S1", "--label", "王芳"],
        );
        let accountant = create_token(
            dir.path(),
            today,
            &["--role", "coop_accountant", "--cooperative", "COOP"],
        );
        let company = create_token(
            dir.path(),
            today,
            &["--role", "company", "--company", "K01"],
        );
        let server = Server::start(dir.path(), today);
        let driver = Driver::start(&bins, dir.path());
        let downloads = dir.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("downloads dir");
        let browser = driver.session(&bins, dir.path(), &downloads).await;
        let ctx = Ctx {
            browser: browser.clone(),
            base: server.base.clone(),
            admin,
            cashier,
            accountant,
            company,
            downloads,
            dir: dir.path().to_path_buf(),
            http: reqwest::Client::new(),
        };
        test(ctx).await;
        let _ = browser.close().await;
        drop(driver);
        drop(server);
    });
}

/// One small demo database (300 households, two closed months), built once per test binary
/// and copied for each test.
fn demo_copy() -> TempDir {
    static FIXTURE: OnceLock<TempDir> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| {
        let dir = TempDir::new().expect("temp dir");
        let out = hongxin(
            dir.path(),
            TODAY,
            &["demo", "--households", "300", "--months", "2"],
        )
        .output()
        .expect("run hongxin demo");
        assert!(
            out.status.success(),
            "hongxin demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    });
    let dir = TempDir::new().expect("temp dir");
    for entry in std::fs::read_dir(fixture.path()).expect("fixture") {
        let entry = entry.expect("fixture entry");
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    dir
}

fn hongxin(dir: &Path, today: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hongxin"));
    c.current_dir(dir)
        .env_remove("HONGXIN_DATABASE")
        .env_remove("HONGXIN_KEY_FILE")
        .env_remove("HONGXIN_CONFIG")
        .env_remove("HONGXIN_POLICIES")
        .env_remove("HONGXIN_LISTEN")
        .env_remove("HONGXIN_PUBLIC_URL")
        .env("HONGXIN_TODAY", today)
        .env("RUST_LOG", "warn")
        .args(["--policies", POLICIES, "--database", "sqlite://demo.db"])
        .args(args);
    c
}

fn create_token(dir: &Path, today: &str, args: &[&str]) -> String {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = hongxin(dir, today, &all)
        .output()
        .expect("hongxin token create");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Kills the child when dropped, so a failing test leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Server {
    base: String,
    _child: Killed,
}

impl Server {
    fn start(dir: &Path, today: &str) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let child = hongxin(dir, today, &["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hongxin serve");
        let child = Killed(child);
        wait_for_port(port, "hongxin serve");
        Server {
            base: format!("http://{listen}"),
            _child: child,
        }
    }
}

struct Driver {
    url: String,
    _child: Killed,
}

impl Driver {
    fn start(bins: &Binaries, dir: &Path) -> Driver {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("driver log");
        let child = Command::new(&bins.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let child = Killed(child);
        wait_for_port(port, "chromedriver");
        Driver {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }

    async fn session(&self, bins: &Binaries, dir: &Path, downloads: &Path) -> Client {
        let profile = dir.join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": bins.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--window-size=1024,900",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        Client::with_capabilities_and_connector(&self.url, &caps, connector)
            .await
            .expect("start a Chromium session through chromedriver")
    }
}

impl Ctx {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens a page of the server.
    pub async fn open(&self, path: &str) {
        self.browser.goto(&self.url(path)).await.expect("navigate");
    }

    /// The element, once it is on the page.
    pub async fn find(&self, css: &str) -> Element {
        self.browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css} on the page: {e}"))
    }

    /// Waits until the element is shown (not `hidden`, not display:none).
    pub async fn visible(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            let e = self.find(css).await;
            if e.is_displayed().await.unwrap_or(false) {
                return e;
            }
            assert!(started.elapsed() < WAIT, "{css} never became visible");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clears an input and types into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.visible(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Clicks the element, first scrolled to the middle of the viewport as a person would
    /// (a sticky bar at the bottom, such as the till's sums, must not be in the way).
    pub async fn click(&self, css: &str) {
        let e = self.visible(css).await;
        self.browser
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'})",
                vec![serde_json::to_value(&e).expect("element")],
            )
            .await
            .expect("scroll into view");
        e.click().await.expect("click");
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.visible(css)
            .await
            .select_by_value(value)
            .await
            .expect("select");
    }

    /// The element's text, trimmed.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .expect("text")
            .trim()
            .to_string()
    }

    /// Waits until the element's text satisfies `ok`, and returns it.
    pub async fn text_until(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let t = match self.browser.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default().trim().to_string(),
                Err(_) => String::new(),
            };
            if ok(&t) {
                return t;
            }
            assert!(
                started.elapsed() < WAIT,
                "{css} never showed what was expected; last text: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, js: &str, args: Vec<Value>) -> Value {
        self.browser.execute(js, args).await.expect("script")
    }

    /// Makes the page's viewport `width` × `height` CSS pixels (1366×768: a laptop till;
    /// 390×844: a phone), whatever the window's own frame takes.
    pub async fn viewport(&self, width: u32, height: u32) {
        // The window's frame (if any) takes some room: grow the window by what is missing, and
        // give a resize a moment to land before measuring again.
        let (mut outer_w, mut outer_h) = (width, height);
        let started = Instant::now();
        loop {
            self.browser
                .set_window_size(outer_w, outer_h)
                .await
                .expect("window size");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let inner = self
                .script("return [window.innerWidth, window.innerHeight]", vec![])
                .await;
            let (w, h) = (
                inner[0].as_u64().unwrap_or(0) as u32,
                inner[1].as_u64().unwrap_or(0) as u32,
            );
            if (w, h) == (width, height) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "the viewport stays {w}×{h}, not {width}×{height}"
            );
            outer_w = (outer_w + width).saturating_sub(w);
            outer_h = (outer_h + height).saturating_sub(h);
        }
    }

    /// Whether the whole element is inside the viewport as the page stands, without scrolling.
    pub async fn in_view(&self, css: &str) -> bool {
        let e = self.visible(css).await;
        let r = self
            .browser
            .execute(
                "const r = arguments[0].getBoundingClientRect(); \
                 return r.width > 0 && r.top >= 0 && r.left >= 0 && \
                 r.bottom <= window.innerHeight && r.right <= window.innerWidth;",
                vec![serde_json::to_value(&e).expect("element")],
            )
            .await
            .expect("script");
        r == json!(true)
    }

    /// Saves a screenshot of the viewport as `{temp}/hongxin-browser-shots/{name}.png`, for a
    /// person to look at; returns where.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let png = self.browser.screenshot().await.expect("screenshot");
        let dir = std::env::temp_dir().join("hongxin-browser-shots");
        std::fs::create_dir_all(&dir).expect("shots dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Types `keys` wherever the focus is, as a keyboard (or a keyboard-wedge scanner) does.
    pub async fn keys(&self, keys: &str) {
        use fantoccini::actions::InputSource;
        let mut actions = fantoccini::actions::KeyActions::new("keyboard".into());
        for c in keys.chars() {
            actions = actions
                .then(fantoccini::actions::KeyAction::Down { value: c })
                .then(fantoccini::actions::KeyAction::Up { value: c });
        }
        self.browser
            .perform_actions(actions)
            .await
            .expect("type keys");
    }

    /// Signs the browser in on a staff page's form with a token.
    pub async fn sign_in(&self, token: &str) {
        self.fill("#sign-in input[name=token]", token).await;
        self.click("#sign-in button[type=submit]").await;
        self.visible("#sign-out").await;
    }

    // ---- the API, to compare what the pages show with what the server reports -----------

    pub async fn api_get(&self, token: &str, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// The body of a GET as text (an SVG, a CSV).
    pub async fn api_get_text(&self, token: &str, path: &str) -> String {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn api_post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("Idempotency-Key", format!("test-{}", rand_key()))
            .json(&body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A raw request with the browser's cookies or none, for header checks.
    pub async fn raw_get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// Waits until a file whose name ends with `suffix` is completely downloaded.
    pub async fn downloaded(&self, suffix: &str) -> PathBuf {
        let started = Instant::now();
        loop {
            if let Ok(entries) = std::fs::read_dir(&self.downloads) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name.ends_with(suffix) && !name.ends_with(".crdownload") {
                        return e.path();
                    }
                }
            }
            assert!(started.elapsed() < WAIT, "no *{suffix} was downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The API's amount string as the pages show it (`HX.yuan`): `"1234.50"` → `"¥1,234.50"`.
pub fn yuan(v: &Value) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("amount must be a string: {v}"));
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    format!("{}¥{grouped}{frac}", if neg { "-" } else { "" })
}

fn rand_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
