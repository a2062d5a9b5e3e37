//! prunegate: keeps a Docker host's disk from filling without evicting its image cache.
//!
//! Data flows one way: config → connect → snapshot (+ disk reading) → gates → plan → prune steps
//! (each behind a fresh re-check) → one report → its sink. See docs/design.md.

mod cli;
mod config;
mod disk;
mod docker;
mod duration;
mod gates;
mod plan;
mod report;
mod runner;

use clap::{CommandFactory, Parser};
use cli::{Cli, Cmd, Common, ConfigCmd, DebugCmd};
use std::process::ExitCode;

/// Exit code for usage and configuration errors (clap uses the same for bad arguments).
const EXIT_USAGE: u8 = 2;
/// Exit code for runtime failures.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRUNEGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Run { common, dry_run } => gated(runner::Command::Run, &common, dry_run),
        Cmd::Check { common } => gated(runner::Command::Check, &common, false),
        Cmd::Reclaim { common, dry_run } => gated(runner::Command::Reclaim, &common, dry_run),
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
            Ok((config, _, host)) => with_daemon(&config, &host, |daemon| {
                let config = &config;
                async move {
                    let snapshot = docker::snapshot::Snapshot::take(&daemon).await;
                    let disk =
                        docker::snapshot::read_disk(config.gates.disk.path.as_ref(), &snapshot);
                    let inventory = docker::inventory::Inventory::take(&daemon, true).await;
                    let doc = serde_json::json!({
                        "snapshot": snapshot,
                        "disk": disk,
                        "inventory": inventory,
                    });
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&doc).expect("serializable")
                    );
                    ExitCode::SUCCESS
                }
            })
            .unwrap_or_else(|e| {
                eprintln!("prunegate: error: {e}");
                ExitCode::from(EXIT_FAILURE)
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

/// Runs `body` with a connected daemon on a single-threaded runtime (the reads are concurrent
/// requests, not parallel work). `Err` carries why the client could not be set up.
fn with_daemon<F, Fut>(config: &config::Config, host: &str, body: F) -> Result<ExitCode, String>
where
    F: FnOnce(docker::Daemon) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let daemon = docker::Daemon::connect(
            host,
            config.docker.read_timeout.as_std(),
            config.docker.prune_timeout.as_std(),
        )
        .map_err(|e| format!("cannot reach the Docker daemon at {host}: {e}"))?;
        Ok(body(daemon).await)
    })
}

fn gated(command: runner::Command, common: &Common, dry_run: bool) -> ExitCode {
    let (config, _, host) = match load(common) {
        Ok(loaded) => loaded,
        Err(e) => return usage_error(&e, common.json, command.as_str()),
    };
    let config = &config;
    let result = with_daemon(config, &host, |daemon| async move {
        let report = runner::execute(command, config, &daemon, dry_run).await;
        tracing::info!(outcome = ?report.outcome, reclaimed = report.reclaimed_bytes, api_calls = report.api_calls, "finished");
        if common.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        if let Some(e) = &report.error {
            eprintln!("prunegate: error: {e}");
        }
        ExitCode::from(report.outcome.exit_code() as u8)
    });
    result.unwrap_or_else(|error| {
        let report = report::Report::failed(
            command.as_str(),
            &host,
            config.prune.older_than.as_str(),
            error.clone(),
        );
        if common.json {
            println!("{}", report.to_json());
        }
        eprintln!("prunegate: error: {error}");
        ExitCode::from(EXIT_FAILURE)
    })
}
