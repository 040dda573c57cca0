//! The vault's OAuth client (`service/src/vault/provider.rs`) against a real
//! authorization server: npm `oidc-provider` (`tests/oidc/`), with PKCE
//! required, refresh-token rotation and reuse detection, revocation and
//! introspection. `tests/run` installs it and sets `WARRANT_TEST_OIDC_DIR`;
//! run alone, the test uses `tests/oidc/` and says how to install it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

#[path = "../../tests/oidc/idp.rs"]
mod idp;

use idp::Idp;
use serde_json::json;
use warrant_service::vault::config::VaultConfig;
use warrant_service::vault::provider::{Provider, ProviderError, http_client};

/// warrant's callback, on any loopback port (the fixture matches RFC 8252's
/// way: the registered `http://127.0.0.1/v1/grants/callback`, any port).
const REDIRECT: &str = "http://127.0.0.1:9/v1/grants/callback";

fn start_idp() -> Idp {
    idp::start(&[])
}

async fn provider(idp: &Idp) -> Provider {
    let file = json!({
        "providers": {"idp": {"issuer": idp.issuer, "client_id": "warrant",
                              "client_secret_env": "IDP_SECRET", "scopes": ["openid", "offline_access"]}},
        "connections": {"snowflake": {"provider": "idp"}},
    });
    let env = |var: &str| (var == "IDP_SECRET").then(|| "warrant-test-secret".to_owned());
    let config = VaultConfig::parse(&file.to_string(), "vault.json", &env).unwrap();
    Provider::connect("idp", &config.providers["idp"], REDIRECT, &http_client().unwrap()).await.unwrap()
}

/// The callback's query parameters after the browser's walk from `url`.
async fn browse(idp: &Idp, url: &str) -> Vec<(String, String)> {
    idp.browse(url).await.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

#[tokio::test]
async fn a_grant_is_obtained_refreshed_with_rotation_and_revoked_at_a_real_provider() {
    let idp = start_idp();
    let provider = provider(&idp).await;
    assert!(provider.endpoints().token.starts_with(&idp.issuer), "discovered: {:?}", provider.endpoints());
    assert!(provider.endpoints().revocation.is_some(), "discovered: {:?}", provider.endpoints());

    let authorization = provider.authorize();
    let url = authorization.url.as_str();
    assert!(url.contains("code_challenge_method=S256") && url.contains("state="), "{url}");
    assert!(!url.contains(authorization.pkce_verifier.as_str()), "the verifier stays with warrant");
    let callback = browse(&idp, url).await;
    let param = |name: &str| callback.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(param("state").as_deref(), Some(authorization.state.as_str()), "{callback:?}");
    let code = param("code").unwrap_or_else(|| panic!("no code: {callback:?}"));

    // A wrong verifier is refused (PKCE), and does not use the code up.
    let wrong = provider.exchange(&code, "not-the-verifier-not-the-verifier-not-the-verifier").await;
    assert!(matches!(wrong, Err(ProviderError::InvalidGrant(_))), "{wrong:?}");
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let first = tokens.refresh_token.clone().expect("a refresh token");
    assert!(tokens.expires_in.is_some(), "{tokens:?}");
    assert!(idp.introspect(&tokens.access_token).await);

    // Rotation: a new refresh token each time.
    let refreshed = provider.refresh(&first).await.unwrap();
    let second = refreshed.refresh_token.clone().expect("a rotated refresh token");
    assert_ne!(first.as_str(), second.as_str());
    assert!(idp.introspect(&refreshed.access_token).await);
    assert_eq!(idp.stats().await["refresh_grants"], 1);

    // The old one, presented again, is `invalid_grant`: what the vault must
    // never do (the provider then ends the whole grant: reuse detection).
    let reused = provider.refresh(&first).await;
    assert!(matches!(reused, Err(ProviderError::InvalidGrant(_))), "{reused:?}");
    assert!(!idp.introspect(&refreshed.access_token).await, "reuse ended the grant");

    // A second grant, revoked (RFC 7009).
    let authorization = provider.authorize();
    let callback = browse(&idp, authorization.url.as_str()).await;
    let code = callback.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).unwrap();
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();
    provider.revoke(&refresh, "refresh_token").await.unwrap();
    assert!(!idp.introspect(&refresh).await, "revoked at the provider");
    let after = provider.refresh(&refresh).await;
    assert!(matches!(after, Err(ProviderError::InvalidGrant(_))), "{after:?}");
}

#[tokio::test]
async fn provider_outages_are_transient_and_use_nothing_up() {
    let idp = start_idp();
    let provider = provider(&idp).await;
    let authorization = provider.authorize();
    let callback = browse(&idp, authorization.url.as_str()).await;
    let code = callback.iter().find(|(k, _)| k == "code").map(|(_, v)| v.clone()).unwrap();
    let tokens = provider.exchange(&code, &authorization.pkce_verifier).await.unwrap();
    let refresh = tokens.refresh_token.clone().unwrap();

    idp.fail_next_token(503, 1).await;
    let outage = provider.refresh(&refresh).await;
    assert!(matches!(outage, Err(ProviderError::Transient(_))), "{outage:?}");
    // The refresh token was not used: it still refreshes.
    let refreshed = provider.refresh(&refresh).await.unwrap();
    assert!(refreshed.refresh_token.is_some());
    assert_eq!(idp.stats().await["refresh_grants"], 1);
}

#[tokio::test]
async fn discovery_refuses_an_issuer_that_is_not_the_one_configured() {
    let idp = start_idp();
    // The metadata names `http://127.0.0.1:PORT`; the same server reached as
    // `localhost` is another issuer (RFC 8414 §3.3).
    let other = idp.issuer.replace("127.0.0.1", "localhost");
    let file = json!({"providers": {"idp": {"issuer": other, "client_id": "warrant", "client_secret_env": "S"}},
                      "connections": {}});
    let config = VaultConfig::parse(&file.to_string(), "vault.json", &|_| Some("x".to_owned())).unwrap();
    let error =
        Provider::connect("idp", &config.providers["idp"], REDIRECT, &http_client().unwrap()).await.unwrap_err();
    assert!(error.to_string().contains("names the issuer"), "{error}");
}
