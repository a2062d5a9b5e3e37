//! prunegate: keeps a Docker host's disk from filling without evicting its image cache.
//!
//! Data flows one way: config → settings derived once → one snapshot of the engine (+ disk and
//! uptime readings) → gates → plan → prune steps (each behind a fresh re-check) → one report →
//! its sinks. See docs/design.md.

mod address;
mod cli;
mod config;
mod disk;
mod docker;
mod duration;
mod engine;
mod gates;
mod junk;
mod lock;
mod model;
mod plan;
mod report;
mod retention;
mod run;
mod serve;
mod settings;
mod sinks;
mod uptime;

use clap::{CommandFactory, Parser};
use cli::{Cli, Cmd, Common, ConfigCmd, DebugCmd, LogFormat};
use model::Command;
use run::Interrupt;
use settings::Settings;
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
        Cmd::Run { common, dry_run } => gated(Command::Run, &common, dry_run),
        Cmd::Check { common } => gated(Command::Check, &common, false),
        Cmd::Reclaim { common, dry_run } => gated(Command::Reclaim, &common, dry_run),
        Cmd::Daemon { common } => daemon(&common),
        Cmd::ServeSwarm { common } => serve_swarm(&common),
        Cmd::Record { common } => record(&common),
        Cmd::Config {
            action: ConfigCmd::Check { common },
        } => config_check(&common),
        Cmd::Config {
            action: ConfigCmd::Show { common },
        } => config_show(&common),
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
        } => debug_snapshot(&common),
    }
}

/// Loads the config and derives the settings; any failure here is a usage error.
fn load(common: &Common) -> Result<(Settings, config::Config, config::Source), String> {
    Settings::load(common.config.as_deref(), common.docker_host.as_deref())
}

/// `prunegate config check`: whether the file (or its absence) gives usable settings.
fn config_check(common: &Common) -> ExitCode {
    match load(common) {
        Ok((settings, _, source)) => {
            let what = if source.file_found {
                format!("{} is valid", source.path.display())
            } else {
                format!(
                    "{} does not exist: built-in defaults apply",
                    source.path.display()
                )
            };
            println!(
                "{} (daemon address: {})",
                report::printable(&what),
                report::printable(settings.address.as_str())
            );
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e, false, "config check"),
    }
}

/// `prunegate config show`: the effective config, the address in force filled in.
fn config_show(common: &Common) -> ExitCode {
    match load(common) {
        Ok((settings, mut config, source)) => {
            config.docker.host = Some(settings.address.to_string());
            if !source.file_found {
                println!(
                    "# {} does not exist: built-in defaults",
                    source.path.display()
                );
            }
            if config.gates.disk.path.is_none() && config.gates.disk.paths.is_none() {
                println!(
                    "# gates.disk.paths is unset: the daemon's DockerRootDir is measured \
                     (and a system containerd's root on the containerd image store)"
                );
            }
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e, false, "config show"),
    }
}

/// `prunegate debug snapshot`: what the gates and the dry run see, as JSON (test fixtures).
fn debug_snapshot(common: &Common) -> ExitCode {
    let settings = match load(common) {
        Ok((settings, _, _)) => settings,
        Err(e) => return usage_error(&e, false, "debug snapshot"),
    };
    block_on(async {
        let daemon = run::inputs::connect(&settings)?;
        let snapshot = docker::snapshot::Snapshot::take(&daemon).await;
        let disk = run::inputs::disk_reading(&settings.gates.disk, &snapshot.engine);
        let until = snapshot
            .engine
            .as_ref()
            .is_ok_and(|e| e.image_until_is_record_time())
            .then(|| settings.prune.until());
        let inventory = docker::inventory::Inventory::take(&daemon, true, until).await;
        let doc = serde_json::json!({
            "snapshot": snapshot,
            "disk": disk,
            "uptime": uptime::read(&settings.address),
            "inventory": inventory,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializable")
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn usage_error(message: &str, json: bool, command: &str) -> ExitCode {
    eprintln!("prunegate: error: {}", report::printable(message));
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
        eprintln!("prunegate: error: {}", report::printable(&e));
        ExitCode::from(EXIT_FAILURE)
    })
}

/// An interrupt raised by the first SIGTERM or SIGINT, which `said` is logged for. Must be
/// called inside the runtime (it spawns the listener).
fn interrupt_on_signal(said: &'static str) -> Result<Interrupt, String> {
    let interrupt = Interrupt::default();
    let listener = interrupt.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::warn!("{said}");
        listener.raise();
    });
    Ok(interrupt)
}

/// `run`, `check`, `reclaim`: one job, its report on stdout, its outcome as the exit code.
fn gated(command: Command, common: &Common, dry_run: bool) -> ExitCode {
    let settings = match load(common) {
        Ok((settings, _, _)) => settings,
        Err(e) => return usage_error(&e, common.json, command.as_str()),
    };
    block_on(async {
        // SIGTERM/SIGINT stop a pruning run between steps; it still reports (outcome interrupted).
        let interrupt = interrupt_on_signal("signal received: stopping after the current step")?;
        let report = run::job::run(command, &settings, dry_run, &interrupt).await;
        if common.json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.to_text());
        }
        if let Some(e) = &report.error {
            eprintln!("prunegate: error: {}", report::printable(e));
        }
        Ok(ExitCode::from(report.outcome.exit_code() as u8))
    })
}

fn daemon(common: &Common) -> ExitCode {
    let settings = match load(common) {
        Ok((settings, _, _)) => settings,
        Err(e) => return usage_error(&e, false, "daemon"),
    };
    block_on(async {
        let out = run::schedule::Output { json: common.json };
        run::schedule::run(
            settings,
            common.config.clone(),
            common.docker_host.clone(),
            out,
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn serve_swarm(common: &Common) -> ExitCode {
    let settings = match load(common) {
        Ok((settings, _, _)) => settings,
        Err(e) => return usage_error(&e, false, "serve-swarm"),
    };
    let Some(serve) = settings.serve.clone() else {
        return usage_error(
            "keys `serve.listen` and `serve.cert_path`: both are needed by serve-swarm",
            false,
            "serve-swarm",
        );
    };
    block_on(async {
        serve::run(&settings, &serve).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn record(common: &Common) -> ExitCode {
    let settings = match load(common) {
        Ok((settings, _, _)) => settings,
        Err(e) => return usage_error(&e, false, "record"),
    };
    if settings.retention.is_none() {
        return usage_error(
            "key `retention.enabled`: false, so there is no use history to record",
            false,
            "record",
        );
    }
    block_on(async {
        let interrupt =
            interrupt_on_signal("signal received: recording the last uses and stopping")?;
        let done = run::record::run(&settings, &interrupt).await?;
        tracing::info!(
            merges = done.merges,
            events = done.events,
            "recorder stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}
