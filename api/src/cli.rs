//! The `srs` command line.
//!
//! Exit codes: 0 success, 1 a check failed (e.g. a broken chain), 2 an error
//! (bad flags, a data directory in use, storage failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use srs_domain::log::open_db;

#[derive(Parser, Debug)]
#[command(name = "srs", version, about = "Session Recording service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Open the data directory and serve.
    Serve {
        /// Data directory (sled database).
        #[arg(long, env = "SRS_DATA", default_value = "./data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, env = "SRS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { data, listen } => {
            std::fs::create_dir_all(&data)?;
            let db = open_db(&data, 64 * 1024 * 1024)?;
            println!(
                "srs: data directory {} open ({} trees); the API on {listen} is not served yet",
                data.display(),
                db.tree_names().len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
