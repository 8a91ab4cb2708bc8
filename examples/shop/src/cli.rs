//! The command line: `shop [OPTIONS]` serves, `shop fleet [OPTIONS]` runs a fleet.
//! Every option can also be given by its environment variable; a flag wins over it.

use crate::fleet::Balance;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// The example shop on tower-stateless: login, cart, checkout, uploads.
///
/// With no subcommand it serves on one port. Any instance can serve any request
/// when the instances share SESSION_KEYS and a Redis.
#[derive(Debug, Parser)]
#[command(
    name = "shop",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "RUST_LOG sets the log filter [default: info,tower_stateless=info]."
)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses this process's arguments and environment; on an error or `--help`, prints
    /// clap's message and exits (code 2 for an error).
    ///
    /// For `shop fleet` the serving options' variables are not read: the fleet gives its
    /// instances their own, and a `PORT` meant for something else must not stop it.
    pub fn from_process() -> Self {
        let fleet = std::env::args_os().nth(1).is_some_and(|arg| arg == "fleet");
        let mut command = Self::command();
        if fleet {
            command = command.mut_args(|arg| arg.env(None::<&str>));
        }
        Self::from_arg_matches(&command.get_matches()).unwrap_or_else(|error| error.exit())
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a fleet on this machine: Redis, N shops and nginx in front.
    ///
    /// A private redis-server (unless given a Redis), N shop instances sharing one random
    /// key, and nginx in front of them. Ctrl-C stops everything.
    Fleet(FleetArgs),
}

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum SessionMode {
    /// In the store (Redis, or this process's memory); the cookie holds a signed ID.
    #[default]
    Store,
    /// Sealed in the cookie itself; Redis, if given, only records revocations.
    Token,
}

impl SessionMode {
    /// The value `SESSION_MODE` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Token => "token",
        }
    }
}

/// How `shop` serves.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where sessions live: `store` (the store holds them, the cookie a signed ID) or
    /// `token` (each session sealed in its cookie; REDIS_URL, if set, records logouts so
    /// that a logged-out cookie is refused by every instance; without it a cookie stays
    /// valid until it expires).
    #[arg(long, env = "SESSION_MODE", value_enum, default_value_t = SessionMode::Store)]
    pub session_mode: SessionMode,

    /// Listening port.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Listening address: an IP address or a host name (`localhost`, `::`).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    // (`help` rather than a doc comment: rustdoc would read `<port>` as HTML.)
    #[arg(
        long,
        env = "INSTANCE",
        help = "Name sent in every response's x-instance header [default: <hostname>:<port>]"
    )]
    pub instance: Option<String>,

    /// Comma-separated base64 keys, at least 32 bytes each; the first signs, the others
    /// only verify (re-issued under the first), or, written `upcoming:<base64>`, are
    /// about to sign (never re-issued) [default: a random key, with a warning]. Prefer
    /// the variable: a command line is visible to every user of the machine.
    #[arg(long, env = "SESSION_KEYS", hide_env_values = true)]
    pub session_keys: Option<String>,

    /// Mark the session cookie Secure (it is then named `__Host-id`, else `id`). Set
    /// false only for plain-HTTP clients, which drop Secure cookies.
    #[arg(
        long,
        env = "COOKIE_SECURE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub cookie_secure: bool,

    /// End a user's oldest logins beyond this many when they log in
    /// again [default: no limit].
    #[arg(long, env = "MAX_SESSIONS_PER_USER", value_name = "N")]
    pub max_sessions_per_user: Option<usize>,

    /// With Redis: keep up to N sessions this instance read in a local cache that Redis
    /// keeps coherent across every instance (reads without a round trip); 0 turns it off.
    #[arg(
        long,
        env = "SESSION_CACHE",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub session_cache: usize,

    /// Encrypt session data at rest: values sealed, field names and user IDs hidden
    /// from whoever can read the store; cart quantities stay plain integers, so adds
    /// remain single atomic store calls. Upload bytes are sealed too, in Redis and in
    /// the bucket. Needs the same SESSION_KEYS on every instance.
    #[arg(
        long,
        env = "SESSION_ENCRYPT",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub session_encrypt: bool,

    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        help = "Keep sessions in this PostgreSQL: postgres://[user:password@]host:port/db \
                (wins over the Redis options, which are then unused; without UPLOADS_BUCKET \
                upload chunks stay in this process's memory) [default: none]"
    )]
    pub database_url: Option<String>,

    #[arg(
        long,
        env = "REDIS_URL",
        value_name = "URL",
        hide_env_values = true,
        help = "Keep sessions in this Redis: redis://[user:password@]host:port[/db], or \
                rediss://... for TLS [default: none: in this process's memory]"
    )]
    pub redis_url: Option<String>,

    /// Keep sessions in this Redis Cluster: host:port,host:port,... (wins over
    /// REDIS_URL) [default: none].
    #[arg(long, env = "REDIS_CLUSTER_NODES", value_name = "NODES")]
    pub redis_cluster_nodes: Option<String>,

    /// Find the Redis master through these Redis Sentinels: host:port,host:port,...,
    /// or redis://:password@host:port for sentinels with a password of their own,
    /// rediss://host:port for TLS (with REDIS_SENTINEL_MASTER; wins over REDIS_URL)
    /// [default: none].
    #[arg(long, env = "REDIS_SENTINELS", value_name = "SENTINELS")]
    pub redis_sentinels: Option<String>,

    #[arg(
        long,
        env = "REDIS_SENTINEL_MASTER",
        value_name = "NAME",
        help = "The master's name in Sentinel (sentinel monitor <name> ...), or a URL with \
                that name in the host's place for the master's and replicas' credentials, TLS \
                and database: redis://user:password@<name>/<db>, rediss://..."
    )]
    pub redis_sentinel_master: Option<String>,

    /// Keep uploads in this bucket of S3-compatible object storage, reached as the
    /// standard AWS_* variables say (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP) [default: none: upload chunks
    /// in Redis, or in this process's memory].
    #[arg(long, env = "UPLOADS_BUCKET", value_name = "BUCKET")]
    pub uploads_bucket: Option<String>,

    /// With UPLOADS_BUCKET: abort an upload not completed this many seconds after it
    /// started.
    #[arg(
        long,
        env = "UPLOADS_EXPIRY",
        default_value_t = 86_400,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub uploads_expiry: u64,
}

/// How `shop fleet` runs.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// Number of shop instances.
    #[arg(
        long,
        env = "FLEET_INSTANCES",
        default_value_t = 3,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub instances: u16,

    /// nginx's port on 127.0.0.1, where the fleet is reached (0: any free port).
    #[arg(long, env = "FLEET_PORT", default_value_t = 8080)]
    pub port: u16,

    /// Use this Redis instead of starting a private redis-server [default: a private
    /// redis-server on a free port].
    #[arg(long, env = "REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Keep the instances' sessions in this PostgreSQL instead of Redis (store mode
    /// only) [default: none].
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Where the instances keep sessions (see `shop --help`); in token mode the fleet's
    /// Redis records revocations.
    #[arg(long, env = "SESSION_MODE", value_enum, default_value_t = SessionMode::Store)]
    pub session_mode: SessionMode,

    /// How nginx spreads requests: `session` sends each session to one instance (by its
    /// cookie), where its session is cached; `round-robin` each request to the next.
    #[arg(long, env = "FLEET_BALANCE", value_enum, default_value_t = Balance::Session)]
    pub balance: Balance,
}

/// Parses `args` as the command line with no environment variable read, for tests that
/// must not depend on the environment they run in.
#[cfg(test)]
pub(crate) fn parse_ignoring_env<const N: usize>(args: [&str; N]) -> Result<Cli, clap::Error> {
    let no_env = |arg: clap::Arg| arg.env(None::<&str>);
    let matches = Cli::command()
        .mut_args(no_env)
        .mut_subcommands(|command| command.mut_args(no_env))
        .try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_arguments_serve_and_fleet_takes_its_own() {
        let cli = parse_ignoring_env(["shop"]).unwrap();
        assert!(cli.command.is_none());
        let cli = parse_ignoring_env(["shop", "fleet", "--instances", "2", "--port", "0"]).unwrap();
        let Some(Command::Fleet(fleet)) = cli.command else {
            panic!("fleet expected");
        };
        assert_eq!((fleet.instances, fleet.port), (2, 0));
        assert_eq!(fleet.session_mode, SessionMode::Store);
        let cli = parse_ignoring_env(["shop", "fleet", "--session-mode", "token"]).unwrap();
        let Some(Command::Fleet(fleet)) = cli.command else {
            panic!("fleet expected");
        };
        assert_eq!(fleet.session_mode, SessionMode::Token);
        let url = "postgres://127.0.0.1:5433/shop";
        let cli = parse_ignoring_env(["shop", "fleet", "--database-url", url]).unwrap();
        let Some(Command::Fleet(fleet)) = cli.command else {
            panic!("fleet expected");
        };
        assert_eq!(fleet.database_url.as_deref(), Some(url));
    }

    #[test]
    fn serve_flags_do_not_go_with_fleet_and_zero_instances_is_an_error() {
        let error = parse_ignoring_env(["shop", "--port", "4000", "fleet"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let error = parse_ignoring_env(["shop", "fleet", "--instances", "0"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
