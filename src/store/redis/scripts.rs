//! The Lua scripts the store runs, each one round trip (`EVALSHA`, loaded on `NOSCRIPT`).

use std::sync::LazyLock;

use ::redis::Script;

/// Scripts that read and write one session key, with the helpers they share prepended.
macro_rules! session_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/common.lua"), include_str!($file))))
    };
}

pub(super) static CREATE: LazyLock<Script> = session_script!("lua/create.lua");
pub(super) static APPLY: LazyLock<Script> = session_script!("lua/apply.lua");
pub(super) static CYCLE: LazyLock<Script> = session_script!("lua/cycle.lua");
pub(super) static INCREMENT: LazyLock<Script> = session_script!("lua/increment.lua");
pub(super) static COMPARE_AND_SET: LazyLock<Script> = session_script!("lua/compare_and_set.lua");
pub(super) static CYCLE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cycle_finish.lua")));
pub(super) static DESTROY_IF_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/destroy_if_user.lua")));
pub(super) static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_add.lua")));
pub(super) static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_prune.lua")));
