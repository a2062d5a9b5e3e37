//! The command line: the contract users and scripts rely on (docs/cli.md).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "prunegate",
    version,
    about = "Gated, surgical Docker pruning: prunes stopped containers, dangling images and \
             dangling build cache only when the disk is under pressure and nothing is in flight",
    after_help = "Exit codes: 0 done (pruned, nothing eligible, dry run; check: all gates open), \
                  10 skipped because a gate is closed, 1 runtime failure, 2 usage or config error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Config file [default: /etc/prunegate/config.toml; if absent, built-in defaults]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the report as one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Daemon address (unix:///path or tcp://host:port); overrides docker.host and DOCKER_HOST
    #[arg(long, global = true, value_name = "URL")]
    pub docker_host: Option<String>,
    /// Log lines on stderr: text (no colour unless stderr is a terminal) or json
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Evaluate the gates; if all are open, prune; print a report
    Run {
        #[command(flatten)]
        common: Common,
        /// List exactly what would be removed, with sizes; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Evaluate and print every gate with its evidence; remove nothing
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Prune now under real pressure: skips the disk gate only, every other rule stays
    Reclaim {
        #[command(flatten)]
        common: Common,
        /// List exactly what would be removed, with sizes; remove nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Run `run` on the schedule in `schedule.cron` until SIGTERM (for hosts without timers)
    Daemon {
        #[command(flatten)]
        common: Common,
    },
    /// Follow the daemon's events and record every image use into the retention class's history
    /// as it happens, until SIGTERM (an always-on unit beside the timer; `daemon` does it too)
    Record {
        #[command(flatten)]
        common: Common,
    },
    /// On a swarm manager: answer workers' swarm reads (services, tasks, info) over mutual TLS,
    /// redacted to what the gates need, and nothing else (`[serve]`)
    ServeSwarm {
        #[command(flatten)]
        common: Common,
    },
    /// Validate or show the configuration
    Config {
        #[command(subcommand)]
        action: ConfigCmd,
    },
    /// Print shell completions for SHELL (bash, zsh, fish, elvish, powershell) on stdout
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout
    Man,
    /// Internal tools for developers
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        action: DebugCmd,
    },
}

impl Cmd {
    /// The common options of whichever command was given.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Cmd::Run { common, .. }
            | Cmd::Check { common }
            | Cmd::Reclaim { common, .. }
            | Cmd::Daemon { common }
            | Cmd::ServeSwarm { common }
            | Cmd::Record { common }
            | Cmd::Config {
                action: ConfigCmd::Check { common } | ConfigCmd::Show { common },
            }
            | Cmd::Debug {
                action: DebugCmd::Snapshot { common },
            } => Some(common),
            Cmd::Completions { .. } | Cmd::Man => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the config file; exit 0 if it is usable, 2 naming the bad key if not
    Check {
        #[command(flatten)]
        common: Common,
    },
    /// Print the effective config, defaults filled in, as TOML
    Show {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Subcommand)]
pub enum DebugCmd {
    /// Print the snapshot the gates see and the dry run's inventory, as JSON (test fixtures)
    Snapshot {
        #[command(flatten)]
        common: Common,
    },
}
