//! The end-to-end tests: the real binary on port 0, driven over HTTP and through its CLI, with
//! the tools we did not write (oathtool, Chromium, nginx, openssl, curl, schemathesis) where a
//! behaviour needs them. One test binary, so it is linked once and its tests share the cores;
//! what needs no binary is tested in the crates below it (`latchkey-service/tests/flows/`
//! on a test clock). `timing.rs` stays a binary of its own: its medians need a quiet CPU.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod browser;
mod cli;
mod crash;
mod docs;
mod fuzz;
mod hygiene;
mod login;
mod multinode;
mod nginx;
mod oidc;
mod oidc_client;
mod oidc_refusals;
mod oidc_rules;
mod outage;
mod pages;
mod robustness;
mod tls;
mod transient;
