//! The `file` policy store (design §7): one JSON document, compiled in
//! memory, hot-reloaded when the file changes. A reload is atomic: a file
//! that does not parse or validate is reported and the last good policy
//! keeps serving.

use super::store::{PolicyStore, StoreError};
use loggate_model::{Identity, TokenDigest};
use loggate_authz::{CompiledPolicy, Decision, Explanation, Principal};
use loggate_model::doc::{PolicyDoc, Project};
use loggate_model::types::{ObjectRef, Permission};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the file's metadata is checked; keeps reloads well under 1 s.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Why a policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path} is not valid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("policy file {path} is invalid: {errors}")]
    Invalid { path: PathBuf, errors: loggate_model::validate::PolicyErrors },
}

/// Reads and compiles a policy file.
pub fn load(path: &Path) -> Result<CompiledPolicy, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    compile_bytes(path, &bytes, &[])
}

fn compile_bytes(path: &Path, bytes: &[u8], discovered: &[Project]) -> Result<CompiledPolicy, LoadError> {
    let mut doc: PolicyDoc =
        serde_json::from_slice(bytes).map_err(|source| LoadError::Json { path: path.to_owned(), source })?;
    for p in discovered {
        if !doc.projects.iter().any(|q| q.id == p.id) {
            doc.projects.push(p.clone());
        }
    }
    CompiledPolicy::compile(doc).map_err(|errors| LoadError::Invalid { path: path.to_owned(), errors })
}

/// What identifies a version of the file without reading it: follows
/// symlinks, so a Kubernetes ConfigMap/Secret swap is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Fingerprint { modified: meta.modified().ok(), len: meta.len(), inode })
}

pub struct FileStore {
    path: PathBuf,
    policy: ArcSwap<CompiledPolicy>,
    /// Projects learned from the data plane, kept across reloads.
    discovered: Mutex<Vec<Project>>,
    revision: AtomicU64,
    changes: watch::Sender<u64>,
    last_seen: Mutex<Option<Fingerprint>>,
}

/// The outcome of one reload attempt.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded { revision: u64 },
    Failed(LoadError),
}

impl FileStore {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let seen = fingerprint(path);
        let policy = load(path)?;
        let (changes, _) = watch::channel(1);
        Ok(FileStore {
            path: path.to_owned(),
            policy: ArcSwap::from_pointee(policy),
            discovered: Mutex::new(Vec::new()),
            revision: AtomicU64::new(1),
            changes,
            last_seen: Mutex::new(seen),
        })
    }

    /// The compiled policy currently in force.
    pub fn current(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    /// Revisions announced after every successful reload or discovery.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Reloads if the file changed since the last look.
    pub fn reload_if_changed(&self) -> Reload {
        let now = fingerprint(&self.path);
        {
            let mut last = self.last_seen.lock();
            if *last == now {
                return Reload::Unchanged;
            }
            *last = now;
        }
        self.reload()
    }

    /// Reads, validates and swaps in the file, whatever its fingerprint.
    pub fn reload(&self) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(source) => return Reload::Failed(LoadError::Read { path: self.path.clone(), source }),
        };
        let discovered = self.discovered.lock().clone();
        match compile_bytes(&self.path, &bytes, &discovered) {
            Ok(policy) => {
                self.policy.store(Arc::new(policy));
                Reload::Reloaded { revision: self.bump() }
            }
            Err(e) => Reload::Failed(e),
        }
    }

    fn bump(&self) -> u64 {
        let revision = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        self.changes.send_replace(revision);
        revision
    }
}

impl PolicyStore for FileStore {
    async fn identity(&self, digest: &TokenDigest) -> Result<Option<Identity>, StoreError> {
        Ok(self.current().identity(digest))
    }

    async fn decide(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Result<Decision, StoreError> {
        Ok(self.current().decide(principal, object, permission))
    }

    async fn explain(&self, principal: &Principal, object: &ObjectRef, permission: Permission) -> Result<Explanation, StoreError> {
        Ok(self.current().explain(principal, object, permission))
    }

    async fn org_name(&self, org_id: &str) -> Result<Option<String>, StoreError> {
        let policy = self.current();
        Ok(policy.doc().organizations.iter().find(|o| o.id == org_id).map(|o| o.name.clone()))
    }

    async fn project_by_name(&self, org_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.current().project_by_name(org_id, name).map(str::to_owned))
    }

    async fn experiment_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.current().experiment_by_name(project_id, name).map(str::to_owned))
    }

    async fn dataset_by_name(&self, project_id: &str, name: &str) -> Result<Option<String>, StoreError> {
        Ok(self.current().dataset_by_name(project_id, name).map(str::to_owned))
    }

    /// Adds a project the data plane created to the in-memory policy (never
    /// to the file). Unknown organizations and known ids are ignored.
    async fn learn_project(&self, project: Project) -> Result<(), StoreError> {
        let current = self.current();
        let doc = current.doc();
        if doc.projects.iter().any(|p| p.id == project.id) || !doc.organizations.iter().any(|o| o.id == project.org_id) {
            return Ok(());
        }
        let mut next = doc.clone();
        next.projects.push(project.clone());
        match CompiledPolicy::compile(next) {
            Ok(policy) => {
                self.discovered.lock().push(project);
                self.policy.store(Arc::new(policy));
                self.bump();
                Ok(())
            }
            // A discovered project that does not validate (e.g. a duplicate
            // name) is simply not learned: its rows stay unknown, i.e. denied.
            Err(_) => Ok(()),
        }
    }

    async fn ready(&self) -> bool {
        true
    }

    fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(project_name: &str) -> String {
        serde_json::json!({
            "organizations": [{"id": "o1", "name": "acme"}],
            "projects": [{"id": "p1", "org_id": "o1", "name": project_name}],
        })
        .to_string()
    }

    #[tokio::test]
    async fn reload_swaps_good_files_and_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, doc("checkout")).unwrap();
        let store = FileStore::open(&path).unwrap();
        let changes = store.subscribe();
        assert!(matches!(store.reload_if_changed(), Reload::Unchanged));

        // Atomic replace (write + rename), as editors and k8s do.
        let tmp = dir.path().join("policy.json.tmp");
        std::fs::write(&tmp, doc("renamed")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(matches!(store.reload_if_changed(), Reload::Reloaded { revision: 2 }));
        assert!(changes.has_changed().unwrap());
        assert_eq!(store.project_by_name("o1", "renamed").await.unwrap().as_deref(), Some("p1"));

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(store.reload_if_changed(), Reload::Failed(LoadError::Json { .. })));
        assert_eq!(store.project_by_name("o1", "renamed").await.unwrap().as_deref(), Some("p1"));
        assert_eq!(store.revision(), 2);
    }

    #[tokio::test]
    async fn discovered_projects_survive_reloads_and_unknown_orgs_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, doc("checkout")).unwrap();
        let store = FileStore::open(&path).unwrap();
        let learned = Project { id: "p2".into(), org_id: "o1".into(), name: "new".into(), description: None, deleted_at: None };
        store.learn_project(learned.clone()).await.unwrap();
        store.learn_project(Project { org_id: "elsewhere".into(), id: "p3".into(), ..learned }).await.unwrap();
        assert_eq!(store.project_by_name("o1", "new").await.unwrap().as_deref(), Some("p2"));
        assert!(store.current().doc().projects.iter().all(|p| p.id != "p3"));
        assert!(matches!(store.reload(), Reload::Reloaded { .. }));
        assert_eq!(store.project_by_name("o1", "new").await.unwrap().as_deref(), Some("p2"));
    }
}
