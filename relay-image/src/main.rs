//! `mailwarden-relay run --config PATH` serves; `mailwarden-relay audit verify PATH` checks an
//! audit log's hash chain.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mailwarden_relay_config::{CONFIG_FILE_NAME, defaults};

const USAGE: &str =
    "usage: mailwarden-relay run [--config PATH] | mailwarden-relay audit verify PATH";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run"] => run(Path::new(defaults::CONFIG_DIR).join(CONFIG_FILE_NAME)),
        ["run", "--config", path] => run(PathBuf::from(path)),
        ["audit", "verify", path] => match mailwarden_relay::audit::verify(path.as_ref()) {
            Ok((lines, _)) => {
                println!("audit log {path}: {lines} lines, chain intact");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(config: PathBuf) -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mailwarden_relay::server::run(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mailwarden-relay: {error}");
            ExitCode::FAILURE
        }
    }
}
