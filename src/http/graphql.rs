//! POST and GET /graphql (GraphQL over HTTP).
//!
//! Order of checks: content type (a CSRF guard: only `application/json` POSTs,
//! which a browser cannot send cross-site without a preflight), authentication
//! (401), purpose header (400), body (413 by the body limit layer), batch size,
//! aliases and root fields, then execution under a timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_graphql::dataloader::DataLoader;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request, Response as GqlResponse, ServerError, Value};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::log::RequestSummary;
use super::HttpState;
use crate::audit::{self, Decided, Recorder, Subject};
use crate::auth::{self, Actor};
use crate::authz::{Principal, Visibility};
use crate::error::{AppError, ErrorCode, REQUEST_ID};
use crate::graphql::loader::DbReader;
use crate::graphql::{limits, Receipts, RequestContext};
use futures::FutureExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use crate::authz::engine::REQUEST_QUERIES;

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// An error response outside GraphQL execution.
fn error_response(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    request_id: &str,
) -> Response {
    error_response_with(status, code, message, request_id, None)
}

/// The same, naming the audit event that recorded a denial.
fn error_response_with(
    status: StatusCode,
    code: ErrorCode,
    message: &str,
    request_id: &str,
    audit_event: Option<uuid::Uuid>,
) -> Response {
    let mut extensions = serde_json::json!({ "code": code.as_str() });
    if let Some(id) = audit_event {
        extensions["auditEventId"] = serde_json::Value::String(id.to_string());
    }
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": extensions }],
        "extensions": { "requestId": request_id },
    });
    let mut res =
        (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    if code == ErrorCode::Unauthenticated {
        let challenge = format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    with_request_id(res, request_id)
}

fn with_request_id(mut res: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// Who asks, as the policy sees them, and what they may see.
struct Who {
    actor: Actor,
    principal: Principal,
    visibility: Arc<Visibility>,
    /// The policy in force when the request came in; it decides the whole request.
    authorizer: Arc<crate::authz::Authorizer>,
    /// Policy queries this request has cost so far (admission included).
    queries: Arc<AtomicU64>,
    /// Who and which request, for the audit events.
    subject: Subject,
    /// The request's log line.
    summary: Arc<RequestSummary>,
}

/// The policy's request-level decision: an actor it refuses outright (R6,
/// R8) gets 403 for the whole request. Otherwise the actor's visibility, which
/// costs policy queries the first time a kind of actor is seen (memoized after).
async fn admit(
    s: &HttpState,
    actor: Actor,
    request_id: &str,
    headers: &HeaderMap,
    summary: Arc<RequestSummary>,
) -> Result<Who, Response> {
    let principal = Principal::of(&actor);
    let authorizer = s.app.authorizer();
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    // The request's one trace id (see http::log): the audit trail, the logs,
    // the errors and the exported trace name the same.
    let trace_id = summary.trace_id().unwrap_or_else(|| audit::trace_id(traceparent));
    let subject = Subject::of(&actor, request_id, Some(&trace_id), authorizer.version());
    summary.actor(&subject.org, &subject.roles, subject.trace_id.as_deref());
    let policy = authorizer.clone();
    let p = principal.clone();
    let queries = Arc::new(AtomicU64::new(0));
    let counted = queries.clone();
    // Remembered for every request after a profile's first; otherwise the
    // policy is evaluated off the async workers.
    let decided = match authorizer.admission_memoized(&p) {
        Some(d) => Ok(Ok(d)),
        None => {
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                REQUEST_QUERIES.sync_scope(counted, || match authorizer.refused(&p)? {
                    Some(rule) => Ok(Err(rule)),
                    None => Ok(Ok(authorizer.visibility(&p)?)),
                })
            })
            .await
        }
    };
    // A policy that cannot be evaluated fails closed, and says so only in the log.
    let fail = |cause: String| {
        tracing::error!(request_id, error = %cause, "policy evaluation failed");
        let m = format!("internal error (request {request_id})");
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalServerError,
            &m,
            request_id,
        )
    };
    match decided {
        Ok(Ok(Ok(visibility))) => {
            Ok(Who { actor, principal, visibility, authorizer: policy, queries, subject, summary })
        }
        Ok(Ok(Err(rule))) => {
            // A refused request is a denial like any other: recorded before
            // the answer, which names the event.
            let recorder = Recorder::new(subject);
            let event = recorder.push(Decided {
                action: "request".to_owned(),
                resource_type: "request".to_owned(),
                rules: vec![rule.clone()],
                ..Decided::default()
            });
            let events = recorder.finish();
            summary.executed(None, &events);
            s.app.metrics.observe_denial([rule.as_str()]);
            if s.app.audit.record(events).await.is_err() {
                return Err(error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Unavailable,
                    &AppError::Unavailable("the audit trail").to_string(),
                    request_id,
                ));
            }
            let m = format!("access denied: this request is refused by rule {rule}");
            Err(error_response_with(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                &m,
                request_id,
                Some(event),
            ))
        }
        Ok(Err(e)) => Err(fail(format!("{e:#}"))),
        Err(e) => Err(fail(e.to_string())),
    }
}

async fn authenticate(
    s: &HttpState,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<Actor, Response> {
    let unauthenticated = |m: String| {
        error_response(StatusCode::UNAUTHORIZED, ErrorCode::Unauthenticated, &m, request_id)
    };
    let token = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => return Err(unauthenticated(auth::AuthError::Missing.to_string())),
        Some(Err(_)) => return Err(unauthenticated("Authorization header is not text".into())),
        Some(Ok(v)) => match v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            Some(t) => t.trim(),
            None => return Err(unauthenticated("Authorization must be 'Bearer <token>'".into())),
        },
    };
    let claims = s.app.verifier.verify(token).await.map_err(|e| unauthenticated(e.to_string()))?;
    let mut purposes = headers.get_all("x-processing-purpose").iter();
    let purpose_header = purposes.next().map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let purpose = if purposes.next().is_some() {
        Err("X-Processing-Purpose is given more than once; send one purpose".to_owned())
    } else {
        auth::parse_purpose(purpose_header)
    }
    .map_err(|m| {
        error_response(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &m, request_id)
    })?;
    auth::actor_from_claims(claims, purpose).map_err(|e| unauthenticated(e.to_string()))
}

/// Who asks, authenticated and admitted; or the response that refuses them.
async fn authorized(
    s: &HttpState,
    headers: &HeaderMap,
    request_id: &str,
    summary: Option<Extension<Arc<RequestSummary>>>,
) -> Result<Who, Response> {
    let actor = authenticate(s, headers, request_id).await?;
    // The person's budget, before any work is done for them.
    if let Err(wait) = s.app.limiter.check(actor.org.as_str(), &actor.sub).await {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut res = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            &format!("too many requests: try again in {} s", secs.max(1)),
            request_id,
        );
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        return Err(res);
    }
    let summary = summary.map(|Extension(s)| s).unwrap_or_default();
    // The request's admission: the actor's facts as the policy sees them
    // (never who the person is) and whether the whole request is refused.
    let span = tracing::info_span!(
        "authz.admit",
        authz.org = actor.org.as_str(),
        authz.roles = %actor.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","),
        authz.purpose = actor.purpose.as_str(),
        authz.in_eu_eea = actor.in_eu_eea(),
        authz.refused = tracing::field::Empty,
    );
    let admitted = tracing::Instrument::instrument(
        admit(s, actor, request_id, headers, summary),
        span.clone(),
    )
    .await;
    span.record("authz.refused", admitted.is_err());
    admitted
}

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(GRAPHQL_RESPONSE_JSON))
}

pub async fn post(
    State(s): State<HttpState>,
    summary: Option<Extension<Arc<RequestSummary>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media != "application/json" {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadUserInput,
            "POST /graphql takes Content-Type: application/json",
            &request_id,
        );
    }
    let who = match authorized(&s, &headers, &request_id, summary).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let m = format!(
                "the request body is larger than {} bytes, the most allowed",
                s.app.config.limits.max_body_bytes
            );
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::QueryTooComplex,
                &m,
                &request_id,
            );
        }
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("the request body could not be read: {rejection}"),
                &request_id,
            )
        }
    };
    // The JSON deserializer recurses: bound the nesting before it runs.
    if let Some(res) = too_nested("the request body", &String::from_utf8_lossy(&body), &request_id)
    {
        return res;
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("body is not a GraphQL request: {e}"),
                &request_id,
            )
        }
    };
    let requests = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(rs) if rs.is_empty() => {
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                "empty batch",
                &request_id,
            )
        }
        BatchRequest::Batch(rs) if rs.len() > s.app.config.limits.max_batch => {
            let m = format!(
                "batch of {}; at most {} requests are allowed",
                rs.len(),
                s.app.config.limits.max_batch
            );
            return error_response(
                StatusCode::BAD_REQUEST,
                ErrorCode::QueryTooComplex,
                &m,
                &request_id,
            );
        }
        BatchRequest::Batch(rs) => rs,
    };
    let mut requests = requests;
    for r in &mut requests {
        if let Err(refused) = s.persisted(r).await {
            return persisted_refusal(refused, &request_id);
        }
        if let Some(res) = too_nested("the query", &r.query, &request_id) {
            return res;
        }
    }
    let single = requests.len() == 1;
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        responses.push(execute(&s, &who, &request_id, request, false).await);
    }
    respond(responses, single, &headers, &request_id, who.subject.trace_id.as_deref())
}

pub async fn get(
    State(s): State<HttpState>,
    summary: Option<Extension<Arc<RequestSummary>>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let who = match authorized(&s, &headers, &request_id, summary).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let query = params.get("query").cloned().unwrap_or_default();
    for (what, text) in [
        ("the query", Some(&query)),
        ("the variables", params.get("variables")),
        ("the extensions", params.get("extensions")),
    ] {
        if let Some(res) = too_nested(what, text.map_or("", String::as_str), &request_id) {
            return res;
        }
    }
    let mut request = Request::new(query);
    if let Some(ext) = params.get("extensions") {
        match serde_json::from_str(ext) {
            Ok(e) => request.extensions = e,
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    "extensions is not a JSON object",
                    &request_id,
                )
            }
        }
    }
    if let Err(refused) = s.persisted(&mut request).await {
        return persisted_refusal(refused, &request_id);
    }
    if request.query.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadUserInput,
            "missing query parameter",
            &request_id,
        );
    }
    if let Some(name) = params.get("operationName") {
        request = request.operation_name(name.clone());
    }
    if let Some(vars) = params.get("variables") {
        match serde_json::from_str(vars) {
            Ok(v) => request = request.variables(v),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    "variables is not JSON",
                    &request_id,
                )
            }
        }
    }
    let response = execute(&s, &who, &request_id, request, true).await;
    if response.http_status == Some(StatusCode::METHOD_NOT_ALLOWED) {
        let mut res = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadUserInput,
            "mutations need POST",
            &request_id,
        );
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    respond(vec![response], true, &headers, &request_id, who.subject.trace_id.as_deref())
}

/// A persisted query the gateway does not know: Apollo's clients recognise
/// the message and send the document with its hash (code `NOT_FOUND`, of
/// the contract's closed set). A malformed one, or a document that does not
/// have the hash sent with it: 400.
fn persisted_refusal(refused: super::persisted::Refused, request_id: &str) -> Response {
    match refused {
        super::persisted::Refused::NotFound => error_response(
            StatusCode::OK,
            ErrorCode::NotFound,
            "PersistedQueryNotFound",
            request_id,
        ),
        super::persisted::Refused::Bad(m) => {
            error_response(StatusCode::BAD_REQUEST, ErrorCode::BadUserInput, &m, request_id)
        }
    }
}

/// 400 `QUERY_TOO_COMPLEX` for text nested deeper than the parsers may
/// recurse (`limits::MAX_NESTING`), before any parser sees it.
fn too_nested(what: &str, text: &str, request_id: &str) -> Option<Response> {
    limits::check_nesting(what, text).err().map(|e| {
        error_response(
            StatusCode::BAD_REQUEST,
            ErrorCode::QueryTooComplex,
            &e.to_string(),
            request_id,
        )
    })
}

struct Executed {
    inner: GqlResponse,
    http_status: Option<StatusCode>,
    /// A cached answer's data, as stored (then `inner.data` is unused).
    raw_data: Option<Vec<u8>>,
    /// A cached answer's errors, as sent (then `inner.errors` is empty).
    raw_errors: Option<Vec<u8>>,
}

impl Executed {
    fn of(inner: GqlResponse) -> Self {
        Executed { inner, http_status: None, raw_data: None, raw_errors: None }
    }

    /// The answer as values (reading a cached answer's data and errors).
    fn materialized(mut self) -> GqlResponse {
        if let Some(raw) = self.raw_data.take() {
            self.inner.data = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        }
        if let Some(raw) = self.raw_errors.take() {
            self.inner.errors = serde_json::from_slice(&raw).unwrap_or_default();
        }
        self.inner
    }
}

/// An error of the whole request: it has no place in the document, so no
/// `locations` (a `line 0` would point nowhere).
fn gql_error(err: AppError) -> GqlResponse {
    let e: async_graphql::Error = err.into();
    let mut e = e.into_server_error(async_graphql::Pos::default());
    e.locations.clear();
    GqlResponse::from_errors(vec![e])
}

async fn execute(
    s: &HttpState,
    who: &Who,
    request_id: &str,
    request: Request,
    get_only: bool,
) -> Executed {
    let started = Instant::now();
    let mut operation = request.operation_name.clone();
    let mut operation_kind: Option<&'static str> = None;
    // What a trace may say of the document: its hash, never its variables.
    let document_hash = {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(request.query.as_bytes())[..16])
    };
    // Parse once for our own limits; a document that does not parse is left
    // to the executor, which reports the syntax error in the usual way.
    let mut projection = crate::db::project::Projection::all();
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
        projection = crate::graphql::loader::projection(&doc, &s.app.shapes);
        operation = operation.or_else(|| limits::sole_operation_name(&doc));
        operation_kind = match limits::operation_type(&doc, operation.as_deref()) {
            Some(OperationType::Query) => Some("query"),
            Some(OperationType::Mutation) => Some("mutation"),
            Some(OperationType::Subscription) => Some("subscription"),
            None => None,
        };
        if get_only
            && limits::operation_type(&doc, operation.as_deref()) == Some(OperationType::Mutation)
        {
            return Executed {
                http_status: Some(StatusCode::METHOD_NOT_ALLOWED),
                ..Executed::of(GqlResponse::default())
            };
        }
        let checked = limits::check(&doc, &s.app.config.limits)
            .and_then(|()| limits::check_inputs(&doc, &request.variables, &s.app.config.limits));
        if let Err(e) = checked {
            s.app.metrics.observe(operation.as_deref(), "refused", started.elapsed().as_secs_f64());
            return Executed::of(gql_error(e));
        }
    }
    let recorder = Arc::new(Recorder::new(who.subject.clone()));
    let receipts = Arc::new(Receipts::default());
    let span = tracing::info_span!(
        "graphql.execute",
        otel.name = %format!("{} {}", operation_kind.unwrap_or("query"), operation.as_deref().unwrap_or("anonymous")),
        graphql.operation.name = operation.as_deref().unwrap_or(""),
        graphql.operation.type = operation_kind.unwrap_or(""),
        graphql.document = %document_hash,
        authz.org = %who.subject.org,
        authz.roles = %who.subject.roles.join(","),
        authz.purpose = %who.subject.purpose,
        authz.decisions_denied = tracing::field::Empty,
        authz.denied_rules = tracing::field::Empty,
        audit.events = tracing::field::Empty,
        cache = tracing::field::Empty,
    );
    // The cache (src/http/cached.rs): a query may be answered from it; its
    // recorded events are then recorded again for this request.
    let plan =
        s.plan(&who.principal, who.authorizer.version(), &request, operation_kind == Some("query"));
    let hit = match &plan {
        Ok(p) => s.cached(p, &recorder, who.subject.trace_id.as_deref().unwrap_or_default()).await,
        Err(reason) => {
            s.app.metrics.cache.bypass(reason);
            None
        }
    };
    // What the execution reads is observed only when its answer may be stored.
    let reads = plan.is_ok().then(crate::db::reads::ReadSet::default);
    let cache_state = match (&plan, &hit) {
        (_, Some(_)) => "hit",
        (Ok(_), None) => "miss",
        (Err(_), _) => "bypass",
    };
    span.record("cache", cache_state);
    let (mut raw_data, mut raw_errors) = (None, None);
    let mut response = match hit {
        Some(hit) => {
            raw_data = Some(hit.data);
            raw_errors = hit.errors;
            GqlResponse::default()
        }
        None => {
            let tracked = reads.clone();
            let request = request.data(RequestContext {
                actor: who.actor.clone(),
                principal: who.principal.clone(),
                authorizer: who.authorizer.clone(),
                actor_table: who.authorizer.actor_table(&who.principal),
                visibility: who.visibility.clone(),
                request_id: request_id.to_owned(),
                projection,
                // The loader's batches run in tasks of their own: they carry
                // the execution's read set and span (their statements'
                // parent) along.
                loader: DataLoader::with_cache(
                    DbReader::new(s.app.pool.clone(), who.visibility.clone(), projection),
                    move |fut| {
                        let fut = tracing::Instrument::in_current_span(fut);
                        match &tracked {
                            Some(r) => tokio::spawn(crate::db::reads::READS.scope(r.clone(), fut)),
                            None => tokio::spawn(fut),
                        }
                    },
                    crate::graphql::loader::LoaderCache::new(),
                ),
                audit: recorder.clone(),
                receipts: receipts.clone(),
                hints: Default::default(),
            });
            let timeout = Duration::from_secs(s.app.config.limits.request_timeout_secs);
            let run = REQUEST_ID.scope(
                request_id.to_owned(),
                REQUEST_QUERIES.scope(who.queries.clone(), s.schema.execute(request)),
            );
            let run = async {
                match &reads {
                    Some(r) => crate::db::reads::READS.scope(r.clone(), run).await,
                    None => run.await,
                }
            };
            let run = catching_panics(run, request_id);
            let run = tracing::Instrument::instrument(run, span.clone());
            match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(request_id, "request timed out");
                    gql_error(AppError::Unavailable("the gateway (request timed out)"))
                }
            }
        }
    };
    // Fail closed: nothing the events record is sent unless they are stored.
    let events = recorder.finish();
    who.summary.executed(operation.as_deref(), &events);
    let mut denied_rules: Vec<&str> = events
        .iter()
        .filter(|e| !e.decided.allowed)
        .flat_map(|e| e.decided.rules.iter().map(String::as_str))
        .collect();
    denied_rules.sort_unstable();
    denied_rules.dedup();
    // i64: the OpenTelemetry layer exports u64 fields as strings.
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    span.record(
        "authz.decisions_denied",
        count(events.iter().filter(|e| !e.decided.allowed).count()),
    );
    span.record("authz.denied_rules", denied_rules.join(","));
    span.record("audit.events", count(events.len()));
    for e in events.iter().filter(|e| !e.decided.allowed) {
        s.app.metrics.observe_denial(e.decided.rules.iter().map(String::as_str));
    }
    let commit =
        tracing::info_span!(parent: &span, "audit.commit", audit.events = count(events.len()));
    // Prepared before the events go to the writer; stored once they are committed.
    let entry = match (plan, cache_state) {
        (Ok(plan), "miss") => match s.prepare(plan, &response, &events, &reads.unwrap_or_default())
        {
            Ok(entry) => Some(entry),
            Err(reason) => {
                s.app.metrics.cache.bypass(reason);
                None
            }
        },
        _ => None,
    };
    let stored = tracing::Instrument::instrument(s.app.audit.record(events), commit).await;
    if stored.is_err() {
        (raw_data, raw_errors) = (None, None);
        response = REQUEST_ID.sync_scope(request_id.to_owned(), || {
            gql_error(AppError::Unavailable("the audit trail"))
        });
    } else if let Some((key, entry)) = entry {
        s.app.cache.put(key, entry);
    }
    if operation_kind == Some("mutation") {
        s.app.refresh_versions().await;
    }
    mark_outcomes(s, &mut response, &receipts.all()).await;
    // A cached answer's errors are the policy's (only such answers are kept).
    let outcome =
        if raw_errors.is_some() { "partial" } else { outcome(&response, raw_data.is_some()) };
    s.app.metrics.observe(operation.as_deref(), outcome, started.elapsed().as_secs_f64());
    // Taken and reset: in a batch, admission is counted with the first request.
    s.app.metrics.observe_policy_queries(who.queries.swap(0, Ordering::Relaxed));
    Executed { inner: response, http_status: None, raw_data, raw_errors }
}

/// How a request ended, for `kasvu_graphql_requests_total`: `ok`; `partial`
/// when data was served and every error is a field the actor may not see
/// (FORBIDDEN or NOT_FOUND at a path: the policy working, not a fault); else
/// `error`.
fn outcome(response: &GqlResponse, cached_data: bool) -> &'static str {
    let policy_only = response.errors.iter().all(|e| {
        !e.path.is_empty()
            && e.extensions.as_ref().and_then(|x| x.get("code")).is_some_and(
                |c| matches!(c, Value::String(s) if s == "FORBIDDEN" || s == "NOT_FOUND"),
            )
    });
    match (response.errors.is_empty(), cached_data || response.data != Value::Null) {
        (true, _) => "ok",
        (false, true) if policy_only => "partial",
        _ => "error",
    }
}

/// An answer that failed after a change reached its commit says what became
/// of the change, so a client neither repeats a change that was made nor
/// trusts one that may not have been: `extensions.outcome` is `committed`
/// when the change's receipt (its own audit event, written in its
/// transaction) is stored, and `unknown` when it is not or the trail cannot
/// be asked. An error without an outcome means no change reached its commit.
async fn mark_outcomes(s: &HttpState, response: &mut GqlResponse, receipts: &[(String, Uuid)]) {
    let failed = |e: &ServerError| {
        let code = e.extensions.as_ref().and_then(|x| x.get("code").cloned());
        matches!(code, Some(Value::String(c)) if c == ErrorCode::Unavailable.as_str()
            || c == ErrorCode::InternalServerError.as_str())
    };
    if receipts.is_empty() || !response.errors.iter().any(failed) {
        return;
    }
    let ids: Vec<Uuid> = receipts.iter().map(|(_, id)| *id).collect();
    let stored = async {
        let mut conn = s.app.pool.get().await.ok()?;
        tokio::time::timeout(Duration::from_secs(2), crate::db::audit::stored_ids(&mut conn, &ids))
            .await
            .ok()?
            .ok()
    }
    .await
    .unwrap_or_default();
    for e in response.errors.iter_mut().filter(|e| failed(e)) {
        // An error of the whole request concerns every change; a field's, its mutation's.
        let root = match e.path.first() {
            Some(async_graphql::PathSegment::Field(f)) => Some(f.clone()),
            _ => None,
        };
        let mine: Vec<Uuid> = receipts
            .iter()
            .filter(|(field, _)| root.as_ref().is_none_or(|r| r == field))
            .map(|(_, id)| *id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let committed = mine.iter().all(|id| stored.contains(id));
        let outcome = if committed { "committed" } else { "unknown" };
        e.message.push_str(if committed {
            " (the change was committed: read it again rather than repeat it)"
        } else {
            " (whether the change was committed is unknown: read it again before repeating it, or repeat it with the same idempotencyKey)"
        });
        e.extensions.get_or_insert_with(Default::default).set("outcome", outcome);
    }
}

/// Runs an execution; a panic anywhere in it (a resolver, the executor)
/// fails this request alone with INTERNAL_SERVER_ERROR, never the process.
async fn catching_panics(
    run: impl std::future::Future<Output = GqlResponse>,
    request_id: &str,
) -> GqlResponse {
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(r) => r,
        Err(panic) => REQUEST_ID.sync_scope(request_id.to_owned(), || {
            gql_error(AppError::internal_msg(format!(
                "panic while executing the request: {}",
                crate::error::panic_message(&*panic)
            )))
        }),
    }
}

/// Every error gets a code from the closed set: the executor's own parse and
/// validation errors have none and are the client's input errors. A parse
/// error's multi-line report becomes one readable line (its position stays
/// in `locations`).
fn with_codes(mut response: GqlResponse, request_id: &str, trace_id: Option<&str>) -> GqlResponse {
    for err in &mut response.errors {
        let has_code = err.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if !has_code {
            let code = ErrorCode::BadUserInput;
            if err.message.contains('\n') {
                err.message = one_line(&err.message);
            }
            err.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
        }
        // The trace an operator finds the error in (logs, spans, audit events).
        if let Some(trace_id) = trace_id {
            err.extensions.get_or_insert_with(Default::default).set("traceId", trace_id);
        }
    }
    response.extensions.insert("requestId".to_owned(), Value::String(request_id.to_owned()));
    response
}

/// A request error in GraphQL over HTTP's sense: the request never executed
/// (it did not parse or validate, a limit or the audit trail refused it), so
/// its errors have no path. An execution whose `data` became null through a
/// non-null field's error is no request error.
fn request_error(r: &GqlResponse) -> bool {
    r.data == Value::Null && !r.errors.is_empty() && r.errors.iter().all(|e| e.path.is_empty())
}

/// One response's JSON body, written straight from the executor's values
/// (no intermediate `serde_json::Value`, which cost a copy of every string
/// and a sorted map per object), keys in the order of the query.
#[derive(serde::Serialize)]
struct Body {
    /// Absent for a request error answered as `application/graphql-response+json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ServerError>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: std::collections::BTreeMap<String, Value>,
}

/// Writes one response's JSON body to `out`. A cached answer's data and
/// errors are JSON text written as they are (the cache wrote them with
/// serde_json, and the body's keys come in the same order).
fn write_body(
    e: Executed,
    graphql_response: bool,
    request_id: &str,
    trace_id: Option<&str>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let (r, raw, raw_errors) = (e.inner, e.raw_data, e.raw_errors);
    let omit_data = raw.is_none() && graphql_response && request_error(&r);
    let r = with_codes(r, request_id, trace_id);
    let Some(data) = raw else {
        let body = Body {
            data: (!omit_data).then_some(r.data),
            errors: r.errors,
            extensions: r.extensions,
        };
        return serde_json::to_writer(out, &body);
    };
    out.extend_from_slice(b"{\"data\":");
    out.extend_from_slice(&data);
    if let Some(errors) = raw_errors {
        out.extend_from_slice(b",\"errors\":");
        out.extend_from_slice(&errors);
    }
    if !r.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut *out, &r.extensions)?;
    }
    out.push(b'}');
    Ok(())
}

/// A parser's report (` --> 1:3`, the source line, `= expected name`) as
/// one line: what was expected, where.
fn one_line(report: &str) -> String {
    let expected = report.lines().rev().find_map(|l| l.trim().strip_prefix("= "));
    let at =
        report.lines().find_map(|l| l.trim().strip_prefix("--> ")).and_then(|p| p.split_once(':'));
    match (expected, at) {
        (Some(e), Some((line, column))) => {
            format!("syntax error at line {line}, column {column}: {e}")
        }
        (Some(e), None) => format!("syntax error: {e}"),
        _ => report.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn respond(
    mut responses: Vec<Executed>,
    single: bool,
    headers: &HeaderMap,
    request_id: &str,
    trace_id: Option<&str>,
) -> Response {
    let graphql_response = wants_graphql_response(headers);
    let (status, body) = if single && responses.len() == 1 {
        let e = responses.remove(0);
        // application/graphql-response+json: a request error is a 4xx
        // (or 5xx); application/json is always 200.
        let status = if graphql_response && e.raw_data.is_none() && request_error(&e.inner) {
            status_for(&e.inner.errors)
        } else {
            StatusCode::OK
        };
        let mut out = Vec::new();
        (status, write_body(e, graphql_response, request_id, trace_id, &mut out).map(|()| out))
    } else {
        let mut out = vec![b'['];
        let written = responses.into_iter().enumerate().try_for_each(|(i, e)| {
            if i > 0 {
                out.push(b',');
            }
            write_body(e, graphql_response, request_id, trace_id, &mut out)
        });
        out.push(b']');
        (StatusCode::OK, written.map(|()| out))
    };
    let content_type = if graphql_response { GRAPHQL_RESPONSE_JSON } else { "application/json" };
    let res = match body {
        Ok(b) => (status, [(header::CONTENT_TYPE, content_type)], b).into_response(),
        Err(e) => {
            tracing::error!(request_id, error = %e, "response serialisation failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    with_request_id(res, request_id)
}

fn status_for(errors: &[ServerError]) -> StatusCode {
    let code =
        errors.first().and_then(|e| e.extensions.as_ref()).and_then(|x| x.get("code").cloned());
    match code {
        Some(Value::String(c)) if c == ErrorCode::Unavailable.as_str() => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Some(Value::String(c)) if c == ErrorCode::InternalServerError.as_str() => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Every field of the report, for the JSON download.
const REPORT_QUERY: &str = "query SubjectAccessReport($id: ID!) { subjectAccessReport(contactId: $id) { \
  contactId generatedAt matchedBy \
  contacts { id registeredBy companyId personalData { column class value } legalBasis source restricted \
    objectionPending marketingObjection legalHold createdAt lastProcessedAt erasedAt } \
  services { id contactId kind title provider status requestedAt deliveredAt legalBasis source notes } \
  changes { contactId field oldValue newValue redacted changedByOrg changedAt } \
  requests { id kind receivedBy receivedAt deadline status resolution } \
  recipients { organization kind firstRead lastRead reads fieldClasses } } }";

/// `GET /reports/subject-access/{contactId}`: the subject access report as a
/// JSON download. It runs the GraphQL field itself, so authorization,
/// auditing and errors are the same as over /graphql; an error is its HTTP
/// status (403, 404, 400, 503) with the usual error body.
pub async fn subject_access_report(
    State(s): State<HttpState>,
    summary: Option<Extension<Arc<RequestSummary>>>,
    headers: HeaderMap,
    axum::extract::Path(contact_id): axum::extract::Path<String>,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let who = match authorized(&s, &headers, &request_id, summary).await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let request = Request::new(REPORT_QUERY)
        .variables(async_graphql::Variables::from_json(serde_json::json!({ "id": contact_id })))
        .operation_name("SubjectAccessReport");
    let executed = execute(&s, &who, &request_id, request, true).await.materialized();
    if !executed.errors.is_empty() {
        let status = match status_for(&executed.errors) {
            StatusCode::BAD_REQUEST => {
                let code =
                    executed.errors[0].extensions.as_ref().and_then(|x| x.get("code").cloned());
                match code {
                    Some(Value::String(c)) if c == ErrorCode::Forbidden.as_str() => {
                        StatusCode::FORBIDDEN
                    }
                    Some(Value::String(c)) if c == ErrorCode::NotFound.as_str() => {
                        StatusCode::NOT_FOUND
                    }
                    _ => StatusCode::BAD_REQUEST,
                }
            }
            other => other,
        };
        let body = serde_json::to_string(&with_codes(
            executed,
            &request_id,
            who.subject.trace_id.as_deref(),
        ))
        .unwrap_or_default();
        let res = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        return with_request_id(res, &request_id);
    }
    let report = executed
        .data
        .into_json()
        .ok()
        .and_then(|mut d| d.get_mut("subjectAccessReport").map(serde_json::Value::take))
        .unwrap_or(serde_json::Value::Null);
    let disposition = format!(
        "attachment; filename=\"subject-access-{}.json\"",
        contact_id.chars().filter(|c| c.is_ascii_hexdigit() || *c == '-').collect::<String>()
    );
    let mut res =
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], report.to_string())
            .into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    with_request_id(res, &request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    struct Query;

    #[Object]
    impl Query {
        async fn fine(&self) -> i32 {
            1
        }
        async fn boom(&self) -> i32 {
            if std::hint::black_box(true) {
                panic!("secret detail");
            }
            0
        }
    }

    #[test]
    fn a_parse_error_is_one_readable_line() {
        let err = async_graphql::parser::parse_query("{ viewer { ").expect_err("a syntax error");
        let m = one_line(&err.to_string());
        assert!(!m.contains('\n'), "{m}");
        assert!(m.starts_with("syntax error at line 1, column"), "{m}");
        assert!(m.contains("expected"), "{m}");
    }

    #[tokio::test]
    async fn a_panicking_resolver_fails_its_request_alone() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let r = catching_panics(schema.execute("{ fine boom }"), "req-1").await;
        assert_eq!(r.errors.len(), 1);
        let e = &r.errors[0];
        assert_eq!(e.message, "internal error (request req-1)");
        let code = e.extensions.as_ref().and_then(|x| x.get("code").cloned());
        assert_eq!(code, Some(Value::String("INTERNAL_SERVER_ERROR".into())));
        // The same schema serves the next request.
        let r = catching_panics(schema.execute("{ fine }"), "req-2").await;
        assert!(r.errors.is_empty());
    }
}
