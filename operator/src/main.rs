//! The `mailwarden-operator` binary: parses arguments and hands over to the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "mailwarden-operator",
    version,
    about = "Dedicated, isolated outbound mail per tenant on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controllers (after winning the leader election).
    Run(mailwarden_operator::runtime::Options),
    /// Write the CRD YAML files (one per kind) into one or more directories.
    Crdgen {
        /// Directory to write into; repeat for several.
        #[arg(long, default_values = ["crds", "charts/mailwarden-operator/crds"])]
        out: Vec<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(options) => mailwarden_operator::runtime::run(options),
        Command::Crdgen { out } => {
            for dir in out {
                std::fs::create_dir_all(&dir)?;
                for (file, crd) in mailwarden_operator::crd::all() {
                    let path = dir.join(file);
                    std::fs::write(&path, mailwarden_operator::crd::to_yaml(&crd))?;
                    println!("wrote {}", path.display());
                }
            }
            Ok(())
        }
    }
}
