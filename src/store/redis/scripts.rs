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
    /// The writer's copy: the script as a function, with the write generation of the
    /// session the writer's cache holds as an extra first argument
    /// (`lua/writers_copy_start.lua`), and its reply with what the cache keeps in front
    /// (`lua/writers_copy.lua`): the session's metadata, from which the writer replays its
    /// write on that copy, or the whole session if other writes came between.
    pub(super) copy: Script,
}

/// A [`SessionWrite`] from the script `$file` and the helpers it uses (after
/// `lua/common.lua`).
macro_rules! session_write {
    ([$($helpers:literal),*] $file:literal) => {
        LazyLock::new(|| {
            let script = |start: &str, function: &str, end: &str| {
                Script::new(&[
                    start,
                    include_str!("lua/common.lua"),
                    $(include_str!($helpers),)*
                    function,
                    include_str!($file),
                    end,
                ].concat())
            };
            SessionWrite {
                plain: script("", "", ""),
                copy: script(
                    include_str!("lua/writers_copy_start.lua"),
                    "local function run()\n",
                    include_str!("lua/writers_copy.lua"),
                ),
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
