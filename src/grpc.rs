//! gRPC streams: write the session back when a response's trailers arrive
//! ([`TrailersLayer`], from
//! [`SessionLayer::write_back_at_trailers`](crate::SessionLayer::write_back_at_trailers)).
//!
//! [`SessionLayer`](crate::SessionLayer) judges a call when the response head is ready. A
//! gRPC stream (or any gRPC response that is not trailers-only) tells its status only in
//! its trailers, after the head and the messages: judged at the head, a stream that
//! fails half-way would still save. This layer wraps such a response's body and runs the
//! write-back when the trailers arrive, so a non-OK `grpc-status` there saves nothing,
//! exactly as a unary failure.

use std::convert::Infallible;
use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Config;
use crate::failure::OnFailure;
use crate::future::ResponseFuture;
use crate::plan::{self, Outcome, Plan};
use crate::protocol::{GrpcStatus, Protocol};
use crate::service::attach_session;
use crate::session::Session;
use crate::store::BoxFuture;
use crate::writeback;

/// A [`SessionLayer`](crate::SessionLayer) that writes a gRPC stream's session back when
/// the stream's trailers arrive; made by
/// [`SessionLayer::write_back_at_trailers`](crate::SessionLayer::write_back_at_trailers).
///
/// Plain HTTP and trailers-only gRPC responses are handled exactly as by
/// `SessionLayer`. For any other gRPC response the head goes out at once and the session
/// is judged by the `grpc-status` of the trailers (none at all counts as a failure):
///
/// * a new or changed token travels in the trailers (trailing metadata), not in the
///   response head, and the trailers wait for the one store call;
/// * a failed write-back turns the trailers' status into `UNAVAILABLE` (store outage) or
///   `ABORTED` (the session ended meanwhile); the [`OnFailure`] hook, which answers with
///   a whole response, is not used there, as the head has gone;
/// * a stream the client drops before its trailers saves nothing;
/// * the session's changes wait in memory until the stream ends, and what the handler
///   changes while it streams is saved too.
#[derive(Clone)]
#[must_use]
pub struct TrailersLayer<F> {
    config: Arc<Config>,
    on_failure: F,
}

impl<F> TrailersLayer<F> {
    pub(crate) fn new(config: Arc<Config>, on_failure: F) -> Self {
        Self { config, on_failure }
    }
}

impl<S, F: Clone> Layer<S> for TrailersLayer<F> {
    type Service = TrailersService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        TrailersService {
            inner,
            config: self.config.clone(),
            on_failure: self.on_failure.clone(),
        }
    }
}

impl<F> fmt::Debug for TrailersLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersLayer")
            .field("config", &self.config)
            .field("on_failure", &std::any::type_name::<F>())
            .finish()
    }
}

/// Wraps a service with sessions, writing gRPC streams back at their trailers; made by
/// [`TrailersLayer`].
#[derive(Clone)]
pub struct TrailersService<S, F> {
    inner: S,
    config: Arc<Config>,
    on_failure: F,
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for TrailersService<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: OnFailure<ResBody> + Clone,
{
    type Response = Response<TrailersBody<ResBody>>;
    type Error = S::Error;
    type Future = TrailersFuture<S::Future, F, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (session, protocol) = attach_session(&self.config, &mut request);
        TrailersFuture {
            state: FutureState::Handler {
                future: self.inner.call(request),
                waiting: Some((session, self.on_failure.clone())),
                protocol,
            },
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for TrailersService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersService")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .field("on_failure", &std::any::type_name::<F>())
            .finish()
    }
}

/// What judging at the head would do, reused for the responses judged there.
type AtHead<F, B> = ResponseFuture<Ready<Result<Response<B>, Infallible>>, F, B>;

pin_project! {
    /// Response future of [`TrailersService`].
    pub struct TrailersFuture<Fut, F, B> {
        #[pin]
        state: FutureState<Fut, F, B>,
    }
}

pin_project! {
    #[project = FutureProj]
    enum FutureState<Fut, F, B> {
        Handler { #[pin] future: Fut, waiting: Option<(Session, F)>, protocol: Protocol },
        AtHead { #[pin] future: AtHead<F, B> },
    }
}

impl<Fut, F, B, E> Future for TrailersFuture<Fut, F, B>
where
    Fut: Future<Output = Result<Response<B>, E>>,
    F: OnFailure<B>,
{
    type Output = Result<Response<TrailersBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                FutureProj::Handler {
                    future,
                    waiting,
                    protocol,
                } => {
                    let response = ready!(future.poll(cx))?;
                    let (session, on_failure) = waiting
                        .take()
                        .expect("polled again after the handler answered");
                    if *protocol == Protocol::Grpc && status_in_trailers(&response) {
                        return Poll::Ready(Ok(response.map(|body| TrailersBody {
                            inner: body,
                            stage: Stage::Streaming(session),
                        })));
                    }
                    let protocol = *protocol;
                    state.set(FutureState::AtHead {
                        future: ResponseFuture::new(
                            ready(Ok(response)),
                            session,
                            on_failure,
                            protocol,
                        ),
                    });
                }
                FutureProj::AtHead { future } => {
                    let response = match ready!(future.poll(cx)) {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    return Poll::Ready(Ok(response.map(|body| TrailersBody {
                        inner: body,
                        stage: Stage::Passthrough,
                    })));
                }
            }
        }
    }
}

impl<Fut, F, B> fmt::Debug for TrailersFuture<Fut, F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailersFuture").finish_non_exhaustive()
    }
}

/// Whether a gRPC response leaves its status to the trailers: not trailers-only (no
/// `grpc-status` in the head) and not an HTTP failure, which saves nothing anyway.
fn status_in_trailers<B>(response: &Response<B>) -> bool {
    !response.status().is_server_error() && !response.headers().contains_key("grpc-status")
}

pin_project! {
    /// Response body of [`TrailersService`]: the handler's body, whose trailers wait for
    /// the session's write-back when the call's status is in them.
    pub struct TrailersBody<B> {
        #[pin]
        inner: B,
        stage: Stage,
    }
}

enum Stage {
    /// Judged at the head: nothing to do here.
    Passthrough,
    /// Frames flow; the session waits for the trailers.
    Streaming(Session),
    /// The trailers wait for the store.
    WritingBack {
        session: Session,
        future: BoxFuture<'static, Outcome>,
        trailers: HeaderMap,
    },
    /// Trailers sent, or the stream broke: nothing more.
    Ended,
}

impl<B: Body> Body for TrailersBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        loop {
            match this.stage {
                Stage::Passthrough => return this.inner.poll_frame(cx),
                Stage::Ended => return Poll::Ready(None),
                Stage::WritingBack {
                    session,
                    future,
                    trailers,
                } => {
                    let outcome = ready!(future.as_mut().poll(cx));
                    let mut trailers = std::mem::take(trailers);
                    finish(outcome, &mut trailers, session.config());
                    *this.stage = Stage::Ended;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                Stage::Streaming(_) => {}
            }
            let trailers = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_trailers() {
                    Ok(trailers) => trailers,
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                // The call broke off: no status, nothing saved.
                Some(Err(error)) => {
                    *this.stage = Stage::Ended;
                    return Poll::Ready(Some(Err(error)));
                }
                // No trailers, so no status: not a success.
                None => HeaderMap::new(),
            };
            let Stage::Streaming(session) = std::mem::replace(this.stage, Stage::Ended) else {
                unreachable!("only a streaming body reads frames here");
            };
            let saved = trailers
                .get("grpc-status")
                .is_some_and(|status| status == "0");
            match plan::plan(session.snapshot(), saved) {
                Plan::Done(outcome) => {
                    let mut trailers = trailers;
                    finish(outcome, &mut trailers, session.config());
                    return Poll::Ready(
                        (!trailers.is_empty()).then(|| Ok(Frame::trailers(trailers))),
                    );
                }
                Plan::Write(write) => {
                    let future = Box::pin(writeback::run(
                        session.config_arc(),
                        write,
                        session.expiry(),
                    ));
                    *this.stage = Stage::WritingBack {
                        session,
                        future,
                        trailers,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.stage {
            Stage::Passthrough => self.inner.is_end_stream(),
            Stage::Ended => true,
            Stage::Streaming(_) | Stage::WritingBack { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.stage {
            Stage::Ended => SizeHint::with_exact(0),
            _ => self.inner.size_hint(),
        }
    }
}

impl<B> fmt::Debug for TrailersBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Passthrough => "Passthrough",
            Stage::Streaming(_) => "Streaming",
            Stage::WritingBack { .. } => "WritingBack",
            Stage::Ended => "Ended",
        };
        f.debug_struct("TrailersBody")
            .field("stage", &stage)
            .finish_non_exhaustive()
    }
}

/// Puts the write-back's outcome in the trailers: a failure as the call's status, the
/// token change as trailing metadata.
fn finish(outcome: Outcome, trailers: &mut HeaderMap, config: &Config) {
    if let Some(error) = &outcome.failure {
        tracing::warn!(
            error = %error.chain(),
            "session store call failed; failing the stream"
        );
        crate::metrics::failure_response(error.kind());
        GrpcStatus::of(error.kind()).write_status(trailers);
    }
    crate::writeback::put_token(outcome.cookie, trailers, config);
}
