//! Compiled components on disk, so that a restart or a second load does not
//! compile again (an 18 MB Python component takes seconds to compile and
//! milliseconds to load from here).
//!
//! Key: the sha256 of the component bytes plus wasmtime's compatibility hash
//! of the engine settings. A different wasmtime version or engine
//! configuration therefore never loads an incompatible artifact; it simply
//! misses and compiles.
//!
//! **Integrity.** wasmtime's deserialize trusts its input: it maps the
//! artifact's machine code and runs it. A damaged file (a truncated write,
//! a flipped bit on disk, another component's artifact under this name)
//! would be undefined behaviour, not an error. So each artifact is sealed
//! when written: an HMAC-SHA256 over the name it is stored under (component
//! digest and engine hash) and its bytes, with a key kept beside the cache
//! (`integrity.key`, 32 random bytes, mode 0600, made on first use). The
//! seal is checked over the bytes in memory and only those same bytes are
//! deserialized, so nothing can change between the check and the load. A
//! file that fails is counted ([`CacheCounters`]), logged, and replaced by a
//! fresh compile. Sealed artifacts carry `.sealed` in their name, so the
//! unsealed ones of an older operon are never read. The key is an HMAC's rather than a plain hash's so that a
//! valid artifact of one component cannot pass for another's; it does not
//! defend against someone who can read the key (keep the directory the
//! host user's own). HMAC and randomness come from `ring`, already a
//! dependency for TLS and signatures.
//!
//! A cache that cannot be read or written (permissions, a full disk) only
//! costs time: the component is compiled, the failure counted and logged.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// A compiled component and how it was obtained.
pub struct Compiled {
    pub component: Component,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// True when loaded from the disk cache rather than compiled.
    pub from_cache: bool,
    /// Time spent compiling or deserializing.
    pub elapsed: Duration,
}

impl Compiled {
    /// Compiles without a cache.
    pub fn fresh(engine: &wasmtime::Engine, bytes: &[u8]) -> anyhow::Result<Compiled> {
        let start = Instant::now();
        let component = Component::new(engine, bytes)?;
        Ok(Compiled {
            component,
            digest: sha256_hex(bytes),
            from_cache: false,
            elapsed: start.elapsed(),
        })
    }
}

/// Why a cached artifact was not loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Shorter than its trailer says, or no trailer at all.
    #[error("truncated (its seal is missing or names a longer artifact)")]
    Truncated,
    /// The seal does not match: changed bytes, or another artifact.
    #[error("its integrity seal does not match (damaged, or another component's artifact)")]
    Integrity,
    /// The file could not be read.
    #[error("unreadable")]
    Unreadable,
    /// Sealed and intact, yet wasmtime refused it.
    #[error("refused by wasmtime")]
    Incompatible,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [
        Rejection::Truncated,
        Rejection::Integrity,
        Rejection::Unreadable,
        Rejection::Incompatible,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Truncated => "truncated",
            Rejection::Integrity => "integrity",
            Rejection::Unreadable => "unreadable",
            Rejection::Incompatible => "incompatible",
        }
    }
}

/// What the cache did since the host started (exported as metrics).
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Loaded from disk.
    pub hits: AtomicU64,
    /// Compiled (a miss, or after a rejection).
    pub compiled: AtomicU64,
    rejected: [AtomicU64; 4],
    /// Artifacts (or the key) that could not be written.
    pub write_failures: AtomicU64,
}

impl CacheCounters {
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.rejected[why as usize].load(Ordering::Relaxed)
    }

    fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The on-disk cache of compiled components.
pub struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
    counters: Arc<CacheCounters>,
    /// The sealing key, read (or made) on first use, once.
    key: OnceLock<Option<hmac::Key>>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The end of a sealed artifact: `tag (32) | length (8, LE) | MAGIC (8)`.
const MAGIC: &[u8; 8] = b"operon\x01\0";
const TAG: usize = 32;
const TRAILER: usize = TAG + 8 + MAGIC.len();
const KEY_FILE: &str = "integrity.key";

impl CompileCache {
    /// `$OPERON_CACHE_DIR`, else `$XDG_CACHE_HOME/operon/compiled`, else
    /// `~/.cache/operon/compiled`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("OPERON_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("operon").join("compiled"))
    }

    pub fn new(dir: PathBuf, engine: &wasmtime::Engine) -> anyhow::Result<CompileCache> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
            counters: Arc::default(),
            key: OnceLock::new(),
        })
    }

    /// The digest a component's artifact is named by.
    pub fn digest_of(component: &[u8]) -> String {
        sha256_hex(component)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the cache did so far.
    pub fn counters(&self) -> Arc<CacheCounters> {
        self.counters.clone()
    }

    /// `.sealed` in the name: artifacts an older operon wrote unsealed
    /// are never read (a plain miss, not a warning on every upgrade); a
    /// file under this name without its seal is damage.
    fn name_for(&self, digest: &str) -> String {
        format!("{digest}-{}.sealed.cwasm", self.engine_hash)
    }

    /// Loads the compiled form of `bytes` from disk, or compiles and stores
    /// it (see the module docs for what is checked first).
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> anyhow::Result<Compiled> {
        let digest = sha256_hex(bytes);
        let name = self.name_for(&digest);
        let path = self.dir.join(&name);
        let start = Instant::now();
        let key = self.key();
        if let (Some(key), true) = (key, path.exists()) {
            match self.load(engine, key, &name, &path) {
                Ok(component) => {
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Compiled {
                        component,
                        digest,
                        from_cache: true,
                        elapsed: start.elapsed(),
                    });
                }
                Err(why) => {
                    self.counters.reject(why);
                    tracing::warn!(path = %path.display(), reason = why.label(),
                        "cached component refused before loading: {why}; compiling again");
                }
            }
        }
        let mut compiled = Compiled::fresh(engine, bytes)?;
        self.counters.compiled.fetch_add(1, Ordering::Relaxed);
        compiled.elapsed = start.elapsed();
        let stored = match key {
            Some(key) => self.store(key, &name, &path, &compiled.component),
            None => Err(anyhow::anyhow!("no integrity key (see the warning before)")),
        };
        if let Err(e) = stored {
            self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"),
                "could not write the compile cache; the component runs, compiled");
        }
        Ok(compiled)
    }

    /// Reads the artifact, checks its trailer and seal, and deserializes
    /// exactly the bytes that were checked.
    fn load(
        &self,
        engine: &wasmtime::Engine,
        key: &hmac::Key,
        name: &str,
        path: &Path,
    ) -> Result<Component, Rejection> {
        let file = fs::read(path).map_err(|_| Rejection::Unreadable)?;
        let artifact = unseal(key, name, &file)?;
        // SAFETY: `artifact` is exactly what `Component::serialize` wrote
        // under this name with this engine's compatibility hash: the HMAC
        // over the name and these bytes matched, with a key only this
        // cache's writer holds. wasmtime also checks the header.
        unsafe { Component::deserialize(engine, artifact) }.map_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "wasmtime refused a sealed artifact");
            Rejection::Incompatible
        })
    }

    /// Writes atomically (temp file, then rename) so that a concurrent
    /// reader never sees half an artifact.
    fn store(
        &self,
        key: &hmac::Key,
        name: &str,
        path: &Path,
        component: &Component,
    ) -> anyhow::Result<()> {
        let mut bytes = component.serialize()?;
        seal(key, name, &mut bytes);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_data()));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", tmp.display()));
        }
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// The sealing key, made on first use. `None` (logged once) when it can
    /// be neither read nor made: the cache is then neither read nor written.
    fn key(&self) -> Option<&hmac::Key> {
        self.key
            .get_or_init(|| match read_or_make_key(&self.dir) {
                Ok(bytes) => Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes)),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %format!("{e:#}"),
                        "compile cache unusable (no integrity key); compiling every component");
                    None
                }
            })
            .as_ref()
    }
}

/// Appends the trailer: the seal over `name` and `bytes`, the length, MAGIC.
fn seal(key: &hmac::Key, name: &str, bytes: &mut Vec<u8>) {
    let tag = hmac::sign(&name_key(key, name), bytes);
    let len = bytes.len() as u64;
    bytes.extend_from_slice(tag.as_ref());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(MAGIC);
}

/// The artifact inside a sealed file, if its trailer and seal hold.
fn unseal<'a>(key: &hmac::Key, name: &str, file: &'a [u8]) -> Result<&'a [u8], Rejection> {
    if file.len() < TRAILER || !file.ends_with(MAGIC) {
        return Err(Rejection::Truncated);
    }
    let (artifact, trailer) = file.split_at(file.len() - TRAILER);
    let (tag_bytes, len) = trailer.split_at(TAG);
    let len = u64::from_le_bytes(len[..8].try_into().map_err(|_| Rejection::Truncated)?);
    if len != artifact.len() as u64 {
        return Err(Rejection::Truncated);
    }
    // Constant time (ring's verify): the comparison must not tell how much
    // of a forged tag was right.
    hmac::verify(&name_key(key, name), artifact, tag_bytes)
        .map(|()| artifact)
        .map_err(|_| Rejection::Integrity)
}

/// The seal's key for one name: HMAC(key, name). Sealing with it binds the
/// artifact to the name without copying the artifact.
fn name_key(key: &hmac::Key, name: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(key, name.as_bytes()).as_ref())
}

/// Reads `dir/integrity.key`, or makes it (32 random bytes, 0600, created
/// exclusively so two hosts starting at once agree on one key).
fn read_or_make_key(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(KEY_FILE);
    if let Ok(bytes) = fs::read(&path)
        && bytes.len() == 32
    {
        return Ok(bytes);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut key = vec![0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("no system randomness for the integrity key"))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut f) => {
            f.write_all(&key)
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            anyhow::ensure!(
                bytes.len() == 32,
                "{} is not a 32-byte key; remove it to make a new one",
                path.display()
            );
            Ok(bytes)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    #[test]
    fn a_sealed_artifact_unseals_to_itself() {
        let mut file = b"machine code".to_vec();
        seal(&key(1), "a.cwasm", &mut file);
        assert_eq!(unseal(&key(1), "a.cwasm", &file), Ok(&b"machine code"[..]));
    }

    #[test]
    fn damage_and_mixups_are_refused() {
        let mut file = b"machine code".to_vec();
        seal(&key(1), "a.cwasm", &mut file);
        // Truncated anywhere: the trailer is gone or disagrees.
        for cut in [1, TRAILER, file.len() - 1] {
            assert_eq!(
                unseal(&key(1), "a.cwasm", &file[..file.len() - cut]),
                Err(Rejection::Truncated),
                "cut {cut}"
            );
        }
        // A flipped bit in the artifact.
        let mut flipped = file.clone();
        flipped[3] ^= 0x10;
        assert_eq!(
            unseal(&key(1), "a.cwasm", &flipped),
            Err(Rejection::Integrity)
        );
        // Another component's artifact under this name, or another key's.
        assert_eq!(unseal(&key(1), "b.cwasm", &file), Err(Rejection::Integrity));
        assert_eq!(unseal(&key(2), "a.cwasm", &file), Err(Rejection::Integrity));
        // Not ours at all (an unsealed wasmtime artifact).
        assert_eq!(
            unseal(
                &key(1),
                "a.cwasm",
                b"\x7fELF................................................................"
            ),
            Err(Rejection::Truncated)
        );
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("operon-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = read_or_make_key(&dir).unwrap();
        assert_eq!(read_or_make_key(&dir).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
