//! Maps field paths (`spec.gpuPools[1].fabric`) back to line and column in a YAML file, so an
//! error about a field points at it. Built from the parser's events, only when a document has
//! findings to place.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};

/// Field path -> (line, column), both 1-based, for one document of a YAML stream.
#[derive(Debug, Default)]
pub struct PathIndex {
    positions: HashMap<String, (usize, usize)>,
    /// Where the key of a mapping entry starts, by the entry's path.
    keys: HashMap<String, (usize, usize)>,
    /// Which paths to record; everything by default.
    wanted: Wanted,
    /// Whether the document was there.
    found: bool,
}

/// Which paths an index records: a 15 MB spec has millions of paths, a finding needs a few.
#[derive(Debug, Default)]
enum Wanted {
    #[default]
    All,
    /// These paths and their ancestors (the fallbacks of [`PathIndex::find`]).
    Paths(Vec<String>),
    /// The value starting at (line, column).
    At((usize, usize)),
}

/// Whether `path` is `wanted` or one of its ancestors.
fn covers(wanted: &str, path: &str) -> bool {
    wanted.strip_prefix(path).is_some_and(|rest| {
        rest.is_empty() || path.is_empty() || rest.starts_with('.') || rest.starts_with('[')
    })
}

enum Frame {
    /// A mapping: the key of the value being read, if a key was seen.
    Mapping { path: String, key: Option<String> },
    /// A sequence: the index of the next item.
    Sequence { path: String, next: usize },
}

impl PathIndex {
    /// Indexes document number `document` (0-based, counting non-empty documents) of `text`.
    /// Returns an empty index when the text does not parse; the YAML error is reported elsewhere.
    pub fn build(text: &str, document: usize) -> Self {
        Self::build_with(text, document, Wanted::All)
    }

    /// [`Self::build`], recording only `paths` and their ancestors.
    pub fn build_for<'a>(
        text: &str,
        document: usize,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let paths = paths.into_iter().map(str::to_owned).collect();
        Self::build_with(text, document, Wanted::Paths(paths))
    }

    /// [`Self::build`], recording only the value at (line, column), for [`Self::path_at`].
    pub fn build_at(text: &str, document: usize, line: usize, column: usize) -> Self {
        Self::build_with(text, document, Wanted::At((line, column)))
    }

    /// Whether the stream has document number `document`.
    pub fn has_document(&self) -> bool {
        self.found
    }

    fn wants(&self, path: &str, position: (usize, usize)) -> bool {
        match &self.wanted {
            Wanted::All => true,
            Wanted::Paths(paths) => paths.iter().any(|wanted| covers(wanted, path)),
            Wanted::At(at) => *at == position,
        }
    }

    fn build_with(text: &str, document: usize, wanted: Wanted) -> Self {
        let mut index = Self {
            wanted,
            ..Self::default()
        };
        let mut stack: Vec<Frame> = Vec::new();
        // Empty and null documents are skipped by the loader, so they are not counted here.
        let mut current = 0usize;
        let mut has_root = false;
        for event in Parser::new_from_str(text) {
            let Ok((event, span)) = event else { break };
            let position = (span.start.line(), span.start.col() + 1);
            let record = current == document;
            match event {
                Event::DocumentStart(..) => {
                    stack.clear();
                    has_root = false;
                }
                Event::DocumentEnd if has_root => {
                    if current == document {
                        break;
                    }
                    current += 1;
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    has_root = true;
                    let path = index.enter_value(&mut stack, position, record);
                    if matches!(event, Event::MappingStart(..)) {
                        stack.push(Frame::Mapping { path, key: None });
                    } else {
                        stack.push(Frame::Sequence { path, next: 0 });
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Scalar(value, style, _, tag) => {
                    if let Some(Frame::Mapping {
                        path,
                        key: key @ None,
                    }) = stack.last_mut()
                    {
                        if record {
                            let entry = if path.is_empty() {
                                value.to_string()
                            } else {
                                format!("{path}.{value}")
                            };
                            if matches!(&index.wanted, Wanted::Paths(paths) if paths.contains(&entry))
                                || matches!(index.wanted, Wanted::All)
                            {
                                index.keys.entry(entry).or_insert(position);
                            }
                        }
                        *key = Some(value.into_owned());
                    } else if stack.is_empty() {
                        // A null document is skipped by the loader: neither counted nor indexed.
                        let null = match &tag {
                            Some(tag) => {
                                tag.handle() == "tag:yaml.org,2002:" && tag.suffix() == "null"
                            }
                            None => {
                                style == ScalarStyle::Plain
                                    && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                            }
                        };
                        if !null {
                            has_root = true;
                            index.enter_value(&mut stack, position, record);
                        }
                    } else {
                        index.enter_value(&mut stack, position, record);
                    }
                }
                Event::Alias(_) => {
                    index.enter_value(&mut stack, position, record);
                }
                _ => {}
            }
        }
        index
    }

    /// Records the position of the value starting here and returns its path.
    fn enter_value(
        &mut self,
        stack: &mut [Frame],
        position: (usize, usize),
        record: bool,
    ) -> String {
        let path = match stack.last_mut() {
            None => String::new(),
            Some(Frame::Mapping { path, key }) => {
                let key = key.take().unwrap_or_default();
                if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                }
            }
            Some(Frame::Sequence { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                item
            }
        };
        if record {
            self.found = true;
            if self.wants(&path, position) {
                self.positions.entry(path.clone()).or_insert(position);
            }
        }
        path
    }

    /// Position of the key of the mapping entry at `path` (for an unknown field, the key is
    /// what is wrong), or None when `path` is not a mapping entry of the document.
    pub fn find_key(&self, path: &str) -> Option<(usize, usize)> {
        self.keys.get(path).copied()
    }

    /// The field whose value starts at (line, column): for an error the parser reports by
    /// position only (`.nan`), the path to name. The deepest one, when several start there.
    pub fn path_at(&self, line: usize, column: usize) -> Option<&str> {
        self.positions
            .iter()
            .filter(|(_, position)| **position == (line, column))
            .map(|(path, _)| path.as_str())
            .max_by_key(|path| path.len())
    }

    /// Position of `path`, or of its closest indexed ancestor (a missing field points at its parent).
    pub fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut candidate = path;
        loop {
            if let Some(position) = self.positions.get(candidate) {
                return Some(*position);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
apiVersion: v1
spec:
  pools:
  - name: a
    fabric: x
  - name: b
    fabric: y
---
spec:
  other: 1
";

    #[test]
    fn finds_fields_and_list_items() {
        let index = PathIndex::build(TEXT, 0);
        assert_eq!(index.find("spec.pools[1].fabric"), Some((7, 13)));
        assert_eq!(index.find("spec.pools[0]"), Some((4, 5)));
        // A missing field points at its parent.
        assert_eq!(index.find("spec.pools[1].missing"), Some((6, 5)));
    }

    #[test]
    fn skips_null_documents() {
        let index = PathIndex::build("---\n---\n~\n---\napiVersion: v1\n", 0);
        assert_eq!(index.find(""), Some((5, 1)));
        assert_eq!(index.find("apiVersion"), Some((5, 13)));
    }

    #[test]
    fn finds_keys() {
        let index = PathIndex::build(TEXT, 0);
        assert_eq!(index.find_key("spec.pools[1].fabric"), Some((7, 5)));
        assert_eq!(index.find_key("apiVersion"), Some((1, 1)));
        assert_eq!(index.find_key("spec.pools[1]"), None);
        assert_eq!(
            PathIndex::build(TEXT, 1).find_key("spec.other"),
            Some((10, 3))
        );
    }

    #[test]
    fn names_the_field_at_a_position() {
        let index = PathIndex::build(TEXT, 0);
        assert_eq!(index.path_at(7, 13), Some("spec.pools[1].fabric"));
        assert_eq!(index.path_at(7, 14), None);
    }

    #[test]
    fn an_index_for_some_paths_holds_them_and_their_ancestors_only() {
        let index = PathIndex::build_for(TEXT, 0, ["spec.pools[1].fabric"]);
        assert_eq!(index.find("spec.pools[1].fabric"), Some((7, 13)));
        assert_eq!(
            index.find("spec.pools[1].name"),
            Some((6, 5)),
            "falls back to the item"
        );
        // The path, its three ancestors and the document's root ("").
        assert_eq!(index.positions.len(), 5, "{:?}", index.positions);
        let at = PathIndex::build_at(TEXT, 0, 7, 13);
        assert_eq!(at.path_at(7, 13), Some("spec.pools[1].fabric"));
        assert!(at.has_document() && !PathIndex::build_at(TEXT, 2, 1, 1).has_document());
    }

    #[test]
    fn indexes_later_documents() {
        let index = PathIndex::build(TEXT, 1);
        assert_eq!(index.find("spec.other"), Some((10, 10)));
        // Not in this document: falls back to the closest ancestor, spec (its value starts at 10:3).
        assert_eq!(index.find("spec.pools"), Some((10, 3)));
    }
}
