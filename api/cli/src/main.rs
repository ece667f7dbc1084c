//! The `srs` binary: parses flags and calls the library.
#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: a GraphQL answer is many
/// small allocations freed together, which glibc's malloc spends a third
/// to a half of an answer's CPU time on (consolidating its free lists).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    srs_cli::main()
}
