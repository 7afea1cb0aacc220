//! The real binary: SIGHUP, or a change of the policy files, reloads the
//! policy; an invalid one keeps the old.

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
    for (name, text) in policy_files() {
        std::fs::write(dir.join(name), text).expect("copy");
    }
    let dir_text = dir.to_string_lossy().into_owned();
    let (server, base) =
        start_server(&t, &[("POLICY_DIR", dir_text.as_str()), ("POLICY_WATCH_SECS", "0")]).await;
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
    let v2 = next_version(&client, &url, &token, &v1).await;

    // A broken policy, then SIGHUP: refused, the last good policy stays and requests are served.
    std::fs::write(dir.join("zz_broken.polar"), "hidden(p: Principal, r: Record if;\n")
        .expect("write");
    hup(&server);
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_serving(&client, &url, &token, &v2).await;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes `files` into a new timestamped directory of `root` and points
/// `root/..data` at it with an atomic rename, then links each name to
/// `..data/name`: how the kubelet updates a mounted ConfigMap in place.
fn configmap_update(root: &std::path::Path, generation: &str, files: &[(String, String)]) {
    let data = root.join(format!("..{generation}"));
    std::fs::create_dir_all(&data).expect("dir");
    for (name, text) in files {
        std::fs::write(data.join(name), text).expect("write");
    }
    let tmp = root.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{generation}"), &tmp).expect("link");
    std::fs::rename(&tmp, root.join("..data")).expect("swap");
    for (name, _) in files {
        let link = root.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).expect("link");
        }
    }
}

#[tokio::test]
async fn a_configmap_updated_in_place_is_reloaded_without_a_signal_and_a_broken_one_is_not() {
    let t = TestApp::new().await;
    let root = std::env::temp_dir().join(format!("kasvu-watch-{}", uuid::Uuid::new_v4()));
    let mut files = policy_files();
    configmap_update(&root, "2026_12_01_1", &files);
    let root_text = root.to_string_lossy().into_owned();
    let log = root.with_extension("log");
    let (server, base) = start_server_logging(
        &t,
        &[("POLICY_DIR", root_text.as_str()), ("POLICY_WATCH_SECS", "1")],
        Stdio::from(std::fs::File::create(&log).expect("log")),
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{base}/graphql");
    let token = t.token("TEM", &["viewer", "auditor"]);
    let version = |body: Value| body["data"]["policyVersion"].as_str().unwrap_or("").to_owned();
    let v1 = version(ask(&client, &url, &token, "{ policyVersion }").await);

    // The ConfigMap gains a file: served within a few polls, no signal sent.
    files.push(("zz_note.polar".into(), "# reviewed by the DPO network\n".into()));
    configmap_update(&root, "2026_12_01_2", &files);
    let v2 = next_version(&client, &url, &token, &v1).await;
    assert!(v2.starts_with("sha256:"), "{v2}");

    // A broken update: refused (once, not on every poll), the last good policy stays.
    files.push(("zz_broken.polar".into(), "hidden(p: Principal, r: Record if;\n".into()));
    configmap_update(&root, "2026_12_01_3", &files);
    let refusals = || {
        std::fs::read_to_string(&log).unwrap_or_default().matches("policy reload refused").count()
    };
    let started = Instant::now();
    while refusals() == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the broken policy was not noticed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several more polls: the same broken files are not tried again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    still_serving(&client, &url, &token, &v2).await;
    drop(server);
    assert_eq!(refusals(), 1, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn the_probe_command_succeeds_only_on_a_2xx_answer() {
    let t = TestApp::new().await;
    let (server, base) = start_server(&t, &[]).await;
    let probe = |url: String| {
        let out = Command::new(env!("CARGO_BIN_EXE_kasvu-gateway"))
            .args(["probe", &url, "--timeout-secs", "2"])
            .output()
            .expect("run the probe");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = probe(format!("{base}/readyz"));
    assert!(ok, "{err}");
    let (ok, err) = probe(format!("{base}/no-such-path"));
    assert!(!ok && err.contains("404"), "{err}");
    drop(server);
    let (ok, _) = probe(format!("{base}/readyz"));
    assert!(!ok, "a stopped gateway is not ready");
}

/// The repository's policy files: name and text.
fn policy_files() -> Vec<(String, String)> {
    std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("policies")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "polar"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("read");
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// Waits until the gateway serves a policy version other than `old`; the new one.
async fn next_version(client: &reqwest::Client, url: &str, token: &str, old: &str) -> String {
    let started = Instant::now();
    loop {
        let body = ask(client, url, token, "{ policyVersion }").await;
        let v = body["data"]["policyVersion"].as_str().unwrap_or("").to_owned();
        if v != old {
            return v;
        }
        // Generous: a reload compiles the policy, seconds in a debug build on a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(60), "the policy was not reloaded: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The gateway still serves policy `version` and answers queries.
async fn still_serving(client: &reqwest::Client, url: &str, token: &str, version: &str) {
    let body =
        ask(client, url, token, "{ policyVersion companies(first: 1) { nodes { name } } }").await;
    assert_eq!(body["data"]["policyVersion"], version, "{body}");
    assert!(body["data"]["companies"]["nodes"][0]["name"].is_string(), "{body}");
}
