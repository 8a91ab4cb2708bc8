//! The shop's page in a real browser: headless Chromium, driven over WebDriver by
//! chromedriver, in front of a fleet of three instances behind nginx. The user logs in,
//! fills the cart, and uploads a file while the instance that served them is killed from
//! the page's fleet panel; nothing is lost. Screenshots go to the target directory
//! (`browser-screenshots/`), and with `SHOP_SCREENSHOTS=update` also to
//! `examples/shop/screenshots/`, which the README shows.

#![allow(missing_docs)]

mod tools;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shop::fleet::{
    control, free_port, survivors, wait_until_ready, Balance, Fleet, FleetConfig, FleetStore,
    ScratchDir, Started, Supervised,
};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "chromedriver";
/// Every wait for the page gives up after this long.
const PAGE_LIMIT: Duration = Duration::from_secs(60);
/// The upload: 8 chunks of 1 MiB and a short last one.
const FILE_SIZE: usize = 8 * 1024 * 1024 + 12_345;
/// The browser's upload speed while the file goes up (bytes per second), so that the
/// upload is still under way when an instance is killed.
const UPLOAD_THROUGHPUT: u64 = 1024 * 1024;

/// Whether chromium, chromedriver, redis-server and nginx are here. Under CI a missing
/// one is a failure.
fn tools_present() -> bool {
    tools::present(
        "browser",
        &[
            ("chromium", &[CHROMIUM]),
            ("chromedriver", &[CHROMEDRIVER]),
            ("redis-server", &["redis-server"]),
            ("nginx", &["nginx", "/usr/sbin/nginx"]),
        ],
    )
}

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "browser: {line}");
}

/// chromedriver on a free loopback port, in its own process group (with the browsers it
/// starts), stopped on drop.
struct Driver {
    _process: Supervised,
    port: u16,
}

impl Driver {
    fn start(dir: &Path, started: &Started) -> Self {
        let port = free_port(None);
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}"));
        let process = Supervised::spawn(
            "chromedriver",
            command,
            &dir.join("chromedriver.log"),
            Signal::SIGTERM,
            started,
        )
        .expect("chromedriver starts");
        assert!(
            wait_until_ready(
                port,
                // chromedriver answers only a request that names a local host.
                b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                b"HTTP/1.1 200",
                Duration::from_secs(20)
            ),
            "chromedriver answers on port {port}"
        );
        Self {
            _process: process,
            port,
        }
    }
}

/// Headless Chromium with a fresh profile, nothing contacted but the shop.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1250",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let mut capabilities = Capabilities::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

/// chromedriver's network emulation (`POST /session/{id}/chromium/network_conditions`).
#[derive(Debug)]
struct NetworkConditions {
    upload_throughput: u64,
}

impl WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/chromium/network_conditions"))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({
            "network_conditions": {
                "offline": false,
                "latency": 0,
                "download_throughput": 100 * 1024 * 1024,
                "upload_throughput": self.upload_throughput,
            }
        });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The input a `<label>` with exactly this text names: how a user finds it.
fn by_label(label: &str) -> String {
    format!(
        "//input[@id=//label[normalize-space()='{label}']/@for] | //input[@aria-label='{label}']"
    )
}

/// The button with this accessible name (its label, or its text).
fn button(name: &str) -> String {
    format!("//button[@aria-label='{name}' or (not(@aria-label) and normalize-space()='{name}')]")
}

async fn find(client: &Client, xpath: &str) -> Element {
    client
        .wait()
        .at_most(PAGE_LIMIT)
        .for_element(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|error| panic!("{xpath}: {error}"))
}

/// Clicks the button named `name`, found again if the page re-rendered it meanwhile.
async fn click(client: &Client, name: &str) {
    for _ in 0..20 {
        match find(client, &button(name)).await.click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(error))
                if error.error == fantoccini::error::ErrorStatus::StaleElementReference =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("{name}: {error}"),
        }
    }
    panic!("{name}: always re-rendered");
}

async fn fill(client: &Client, label: &str, text: &str) {
    let input = find(client, &by_label(label)).await;
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Runs `script` (its `return` value) until `done` accepts it; the last value.
async fn until(client: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PAGE_LIMIT;
    loop {
        let value = client.execute(script, Vec::new()).await.expect(script);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "waited too long for {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text_of(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .expect(id)
        .text()
        .await
        .expect("text")
}

/// The cart as the shop last answered it: (product, quantity) per row (not the inputs'
/// values, which the test types into).
const CART_ROWS: &str = "return Array.from(document.querySelectorAll('#cart-items tr'), \
     (row) => [row.dataset.sku, row.dataset.qty]);";

async fn cart_is(client: &Client, expected: Value) {
    until(client, &format!("the cart {expected}"), CART_ROWS, |rows| {
        *rows == expected
    })
    .await;
}

/// Waits until the fleet panel shows `instance` in `state` ("running" or "stopped").
async fn fleet_panel_shows(client: &Client, instance: &str, state: &str) {
    let script = format!(
        "return document.querySelector('#fleet-instances tr[data-instance=\"{instance}\"]')\
         .children[2].textContent;"
    );
    until(client, &format!("{instance} {state}"), &script, |shown| {
        *shown == state
    })
    .await;
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    let mut dirs = vec![target];
    if std::env::var("SHOP_SCREENSHOTS").as_deref() == Ok("update") {
        dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path: PathBuf = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("screenshot written");
        report(&format!("screenshot {}", path.display()));
    }
}

fn random_file(dir: &Path) -> (PathBuf, String) {
    let mut bytes = vec![0u8; FILE_SIZE];
    getrandom::fill(&mut bytes).expect("random bytes");
    let path = dir.join("holiday-video.bin");
    std::fs::write(&path, &bytes).expect("file written");
    let digest = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (path, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_shops_and_uploads_while_an_instance_is_killed() {
    if !tools_present() {
        return;
    }
    let scratch = ScratchDir::new("browser").expect("scratch directory");
    let control_port = free_port(None);
    let fleet = tokio::task::spawn_blocking(move || {
        Fleet::start(FleetConfig {
            shop_binary: env!("CARGO_BIN_EXE_shop").into(),
            instances: 3,
            store: FleetStore::OwnRedis(Vec::new()),
            port: 0,
            env: vec![("RUST_LOG".into(), "warn".into())],
            control: Some(control_port),
            balance: Balance::default(),
        })
        .expect("fleet starts")
    })
    .await
    .expect("fleet start joined");
    let url = format!("{}/", fleet.url());
    let fleet = Arc::new(Mutex::new(fleet));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", control_port))
        .await
        .expect("control port");
    let control = tokio::spawn(control::serve(fleet.clone(), listener));
    let started = Started::default();
    let driver = Driver::start(scratch.path(), &started);
    let profile = scratch.path().join("profile");
    let client = browser(&driver, &profile).await;

    let outcome = tokio::time::timeout(
        Duration::from_secs(240),
        shop_and_upload(&client, &url, scratch.path()),
    )
    .await;
    let _ = client.close().await;
    drop(driver);
    control.abort();
    let _ = control.await;
    let fleet = Arc::into_inner(fleet)
        .expect("the control task let go of the fleet")
        .into_inner()
        .unwrap();
    let mut groups = fleet.process_groups();
    drop(fleet);
    groups.extend(started.groups());
    let left = survivors(&groups);
    outcome.expect("the scenario finished in time");
    assert!(left.is_empty(), "alive after the test: {left:?}");
}

async fn shop_and_upload(client: &Client, url: &str, dir: &Path) {
    client.goto(url).await.expect("the page loads");
    find(client, &by_label("User name")).await;
    until(
        client,
        "the fleet panel",
        "return document.querySelectorAll('#fleet-instances tr').length;",
        |rows| *rows == 3,
    )
    .await;
    screenshot(client, "1-login").await;

    fill(client, "User name", "alice").await;
    click(client, "Log in").await;
    until(
        client,
        "the login",
        "return document.getElementById('whoami').textContent;",
        |t| *t == "Logged in as alice",
    )
    .await;

    for (sku, qty) in [("socks", "2"), ("mug", "1"), ("tea", "5")] {
        fill(client, "Product", sku).await;
        fill(client, "Quantity", qty).await;
        click(client, "Add to cart").await;
        until(client, &format!("{sku} in the cart"), CART_ROWS, |rows| {
            rows.as_array()
                .is_some_and(|rows| rows.iter().any(|row| row[0] == sku))
        })
        .await;
    }
    cart_is(client, json!([["mug", "1"], ["socks", "2"], ["tea", "5"]])).await;
    fill(client, "Quantity of mug", "3").await;
    click(client, "Update mug").await;
    cart_is(client, json!([["mug", "3"], ["socks", "2"], ["tea", "5"]])).await;
    click(client, "Remove tea").await;
    cart_is(client, json!([["mug", "3"], ["socks", "2"]])).await;

    // The upload, slowed down to a few seconds, and the instance that served its latest
    // chunk killed while it goes on.
    let (file, digest) = random_file(dir);
    client
        .issue_cmd(NetworkConditions {
            upload_throughput: UPLOAD_THROUGHPUT,
        })
        .await
        .expect("network emulation");
    find(client, &by_label("File"))
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("file chosen");
    click(client, "Upload").await;
    let first_chunk = (1024 * 1024) as f64;
    until(
        client,
        "a first chunk received",
        "return document.getElementById('progress').value;",
        |value| value.as_f64().is_some_and(|v| v >= first_chunk),
    )
    .await;
    let victim = text_of(client, "last-instance").await;
    let at_kill = client
        .execute(
            "return document.getElementById('progress').value;",
            Vec::new(),
        )
        .await
        .expect("progress")
        .as_f64()
        .expect("a number");
    assert!(victim.starts_with("shop-"), "served by {victim}");
    click(client, &format!("Kill {victim}")).await;
    fleet_panel_shows(client, &victim, "stopped").await;
    report(&format!(
        "killed {victim} with {at_kill} of {FILE_SIZE} bytes received"
    ));
    assert!(
        at_kill < FILE_SIZE as f64,
        "the upload was still under way when {victim} was killed"
    );
    screenshot(client, "2-instance-killed-mid-upload").await;

    // Paused between chunks, then resumed: the page asks an instance which chunks it has
    // and sends the rest.
    click(client, "Pause").await;
    let paused = until(
        client,
        "the upload paused",
        "return document.getElementById('upload-status').textContent;",
        |status| {
            status
                .as_str()
                .is_some_and(|s| s.starts_with("Paused at") || s.starts_with("Upload complete"))
        },
    )
    .await;
    assert!(
        paused.as_str().is_some_and(|s| s.starts_with("Paused at")),
        "paused before the end: {paused}"
    );
    click(client, "Resume").await;

    let status = until(
        client,
        "the upload to complete",
        "return document.getElementById('upload-status').textContent;",
        |status| {
            status
                .as_str()
                .is_some_and(|s| s.starts_with("Upload complete"))
        },
    )
    .await;
    let status = status.as_str().unwrap_or_default().to_owned();
    assert!(
        status.contains(&format!("{FILE_SIZE} bytes, SHA-256 {digest} matches")),
        "{status}"
    );
    client
        .issue_cmd(NetworkConditions {
            upload_throughput: 100 * 1024 * 1024,
        })
        .await
        .expect("network emulation off");
    // Chunks after the kill were served by the two others.
    let served: BTreeSet<String> = until(
        client,
        "the request log",
        "return Array.from(document.querySelectorAll('#log li'), (li) => li.textContent);",
        |lines| lines.as_array().is_some_and(|lines| !lines.is_empty()),
    )
    .await
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|line| {
        line.as_str()?
            .rsplit_once(" by ")
            .map(|(_, by)| by.to_owned())
    })
    .collect();
    assert!(served.len() >= 2, "requests served by {served:?}");
    screenshot(client, "3-upload-complete").await;

    // A fresh page load: still logged in, the cart as it was; then check out.
    client.goto(url).await.expect("the page reloads");
    until(
        client,
        "the session",
        "return document.getElementById('whoami').textContent;",
        |t| *t == "Logged in as alice",
    )
    .await;
    cart_is(client, json!([["mug", "3"], ["socks", "2"]])).await;
    click(client, "Check out").await;
    let order = until(
        client,
        "the order",
        "return document.getElementById('order').textContent;",
        |order| order.as_str().is_some_and(|o| o.starts_with("Order ")),
    )
    .await;
    assert!(
        order
            .as_str()
            .is_some_and(|o| o.ends_with("3 × mug, 2 × socks")),
        "{order}"
    );
    cart_is(client, json!([])).await;
    click(client, &format!("Restart {victim}")).await;
    fleet_panel_shows(client, &victim, "running").await;
    screenshot(client, "4-checked-out").await;
    click(client, "Log out").await;
    find(client, &button("Log in")).await;
}
