//! The real binary: SIGHUP reloads the policy; an invalid one keeps the old.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::TestApp;

/// A gateway process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hup(server: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP");
}

/// POSTs `query` as `token` to a running gateway's GraphQL URL; the JSON answer.
pub async fn ask(client: &reqwest::Client, url: &str, token: &str, query: &str) -> Value {
    let res = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("request");
    res.json().await.expect("json")
}

/// Starts the real binary on the test's database and waits until it is
/// ready; `env` adds to or overrides its environment.
pub async fn start_server(t: &TestApp, env: &[(&str, &str)]) -> (Server, String) {
    start_server_logging(t, env, Stdio::null()).await
}

/// The same, its log (stderr) going to `log`.
pub async fn start_server_logging(
    t: &TestApp,
    env: &[(&str, &str)],
    log: Stdio,
) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kasvu-gateway"));
    cmd.args(["serve", "--no-migrate"])
        .env("DATABASE_URL", &t.db_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("POLICY_DIR", PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .env("JWT_DEV_KEY_FILE", &t.jwt.dev_key_file)
        .env("JWT_ISSUER", &t.jwt.issuer)
        .env("JWT_AUDIENCE", &t.jwt.audience)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().expect("start the gateway"));
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the gateway did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, base)
}

#[tokio::test]
async fn sighup_reloads_the_policy_and_an_invalid_policy_keeps_the_old_one() {
    let t = TestApp::new().await;
    let dir = std::env::temp_dir().join(format!("kasvu-reload-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    for entry in std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("policies")
        .flatten()
    {
        if entry.path().extension().is_some_and(|x| x == "polar") {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
        }
    }
    let dir_text = dir.to_string_lossy().into_owned();
    let (server, base) = start_server(&t, &[("POLICY_DIR", dir_text.as_str())]).await;
    let client = reqwest::Client::new();
    let url = format!("{base}/graphql");
    // The policy version is class `audit`: an auditor reads it.
    let token = t.token("TEM", &["viewer", "auditor"]);
    let version = |body: Value| body["data"]["policyVersion"].as_str().unwrap_or("").to_owned();
    let v1 = version(ask(&client, &url, &token, "{ policyVersion }").await);
    assert!(v1.starts_with("sha256:"));

    // An operator's change, then SIGHUP: the new version is served.
    std::fs::write(dir.join("zz_note.polar"), "# reviewed by the DPO network\n").expect("write");
    hup(&server);
    let started = Instant::now();
    let v2 = loop {
        let v = version(ask(&client, &url, &token, "{ policyVersion }").await);
        if v != v1 {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the policy was not reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // A broken policy, then SIGHUP: refused, the last good policy stays and requests are served.
    std::fs::write(dir.join("zz_broken.polar"), "hidden(p: Principal, r: Record if;\n")
        .expect("write");
    hup(&server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let body =
        ask(&client, &url, &token, "{ policyVersion companies(first: 1) { nodes { name } } }")
            .await;
    assert_eq!(version(body.clone()), v2, "{body}");
    assert!(body["data"]["companies"]["nodes"][0]["name"].is_string(), "{body}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
