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

/// A session script's "writer's copy" variant: the script as a function, and its reply
/// with the session's metadata field as the script left it (`:m`, nil once the session is
/// gone) in front (`lua/writers_copy.lua`), from which the writer replays the write on
/// its cached copy. Run over a tracking connection, that read after the script's writes
/// also has Redis go on tracking the key for it.
macro_rules! session_script_with_meta {
    ([$($helpers:literal),*] $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                $(include_str!($helpers),)*
                "local function run()\n",
                include_str!($file),
                include_str!("lua/writers_copy.lua"),
            ))
        })
    };
}

pub(super) static CREATE: LazyLock<Script> =
    session_script!(["lua/change_set.lua"] "lua/create.lua");
pub(super) static APPLY: LazyLock<Script> = session_script!(["lua/change_set.lua"] "lua/apply.lua");
pub(super) static CYCLE: LazyLock<Script> = session_script!(["lua/change_set.lua"] "lua/cycle.lua");
pub(super) static INCREMENT: LazyLock<Script> = session_script!([] "lua/increment.lua");
pub(super) static COMPARE_AND_SET: LazyLock<Script> = session_script!([] "lua/compare_and_set.lua");
pub(super) static APPLY_WITH_META: LazyLock<Script> =
    session_script_with_meta!(["lua/change_set.lua"] "lua/apply.lua");
pub(super) static INCREMENT_WITH_META: LazyLock<Script> =
    session_script_with_meta!([] "lua/increment.lua");
pub(super) static COMPARE_AND_SET_WITH_META: LazyLock<Script> =
    session_script_with_meta!([] "lua/compare_and_set.lua");
pub(super) static CYCLE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cycle_finish.lua")));
pub(super) static DESTROY_IF_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/destroy_if_user.lua")));
pub(super) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_add.lua")));
pub(super) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_prune.lua")));
