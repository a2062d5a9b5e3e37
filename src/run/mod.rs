//! The run wing, on top of everything else: read the gate inputs once ([`inputs`]), sequence a
//! command's gates, plan and steps ([`runner`]; the images step image by image where the
//! engine's prune would take cache, [`images`]), wrap it as the job a timer runs with the lock
//! and the sinks ([`job`]), and repeat that on a schedule ([`schedule`]). Functions here call
//! the daemon and the pure deciders in turn; they decide nothing themselves.

pub mod images;
pub mod inputs;
pub mod job;
pub mod recheck;
pub mod record;
pub mod retention;
pub mod runner;
pub mod schedule;

pub use crate::model::Interrupt;
