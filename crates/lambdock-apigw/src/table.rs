//! The route table: every route of every API in one table on one port (as `sam local
//! start-api` serves them), matched the way API Gateway picks a route: the most specific path
//! wins (a literal segment over `{param}` over a greedy `{proxy+}`), then a method route over
//! `ANY`, then HTTP API's `$default` catches what is left.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use lambdock_template::manifest::{Api, ApiKind, Manifest, Route};

/// One compiled path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    /// Lower ranks are more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 2,
        }
    }
}

/// A route with its API, ready to match.
#[derive(Debug)]
pub struct Entry {
    /// The route as the manifest has it.
    pub route: Route,
    /// Its API.
    pub api: Arc<Api>,
    /// API Gateway's id of the API (stable, derived from its logical id).
    pub api_id: String,
    segments: Vec<Segment>,
    /// HTTP API's `$default` route.
    default_route: bool,
}

impl Entry {
    /// `routeKey`: `GET /items/{id}` or `$default`.
    pub fn route_key(&self) -> String {
        if self.default_route {
            "$default".into()
        } else {
            format!("{} {}", self.route.method, self.route.path)
        }
    }

    /// REST's `resourceId`: a stable six-character id of the path.
    pub fn resource_id(&self) -> String {
        short_id(&self.route.path, 6)
    }

    fn method_matches(&self, method: &str) -> bool {
        self.route.method == "ANY"
            || self.route.method == method
            || (method == "HEAD" && self.route.method == "GET")
    }

    /// Path parameters when `path` (split in decoded segments) fits this route.
    fn fit(&self, segments: &[String]) -> Option<BTreeMap<String, String>> {
        if self.default_route {
            return Some(BTreeMap::new());
        }
        let mut params = BTreeMap::new();
        for (i, seg) in self.segments.iter().enumerate() {
            match seg {
                Segment::Literal(l) => {
                    if segments.get(i) != Some(l) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    params.insert(name.clone(), segments.get(i)?.clone());
                }
                Segment::Greedy(name) => {
                    // `{proxy+}` takes one segment or more.
                    if segments.len() <= i {
                        return None;
                    }
                    params.insert(name.clone(), segments[i..].join("/"));
                    return Some(params);
                }
            }
        }
        (segments.len() == self.segments.len()).then_some(params)
    }

    /// Orders two routes that both fit a request: the more specific first.
    fn specificity(&self, other: &Entry) -> Ordering {
        self.default_route
            .cmp(&other.default_route)
            .then_with(|| {
                let ranks = |e: &Entry| e.segments.iter().map(Segment::rank).collect::<Vec<_>>();
                ranks(self).cmp(&ranks(other))
            })
            .then_with(|| {
                // Among equally specific paths, the longer has more literal context.
                other.segments.len().cmp(&self.segments.len())
            })
            .then_with(|| (self.route.method == "ANY").cmp(&(other.route.method == "ANY")))
    }
}

/// A stable lower-case alphanumeric id of `len` characters (FNV-1a of `text`).
pub fn short_id(text: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % 36) as usize] as char;
            h /= 36;
            if h == 0 {
                h = 0x9e37_79b9_7f4a_7c15;
            }
            c
        })
        .collect()
}

fn compile(path: &str) -> Vec<Segment> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_string()),
                    None => Segment::Param(name.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect()
}

/// What a request found.
#[derive(Debug)]
pub enum Found<'a> {
    /// A route, with its path parameters; `true` when the path began with the API's stage.
    Route(&'a Entry, BTreeMap<String, String>, bool),
    /// No route: the error shape of the API kind that owns the port's table.
    None(ApiKind),
}

/// All routes of a deployment.
#[derive(Debug, Default)]
pub struct Table {
    /// Routes, in manifest order.
    pub entries: Vec<Entry>,
}

impl Table {
    /// The table of a manifest's routes. A route whose API is missing is skipped (the
    /// manifest's own validation refuses such manifests).
    pub fn new(manifest: &Manifest) -> Table {
        let apis: BTreeMap<&String, Arc<Api>> = manifest
            .apis
            .iter()
            .map(|(k, v)| (k, Arc::new(v.clone())))
            .collect();
        let entries = manifest
            .routes
            .iter()
            .filter_map(|route| {
                let api = apis.get(&route.api)?.clone();
                let default_route = route.path == "$default";
                Some(Entry {
                    segments: if default_route {
                        Vec::new()
                    } else {
                        compile(&route.path)
                    },
                    api_id: short_id(&route.api, 10),
                    default_route,
                    api,
                    route: route.clone(),
                })
            })
            .collect();
        Table { entries }
    }

    /// Which error an unknown route gets: REST's 403 as soon as a REST API is served on the
    /// port, HTTP API's 404 otherwise.
    pub fn unknown_kind(&self) -> ApiKind {
        if self.entries.iter().any(|e| e.api.kind == ApiKind::Rest) {
            ApiKind::Rest
        } else {
            ApiKind::Http
        }
    }

    /// The route for `method` and `path` (raw, percent-encoded). A REST API's stage may prefix
    /// the path (`/Prod/items`, as on AWS's execute-api domain); without it the route is
    /// served too, as `sam local start-api` serves it.
    pub fn find(&self, method: &str, path: &str) -> Found<'_> {
        let segments = split_path(path);
        if let Some((e, p)) = self.best(method, &segments, None) {
            return Found::Route(e, p, false);
        }
        if let Some((first, rest)) = segments.split_first() {
            let staged = |e: &&Entry| e.api.kind == ApiKind::Rest && &e.api.stage == first;
            if let Some((e, p)) = self.best(method, rest, Some(&staged)) {
                return Found::Route(e, p, true);
            }
        }
        Found::None(self.unknown_kind())
    }

    fn best<'a>(
        &'a self,
        method: &str,
        segments: &[String],
        only: Option<&dyn Fn(&&Entry) -> bool>,
    ) -> Option<(&'a Entry, BTreeMap<String, String>)> {
        self.entries
            .iter()
            .filter(|e| only.is_none_or(|f| f(e)))
            .filter(|e| e.method_matches(method))
            .filter_map(|e| e.fit(segments).map(|p| (e, p)))
            .min_by(|(a, _), (b, _)| a.specificity(b))
    }

    /// The routes of any method whose path fits (for CORS preflights and `Allow`).
    pub fn for_path(&self, path: &str) -> Vec<&Entry> {
        let segments = split_path(path);
        self.entries
            .iter()
            .filter(|e| !e.default_route && e.fit(&segments).is_some())
            .collect()
    }

    /// The table as `lambdock up` prints it.
    pub fn render(&self, base_url: &str) -> String {
        let mut rows: Vec<[String; 5]> = self
            .entries
            .iter()
            .map(|e| {
                let function = match &e.route.qualifier {
                    Some(q) => format!("{}:{q}", e.route.function),
                    None => e.route.function.clone(),
                };
                let mut auth = Vec::new();
                if let Some(a) = &e.route.authorizer {
                    auth.push(a.clone());
                }
                if e.route.api_key_required {
                    auth.push("api key".into());
                }
                let kind = match e.api.kind {
                    ApiKind::Rest => "REST 1.0",
                    ApiKind::Http if e.route.payload_version == "1.0" => "HTTP 1.0",
                    ApiKind::Http => "HTTP 2.0",
                };
                let url = if e.default_route {
                    format!("{base_url}/* ($default)")
                } else {
                    format!("{base_url}{}", e.route.path)
                };
                [
                    e.route.method.clone(),
                    url,
                    function,
                    format!("{} {kind}", e.route.api),
                    if auth.is_empty() {
                        "-".into()
                    } else {
                        auth.join(", ")
                    },
                ]
            })
            .collect();
        rows.sort_by(|a, b| a[1].cmp(&b[1]).then(a[0].cmp(&b[0])));
        let header = ["METHOD", "URL", "FUNCTION", "API", "AUTH"].map(String::from);
        let mut widths = [0usize; 5];
        for row in std::iter::once(&header).chain(&rows) {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "    {}", line.join("  ").trim_end());
        }
        out
    }
}

/// The path's segments, each percent-decoded (a trailing slash is not a segment).
pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(routes: &[(&str, &str, &str)]) -> Manifest {
        let routes: Vec<serde_json::Value> = routes
            .iter()
            .map(|(api, method, path)| {
                serde_json::json!({"api": api, "method": method, "path": path,
                    "function": format!("{method} {path}"), "payload_version": "2.0"})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "schema_version": 1,
            "apis": {
                "Rest": {"kind": "rest", "stage": "Prod"},
                "Http": {"kind": "http", "stage": "$default"}
            },
            "routes": routes,
        }))
        .unwrap()
    }

    fn found(
        table: &Table,
        method: &str,
        path: &str,
    ) -> Option<(String, BTreeMap<String, String>)> {
        match table.find(method, path) {
            Found::Route(e, p, _) => Some((e.route.function.clone(), p)),
            Found::None(_) => None,
        }
    }

    #[test]
    fn most_specific_path_then_method_wins() {
        let t = Table::new(&manifest(&[
            ("Http", "ANY", "/{proxy+}"),
            ("Http", "GET", "/items/{id}"),
            ("Http", "ANY", "/items/special"),
            ("Http", "GET", "/items/special"),
            ("Http", "ANY", "/items/{id}"),
            ("Http", "GET", "/files/{proxy+}"),
        ]));
        let f = |m, p| found(&t, m, p).unwrap();
        assert_eq!(f("GET", "/items/special").0, "GET /items/special");
        assert_eq!(f("POST", "/items/special").0, "ANY /items/special");
        assert_eq!(f("GET", "/items/42").0, "GET /items/{id}");
        assert_eq!(f("GET", "/items/42").1["id"], "42");
        assert_eq!(f("DELETE", "/items/42").0, "ANY /items/{id}");
        assert_eq!(f("HEAD", "/items/42").0, "GET /items/{id}");
        let (name, params) = f("GET", "/files/a/b%20c/d.txt");
        assert_eq!(name, "GET /files/{proxy+}");
        assert_eq!(params["proxy"], "a/b c/d.txt");
        assert_eq!(f("PUT", "/files/x").0, "ANY /{proxy+}");
        assert_eq!(f("GET", "/deep/er/path").1["proxy"], "deep/er/path");
    }

    #[test]
    fn greedy_needs_a_segment_and_unknown_routes_get_the_kinds_error() {
        let http = Table::new(&manifest(&[("Http", "GET", "/a/{proxy+}")]));
        assert!(found(&http, "GET", "/a").is_none());
        assert!(found(&http, "GET", "/a/").is_none());
        assert!(matches!(http.find("GET", "/b"), Found::None(ApiKind::Http)));
        assert!(matches!(
            http.find("POST", "/a/b"),
            Found::None(ApiKind::Http)
        ));
        let rest = Table::new(&manifest(&[("Rest", "GET", "/a")]));
        assert!(matches!(rest.find("GET", "/b"), Found::None(ApiKind::Rest)));
    }

    #[test]
    fn rest_routes_answer_with_and_without_their_stage() {
        let t = Table::new(&manifest(&[
            ("Rest", "GET", "/a/{x}"),
            ("Http", "GET", "/h"),
        ]));
        assert_eq!(found(&t, "GET", "/a/1").unwrap().1["x"], "1");
        assert_eq!(found(&t, "GET", "/Prod/a/1").unwrap().1["x"], "1");
        assert!(found(&t, "GET", "/Prod/h").is_none());
        assert!(found(&t, "GET", "/Beta/a/1").is_none());
    }

    #[test]
    fn default_route_catches_the_rest_last() {
        let t = Table::new(&manifest(&[
            ("Http", "ANY", "$default"),
            ("Http", "GET", "/x"),
        ]));
        assert_eq!(found(&t, "GET", "/x").unwrap().0, "GET /x");
        assert_eq!(found(&t, "POST", "/y/z").unwrap().0, "ANY $default");
        let Found::Route(e, _, _) = t.find("POST", "/y") else {
            panic!()
        };
        assert_eq!(e.route_key(), "$default");
    }

    #[test]
    fn render_lists_every_route() {
        let t = Table::new(&manifest(&[("Rest", "GET", "/a"), ("Http", "POST", "/b")]));
        let text = t.render("http://127.0.0.1:3000");
        assert!(
            text.contains("GET     http://127.0.0.1:3000/a  GET /a"),
            "{text}"
        );
        assert!(text.contains("Rest REST 1.0"), "{text}");
        assert!(text.contains("Http HTTP 2.0"), "{text}");
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn ids_are_stable_and_short() {
        assert_eq!(
            short_id("ServerlessRestApi", 10),
            short_id("ServerlessRestApi", 10)
        );
        assert_ne!(short_id("A", 10), short_id("B", 10));
        assert_eq!(short_id("A", 10).len(), 10);
    }
}
