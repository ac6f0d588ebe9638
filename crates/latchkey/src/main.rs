//! The `latchkey` binary: parse the command line, load and validate the configuration, open
//! the database, and run one command. Thin: the use cases live in `latchkey-service`.
//!
//! Errors end as one line on stderr and a non-zero exit, never a panic or a backtrace.

mod cli;
mod commands;
mod config;
mod context;
mod keys;
mod limits;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::{EnvFilter, fmt};

use crate::{
    cli::{Cli, Command},
    config::{Config, LogFormat, Overrides, Settings},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The server's signal handlers come first: a SIGTERM during start-up (migrations, the first
    // operator) must end it with status 0, not kill it half-way (SECURITY R7).
    let stop = match cli.command {
        Command::Serve(_) => Some(commands::serve::Stop::listen()?),
        _ => None,
    };
    let (listen, operator_email, tls_cert, tls_key) = match &cli.command {
        Command::Serve(args) => (
            args.listen.clone(),
            args.operator_email.clone(),
            args.tls_cert.clone(),
            args.tls_key.clone(),
        ),
        _ => (None, None, None, None),
    };
    let overrides = Overrides {
        listen,
        database: cli.global.database.clone(),
        public_url: cli.global.public_url.clone(),
        key_file: cli.global.key_file.clone(),
        operator_email,
        log_format: cli.global.log_format,
        tls_cert,
        tls_key,
    };
    let settings = Settings::validate(Config::load(cli.global.config.as_deref(), &overrides)?)?;
    init_logging(
        settings.log_format,
        matches!(cli.command, Command::Serve(_)),
    );
    let create = matches!(cli.command, Command::Serve(_) | Command::Migrate);
    let ctx = match &stop {
        Some(stop) => tokio::select! {
            ctx = context::open(settings, create) => ctx?,
            () = stop.clone().requested() => return Ok(()),
        },
        None => context::open(settings, create).await?,
    };
    match cli.command {
        Command::Serve(_) => {
            let stop = stop.ok_or_else(|| anyhow::anyhow!("no signal handler was registered"))?;
            commands::serve::run(ctx, stop).await
        }
        Command::Migrate => {
            println!("The database schema is up to date.");
            Ok(())
        }
        Command::Env(c) => commands::env::run(&ctx, c).await,
        Command::User(c) => commands::user::run(&ctx, c).await,
        Command::Backup { file } => commands::backup::run(&ctx, &file).await,
        Command::Token(c) => commands::token::run(&ctx, c).await,
        Command::Client(c) => commands::client::run(&ctx, c).await,
        Command::Audit {
            env,
            user,
            kind,
            since,
            limit,
        } => commands::audit::run(&ctx, &env, user, kind, since, limit).await,
    }
}

/// Logs go to stderr (stdout carries the command's output). `RUST_LOG` overrides the level:
/// `info` for the server, `warn` for one-shot commands.
fn init_logging(format: LogFormat, server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
