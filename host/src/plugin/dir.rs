//! The plugin directory as the host sees it while it runs: which component
//! files exist, and which changed since the last look.
//!
//! Polled (a `readdir` and a `stat` per file, every `--watch-interval-ms`)
//! rather than watched with inotify: polling needs no dependency, sees
//! through the symlink swap the kubelet uses to update ConfigMap and
//! Secret volumes, and works on network filesystems where inotify is silent.
//! A file is identified by its size, modification time and inode, so both
//! a rename over the old file and an in-place rewrite are noticed.
//!
//! Names: `<stem>.wasm` is an active plugin, `<stem>.candidate.wasm` its
//! shadow candidate. Hidden files (`.x.wasm`) and other extensions
//! (`x.wasm.tmp`) are ignored, which is what makes "write to a temporary
//! name, then rename" the safe way to publish.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a file in the directory is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Active,
    Candidate,
}

/// A component file: its stem (the plugin's slot) and role.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId {
    pub stem: String,
    pub role: Role,
}

impl FileId {
    /// The file name this id stands for.
    pub fn file_name(&self) -> String {
        match self.role {
            Role::Active => format!("{}.wasm", self.stem),
            Role::Candidate => format!("{}.candidate.wasm", self.stem),
        }
    }

    /// Which component file `name` is, if any.
    pub fn parse(name: &str) -> Option<FileId> {
        if name.starts_with('.') {
            return None;
        }
        let base = name.strip_suffix(".wasm")?;
        let (stem, role) = match base.strip_suffix(".candidate") {
            Some(stem) => (stem, Role::Candidate),
            None => (base, Role::Active),
        };
        (!stem.is_empty()).then(|| FileId {
            stem: stem.to_string(),
            role,
        })
    }
}

/// Size, modification time and inode: any write or rename changes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Signature {
    fn of(path: &Path) -> Option<Signature> {
        // Follows symlinks: a ConfigMap volume's file is a link into `..data`.
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Signature {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}

/// A change found by [`PluginDir::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// New, or different from the last scan.
    Changed(FileId),
    Removed(FileId),
}

struct Seen {
    signature: Signature,
    /// When the signature last changed.
    since: Instant,
}

/// The directory and what the last scan found in it.
pub struct PluginDir {
    /// `None`: no directory (plugins come from objects only); scans find
    /// nothing.
    dir: Option<PathBuf>,
    seen: HashMap<FileId, Seen>,
}

impl PluginDir {
    pub fn new(dir: Option<&Path>) -> PluginDir {
        PluginDir {
            dir: dir.map(Path::to_path_buf),
            seen: HashMap::new(),
        }
    }

    pub fn path(&self, id: &FileId) -> PathBuf {
        match &self.dir {
            Some(dir) => dir.join(id.file_name()),
            None => PathBuf::from(id.file_name()),
        }
    }

    /// Lists the directory and reports what changed since the last scan
    /// (everything, the first time), sorted by file name. A directory that
    /// cannot be read reports nothing: a transient error must not look like
    /// every plugin being removed.
    pub fn scan(&mut self) -> std::io::Result<Vec<FileChange>> {
        let now = Instant::now();
        let mut present: HashMap<FileId, Signature> = HashMap::new();
        let Some(dir) = &self.dir else {
            return Ok(Vec::new());
        };
        for entry in std::fs::read_dir(dir)? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(FileId::parse) else {
                continue;
            };
            if let Some(sig) = Signature::of(&entry.path()) {
                present.insert(id, sig);
            }
        }
        let mut changes = Vec::new();
        self.seen.retain(|id, _| {
            let kept = present.contains_key(id);
            if !kept {
                changes.push(FileChange::Removed(id.clone()));
            }
            kept
        });
        for (id, signature) in present {
            match self.seen.get_mut(&id) {
                Some(seen) if seen.signature == signature => {}
                Some(seen) => {
                    *seen = Seen {
                        signature,
                        since: now,
                    };
                    changes.push(FileChange::Changed(id));
                }
                None => {
                    self.seen.insert(
                        id.clone(),
                        Seen {
                            signature,
                            since: now,
                        },
                    );
                    changes.push(FileChange::Changed(id));
                }
            }
        }
        changes.sort_by_key(|c| match c {
            FileChange::Changed(id) | FileChange::Removed(id) => id.file_name(),
        });
        Ok(changes)
    }

    /// How long the file has been unchanged, as of the last scan.
    pub fn unchanged_for(&self, id: &FileId) -> Option<Duration> {
        self.seen.get(id).map(|s| s.since.elapsed())
    }

    /// Whether the file is still there (as of the last scan).
    pub fn contains(&self, id: &FileId) -> bool {
        self.seen.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(stem: &str) -> FileId {
        FileId {
            stem: stem.into(),
            role: Role::Active,
        }
    }

    #[test]
    fn names() {
        assert_eq!(FileId::parse("pg.wasm"), Some(active("pg")));
        assert_eq!(
            FileId::parse("pg.candidate.wasm"),
            Some(FileId {
                stem: "pg".into(),
                role: Role::Candidate
            })
        );
        for ignored in [".pg.wasm", "pg.wasm.tmp", "pg", ".wasm", ".candidate.wasm"] {
            assert_eq!(FileId::parse(ignored), None, "{ignored}");
        }
        assert_eq!(active("pg").file_name(), "pg.wasm");
    }

    #[test]
    fn reports_new_changed_and_removed_files() {
        let dir = std::env::temp_dir().join(format!("operon-plugin-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wasm"), b"one").unwrap();
        std::fs::write(dir.join("a.candidate.wasm"), b"one").unwrap();
        std::fs::write(dir.join(".b.wasm.tmp"), b"partial").unwrap();
        let mut pd = PluginDir::new(Some(&dir));
        let first = pd.scan().unwrap();
        assert_eq!(first.len(), 2, "{first:?}");
        assert!(pd.scan().unwrap().is_empty(), "no change, nothing reported");

        // Publishing the safe way: write aside, rename over.
        std::fs::write(dir.join(".a.wasm.tmp"), b"two, longer").unwrap();
        std::fs::rename(dir.join(".a.wasm.tmp"), dir.join("a.wasm")).unwrap();
        assert_eq!(pd.scan().unwrap(), vec![FileChange::Changed(active("a"))]);
        assert!(pd.unchanged_for(&active("a")).unwrap() < Duration::from_secs(5));

        std::fs::remove_file(dir.join("a.wasm")).unwrap();
        assert_eq!(pd.scan().unwrap(), vec![FileChange::Removed(active("a"))]);
        assert!(!pd.contains(&active("a")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
