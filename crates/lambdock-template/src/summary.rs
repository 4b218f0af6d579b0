//! The table `lambdock build` (and `deploy`) prints at the end: what the deployment contains.

use std::fmt::Write;

use crate::manifest::{Code, Manifest};

/// Plain-text tables of the functions, routes, schedules, buckets and tables of `manifest`.
pub fn summary(manifest: &Manifest) -> String {
    let mut out = String::new();
    let functions: Vec<Vec<String>> = manifest
        .functions
        .iter()
        .map(|(name, f)| {
            let code = match &f.code {
                Code::Dir(_) => f.runtime.clone(),
                Code::Image(image) => format!("image {image}"),
            };
            let aliases: Vec<String> = f.aliases.iter().map(|(a, v)| format!("{a}->{v}")).collect();
            vec![
                name.clone(),
                code,
                f.handler.clone(),
                format!("{} MB", f.memory_mb),
                format!("{} s", f.timeout_s),
                aliases.join(","),
            ]
        })
        .collect();
    table(
        &mut out,
        "Functions",
        &["NAME", "RUNTIME", "HANDLER", "MEMORY", "TIMEOUT", "ALIASES"],
        functions,
    );
    let routes = manifest
        .routes
        .iter()
        .map(|r| {
            let stage = manifest
                .apis
                .get(&r.api)
                .map(|a| a.stage.clone())
                .unwrap_or_default();
            vec![
                format!("{} ({stage})", r.api),
                r.method.clone(),
                r.path.clone(),
                match &r.qualifier {
                    Some(q) => format!("{}:{q}", r.function),
                    None => r.function.clone(),
                },
                r.authorizer.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &mut out,
        "Routes",
        &["API", "METHOD", "PATH", "FUNCTION", "AUTHORIZER"],
        routes,
    );
    let schedules = manifest
        .schedules
        .iter()
        .map(|(name, s)| {
            vec![
                name.clone(),
                s.expression.clone(),
                s.function.clone(),
                if s.enabled { "enabled" } else { "disabled" }.into(),
            ]
        })
        .collect();
    table(
        &mut out,
        "Schedules",
        &["NAME", "EXPRESSION", "FUNCTION", "STATE"],
        schedules,
    );
    let buckets = manifest
        .buckets
        .iter()
        .map(|(name, b)| {
            vec![
                name.clone(),
                b.lifecycle_rules.len().to_string(),
                b.cors_rules.len().to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        "Buckets",
        &["NAME", "LIFECYCLE RULES", "CORS RULES"],
        buckets,
    );
    let tables = manifest
        .tables
        .iter()
        .map(|(name, t)| {
            let keys: Vec<String> = t
                .key_schema
                .iter()
                .map(|k| format!("{} {}", k.name, k.key_type))
                .collect();
            vec![
                name.clone(),
                keys.join(", "),
                t.billing_mode.clone(),
                (t.global_secondary_indexes.len() + t.local_secondary_indexes.len()).to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        "Tables",
        &["NAME", "KEYS", "BILLING", "INDEXES"],
        tables,
    );
    out
}

fn table(out: &mut String, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title} ({})", rows.len());
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_every_kind() {
        let m: crate::manifest::Manifest = serde_json::from_value(serde_json::json!({
            "schema_version": 1,
            "functions": {"f": {"runtime": "python3.12", "handler": "app.h", "code": {"dir": "."}}},
            "apis": {"A": {"kind": "rest", "stage": "Prod"}},
            "routes": [{"api": "A", "method": "GET", "path": "/x", "function": "f", "payload_version": "1.0"}],
            "tables": {"t": {"key_schema": [{"name": "id", "key_type": "HASH"}], "attributes": [], "billing_mode": "PAY_PER_REQUEST"}}
        }))
        .unwrap();
        let s = super::summary(&m);
        assert!(s.contains("Functions (1)"), "{s}");
        assert!(s.contains("A (Prod)  GET     /x    f"), "{s}");
        assert!(s.contains("t     id HASH  PAY_PER_REQUEST"), "{s}");
        assert!(!s.contains("Buckets"), "{s}");
    }
}
