//! Deciding, without I/O, what a request's session needs after the handler: the
//! decision table of ARCHITECTURE.md, row by row.

use crate::backend::SealedToken;
use crate::error::Error;
use crate::id::SessionId;
use crate::keys::Verified;
use crate::record::{ChangeSet, UserChange};
use crate::snapshot::{Incoming, Seen, Snapshot};

/// What the client's token should become.
#[derive(PartialEq, Eq)]
pub(crate) enum CookieUpdate {
    Keep,
    Set(SessionId),
    /// Token mode: a freshly sealed session (none without token mode: see
    /// [`SealedToken`]).
    Sealed(SealedToken),
    Remove,
}

// By hand: a sealed token is the session itself, and Debug never shows it.
impl std::fmt::Debug for CookieUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keep => f.write_str("Keep"),
            Self::Set(id) => f.debug_tuple("Set").field(id).finish(),
            Self::Sealed(_) => f.write_str("Sealed(<redacted>)"),
            Self::Remove => f.write_str("Remove"),
        }
    }
}

/// Token mode hands out a sealed token as this cookie update. (Without feature `token`
/// nothing calls it; being a trait impl, it also keeps `CookieUpdate::Sealed`, which
/// cannot occur then, from counting as dead code.)
impl From<SealedToken> for CookieUpdate {
    fn from(token: SealedToken) -> Self {
        Self::Sealed(token)
    }
}

/// Write-back's result: the token change, and a failure that replaces the response.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) cookie: CookieUpdate,
    pub(crate) failure: Option<Error>,
}

impl Outcome {
    pub(crate) fn cookie(cookie: CookieUpdate) -> Self {
        Self {
            cookie,
            failure: None,
        }
    }
}

/// Either the outcome, known without I/O, or the one store operation still to run.
#[derive(Debug)]
pub(crate) enum Plan {
    Done(Outcome),
    Write(Write),
}

/// One store operation, with the session it targets.
#[derive(Debug)]
pub(crate) enum Write {
    /// A new session under a fresh ID.
    Create(ChangeSet),
    /// Per-key changes to the session, only if it is still live.
    Apply(Target, ChangeSet),
    /// Only a refresh of the idle timeout.
    Touch(Target),
    /// A new ID for the session, with the changes.
    Cycle(Target, ChangeSet),
    /// Logout; changes made after `destroy()` go into a new session.
    Destroy(Target, Option<ChangeSet>),
}

impl Write {
    /// The user this write binds its session to, if it binds one.
    pub(crate) fn bound_user(&self) -> Option<&str> {
        let changes = match self {
            Self::Create(changes)
            | Self::Apply(_, changes)
            | Self::Cycle(_, changes)
            | Self::Destroy(_, Some(changes)) => changes,
            Self::Touch(_) | Self::Destroy(_, None) => return None,
        };
        match &changes.user {
            UserChange::Bind(user) => Some(user),
            UserChange::Keep | UserChange::Unbind => None,
        }
    }

    /// The stored session it targets, if any.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            Self::Create(_) => None,
            Self::Apply(target, _)
            | Self::Touch(target)
            | Self::Cycle(target, _)
            | Self::Destroy(target, _) => Some(target),
        }
    }
}

/// The stored session a write targets.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) session: Incoming,
    /// Whether this request saw it live (loaded it, or wrote to it at once). Then a
    /// session gone at write-back was ended meanwhile, and that logout wins; if not, the
    /// request's cookie was merely stale, and its changes start a new session.
    pub(crate) seen_live: bool,
    /// Created by this request: the client does not have its token yet.
    pub(crate) fresh: bool,
}

impl Target {
    /// The token after a write that kept the session's ID.
    pub(crate) fn kept(&self) -> CookieUpdate {
        match (self.fresh, self.session.verified) {
            (true, _) | (false, Verified::Retiring) => CookieUpdate::Set(self.session.id.clone()),
            // An upcoming key's token is left alone: re-signing it under this instance's
            // (older) signing key would flap against instances that already sign with it.
            (false, Verified::Signing | Verified::Upcoming) => CookieUpdate::Keep,
        }
    }
}

/// Decides what the request's session needs.
///
/// `saved` is false when the handler failed (5xx, or a non-OK gRPC status): then
/// nothing is written, whatever the handler changed.
pub(crate) fn plan(snapshot: Snapshot, saved: bool) -> Plan {
    let Snapshot {
        failure,
        incoming,
        fresh,
        seen,
        changes,
        cycle,
        destroy,
    } = snapshot;
    if let Some(error) = failure {
        return Plan::Done(Outcome {
            cookie: CookieUpdate::Keep,
            failure: Some(error),
        });
    }
    let had_cookie = incoming.is_some();
    let target = match (fresh, incoming) {
        (Some(session), _) => Some(Target {
            session,
            seen_live: true,
            fresh: true,
        }),
        // An incoming ID the store reported missing is never adopted.
        (None, Some(session)) if seen != Seen::Missing => Some(Target {
            session,
            seen_live: matches!(seen, Seen::Live { .. }),
            fresh: false,
        }),
        _ => None,
    };
    if !saved {
        // A session made at once by an immediate operation exists: name it to the client.
        let cookie = match &target {
            Some(target) if target.fresh => target.kept(),
            _ => CookieUpdate::Keep,
        };
        return Plan::Done(Outcome::cookie(cookie));
    }
    let Some(target) = target else {
        // No session to write to: writes start a new one; removals alone need nothing,
        // and a dead cookie is left alone unless the handler called `destroy()`.
        if changes.adds_anything() {
            return Plan::Write(Write::Create(changes));
        }
        let cookie = if destroy && had_cookie {
            CookieUpdate::Remove
        } else {
            CookieUpdate::Keep
        };
        return Plan::Done(Outcome::cookie(cookie));
    };
    let write = if destroy {
        Write::Destroy(target, changes.adds_anything().then_some(changes))
    } else if cycle {
        Write::Cycle(target, changes)
    } else if !changes.is_empty() {
        Write::Apply(target, changes)
    } else if seen
        == (Seen::Live {
            needs_refresh: true,
        })
    {
        Write::Touch(target)
    } else {
        return Plan::Done(Outcome::cookie(target.kept()));
    };
    Plan::Write(write)
}

#[cfg(test)]
mod tests {
    //! One test per row of ARCHITECTURE.md's table "what write-back does".

    use super::*;
    use crate::error::ErrorKind;
    use crate::id::SessionId;

    fn incoming(verified: Verified) -> Incoming {
        Incoming::new(SessionId::generate().unwrap(), verified)
    }

    fn snapshot(seen: Seen) -> Snapshot {
        Snapshot {
            failure: None,
            incoming: Some(incoming(Verified::Signing)),
            fresh: None,
            seen,
            changes: ChangeSet::default(),
            cycle: false,
            destroy: false,
        }
    }

    fn changed(seen: Seen) -> Snapshot {
        Snapshot {
            changes: ChangeSet::default().with_set("k", "1"),
            ..snapshot(seen)
        }
    }

    const LIVE: Seen = Seen::Live {
        needs_refresh: false,
    };

    fn done(plan: Plan) -> Outcome {
        match plan {
            Plan::Done(outcome) => outcome,
            Plan::Write(write) => panic!("expected no store call, got {write:?}"),
        }
    }

    fn write(plan: Plan) -> Write {
        match plan {
            Plan::Write(write) => write,
            Plan::Done(outcome) => panic!("expected a store call, got {outcome:?}"),
        }
    }

    #[test]
    fn a_failed_load_keeps_the_cookie_and_fails_the_response() {
        let failed = Snapshot {
            failure: Some(Error::of_kind(ErrorKind::Store)),
            ..changed(Seen::NotLoaded)
        };
        let outcome = done(plan(failed, true));
        assert_eq!(outcome.cookie, CookieUpdate::Keep);
        assert_eq!(outcome.failure.unwrap().kind(), ErrorKind::Store);
    }

    #[test]
    fn a_failed_handler_saves_nothing() {
        let outcome = done(plan(changed(LIVE), false));
        assert_eq!(outcome.cookie, CookieUpdate::Keep);
        assert!(outcome.failure.is_none());
    }

    #[test]
    fn a_failed_handler_still_names_a_session_made_at_once() {
        let made = Snapshot {
            fresh: Some(incoming(Verified::Signing)),
            ..changed(Seen::Missing)
        };
        assert!(matches!(
            done(plan(made, false)).cookie,
            CookieUpdate::Set(_)
        ));
    }

    #[test]
    fn destroy_deletes_then_creates_what_was_inserted_after() {
        let destroyed = Snapshot {
            destroy: true,
            ..snapshot(LIVE)
        };
        assert!(matches!(
            write(plan(destroyed, true)),
            Write::Destroy(_, None)
        ));
        let reused = Snapshot {
            destroy: true,
            ..changed(Seen::NotLoaded)
        };
        assert!(matches!(
            write(plan(reused, true)),
            Write::Destroy(_, Some(_))
        ));
    }

    #[test]
    fn cycle_moves_a_stored_session() {
        let cycled = Snapshot {
            cycle: true,
            ..snapshot(LIVE)
        };
        assert!(matches!(
            write(plan(cycled, true)),
            Write::Cycle(
                Target {
                    seen_live: true,
                    ..
                },
                _
            )
        ));
    }

    #[test]
    fn changes_apply_to_a_stored_session_knowing_whether_it_was_seen_live() {
        assert!(matches!(
            write(plan(changed(LIVE), true)),
            Write::Apply(
                Target {
                    seen_live: true,
                    ..
                },
                _
            )
        ));
        assert!(matches!(
            write(plan(changed(Seen::NotLoaded), true)),
            Write::Apply(
                Target {
                    seen_live: false,
                    ..
                },
                _
            )
        ));
    }

    #[test]
    fn changes_without_a_stored_session_create_one() {
        assert!(matches!(
            write(plan(changed(Seen::Missing), true)),
            Write::Create(_)
        ));
        let anonymous = Snapshot {
            incoming: None,
            ..changed(Seen::NotLoaded)
        };
        assert!(matches!(write(plan(anonymous, true)), Write::Create(_)));
    }

    #[test]
    fn removals_without_a_stored_session_write_nothing() {
        for changes in [
            ChangeSet::default().with_removed("k"),
            ChangeSet {
                clear: true,
                ..ChangeSet::default()
            },
        ] {
            let anonymous = Snapshot {
                incoming: None,
                changes: changes.clone(),
                ..snapshot(Seen::NotLoaded)
            };
            assert_eq!(done(plan(anonymous, true)).cookie, CookieUpdate::Keep);
            let missing = Snapshot {
                changes,
                ..snapshot(Seen::Missing)
            };
            assert_eq!(done(plan(missing, true)).cookie, CookieUpdate::Keep);
        }
    }

    #[test]
    fn a_session_made_at_once_takes_the_changes_and_its_token_goes_out() {
        let made = Snapshot {
            fresh: Some(incoming(Verified::Signing)),
            ..snapshot(Seen::Missing)
        };
        assert!(matches!(
            done(plan(made, true)).cookie,
            CookieUpdate::Set(_)
        ));
        let made_then_changed = Snapshot {
            fresh: Some(incoming(Verified::Signing)),
            ..changed(Seen::Missing)
        };
        assert!(matches!(
            write(plan(made_then_changed, true)),
            Write::Apply(
                Target {
                    fresh: true,
                    seen_live: true,
                    ..
                },
                _
            )
        ));
    }

    #[test]
    fn a_stale_read_touches() {
        let stale = snapshot(Seen::Live {
            needs_refresh: true,
        });
        assert!(matches!(write(plan(stale, true)), Write::Touch(_)));
    }

    #[test]
    fn untouched_and_fresh_reads_write_nothing() {
        let untouched = Snapshot {
            incoming: None,
            ..snapshot(Seen::NotLoaded)
        };
        assert_eq!(done(plan(untouched, true)).cookie, CookieUpdate::Keep);
        assert_eq!(done(plan(snapshot(LIVE), true)).cookie, CookieUpdate::Keep);
    }

    #[test]
    fn a_fresh_read_reissues_a_retiring_key_token() {
        let old = Snapshot {
            incoming: Some(incoming(Verified::Retiring)),
            ..snapshot(LIVE)
        };
        assert!(matches!(done(plan(old, true)).cookie, CookieUpdate::Set(_)));
    }

    #[test]
    fn an_upcoming_key_token_is_never_reissued() {
        let read = Snapshot {
            incoming: Some(incoming(Verified::Upcoming)),
            ..snapshot(LIVE)
        };
        assert_eq!(done(plan(read, true)).cookie, CookieUpdate::Keep);
        let written = Snapshot {
            incoming: Some(incoming(Verified::Upcoming)),
            ..changed(LIVE)
        };
        let Write::Apply(target, _) = write(plan(written, true)) else {
            panic!("an apply");
        };
        assert_eq!(target.kept(), CookieUpdate::Keep);
    }

    #[test]
    fn a_dead_cookie_is_left_alone_unless_destroy_is_called() {
        assert_eq!(
            done(plan(snapshot(Seen::Missing), true)).cookie,
            CookieUpdate::Keep
        );
        let logout = Snapshot {
            destroy: true,
            ..snapshot(Seen::Missing)
        };
        assert_eq!(done(plan(logout, true)).cookie, CookieUpdate::Remove);
    }
}
