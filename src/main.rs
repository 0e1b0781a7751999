//! The `hongxin` binary: everything it does lives in [`hongxin::cli`], where tests can reach it.

fn main() -> std::process::ExitCode {
    hongxin::cli::main()
}
