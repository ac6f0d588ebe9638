//! Latchkey's HTTP layer: the JSON API, the HTML pages, forward-auth, extractors, RFC 9457
//! problem answers, security headers, OpenID Connect (`oidc/`) and HTTPS in the server itself.
//!
//! A handler parses its input, calls one use case of `latchkey-service`, and renders the
//! answer: no business rule lives here, and nothing here knows SQL. Errors never carry
//! internal text to the client; the cause goes to the log.

pub mod api;
pub mod app;
pub mod backchannel;
pub mod extract;
mod fallback;
pub mod forward_auth;
mod health;
pub mod input;
pub mod metrics;
mod metrics_access;
pub mod oidc;
pub mod pages;
pub mod problem;
pub mod redirect;
pub mod server;
pub mod state;
pub mod tls;

pub use app::{App, router};
pub use state::{AppState, WebConfig};
