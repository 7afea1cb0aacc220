//! One log line per HTTP request, at info (health, readiness and metrics
//! probes at debug): method, path, status, duration, request and trace id,
//! the GraphQL operation, the actor's organisation and roles (never the
//! subject's values), how many decisions were denied and how many audit
//! events were written.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::audit::AuditEvent;

/// What the handler learnt about the request, for its log line.
#[derive(Default)]
pub struct RequestSummary(Mutex<Fields>);

#[derive(Default, Clone)]
struct Fields {
    operations: Vec<String>,
    org: Option<String>,
    roles: Vec<String>,
    trace_id: Option<String>,
    denied: usize,
    audit_events: usize,
}

impl RequestSummary {
    fn fields(&self) -> std::sync::MutexGuard<'_, Fields> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The request's trace id (set first, by the middleware).
    pub fn set_trace_id(&self, trace_id: &str) {
        self.fields().trace_id = Some(trace_id.to_owned());
    }

    pub fn trace_id(&self) -> Option<String> {
        self.fields().trace_id.clone()
    }

    /// Who asked (once authenticated).
    pub fn actor(&self, org: &str, roles: &[String], trace_id: Option<&str>) {
        let mut f = self.fields();
        f.org = Some(org.to_owned());
        f.roles = roles.to_vec();
        f.trace_id = trace_id.map(str::to_owned);
    }

    /// One executed GraphQL request (a batch has several) and its events.
    pub fn executed(&self, operation: Option<&str>, events: &[AuditEvent]) {
        let mut f = self.fields();
        f.operations.push(operation.unwrap_or("-").to_owned());
        f.denied += events.iter().filter(|e| !e.decided.allowed).count();
        f.audit_events += events.len();
    }
}

/// The middleware: hands the handlers a [`RequestSummary`], logs the line.
pub async fn log_requests(mut req: Request, next: Next) -> Response {
    let summary = Arc::new(RequestSummary::default());
    req.extensions_mut().insert(summary.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The route, not the path: a report's path names a person's record.
    let route = if path.starts_with("/reports/subject-access/") {
        "/reports/subject-access/{contactId}"
    } else {
        path.as_str()
    };
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    crate::telemetry::set_remote_parent(&span, req.headers());
    // One trace id for the request's logs, spans, audit events and errors:
    // the exported trace's, else the caller's traceparent's, else a new one.
    let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let trace_id = span
        .in_scope(crate::telemetry::current_trace_id)
        .unwrap_or_else(|| crate::audit::trace_id(traceparent));
    span.record("trace_id", trace_id.as_str());
    summary.set_trace_id(&trace_id);
    let started = Instant::now();
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = res.status().as_u16();
    // i64: the OpenTelemetry layer exports u64 fields as strings.
    span.record("http.response.status_code", i64::from(status));
    crate::telemetry::inject_context(&span, res.headers_mut());
    let _entered = span.enter();
    let request_id =
        res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let f = summary.fields().clone();
    let operation = f.operations.join(",");
    let roles = f.roles.join(",");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                method = %method,
                path,
                status,
                duration_ms = format!("{duration_ms:.1}"),
                request_id,
                trace_id = f.trace_id.as_deref().unwrap_or("-"),
                operation,
                org = f.org.as_deref().unwrap_or("-"),
                roles,
                denied = f.denied,
                audit_events = f.audit_events,
                "request"
            )
        };
    }
    if matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics") {
        line!(debug);
    } else {
        line!(info);
    }
    res
}
