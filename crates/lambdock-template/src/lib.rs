//! Templates in, deployment manifests out. This crate owns the manifest the gateway loads
//! ([`manifest`]); the SAM/CloudFormation compiler that produces it from a template comes next.

pub mod manifest;
