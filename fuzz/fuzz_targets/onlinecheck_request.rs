//! Fuzzes the online check's request reader (`POST /v1/onlinecheck`, the
//! folder exchange, the XML batch: [`qledger::onlinecheck::request::parse`])
//! with arbitrary bytes.
//!
//! Checks that reading never panics, and that whatever it decides can be
//! answered: a refusal's result (`SegmentOfResult` 9, its error code, a
//! message that may quote the input) and an accepted request's result (its
//! search information echoed) are written in the request's encoding and
//! read back as the same element tree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qledger::onlinecheck::codes::QualificationValidity;
use qledger::onlinecheck::request;
use qledger::onlinecheck::result::{self, Finding};
use qledger::onlinecheck::xml::{self, Element};

fuzz_target!(|data: &[u8]| {
    let at = chrono::DateTime::from_timestamp(1_714_000_000, 0).expect("in range");
    let (written, charset) = match request::parse(data) {
        Err((refusal, charset)) => (result::refused(&refusal, charset, at), charset),
        Ok((request, charset)) => {
            let finding = Finding {
                validity: QualificationValidity::NoMatch,
                qualifications: Vec::new(),
            };
            (result::answered(&request, &finding, charset, at), charset)
        }
    };
    let bytes = xml::write(&written, charset);
    let (read, read_charset) = xml::parse(&bytes)
        .unwrap_or_else(|e| panic!("a result does not read back: {e}\n{}", String::from_utf8_lossy(&bytes)));
    assert_eq!(read_charset, charset);
    assert_eq!(read, trimmed(written), "the result reads back differently");
});

/// The tree as the reader gives it: texts trimmed.
fn trimmed(mut e: Element) -> Element {
    e.text = e.text.trim().to_owned();
    e.children = e.children.into_iter().map(trimmed).collect();
    e
}
