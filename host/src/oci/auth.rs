//! Registry credentials from a Docker config (`~/.docker/config.json`, or
//! the `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` pull
//! secret): the format every registry client and the kubelet read.

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(rename = "identitytoken")]
    identity_token: Option<String>,
}

/// A Docker config that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the docker config is not valid JSON: {0}")]
    Json(String),
    #[error("the auth of {0} is not base64 of user:password")]
    Encoding(String),
}

/// The credentials for `registry` (`host[:port]`) in a Docker config, or
/// anonymous access when it has none. Keys may carry a scheme or a path
/// (`https://index.docker.io/v1/`), as `docker login` writes them.
pub fn for_registry(config: &[u8], registry: &str) -> Result<RegistryAuth, AuthError> {
    let config: DockerConfig =
        serde_json::from_slice(config).map_err(|e| AuthError::Json(e.to_string()))?;
    let host = |key: &str| {
        let key = key
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        key.split('/').next().unwrap_or(key).to_string()
    };
    let Some((key, entry)) = config.auths.iter().find(|(k, _)| host(k) == registry) else {
        return Ok(RegistryAuth::Anonymous);
    };
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    if let Some(token) = &entry.identity_token {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    let Some(auth) = &entry.auth else {
        return Ok(RegistryAuth::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| AuthError::Encoding(key.clone()))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| AuthError::Encoding(key.clone()))?;
    Ok(RegistryAuth::Basic(user.into(), password.into()))
}

/// The `.dockerconfigjson` of a pull secret for one registry with basic
/// auth (what `kubectl create secret docker-registry` makes).
pub fn docker_config(registry: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({"auths": {registry: {"username": user, "password": password, "auth": auth}}})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_credentials_of_one_registry() {
        let config = docker_config("127.0.0.1:5000", "alice", "s3cret");
        match for_registry(config.as_bytes(), "127.0.0.1:5000").unwrap() {
            RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("alice", "s3cret")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            for_registry(config.as_bytes(), "other:5000").unwrap(),
            RegistryAuth::Anonymous
        ));
        let only_auth = r#"{"auths": {"https://ghcr.io/v2/": {"auth": "Ym9iOnB3"}}}"#;
        match for_registry(only_auth.as_bytes(), "ghcr.io").unwrap() {
            RegistryAuth::Basic(u, p) => assert_eq!((u.as_str(), p.as_str()), ("bob", "pw")),
            other => panic!("{other:?}"),
        }
        let bad = r#"{"auths": {"x": {"auth": "!!"}}}"#;
        assert_eq!(
            for_registry(bad.as_bytes(), "x").unwrap_err(),
            AuthError::Encoding("x".into())
        );
    }
}
