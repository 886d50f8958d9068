//! JSON inventories (`kubectl get nodes -o json`), streamed: the top-level object is scanned
//! from a reader, each item of `items` (or `nodes`) is cut out whole into one reused buffer and
//! parsed by serde_json straight into the slim types, then dropped. Memory is one item plus
//! the nodes kept, whatever the file's size; no `Value` tree of the file is ever built.
//!
//! Cutting items out (instead of `serde_json::from_reader` on the whole file) is what makes it
//! fast: serde_json parses a slice several times faster than a reader, and the cut knows each
//! item's line, so an error names it.

use std::io::{self, BufRead};

use serde::de::{DeserializeOwned, IgnoredAny};

use super::{Collector, Kind, objects};
use crate::{
    diagnostics::{Diagnostic, Location},
    node::NodeInfo,
};

/// Largest item read: a Node in etcd is at most 1.5 MiB; this leaves room for pretty-printing.
const MAX_ITEM_BYTES: usize = 16 * 1024 * 1024;

/// Reads a JSON inventory from `reader`: a `List` / `NodeList` (`items`), a single `Node`, or
/// Kelvin's `Inventory` (`nodes`). Read errors (the reader's own, e.g. a read limit) are
/// reported as errors of the file, with the position reached.
pub fn read_json_inventory(
    file: &str,
    reader: impl BufRead,
) -> Result<Vec<NodeInfo>, Vec<Diagnostic>> {
    let mut collector = Collector::new(file);
    let mut scanner = Scanner::new(reader);
    if let Err(error) = read_document(&mut scanner, &mut collector) {
        collector.error(error.into_diagnostic(file));
    }
    collector.finish()
}

/// Where the scanner is, 1-based.
#[derive(Clone, Copy)]
struct Position {
    line: usize,
    column: usize,
}

enum ScanError {
    Io(io::Error, Position),
    Syntax(String, Position),
    /// serde_json's error inside a value cut out at `Position`.
    Value(serde_json::Error, Position),
}

impl ScanError {
    fn into_diagnostic(self, file: &str) -> Diagnostic {
        let (message, fix, at) = match self {
            ScanError::Io(error, at) => (
                format!("reading stopped: {error}"),
                "check that the whole file can be read".to_owned(),
                at,
            ),
            ScanError::Syntax(message, at) => (
                format!("JSON: {message}"),
                "fix the JSON syntax at this position (or save `kubectl get nodes -o json` again)"
                    .to_owned(),
                at,
            ),
            ScanError::Value(error, at) => {
                let at = within(at, &error);
                let message = match error.classify() {
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                        format!("JSON: {}", crate::load::serde_message(&error.to_string()))
                    }
                    _ => crate::load::serde_message(&error.to_string()),
                };
                (
                    message,
                    "a node list is what `kubectl get nodes -o json` writes".to_owned(),
                    at,
                )
            }
        };
        let mut diagnostic = Diagnostic::error("", message).with_fix(fix);
        diagnostic.location = Some(Location {
            file: file.to_owned(),
            line: at.line,
            column: at.column,
        });
        diagnostic
    }
}

/// The position of `error` inside a value that starts at `start`.
fn within(start: Position, error: &serde_json::Error) -> Position {
    match error.line() {
        0 => start,
        1 => Position {
            line: start.line,
            column: start.column + error.column().saturating_sub(1),
        },
        line => Position {
            line: start.line + line - 1,
            column: error.column(),
        },
    }
}

struct Scanner<R> {
    reader: R,
    line: usize,
    /// Bytes read since the last newline.
    column: usize,
    /// The value being cut out; reused from item to item.
    buffer: Vec<u8>,
}

impl<R: BufRead> Scanner<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            line: 1,
            column: 0,
            buffer: Vec::new(),
        }
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column + 1,
        }
    }

    fn io(&self, error: io::Error) -> ScanError {
        ScanError::Io(error, self.position())
    }

    fn syntax(&self, message: impl Into<String>) -> ScanError {
        ScanError::Syntax(message.into(), self.position())
    }

    /// Keeps the line and column up to date over `bytes`, about to be consumed.
    fn advance(line: &mut usize, column: &mut usize, bytes: &[u8]) {
        match bytes.iter().rposition(|b| *b == b'\n') {
            Some(last) => {
                *line += bytes.iter().filter(|b| **b == b'\n').count();
                *column = bytes.len() - last - 1;
            }
            None => *column += bytes.len(),
        }
    }

    fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        match self.reader.fill_buf() {
            Ok(buffer) => Ok(buffer.first().copied()),
            Err(error) => Err(self.io(error)),
        }
    }

    fn bump(&mut self) -> Result<(), ScanError> {
        if self.peek()?.is_some() {
            self.reader.consume(1);
            self.column += 1;
        }
        Ok(())
    }

    /// Skips whitespace; the next byte, if any.
    fn skip_whitespace(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) => return Err(ScanError::Io(error, self.position())),
            };
            if buffer.is_empty() {
                return Ok(None);
            }
            let end = buffer
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(buffer.len());
            let next = buffer.get(end).copied();
            Self::advance(&mut self.line, &mut self.column, &buffer[..end]);
            self.reader.consume(end);
            if next.is_some() {
                return Ok(next);
            }
        }
    }

    /// Cuts the next value out into `self.buffer`: an object or array to its matching end, a
    /// string to its closing quote, anything else to the next delimiter. Its syntax is left to
    /// serde_json, which reads the buffer next. An object's end is found by its braces alone
    /// (brackets cannot unbalance them in valid JSON, and invalid JSON fails in serde_json), so
    /// memchr can jump over everything else: most of a node is strings and indentation.
    fn cut_value(&mut self) -> Result<(), ScanError> {
        self.buffer.clear();
        let Some(first) = self.peek()? else {
            return Err(self.syntax("the file ends where a value should be"));
        };
        let (open, close) = match first {
            b'{' | b'"' => (b'{', b'}'),
            b'[' => (b'[', b']'),
            _ => return self.cut_scalar(),
        };
        let mut depth = 0usize;
        let mut in_string = false;
        // A backslash was the last byte of the previous buffer: skip the byte it escapes.
        let mut escape_pending = false;
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) => return Err(ScanError::Io(error, self.position())),
            };
            if buffer.is_empty() {
                return Err(ScanError::Syntax(
                    "the file ends inside a value".to_owned(),
                    self.position(),
                ));
            }
            let mut at = usize::from(escape_pending);
            escape_pending = false;
            let mut end = None;
            while at < buffer.len() {
                if in_string {
                    match memchr::memchr2(b'"', b'\\', &buffer[at..]) {
                        None => at = buffer.len(),
                        Some(found) if buffer[at + found] == b'\\' => {
                            at += found + 2;
                            if at > buffer.len() {
                                escape_pending = true;
                                at = buffer.len();
                            }
                        }
                        Some(found) => {
                            in_string = false;
                            at += found + 1;
                            if depth == 0 {
                                end = Some(at);
                                break;
                            }
                        }
                    }
                } else {
                    match memchr::memchr3(b'"', open, close, &buffer[at..]) {
                        None => at = buffer.len(),
                        Some(found) => {
                            let byte = buffer[at + found];
                            at += found + 1;
                            if byte == b'"' {
                                in_string = true;
                            } else if byte == open {
                                depth += 1;
                            } else {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    end = Some(at);
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            let taken = end.unwrap_or(buffer.len());
            self.buffer.extend_from_slice(&buffer[..taken]);
            Self::advance(&mut self.line, &mut self.column, &buffer[..taken]);
            self.reader.consume(taken);
            if end.is_some() {
                return Ok(());
            }
            if self.buffer.len() > MAX_ITEM_BYTES {
                return Err(self.syntax(format!(
                    "one value is larger than {} MiB; a Node object is at most 1.5 MiB",
                    MAX_ITEM_BYTES / (1024 * 1024)
                )));
            }
        }
    }

    /// A number, `true`, `false` or `null` (or a mistake), up to the next delimiter.
    fn cut_scalar(&mut self) -> Result<(), ScanError> {
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(error) => return Err(ScanError::Io(error, self.position())),
            };
            if buffer.is_empty() {
                return Ok(());
            }
            let end = buffer
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'));
            let taken = end.unwrap_or(buffer.len());
            self.buffer.extend_from_slice(&buffer[..taken]);
            Self::advance(&mut self.line, &mut self.column, &buffer[..taken]);
            self.reader.consume(taken);
            if end.is_some() {
                return Ok(());
            }
            if self.buffer.len() > MAX_ITEM_BYTES {
                return Err(self.syntax("a value without end"));
            }
        }
    }

    /// The next value, parsed as `T`.
    fn value<T: DeserializeOwned>(&mut self) -> Result<T, ScanError> {
        let start = self.position();
        self.cut_value()?;
        serde_json::from_slice(&self.buffer).map_err(|error| ScanError::Value(error, start))
    }

    /// Expects `byte` next, after whitespace.
    fn expect(&mut self, byte: u8, what: &str) -> Result<(), ScanError> {
        match self.skip_whitespace()? {
            Some(found) if found == byte => self.bump(),
            Some(found) => {
                Err(self.syntax(format!("expected {what}, found {:?}", char::from(found))))
            }
            None => Err(self.syntax(format!("the file ends where {what} should be"))),
        }
    }
}

fn read_document<R: BufRead>(
    scanner: &mut Scanner<R>,
    collector: &mut Collector,
) -> Result<(), ScanError> {
    let mut kind: Option<String> = None;
    let mut api_version: Option<String> = None;
    let mut single = objects::Item::default();
    // A set: an object of a million keys must not cost a million squared.
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut list = false;
    scanner.expect(b'{', "a JSON object ('{')")?;
    if scanner.skip_whitespace()? == Some(b'}') {
        scanner.bump()?;
    } else {
        loop {
            scanner.skip_whitespace()?;
            let at = scanner.position();
            let key: String = scanner.value()?;
            if !seen.insert(key.clone()) {
                return Err(ScanError::Syntax(
                    format!("{key} is given twice in the same object"),
                    at,
                ));
            }
            scanner.expect(b':', "':'")?;
            scanner.skip_whitespace()?;
            match key.as_str() {
                "items" => {
                    list = true;
                    read_items(scanner, collector, "items", |scanner| {
                        scanner.value::<objects::Item>().map(Entry::Item)
                    })?
                }
                "nodes" => {
                    list = true;
                    read_items(scanner, collector, "nodes", |scanner| {
                        scanner.value::<NodeInfo>().map(Entry::Node)
                    })?
                }
                "kind" => kind = Some(scanner.value()?),
                "apiVersion" => api_version = Some(scanner.value()?),
                "metadata" => single.metadata = scanner.value()?,
                "spec" => single.spec = scanner.value()?,
                "status" => single.status = scanner.value()?,
                _ => {
                    scanner.value::<IgnoredAny>()?;
                }
            }
            match scanner.skip_whitespace()? {
                Some(b',') => scanner.bump()?,
                Some(b'}') => {
                    scanner.bump()?;
                    break;
                }
                Some(other) => {
                    return Err(scanner.syntax(format!(
                        "expected ',' or '}}' after a value, found {:?}",
                        char::from(other)
                    )));
                }
                None => return Err(scanner.syntax("the file ends inside the top-level object")),
            }
        }
    }
    if let Some(other) = scanner.skip_whitespace()? {
        return Err(scanner.syntax(format!(
            "more after the top-level object ({:?}); an inventory is one JSON object",
            char::from(other)
        )));
    }
    let kind = Kind::new(kind.as_deref(), api_version.as_deref());
    collector.document(&kind, "", list, || single);
    Ok(())
}

/// An entry of `items` (a Kubernetes object) or of `nodes` (Kelvin's Inventory).
pub(super) enum Entry {
    Item(objects::Item),
    Node(NodeInfo),
}

/// Reads the array at the scanner, one entry at a time.
fn read_items<R: BufRead>(
    scanner: &mut Scanner<R>,
    collector: &mut Collector,
    key: &str,
    mut entry: impl FnMut(&mut Scanner<R>) -> Result<Entry, ScanError>,
) -> Result<(), ScanError> {
    if scanner.peek()? != Some(b'[') {
        let at = scanner.position();
        scanner.value::<IgnoredAny>()?;
        return Err(ScanError::Syntax(
            format!("{key} must be a list of nodes"),
            at,
        ));
    }
    scanner.bump()?;
    let mut index = 0usize;
    if scanner.skip_whitespace()? == Some(b']') {
        return scanner.bump();
    }
    loop {
        scanner.skip_whitespace()?;
        let at = scanner.position();
        let location = Location {
            file: collector.file.to_owned(),
            line: at.line,
            column: at.column,
        };
        match entry(scanner) {
            Ok(found) => collector.entry(key, index, found, Some(location)),
            // The item was cut out whole: the next one can still be read.
            Err(error @ ScanError::Value(..)) => {
                let mut diagnostic = error.into_diagnostic(collector.file);
                diagnostic.path = format!("{key}[{index}]");
                collector.error(diagnostic);
            }
            Err(other) => return Err(other),
        }
        index += 1;
        match scanner.skip_whitespace()? {
            Some(b',') => scanner.bump()?,
            Some(b']') => return scanner.bump(),
            Some(other) => {
                return Err(scanner.syntax(format!(
                    "expected ',' or ']' after an item of {key}, found {:?}",
                    char::from(other)
                )));
            }
            None => return Err(scanner.syntax(format!("the file ends inside {key}"))),
        }
    }
}
