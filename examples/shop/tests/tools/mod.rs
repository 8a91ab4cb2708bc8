//! The programs a test needs: each on `PATH` (or at a path), or the test is skipped with
//! a loud line; under CI (`CI=true`) a missing one is a failure, never a silent skip.

use std::io::Write as _;

use shop::fleet::on_path;

/// Whether every tool is here: each is a name and the programs that count as it (the
/// first found wins). `test` labels the line printed when one is missing.
pub fn present(test: &str, tools: &[(&str, &[&str])]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(_, programs)| !programs.iter().any(|program| on_path(program)))
        .map(|(tool, _)| *tool)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {missing:?} not installed"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{test}: SKIPPED: {missing:?} not on PATH (.ci/run installs them)"
    );
    false
}
