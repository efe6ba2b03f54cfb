//! The `mango-store` command: `serve`, `migrate`, `demo`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mango_store::config::{self, Config, LogConfig, Settings};
use mango_store::{app, cli, db, jobs, telemetry};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "mango-store",
    version,
    about = "Storefront cache and sync layer for Mango Biz"
)]
struct Cli {
    /// A TOML file with the same keys as the MANGO_* environment (the environment wins).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (migrations are applied at start).
    Serve {
        /// Validate the configuration and exit.
        #[arg(long)]
        check: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Run a demo on embedded SQLite with an in-process fake Biz serving fixtures/.
    Demo {
        /// Address to listen on (default: MANGO_BIND, else 127.0.0.1:8080).
        #[arg(long)]
        bind: Option<String>,
        /// A fixture set: the fake Biz's JSON files and its resources.toml.
        #[arg(long, default_value = "fixtures/salon")]
        fixtures: PathBuf,
        /// SQLite file for the demo (default: ./data/demo-SET.db, one per fixture set).
        #[arg(long)]
        database: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&format!("{err:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("mango-store: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { check } => {
            let config = Config::from_settings(&settings)?;
            if check {
                println!("configuration is valid");
                return Ok(());
            }
            telemetry::init_logging(&config.log)?;
            let db = db::connect(&config.database).await?;
            let listener = tokio::net::TcpListener::bind(config.bind)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("MANGO_BIND: cannot listen on {}: {e}", config.bind)
                })?;
            tracing::info!(address = %listener.local_addr()?, "mango-store listening");
            let grace = config.shutdown_grace;
            let state = app::AppState::new(config, db.clone())?;
            let mut scheduler = jobs::start(state.clone()).await?;
            app::serve_with_grace(state, listener, cli::shutdown_signal(), grace).await?;
            if let Err(err) = scheduler.shutdown().await {
                tracing::warn!(error = %err, "the job scheduler did not stop cleanly");
            }
            db.close();
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            telemetry::init_logging(&LogConfig::from_settings(&settings)?)?;
            let url = config::database_url(&settings)?;
            db::connect(&url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Demo {
            bind,
            fixtures,
            database,
        } => {
            telemetry::init_logging(&LogConfig::from_settings(&settings)?)?;
            cli::demo(settings, bind, &fixtures, database.as_deref()).await
        }
    }
}
