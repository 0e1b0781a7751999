// The migrations are embedded by `sqlx::migrate!`; a new or changed migration file must rebuild
// the crate even when no Rust source changed (as sqlx's documentation recommends).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
