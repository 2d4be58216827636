//! The byte budget of answers waiting on HTTP connections
//! (`limits.max_pending_answer_bytes`), and the response bodies that hold it.
//!
//! Where an unread answer's bytes sit: actix-web's HTTP/1 writer copies each chunk a
//! body yields into the connection's write buffer, and polls the body again only
//! while that buffer holds less than its size (32 KiB). A body that yields a 4 MB
//! answer as one chunk makes a 4 MB write buffer (a copy, grown in steps) that stays
//! until the client reads it: 256 such connections held over 1 GiB (issue 18 item
//! 1). So every answer here is yielded in pieces of at most [`PIECE`] bytes that
//! share its one copy (an SSE event's head and tail are separate pieces: the JSON is
//! never copied to frame it), and each answer ([`Held`]) holds its size from the
//! budget from the moment it is handed to its connection until its last piece is
//! yielded (its allocation is freed then: what remains is one piece in actix-web's
//! buffer) or the body is dropped (the connection closed). An answer that does not
//! fit is refused by the caller: 503 for one not begun, the connection closed for a
//! stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::net::SocketAddr;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::metrics::reason;
use crate::telemetry::{Refusals, Refused};
use crate::transport::exchange::Refusal;

/// Largest piece of an answer handed to actix-web at a time.
pub const PIECE: usize = 16 * 1024;

/// The bytes every answer waiting on a connection holds together, one permit a
/// byte. Cheap to clone (one budget per server).
#[derive(Debug, Clone)]
pub struct AnswerBudget {
    permits: Arc<Semaphore>,
    limit: usize,
}

/// An answer did not fit in `limits.max_pending_answer_bytes`. As a body's error it
/// makes actix-web close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget {
    /// The answer's size.
    pub bytes: usize,
    /// The budget.
    pub limit: usize,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an answer of {} bytes does not fit: answers waiting on connections hold all of \
             limits.max_pending_answer_bytes ({})",
            self.bytes, self.limit
        )
    }
}

impl std::error::Error for OverBudget {}

impl AnswerBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> AnswerBudget {
        let limit = limit.min(Semaphore::MAX_PERMITS);
        AnswerBudget {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// Bytes free now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Hold `parts` (one answer, written in this order) within the budget, or
    /// `Err` when they do not fit now. Never waits.
    pub fn hold(&self, parts: Vec<Bytes>) -> Result<Held, OverBudget> {
        let bytes: usize = parts.iter().map(Bytes::len).sum();
        let over = OverBudget {
            bytes,
            limit: self.limit,
        };
        let permit = match u32::try_from(bytes) {
            Ok(0) => None,
            Ok(n) => Some(
                self.permits
                    .clone()
                    .try_acquire_many_owned(n)
                    .map_err(|_| over)?,
            ),
            Err(_) => return Err(over),
        };
        Ok(Held {
            parts,
            at: 0,
            permit,
        })
    }
}

/// One answer on its way to a connection, holding its size from the budget until
/// its last piece is taken (or it is dropped).
#[derive(Debug)]
pub struct Held {
    parts: Vec<Bytes>,
    at: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// Bytes outside the budget (a replay's chunk, bounded per connection on its own).
    pub fn outside(bytes: Bytes) -> Held {
        Held {
            parts: vec![bytes],
            at: 0,
            permit: None,
        }
    }

    /// Bytes not yet taken.
    pub fn len(&self) -> usize {
        self.parts[self.at.min(self.parts.len())..]
            .iter()
            .map(Bytes::len)
            .sum()
    }

    /// True when every byte was taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next piece (at most [`PIECE`] bytes, sharing the answer's copy); the
    /// budget is given back with the last one.
    pub fn next_piece(&mut self) -> Option<Bytes> {
        while let Some(part) = self.parts.get_mut(self.at) {
            if part.is_empty() {
                self.at += 1;
                continue;
            }
            let piece = part.split_to(part.len().min(PIECE));
            if self.is_empty() {
                self.parts.clear();
                self.at = 0;
                self.permit = None;
            }
            return Some(piece);
        }
        self.permit = None;
        None
    }
}

/// A whole JSON answer as a body of known length (`Content-Length`), yielded in
/// pieces.
pub struct AnswerBody {
    held: Held,
    size: u64,
}

impl AnswerBody {
    /// The body of `held`.
    pub fn new(held: Held) -> AnswerBody {
        let size = u64::try_from(held.len()).unwrap_or(u64::MAX);
        AnswerBody { held, size }
    }
}

impl MessageBody for AnswerBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Infallible>>> {
        Poll::Ready(self.get_mut().held.next_piece().map(Ok))
    }
}

/// A streamed body (SSE, a late JSON answer) of answers, each yielded in pieces.
/// An `Err` item (an answer that did not fit) ends the body with an error, which
/// makes actix-web close the connection.
pub struct Pieces<S> {
    answers: S,
    current: Option<Held>,
}

/// The body of `answers`, for `HttpResponse::streaming`.
pub fn pieces<S>(answers: S) -> Pieces<S>
where
    S: Stream<Item = Result<Held, OverBudget>> + Unpin,
{
    Pieces {
        answers,
        current: None,
    }
}

impl<S> Stream for Pieces<S>
where
    S: Stream<Item = Result<Held, OverBudget>> + Unpin,
{
    type Item = Result<Bytes, OverBudget>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(held) = this.current.as_mut() {
                if let Some(piece) = held.next_piece() {
                    if held.is_empty() {
                        this.current = None;
                    }
                    return Poll::Ready(Some(Ok(piece)));
                }
                this.current = None;
            }
            match Pin::new(&mut this.answers).poll_next(cx) {
                Poll::Ready(Some(Ok(held))) => this.current = Some(held),
                Poll::Ready(Some(Err(over))) => return Poll::Ready(Some(Err(over))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// `json` (one encoded JSON-RPC message) as an `application/json` answer of
/// `status`, within the budget: its bytes are held until written. One that does not
/// fit gets [`over_budget`] instead.
pub fn json(budget: &AnswerBudget, status: StatusCode, json: String) -> HttpResponse {
    match budget.hold(vec![Bytes::from(json)]) {
        Ok(held) => HttpResponse::build(status)
            .content_type("application/json")
            .body(AnswerBody::new(held)),
        Err(over) => over_budget(over),
    }
}

/// 503 + `Retry-After` for an answer that did not fit (nothing of it was sent), the
/// connection closed, counted and logged as `answer_budget` by the refusal
/// middleware.
pub fn over_budget(over: OverBudget) -> HttpResponse {
    Refusal::busy(over)
        .because(reason::ANSWER_BUDGET)
        .closing()
        .into()
}

/// Count and log a stream closed because its next answer did not fit (the
/// middleware saw its 200 long before).
pub fn refuse_stream(refusals: &Refusals, client: Option<SocketAddr>, over: OverBudget) {
    let detail = format!("stream closed: {over}");
    refusals.refuse(Refused {
        reason: reason::ANSWER_BUDGET,
        status: None,
        client,
        method: Some("POST"),
        detail: &detail,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    /// Issue 18 item 1: answers fit up to the budget's last byte, one byte more is
    /// refused, and an answer gives its bytes back once its last piece is taken or
    /// it is dropped.
    #[test]
    fn answers_fit_up_to_the_budget_and_give_it_back() {
        let budget = AnswerBudget::new(100_000);
        let mut first = budget.hold(vec![bytes(60_000)]).expect("fits");
        assert_eq!(budget.available(), 40_000);
        let second = budget
            .hold(vec![bytes(10), bytes(39_980), bytes(10)])
            .expect("exactly the rest fits");
        assert_eq!(budget.available(), 0);
        assert_eq!(
            budget.hold(vec![bytes(1)]).unwrap_err(),
            OverBudget {
                bytes: 1,
                limit: 100_000
            }
        );
        drop(second);
        assert_eq!(budget.available(), 40_000, "a dropped answer gives it back");
        // Taken in pieces: held until the last one.
        let mut taken = 0;
        while let Some(piece) = first.next_piece() {
            assert!(piece.len() <= PIECE);
            taken += piece.len();
            let expected = if taken == 60_000 { 100_000 } else { 40_000 };
            assert_eq!(budget.available(), expected, "after {taken} bytes");
        }
        assert_eq!(taken, 60_000);
        assert!(budget.hold(vec![bytes(100_000)]).is_ok(), "all of it");
        assert!(budget.hold(vec![bytes(100_001)]).is_err(), "never more");
    }

    #[test]
    fn a_body_yields_pieces_in_order_and_ends_on_an_answer_that_did_not_fit() {
        let budget = AnswerBudget::new(1 << 20);
        let a = budget
            .hold(vec![
                Bytes::from_static(b"data: "),
                bytes(40_000),
                Bytes::from_static(b"\n\n"),
            ])
            .expect("fits");
        let over = OverBudget { bytes: 1, limit: 1 };
        let items = vec![
            Ok(a),
            Ok(Held::outside(Bytes::from_static(b":\n\n"))),
            Err(over),
        ];
        let body = pieces(futures::stream::iter(items));
        let got: Vec<Result<Bytes, OverBudget>> =
            futures::executor::block_on(futures::StreamExt::collect(body));
        let mut text = Vec::new();
        for piece in &got[..got.len() - 1] {
            let piece = piece.as_ref().expect("a piece");
            assert!(piece.len() <= PIECE);
            text.extend_from_slice(piece);
        }
        assert_eq!(text.len(), 6 + 40_000 + 2 + 3);
        assert!(text.starts_with(b"data: x") && text.ends_with(b"x\n\n:\n\n"));
        assert_eq!(got.last(), Some(&Err(over)));
        assert_eq!(budget.available(), 1 << 20);
    }

    #[test]
    fn a_json_body_has_its_length() {
        let budget = AnswerBudget::new(1 << 20);
        let body = AnswerBody::new(budget.hold(vec![bytes(50_000)]).expect("fits"));
        assert_eq!(body.size(), BodySize::Sized(50_000));
        let all = futures::executor::block_on(actix_web::body::to_bytes(body)).expect("body");
        assert_eq!(all.len(), 50_000);
        assert_eq!(budget.available(), 1 << 20);
    }
}
