//! What `/proc` says about processes: which are alive, which belong to a process group,
//! which are the children of a process. A zombie (dead, not yet reaped) counts as dead:
//! it runs nothing and holds no socket.

use std::fs;

/// The fields of `/proc/<pid>/stat` the fleet needs.
struct Stat {
    state: char,
    parent: u32,
    group: u32,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(Stat {
        state,
        parent,
        group,
    })
}

fn is_live(stat: &Stat) -> bool {
    !matches!(stat.state, 'Z' | 'X' | 'x')
}

/// Every process now, with its stat.
fn processes() -> impl Iterator<Item = (u32, Stat)> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
}

/// Whether `pid` is a process that has not died.
pub fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|stat| is_live(&stat))
}

/// The live processes in process group `group`.
pub fn group_members(group: u32) -> Vec<u32> {
    processes()
        .filter(|(_, stat)| stat.group == group && is_live(stat))
        .map(|(pid, _)| pid)
        .collect()
}

/// The live children of `parent`.
pub fn children(parent: u32) -> Vec<u32> {
    processes()
        .filter(|(_, stat)| stat.parent == parent && is_live(stat))
        .map(|(pid, _)| pid)
        .collect()
}

/// The live processes among `leaders` and in their process groups: what is left of
/// processes started as group leaders, and of everything they forked.
pub fn survivors(leaders: &[u32]) -> Vec<u32> {
    let mut left: Vec<u32> = processes()
        .filter(|(pid, stat)| {
            is_live(stat) && (leaders.contains(pid) || leaders.contains(&stat.group))
        })
        .map(|(pid, _)| pid)
        .collect();
    left.sort_unstable();
    left
}
