//! cosign signatures of an artifact, checked against a public key.
//!
//! cosign (v2, key-based, its default "tag" layout) stores the signatures
//! of `repo@sha256:<hex>` as an OCI image at `repo:sha256-<hex>.sig`: each
//! layer of media type [`SIMPLE_SIGNING`] is a payload naming the signed
//! manifest digest, and its annotation [`SIGNATURE_ANNOTATION`] is the
//! base64 ECDSA P-256 / SHA-256 signature of that payload's bytes. An
//! artifact is verified when one layer's payload names its digest and the
//! signature verifies with the key.
//!
//! Written here rather than with the `sigstore` crate: that crate brings a
//! second TLS stack and the keyless (Fulcio, Rekor) machinery, none of which
//! a key-based check needs; ring, already in the tree, verifies ECDSA.
//! [`sign`] makes the same layout, for tests and for registries without
//! cosign.

use std::collections::BTreeMap;

use base64::Engine as _;
use oci_client::Reference;
use oci_client::client::{Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use ring::signature::{ECDSA_P256_SHA256_ASN1, EcdsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};

/// The payload media type of a cosign signature layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The DER prefix of a P-256 public key in SubjectPublicKeyInfo form
/// (id-ecPublicKey, prime256v1, a 66-byte BIT STRING); the uncompressed
/// point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why an artifact is not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the public key is not a PEM ECDSA P-256 key (what `cosign generate-key-pair` makes)")]
    Key,
    #[error("no signature: {0}")]
    NoSignature(String),
    #[error("no signature of {digest} verifies with the key ({checked} checked)")]
    Invalid { digest: String, checked: usize },
}

/// The tag cosign stores the signatures of `digest` under.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

/// The uncompressed point of a PEM `PUBLIC KEY` of P-256.
pub fn public_key(pem: &str) -> Result<Vec<u8>, VerifyError> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| VerifyError::Key)?;
    match der.strip_prefix(&P256_SPKI_PREFIX[..]) {
        Some(point) if point.len() == 65 && point[0] == 4 => Ok(point.to_vec()),
        _ => Err(VerifyError::Key),
    }
}

/// The payload cosign signs for `digest` of `repository`.
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    })
    .to_string()
    .into_bytes()
}

/// Whether one payload names `digest` and its signature verifies.
fn verifies(key: &[u8], payload: &[u8], signature_b64: &str, digest: &str) -> bool {
    let names_digest = serde_json::from_slice::<Value>(payload)
        .ok()
        .and_then(|p| {
            p.pointer("/critical/image/docker-manifest-digest")
                .and_then(Value::as_str)
                .map(|d| d == digest)
        })
        .unwrap_or(false);
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim())
    else {
        return false;
    };
    names_digest
        && UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
            .verify(payload, &signature)
            .is_ok()
}

/// Verifies the artifact `r` (with its `digest`) against a PEM public key.
pub async fn verify(
    registry: &super::Registry,
    r: &Reference,
    digest: &str,
    auth: &RegistryAuth,
    key_pem: &str,
) -> Result<(), VerifyError> {
    let key = public_key(key_pem)?;
    let sig_ref = Reference::with_tag(
        r.registry().into(),
        r.repository().into(),
        signature_tag(digest),
    );
    let client = registry.client(auth);
    let (manifest, _) = client.pull_manifest(&sig_ref, auth).await.map_err(|e| {
        VerifyError::NoSignature(crate::bounded::message(&e.to_string()).into_owned())
    })?;
    let OciManifest::Image(manifest) = manifest else {
        return Err(VerifyError::NoSignature(
            "the signature is an image index".into(),
        ));
    };
    let mut checked = 0;
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING)
    {
        let Some(sig) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        if layer.size > 64 << 10 {
            continue;
        }
        let mut payload = Vec::new();
        if client
            .pull_blob(&sig_ref, layer, &mut payload)
            .await
            .is_err()
        {
            continue;
        }
        checked += 1;
        if verifies(&key, &payload, sig, digest) {
            return Ok(());
        }
    }
    Err(VerifyError::Invalid {
        digest: digest.into(),
        checked,
    })
}

/// A new P-256 key pair: (PKCS#8 private key, PEM public key).
pub fn generate_key() -> (Vec<u8>, String) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("the system's random source works");
    let pair = key_pair(pkcs8.as_ref());
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(ring::signature::KeyPair::public_key(&pair).as_ref());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    (pkcs8.as_ref().to_vec(), pem)
}

fn key_pair(pkcs8: &[u8]) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8,
        &ring::rand::SystemRandom::new(),
    )
    .expect("a key made by generate_key")
}

/// Signs `digest` of `r`'s repository in cosign's layout with a PKCS#8
/// key from [`generate_key`], and pushes the signature.
pub async fn sign(
    registry: &super::Registry,
    r: &Reference,
    digest: &str,
    auth: &RegistryAuth,
    pkcs8: &[u8],
) -> Result<(), super::registry::RegistryError> {
    let body = payload(&format!("{}/{}", r.registry(), r.repository()), digest);
    let signature = key_pair(pkcs8)
        .sign(&ring::rand::SystemRandom::new(), &body)
        .expect("signing with a valid key");
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
    let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), b64)]);
    let layer = ImageLayer::new(body, SIMPLE_SIGNING.into(), Some(annotations));
    let config = Config::oci_v1(b"{}".to_vec(), None);
    let manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    let sig_ref = Reference::with_tag(
        r.registry().into(),
        r.repository().into(),
        signature_tag(digest),
    );
    registry
        .client(auth)
        .push(&sig_ref, &[layer], config, auth, Some(manifest))
        .await
        .map(|_| ())
        .map_err(|e| super::registry::RegistryError::Registry {
            op: "pushing the signature of",
            reference: r.whole(),
            failure: super::registry::Failure::Other,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_digest() {
        let (pkcs8, pem) = generate_key();
        let key = public_key(&pem).unwrap();
        let body = payload("reg/repo", "sha256:aa");
        let sig = key_pair(&pkcs8)
            .sign(&ring::rand::SystemRandom::new(), &body)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
        assert!(verifies(&key, &body, &b64, "sha256:aa"));
        assert!(!verifies(&key, &body, &b64, "sha256:bb"), "another digest");
        let (_, other) = generate_key();
        assert!(
            !verifies(&public_key(&other).unwrap(), &body, &b64, "sha256:aa"),
            "another key"
        );
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(!verifies(&key, &tampered, &b64, "sha256:aa"));
    }

    #[test]
    fn only_p256_pem_keys_are_read() {
        assert_eq!(public_key("not a key"), Err(VerifyError::Key));
        assert_eq!(signature_tag("sha256:ab"), "sha256-ab.sig");
    }
}
