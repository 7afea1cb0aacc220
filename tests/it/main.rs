//! The one integration-test binary: real PostgreSQL, the real router.

mod access;
mod audit;
mod auth;
mod cache;
mod disclosure;
mod hostile;
mod http;
mod mutations;
mod outcomes;
mod personas;
mod policy;
mod queries;
mod reload;
mod report;
mod requests;
mod retention;
mod rights;
mod schema;
mod support;
mod tracing;
