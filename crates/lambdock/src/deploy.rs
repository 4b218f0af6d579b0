//! `lambdock deploy` and the template half of `lambdock up -t`: compile and bundle a template,
//! create its buckets and tables on the configured S3 and DynamoDB endpoints, then hand the
//! manifest to the gateway, which switches to it without failing an invocation.

use std::error::Error;
use std::path::{Path, PathBuf};

use clap::Args;
use lambdock_provision::{Change, Endpoints, Outcome, Provisioner};
use lambdock_template::manifest::Manifest;

use crate::build::{BuildArgs, TemplateArgs};
use crate::client::{Endpoint, call};

/// Where the data plane is, for the provisioner.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// S3 endpoint the template's buckets are created on.
    #[arg(
        long,
        env = "LAMBDOCK_S3_ENDPOINT",
        default_value = "http://127.0.0.1:9000"
    )]
    pub s3_endpoint: String,
    /// DynamoDB endpoint the template's tables are created on.
    #[arg(
        long,
        env = "LAMBDOCK_DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:8000"
    )]
    pub dynamodb_endpoint: String,
}

/// Options of `lambdock deploy`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The template and its build; the gateway reads the code from the build directory, so it
    /// must be on the gateway's machine (or a shared filesystem).
    #[command(flatten)]
    build: BuildArgs,
    /// The gateway's AWS endpoint.
    #[arg(
        long,
        env = "LAMBDOCK_ENDPOINT",
        default_value = "http://127.0.0.1:3001"
    )]
    gateway: String,
    /// Access key the gateway and the stores accept.
    #[arg(long, env = "LAMBDOCK_ACCESS_KEY", default_value = "lambdock")]
    access_key: String,
    /// Its secret.
    #[arg(
        long,
        env = "LAMBDOCK_SECRET_KEY",
        default_value = "lambdock-secret",
        hide_env_values = true
    )]
    secret_key: String,
    #[command(flatten)]
    stores: StoreArgs,
}

/// Where a deploy's bundles go: a directory of its own under the build root, so that a redeploy
/// never rewrites code that workers of the running deployment still use.
pub fn bundle_dir(build_root: &Path) -> PathBuf {
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    build_root.join("deployments").join(id.to_string())
}

/// Removes the bundle directories under `build_root` that no manifest of `keep` uses.
pub fn prune_bundles(build_root: &Path, keep: &[&Manifest]) {
    // Manifests hold canonical paths.
    let Ok(entries) =
        std::fs::canonicalize(build_root.join("deployments")).and_then(std::fs::read_dir)
    else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let used = keep.iter().any(|m| {
            m.functions.values().any(|f| {
                matches!(&f.code, lambdock_template::manifest::Code::Dir(d) if d.starts_with(&dir))
                    || f.layers.iter().any(|l| l.starts_with(&dir))
            })
        });
        if !used && let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("  warning: removing the old bundles {}: {e}", dir.display());
        }
    }
}

/// Compiles and bundles a template into `bundle_dir` (building Rust functions with
/// `cargo_profile`, their cargo output cached under `build_root`): the manifest to deploy.
pub fn prepare(
    template: &TemplateArgs,
    build_root: &Path,
    bundle_dir: &Path,
    cargo_profile: &str,
) -> Result<Manifest, Box<dyn Error>> {
    let mut compiled = template.compile()?;
    for (name, schedule) in &compiled.manifest.schedules {
        lambdock_schedule::check(schedule).map_err(|e| {
            format!(
                "{}: schedule {name} of function {}: {e}",
                template.template.display(),
                schedule.function
            )
        })?;
    }
    crate::cargo_build::run(&mut compiled, build_root, cargo_profile)?;
    eprintln!(
        "Bundling {} function(s) into {}",
        compiled.manifest.functions.len(),
        bundle_dir.display()
    );
    let built = lambdock_template::build(&compiled, bundle_dir)?;
    for warning in &built.warnings {
        eprintln!("  warning: {warning}");
    }
    Ok(built.manifest)
}

/// Creates the manifest's buckets and tables; a table that differs from its definition is
/// reported on stderr and left alone.
pub async fn provision(
    manifest: &Manifest,
    endpoints: &Endpoints,
) -> Result<Vec<Outcome>, Box<dyn Error>> {
    if manifest.buckets.is_empty() && manifest.tables.is_empty() {
        return Ok(Vec::new());
    }
    let provisioner = Provisioner::new(endpoints);
    let outcomes = provisioner
        .provision(manifest, |kind, name| {
            eprintln!("Provisioning {kind} {name}")
        })
        .await?;
    for o in &outcomes {
        if let Change::Differs(differences) = &o.change {
            for d in differences {
                eprintln!(
                    "  warning: {} {} exists and differs: {d}; it was left as it is (delete it or rename it in the template to recreate it)",
                    o.kind, o.name
                );
            }
        }
    }
    Ok(outcomes)
}

/// The resources table printed after a deploy.
pub fn print_outcomes(outcomes: &[Outcome]) {
    if outcomes.is_empty() {
        return;
    }
    println!("Resources");
    for o in outcomes {
        let change = match &o.change {
            Change::Created => "created".to_string(),
            Change::Unchanged => "unchanged".to_string(),
            Change::Updated(what) => format!("updated: {}", what.join(", ")),
            Change::Differs(_) => "differs (left as it is)".to_string(),
        };
        println!("  {:<6} {:<40} {change}", o.kind, o.name);
    }
}

/// Runs `lambdock deploy`.
pub async fn deploy(args: DeployArgs) -> Result<(), Box<dyn Error>> {
    let root = &args.build.build_dir;
    let manifest = prepare(
        &args.build.template,
        root,
        &bundle_dir(root),
        &args.build.cargo_profile,
    )?;
    let outcomes = provision(
        &manifest,
        &Endpoints {
            s3: args.stores.s3_endpoint.clone(),
            dynamodb: args.stores.dynamodb_endpoint.clone(),
            region: args.build.template.region.clone(),
            access_key: args.access_key.clone(),
            secret_key: args.secret_key.clone(),
        },
    )
    .await?;
    eprintln!("Deploying to the gateway at {}", args.gateway);
    let endpoint = Endpoint {
        endpoint: args.gateway.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: args.build.template.region.clone(),
    };
    // The deployment being replaced keeps its bundles until the next deploy: its in-flight
    // invocations finish on them.
    let live: Option<Manifest> = crate::client::get_json(&endpoint, "/lambdock/v1/deployment")
        .await
        .ok()
        .and_then(|v| serde_json::from_value(v).ok());
    let body = serde_json::to_vec(&manifest)?;
    let resp = call(
        &endpoint,
        http::Method::PUT,
        "/lambdock/v1/deployment",
        body.into(),
        &[("content-type", "application/json".to_string())],
    )
    .await?;
    if !resp.status().is_success() {
        let text = String::from_utf8_lossy(resp.body());
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.into_owned());
        return Err(format!(
            "the gateway refused the deployment ({}): {message}",
            resp.status()
        )
        .into());
    }
    // Without the running deployment's manifest nothing is known to be unused.
    if let Some(live) = &live {
        prune_bundles(root, &[live, &manifest]);
    }
    crate::build::print_summary(&manifest);
    print_outcomes(&outcomes);
    println!("Deployed.");
    Ok(())
}
