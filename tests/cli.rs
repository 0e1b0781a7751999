//! The `hongxin` binary end to end: each test runs the built program in its own temporary
//! directory with a fixed business date, as an operator would from a shell.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
const TODAY: &str = "2026-11-20";
const DATABASE: &str = "sqlite://demo.db";

/// `hongxin` in `dir` against `demo.db` there, untouched by the caller's environment.
fn hongxin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hongxin"))
        .current_dir(dir)
        .env_remove("HONGXIN_DATABASE")
        .env_remove("HONGXIN_KEY_FILE")
        .env_remove("HONGXIN_CONFIG")
        .env_remove("HONGXIN_POLICIES")
        .env_remove("HONGXIN_LOG")
        .env_remove("RUST_LOG")
        .env("HONGXIN_TODAY", TODAY)
        .args(["--policies", POLICIES, "--database", DATABASE])
        .args(args)
        .output()
        .expect("run hongxin")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// One small demo database, built once and copied into each test's own directory.
fn demo_copy() -> TempDir {
    static FIXTURE: OnceLock<TempDir> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| {
        let dir = TempDir::new().unwrap();
        assert_ok(&hongxin(
            dir.path(),
            &["demo", "--households", "2000", "--weeks", "1"],
        ));
        dir
    });
    let dir = TempDir::new().unwrap();
    for entry in std::fs::read_dir(fixture.path()).unwrap() {
        let entry = entry.unwrap();
        // The database, its WAL files and its key file.
        if entry.file_name().to_string_lossy().starts_with("demo.db") {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// The number after `label` on a line of `hongxin verify`'s report.
fn report_number(report: &str, label: &str) -> i64 {
    report
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label} in {report}"))
}

#[test]
fn help_names_every_command_and_the_policy() {
    let o = hongxin(Path::new("."), &["--help"]);
    assert_ok(&o);
    let help = stdout(&o);
    assert!(help.contains("居民购物50元换55元"), "{help}");
    for command in [
        "serve", "demo", "verify", "token", "import", "keys", "vouchers",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "{command} missing from\n{help}"
        );
    }
}

#[test]
fn demo_builds_a_ledger_that_verifies() {
    let dir = TempDir::new().unwrap();
    let demo = hongxin(
        dir.path(),
        &["demo", "--households", "2000", "--weeks", "2"],
    );
    assert_ok(&demo);
    let out = stdout(&demo);
    assert!(out.contains("2000 households"), "{out}");
    assert!(out.contains("2026-11-07 to 2026-11-20"), "{out}");
    let tokens: Vec<&str> = out.lines().filter(|l| l.contains(" hx_")).collect();
    assert_eq!(
        tokens.len(),
        15,
        "admin, 3 cashiers, accountant, 8 companies, 1 resident, alliance:\n{out}"
    );
    assert!(
        tokens
            .iter()
            .any(|l| l.contains("company") && l.contains("K01")),
        "{out}"
    );
    assert!(
        tokens
            .iter()
            .any(|l| l.contains("resident") && l.contains("HX01-0001")),
        "{out}"
    );
    assert!(out.contains("hongxin verify"), "{out}");

    let verify = hongxin(dir.path(), &["verify"]);
    assert_ok(&verify);
    let report = stdout(&verify);
    let entries = report_number(&report, "entries");
    assert!(
        entries > 1_000,
        "two weeks of a 2,000-household demo post thousands of entries:\n{report}"
    );
    assert_eq!(report_number(&report, "head"), entries, "{report}");
    assert!(
        report_number(&report, "postings") >= 2 * entries,
        "{report}"
    );

    // A second demo over the first is refused unless forced.
    let again = hongxin(dir.path(), &["demo", "--households", "5", "--weeks", "1"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = hongxin(
        dir.path(),
        &["demo", "--households", "5", "--weeks", "1", "--force"],
    );
    assert_ok(&forced);
    assert!(
        stdout(&forced).contains("5 households"),
        "{}",
        stdout(&forced)
    );
}

/// A statement's JSON for `company` and `month`, from `hongxin statement`.
fn statement(dir: &Path, company: &str, month: &str) -> serde_json::Value {
    let o = hongxin(
        dir,
        &[
            "statement",
            "--company",
            company,
            "--month",
            month,
            "--format",
            "json",
        ],
    );
    assert_ok(&o);
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// A money field of a statement in fen; amounts are strings with two decimals, "-12.30".
fn fen(v: &serde_json::Value, path: &[&str]) -> i64 {
    let mut field = v;
    for key in path {
        field = &field[*key];
    }
    let text = field
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not an amount: {field}"));
    assert!(
        text.len() > 3 && text.as_bytes()[text.len() - 3] == b'.',
        "{text}"
    );
    text.replace('.', "").parse().unwrap()
}

#[test]
fn demo_months_are_billed_paid_closed_and_settled() {
    let dir = TempDir::new().unwrap();
    // One full month before the current one: October is billed, paid, and closed on 3 November.
    let demo = hongxin(
        dir.path(),
        &["demo", "--households", "300", "--months", "1"],
    );
    assert_ok(&demo);
    let out = stdout(&demo);
    assert!(out.contains("2026-10-01 to 2026-11-20"), "{out}");
    assert!(out.contains("(2 months × 8 companies)"), "{out}");
    assert!(out.contains("closed 2026-10"), "{out}");
    assert!(
        out.contains("hongxin statement --company K01 --month 2026-10"),
        "{out}"
    );
    assert!(
        out.contains("/v1/companies/K01/statements/2026-10"),
        "{out}"
    );

    let verify = hongxin(dir.path(), &["verify"]);
    assert_ok(&verify);
    let report = stdout(&verify);
    assert!(report_number(&report, "closes") >= 1, "{report}");

    // October, the closed month: residents paid, some ahead, some not yet.
    let october = statement(dir.path(), "K01", "2026-10");
    assert_eq!(october["ties_out"], true, "{october}");
    assert!(fen(&october, &["summary", "billed"]) > 0, "{october}");
    assert!(fen(&october, &["summary", "received"]) > 0, "{october}");
    assert!(fen(&october, &["summary", "prepaid"]) > 0, "{october}");
    assert!(
        fen(&october, &["summary", "arrears_this_month"]) > 0,
        "{october}"
    );
    // October's profit share, posted by the close on 3 November, is October's.
    let october_share = fen(&october["cooperatives"][0], &["allocated"]);
    assert!(october_share > 0, "{october}");
    assert_eq!(
        fen(&october, &["summary", "covered_by_cooperative"]),
        october_share,
        "{october}"
    );
    // November carries October's arrears and recovers some; it brings October's profit share
    // forward as owed by the cooperative, which has settled part of it.
    let november = statement(dir.path(), "K01", "2026-11");
    assert_eq!(november["ties_out"], true, "{november}");
    for line in ["arrears_brought_forward", "arrears_recovered"] {
        assert!(fen(&november, &["summary", line]) > 0, "{line}: {november}");
    }
    assert_eq!(fen(&november, &["summary", "covered_by_cooperative"]), 0);
    let coop = &november["cooperatives"][0];
    assert_eq!(coop["cooperative"], "COOP", "{november}");
    let (allocated, settled, outstanding) = (
        fen(coop, &["allocated"]),
        fen(coop, &["settled"]),
        fen(coop, &["outstanding"]),
    );
    assert_eq!(allocated, 0, "{november}");
    assert_eq!(fen(coop, &["opening"]), october_share, "{november}");
    assert!(settled > 0 && outstanding > 0, "{november}");
    assert_eq!(
        fen(coop, &["opening"]) + allocated - settled,
        outstanding,
        "{november}"
    );
}

/// Alters one posting behind the ledger's back, as an attacker with file access could.
fn tamper(db: &Path) {
    // Entry 30 posts (the demo's master data entries, which post nothing, come first).
    let sql = "DROP TRIGGER postings_are_immutable; \
               UPDATE postings SET amount = amount + 1 WHERE entry_id = 30 AND idx = 0;";
    let have_sqlite3 = Command::new("sqlite3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if have_sqlite3 {
        let o = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
        assert!(o.status.success(), "sqlite3: {}", stderr(&o));
        return;
    }
    // The store's own read pool is read-only, so open a fresh connection.
    let url = format!("sqlite://{}", db.display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
}

/// `verify --expect-head SEQ:HASH`: a head printed earlier passes while its entry is still in
/// the chain with that hash; a head the chain no longer reaches (cut short) or another hash
/// fails with exit status 1; a malformed head is a usage error.
#[test]
fn verify_expect_head_catches_a_journal_cut_short() {
    let dir = demo_copy();
    let verify = hongxin(dir.path(), &["verify"]);
    assert_ok(&verify);
    let report = stdout(&verify);
    let head = report
        .lines()
        .find_map(|l| l.strip_prefix("head"))
        .expect("a head line")
        .split_whitespace()
        .collect::<Vec<_>>();
    let (seq, hash): (i64, &str) = (head[0].parse().expect("seq"), head[1]);
    let ok = hongxin(
        dir.path(),
        &["verify", "--expect-head", &format!("{seq}:{hash}")],
    );
    assert_ok(&ok);
    let earlier = hongxin(
        dir.path(),
        &["verify", "--expect-head", &format!("{}:{hash}", seq - 1)],
    );
    assert_eq!(earlier.status.code(), Some(1), "{}", stderr(&earlier));
    assert!(
        stderr(&earlier).contains("now has hash"),
        "{}",
        stderr(&earlier)
    );
    let beyond = hongxin(
        dir.path(),
        &["verify", "--expect-head", &format!("{}:{hash}", seq + 1)],
    );
    assert_eq!(beyond.status.code(), Some(1), "{}", stderr(&beyond));
    assert!(stderr(&beyond).contains("cut short"), "{}", stderr(&beyond));
    let bad = hongxin(dir.path(), &["verify", "--expect-head", "12"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[test]
fn verify_names_the_tampered_entry() {
    let dir = demo_copy();
    assert_ok(&hongxin(dir.path(), &["verify"]));
    tamper(&dir.path().join("demo.db"));
    let o = hongxin(dir.path(), &["verify"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert!(err.contains("entry 30:"), "{err}");
    assert!(err.contains("hash does not match"), "{err}");
}

#[test]
fn token_create_prints_the_token_alone_and_checks_role_and_scope() {
    let dir = demo_copy();
    for args in [
        &["token", "create", "--role", "admin"][..],
        &[
            "token",
            "create",
            "--role",
            "cashier",
            "--shop",
            "S1",
            "--label",
            "S1 till 2",
        ],
        &[
            "token",
            "create",
            "--role",
            "resident",
            "--household",
            "HX01-0002",
        ],
    ] {
        let o = hongxin(dir.path(), args);
        assert_ok(&o);
        let out = stdout(&o);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {out}");
        let token = lines[0];
        assert!(token.starts_with("hx_") && token.len() == 3 + 64, "{token}");
        assert!(token[3..].bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    }

    let no_shop = hongxin(dir.path(), &["token", "create", "--role", "cashier"]);
    assert_eq!(no_shop.status.code(), Some(2));
    assert!(stdout(&no_shop).is_empty());
    assert!(stderr(&no_shop).contains("--shop"), "{}", stderr(&no_shop));

    let wrong_scope = hongxin(
        dir.path(),
        &["token", "create", "--role", "cashier", "--company", "K01"],
    );
    assert_eq!(
        wrong_scope.status.code(),
        Some(2),
        "{}",
        stderr(&wrong_scope)
    );
    let unknown_shop = hongxin(
        dir.path(),
        &["token", "create", "--role", "cashier", "--shop", "S9"],
    );
    assert_eq!(
        unknown_shop.status.code(),
        Some(2),
        "{}",
        stderr(&unknown_shop)
    );
    assert!(
        stderr(&unknown_shop).contains("S9"),
        "{}",
        stderr(&unknown_shop)
    );
    let bad_role = hongxin(dir.path(), &["token", "create", "--role", "root"]);
    assert_eq!(bad_role.status.code(), Some(2), "{}", stderr(&bad_role));
    assert!(stdout(&bad_role).is_empty());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn household_import_reports_every_bad_line_and_imports_nothing() {
    let dir = demo_copy();
    let bad = write(
        dir.path(),
        "bad.csv",
        "code,compound,area_m2,name\n\
         HX01-7001,HX01,87.35,王*\n\
         HX01-7002,HX99,97.09,\n\
         HX02-7003,HX02,60.00,李**\n\
         HX02-7004,HX02,8x.5,\n",
    );
    let o = hongxin(dir.path(), &["import", "households", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("line 3: compound: no compound HX99"), "{err}");
    assert!(err.contains("line 5: area_m2:"), "{err}");
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(
        !err.contains("line 2") && !err.contains("line 4"),
        "good rows are not reported: {err}"
    );

    // Had any row gone in, importing the corrected file would now clash with it.
    let good = write(
        dir.path(),
        "good.csv",
        "code,compound,area_m2,name\n\
         HX01-7001,HX01,87.35,王*\n\
         HX01-7002,HX01,97.09,\n\
         HX02-7003,HX02,60.00,李**\n\
         HX02-7004,HX02,85.50,\n",
    );
    let o = hongxin(
        dir.path(),
        &["import", "households", good.to_str().unwrap()],
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("imported 4 households"),
        "{}",
        stdout(&o)
    );
    // Every row is in now, so the same file again is refused line by line.
    let o = hongxin(
        dir.path(),
        &["import", "households", good.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 5: code: household HX02-7004 already exists"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn catalog_import_creates_then_updates_items() {
    let dir = demo_copy();
    let csv = write(
        dir.path(),
        "catalog.csv",
        "sku,name,unit,price,cost\n\
         N01,韭菜,把,2.50,1.40\n\
         N02,山药,斤,6.80,4.90\n\
         V01,大白菜,斤,1.30,0.80\n",
    );
    let o = hongxin(
        dir.path(),
        &[
            "import",
            "catalog",
            csv.to_str().unwrap(),
            "--cooperative",
            "COOP",
        ],
    );
    assert_ok(&o);
    // V01 is in the demo's catalogue already: its price is updated.
    assert!(
        stdout(&o).contains("imported 3 catalogue items for COOP"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("2 new, 1 updated"), "{}", stdout(&o));

    let bad = write(
        dir.path(),
        "bad.csv",
        "sku,name,unit,price,cost\nN03,香菜,把,1.205,0.50\n",
    );
    let o = hongxin(
        dir.path(),
        &[
            "import",
            "catalog",
            bad.to_str().unwrap(),
            "--cooperative",
            "COOP",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 2: price:"), "{}", stderr(&o));
    let o = hongxin(
        dir.path(),
        &[
            "import",
            "catalog",
            csv.to_str().unwrap(),
            "--cooperative",
            "NOPE",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("(not_found)"), "{}", stderr(&o));

    // An optional barcode column: packaged goods carry theirs, loose ones leave it empty; a
    // barcode that is not 8 to 14 digits refuses the whole file.
    let import = |name: &str, text: &str| {
        let f = write(dir.path(), name, text);
        hongxin(
            dir.path(),
            &[
                "import",
                "catalog",
                f.to_str().unwrap(),
                "--cooperative",
                "COOP",
            ],
        )
    };
    let o = import(
        "barcodes.csv",
        "sku,name,unit,price,cost,barcode\nN04,挂面,袋,5.50,4.00,6920000005017\nN05,香菜,把,1.20,0.50,\n",
    );
    assert_ok(&o);
    assert!(stdout(&o).contains("2 new, 0 updated"), "{}", stdout(&o));
    let o = import(
        "bad-barcode.csv",
        "sku,name,unit,price,cost,barcode\nN06,粉丝,袋,4.50,3.00,69200A\nN07,木耳,袋,9.90,7.00,6920000006014\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 2: barcode"), "{}", stderr(&o));
    // One item per barcode: twice in a file, or one another item already carries.
    let o = import(
        "twice.csv",
        "sku,name,unit,price,cost,barcode\nN08,粉条,袋,4.50,3.00,6920000007011\nN09,腐竹,袋,9.90,7.00,6920000007011\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 3: barcode"), "{}", stderr(&o));
    let o = import(
        "taken.csv",
        "sku,name,unit,price,cost,barcode\nN10,米粉,袋,6.50,4.00,6920000005017\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 2: barcode") && stderr(&o).contains("N04"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keys_rotate_links_keeps_the_old_secret_for_its_grace_and_a_readable_key_file_is_refused() {
    let dir = demo_copy();
    let key_file = dir.path().join("demo.db.keys.toml");
    let before = std::fs::read_to_string(&key_file).unwrap();
    assert!(!before.contains("previous_link_secret"), "{before}");
    let o = hongxin(dir.path(), &["keys", "rotate-links", "--grace-days", "7"]);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("old cards work until"),
        "{}",
        stdout(&o)
    );
    let after = std::fs::read_to_string(&key_file).unwrap();
    let link_secret = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("link_secret"))
            .map(str::to_string)
            .expect("link_secret line")
    };
    assert_ne!(link_secret(&before), link_secret(&after));
    // The old secret verifies printed cards until the grace period ends; the PIN key stays.
    let old = link_secret(&before).replacen("link_secret", "previous_link_secret", 1);
    assert!(after.contains(&old), "{after}");
    assert!(after.contains("previous_link_until"), "{after}");
    let short = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("short_secret_key"))
            .map(str::to_string)
    };
    assert!(short(&after).is_some(), "{after}");
    if let Some(kept) = short(&before) {
        assert_eq!(short(&after), Some(kept));
    }
    assert_ok(&hongxin(dir.path(), &["verify"]));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = hongxin(dir.path(), &["verify"]);
        assert!(!o.status.success(), "a world-readable key file was used");
        assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    }
}

/// The paid credit a refusal says is there: "amount: insufficient funds (12.34 available)".
fn available(refusal: &str) -> Option<i64> {
    let rest = refusal.split("insufficient funds (").nth(1)?;
    let text = rest.split(' ').next()?;
    hongxin::money::Amount::parse(text).ok().map(|a| a.fen())
}

/// The amount after `label` on a line of the command's output.
fn amount_after(out: &str, label: &str) -> i64 {
    let text = out
        .split(label)
        .nth(1)
        .and_then(|rest| rest.split([' ', ',', '\n']).next())
        .unwrap_or_else(|| panic!("no {label:?} in {out}"));
    hongxin::money::Amount::parse(text)
        .unwrap_or_else(|e| panic!("{text:?} after {label:?}: {e}"))
        .fen()
}

#[test]
fn credit_refund_pays_back_part_then_the_rest_and_refuses_more_than_there_is() {
    let dir = demo_copy();
    let refund = |household: &str, amount: Option<&str>| {
        let mut args = vec![
            "credit",
            "refund",
            "--household",
            household,
            "--cooperative",
            "COOP",
            "--method",
            "cash",
        ];
        if let Some(a) = amount {
            args.extend(["--amount", a]);
        }
        hongxin(dir.path(), &args)
    };
    // More than any wallet holds: refused with what is there, nothing changes.
    let (household, paid) = (1..=200)
        .map(|n| format!("HX01-{n:04}"))
        .find_map(|h| {
            let o = refund(&h, Some("99999.00"));
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            available(&stderr(&o))
                .filter(|p| *p > 100)
                .map(|p| (h.clone(), p))
        })
        .expect("a demo household with paid credit");
    let again = refund(&household, Some("99999.00"));
    assert_eq!(
        available(&stderr(&again)),
        Some(paid),
        "the refusal changed nothing"
    );

    // 1.00 of it, then the rest: the bonus goes in proportion, all of it at the end.
    let part = refund(&household, Some("1.00"));
    assert_ok(&part);
    let out = stdout(&part);
    assert_eq!(amount_after(&out, "refunded "), 100, "{out}");
    assert_eq!(
        amount_after(&out, "wallet left: paid "),
        paid - 100,
        "{out}"
    );
    let bonus_left = amount_after(&out, ", bonus ");
    let rest = refund(&household, None);
    assert_ok(&rest);
    let out = stdout(&rest);
    assert_eq!(amount_after(&out, "refunded "), paid - 100, "{out}");
    assert_eq!(amount_after(&out, "bonus forfeited "), bonus_left, "{out}");
    assert_eq!(amount_after(&out, "wallet left: paid "), 0, "{out}");
    assert_eq!(amount_after(&out, "total "), 0, "{out}");

    let verify = hongxin(dir.path(), &["verify"]);
    assert_ok(&verify);
}

/// Top-ups of the demo's cooperative COOP, newest first (entry ids).
fn demo_topups(dir: &Path) -> Vec<i64> {
    let url = format!("sqlite://{}", dir.join("demo.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT t.entry_id FROM topups t JOIN cooperatives c ON c.id = t.cooperative_id
             WHERE c.code = 'COOP' ORDER BY t.entry_id DESC LIMIT 200",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        ids
    })
}

/// `hongxin credit void-topup`: the accountant voids a top-up whose credit is untouched; a
/// second void is refused (exit status 1, saying so) and the ledger still verifies.
#[test]
fn credit_void_topup_voids_once() {
    let dir = demo_copy();
    let void = |topup: i64| {
        hongxin(
            dir.path(),
            &[
                "credit",
                "void-topup",
                "--topup",
                &topup.to_string(),
                "--cooperative",
                "COOP",
                "--memo",
                "wrong household",
            ],
        )
    };
    // The newest top-ups: the first whose credit nobody drew on is voided.
    let (topup, out) = demo_topups(dir.path())
        .into_iter()
        .find_map(|t| {
            let o = void(t);
            if o.status.success() {
                return Some((t, stdout(&o)));
            }
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            assert!(stderr(&o).contains("topup"), "{}", stderr(&o));
            None
        })
        .expect("a demo top-up that can be voided");
    assert!(out.contains(&format!("voided top-up {topup} of ")), "{out}");
    assert!(amount_after(&out, "paid ") > 0, "{out}");
    let again = void(topup);
    assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
    assert!(
        stderr(&again).contains("already voided"),
        "{}",
        stderr(&again)
    );
    // Another cooperative's accountant does not find it.
    let other = hongxin(
        dir.path(),
        &[
            "credit",
            "void-topup",
            "--topup",
            &topup.to_string(),
            "--cooperative",
            "NOPE",
        ],
    );
    assert_eq!(other.status.code(), Some(1));
    assert_ok(&hongxin(dir.path(), &["verify"]));
}

/// `vouchers expire` years after the demo: every demo voucher is marked expired, its credit
/// stays owed (no breakage under the shipped policy), and the ledger still verifies.
#[test]
fn vouchers_expire_keeps_the_credit_owed_and_the_ledger_verifies() {
    let dir = demo_copy();
    let out = hongxin(dir.path(), &["--today", "2031-01-01", "vouchers", "expire"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("stays owed"), "{text}");
    assert!(
        !text.starts_with("expired 0 "),
        "the demo issues vouchers: {text}"
    );
    assert!(
        text.contains("breakage recognised on 0 expired vouchers: 0.00 unused paid credit"),
        "{text}"
    );
    let again = hongxin(dir.path(), &["--today", "2031-01-01", "vouchers", "expire"]);
    assert_ok(&again);
    assert!(
        stdout(&again).starts_with("expired 0 vouchers"),
        "{}",
        stdout(&again)
    );
    let verify = hongxin(dir.path(), &["--today", "2031-01-01", "verify"]);
    assert_ok(&verify);
}
#[test]
fn household_move_out_cashes_out_refuses_arrears_and_carries_them() {
    let dir = demo_copy();
    let move_out = |household: &str, wallet: &str, fees: &str| {
        hongxin(
            dir.path(),
            &[
                "household",
                "move-out",
                "--household",
                household,
                "--wallet",
                wallet,
                "--new-occupant",
                "李四",
                "--fees",
                fees,
            ],
        )
    };
    // The first demo households: a move-out of one that owes fees is refused with the amount;
    // one that owes nothing and holds credit is paid out.
    let (mut owing, mut paid_out) = (None, None);
    for n in 1..=200 {
        let h = format!("HX01-{n:04}");
        let o = move_out(&h, "cash-out", "settled");
        if o.status.success() {
            let out = stdout(&o);
            if paid_out.is_none() && amount_after(&out, "refunded ") > 0 {
                paid_out = Some(out);
            }
        } else {
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(1), "{err}");
            assert!(err.contains("fees: the household owes "), "{err}");
            owing.get_or_insert((h, amount_after(&err, "owes ")));
        }
        if owing.is_some() && paid_out.is_some() {
            break;
        }
    }
    let out = paid_out.expect("a demo household with credit and no arrears");
    assert!(out.contains("wallets cash_out, fees settled"), "{out}");
    assert!(out.contains("new occupant: 李四"), "{out}");
    let (household, owed) = owing.expect("a demo household owing fees");
    assert!(owed > 0);
    // Carried: the move-out goes ahead, the arrears stay on the household.
    let carried = move_out(&household, "transfer", "carry");
    assert_ok(&carried);
    let out = stdout(&carried);
    assert_eq!(amount_after(&out, "arrears carried "), owed, "{out}");
    assert_eq!(amount_after(&out, "refunded "), 0, "{out}");
    assert_ok(&hongxin(dir.path(), &["verify"]));
}

/// The receipt number `fees pay` prints: `receipt No. 000123 of K01` → 123.
fn receipt_number(out: &str) -> i64 {
    out.lines()
        .find_map(|l| l.strip_prefix("receipt No. "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no receipt number in {out}"))
}

#[test]
fn fees_receipt_prints_the_numbered_receipt_again_with_the_amount_in_capitals() {
    let dir = demo_copy();
    let pay = |amount: &str, method: &str| {
        let o = hongxin(
            dir.path(),
            &[
                "fees",
                "pay",
                "--household",
                "HX01-0001",
                "--amount",
                amount,
                "--method",
                method,
                "--reference",
                "SJ-CLI-1",
            ],
        );
        assert_ok(&o);
        stdout(&o)
    };
    let first = receipt_number(&pay("123.45", "wechat"));
    let second = receipt_number(&pay("100.07", "cash"));
    assert!(first >= 1);
    assert_eq!(second, first + 1, "one gapless sequence per company");
    let receipt = |company: &str, number: i64| {
        hongxin(
            dir.path(),
            &[
                "fees",
                "receipt",
                "--company",
                company,
                "--number",
                &number.to_string(),
            ],
        )
    };
    let o = receipt("K01", first);
    assert_ok(&o);
    let out = stdout(&o);
    let line = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {label} in {out}"))
            .to_string()
    };
    assert_eq!(line("收据 receipt "), format!("No. {first:06}"));
    assert!(line("company ").starts_with("K01 "), "{out}");
    assert_eq!(line("household "), "HX01-0001");
    assert_eq!(line("amount "), "123.45");
    assert_eq!(line("大写 "), "壹佰贰拾叁元肆角伍分");
    assert_eq!(line("method "), "wechat");
    assert_eq!(line("collected "), "the company's office");
    assert_eq!(line("date "), TODAY);
    let o = receipt("K01", second);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("100.07\n"), "{out}");
    assert!(out.contains("壹佰元零柒分"), "{out}");
    // No such receipt: refused with the number named, exit status 1.
    let o = receipt("K01", second + 1);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stderr(&o).contains("not_found"), "{}", stderr(&o));
    let o = receipt("K99", first);
    assert_eq!(o.status.code(), Some(1));
}

/// The first line of a successful change, `subject code field: old -> new from day (entry n)`,
/// without its entry number.
fn changed(o: &Output) -> String {
    assert_ok(o);
    let out = stdout(o);
    let line = out.lines().next().unwrap_or_default();
    line.split(" (entry ")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The household's line of a statement.
fn statement_line(statement: &serde_json::Value, household: &str) -> serde_json::Value {
    statement["households"]
        .as_array()
        .expect("households")
        .iter()
        .find(|l| l["household"] == household)
        .unwrap_or_else(|| panic!("no {household} in the statement"))
        .clone()
}

#[test]
fn master_data_changes_set_area_rename_eligibility_and_move_from_a_date() {
    let dir = demo_copy();
    let run = |args: &[&str]| hongxin(dir.path(), args);
    let before = statement_line(&statement(dir.path(), "K01", "2026-11"), "HX01-0001");
    let old_area = before["area_m2"].as_str().expect("area").to_string();
    assert_ne!(old_area, "90.00");

    // The area from December's bill; November, billed already, is refused and nothing changes.
    let refused = run(&[
        "household",
        "set-area",
        "--household",
        "HX01-0001",
        "--area",
        "90.00",
        "--from",
        "2026-11",
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("effective_from: 2026-11 is already billed"),
        "{}",
        stderr(&refused)
    );
    let area = run(&[
        "household",
        "set-area",
        "--household",
        "HX01-0001",
        "--area",
        "90.00",
        "--from",
        "2026-12",
    ]);
    assert_eq!(
        changed(&area),
        format!("household HX01-0001 area_m2: {old_area} -> 90.00 from 2026-12-01")
    );
    let same = run(&[
        "household",
        "set-area",
        "--household",
        "HX01-0001",
        "--area",
        "90",
        "--from",
        "2027-01",
    ]);
    assert_eq!(same.status.code(), Some(1));
    assert!(stderr(&same).contains("value: "), "{}", stderr(&same));
    assert_eq!(
        changed(&run(&[
            "household",
            "rename",
            "--household",
            "HX01-0001",
            "--name",
            "张三"
        ])),
        format!(
            "household HX01-0001 name: {} -> 张三 from {TODAY}",
            before["occupant"].as_str().unwrap_or("-")
        )
    );

    // HX01 leaves spend-50-get-55 from 1 December; HX03 moves from K02 to K01 from December.
    assert_eq!(
        changed(&run(&[
            "compound",
            "set-eligible",
            "--compound",
            "HX01",
            "--eligible",
            "false",
            "--from",
            "2026-12-01",
        ])),
        "compound HX01 eligible: true -> false from 2026-12-01"
    );
    let again = run(&[
        "compound",
        "set-eligible",
        "--compound",
        "HX01",
        "--eligible",
        "false",
        "--from",
        "2026-12-15",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("value: HX01 is already not eligible"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        changed(&run(&[
            "compound",
            "move",
            "--compound",
            "HX03",
            "--company",
            "K01",
            "--from",
            "2026-12",
        ])),
        "compound HX03 company: K02 -> K01 from 2026-12-01"
    );
    let renamed = changed(&run(&[
        "compound",
        "rename",
        "--compound",
        "HX01",
        "--name",
        "红心新村",
    ]));
    assert!(
        renamed.starts_with("compound HX01 name: ")
            && renamed.ends_with(" -> 红心新村 from 2026-11-20"),
        "{renamed}"
    );

    // December's bills: HX01-0001 on 90.00 m² × 0.55 = 49.50 under its new name, HX03's
    // households under K01 and no longer under K02; November's bill stays as issued.
    for company in ["K01", "K02"] {
        assert_ok(&run(&[
            "--today",
            "2026-12-01",
            "fees",
            "bill",
            "--company",
            company,
            "--month",
            "2026-12",
        ]));
    }
    let december = statement(dir.path(), "K01", "2026-12");
    let line = statement_line(&december, "HX01-0001");
    assert_eq!(fen(&line, &["billed"]), 4950, "{line}");
    assert_eq!(line["area_m2"], "90.00");
    assert_eq!(line["occupant"], "张三");
    let hx03 = |s: &serde_json::Value| {
        s["households"]
            .as_array()
            .expect("households")
            .iter()
            .filter(|l| {
                l["household"]
                    .as_str()
                    .is_some_and(|h| h.starts_with("HX03-"))
            })
            .count()
    };
    assert!(hx03(&december) > 0, "HX03 is billed by K01");
    // K02 bills HX03 nothing for December; its position with HX03's households from before the
    // move (what they owe it or paid it ahead) stays K02's: its statement carries them, with
    // that position as the opening and nothing moving in December.
    let k02_december = statement(dir.path(), "K02", "2026-12");
    let k02_hx03: Vec<&serde_json::Value> = k02_december["households"]
        .as_array()
        .expect("households")
        .iter()
        .filter(|l| {
            l["household"]
                .as_str()
                .is_some_and(|h| h.starts_with("HX03-"))
        })
        .collect();
    assert!(
        k02_hx03.iter().any(|l| fen(l, &["opening"]) != 0),
        "{k02_december}"
    );
    for line in k02_hx03 {
        assert_eq!(fen(line, &["billed"]), 0, "{line}");
        assert_eq!(fen(line, &["paid"]), 0, "{line}");
        assert_eq!(fen(line, &["closing"]), fen(line, &["opening"]), "{line}");
    }
    assert!(hx03(&statement(dir.path(), "K02", "2026-11")) > 0);
    let november = statement_line(&statement(dir.path(), "K01", "2026-11"), "HX01-0001");
    assert_eq!(november["billed"], before["billed"]);
    assert_ok(&run(&["--today", "2026-12-01", "verify"]));
}
