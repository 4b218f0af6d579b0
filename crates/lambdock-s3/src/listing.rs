//! ListObjects (v1 and v2) and ListMultipartUploads paging over a sorted key space: prefix,
//! delimiter roll-up into common prefixes, max-keys, and resuming after a marker. Kept pure
//! so the S3 semantics are unit-tested without a server.

use std::collections::BTreeMap;
use std::ops::Bound;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to the first delimiter after the prefix into common prefixes.
    pub delimiter: Option<&'a str>,
    /// Resume strictly after this key (v1 marker, v2 StartAfter/continuation token).
    pub after: Option<&'a str>,
    /// Maximum number of entries (keys plus common prefixes).
    pub max: usize,
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'a, T> {
    /// An object.
    Key(&'a str, &'a T),
    /// A common prefix (ends with the delimiter).
    Prefix(String),
}

impl<T> Entry<'_, T> {
    /// The key or prefix, which is where the next page resumes.
    pub fn name(&self) -> &str {
        match self {
            Entry::Key(k, _) => k,
            Entry::Prefix(p) => p,
        }
    }
}

/// One page of results.
#[derive(Debug)]
pub struct Page<'a, T> {
    /// Keys and common prefixes in lexicographic order.
    pub entries: Vec<Entry<'a, T>>,
    /// Whether more entries follow.
    pub truncated: bool,
}

impl<T> Page<'_, T> {
    /// Where the next page resumes (the last entry), if the listing is truncated.
    pub fn next(&self) -> Option<&str> {
        if self.truncated {
            self.entries.last().map(Entry::name)
        } else {
            None
        }
    }
}

/// Lists `map` as S3 does.
pub fn list<'a, T>(map: &'a BTreeMap<String, T>, q: &Query<'_>) -> Page<'a, T> {
    let mut entries: Vec<Entry<'a, T>> = Vec::new();
    let mut truncated = false;
    // Start at whichever is later: the prefix or the resume point.
    let start = match q.after {
        Some(after) if after >= q.prefix => Bound::Excluded(after),
        _ => Bound::Included(q.prefix),
    };
    for (key, value) in map.range::<str, _>((start, Bound::Unbounded)) {
        if !key.starts_with(q.prefix) {
            break;
        }
        let entry = match q.delimiter.filter(|d| !d.is_empty()) {
            Some(d) => match key[q.prefix.len()..].find(d) {
                Some(i) => {
                    let cp = &key[..q.prefix.len() + i + d.len()];
                    // Keys under a prefix already returned (on this page or, via the
                    // marker, on an earlier one) are rolled up into it.
                    let seen = matches!(entries.last(), Some(Entry::Prefix(p)) if p == cp)
                        || q.after.is_some_and(|a| cp <= a);
                    if seen {
                        continue;
                    }
                    Entry::Prefix(cp.to_string())
                }
                None => Entry::Key(key.as_str(), value),
            },
            None => Entry::Key(key.as_str(), value),
        };
        if entries.len() == q.max {
            truncated = true;
            break;
        }
        entries.push(entry);
    }
    Page { entries, truncated }
}

/// Percent-encodes a key for `encoding-type=url` responses (what boto3 asks for by default and
/// decodes), keeping unreserved characters and `/`.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, ()> {
        keys.iter().map(|k| (k.to_string(), ())).collect()
    }

    fn names<T>(p: &Page<'_, T>) -> Vec<String> {
        p.entries.iter().map(|e| e.name().to_string()).collect()
    }

    #[test]
    fn prefix_and_max_keys_paginate() {
        let m = map(&["a", "b/1", "b/2", "b/3", "c"]);
        let q = Query {
            prefix: "b/",
            max: 2,
            ..Default::default()
        };
        let p = list(&m, &q);
        assert_eq!(names(&p), ["b/1", "b/2"]);
        assert_eq!(p.next(), Some("b/2"));
        let q2 = Query {
            after: p.next(),
            ..q.clone()
        };
        let p2 = list(&m, &q2);
        assert_eq!(names(&p2), ["b/3"]);
        assert!(!p2.truncated);
        assert_eq!(p2.next(), None);
    }

    #[test]
    fn delimiter_rolls_up_common_prefixes_across_pages() {
        let m = map(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        let q = Query {
            delimiter: Some("/"),
            max: 2,
            ..Default::default()
        };
        let p = list(&m, &q);
        assert_eq!(names(&p), ["a/", "b"]);
        assert!(matches!(p.entries[0], Entry::Prefix(_)));
        let p2 = list(
            &m,
            &Query {
                after: p.next(),
                ..q.clone()
            },
        );
        assert_eq!(names(&p2), ["c/", "d"]);
        assert!(!p2.truncated);
        // Resuming after a common prefix must not return it again.
        let p3 = list(
            &m,
            &Query {
                after: Some("a/"),
                max: 10,
                ..q
            },
        );
        assert_eq!(names(&p3), ["b", "c/", "d"]);
    }

    #[test]
    fn delimiter_below_a_prefix() {
        let m = map(&["p/a/1", "p/a/2", "p/b", "q/z"]);
        let p = list(
            &m,
            &Query {
                prefix: "p/",
                delimiter: Some("/"),
                max: 1000,
                ..Default::default()
            },
        );
        assert_eq!(names(&p), ["p/a/", "p/b"]);
    }

    #[test]
    fn start_after_before_the_prefix_starts_at_the_prefix() {
        let m = map(&["a", "m/1", "m/2"]);
        let p = list(
            &m,
            &Query {
                prefix: "m/",
                after: Some("b"),
                max: 1000,
                ..Default::default()
            },
        );
        assert_eq!(names(&p), ["m/1", "m/2"]);
        let p = list(
            &m,
            &Query {
                prefix: "m/",
                after: Some("m/1"),
                max: 1000,
                ..Default::default()
            },
        );
        assert_eq!(names(&p), ["m/2"]);
    }

    #[test]
    fn exactly_max_keys_is_not_truncated_and_zero_returns_nothing() {
        let m = map(&["a", "b"]);
        let p = list(
            &m,
            &Query {
                max: 2,
                ..Default::default()
            },
        );
        assert!(!p.truncated);
        let p = list(
            &m,
            &Query {
                max: 0,
                ..Default::default()
            },
        );
        assert!(p.entries.is_empty());
    }

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }
}
