//! An OAuth provider, ready to use (docs/vault.md#providers): its endpoints,
//! given or discovered from its issuer (RFC 8414, then OpenID Connect
//! discovery), and the four calls the vault makes: the authorization URL
//! (with PKCE S256 and `state`), the code exchange, the refresh, the
//! revocation (RFC 7009).
//!
//! The OAuth protocol is the `oauth2` crate's; its requests go out through
//! warrant's own reqwest client (rustls, timeouts, no redirects followed, a
//! bounded response), adapted here. What a provider answers is sorted for
//! the vault: `invalid_grant` (the grant is gone: ask the user again, never
//! retry), transient (network, timeouts, 5xx, 429: back off and retry), or
//! refused (anything else the provider said).

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenResponse};
use oauth2::http::{HeaderValue, header};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    ErrorResponse, HttpRequest, HttpResponse, IntrospectionUrl, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RefreshToken, RequestTokenError, RevocationErrorResponseType, RevocationUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::config::{ConfigError, ProviderConfig, check_url};

/// How long a call to a provider may take, whole.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response read from a provider (metadata, tokens, errors).
const MAX_RESPONSE: usize = 256 * 1024;

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet, EndpointSet>;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("provider `{provider}`: no metadata at `{issuer}` ({tried}): {why}")]
    Metadata { provider: String, issuer: String, tried: String, why: String },
    #[error("provider `{provider}`: the metadata names the issuer `{found}`, not `{configured}` (RFC 8414 §3.3)")]
    IssuerMismatch { provider: String, configured: String, found: String },
    #[error("provider `{provider}`: {what}")]
    Incomplete { provider: String, what: String },
}

/// What a provider said, sorted by what the vault does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The grant (code or refresh token) is invalid, expired, revoked or
    /// used: only the user can make a new one.
    #[error("the provider refused the grant (`invalid_grant`){}", described(.0))]
    InvalidGrant(Option<String>),
    /// Worth retrying later: the provider could not be reached or answered
    /// with a server error or "slow down".
    #[error("the provider is unavailable: {0}")]
    Transient(String),
    /// Any other refusal (`invalid_client`, `invalid_scope`, …): a
    /// configuration problem, not retried.
    #[error("the provider refused the request (`{error}`){}", described(.description))]
    Refused { error: String, description: Option<String> },
    /// The provider answered something that is not OAuth.
    #[error("the provider's answer does not parse: {0}")]
    Malformed(String),
    /// This provider has no such endpoint (revocation, when it has none).
    #[error("the provider has no {0} endpoint")]
    NoEndpoint(&'static str),
}

fn described(description: &Option<String>) -> String {
    description.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

/// Tokens as the provider issued them. Secrets zeroed on drop.
pub struct Tokens {
    pub access_token: Zeroizing<String>,
    pub refresh_token: Option<Zeroizing<String>>,
    /// `expires_in`, when the provider said.
    pub expires_in: Option<Duration>,
    /// Granted scopes, when the provider said (else those requested).
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "…"))
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The start of an authorization: where to send the user, and what to keep
/// (sealed) until the provider sends them back.
pub struct Authorization {
    pub url: reqwest::Url,
    pub state: Zeroizing<String>,
    pub pkce_verifier: Zeroizing<String>,
}

impl std::fmt::Debug for Authorization {
    /// The URL carries the `state` and the challenge, both public; the
    /// verifier is the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorization").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

/// A provider's endpoints, as given or discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    pub revocation: Option<String>,
    pub introspection: Option<String>,
}

/// One provider, ready for the vault's calls.
pub struct Provider {
    name: String,
    client: OAuthClient,
    client_id: String,
    client_secret: Zeroizing<String>,
    http: reqwest::Client,
    scopes: Vec<String>,
    refresh_skew: Duration,
    endpoints: Endpoints,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.name).field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

/// The HTTP client every provider call goes through: rustls with the
/// system's roots, timeouts, and no redirects (an OAuth endpoint that
/// redirects is a misconfiguration or an attack, RFC 6749 §3.2 / §10.12).
pub fn http_client() -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("warrant/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DiscoveryError::Client(e.to_string()))
}

/// The authorization server metadata fields the vault reads (RFC 8414 §2).
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
}

impl Provider {
    /// Makes provider `name` ready: endpoints from `config`, the rest
    /// discovered from its issuer; `redirect_uri` is warrant's callback.
    pub async fn connect(
        name: &str,
        config: &ProviderConfig,
        redirect_uri: &str,
        http: &reqwest::Client,
    ) -> Result<Self, DiscoveryError> {
        let metadata = match &config.issuer {
            Some(issuer) => Some(discover(name, issuer, http).await?),
            None => None,
        };
        let pick = |given: &Option<String>, found: Option<&Option<String>>| {
            given.clone().or_else(|| found.and_then(Clone::clone))
        };
        let incomplete = |what: &str| DiscoveryError::Incomplete { provider: name.to_owned(), what: what.to_owned() };
        let endpoints = Endpoints {
            authorization: pick(&config.authorization_endpoint, metadata.as_ref().map(|m| &m.authorization_endpoint))
                .ok_or_else(|| incomplete("no `authorization_endpoint`, given or discovered"))?,
            token: pick(&config.token_endpoint, metadata.as_ref().map(|m| &m.token_endpoint))
                .ok_or_else(|| incomplete("no `token_endpoint`, given or discovered"))?,
            revocation: pick(&config.revocation_endpoint, metadata.as_ref().map(|m| &m.revocation_endpoint)),
            introspection: pick(&config.introspection_endpoint, metadata.as_ref().map(|m| &m.introspection_endpoint)),
        };
        if let Some(methods) = metadata.as_ref().and_then(|m| m.code_challenge_methods_supported.as_ref())
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(incomplete("its metadata does not list PKCE `S256` in `code_challenge_methods_supported`"));
        }
        let url = |field: &str, value: &str| check_url(&format!("providers.{name}.{field}"), value);
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.to_string()))
            .set_auth_uri(AuthUrl::from_url(url("authorization_endpoint", &endpoints.authorization)?))
            .set_token_uri(TokenUrl::from_url(url("token_endpoint", &endpoints.token)?))
            .set_revocation_url_option(
                endpoints
                    .revocation
                    .as_deref()
                    .map(|r| url("revocation_endpoint", r))
                    .transpose()?
                    .map(RevocationUrl::from_url),
            )
            .set_introspection_url_option(
                endpoints
                    .introspection
                    .as_deref()
                    .map(|i| url("introspection_endpoint", i))
                    .transpose()?
                    .map(IntrospectionUrl::from_url),
            )
            .set_redirect_uri(RedirectUrl::from_url(url("redirect_uri", redirect_uri)?));
        Ok(Self {
            name: name.to_owned(),
            client,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            http: http.clone(),
            scopes: config.scopes.clone(),
            refresh_skew: config.refresh_skew,
            endpoints,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// How long before its expiry an access token is refreshed.
    pub fn refresh_skew(&self) -> Duration {
        self.refresh_skew
    }

    /// Where to send a user to grant access: the authorization URL with a
    /// fresh `state` and PKCE challenge (S256), and the configured scopes.
    pub fn authorize(&self) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state) = request.url();
        Authorization {
            url,
            state: Zeroizing::new(state.secret().clone()),
            pkce_verifier: Zeroizing::new(verifier.secret().clone()),
        }
    }

    /// Exchanges the code the provider sent back with the verifier of its
    /// authorization.
    pub async fn exchange(&self, code: &str, pkce_verifier: &str) -> Result<Tokens, ProviderError> {
        let http = self.caller();
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&http)
            .await;
        tokens(answer)
    }

    /// Refreshes with `refresh_token`. With rotation, the answer holds the
    /// only valid refresh token from now on: store it before anything else.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ProviderError> {
        let http = self.caller();
        let token = RefreshToken::new(refresh_token.to_owned());
        let answer = self.client.exchange_refresh_token(&token).request_async(&http).await;
        tokens(answer)
    }

    /// Revokes `token` (RFC 7009), a `refresh_token` (the provider ends the
    /// whole grant) or an `access_token` (`hint`).
    ///
    /// Sent by hand rather than through the oauth2 crate, which refuses a
    /// revocation endpoint without TLS even on loopback; [`check_url`]
    /// already allows plain http to loopback only. The request is RFC
    /// 7009's: the token and its type hint, form-encoded, the client
    /// authenticated with HTTP Basic as for the token endpoint.
    pub async fn revoke(&self, token: &str, hint: &str) -> Result<(), ProviderError> {
        let endpoint = self.endpoints.revocation.as_deref().ok_or(ProviderError::NoEndpoint("revocation"))?;
        let body = form(&[("token", token), ("token_type_hint", hint)]);
        let request = oauth2::http::Request::builder()
            .method(oauth2::http::Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, self.basic_auth())
            .body(body.into_bytes())
            .map_err(|e| ProviderError::Malformed(e.to_string()))?;
        let response = call(&self.http, request).await.map_err(|e| ProviderError::Transient(e.0))?;
        if response.status().is_success() {
            return Ok(());
        }
        // RFC 7009 §2.2.1: an error response as in RFC 6749 §5.2.
        match serde_json::from_slice::<BasicRevocationErrorResponse>(response.body()) {
            Ok(e) => Err(revocation_refused(&e)),
            Err(_) => Err(ProviderError::Malformed(format!("revocation answered HTTP {}", response.status()))),
        }
    }

    /// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
    fn basic_auth(&self) -> String {
        use base64::Engine as _;
        let pair = format!("{}:{}", form_encode(&self.client_id), form_encode(&self.client_secret));
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
    }

    /// The oauth2 crate's HTTP client: ours, adapted.
    fn caller(&self) -> impl Fn(HttpRequest) -> CallFuture + '_ {
        move |request| {
            let http = self.http.clone();
            Box::pin(async move { call(&http, request).await })
        }
    }
}

type CallFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<HttpResponse, CallError>> + Send>>;

/// Why a call did not get an answer worth parsing: sorted as transient.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CallError(String);

/// Sends `request`; a 5xx or 429 answer is a [`CallError`] (transient), so
/// the oauth2 crate parses only what the provider meant as an answer.
async fn call(http: &reqwest::Client, request: HttpRequest) -> Result<HttpResponse, CallError> {
    let request = reqwest::Request::try_from(request).map_err(|e| CallError(e.to_string()))?;
    let mut response = http.execute(request).await.map_err(|e| CallError(describe(&e)))?;
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(CallError(format!("HTTP {status}")));
    }
    let mut builder = oauth2::http::Response::builder().status(status.as_u16());
    if let Some(content_type) = response.headers().get(header::CONTENT_TYPE)
        && let Ok(value) = HeaderValue::from_bytes(content_type.as_bytes())
    {
        builder = builder.header(header::CONTENT_TYPE, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| CallError(describe(&e)))? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(CallError(format!("the answer is larger than {MAX_RESPONSE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    builder.body(body).map_err(|e| CallError(e.to_string()))
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&")
}

/// One form component: unreserved bytes as they are, space as `+`, every
/// other byte `%XX` (the WHATWG urlencoded serializer).
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A reqwest error without the URL's query (which may carry a code).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match error.url() {
        Some(url) => format!("{kind}: {}://{}{}", url.scheme(), url.authority(), url.path()),
        None => kind.to_owned(),
    }
}

fn tokens<RE: std::error::Error + 'static>(
    answer: Result<BasicTokenResponse, RequestTokenError<RE, oauth2::basic::BasicErrorResponse>>,
) -> Result<Tokens, ProviderError> {
    match answer {
        Ok(t) => Ok(Tokens {
            access_token: Zeroizing::new(t.access_token().secret().clone()),
            refresh_token: t.refresh_token().map(|r| Zeroizing::new(r.secret().clone())),
            expires_in: t.expires_in(),
            scopes: t.scopes().map(|s| s.iter().map(|x| x.to_string()).collect()),
        }),
        Err(RequestTokenError::ServerResponse(e)) => Err(match e.error() {
            BasicErrorResponseType::InvalidGrant => ProviderError::InvalidGrant(e.error_description().cloned()),
            other => ProviderError::Refused { error: other.to_string(), description: e.error_description().cloned() },
        }),
        Err(other) => Err(sorted(other)),
    }
}

fn revocation_refused(e: &BasicRevocationErrorResponse) -> ProviderError {
    match e.error() {
        RevocationErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant) => {
            ProviderError::InvalidGrant(e.error_description().cloned())
        }
        other => ProviderError::Refused { error: other.to_string(), description: e.error_description().cloned() },
    }
}

/// A failure that is not the provider's OAuth answer.
fn sorted<RE: std::error::Error + 'static, T: ErrorResponse + 'static>(
    error: RequestTokenError<RE, T>,
) -> ProviderError {
    match error {
        RequestTokenError::Request(e) => ProviderError::Transient(e.to_string()),
        RequestTokenError::Parse(e, _) => ProviderError::Malformed(e.to_string()),
        RequestTokenError::Other(e) => ProviderError::Malformed(e),
        RequestTokenError::ServerResponse(e) => ProviderError::Refused { error: e.to_string(), description: None },
    }
}

/// The issuer's metadata: RFC 8414's well-known location (inserted before
/// the issuer's path), then OpenID Connect discovery's (appended to it).
async fn discover(name: &str, issuer: &str, http: &reqwest::Client) -> Result<Metadata, DiscoveryError> {
    let base = check_url(&format!("providers.{name}.issuer"), issuer)?;
    let path = base.path().trim_end_matches('/');
    let origin = format!("{}://{}", base.scheme(), base.authority());
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    let mut why = String::new();
    for url in &candidates {
        match fetch_metadata(http, url).await {
            Ok(metadata) => {
                if metadata.issuer != issuer {
                    return Err(DiscoveryError::IssuerMismatch {
                        provider: name.to_owned(),
                        configured: issuer.to_owned(),
                        found: metadata.issuer,
                    });
                }
                return Ok(metadata);
            }
            Err(e) => why = e,
        }
    }
    Err(DiscoveryError::Metadata {
        provider: name.to_owned(),
        issuer: issuer.to_owned(),
        tried: candidates.join(", "),
        why,
    })
}

async fn fetch_metadata(http: &reqwest::Client, url: &str) -> Result<Metadata, String> {
    let mut response = http.get(url).send().await.map_err(|e| describe(&e))?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(format!("larger than {MAX_RESPONSE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not authorization server metadata: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_components_are_encoded_as_browsers_do() {
        assert_eq!(form_encode("a b+c/d=é"), "a+b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(
            form(&[("token", "x.y-z_1"), ("token_type_hint", "refresh_token")]),
            "token=x.y-z_1&token_type_hint=refresh_token"
        );
    }
}
