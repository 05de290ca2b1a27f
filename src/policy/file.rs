//! The `file` policy store: one JSON document, compiled in memory,
//! hot-reloaded when the file changes.
//!
//! Entries are loaded one by one (see `loggate_model::load`): an entry that
//! breaks a rule is left out, logged by name and counted, and the rest of
//! the file takes effect, so an edit that forgets a dependent entry still
//! revokes what it meant to. Only a file that is not a policy at all keeps
//! the last good policy in force.

use super::discovery::Discovery;
use super::store::{PolicyStore, StoreError};
use arc_swap::ArcSwap;
use loggate_authz::{CompiledPolicy, Decision, Explanation, Learning, Principal};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, NotAPolicy, PolicyError, TokenDigest};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the file's metadata is checked; keeps reloads well under 1 s.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Why a policy file could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path}: {source}")]
    NotAPolicy { path: PathBuf, source: NotAPolicy },
}

/// A loaded file: the compiled policy and the entries left out of it.
pub struct FileLoad {
    pub policy: CompiledPolicy,
    pub left_out: Vec<PolicyError>,
}

/// Reads and compiles a policy file.
pub fn load(path: &Path) -> Result<FileLoad, LoadError> {
    compile_file(path, &Learning::default())
}

/// Reads the file entry by entry from a buffered reader (its text is never
/// held whole), compiles what loads, and adds what was learned beside it.
/// Each stage is dropped as the next is built: the entries once the
/// document is compiled, the document's text as it is read.
fn compile_file(path: &Path, learned: &Learning) -> Result<FileLoad, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Read { path: path.to_owned(), source })?;
    let reader = std::io::BufReader::with_capacity(1 << 20, file);
    let loaded = loggate_model::load::from_reader(reader)
        .map_err(|source| LoadError::NotAPolicy { path: path.to_owned(), source })?;
    let policy = CompiledPolicy::compile(loaded.policy);
    // What the data plane taught us is added to what the file says; what
    // the file already has wins.
    let policy = if learned.is_empty() { policy } else { policy.learn(learned) };
    Ok(FileLoad { policy, left_out: loaded.left_out })
}

/// Whether `learning` makes `object` known.
fn learns(learning: &Learning, object: &ObjectRef) -> bool {
    match object.object_type {
        ObjectType::Project => learning.projects.iter().any(|p| p.id == object.id),
        ObjectType::Experiment => learning.experiments.iter().any(|e| e.id == object.id),
        ObjectType::Dataset => learning.datasets.iter().any(|d| d.id == object.id),
        _ => false,
    }
}

/// Logs each left-out entry by name: the operator's way to find them.
fn report(path: &Path, left_out: &[PolicyError]) {
    for e in left_out {
        tracing::error!(policy = %path.display(), "policy entry left out: {e}");
    }
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
    /// Entries of the file in force that were left out.
    left_out: AtomicUsize,
    /// Learned from the data plane (never written to the file), kept
    /// across reloads.
    learned: Mutex<Learning>,
    revision: AtomicU64,
    changes: watch::Sender<u64>,
    last_seen: Mutex<Option<Fingerprint>>,
}

/// The outcome of one reload attempt.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded { revision: u64, left_out: usize },
    Failed(LoadError),
}

impl FileStore {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let seen = fingerprint(path);
        let FileLoad { policy, left_out } = load(path)?;
        report(path, &left_out);
        let (changes, _) = watch::channel(1);
        Ok(FileStore {
            path: path.to_owned(),
            policy: ArcSwap::from_pointee(policy),
            left_out: AtomicUsize::new(left_out.len()),
            learned: Mutex::new(Learning::default()),
            revision: AtomicU64::new(1),
            changes,
            last_seen: Mutex::new(seen),
        })
    }

    /// The compiled policy currently in force.
    pub fn current(&self) -> Arc<CompiledPolicy> {
        self.policy.load_full()
    }

    /// How many entries of the file in force were left out.
    pub fn left_out(&self) -> usize {
        self.left_out.load(Ordering::Relaxed)
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

    /// Reads, loads and swaps in the file, whatever its fingerprint.
    pub fn reload(&self) -> Reload {
        let learned = self.learned.lock();
        match compile_file(&self.path, &learned) {
            Ok(FileLoad { policy, left_out }) => {
                report(&self.path, &left_out);
                self.policy.store(Arc::new(policy));
                self.left_out.store(left_out.len(), Ordering::Relaxed);
                Reload::Reloaded { revision: self.bump(), left_out: left_out.len() }
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

    async fn decide(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        Ok(self.current().decide(principal, object, permission))
    }

    async fn explain(
        &self,
        principal: &Principal,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Explanation, StoreError> {
        Ok(self.current().explain(principal, object, permission))
    }

    async fn decide_new(
        &self,
        principal: &Principal,
        org_id: &str,
        object_type: ObjectType,
        permission: Permission,
    ) -> Result<Decision, StoreError> {
        Ok(self.current().decide_new(principal, org_id, object_type, permission))
    }

    async fn candidates(
        &self,
        principal: &Principal,
        types: &[ObjectType],
        cap: usize,
    ) -> Result<Vec<ObjectRef>, StoreError> {
        Ok(self.current().candidates(principal, types, cap))
    }

    async fn org_name(&self, org_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.current().org_name(org_id).map(str::to_owned))
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

    /// Adds what the data plane created to the in-memory policy (never to
    /// the file). Objects of unknown organizations and known ids are ignored.
    async fn learn(&self, discovery: Discovery) -> Result<bool, StoreError> {
        let mut learned = self.learned.lock();
        let current = self.current();
        let Some(creator_grants) = current.creator_grants(&discovery.project.org_id) else {
            return Ok(false);
        };
        let mut new = Learning::default();
        if !current.knows(ObjectType::Project, &discovery.project.id) {
            new.projects.push(discovery.project.clone());
        }
        match discovery.child {
            Some(super::discovery::Child::Experiment(e))
                if e.project_id == discovery.project.id && !current.knows(ObjectType::Experiment, &e.id) =>
            {
                new.experiments.push(e);
            }
            Some(super::discovery::Child::Dataset(d))
                if d.project_id == discovery.project.id && !current.knows(ObjectType::Dataset, &d.id) =>
            {
                new.datasets.push(d);
            }
            _ => {}
        }
        // The creator owns what this answer made known, not what was known.
        if let Some(mut creator) = discovery.creator.filter(|_| creator_grants) {
            creator.created.retain(|o| learns(&new, o));
            new.acls = creator.owner_acls(|| uuid::Uuid::new_v4().to_string());
        }
        if new.is_empty() {
            return Ok(false);
        }
        // Beside the compiled policy, not into it: the cost is the new
        // objects', whatever the size of the policy.
        let policy = current.learn(&new);
        learned.extend(new);
        self.policy.store(Arc::new(policy));
        self.bump();
        Ok(true)
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
    use loggate_model::doc::Project;

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
        assert!(matches!(store.reload_if_changed(), Reload::Reloaded { revision: 2, left_out: 0 }));
        assert!(changes.has_changed().unwrap());
        assert_eq!(store.project_by_name("o1", "renamed").await.unwrap().as_deref(), Some("p1"));

        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(store.reload_if_changed(), Reload::Failed(LoadError::NotAPolicy { .. })));
        assert_eq!(store.project_by_name("o1", "renamed").await.unwrap().as_deref(), Some("p1"));
        assert_eq!(store.revision(), 2);
    }

    fn discovery(id: &str, org: &str, name: &str, creator: Option<&str>) -> Discovery {
        Discovery {
            project: Project::new(id, org, name),
            child: None,
            creator: creator.map(|u| super::super::discovery::Creator {
                user_id: u.into(),
                created: vec![ObjectRef::new(loggate_model::types::ObjectType::Project, id)],
            }),
        }
    }

    #[tokio::test]
    async fn discovered_projects_survive_reloads_and_unknown_orgs_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, doc("checkout")).unwrap();
        let store = FileStore::open(&path).unwrap();
        store.learn(discovery("p2", "o1", "new", None)).await.unwrap();
        store.learn(discovery("p3", "elsewhere", "new", None)).await.unwrap();
        assert_eq!(store.project_by_name("o1", "new").await.unwrap().as_deref(), Some("p2"));
        assert!(store.current().to_doc().projects.iter().all(|p| p.id != "p3"));
        assert!(matches!(store.reload(), Reload::Reloaded { .. }));
        assert_eq!(store.project_by_name("o1", "new").await.unwrap().as_deref(), Some("p2"));
    }

    #[tokio::test]
    async fn creators_own_what_they_create_unless_their_organization_says_no() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        let policy = |creator_grants: bool| {
            serde_json::json!({
                "organizations": [{"id": "o1", "name": "acme", "creator_grants": creator_grants}],
                "users": [{"id": "u1"}],
            })
            .to_string()
        };
        std::fs::write(&path, policy(true)).unwrap();
        let store = FileStore::open(&path).unwrap();
        store.learn(discovery("p2", "o1", "new", Some("u1"))).await.unwrap();
        let who = Principal::new("u1", "o1");
        let log = ObjectRef::new(loggate_model::types::ObjectType::ProjectLog, "p2");
        assert_eq!(store.decide(&who, &log, Permission::Update).await.unwrap(), Decision::Allow);
        // The grant lives beside the learned project across reloads.
        assert!(matches!(store.reload(), Reload::Reloaded { left_out: 0, .. }));
        assert_eq!(store.decide(&who, &log, Permission::Delete).await.unwrap(), Decision::Allow);

        std::fs::write(&path, policy(false)).unwrap();
        let store = FileStore::open(&path).unwrap();
        store.learn(discovery("p2", "o1", "new", Some("u1"))).await.unwrap();
        assert!(!store.decide(&who, &log, Permission::Update).await.unwrap().is_allow());
    }

    #[tokio::test]
    async fn a_reload_leaves_out_broken_entries_and_applies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.json");
        std::fs::write(&path, doc("checkout")).unwrap();
        let store = FileStore::open(&path).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&doc("renamed")).unwrap();
        v["acls"] = serde_json::json!([{"id": "a1", "object_type": "organization", "object_id": "o1",
                                        "user_id": "gone", "permission": "update"}]);
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(matches!(store.reload(), Reload::Reloaded { left_out: 1, .. }));
        assert_eq!(store.left_out(), 1);
        assert_eq!(store.project_by_name("o1", "renamed").await.unwrap().as_deref(), Some("p1"));
    }
}
