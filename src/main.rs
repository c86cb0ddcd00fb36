use anyhow::Context;
use clap::{Parser, Subcommand};
use opensandbox::standalone::run::{StandaloneOptions, default_state_dir};

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
    /// Run the platform on this machine with an embedded Kubernetes API server.
    Standalone {
        /// State directory (kubeconfig, persisted objects).
        #[arg(long, env = "OPENSANDBOX_STATE_DIR")]
        state_dir: Option<std::path::PathBuf>,
        /// Address of the embedded Kubernetes API (port 0: any free loopback port).
        #[arg(long, default_value = "127.0.0.1:0")]
        kube_listen: std::net::SocketAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crdgen { out_dir } => crdgen(out_dir),
        Command::Standalone {
            state_dir,
            kube_listen,
        } => standalone(StandaloneOptions {
            state_dir: state_dir.unwrap_or_else(default_state_dir),
            kube_listen,
        }),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

/// The actix System on a multi-thread tokio runtime: actors on the System arbiter,
/// watchers and servers on the worker pool.
fn actor_system() -> actix::SystemRunner {
    actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the tokio runtime: {e}"))
    })
}

fn standalone(opts: StandaloneOptions) -> anyhow::Result<()> {
    init_tracing();
    actor_system().block_on(async move {
        let running = opensandbox::standalone::run::start(&opts).await?;
        print!(
            "{}",
            opensandbox::standalone::run::banner(&running, &opts.state_dir)
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        eprintln!("shutting down");
        Ok(())
    })
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
