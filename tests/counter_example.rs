//! `examples/counter.rs` as its header says to run it: `cargo run --example counter`, on
//! a free port given in `PORT`; a client that keeps the cookie counts 1, 2, 3, and one
//! without it starts again at 1.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo run` replaces itself with the example, so killing it stops the example.
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

#[test]
fn the_counter_example_counts_visits_in_the_session() {
    // The features this test was built with, so cargo reuses the example it already built.
    let features: Vec<&str> = [
        ("axum", cfg!(feature = "axum")),
        ("redis", cfg!(feature = "redis")),
    ]
    .into_iter()
    .filter_map(|(feature, on)| on.then_some(feature))
    .collect();
    let port = free_port();
    let mut example = Running(
        Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "run",
                "--quiet",
                "--example",
                "counter",
                "--no-default-features",
            ])
            .args(["--features", &features.join(",")])
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("cargo run --example counter"),
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
