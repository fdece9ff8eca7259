//! Compiled components on disk, so that a restart or a second load does not
//! compile again (an 18 MB Python component takes seconds to compile and
//! milliseconds to load from here).
//!
//! Key: the sha256 of the component bytes plus wasmtime's compatibility hash
//! of the engine settings. A different wasmtime version or engine
//! configuration therefore never loads an incompatible artifact; it simply
//! misses and compiles.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
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

/// The on-disk cache of compiled components.
pub struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash))
    }

    /// Loads the compiled form of `bytes` from disk, or compiles and stores
    /// it. A cache that cannot be read or written only costs time: the
    /// component is compiled and the problem logged.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        bytes: &[u8],
    ) -> anyhow::Result<Compiled> {
        let digest = sha256_hex(bytes);
        let path = self.path_for(&digest);
        let start = Instant::now();
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (it is in the name),
            // in a directory owned by this user. wasmtime also checks the
            // header and refuses artifacts of another engine configuration.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    return Ok(Compiled {
                        component,
                        digest,
                        from_cache: true,
                        elapsed: start.elapsed(),
                    });
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cached component unusable; compiling again"),
            }
        }
        let mut compiled = Compiled::fresh(engine, bytes)?;
        compiled.elapsed = start.elapsed();
        if let Err(e) = self.store(&path, &compiled.component) {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"),
                "could not write the compile cache");
        }
        Ok(compiled)
    }

    /// Writes atomically (temp file, then rename) so that a concurrent
    /// reader never sees half an artifact.
    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
}
