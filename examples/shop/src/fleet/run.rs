//! `shop fleet`: start a fleet, say where it is, and stop it on Ctrl-C, SIGTERM or
//! SIGHUP.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use super::{control, free_port, Fleet, FleetConfig, FleetStore};
use crate::cli::{FleetArgs, SessionMode};
use crate::signals::StopSignals;

/// Starts Redis (unless given one), the instances and nginx, prints the URL, and stops
/// everything when asked to.
///
/// The fleet's processes lead process groups of their own, so the terminal's Ctrl-C or
/// hangup reaches only this process: it catches them (from before the first start, so
/// none is lost while starting) and stops the fleet, whose processes end with it.
pub fn run(args: FleetArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut stop = {
        let _inside = runtime.enter();
        StopSignals::catch(true)
    };
    let control_port = free_port(None);
    let config = FleetConfig {
        shop_binary: std::env::current_exe().expect("path of this binary"),
        instances: usize::from(args.instances),
        store: match (
            args.database_url.filter(|url| !url.trim().is_empty()),
            args.redis_url.filter(|url| !url.trim().is_empty()),
        ) {
            (Some(url), _) => FleetStore::Env(vec![("DATABASE_URL".to_owned(), url)]),
            (None, Some(url)) => FleetStore::Redis(url),
            (None, None) => FleetStore::OwnRedis(Vec::new()),
        },
        port: args.port,
        env: instance_env(args.session_mode),
        control: Some(control_port),
        balance: args.balance,
    };
    let fleet = match Fleet::start(config) {
        Ok(fleet) => fleet,
        Err(error) => {
            eprintln!("fleet: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "fleet: {} shop instances ({} mode) behind nginx at {}",
        fleet.instances.len(),
        args.session_mode.as_str(),
        fleet.url()
    );
    for instance in &fleet.instances {
        println!(
            "  {} on 127.0.0.1:{}  (log: {})",
            instance.name,
            instance.port,
            instance.log().display()
        );
    }
    if let Some(redis) = &fleet.redis {
        println!("  redis-server on {}", redis.url());
    }
    println!(
        "Open {}/ in a browser: the shop, and a panel to kill and restart instances.",
        fleet.url()
    );
    println!("Ctrl-C stops everything.");
    let fleet = Arc::new(Mutex::new(fleet));
    let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", control_port)));
    match listener {
        Ok(listener) => drop(runtime.spawn(control::serve(fleet.clone(), listener))),
        Err(error) => eprintln!("fleet: no control panel: 127.0.0.1:{control_port}: {error}"),
    }
    runtime.block_on(stop.recv());
    println!("fleet: stopping");
    // The control task holds the fleet: it ends with the runtime, then the fleet stops.
    drop(runtime);
    let logs = {
        let mut fleet = fleet.lock().unwrap_or_else(|p| p.into_inner());
        fleet.keep_logs();
        fleet.dir().to_owned()
    };
    drop(fleet);
    println!("fleet: stopped; the logs are kept in {}", logs.display());
    ExitCode::SUCCESS
}

/// The instances' own settings: the session mode, and object storage for uploads
/// (`UPLOADS_BUCKET` and the `AWS_*` variables) if this process was given it.
fn instance_env(mode: SessionMode) -> Vec<(String, String)> {
    let mut env = vec![("SESSION_MODE".to_owned(), mode.as_str().to_owned())];
    env.extend(
        std::env::vars()
            .filter(|(name, _)| name.starts_with("UPLOADS_") || name.starts_with("AWS_")),
    );
    env
}
