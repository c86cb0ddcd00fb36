use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "opensandbox",
    version,
    about = "OpenSandbox controller, SDK API and standalone runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CRDs as YAML (or write one file per CRD into a directory).
    Crdgen {
        /// Write `<crd-name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
    }
}

fn crdgen(out_dir: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let crds = opensandbox::crd::all_crds();
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(opensandbox::crd::crd_file_name(crd));
                let yaml = opensandbox::crd::crd_yaml(crd)?;
                std::fs::write(&path, yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for crd in &crds {
                write!(out, "---\n{}", opensandbox::crd::crd_yaml(crd)?)?;
            }
        }
    }
    Ok(())
}
