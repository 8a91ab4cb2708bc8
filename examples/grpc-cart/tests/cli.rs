//! The `grpc-cart` binary as a shell user meets it: `--help` prints usage and exits 0,
//! a bad setting exits 2 naming it, and `grpc-cart client` logs in, adds, reads the cart
//! and logs out against a running server, keeping the token in a file between calls.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_grpc-cart");

/// The server, killed on drop (also when an assertion fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BINARY)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run grpc-cart")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn help_prints_usage_and_exits_0() {
    for args in [&["--help"][..], &["-h"], &["client", "--help"]] {
        let output = run(args, &[]);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stdout.contains("Usage: grpc-cart"), "{args:?}: {stdout}");
    }
    let (stdout, _) = text(&run(&["--help"], &[]));
    for setting in ["PORT", "SESSION_KEYS", "REDIS_URL", "client"] {
        assert!(
            stdout.contains(setting),
            "{setting} missing from --help: {stdout}"
        );
    }
}

#[test]
fn bad_settings_exit_2_and_name_the_setting() {
    for (name, value, says) in [
        ("PORT", "x", "PORT=x is not a port number"),
        ("INSTANCE", "a\u{7}b", "INSTANCE"),
        (
            "SESSION_KEYS",
            "0123456789abcdef0123456789abcdef0123456789abcdef",
            "hex",
        ),
    ] {
        let output = run(&[], &[(name, value)]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn the_client_subcommand_keeps_its_session_between_calls() {
    let port = free_port();
    let server = Server(
        Command::new(BINARY)
            .env("PORT", port.to_string())
            .env("INSTANCE", "cli-test")
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("start the server"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scratch = std::env::temp_dir().join(format!("grpc-cart-cli-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let jar = scratch.join("token");
    let url = format!("http://127.0.0.1:{port}");
    let call = |args: &[&str]| {
        let jar = jar.to_str().unwrap();
        let mut all = vec!["client", "--url", &url, "--jar", jar];
        all.extend_from_slice(args);
        let output = run(&all, &[]);
        let (stdout, stderr) = text(&output);
        (output.status.code(), stdout, stderr)
    };

    let (code, _, stderr) = call(&["cart"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("Unauthenticated"), "{stderr}");

    let (code, stdout, stderr) = call(&["login", "alice"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("logged in as alice") && stdout.contains("cli-test"),
        "{stdout}"
    );
    assert!(token_file_is_private(&jar));
    call(&["add", "socks", "2"]);
    let (_, stdout, _) = call(&["add", "socks", "3"]);
    assert!(stdout.contains("socks: 5"), "{stdout}");
    let (_, stdout, _) = call(&["cart"]);
    assert!(
        stdout.contains("cart of alice") && stdout.contains("5 x socks"),
        "{stdout}"
    );

    let (code, stdout, _) = call(&["logout"]);
    assert_eq!((code, stdout.contains("logged out")), (Some(0), true));
    assert!(!jar.exists(), "the ended session's token is removed");
    let (code, _, _) = call(&["cart"]);
    assert_eq!(code, Some(1));
    drop(server);
    let _ = std::fs::remove_dir_all(&scratch);
}

fn token_file_is_private(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o077 == 0
}
