//! The `srs` binary: parses flags and calls the library.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    srs_cli::main()
}
