//! `lambdock build`: compile a SAM template and write what `sam build` would, code bundles and
//! a manifest, under `.lambdock/build/`. The template options and the summary are shared with
//! the commands that deploy a template.

use std::error::Error;
use std::path::PathBuf;

use clap::Args;
use lambdock_template::{CompileOptions, Compiled, compile, parse_overrides, runtimes, summary};

/// Which template, and the values its pseudo parameters and parameters take.
#[derive(Args, Debug, Clone)]
pub struct TemplateArgs {
    /// The SAM / CloudFormation template (YAML or JSON).
    #[arg(short = 't', long = "template", default_value = "template.yaml")]
    pub template: PathBuf,
    /// Parameter values, `Key=Value` (or `ParameterKey=K,ParameterValue=V`), as `sam deploy`.
    #[arg(long = "parameter-overrides", num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// `AWS::Region`.
    #[arg(long, env = "LAMBDOCK_REGION", default_value = "us-east-1")]
    pub region: String,
    /// `AWS::AccountId`.
    #[arg(long, env = "LAMBDOCK_ACCOUNT_ID", default_value = "123456789012")]
    pub account_id: String,
    /// `AWS::StackName`.
    #[arg(long, default_value = "lambdock")]
    pub stack_name: String,
    /// TOML file of extra runtimes (the agent's `--runtimes`): their names are accepted too.
    #[arg(long, env = "LAMBDOCK_RUNTIMES")]
    pub runtimes: Option<PathBuf>,
}

impl TemplateArgs {
    /// Compiles the template, printing its warnings to stderr.
    pub fn compile(&self) -> Result<Compiled, Box<dyn Error>> {
        let mut names = runtimes::builtin();
        if let Some(path) = &self.runtimes {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            names.extend(table.keys().cloned());
        }
        let opts = CompileOptions {
            parameter_overrides: parse_overrides(&self.parameter_overrides)?,
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            stack_name: self.stack_name.clone(),
            runtimes: names,
        };
        eprintln!("Compiling {}", self.template.display());
        let compiled = compile(&self.template, &opts)?;
        for warning in &compiled.warnings {
            eprintln!("  warning: {warning}");
        }
        Ok(compiled)
    }
}

/// `lambdock build` options.
#[derive(Args, Debug)]
pub struct BuildArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Where the bundles and `manifest.json` go.
    #[arg(long, default_value = ".lambdock/build")]
    pub build_dir: PathBuf,
    /// Cargo profile Rust functions (`BuildMethod: rust-cargolambda`) are built with.
    #[arg(long, env = "LAMBDOCK_CARGO_PROFILE", default_value = "release")]
    pub cargo_profile: String,
}

/// Compiles, bundles and prints the summary.
pub fn run(args: BuildArgs) -> Result<(), Box<dyn Error>> {
    let manifest = crate::deploy::prepare(
        &args.template,
        &args.build_dir,
        &args.build_dir,
        &args.cargo_profile,
    )?;
    eprintln!("Wrote {}", args.build_dir.join("manifest.json").display());
    print_summary(&manifest);
    Ok(())
}

/// Prints what a deployment contains (functions, routes, schedules, buckets, tables).
pub fn print_summary(manifest: &lambdock_template::manifest::Manifest) {
    print!("{}", summary::summary(manifest));
}
