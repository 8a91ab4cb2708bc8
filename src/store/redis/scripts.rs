//! The Lua scripts the store runs, each one round trip (`EVALSHA`, loaded on `NOSCRIPT`).

use std::sync::LazyLock;

use ::redis::Script;

/// Scripts that read and write one session key, with the helpers they share prepended.
macro_rules! session_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/common.lua"), include_str!($file))))
    };
}

/// A session script's "writer's copy" variant: its reply with the session as the script
/// left it (`HGETALL`, read inside the script) in front. Run over a tracking connection,
/// that read also has Redis go on tracking the key for it.
macro_rules! session_script_with_copy {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                "local function run()\n",
                include_str!($file),
                "\nend\nlocal reply = run()\n",
                "table.insert(reply, 1, redis.call('HGETALL', KEYS[1]))\n",
                "return reply\n",
            ))
        })
    };
}

pub(super) static CREATE: LazyLock<Script> = session_script!("lua/create.lua");
pub(super) static APPLY: LazyLock<Script> = session_script!("lua/apply.lua");
pub(super) static CYCLE: LazyLock<Script> = session_script!("lua/cycle.lua");
pub(super) static INCREMENT: LazyLock<Script> = session_script!("lua/increment.lua");
pub(super) static COMPARE_AND_SET: LazyLock<Script> = session_script!("lua/compare_and_set.lua");
pub(super) static APPLY_WITH_COPY: LazyLock<Script> = session_script_with_copy!("lua/apply.lua");
pub(super) static INCREMENT_WITH_COPY: LazyLock<Script> =
    session_script_with_copy!("lua/increment.lua");
pub(super) static COMPARE_AND_SET_WITH_COPY: LazyLock<Script> =
    session_script_with_copy!("lua/compare_and_set.lua");
pub(super) static CYCLE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cycle_finish.lua")));
pub(super) static DESTROY_IF_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/destroy_if_user.lua")));
pub(super) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_add.lua")));
pub(super) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_prune.lua")));
