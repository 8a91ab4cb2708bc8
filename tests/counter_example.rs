//! `examples/counter.rs`, built as its header says to run it (`cargo run --example
//! counter`), on a free port given in `PORT`: a client that keeps the cookie counts 1,
//! 2, 3, and one without it starts again at 1.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The running example, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// `GET /` over HTTP/1.1, sending `cookie` if any: the body, and the `Set-Cookie` value.
fn get(port: u16, cookie: Option<&str>) -> (String, Option<String>) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{cookie}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let set_cookie = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("set-cookie")
            .then(|| value.trim().to_owned())
    });
    (body.to_owned(), set_cookie)
}

/// Builds `examples/counter.rs` as `cargo run --example counter` would, with the
/// features this test was built with, and returns the executable. With `--workspace`
/// cargo resolves dependency features as the `cargo test --workspace` that built this
/// test did, so the example it built alongside is reused instead of built again (which
/// takes minutes on a busy machine).
fn build_counter() -> String {
    let features: Vec<&str> = [
        ("axum", cfg!(feature = "axum")),
        ("redis", cfg!(feature = "redis")),
        ("metrics", cfg!(feature = "metrics")),
        ("conformance", cfg!(feature = "conformance")),
        ("encryption", cfg!(feature = "encryption")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--workspace",
        "--example",
        "counter",
        "--message-format=json",
    ]);
    if features.len() == 5 {
        command.arg("--all-features");
    } else {
        command.args(["--no-default-features", "--features", &features.join(",")]);
    }
    // Cargo gives tests its package variables (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...);
    // passed on, they differ from what the outer build saw and make cargo rebuild ring,
    // rustls, redis and this crate.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let keep = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&name.as_ref())
            || name.starts_with("CARGO_BUILD_");
        if name.starts_with("CARGO_") && !keep {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo build --example counter");
    assert!(output.status.success(), "building the example failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "counter")
        .find_map(|message| message["executable"].as_str().map(str::to_owned))
        .expect("cargo names the example's executable")
}

#[test]
fn the_counter_example_counts_visits_in_the_session() {
    let port = free_port();
    let mut example = Running(
        Command::new(build_counter())
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("the counter example"),
    );

    let deadline = Instant::now() + Duration::from_secs(120);
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        if let Some(status) = example.0.try_wait().unwrap() {
            panic!("the example ended before answering: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the example did not answer on port {port} within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (first, cookie) = get(port, None);
    assert_eq!(first, "visit number 1\n");
    let set_cookie = cookie.expect("the first visit sets the session cookie");
    assert!(set_cookie.starts_with("id="), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP needs a cookie without Secure: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap();
    assert_eq!(get(port, Some(cookie)).0, "visit number 2\n");
    assert_eq!(get(port, Some(cookie)).0, "visit number 3\n");
    assert_eq!(get(port, None).0, "visit number 1\n", "a new session");
}

#[test]
fn the_counter_example_says_what_is_wrong_instead_of_panicking() {
    let counter = build_counter();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = taken.local_addr().unwrap().port().to_string();
    for (value, says) in [
        (port.as_str(), format!("cannot listen on 127.0.0.1:{port}")),
        ("70000", "PORT=\"70000\" is not a port number".to_owned()),
    ] {
        let output = Command::new(&counter)
            .env("PORT", value)
            .stdin(Stdio::null())
            .output()
            .expect("the counter example");
        let error = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "PORT={value}: {error}");
        assert!(
            error.contains(&says) && !error.contains("panicked"),
            "{error}"
        );
    }
}
