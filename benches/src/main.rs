//! The `srs-bench` binary (what `srs bench` runs): parses flags and calls
//! the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    srs_bench::cli::main()
}
