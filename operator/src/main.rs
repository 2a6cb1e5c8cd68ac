//! The `mailwarden-operator` binary: parses arguments and hands over to the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "mailwarden-operator", version, about = "Dedicated, isolated outbound mail per tenant on Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (after winning the leader election).
    Run(mailwarden_operator::runtime::Options),
    /// Write the CRD YAML files (one per kind) into a directory.
    Crdgen {
        /// Directory to write into.
        #[arg(long, default_value = "crds")]
        out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(options) => mailwarden_operator::runtime::run(options),
        Command::Crdgen { out } => {
            std::fs::create_dir_all(&out)?;
            for (file, crd) in mailwarden_operator::crd::all() {
                let path = out.join(file);
                std::fs::write(&path, mailwarden_operator::crd::to_yaml(&crd))?;
                println!("wrote {}", path.display());
            }
            Ok(())
        }
    }
}
