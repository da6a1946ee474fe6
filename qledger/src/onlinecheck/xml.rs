//! A small element tree for the online check's messages: bytes in the
//! declared encoding (UTF-8 or Shift_JIS) → [`Element`]s, and back.
//!
//! The messages are small and flat (a header, a body, a few lists), so a
//! tree is simpler and gives better errors than a streaming reader: every
//! problem names the element at fault. This module knows XML, not the
//! message vocabulary (that is [`super::request`] and [`super::result`]).
//! It refuses what it does not understand — DTDs, an undeclared or unknown
//! encoding, bytes the declared encoding cannot decode — rather than guess.

use std::fmt::Write as _;

use encoding_rs::{Encoding, SHIFT_JIS, UTF_8};
use quick_xml::events::Event;
use quick_xml::Reader;

/// The largest message accepted, in bytes: a request is well under 2 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The deepest nesting accepted.
const MAX_DEPTH: usize = 16;

/// The character encodings the messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    /// Shift_JIS (decoded as Windows-31J, the superset clinic systems write).
    ShiftJis,
}

impl Charset {
    /// The name written in the XML declaration.
    pub fn xml_name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::ShiftJis => "Shift_JIS",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            Charset::Utf8 => UTF_8,
            Charset::ShiftJis => SHIFT_JIS,
        }
    }

    fn from_label(label: &str) -> Option<Charset> {
        match label.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Some(Charset::Utf8),
            "shift_jis" | "shift-jis" | "sjis" | "x-sjis" | "windows-31j" | "cp932" | "ms932" => {
                Some(Charset::ShiftJis)
            }
            _ => None,
        }
    }
}

/// Why bytes are not a message this module can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XmlError {
    #[error("the message is {size} bytes, over the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge { size: usize },
    #[error("the XML declaration names the encoding {0:?}; only UTF-8 and Shift_JIS are accepted")]
    UnknownEncoding(String),
    #[error("the bytes are not valid {}: {detail}", .charset.xml_name())]
    Undecodable { charset: Charset, detail: String },
    #[error("the XML is not well-formed: {0}")]
    Malformed(String),
}

/// One element: its name, its text (trimmed), its child elements in order.
/// Attributes are not used by the messages and are not kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn new(name: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            ..Element::default()
        }
    }

    /// A leaf with text.
    pub fn leaf(name: impl Into<String>, text: impl Into<String>) -> Element {
        Element {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// Appends a child and returns `self`, for building.
    pub fn with(mut self, child: Element) -> Element {
        self.children.push(child);
        self
    }

    /// Appends a leaf when the value is present.
    pub fn with_opt(self, name: &str, value: Option<impl Into<String>>) -> Element {
        match value {
            Some(v) => self.with(Element::leaf(name, v)),
            None => self,
        }
    }

    /// The first child of this name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child of this name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child of this name, if present and not blank.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.as_str())
            .filter(|t| !t.is_empty())
    }

    /// Follows a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }
}

/// Detects the charset: a UTF-8 byte-order mark, else the declaration's
/// `encoding` (absent: UTF-8, as XML says).
fn charset_of(bytes: &[u8]) -> Result<(Charset, &[u8]), XmlError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return Ok((Charset::Utf8, rest));
    }
    // The declaration is ASCII in both encodings.
    let head = &bytes[..bytes.len().min(200)];
    let head = String::from_utf8_lossy(head);
    let Some(decl) = head
        .strip_prefix("<?xml")
        .and_then(|d| d.split("?>").next())
    else {
        return Ok((Charset::Utf8, bytes));
    };
    let Some(at) = decl.find("encoding") else {
        return Ok((Charset::Utf8, bytes));
    };
    let value = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')
        .map(str::trim_start)
        .and_then(|v| {
            let quote = v.chars().next().filter(|q| *q == '"' || *q == '\'')?;
            v[1..].split(quote).next()
        })
        .ok_or_else(|| {
            XmlError::Malformed("the XML declaration's encoding is not quoted".into())
        })?;
    let charset =
        Charset::from_label(value).ok_or_else(|| XmlError::UnknownEncoding(value.to_owned()))?;
    Ok((charset, bytes))
}

/// Decodes and parses one message. Returns its root element and the
/// charset it came in (answers go back in the same one).
pub fn parse(bytes: &[u8]) -> Result<(Element, Charset), XmlError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(XmlError::TooLarge { size: bytes.len() });
    }
    let (charset, body) = charset_of(bytes)?;
    let (text, had_errors) = charset.encoding().decode_without_bom_handling(body);
    if had_errors {
        let detail = match charset {
            Charset::Utf8 => std::str::from_utf8(body)
                .err()
                .map(|e| format!("invalid byte sequence at byte {}", e.valid_up_to()))
                .unwrap_or_default(),
            Charset::ShiftJis => "a byte sequence that is not Shift_JIS".into(),
        };
        return Err(XmlError::Undecodable { charset, detail });
    }
    Ok((parse_text(&text)?, charset))
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

fn parse_text(text: &str) -> Result<Element, XmlError> {
    // Text arrives in pieces (references are events of their own): it is
    // gathered raw and trimmed when its element ends.
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        match reader.read_event().map_err(malformed)? {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed(format!("elements nested over {MAX_DEPTH} deep")));
                }
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                stack.push(Element::new(name));
            }
            Event::Empty(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let element = Element::new(name);
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err(malformed("content after the root element")),
                }
            }
            Event::End(_) => {
                let mut element = stack
                    .pop()
                    .ok_or_else(|| malformed("an end tag without a start tag"))?;
                let trimmed = element.text.trim();
                if trimmed.len() != element.text.len() {
                    element.text = trimmed.to_owned();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                let decoded = t.decode().map_err(malformed)?;
                let text = quick_xml::escape::unescape(&decoded).map_err(malformed)?;
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(malformed("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let text = String::from_utf8_lossy(&c).into_owned();
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&text),
                    None => return Err(malformed("CDATA outside the root element")),
                }
            }
            Event::GeneralRef(r) => {
                // An entity or character reference inside text.
                let name = r.decode().map_err(malformed)?;
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed(format!("unknown entity &{name};")))?
                        .to_owned(),
                };
                match stack.last_mut() {
                    Some(e) => e.text.push_str(&resolved),
                    None => return Err(malformed("a reference outside the root element")),
                }
            }
            Event::DocType(_) => return Err(malformed("a DOCTYPE is not accepted")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(format!(
            "the element <{}> is not closed",
            stack.last().map(|e| e.name.as_str()).unwrap_or("")
        )));
    }
    root.ok_or_else(|| malformed("no root element"))
}

/// Writes a message in the charset, with its declaration, indented two
/// spaces per level. Characters the charset cannot hold become `?` in
/// Shift_JIS (the message's names are in JIS X 0208 as a rule).
pub fn write(root: &Element, charset: Charset) -> Vec<u8> {
    let mut out = String::with_capacity(2048);
    let _ = writeln!(
        out,
        "<?xml version=\"1.0\" encoding=\"{}\" standalone=\"no\"?>",
        charset.xml_name()
    );
    write_element(&mut out, root, 0);
    match charset {
        Charset::Utf8 => out.into_bytes(),
        Charset::ShiftJis => {
            let (bytes, _, _) = SHIFT_JIS.encode(&out);
            // encoding_rs writes unmappable characters as numeric references,
            // which are valid XML and lose nothing.
            bytes.into_owned()
        }
    }
}

/// An element as text without the declaration, for embedding into a larger
/// document (the batch check's stream of results).
pub fn write_fragment(root: &Element, depth: usize) -> String {
    let mut out = String::with_capacity(2048);
    write_element(&mut out, root, depth);
    out
}

fn write_element(out: &mut String, e: &Element, depth: usize) {
    let indent = "  ".repeat(depth);
    if e.children.is_empty() {
        let _ = writeln!(
            out,
            "{indent}<{0}>{1}</{0}>",
            e.name,
            quick_xml::escape::escape(e.text.as_str())
        );
    } else {
        let _ = writeln!(out, "{indent}<{}>", e.name);
        for c in &e.children {
            write_element(out, c, depth + 1);
        }
        let _ = writeln!(out, "{indent}</{}>", e.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utf8_and_shift_jis_alike() {
        let doc = Element::new("XmlMsg").with(
            Element::new("MessageBody")
                .with(Element::leaf("Name", "保険 太郎"))
                .with(Element::leaf("Note", "a < b & c")),
        );
        for charset in [Charset::Utf8, Charset::ShiftJis] {
            let bytes = write(&doc, charset);
            let (back, read) = parse(&bytes).unwrap();
            assert_eq!(read, charset);
            assert_eq!(back, doc);
        }
    }

    #[test]
    fn shift_jis_bytes_declared_utf8_are_refused() {
        let doc = Element::new("R").with(Element::leaf("Name", "保険"));
        let sjis = write(&doc, Charset::ShiftJis);
        let relabelled = String::from_utf8_lossy(&sjis[..60]).replace("Shift_JIS", "UTF-8");
        let mut bytes = relabelled.into_bytes();
        bytes.extend_from_slice(&sjis[60..]);
        assert!(matches!(
            parse(&bytes),
            Err(XmlError::Undecodable {
                charset: Charset::Utf8,
                ..
            })
        ));
    }

    #[test]
    fn refuses_unknown_encodings_doctypes_and_broken_documents() {
        assert!(matches!(
            parse(b"<?xml version=\"1.0\" encoding=\"EBCDIC\"?><a/>"),
            Err(XmlError::UnknownEncoding(e)) if e == "EBCDIC"
        ));
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>";
        assert!(matches!(parse(bomb), Err(XmlError::Malformed(_))));
        for broken in [&b"<a><b></a>"[..], b"<a>", b"", b"text", b"<a/><b/>"] {
            assert!(
                matches!(parse(broken), Err(XmlError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(broken)
            );
        }
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert!(matches!(
            parse(deep.as_bytes()),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
            Err(XmlError::TooLarge { .. })
        ));
    }

    #[test]
    fn resolves_references_and_reads_paths() {
        let (e, _) = parse(b"<a><b><c>x &amp; &#x4E00;</c></b><d/></a>").unwrap();
        assert_eq!(e.at(&["b", "c"]).unwrap().text, "x & \u{4E00}");
        assert!(e.child("d").is_some());
        assert_eq!(e.text_of("d"), None);
    }
}
