//! The `srs-bench` binary (what `srs bench` runs): parses flags and calls
//! the library.
#![forbid(unsafe_code)]

/// The allocator of the `srs` binary, so a server the bench starts in this
/// process allocates as `srs serve` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    srs_bench::cli::main()
}
