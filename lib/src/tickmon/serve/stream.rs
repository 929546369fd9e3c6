//! Response bodies of `tickmon serve`: a whole one, or one a task writes in chunks through a
//! channel of two, so a large answer (`/health` of ten thousand agents) is never held whole
//! and a slow reader holds back the writer instead of filling memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{Either, Full};
use hyper::body::{Body, Bytes, Frame};
use tokio::sync::mpsc;

use super::conns::Busy;

/// Chunks in flight between the writing task and the connection.
pub(crate) const CHANNEL: usize = 2;

/// A body fed by a task; it keeps the connection marked busy until it ends.
pub(crate) struct Chunks {
    rx: mpsc::Receiver<Bytes>,
    _busy: Option<Busy>,
}

impl Chunks {
    /// A body and the sender a task writes it with.
    pub(crate) fn new(busy: Option<Busy>) -> (mpsc::Sender<Bytes>, Chunks) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        (tx, Chunks { rx, _busy: busy })
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// Every response body: whole, or in chunks.
pub(crate) type RespBody = Either<Full<Bytes>, Chunks>;

/// A whole body.
pub(crate) fn full(b: impl Into<Bytes>) -> RespBody {
    Either::Left(Full::new(b.into()))
}
