//! prunegate: keeps a Docker host's disk from filling without evicting its image cache.
//!
//! Data flows one way: config → connect → snapshot (+ disk reading) → gates → plan → prune steps
//! (each behind a fresh re-check) → one report → its sinks. See docs/design.md.

mod cli;
mod config;
mod disk;
mod docker;
mod duration;
mod gates;
mod job;
mod lock;
mod objects;
mod plan;
mod report;
mod runner;
mod schedule;
mod sinks;
mod state;
mod support;
mod uptime;

use clap::{CommandFactory, Parser};
use cli::{Cli, Cmd, Common, ConfigCmd, DebugCmd, LogFormat};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit code for usage and configuration errors (clap uses the same for bad arguments).
const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;

/// Logs go to stderr (the report owns stdout): `prunegate=info` by default, `PRUNEGATE_LOG`
/// overrides; plain text without colour unless stderr is a terminal (journald), or JSON lines.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PRUNEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,prunegate=info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(
        cli.command
            .common()
            .map_or(LogFormat::Text, |c| c.log_format),
    );
    match cli.command {
        Cmd::Run { common, dry_run } => gated(runner::Command::Run, &common, dry_run),
        Cmd::Check { common } => gated(runner::Command::Check, &common, false),
        Cmd::Reclaim { common, dry_run } => gated(runner::Command::Reclaim, &common, dry_run),
        Cmd::Daemon { common } => daemon(&common),
        Cmd::Config {
            action: ConfigCmd::Check { common },
        } => match load(&common) {
            Ok((_, source, host)) => {
                let what = if source.file_found {
                    format!("{} is valid", source.path.display())
                } else {
                    format!(
                        "{} does not exist: built-in defaults apply",
                        source.path.display()
                    )
                };
                println!("{what} (daemon address: {host})");
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(&e, false, "config check"),
        },
        Cmd::Config {
            action: ConfigCmd::Show { common },
        } => match load(&common) {
            Ok((mut config, source, host)) => {
                config.docker.host = Some(host);
                if !source.file_found {
                    println!(
                        "# {} does not exist: built-in defaults",
                        source.path.display()
                    );
                }
                if config.gates.disk.path.is_none() {
                    println!("# gates.disk.path is unset: the daemon's DockerRootDir is measured");
                }
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => usage_error(&e, false, "config show"),
        },
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "prunegate",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Cmd::Man => match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("prunegate: error: writing the manual page: {e}");
                ExitCode::from(EXIT_FAILURE)
            }
        },
        Cmd::Debug {
            action: DebugCmd::Snapshot { common },
        } => match load(&common) {
            Ok((config, _, host)) => block_on(async {
                let daemon = docker::Daemon::connect(
                    &host,
                    config.docker.read_timeout.as_std(),
                    config.docker.prune_timeout.as_std(),
                )?;
                let snapshot = docker::snapshot::Snapshot::take(&daemon).await;
                let disk = docker::snapshot::read_disk(config.gates.disk.path.as_ref(), &snapshot);
                let inventory = docker::inventory::Inventory::take(&daemon, true).await;
                let doc = serde_json::json!({
                    "snapshot": snapshot,
                    "disk": disk,
                    "uptime": uptime::read(&host),
                    "inventory": inventory,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).expect("serializable")
                );
                Ok(ExitCode::SUCCESS)
            }),
            Err(e) => usage_error(&e, false, "debug snapshot"),
        },
    }
}

/// Loads the config and settles the daemon address; any failure here is a usage error.
fn load(common: &Common) -> Result<(config::Config, config::Source, String), String> {
    let (config, source) = config::load(common.config.as_deref()).map_err(|e| e.to_string())?;
    let host = docker::resolve_host(common.docker_host.as_deref(), config.docker.host.as_deref());
    docker::check_host(&host).map_err(|e| {
        let from = if common.docker_host.is_some() {
            "--docker-host"
        } else if config.docker.host.is_some() {
            "docker.host"
        } else {
            "DOCKER_HOST"
        };
        format!("{from}: {e}")
    })?;
    Ok((config, source, host))
}

fn usage_error(message: &str, json: bool, command: &str) -> ExitCode {
    eprintln!("prunegate: error: {message}");
    if json {
        let doc = serde_json::json!({ "command": command, "outcome": "error", "error": message });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
    }
    ExitCode::from(EXIT_USAGE)
}

/// Runs `body` on a single-threaded runtime (the reads are concurrent requests, not parallel
/// work); an `Err` is a runtime failure, reported on stderr.
fn block_on<F>(body: F) -> ExitCode
where
    F: std::future::Future<Output = Result<ExitCode, String>>,
{
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|rt| rt.block_on(body));
    result.unwrap_or_else(|e| {
        eprintln!("prunegate: error: {e}");
        ExitCode::from(EXIT_FAILURE)
    })
}

fn gated(command: runner::Command, common: &Common, dry_run: bool) -> ExitCode {
    let (config, _, host) = match load(common) {
        Ok(loaded) => loaded,
        Err(e) => return usage_error(&e, common.json, command.as_str()),
    };
    block_on(async {
        // SIGTERM/SIGINT stop a pruning run between steps; it still reports (outcome interrupted).
        let interrupt = runner::Interrupt::default();
        let listener = interrupt.clone();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("SIGTERM handler: {e}"))?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::warn!("signal received: stopping after the current step");
            listener.raise();
        });
        let report = job::run(command, &config, &host, dry_run, &interrupt).await;
        if common.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        if let Some(e) = &report.error {
            eprintln!("prunegate: error: {e}");
        }
        Ok(ExitCode::from(report.outcome.exit_code() as u8))
    })
}

fn daemon(common: &Common) -> ExitCode {
    let (config, _, _) = match load(common) {
        Ok(loaded) => loaded,
        Err(e) => return usage_error(&e, false, "daemon"),
    };
    block_on(async {
        let out = schedule::Output { json: common.json };
        schedule::run(
            config,
            common.config.clone(),
            common.docker_host.clone(),
            out,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}
