//! The built `shop` binary's command line: help lists every option with its variable and
//! default, a bad value is clap's error (exit code 2), and no secret is ever printed.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Every variable the shop reads for serving or for `shop fleet`: a test environment
/// that sets one must not change what these tests see.
const VARIABLES: [&str; 10] = [
    "PORT",
    "HOST",
    "INSTANCE",
    "SESSION_KEYS",
    "COOKIE_SECURE",
    "REDIS_URL",
    "REDIS_CLUSTER_NODES",
    "FLEET_INSTANCES",
    "FLEET_PORT",
    "RUST_LOG",
];

/// Runs `shop` with `args` and `env`, killed after 10 s: `--help` must never start a server.
fn shop(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shop starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait for shop").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("shop output");
            panic!(
                "shop {args:?} still running after 10 s; it printed: {}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("shop output")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 help")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 error")
}

/// The lines of the help that describe `--flag` (up to the next option).
fn option_help<'a>(help: &'a str, flag: &str) -> &'a str {
    let start = help
        .find(&format!("      {flag} "))
        .unwrap_or_else(|| panic!("{flag} missing from the help:\n{help}"));
    let rest = &help[start + flag.len() + 6..];
    let end = ["\n      --", "\n  -"]
        .iter()
        .filter_map(|next| rest.find(next))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn help_lists_every_serving_option_with_its_variable_and_default() {
    let output = shop(&["--help"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let help = stdout(&output);
    for (flag, variable, default) in [
        ("--port", "PORT", "[default: 3000]"),
        ("--host", "HOST", "[default: 127.0.0.1]"),
        ("--instance", "INSTANCE", "[default: <hostname>:<port>]"),
        (
            "--session-keys",
            "SESSION_KEYS",
            "[default: a random key, with a warning]",
        ),
        ("--cookie-secure", "COOKIE_SECURE", "[default: true]"),
        (
            "--redis-url",
            "REDIS_URL",
            "[default: none: in this process's memory]",
        ),
        (
            "--redis-cluster-nodes",
            "REDIS_CLUSTER_NODES",
            "[default: none]",
        ),
    ] {
        let text = option_help(&help, flag);
        assert!(
            text.contains(&format!("[env: {variable}")),
            "{flag}: no {variable} in {text:?}"
        );
        assert!(text.contains(default), "{flag}: no {default} in {text:?}");
    }
    assert!(help.contains("fleet"), "the fleet subcommand is listed");
    assert!(help.contains("RUST_LOG"), "the log filter is mentioned");
}

#[test]
fn fleet_help_lists_every_fleet_option_with_its_variable_and_default() {
    let output = shop(&["fleet", "--help"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let help = stdout(&output);
    for (flag, variable, default) in [
        ("--instances", "FLEET_INSTANCES", "[default: 3]"),
        ("--port", "FLEET_PORT", "[default: 8080]"),
        (
            "--redis-url",
            "REDIS_URL",
            "[default: a private redis-server on a free port]",
        ),
    ] {
        let text = option_help(&help, flag);
        assert!(
            text.contains(&format!("[env: {variable}")),
            "{flag}: no {variable} in {text:?}"
        );
        assert!(text.contains(default), "{flag}: no {default} in {text:?}");
    }
}

#[test]
fn secrets_in_the_environment_are_not_printed_by_help() {
    let key = "c2VjcmV0LWtleS1ub3QtdG8tYmUtcHJpbnRlZC1hbnl3aGVyZQ==";
    let url = "redis://shop:hunter2@127.0.0.1:6379";
    let env = [("SESSION_KEYS", key), ("REDIS_URL", url)];
    for args in [&["--help"][..], &["fleet", "--help"][..]] {
        let output = shop(args, &env);
        let help = stdout(&output);
        assert_eq!(output.status.code(), Some(0));
        assert!(help.contains("[env: REDIS_URL]"), "{help}");
        assert!(!help.contains(key), "SESSION_KEYS printed by {args:?}");
        assert!(!help.contains("hunter2"), "REDIS_URL printed by {args:?}");
    }
}

#[test]
fn bad_values_are_clap_errors_with_exit_code_2() {
    for (args, env, expected) in [
        (&[][..], &[("PORT", "abc")][..], "'--port <PORT>'"),
        (
            &[],
            &[("COOKIE_SECURE", "maybe")],
            "'--cookie-secure <BOOL>'",
        ),
        (&["--port", "70000"], &[], "'--port <PORT>'"),
        (&["fleet", "--instances", "0"], &[], "'--instances <N>'"),
        (&["fleet"], &[("FLEET_PORT", "x")], "'--port <PORT>'"),
        (&["--port", "4000", "fleet"], &[], "cannot be used with"),
        (&["--no-such-option"], &[], "unexpected argument"),
    ] {
        let output = shop(args, env);
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {error}");
        assert!(
            error.starts_with("error: ") && error.contains(expected),
            "{args:?} {env:?}: {error}"
        );
        assert!(!error.contains("panicked"), "{error}");
    }
}

#[test]
fn a_bad_key_is_an_error_that_does_not_repeat_it() {
    let key = "c2hvcnQtc2VjcmV0";
    let output = shop(&[], &[("SESSION_KEYS", key)]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(
        error.contains("SESSION_KEYS") && error.contains("at least 32"),
        "{error}"
    );
    assert!(!error.contains(key), "the key was printed: {error}");
}

#[test]
fn startup_mistakes_exit_with_a_message_not_a_panic() {
    // A control character in INSTANCE (it travels in a header): a bad value, exit 2.
    let output = shop(&[], &[("INSTANCE", "a\u{7}b")]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(
        error.contains("INSTANCE") && error.contains("printable"),
        "{error}"
    );
    assert!(!error.contains("panicked"), "{error}");

    // A port already taken: exit 1, naming the address.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = shop(&[], &[("PORT", &port), ("HOST", "localhost")]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains(&format!("cannot listen on localhost:{port}")),
        "{error}"
    );
    assert!(!error.contains("panicked"), "{error}");

    // A REDIS_URL port where no Redis answers: exit 1, naming the setting and address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let url = format!("redis://{address}");
    let output = shop(&[], &[("REDIS_URL", &url)]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains("REDIS_URL") && error.contains(&format!("Redis at {address}")),
        "{error}"
    );

    // Sentinels where none answers: exit 1, naming the setting, the master and the sentinels.
    let sentinels = format!("{address},redis://:secret@{address}");
    let output = shop(
        &[],
        &[
            ("REDIS_SENTINELS", &sentinels),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
        ],
    );
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains("REDIS_SENTINELS")
            && error.contains("\"mymaster\"")
            && error.contains(&format!(
                "Redis Sentinels at redis://{address},redis://***@{address}"
            ))
            && error.contains("refused"),
        "{error}"
    );
    assert!(!error.contains("secret"), "a password was printed: {error}");

    // A sentinel address that is not one: named as such (not "Redis URL did not parse").
    let output = shop(
        &[],
        &[
            ("REDIS_SENTINELS", "127.0.0.1:notaport"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
        ],
    );
    let error = stderr(&output);
    assert_ne!(output.status.code(), Some(0), "{error}");
    assert!(
        error.contains("not a Redis Sentinel address") && error.contains("127.0.0.1:notaport"),
        "{error}"
    );
    assert!(!error.contains("panicked"), "{error}");

    // A DATABASE_URL where no PostgreSQL answers: exit 1, naming the setting and address.
    let url = format!("postgres://shop:secret@{address}/shop");
    let output = shop(&[], &[("DATABASE_URL", &url)]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains("DATABASE_URL")
            && error.contains(&format!("PostgreSQL at postgres://shop@{address}/shop")),
        "{error}"
    );
    assert!(!error.contains("secret"), "a password was printed: {error}");

    // A hex key: refused, with how to make a base64 one.
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let output = shop(&[], &[("SESSION_KEYS", hex)]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("openssl rand -base64 32"), "{error}");
    assert!(!error.contains(hex), "the key was printed: {error}");
}
