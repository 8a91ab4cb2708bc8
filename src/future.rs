//! The response future: the handler first, then write-back if the session needs it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::failure::OnFailure;
use crate::plan::{self, Outcome, Plan};
use crate::protocol::Protocol;
use crate::session::Session;
use crate::store::BoxFuture;
use crate::writeback;

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
            let (outcome, response) = match this.state.as_mut().project() {
                StateProj::Handler { future } => {
                    let response = ready!(future.poll(cx))?;
                    let saved = this.protocol.succeeded(&response);
                    match plan::plan(this.session.snapshot(), saved) {
                        Plan::Done(outcome) => (outcome, response),
                        Plan::Write(write) => {
                            let run = writeback::run(
                                this.session.config_arc(),
                                write,
                                this.session.expiry(),
                            );
                            this.state.set(State::WriteBack {
                                future: Box::pin(run),
                                response: Some(response),
                            });
                            continue;
                        }
                    }
                }
                StateProj::WriteBack { future, response } => {
                    let outcome = ready!(future.as_mut().poll(cx));
                    let response = response.take().expect("response is present until Done");
                    (outcome, response)
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            };
            this.state.set(State::Done);
            let config = this.session.config();
            return Poll::Ready(Ok(outcome.finish(
                response,
                config,
                this.on_failure,
                *this.protocol,
            )));
        }
    }
}

impl<Fut, F, B> fmt::Debug for ResponseFuture<Fut, F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Handler { .. } => "Handler",
            State::WriteBack { .. } => "WriteBack",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}
