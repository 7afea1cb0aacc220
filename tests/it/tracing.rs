//! OpenTelemetry: the real binary exports its spans over OTLP/HTTP to a
//! receiver this test runs, which decodes the protobuf it gets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};

use crate::support::TestApp;

type Received = Arc<Mutex<Vec<Vec<u8>>>>;

/// An OTLP/HTTP trace receiver on a free port: keeps every body it gets.
async fn receiver() -> (String, Received) {
    let bodies: Received = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().expect("lock").push(body.to_vec());
                ([(axum::http::header::CONTENT_TYPE, "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), bodies)
}

/// An OTLP/gRPC trace receiver on a free port.
async fn grpc_receiver() -> (String, Received) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
        TraceService, TraceServiceServer,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;

    struct Collector(Received);

    #[async_trait::async_trait]
    impl TraceService for Collector {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().expect("lock").push(request.into_inner().encode_to_vec());
            Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
        }
    }

    let bodies: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Collector(bodies.clone())))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);
    (format!("http://{addr}"), bodies)
}

fn spans(bodies: &[Vec<u8>]) -> Vec<Span> {
    bodies
        .iter()
        .filter_map(|b| ExportTraceServiceRequest::decode(b.as_slice()).ok())
        .flat_map(|r| r.resource_spans)
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The personal values a response served: people's names and emails.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("firstName" | "lastName" | "email", Value::String(s)) => out.push(s.clone()),
                    _ => strings(v, out),
                }
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_dashboard_request_is_one_trace_with_named_spans_and_no_personal_value() {
    let t = TestApp::new().await;
    let (endpoint, received) = receiver().await;
    let (server, base) = crate::reload::start_server(
        &t,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "kasvu-gateway-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/graphql"))
        .bearer_auth(t.token("TEM", &["viewer"]))
        .header("traceparent", format!("00-{trace_id}-{parent}-01"))
        .json(&json!({"query": "query Dash { companies(first: 20) { nodes { name municipality contacts { firstName lastName email services { kind status } } } } }"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let echoed =
        res.headers().get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(echoed.starts_with(&format!("00-{trace_id}-")), "{echoed}");
    let body: Value = res.json().await.expect("json");
    assert!(body.get("errors").is_none(), "{body}");
    let mut served = Vec::new();
    strings(&body["data"], &mut served);
    assert!(served.iter().any(|s| s.contains('@')), "the page serves emails");
    // A denial's error names the trace.
    let denied = crate::reload::ask(
        &client,
        &format!("{base}/graphql"),
        &t.token("MMM", &["viewer"]),
        "{ contacts(first: 1) { nodes { homeCountry } } }",
    )
    .await;
    let error_trace = denied["errors"][0]["extensions"]["traceId"].as_str().unwrap_or("");
    assert_eq!(error_trace.len(), 32, "{denied}");

    // Wait for the batch to arrive.
    let started = Instant::now();
    let want = hex_bytes(trace_id);
    let ours = loop {
        let got = spans(&received.lock().expect("lock"));
        let ours: Vec<Span> = got.into_iter().filter(|s| s.trace_id == want).collect();
        if ours.iter().any(|s| s.name == "POST /graphql")
            && ours.iter().any(|s| s.name == "audit.commit")
        {
            break ours;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no complete trace received: {ours:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let by_name = |n: &str| ours.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let http = by_name("POST /graphql");
    let http = http.first().expect("the HTTP span");
    assert_eq!(http.parent_span_id, hex_bytes(parent), "child of the caller's span");
    assert!(
        matches!(attr(http, "http.response.status_code"), Some(AnyValue::IntValue(200))),
        "{:?}",
        http.attributes
    );
    let admit = by_name("authz.admit");
    let admit = admit.first().expect("the admission span");
    assert_eq!(admit.parent_span_id, http.span_id);
    assert!(matches!(attr(admit, "authz.in_eu_eea"), Some(AnyValue::BoolValue(true))));
    let graphql = by_name("query Dash");
    let graphql = graphql.first().expect("the GraphQL span");
    assert_eq!(graphql.parent_span_id, http.span_id);
    assert!(
        matches!(attr(graphql, "graphql.document"), Some(AnyValue::StringValue(h)) if h.len() == 32)
    );
    assert!(matches!(attr(graphql, "authz.org"), Some(AnyValue::StringValue(o)) if o == "TEM"));
    let db: Vec<&Span> = ours.iter().filter(|s| s.name.starts_with("SELECT")).collect();
    assert!(
        db.len() >= 3,
        "one statement per level: {:?}",
        ours.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(db.iter().all(
        |s| matches!(attr(s, "db.system.name"), Some(AnyValue::StringValue(v)) if v == "postgresql")
    ));
    // No orphans: every span's parent is the caller's or another span of the trace.
    for s in &ours {
        assert!(
            s.parent_span_id == hex_bytes(parent)
                || ours.iter().any(|p| p.span_id == s.parent_span_id),
            "{} has no parent in the trace",
            s.name
        );
    }
    // Nothing personal anywhere in what was exported.
    let raw: Vec<u8> = received.lock().expect("lock").concat();
    let raw = String::from_utf8_lossy(&raw);
    assert!(served.len() > 20, "{served:?}");
    for value in &served {
        assert!(!raw.contains(value.as_str()), "{value} reached the trace export");
    }
    // For the record: the trace as the receiver saw it.
    for s in &ours {
        let ms = (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)) as f64 / 1e6;
        eprintln!("span {:<28} {:>8.2} ms", s.name, ms);
    }
    drop(server);
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect()
}

#[tokio::test]
async fn traces_also_go_out_over_grpc() {
    let t = TestApp::new().await;
    let (endpoint, received) = grpc_receiver().await;
    let (server, base) = crate::reload::start_server(
        &t,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let res = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(t.token("TEM", &["viewer"]))
        .json(&json!({"query": "query Small { companies(first: 3) { nodes { name } } }"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    loop {
        let names: Vec<String> =
            spans(&received.lock().expect("lock")).into_iter().map(|s| s.name).collect();
        if names.iter().any(|n| n == "query Small") && names.iter().any(|n| n == "POST /graphql") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "nothing over gRPC: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(server);
}
