//! A private, throwaway dockerd for each test, and helpers to build fixtures on it, by role:
//! [`daemon`] (its life), [`api`] (the tests' own view of it), [`fixtures`] (objects made on
//! it), [`tarball`] (images made without a registry), [`registry`] (a private registry to
//! pull from), [`prunegate`] (running prunegate against it and reading its reports), [`relay`]
//! (a hostile daemon: the real one's answers, rewritten as a test says).
//!
//! Tests never touch the machine's own daemon. If the daemon cannot start, the test fails and
//! says what is missing: these tests never skip.
// Each test file uses a different part of these helpers, and its own re-exports.
#![allow(dead_code, unused_imports)]

mod api;
mod daemon;
mod engine;
mod fixtures;
mod prunegate;
mod registry;
mod relay;
mod tarball;

pub use api::*;
pub use daemon::*;
pub use engine::*;
pub use prunegate::*;
pub use registry::*;
pub use relay::*;
pub use tarball::*;
