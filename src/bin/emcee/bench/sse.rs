//! Reading a `text/event-stream` answer: an incremental SSE parser fed with body
//! bytes as they arrive (split anywhere), and [`ResponseReader`], which skips priming
//! events (no data), comments (keep-alives) and notifications or server requests until
//! the JSON-RPC response.

use super::rpc::{self, Fail, Kind};

/// Incremental SSE parser: [`SseParser::feed`] bytes, then take complete events'
/// `data` with [`SseParser::next_event`]. Lines end with `\n` or `\r\n`.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes not yet parsed (at most one partial line once drained).
    pending: Vec<u8>,
    /// Where the unparsed part of `pending` starts.
    start: usize,
    /// `data:` lines of the event being read, joined by `\n`.
    data: Vec<u8>,
    /// Whether the event being read has any field (id, event, data, retry).
    fields: bool,
}

/// One dispatched event's data (empty for a priming event with only an id).
pub type EventData = Vec<u8>;

impl SseParser {
    /// Add body bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.pending.len() {
            self.pending.clear();
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Option<EventData> {
        loop {
            let rest = &self.pending[self.start..];
            let nl = memchr(b'\n', rest)?;
            let mut line = &rest[..nl];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            let line = line.to_vec();
            self.start += nl + 1;
            if self.start == self.pending.len() {
                self.pending.clear();
                self.start = 0;
            }
            if line.is_empty() {
                if self.fields {
                    self.fields = false;
                    return Some(std::mem::take(&mut self.data));
                }
                continue;
            }
            if line[0] == b':' {
                continue; // comment (keep-alive)
            }
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (&line[..], &[][..]),
            };
            self.fields = true;
            if name == b"data" {
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Finds the JSON-RPC response on an SSE stream.
#[derive(Debug, Default)]
pub struct ResponseReader {
    parser: SseParser,
    /// Notifications and server requests skipped so far.
    pub skipped: usize,
}

impl ResponseReader {
    /// A reader at the start of a stream.
    pub fn new() -> ResponseReader {
        ResponseReader::default()
    }

    /// Feed body bytes; `Ok(Some(message))` once the response arrived (later bytes are
    /// not looked at), `Err` on an event that is not JSON.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        self.parser.feed(bytes);
        while let Some(data) = self.parser.next_event() {
            if data.iter().all(u8::is_ascii_whitespace) {
                continue; // priming event
            }
            match rpc::classify(&data)? {
                Kind::Other => self.skipped += 1,
                Kind::Response => return Ok(Some(data)),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "id: 7-0\nretry: 1000\ndata: \n\n\
        : keep-alive\n\n\
        id: 7-1\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\r\ndata: \"params\":{\"progress\":1}}\r\n\r\n\
        id: 7-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n\
        id: 7-3\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"a\\nb\"}]}}\n\n";

    #[test]
    fn events_are_parsed_across_any_split() {
        let bytes = STREAM.as_bytes();
        for split in 0..bytes.len() {
            let mut p = SseParser::default();
            let mut events = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                p.feed(part);
                while let Some(e) = p.next_event() {
                    events.push(String::from_utf8(e).unwrap());
                }
            }
            assert_eq!(events.len(), 4, "split at {split}: {events:?}");
            assert_eq!(events[0], "");
            assert!(events[1].contains("\n\"params\""), "{events:?}");
            assert!(events[3].starts_with("{\"jsonrpc\":\"2.0\",\"id\":5,\n"));
        }
    }

    #[test]
    fn the_response_is_found_after_priming_and_notifications() {
        // Byte by byte: the response spans several feeds and two data lines.
        let mut r = ResponseReader::new();
        let mut found = None;
        for b in STREAM.as_bytes() {
            if let Some(msg) = r.feed(std::slice::from_ref(b)).unwrap() {
                found = Some(msg);
                break;
            }
        }
        let msg = found.expect("response found");
        assert_eq!(
            r.skipped, 2,
            "progress notification and sampling request skipped"
        );
        assert_eq!(rpc::check_response(&msg, 5, true), Ok(()));
        assert!(matches!(
            rpc::check_response(&msg, 6, true),
            Err(Fail::Protocol(_))
        ));
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        let mut r = ResponseReader::new();
        assert_eq!(
            r.feed(b"id: 1-0\ndata: \n\nid: 1-1\ndata: {\"id\":1,\"result\":{}}\n")
                .unwrap(),
            None
        );
        assert!(r.feed(b"\n").unwrap().is_some());
        let mut r = ResponseReader::new();
        assert!(matches!(
            r.feed(b"data: not json\n\n"),
            Err(Fail::Protocol(_))
        ));
    }
}
