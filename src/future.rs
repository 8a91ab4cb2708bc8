//! The response future: the handler first, then write-back if the session needs it.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::failure::{OnFailure, Protocol};
use crate::session::Session;
use crate::store::BoxFuture;
use crate::writeback::{self, Outcome, Step};

pin_project! {
    /// Response future of [`SessionService`](crate::SessionService).
    ///
    /// Requests whose session needs no store call complete without allocating here;
    /// only an actual write-back is boxed, as it does I/O anyway.
    pub struct ResponseFuture<Fut, F, B> {
        #[pin]
        state: State<Fut, B>,
        session: Session,
        on_failure: F,
        protocol: Protocol,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Fut, B> {
        Handler { #[pin] future: Fut },
        // Holds the handler's response until the write-back settles what it says.
        WriteBack { future: BoxFuture<'static, Outcome>, response: Option<Response<B>> },
        Done,
    }
}

impl<Fut, F, B> ResponseFuture<Fut, F, B> {
    pub(crate) fn new(future: Fut, session: Session, on_failure: F, protocol: Protocol) -> Self {
        Self {
            state: State::Handler { future },
            session,
            on_failure,
            protocol,
        }
    }
}

impl<Fut, F, B, E> Future for ResponseFuture<Fut, F, B>
where
    Fut: Future<Output = Result<Response<B>, E>>,
    F: OnFailure<B>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Handler { future } => {
                    let response = ready!(future.poll(cx))?;
                    match writeback::plan(
                        this.session,
                        handler_succeeded(&response, *this.protocol),
                    ) {
                        Step::Done(outcome) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(outcome.finish(
                                response,
                                this.session,
                                this.on_failure,
                                *this.protocol,
                            )));
                        }
                        Step::Io(job) => {
                            let future = Box::pin(job.run());
                            this.state.set(State::WriteBack {
                                future,
                                response: Some(response),
                            });
                        }
                    }
                }
                StateProj::WriteBack { future, response } => {
                    let outcome = ready!(future.as_mut().poll(cx));
                    let response = response.take().expect("response is present until Done");
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(outcome.finish(
                        response,
                        this.session,
                        this.on_failure,
                        *this.protocol,
                    )));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// The handler's answer counts as a success worth saving: not 5xx, and for gRPC no
/// failing `grpc-status` in a trailers-only response.
fn handler_succeeded<B>(response: &Response<B>, protocol: Protocol) -> bool {
    if response.status().is_server_error() {
        return false;
    }
    match (protocol, response.headers().get("grpc-status")) {
        (Protocol::Grpc, Some(status)) => status == "0",
        _ => true,
    }
}
