//! Fuzzing, proptest-driven and bounded: the parsers that meet untrusted input get arbitrary
//! and mutated input, and must never panic and never accept what they should refuse.
//!
//! - the amount parser (`Amount::parse`): anything accepted is plain decimal with at most two
//!   places and reads back to itself;
//! - the voucher code parser (`VoucherCode::verify`): only the issued code verifies, however it
//!   is cased or hyphenated; any other input is refused without a panic;
//! - the policy parser (`PolicySet::from_sources`): mutated copies of the shipped policies either
//!   load or fail with an error naming the file;
//! - JSON command decoding: arbitrary JSON bodies posted to the money routes of a running server
//!   are answered 201 or a 4xx problem+json, never 5xx, and a refusal posts nothing.
//!
//! Each target runs a fixed number of cases (`FUZZ_CASES`, default 256; 64 for the HTTP
//! target) so `cargo test` stays quick; raise it for a longer run. Failures found are shrunk and
//! kept in `tests/fuzz.proptest-regressions` (committed), and replayed first on every later run.
//! The corpora (committed, `tests/fuzz/corpus/`) are replayed in full on every run too: the
//! amounts and the JSON command bodies (one `path<TAB>body` a line) that once mattered or sit on
//! an edge; the policy target's corpus is the shipped policies, the voucher target's the codes a
//! fresh key ring issues. Add a line when a bug is found.

mod http_support;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use hongxin::money::Amount;
use hongxin::policy::PolicySet;
use hongxin::voucher::{KeyRing, VoucherCode, VoucherCodeError};
use http_support::{TestApp, CASHIER_S1};

fn cases(default: u32) -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// amounts
// ---------------------------------------------------------------------------------------------

/// Strings made mostly of what amounts are made of, so the parser's edges are reached.
fn amount_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+0-9.eE ]{0,24}",
        "-?[0-9]{0,20}(\\.[0-9]{0,4})?",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn amount_parser(s in amount_like()) {
        amount_property(&s)?;
    }
}

/// What the amount parser must hold for any input.
fn amount_property(s: &str) -> Result<(), TestCaseError> {
    if let Ok(a) = Amount::parse(s) {
        // Accepted: an optional minus, digits, and at most two decimals after a dot.
        let body = s.strip_prefix('-').unwrap_or(s);
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        prop_assert!(
            !whole.is_empty() && whole.bytes().all(|b| b.is_ascii_digit()),
            "{s:?}"
        );
        prop_assert!(
            frac.len() <= 2 && frac.bytes().all(|b| b.is_ascii_digit()),
            "{s:?}"
        );
        prop_assert!(!body.ends_with('.'), "{s:?}");
        // And it reads back to itself.
        prop_assert_eq!(Amount::parse(&a.to_string()), Ok(a));
    }
    Ok(())
}

fn corpus(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn amount_corpus() {
    let text = corpus("amounts.txt");
    let mut accepted = 0;
    for line in text.lines() {
        amount_property(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        accepted += usize::from(Amount::parse(line).is_ok());
    }
    // The corpus holds both sides of the edge.
    assert!(
        accepted >= 5 && accepted < text.lines().count(),
        "{accepted}"
    );
    for (text, ok) in [
        ("1.55", true),
        ("1.555", false),
        ("１２.３４", false),
        ("+1.55", false),
    ] {
        assert_eq!(Amount::parse(text).is_ok(), ok, "{text:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// voucher codes
// ---------------------------------------------------------------------------------------------

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(KeyRing::generate)
}

/// An edit to a code as typed: characters replaced, inserted or deleted.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, char),
    Insert(usize, char),
    Delete(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        proptest::char::range('0', 'Z'),
        Just('-'),
        Just(' '),
        any::<char>()
    ];
    prop_oneof![
        (0usize..40, ch.clone()).prop_map(|(i, c)| Edit::Replace(i, c)),
        (0usize..40, ch).prop_map(|(i, c)| Edit::Insert(i, c)),
        (0usize..40).prop_map(Edit::Delete),
    ]
}

fn apply(code: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    for e in edits {
        match *e {
            Edit::Replace(i, c) if !chars.is_empty() => {
                let i = i % chars.len();
                chars[i] = c;
            }
            Edit::Insert(i, c) => {
                let i = i % (chars.len() + 1);
                chars.insert(i, c);
            }
            Edit::Delete(i) if !chars.is_empty() => {
                let i = i % chars.len();
                chars.remove(i);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// What the parser reads of a code: its symbols, after case folding and the look-alike rules
/// (hyphens and white space are ignored).
fn symbols(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn voucher_code_parser(serial in 1u64..(1 << 48), edits in proptest::collection::vec(edit(), 0..4), lower in any::<bool>()) {
        let issued = VoucherCode::issue(ring(), serial).encode();
        let typed = apply(&issued, &edits);
        let typed = if lower { typed.to_lowercase() } else { typed };
        match VoucherCode::verify(ring(), &typed) {
            // Only the issued code verifies, as the same code.
            Ok(code) => {
                prop_assert_eq!(code.serial(), serial);
                prop_assert_eq!(symbols(&typed), symbols(&issued));
            }
            Err(VoucherCodeError::Malformed | VoucherCodeError::Typo | VoucherCodeError::Invalid) => {
                prop_assert_ne!(symbols(&typed), symbols(&issued), "the issued code was refused: {}", typed);
            }
        }
    }

    #[test]
    fn voucher_code_parser_arbitrary(s in any::<String>()) {
        // Random text: never a panic, and (a 56-bit tag) never a valid code.
        prop_assert!(VoucherCode::verify(ring(), &s).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// policies
// ---------------------------------------------------------------------------------------------

fn shipped_policies() -> &'static Vec<(String, String)> {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
        let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
            .expect("policies/")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).expect("policy file"),
                )
            })
            .collect();
        files.sort();
        files
    })
}

/// An edit to a policy file's text.
#[derive(Clone, Debug)]
enum PolicyEdit {
    DropLine(usize),
    DuplicateLine(usize),
    /// Replaces the value after the `=` of a line.
    SetValue(usize, String),
    Splice(usize, String),
}

fn policy_edit() -> impl Strategy<Value = PolicyEdit> {
    let value = prop_oneof![
        Just("\"\"".to_string()),
        Just("\"-1.00\"".to_string()),
        Just("\"0\"".to_string()),
        Just("\"1e3\"".to_string()),
        Just("99999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("\"2026-02-30\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        "\"[0-9.]{0,8}\"",
        any::<String>(),
    ];
    prop_oneof![
        (0usize..64).prop_map(PolicyEdit::DropLine),
        (0usize..64).prop_map(PolicyEdit::DuplicateLine),
        (0usize..64, value).prop_map(|(i, v)| PolicyEdit::SetValue(i, v)),
        (0usize..4096, "[\\[\\]=\"a-z0-9 .\\n#-]{0,12}")
            .prop_map(|(i, s)| PolicyEdit::Splice(i, s)),
    ]
}

fn edit_policy(text: &str, edits: &[PolicyEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for e in edits {
        if lines.is_empty() {
            break;
        }
        match e {
            PolicyEdit::DropLine(i) => {
                let i = i % lines.len();
                lines.remove(i);
            }
            PolicyEdit::DuplicateLine(i) => {
                let i = i % lines.len();
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            PolicyEdit::SetValue(i, v) => {
                let i = i % lines.len();
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {v}");
                }
            }
            PolicyEdit::Splice(at, s) => {
                let mut joined = lines.join("\n");
                let mut at = at % (joined.len() + 1);
                while !joined.is_char_boundary(at) {
                    at -= 1;
                }
                joined.insert_str(at, s);
                lines = joined.lines().map(str::to_string).collect();
            }
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    #[test]
    fn policy_parser(file in 0usize..3, edits in proptest::collection::vec(policy_edit(), 1..4)) {
        let files = shipped_policies();
        let (name, text) = &files[file % files.len()];
        let edited = edit_policy(text, &edits);
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| if n == name { (n.as_str(), edited.as_str()) } else { (n.as_str(), t.as_str()) })
            .collect();
        match PolicySet::from_sources(&sources) {
            Ok(set) => prop_assert!(!set.is_empty()),
            // Every complaint names a file (start-up stops with the file, line and reason).
            Err(e) => {
                let message = e.to_string();
                prop_assert!(files.iter().any(|(n, _)| message.contains(n.as_str())), "{}", message);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON command decoding, through a running server
// ---------------------------------------------------------------------------------------------

/// Keys the money routes read, and some they do not.
const KEYS: &[&str] = &[
    "household",
    "paid",
    "method",
    "deliver",
    "amount",
    "tenders",
    "type",
    "code",
    "lines",
    "sku",
    "qty",
    "category",
    "date",
    "memo",
    "shop",
    "extra",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("H1".to_string()),
            Just("cash".to_string()),
            Just("wallet".to_string()),
            Just("voucher".to_string()),
            Just("APPLE".to_string()),
            Just("50.00".to_string()),
            Just("2026-11-16".to_string()),
            "-?[0-9]{1,20}(\\.[0-9]{0,3})?",
            any::<String>(),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |pairs| {
                    let mut m = Map::new();
                    for (k, v) in pairs {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }
            ),
        ]
    })
}

struct Server {
    runtime: tokio::runtime::Runtime,
    app: TestApp,
    /// One request at a time: a property compares the journal's head before and after its own.
    turn: std::sync::Mutex<()>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let app = runtime.block_on(TestApp::spawn());
        Server {
            runtime,
            app,
            turn: std::sync::Mutex::new(()),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn json_command_decoding(route in 0usize..4, body in json_value()) {
        let path = ["/v1/topups", "/v1/sales", "/v1/expenses", "/v1/sales/1/refunds"][route];
        command_property(path, &body)?;
    }
}

/// What the money routes must hold for any JSON body: 201 or a 4xx problem+json, never 5xx,
/// and a refusal posts nothing.
fn command_property(path: &str, body: &Value) -> Result<u16, TestCaseError> {
    let s = server();
    let _turn = s.turn.lock().unwrap_or_else(|e| e.into_inner());
    let (status, reply, head_before, head_after) = s.runtime.block_on(async {
        let before = s.app.head().await;
        let (status, reply, _) = s.app.post_keyed(CASHIER_S1, path, body.clone()).await;
        (status, reply, before, s.app.head().await)
    });
    prop_assert!(
        status.as_u16() < 500,
        "{} {} → {} {}",
        path,
        body,
        status,
        reply
    );
    if status.is_client_error() {
        prop_assert!(
            reply["code"].is_string(),
            "{} {} → {} {}",
            path,
            body,
            status,
            reply
        );
        prop_assert_eq!(head_before, head_after, "a refused command posted");
    }
    Ok(status.as_u16())
}

#[test]
fn command_corpus() {
    let mut statuses = std::collections::BTreeSet::new();
    for line in corpus("commands.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let (path, body) = line.split_once('\t').expect("path<TAB>body");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{line}: {e}"));
        statuses.insert(command_property(path, &body).unwrap_or_else(|e| panic!("{line}: {e}")));
    }
    // Accepted and refused bodies both.
    assert!(
        statuses.contains(&201) && statuses.iter().any(|s| (400..500).contains(s)),
        "{statuses:?}"
    );
}
