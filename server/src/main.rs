//! matrix-account-server: the Matrix account-management API on SQLite or
//! PostgreSQL. `matrix-account-server` alone serves on 127.0.0.1:8008 with an
//! SQLite database under ./data; subcommands administer the same database.

mod api;
mod cli;
mod config;
mod crypto;
mod email;
mod homeserver;
mod http_server;
mod metrics;
mod oauth;
mod ratelimit;
mod service;
mod sms;
mod store;
mod templates;
mod uia;
mod validation;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "matrix-account-server",
    version,
    about = "Matrix account-management server"
)]
struct Args {
    /// Configuration file (TOML). Without one, the defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (what runs without a subcommand).
    Serve,
    /// Write the commented default configuration to FILE, or to standard output.
    GenerateConfig { file: Option<PathBuf> },
    /// Manage users.
    #[command(subcommand)]
    User(cli::UserCommand),
    /// Manage registration tokens.
    #[command(subcommand)]
    Token(cli::TokenCommand),
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    if let Some(Command::GenerateConfig { file }) = &args.command {
        return match file {
            Some(path) => std::fs::write(path, config::DEFAULT_TOML)
                .map_err(|e| format!("{}: {e}", path.display())),
            None => {
                print!("{}", config::DEFAULT_TOML);
                Ok(())
            }
        };
    }
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let server = service::Server::new(config).await?;
        match args.command {
            None | Some(Command::Serve) => http_server::serve(server).await,
            Some(Command::User(cmd)) => cli::user(&server, cmd).await,
            Some(Command::Token(cmd)) => cli::token(&server, cmd).await,
            Some(Command::GenerateConfig { .. }) => unreachable!("handled above"),
        }
    })
}
