//! kasvu-gateway: a GraphQL gateway in front of the KasvuCRM customer register.
//!
//! Layers, with dependencies pointing one way:
//! `http → graphql → {authz, audit, cache, db}`; `db` knows nothing of
//! GraphQL, HTTP or the policy engine.

// `Utc::now` is refused only where answers are cached (src/graphql, clippy.toml).
#![allow(clippy::disallowed_methods)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod register;
pub mod retention;
pub mod rights;
pub mod telemetry;
pub mod validate;
