//! `prunegate daemon`: its own schedule, for hosts without systemd timers (a container, a swarm
//! global service). Runs the same job as `prunegate run` at each tick of `schedule.cron`.
//!
//! - A daemon that is down is logged and tried again at the next tick.
//! - SIGTERM/SIGINT while waiting: exit 0 at once. During a run: the run stops before its next
//!   step (never while deciding), its report is written, then exit 0.
//! - SIGHUP: re-read the config file. A bad new config is rejected with the reason logged and
//!   the old one kept; during a run, the reload waits for the run to end.

use super::Interrupt;
use crate::model::Command;
use crate::report::Report;
use crate::settings::Settings;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

/// How the daemon prints each run's report on stdout.
pub struct Output {
    pub json: bool,
}

fn next_delay(settings: &Settings) -> Option<(chrono::DateTime<chrono::Utc>, std::time::Duration)> {
    let next = settings.schedule.cron.upcoming(chrono::Utc).next()?;
    let jitter_max = settings.schedule.random_delay.as_std();
    let jitter = if jitter_max.is_zero() {
        std::time::Duration::ZERO
    } else {
        std::time::Duration::from_millis(fastrand::u64(..=jitter_max.as_millis() as u64))
    };
    let at = next + chrono::Duration::from_std(jitter).ok()?;
    let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
    Some((at, wait))
}

fn print(report: &Report, out: &Output) {
    if out.json {
        println!(
            "{}",
            serde_json::to_string(report).expect("report serializes")
        );
    } else {
        print!("{}", report.to_text());
    }
}

/// Raises the recorder's interrupt when the daemon returns, however it returns.
struct StopOnDrop(Interrupt);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.raise();
    }
}

/// Runs until SIGTERM or SIGINT. `reload_from` is the `--config` given (None: the default
/// path), `cli_host` the `--docker-host` given, both applied again on reload.
pub async fn run(
    mut settings: Settings,
    reload_from: Option<PathBuf>,
    cli_host: Option<String>,
    out: Output,
) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
    tracing::info!(cron = %settings.schedule.cron_text, random_delay = %settings.schedule.random_delay, "prunegate daemon started");
    // With the retention class on, use is recorded as it happens between the runs (the
    // recorder stops with the daemon; a reload does not restart it with new settings).
    let recording = Interrupt::default();
    let _recorder = settings.retention.is_some().then(|| {
        let (settings, stop) = (settings.clone(), recording.clone());
        tokio::spawn(async move {
            if let Err(e) = super::record::run(&settings, &stop).await {
                tracing::warn!("recorder: {e}");
            }
        })
    });
    let _stop_recording = StopOnDrop(recording);
    loop {
        let Some((at, wait)) = next_delay(&settings) else {
            return Err(format!(
                "schedule.cron {:?} has no upcoming time",
                settings.schedule.cron_text
            ));
        };
        tracing::info!(next_run = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "next run");
        let mut reload = false;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); return Ok(()); }
            _ = hup.recv() => { reload = true; }
        }
        if !reload {
            let interrupt = Interrupt::default();
            let job = super::job::run(Command::Run, &settings, false, &interrupt);
            tokio::pin!(job);
            let mut stopping = false;
            let report = loop {
                tokio::select! {
                    report = &mut job => break report,
                    _ = term.recv() => { tracing::info!("SIGTERM during a run: stopping after the current step"); interrupt.raise(); stopping = true; }
                    _ = int.recv() => { tracing::info!("SIGINT during a run: stopping after the current step"); interrupt.raise(); stopping = true; }
                    _ = hup.recv() => { reload = true; }
                }
            };
            print(&report, &out);
            if stopping {
                return Ok(());
            }
        }
        if reload {
            match Settings::load(reload_from.as_deref(), cli_host.as_deref()) {
                Ok((new, _, source)) => {
                    tracing::info!(path = %source.path.display(), "SIGHUP: configuration reloaded");
                    settings = new;
                }
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: new configuration rejected, keeping the old one")
                }
            }
        }
    }
}
