//! One error type for the whole compiler, so `lambdock build`, `deploy` and `up -t` print the
//! same "file:line:col: resource X: what is wrong" message whatever stage failed.

use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::yaml::Pos;

/// A template that cannot be compiled or built.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Something wrong at a place in the template.
    #[error("{}:{}:{}: {}{message}", file.display(), pos.line, pos.col, resource_prefix(resource))]
    At {
        /// The template file.
        file: PathBuf,
        /// Where in it.
        pos: Pos,
        /// The logical id of the resource being compiled, when there is one.
        resource: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.zip` code bundle that cannot be unpacked.
    #[error("{}: {source}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// Why.
        source: zip::result::ZipError,
    },
    /// The compiled manifest is refused by the manifest's own checks.
    #[error("{}: {source}", file.display())]
    Manifest {
        /// The template file.
        file: PathBuf,
        /// Why.
        source: ManifestError,
    },
}

fn resource_prefix(resource: &Option<String>) -> String {
    match resource {
        Some(id) => format!("resource {id}: "),
        None => String::new(),
    }
}

impl TemplateError {
    /// The line the error points at, when it points at one.
    pub fn line(&self) -> Option<u32> {
        match self {
            TemplateError::At { pos, .. } => Some(pos.line),
            _ => None,
        }
    }

    /// Names the resource being compiled unless a more precise one is already named.
    pub(crate) fn in_resource(mut self, id: &str) -> Self {
        if let TemplateError::At { resource, .. } = &mut self
            && resource.is_none()
        {
            *resource = Some(id.to_string());
        }
        self
    }
}

/// Builds [`TemplateError::At`] for one file.
pub(crate) fn at(file: &std::path::Path, pos: Pos, message: impl Into<String>) -> TemplateError {
    TemplateError::At {
        file: file.to_path_buf(),
        pos,
        resource: None,
        message: message.into(),
    }
}
