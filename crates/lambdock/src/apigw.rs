//! The API port's options and start-up for `up` and `gateway`: secrets come from configuration
//! (flags, `LAMBDOCK_*` variables, `lambdock.toml`); in development the missing ones are
//! generated and printed, in production (`--production`) their absence stops the start.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use lambdock_apigw::auth::AuthConfig;
use lambdock_apigw::{ApiConfig, ApiGateway};
use lambdock_gateway::gateway::Gateway;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Options of the API port (routes, login, JWT, API keys).
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// API routes port (REST and HTTP APIs of the manifest, /openapi.json, the login).
    #[arg(long, env = "LAMBDOCK_API_PORT", default_value_t = 3000)]
    api_port: u16,
    /// Seconds API Gateway waits for a routed function before 504 (REST) / 503 (HTTP API).
    #[arg(long, env = "LAMBDOCK_INTEGRATION_TIMEOUT", default_value_t = 29.0)]
    integration_timeout: f64,
    /// HS256 secret of the platform's tokens (at least 32 characters); generated in development.
    #[arg(long, env = "LAMBDOCK_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// `iss` of the platform's tokens; JWT authorizers naming this issuer verify with the secret.
    #[arg(long, env = "LAMBDOCK_JWT_ISSUER", default_value = "lambdock")]
    jwt_issuer: String,
    /// `aud` of the platform's tokens.
    #[arg(long, env = "LAMBDOCK_JWT_AUDIENCE", default_value = "lambdock")]
    jwt_audience: String,
    /// Lifetime of a login's token, seconds.
    #[arg(long, env = "LAMBDOCK_JWT_LIFETIME", default_value_t = 3000)]
    jwt_lifetime: u64,
    /// JWKS document (JSON file) with the keys of other issuers (RS256, ES256, ...).
    #[arg(long, env = "LAMBDOCK_JWKS_FILE")]
    jwks_file: Option<PathBuf>,
    /// Valid `x-api-key` values (the login and routes requiring an API key); generated in
    /// development.
    #[arg(
        long,
        env = "LAMBDOCK_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    api_keys: Vec<String>,
    /// User name of the login; `lambdock` in development.
    #[arg(long, env = "LAMBDOCK_AUTH_USER")]
    auth_user: Option<String>,
    /// Password of the login; generated in development.
    #[arg(long, env = "LAMBDOCK_AUTH_PASSWORD", hide_env_values = true)]
    auth_password: Option<String>,
    /// Path of the login.
    #[arg(long, env = "LAMBDOCK_AUTH_PATH", default_value = "/user/auth/v1")]
    auth_path: String,
    /// Production: refuse to start without configured secrets instead of generating them.
    #[arg(long, env = "LAMBDOCK_PRODUCTION")]
    production: bool,
}

type Error = Box<dyn std::error::Error>;

fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The API port, bound and ready to serve.
pub struct Api {
    handler: Arc<ApiGateway>,
    listener: TcpListener,
    /// Lines for the banner: the endpoint, the routes and the generated secrets.
    pub banner: Vec<String>,
}

/// Resolves the secrets, binds the port and builds the banner.
pub async fn bind(args: &ApiArgs, host: IpAddr, gateway: Arc<Gateway>) -> Result<Api, Error> {
    let mut generated = Vec::new();
    let mut missing = Vec::new();
    let mut secret = |value: &Option<String>, name: &str, dev: String| match value {
        Some(v) => v.clone(),
        None => {
            missing.push(name.to_string());
            generated.push(format!("{name}={dev}"));
            dev
        }
    };
    let jwt_secret = secret(&args.jwt_secret, "LAMBDOCK_JWT_SECRET", random_secret());
    let user = secret(&args.auth_user, "LAMBDOCK_AUTH_USER", "lambdock".into());
    let password = secret(
        &args.auth_password,
        "LAMBDOCK_AUTH_PASSWORD",
        random_secret()[..24].into(),
    );
    let keys = if args.api_keys.is_empty() {
        None
    } else {
        Some(args.api_keys.join(","))
    };
    let api_keys: Vec<String> = secret(&keys, "LAMBDOCK_API_KEYS", random_secret()[..32].into())
        .split(',')
        .map(str::to_string)
        .collect();
    if args.production {
        if !missing.is_empty() {
            return Err(format!(
                "production mode: configure {} (flags, environment or lambdock.toml)",
                missing.join(", ")
            )
            .into());
        }
        if jwt_secret.len() < 32 {
            return Err(
                "production mode: LAMBDOCK_JWT_SECRET must be at least 32 characters".into(),
            );
        }
    }
    let jwks = match &args.jwks_file {
        Some(path) => {
            let text =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            Some(
                serde_json::from_slice(&text)
                    .map_err(|e| format!("{}: not a JWKS document: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let cfg = ApiConfig {
        integration_timeout: Duration::from_secs_f64(args.integration_timeout),
        auth: AuthConfig {
            jwt_secret,
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            token_lifetime: Duration::from_secs(args.jwt_lifetime),
            api_keys,
            user,
            password,
            login_path: args.auth_path.clone(),
            jwks,
        },
    };
    let handler = Arc::new(ApiGateway::new(gateway, cfg)?);
    let addr = SocketAddr::new(host, args.api_port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    let base = format!("http://{addr}");
    let mut banner = vec![format!(
        "  API routes: {base} (OpenAPI: {base}/openapi.json, login: POST {base}{})",
        args.auth_path
    )];
    let routes = handler.render_routes(&base);
    if handler.table().entries.is_empty() {
        banner.push("    (no routes)".into());
    } else {
        banner.extend(routes.lines().map(str::to_string));
    }
    if !generated.is_empty() {
        banner.push(format!(
            "  Route auth (generated for development): {}",
            generated.join(" ")
        ));
    }
    Ok(Api {
        handler,
        listener,
        banner,
    })
}

/// Serves the API port until the returned shutdown future's trigger fires: wrap the process's
/// termination future with it so both endpoints drain together.
pub fn spawn(
    api: Api,
    terminated: impl Future<Output = ()>,
) -> (JoinHandle<()>, impl Future<Output = ()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(lambdock_apigw::serve(
        api.handler,
        api.listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(30),
    ));
    let shutdown = async move {
        terminated.await;
        let _ = stop.send(());
    };
    (task, shutdown)
}
