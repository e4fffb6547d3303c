//! Shoal's local API: what a long-running peer (`shoal daemon`) offers to scripts and to the `shoal` CLI.
//!
//! - [`server`]: the axum [`Router`](axum::Router) over a running [`shoal_node::Node`], every route under
//!   `/api/v1` behind `Authorization: Bearer <token>`, plus `/metrics` (Prometheus text). Testable without a
//!   socket: `server::router(state).oneshot(request)`.
//! - [`daemon`]: runs a node and the API until SIGINT/SIGTERM or `POST /api/v1/stop`; holds `daemon.lock`
//!   so that a second daemon on the same data directory refuses to start; writes `api.addr` and
//!   `api.token` (mode 0600) while it runs and removes them on a clean exit.
//! - [`client`]: finds a running daemon from those files (a stale `api.addr` left by a crashed daemon is
//!   detected: nothing answers) and calls it.
//!
//! - [`types`]: the contract, every request, response and event as a Rust type, shared by the server and the
//!   client; the OpenAPI description at `/api/v1/openapi.json` is derived from them.
//!
//! Routes and examples are in `docs/API.md`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod daemon;
mod error;
pub mod server;
pub mod types;
pub mod typescript;

pub use error::ApiError;
