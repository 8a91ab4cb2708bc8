//! The Lua scripts the store runs, each one round trip (`EVALSHA`, loaded on `NOSCRIPT`).

use std::sync::LazyLock;

use ::redis::Script;

/// Scripts that read and write one session key, with the helpers they share prepended
/// (`lua/common.lua`, then any of the listed ones).
macro_rules! session_script {
    ([$($helpers:literal),*] $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                $(include_str!($helpers),)*
                include_str!($file),
            ))
        })
    };
}

/// A script that writes one session, in the two forms the store runs it in.
pub(super) struct SessionWrite {
    /// As it is: no cache to keep a copy in.
    pub(super) plain: Script,
    /// The script as a function, and its reply with the whole session as the script left
    /// it in front (`lua/writers_whole.lua`), which the writer's cache keeps as a read's.
    /// Run over a tracking connection, that read after the script's writes also has Redis
    /// go on tracking the key for the writer.
    pub(super) whole: Script,
}

/// A [`SessionWrite`] from the script `$file` and the helpers it uses (after
/// `lua/common.lua`).
macro_rules! session_write {
    ([$($helpers:literal),*] $file:literal) => {
        LazyLock::new(|| {
            let script = |before: &str, after: &str| {
                Script::new(&[
                    include_str!("lua/common.lua"),
                    $(include_str!($helpers),)*
                    before,
                    include_str!($file),
                    after,
                ].concat())
            };
            SessionWrite {
                plain: script("", ""),
                whole: script("local function run()\n", include_str!("lua/writers_whole.lua")),
            }
        })
    };
}

pub(super) static CREATE: LazyLock<Script> =
    session_script!(["lua/change_set.lua"] "lua/create.lua");
pub(super) static CYCLE: LazyLock<Script> = session_script!(["lua/change_set.lua"] "lua/cycle.lua");
pub(super) static APPLY: LazyLock<SessionWrite> =
    session_write!(["lua/change_set.lua"] "lua/apply.lua");
pub(super) static INCREMENT: LazyLock<SessionWrite> = session_write!([] "lua/increment.lua");
pub(super) static COMPARE_AND_SET: LazyLock<SessionWrite> =
    session_write!([] "lua/compare_and_set.lua");
pub(super) static CYCLE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cycle_finish.lua")));
pub(super) static DESTROY_IF_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/destroy_if_user.lua")));
pub(super) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_add.lua")));
pub(super) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_prune.lua")));
