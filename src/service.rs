//! `SessionService`: the middleware itself.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::config::Config;
use crate::failure::OnFailure;
use crate::future::ResponseFuture;
use crate::protocol::Protocol;
use crate::session::Session;

/// Wraps a service with sessions; made by [`SessionLayer`](crate::SessionLayer).
#[derive(Clone)]
pub struct SessionService<S, F> {
    inner: S,
    config: Arc<Config>,
    on_failure: F,
}

impl<S, F> SessionService<S, F> {
    pub(crate) fn new(inner: S, config: Arc<Config>, on_failure: F) -> Self {
        Self {
            inner,
            config,
            on_failure,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: OnFailure<ResBody> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, F, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (session, protocol) = attach_session(&self.config, &mut request);
        // `inner` was driven to readiness by `poll_ready` and is called right here, so
        // there is no need to swap in a clone.
        ResponseFuture::new(
            self.inner.call(request),
            session,
            self.on_failure.clone(),
            protocol,
        )
    }
}

/// Puts the request's `Session` in its extensions; returns it and the request's protocol.
/// The token is only located and copied here: it is verified when the session is first
/// used.
pub(crate) fn attach_session<B>(
    config: &Arc<Config>,
    request: &mut Request<B>,
) -> (Session, Protocol) {
    let token = config.carrier.find(request.headers());
    let protocol = Protocol::of(request.headers());
    let session = Session::new(config.clone(), token);
    request.extensions_mut().insert(session.clone());
    (session, protocol)
}

impl<S: fmt::Debug, F> fmt::Debug for SessionService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("on_failure", &std::any::type_name::<F>())
            .finish()
    }
}
