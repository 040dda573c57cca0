//! The vault's configuration file (`--vault FILE`, docs/vault.md#providers):
//! which OAuth provider each connection's grants come from, and how to
//! reach it. Checked whole at start; secrets are read from the files or
//! environment variables it names, never from the file itself, the
//! database or a flag.
//!
//! ```json
//! {"redirect_uri": "https://warrant.example.com/v1/grants/callback",
//!  "providers": {"okta": {"issuer": "https://example.okta.com",
//!                         "client_id": "warrant", "client_secret_file": "/etc/warrant/okta.secret",
//!                         "scopes": ["openid", "offline_access"], "refresh_skew": "2m"}},
//!  "connections": {"snowflake": {"provider": "okta", "role": "ANALYST"}}}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

/// How long before its expiry an access token is refreshed, by default.
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the vault file `{path}`: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("the vault file `{path}` is not valid: {error}")]
    Parse { path: String, error: String },
    #[error("vault provider `{provider}`: {message}")]
    Provider { provider: String, message: String },
    #[error("vault connection `{connection}` names the provider `{provider}`, which the file does not define")]
    UnknownProvider { connection: String, provider: String },
    #[error("vault: `{field}` `{url}` {why}")]
    Url { field: String, url: String, why: &'static str },
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VaultFile {
    #[serde(default)]
    redirect_uri: Option<String>,
    providers: BTreeMap<String, ProviderFile>,
    connections: BTreeMap<String, ConnectionFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderFile {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
    client_id: String,
    #[serde(default)]
    client_secret_file: Option<PathBuf>,
    #[serde(default)]
    client_secret_env: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    refresh_skew: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionFile {
    provider: String,
    #[serde(default)]
    role: Option<String>,
}

/// The checked configuration.
#[derive(Debug)]
pub struct VaultConfig {
    /// Where providers send users back (`GET /v1/grants/callback`); `None`:
    /// derived from the service's public URL.
    pub redirect_uri: Option<String>,
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Connection → where its grants come from.
    pub connections: BTreeMap<String, ConnectionConfig>,
}

/// One connection's grants: the provider they come from (a key of
/// `providers`) and the warehouse role their tokens carry (the token
/// store's `role`, which the pack's `use_token` policies check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub provider: String,
    pub role: String,
}

/// One provider, its secret read. Endpoints not given are discovered from
/// `issuer` (RFC 8414) at start.
pub struct ProviderConfig {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: Zeroizing<String>,
    pub scopes: Vec<String>,
    pub refresh_skew: Duration,
}

impl std::fmt::Debug for ProviderConfig {
    /// Everything but the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("issuer", &self.issuer)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("refresh_skew", &self.refresh_skew)
            .finish_non_exhaustive()
    }
}

impl VaultConfig {
    /// Reads and checks the file at `path`, and the secrets it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: shown.clone(), error })?;
        Self::parse(&text, &shown, &|var| std::env::var(var).ok())
    }

    /// [`VaultConfig::load`] over `text`; `env` reads an environment variable.
    pub fn parse(text: &str, shown: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file: VaultFile = serde_json::from_str(text)
            .map_err(|e| ConfigError::Parse { path: shown.to_owned(), error: e.to_string() })?;
        if let Some(uri) = &file.redirect_uri {
            check_url("redirect_uri", uri)?;
        }
        let mut providers = BTreeMap::new();
        for (name, p) in file.providers {
            providers.insert(name.clone(), provider(&name, p, env)?);
        }
        let mut connections = BTreeMap::new();
        for (connection, c) in file.connections {
            if !providers.contains_key(&c.provider) {
                return Err(ConfigError::UnknownProvider { connection, provider: c.provider });
            }
            connections.insert(connection, ConnectionConfig { provider: c.provider, role: c.role.unwrap_or_default() });
        }
        Ok(Self { redirect_uri: file.redirect_uri, providers, connections })
    }
}

fn provider(name: &str, p: ProviderFile, env: &dyn Fn(&str) -> Option<String>) -> Result<ProviderConfig, ConfigError> {
    let fail = |message: String| ConfigError::Provider { provider: name.to_owned(), message };
    if p.issuer.is_none() && (p.authorization_endpoint.is_none() || p.token_endpoint.is_none()) {
        return Err(fail(
            "give `issuer` (its endpoints are discovered) or both `authorization_endpoint` and `token_endpoint`".into(),
        ));
    }
    for (field, url) in [
        ("issuer", &p.issuer),
        ("authorization_endpoint", &p.authorization_endpoint),
        ("token_endpoint", &p.token_endpoint),
        ("revocation_endpoint", &p.revocation_endpoint),
        ("introspection_endpoint", &p.introspection_endpoint),
    ] {
        if let Some(url) = url {
            check_url(&format!("providers.{name}.{field}"), url)?;
        }
    }
    if p.client_id.trim().is_empty() {
        return Err(fail("`client_id` is empty".into()));
    }
    let secret = match (&p.client_secret_file, &p.client_secret_env) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map(|s| Zeroizing::new(s.trim().to_owned()))
            .map_err(|e| fail(format!("cannot read `client_secret_file` `{}`: {e}", path.display())))?,
        (None, Some(var)) => {
            Zeroizing::new(env(var).ok_or_else(|| fail(format!("`client_secret_env`: `{var}` is not set")))?)
        }
        _ => return Err(fail("give exactly one of `client_secret_file` and `client_secret_env`".into())),
    };
    if secret.is_empty() {
        return Err(fail("the client secret is empty".into()));
    }
    let refresh_skew = match &p.refresh_skew {
        None => DEFAULT_REFRESH_SKEW,
        Some(text) => crate::config::duration(text).map_err(|e| fail(format!("`refresh_skew`: {e}")))?,
    };
    Ok(ProviderConfig {
        issuer: p.issuer,
        authorization_endpoint: p.authorization_endpoint,
        token_endpoint: p.token_endpoint,
        revocation_endpoint: p.revocation_endpoint,
        introspection_endpoint: p.introspection_endpoint,
        client_id: p.client_id,
        client_secret: secret,
        scopes: p.scopes,
        refresh_skew,
    })
}

/// An absolute `https` URL, or `http` to a loopback host (a provider on the
/// same machine, as in the tests): tokens and client secrets never cross a
/// network in clear.
pub(super) fn check_url(field: &str, url: &str) -> Result<reqwest::Url, ConfigError> {
    let bad = |why| ConfigError::Url { field: field.to_owned(), url: url.to_owned(), why };
    let parsed = reqwest::Url::parse(url).map_err(|_| bad("is not an absolute URL"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback(&parsed) => {}
        "http" => return Err(bad("is plain http to a host that is not loopback: use https")),
        _ => return Err(bad("is not an http(s) URL")),
    }
    if parsed.fragment().is_some() {
        return Err(bad("has a fragment, which OAuth endpoints may not"));
    }
    Ok(parsed)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "OKTA_SECRET").then(|| "s3cret".to_owned())
    }

    fn parse(text: &str) -> Result<VaultConfig, ConfigError> {
        VaultConfig::parse(text, "vault.json", &env)
    }

    #[test]
    fn a_file_names_providers_and_the_connections_they_serve() {
        let config = parse(
            r#"{"providers": {"okta": {"issuer": "https://example.okta.com", "client_id": "warrant",
                 "client_secret_env": "OKTA_SECRET", "scopes": ["openid", "offline_access"], "refresh_skew": "2m"},
               "local": {"authorization_endpoint": "http://127.0.0.1:9/auth", "token_endpoint": "http://localhost:9/token",
                 "client_id": "w", "client_secret_env": "OKTA_SECRET"}},
               "connections": {"snowflake": {"provider": "okta"}, "pg": {"provider": "local"}}}"#,
        )
        .unwrap();
        assert_eq!(config.connections["snowflake"].provider, "okta");
        let okta = &config.providers["okta"];
        assert_eq!(okta.client_secret.as_str(), "s3cret");
        assert_eq!(okta.refresh_skew, Duration::from_secs(120));
        assert_eq!(config.providers["local"].refresh_skew, DEFAULT_REFRESH_SKEW);
        assert!(!format!("{okta:?}").contains("s3cret"), "the secret never prints");
    }

    #[test]
    fn mistakes_are_named() {
        let provider = |body: &str| format!(r#"{{"providers": {{"p": {body}}}, "connections": {{}}}}"#);
        for (text, want) in [
            (provider(r#"{"client_id": "w", "client_secret_env": "OKTA_SECRET"}"#), "give `issuer`"),
            (
                provider(
                    r#"{"issuer": "http://idp.example.com", "client_id": "w", "client_secret_env": "OKTA_SECRET"}"#,
                ),
                "plain http to a host that is not loopback",
            ),
            (
                provider(r#"{"issuer": "https://i", "client_id": "w", "client_secret_env": "NOPE"}"#),
                "`NOPE` is not set",
            ),
            (provider(r#"{"issuer": "https://i", "client_id": "w"}"#), "exactly one of"),
            (
                provider(
                    r#"{"issuer": "https://i", "client_id": "w", "client_secret_env": "OKTA_SECRET", "refresh_skew": "soon"}"#,
                ),
                "`refresh_skew`",
            ),
            (provider(r#"{"issuer": "https://i", "client_id": "w", "secret": "x"}"#), "unknown field `secret`"),
            (
                r#"{"providers": {}, "connections": {"snowflake": {"provider": "okta"}}}"#.to_owned(),
                "names the provider `okta`, which the file does not define",
            ),
        ] {
            let error = parse(&text).unwrap_err().to_string();
            assert!(error.contains(want), "{text}\n→ {error}");
        }
    }
}
