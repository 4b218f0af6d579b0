//! The Lambda runtimes a Lambdock node runs by default. One list, read by the agent (to build
//! its runtime table) and by the template compiler (to refuse a template whose function could
//! never start), so the two cannot disagree.

/// Runtimes whose code (or a layer) brings a `bootstrap` executable.
pub const PROVIDED: [&str; 3] = ["provided", "provided.al2", "provided.al2023"];

/// Python versions run with `python -m awslambdaric` (`python3.12`, ...).
pub const PYTHON_VERSIONS: [&str; 7] = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"];

/// Every built-in runtime name.
pub fn builtin() -> Vec<String> {
    PROVIDED
        .iter()
        .map(|s| s.to_string())
        .chain(PYTHON_VERSIONS.iter().map(|v| format!("python{v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        let all = super::builtin();
        assert!(all.contains(&"python3.12".to_string()));
        assert!(all.contains(&"provided.al2023".to_string()));
        assert!(!all.contains(&"nodejs20.x".to_string()));
    }
}
