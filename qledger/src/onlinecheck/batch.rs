//! The XML batch check: a stream of request messages (`<XmlMsg>…</XmlMsg>`
//! one after another, optionally inside any wrapper element; the first XML
//! declaration names the encoding of all) cut into single requests as the
//! bytes arrive, and their results written as one UTF-8 document,
//! `<QualificationConfirmationResults>`, one result per request, in order.
//!
//! Memory stays bounded: at most one request ([`MAX_MESSAGE_BYTES`]) is
//! held; a longer one is answered `QLX004` and skipped to its end.

use super::xml::{self, Element, MAX_MESSAGE_BYTES};

/// The results document's start.
pub const RESULTS_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n<QualificationConfirmationResults>\n";
/// Its end.
pub const RESULTS_TAIL: &str = "</QualificationConfirmationResults>\n";

const START: &[u8] = b"<XmlMsg";
const END: &[u8] = b"</XmlMsg>";

/// Cuts a byte stream into request messages.
#[derive(Debug, Default)]
pub struct Splitter {
    pending: Vec<u8>,
    /// The stream's XML declaration, put before every request.
    declaration: Option<Vec<u8>>,
    /// Inside an over-long request, until its end tag.
    skipping: bool,
}

impl Splitter {
    /// Takes the next bytes; returns the requests they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.pending.extend_from_slice(bytes);
        self.cut(false)
    }

    /// The end of the stream: an unterminated last request is returned too
    /// (it will be answered as malformed).
    pub fn finish(&mut self) -> Vec<Vec<u8>> {
        self.cut(true)
    }

    fn cut(&mut self, done: bool) -> Vec<Vec<u8>> {
        if self.declaration.is_none()
            && (self.pending.len() >= 200 || done || find(&self.pending, END).is_some())
        {
            self.declaration = Some(declaration(&self.pending));
        }
        let mut requests = Vec::new();
        while let Some(at) = find(&self.pending, END) {
            let chunk: Vec<u8> = self.pending.drain(..at + END.len()).collect();
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            let start = find(&chunk, START).unwrap_or(0);
            requests.push(self.with_declaration(&chunk[start..]));
        }
        if !self.skipping && self.pending.len() > MAX_MESSAGE_BYTES {
            // Over-long: answered as such, the rest skipped to its end.
            requests.push(vec![b' '; MAX_MESSAGE_BYTES + 1]);
            self.skipping = true;
        }
        if self.skipping {
            // Keep what could be the start of the end tag.
            let keep = self.pending.len().min(END.len() - 1);
            self.pending.drain(..self.pending.len() - keep);
        }
        if done && find(&self.pending, START).is_some() {
            let rest = std::mem::take(&mut self.pending);
            requests.push(self.with_declaration(&rest));
        }
        requests
    }

    fn with_declaration(&self, request: &[u8]) -> Vec<u8> {
        let mut out = self.declaration.clone().unwrap_or_default();
        out.extend_from_slice(request);
        out
    }
}

/// One result inside the results document.
pub fn result_fragment(result: &Element) -> String {
    xml::write_fragment(result, 1)
}

/// The XML declaration at the start of a stream, if any.
fn declaration(body: &[u8]) -> Vec<u8> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let body = &body[start..];
    match (body.starts_with(b"<?xml"), find(body, b"?>")) {
        (true, Some(end)) => body[..end + 2].to_vec(),
        _ => Vec::new(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_requests_across_pieces_keeping_the_declaration() {
        let stream = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>\n<Requests>\n<XmlMsg><a>1</a></XmlMsg>\n<XmlMsg><a>2</a></XmlMsg></Requests>";
        let mut splitter = Splitter::default();
        let mut requests = Vec::new();
        for piece in stream.as_bytes().chunks(7) {
            requests.extend(splitter.push(piece));
        }
        requests.extend(splitter.finish());
        let decl = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>";
        assert_eq!(
            requests,
            vec![
                format!("{decl}<XmlMsg><a>1</a></XmlMsg>").into_bytes(),
                format!("{decl}<XmlMsg><a>2</a></XmlMsg>").into_bytes(),
            ]
        );
    }

    #[test]
    fn an_over_long_request_is_one_answer_and_the_next_goes_on() {
        let mut splitter = Splitter::default();
        let mut requests = splitter.push(b"<XmlMsg>");
        let filler = vec![b'x'; MAX_MESSAGE_BYTES];
        requests.extend(splitter.push(&filler));
        requests.extend(splitter.push(b"</Xml"));
        requests.extend(splitter.push(b"Msg><XmlMsg><a/></XmlMsg><XmlMsg><b>"));
        requests.extend(splitter.finish());
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].len(), MAX_MESSAGE_BYTES + 1);
        assert_eq!(requests[1], b"<XmlMsg><a/></XmlMsg>");
        assert_eq!(
            requests[2], b"<XmlMsg><b>",
            "unterminated, answered malformed"
        );
    }
}
