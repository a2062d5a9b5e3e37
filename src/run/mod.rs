//! The run wing, on top of everything else: read the gate inputs once ([`inputs`]), sequence a
//! command's gates, plan and steps ([`runner`]; the images step image by image where the
//! engine's prune would take cache, [`images`]), wrap it as the job a timer runs with the lock
//! and the sinks ([`job`]), and repeat that on a schedule ([`schedule`]). Functions here call
//! the daemon and the pure deciders in turn; they decide nothing themselves.

pub mod images;
pub mod inputs;
pub mod job;
pub mod recheck;
pub mod retention;
pub mod runner;
pub mod schedule;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Set by SIGTERM/SIGINT; checked only between steps (and between images in a step that
/// deletes one by one), so a decision is never cut in half and a
/// prune the daemon has started is allowed to finish.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
