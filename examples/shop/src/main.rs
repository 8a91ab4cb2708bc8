//! `cargo run -p shop`: the shop on one port; `cargo run -p shop -- fleet`: Redis, N shops
//! and nginx. `shop --help` and `shop fleet --help` list every option and its variable.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::CommandFactory;
use shop::cli::{Cli, Command};
use shop::Config;

fn main() -> ExitCode {
    let cli = Cli::from_process();
    match cli.command {
        Some(Command::Fleet(args)) => shop::fleet::run(args),
        None => {
            let config = Config::from_args(cli.serve).unwrap_or_else(|error| {
                Cli::command()
                    .error(ErrorKind::ValueValidation, error)
                    .exit()
            });
            shop::serve::run(config)
        }
    }
}
