//! The postgres policy store against a real Postgres: migrations, revisions
//! by triggers, import/export, and decisions equal to the pure evaluator's
//! on the whole policy.

use crate::support::pg::TestDb;
use crate::support::policy::PolicyBuilder;
use loggate::policy::PolicyStore;
use loggate::policy::postgres::{ImportError, MIGRATIONS, PgStore};
use loggate_authz::{CompiledPolicy, Principal};
use loggate_model::doc::{Acl, Group, PolicyDoc, Role, RolePermission};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Scope, ScopeGrant, Timestamp, TokenDigest};
use std::time::Duration;

async fn store(db: &TestDb) -> PgStore {
    let store = PgStore::open(&db.url, Duration::from_secs(5)).unwrap();
    store.migrate().await.unwrap();
    store
}

/// A policy exercising every rule: nested groups with a cycle, nested
/// roles, restrictions, two organizations (tests mark `projects[2]` deleted).
fn world() -> (PolicyBuilder, Vec<crate::support::policy::Token>, Vec<ObjectRef>) {
    let mut p = PolicyBuilder::new();
    let acme = p.org("acme");
    let other = p.org("other");
    let checkout = p.project(&acme, "checkout");
    let search = p.project(&acme, "search");
    let gone = p.project(&acme, "gone");
    let foreign = p.project(&other, "foreign");
    let exp = p.experiment(&checkout, "exp");
    let ds = p.dataset(&search, "ds");
    let writer = p.service_token(&acme, "writer");
    let grouped = p.service_token(&acme, "grouped");
    let roled = p.service_token(&acme, "roled");
    let outsider = p.service_token(&other, "outsider");
    // Narrowed in `doc_of`: "scoped" may write the whole org by its ACL but
    // its scope names checkout; "derived" is its child, listed first.
    let scoped = p.service_token(&acme, "scoped");
    p.grant_user(&scoped.user_id, "update", "organization", &acme);
    p.grant_user(&scoped.user_id, "read", "organization", &acme);
    let derived = p.token_for(&acme, "derived", &scoped.user_id, Some("2100-01-01T00:00:00Z"));
    let inner = p.group(&acme, "inner", &[&grouped.user_id], &[]);
    let outer = p.group(&acme, "outer", &[], &[&inner]);
    p.group(&acme, "cycle", &[], &[&outer]);
    let base = p.role(None, "base", &[("update", Some("project_log"))], &[]);
    let top = p.role(Some(&acme), "top", &[("read", None)], &[&base]);
    p.grant_user(&writer.user_id, "update", "project_log", &checkout);
    p.grant_user(&writer.user_id, "update", "project", &gone);
    p.grant_group(&outer, "update", "project", &search);
    p.grant_user_role(&roled.user_id, &top, "organization", &acme);
    p.acl(Some(&writer.user_id), None, Some("delete"), None, "organization", &acme, Some("experiment"));
    p.grant_user(&outsider.user_id, "update", "project_log", &foreign);
    p.grant_user(&outsider.user_id, "update", "project_log", &checkout);
    let objects = vec![
        ObjectRef::new(ObjectType::Organization, &acme),
        ObjectRef::new(ObjectType::Project, &checkout),
        ObjectRef::new(ObjectType::ProjectLog, &checkout),
        ObjectRef::new(ObjectType::ProjectLog, &search),
        ObjectRef::new(ObjectType::ProjectLog, &gone),
        ObjectRef::new(ObjectType::ProjectLog, &foreign),
        ObjectRef::new(ObjectType::Experiment, &exp),
        ObjectRef::new(ObjectType::Dataset, &ds),
        ObjectRef::new(ObjectType::ProjectLog, "no-such-project"),
        ObjectRef::new(ObjectType::Prompt, "some-prompt"),
    ];
    (p, vec![writer, grouped, roled, outsider, scoped, derived], objects)
}

fn doc_of(p: &PolicyBuilder) -> PolicyDoc {
    let mut doc: PolicyDoc = serde_json::from_value(p.to_json()).unwrap();
    let position = |doc: &PolicyDoc, name: &str| doc.service_tokens.iter().position(|t| t.name == name);
    let Some(s) = position(&doc, "scoped") else { return doc };
    let checkout = doc.projects.iter().find(|x| x.name == "checkout").unwrap().id.clone();
    let grant = |object_type, permissions: &[Permission]| ScopeGrant {
        object_type,
        object_id: checkout.clone(),
        permissions: permissions.to_vec(),
    };
    doc.service_tokens[s].scope = Some(Scope {
        grants: Some(vec![grant(ObjectType::Project, &[Permission::Update, Permission::Read])]),
        client_cidrs: Some(vec!["10.0.0.0/8".parse().unwrap()]),
    });
    let parent_id = doc.service_tokens[s].id.clone();
    let mut child = doc.service_tokens.remove(position(&doc, "derived").unwrap());
    child.parent_id = Some(parent_id);
    child.scope =
        Some(Scope { grants: Some(vec![grant(ObjectType::ProjectLog, &[Permission::Update])]), client_cidrs: None });
    doc.service_tokens.insert(0, child);
    doc
}

/// Sorted collections and member lists: what export produces.
fn normalized(mut doc: PolicyDoc) -> PolicyDoc {
    doc.organizations.sort_by(|a, b| a.id.cmp(&b.id));
    doc.projects.sort_by(|a, b| a.id.cmp(&b.id));
    doc.experiments.sort_by(|a, b| a.id.cmp(&b.id));
    doc.datasets.sort_by(|a, b| a.id.cmp(&b.id));
    doc.users.sort_by(|a, b| a.id.cmp(&b.id));
    doc.groups.sort_by(|a, b| a.id.cmp(&b.id));
    for g in &mut doc.groups {
        g.member_users.sort();
        g.member_groups.sort();
    }
    doc.roles.sort_by(|a, b| a.id.cmp(&b.id));
    for r in &mut doc.roles {
        r.member_permissions
            .sort_by(|a, b| (&a.permission, &a.restrict_object_type).cmp(&(&b.permission, &b.restrict_object_type)));
        r.member_roles.sort();
    }
    doc.acls.sort_by(|a, b| a.id.cmp(&b.id));
    doc.service_tokens.sort_by(|a, b| a.id.cmp(&b.id));
    doc
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::create().await;
    let store = PgStore::open(&db.url, Duration::from_secs(5)).unwrap();
    assert_eq!(store.migrate().await.unwrap().len(), MIGRATIONS.len());
    assert!(store.migrate().await.unwrap().is_empty(), "a second run applies nothing");
    let c = db.client().await;
    let n: i64 = c.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, MIGRATIONS.len());
    assert_eq!(store.revision().await.unwrap(), 0);
    assert!(store.ready().await);
}

#[tokio::test]
async fn plain_sql_changes_bump_the_revision_once_per_transaction() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let c = db.client().await;
    c.batch_execute(
        "BEGIN;
         INSERT INTO organizations VALUES ('o', 'acme');
         INSERT INTO projects (id, org_id, name) VALUES ('p1', 'o', 'a'), ('p2', 'o', 'b');
         INSERT INTO users VALUES ('u', 'ci', true);
         INSERT INTO groups (id, org_id, name) VALUES ('g', 'o', 'writers');
         COMMIT;",
    )
    .await
    .unwrap();
    assert_eq!(store.revision().await.unwrap(), 1, "one transaction, one revision");
    let (at, changes) = store.changes(1).await.unwrap();
    assert!(at > 1_600_000_000_000, "committed_at_ms {at}");
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(k, i)| (k.to_string(), i.to_string())).collect::<Vec<_>>();
    assert_eq!(
        changes,
        pairs(&[("group", "g"), ("organization", "o"), ("project", "p1"), ("project", "p2"), ("user", "u")])
    );

    // A membership row is announced as its group; a statement outside a
    // transaction block is a transaction of its own.
    c.execute("INSERT INTO group_member_users VALUES ('g', 'u')", &[]).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), 2);
    assert_eq!(store.changes(2).await.unwrap().1, pairs(&[("group", "g")]));

    // An update that changes nothing is no change; a rolled-back one neither.
    c.execute("UPDATE projects SET name = name", &[]).await.unwrap();
    c.batch_execute("BEGIN; UPDATE projects SET name = 'x' WHERE id = 'p1'; ROLLBACK;").await.unwrap();
    assert_eq!(store.revision().await.unwrap(), 2);

    // Cascades count: deleting the org lists everything that went with it.
    c.execute("DELETE FROM organizations WHERE id = 'o'", &[]).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), 3);
    let kinds: Vec<String> = store.changes(3).await.unwrap().1.into_iter().map(|(k, _)| k).collect();
    for k in ["organization", "project", "group"] {
        assert!(kinds.contains(&k.to_string()), "{kinds:?}");
    }
    assert_eq!(store.changes(99).await.unwrap(), (0, vec![]));
    // TRUNCATE would bypass the row triggers: refused.
    assert!(c.batch_execute("TRUNCATE acls").await.is_err());
}

#[tokio::test]
async fn the_change_log_since_a_revision_says_whether_it_covers_the_range() {
    use loggate::policy::postgres::Coverage;
    let db = TestDb::create().await;
    let store = store(&db).await;
    let c = db.client().await;
    let empty = store.changes_since(0, 10).await.unwrap();
    assert_eq!((empty.head, empty.coverage, empty.revisions.len()), (0, Coverage::Complete, 0));
    // Three transactions: revisions 1, 2 (two changes) and 3.
    for sql in [
        "INSERT INTO organizations VALUES ('o', 'acme')",
        "BEGIN; INSERT INTO users VALUES ('u', 'ci', true); INSERT INTO groups (id, org_id, name) VALUES ('g', 'o', 'w'); COMMIT;",
        "INSERT INTO group_member_users VALUES ('g', 'u')",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    let log = store.changes_since(1, 10).await.unwrap();
    assert_eq!((log.head, log.coverage), (3, Coverage::Complete));
    let read: Vec<(u64, Vec<(String, String)>)> =
        log.revisions.iter().map(|r| (r.revision, r.changes.clone())).collect();
    let pair = |k: &str, i: &str| (k.to_string(), i.to_string());
    assert_eq!(read, [(2, vec![pair("group", "g"), pair("user", "u")]), (3, vec![pair("group", "g")])]);
    assert!(log.revisions.iter().all(|r| r.committed_at_ms > 1_600_000_000_000));
    assert_eq!(store.changes_since(3, 10).await.unwrap().coverage, Coverage::Complete, "nothing new");
    assert_eq!(store.changes_since(1, 2).await.unwrap().coverage, Coverage::TooMany, "three changes, two allowed");
    assert_eq!(store.changes_since(1, 3).await.unwrap().coverage, Coverage::Complete);
    assert_eq!(store.changes_since(9, 10).await.unwrap().coverage, Coverage::Rewound, "a store behind the replica");
    c.execute("DELETE FROM policy_changes WHERE revision = 2", &[]).await.unwrap();
    let pruned = store.changes_since(1, 10).await.unwrap();
    assert_eq!((pruned.head, pruned.coverage, pruned.revisions.len()), (3, Coverage::Pruned, 0));
    assert_eq!(store.changes_since(2, 10).await.unwrap().coverage, Coverage::Complete, "after what was pruned");
}

#[tokio::test]
async fn notify_fires_once_per_transaction_with_the_revision() {
    use futures_util::StreamExt;
    let db = TestDb::create().await;
    let store = store(&db).await;
    let (listener, mut connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("LISTEN loggate_policy").await.unwrap();
    let c = db.client().await;
    c.batch_execute(
        "BEGIN; INSERT INTO organizations VALUES ('a', 'a'), ('b', 'b'); INSERT INTO users VALUES ('u'); COMMIT;",
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, ("loggate_policy".to_string(), "1".to_string()));
    assert_eq!(store.revision().await.unwrap(), 1);
    // Notifications arrive in commit order: the next one after a second
    // transaction is its own, so nothing more came from the first.
    c.batch_execute("INSERT INTO users VALUES ('v')").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    assert_eq!(got, ("loggate_policy".to_string(), "2".to_string()), "one notification per transaction");
    assert_eq!(store.revision().await.unwrap(), 2);
}

#[tokio::test]
async fn import_is_idempotent_and_export_round_trips() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let (p, _, _) = world();
    let mut doc = doc_of(&p);
    doc.projects[2].deleted_at = Some(Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap());
    let r1 = store.import(&doc, false).await.unwrap();
    assert_eq!(r1, 1, "one import, one revision");
    let (_, changes) = store.changes(1).await.unwrap();
    assert!(changes.len() >= doc.acls.len() + doc.service_tokens.len());
    assert_eq!(store.import(&doc, false).await.unwrap(), 1, "re-importing the same file changes nothing");
    assert_eq!(store.load_doc().await.unwrap(), normalized(doc.clone()));

    // Changing one group's members in the file: one new revision naming it.
    let mut changed = doc.clone();
    changed.groups[0].member_users.clear();
    assert_eq!(store.import(&changed, false).await.unwrap(), 2);
    assert_eq!(store.changes(2).await.unwrap().1, vec![("group".to_string(), changed.groups[0].id.clone())]);

    // An invalid document is refused before anything is written.
    let mut invalid = doc.clone();
    invalid.acls[0].user_id = Some("nobody".into());
    match store.import(&invalid, false).await {
        Err(ImportError::Invalid(e)) => assert!(e.to_string().contains("acls[0]: user_id"), "{e}"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(store.revision().await.unwrap(), 2);
}

/// A bulk import into a new store (enough rows that the store drops the
/// bulk tables' secondary indexes and foreign keys for the load and builds
/// them after): the same catalog afterwards, one revision listing every
/// row, the document back on export, decisions as the evaluator's.
#[tokio::test]
async fn a_bulk_import_into_a_new_store_restores_indexes_and_keys() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let client = db.client().await;
    let catalog = async || -> Vec<String> {
        client
            .query(
                "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid::regclass::text IN
                     ('users', 'group_member_users', 'acls', 'service_tokens')
                 UNION ALL
                 SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
                   FROM pg_constraint WHERE conrelid::regclass::text IN
                     ('users', 'group_member_users', 'acls', 'service_tokens')
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let before = catalog().await;
    let (mut p, tokens, objects) = world();
    let acme = p.org("bulk");
    let bulk: Vec<_> = (0..5_000).map(|i| p.service_token(&acme, &format!("bulk-{i}"))).collect();
    let mut doc = doc_of(&p);
    grants_that_may_not_grant(&mut doc, &tokens);
    assert_eq!(store.import(&doc, false).await.unwrap(), 1);
    assert_eq!(catalog().await, before, "indexes and foreign keys as before");
    let (_, changes) = store.changes(1).await.unwrap();
    assert_eq!(changes.iter().filter(|(k, _)| k == "service_token").count(), doc.service_tokens.len());
    assert_eq!(changes.iter().filter(|(k, _)| k == "user").count(), doc.users.len());
    assert_eq!(store.load_doc().await.unwrap(), normalized(doc.clone()));
    let (whole, _) = CompiledPolicy::from_doc(doc);
    for t in tokens.iter().chain(&bulk[..3]) {
        let identity = store.identity(&TokenDigest::of(&t.raw)).await.unwrap().expect("known token");
        let principal = Principal::from(&identity);
        for object in &objects {
            let got = store.decide(&principal, object, Permission::Update).await.unwrap();
            assert_eq!(got, whole.decide(&principal, object, Permission::Update), "{} {object}", t.name);
        }
    }
    // A dangling reference written after the load is refused: the keys are back.
    let dangling = client
        .execute("INSERT INTO group_member_users (group_id, user_id) SELECT id, 'nobody' FROM groups LIMIT 1", &[])
        .await;
    assert!(dangling.is_err(), "foreign keys restored");
}

#[tokio::test]
async fn import_replace_deletes_what_the_file_lacks() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let (p, _, _) = world();
    let doc = doc_of(&p);
    store.import(&doc, false).await.unwrap();
    let mut small = PolicyBuilder::new();
    let org = small.org_with_id(&doc.organizations[0].id, "acme");
    let project = small.project(&org, "only");
    let t = small.service_token(&org, "t");
    small.grant_user(&t.user_id, "update", "project_log", &project);
    let small = doc_of(&small);
    // Without --replace the old rows stay.
    store.import(&small, false).await.unwrap();
    assert!(store.load_doc().await.unwrap().acls.len() > small.acls.len());
    let before = store.revision().await.unwrap();
    store.import(&small, true).await.unwrap();
    assert_eq!(store.revision().await.unwrap(), before + 1, "replace is one revision");
    assert_eq!(store.load_doc().await.unwrap(), normalized(small));
}

/// ACLs a decision's slice must weigh as the whole policy does (the store
/// loads only the ACLs that can grant the permission asked): a deleted
/// role, a role inheriting from a deleted role, roles and ACLs restricted
/// to another type, a deleted group, a role inheriting a restricted grant.
/// And more ACLs that look as if they could grant update but do not (the
/// deleted role, on the organization) than the store loads in its first
/// round (a few): the one that grants update (on datasets, by a group)
/// and every deny are found only in the second.
fn grants_that_may_not_grant(doc: &mut PolicyDoc, tokens: &[crate::support::policy::Token]) {
    let deleted = Some(Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap());
    let org = doc.organizations[0].id.clone();
    let checkout = doc.projects.iter().find(|x| x.name == "checkout").unwrap().id.clone();
    let user = |name: &str| tokens.iter().find(|t| t.name == name).unwrap().user_id.clone();
    let role = |id: &str, permission, restrict, members: &[&str], deleted_at| Role {
        member_permissions: vec![RolePermission { permission, restrict_object_type: restrict }],
        member_roles: members.iter().map(|m| m.to_string()).collect(),
        deleted_at,
        ..Role::new(id, Some(org.clone()), id)
    };
    doc.roles.push(role("x-gone", Permission::Update, None, &[], deleted));
    doc.roles.push(role("x-heir-of-gone", Permission::Read, None, &["x-gone"], None));
    doc.roles.push(role("x-datasets", Permission::Update, Some(ObjectType::Dataset), &[], None));
    doc.roles.push(role("x-heir-of-datasets", Permission::Create, Some(ObjectType::Experiment), &["x-datasets"], None));
    let mut gone_group = Group::new("x-gone-group", &org, "gone group");
    gone_group.member_users.push(user("outsider"));
    gone_group.member_users.push(user("writer"));
    gone_group.deleted_at = deleted;
    doc.groups.push(gone_group);
    let acl = |id: &str,
               t: ObjectType,
               o: &str,
               who: (Option<String>, Option<String>),
               grant: (Option<Permission>, Option<&str>),
               restrict| Acl {
        id: id.into(),
        object_type: t,
        object_id: o.into(),
        user_id: who.0,
        group_id: who.1,
        permission: grant.0,
        role_id: grant.1.map(str::to_owned),
        restrict_object_type: restrict,
    };
    let (grouped, writer) = (user("grouped"), user("writer"));
    for i in 0..8 {
        let id = format!("x-gone-{i}");
        doc.acls.push(acl(
            &id,
            ObjectType::Organization,
            &org,
            (Some(grouped.clone()), None),
            (None, Some("x-gone")),
            None,
        ));
    }
    let cycle = doc.groups.iter().find(|g| g.name == "cycle").unwrap().id.clone();
    doc.acls.push(acl(
        "x-datasets-by-group",
        ObjectType::Organization,
        &org,
        (None, Some(cycle)),
        (Some(Permission::Update), None),
        Some(ObjectType::Dataset),
    ));
    doc.acls.extend([
        acl("x1", ObjectType::Organization, &org, (Some(grouped.clone()), None), (None, Some("x-gone")), None),
        acl("x2", ObjectType::Organization, &org, (Some(grouped.clone()), None), (None, Some("x-heir-of-gone")), None),
        acl(
            "x3",
            ObjectType::Project,
            &checkout,
            (Some(writer.clone()), None),
            (None, Some("x-heir-of-datasets")),
            None,
        ),
        acl(
            "x4",
            ObjectType::Organization,
            &org,
            (None, Some("x-gone-group".into())),
            (Some(Permission::Delete), None),
            None,
        ),
        acl(
            "x5",
            ObjectType::Project,
            &checkout,
            (Some(grouped), None),
            (Some(Permission::Update), None),
            Some(ObjectType::Dataset),
        ),
        acl(
            "x6",
            ObjectType::ProjectLog,
            &checkout,
            (Some(writer), None),
            (Some(Permission::Read), None),
            Some(ObjectType::ProjectLog),
        ),
    ]);
}

#[tokio::test]
async fn decisions_match_the_evaluator_on_the_whole_policy() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let (p, tokens, objects) = world();
    let mut doc = doc_of(&p);
    doc.projects[2].deleted_at = Some(Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap());
    grants_that_may_not_grant(&mut doc, &tokens);
    store.import(&doc, false).await.unwrap();
    let (whole, left_out) = CompiledPolicy::from_doc(doc);
    assert!(left_out.is_empty(), "{left_out:?}");
    let mut allows = 0;
    for t in &tokens {
        let digest = TokenDigest::of(&t.raw);
        let identity = store.identity(&digest).await.unwrap().expect("known token");
        assert_eq!(Some(identity.clone()), whole.identity(&digest));
        let principal = Principal::from(&identity);
        for object in &objects {
            for permission in Permission::ALL {
                let expected = whole.decide(&principal, object, permission);
                let got = store.decide(&principal, object, permission).await.unwrap();
                assert_eq!(got, expected, "{} {permission} {object}", t.name);
                allows += usize::from(got.is_allow());
                let explained = store.explain(&principal, object, permission).await.unwrap();
                assert_eq!(
                    explained,
                    whole.explain(&principal, object, permission),
                    "{} {permission} {object}",
                    t.name
                );
            }
        }
    }
    assert!(allows >= 6, "the fixture should allow a few things ({allows})");
    // Allowed by the one grant behind the first round's ACLs (see `grants_that_may_not_grant`).
    let grouped = tokens.iter().find(|t| t.name == "grouped").unwrap();
    let identity = store.identity(&TokenDigest::of(&grouped.raw)).await.unwrap().expect("known token");
    let dataset = objects.iter().find(|o| o.object_type == ObjectType::Dataset).unwrap();
    assert!(store.decide(&Principal::from(&identity), dataset, Permission::Update).await.unwrap().is_allow());
    assert_eq!(store.identity(&TokenDigest::of("bt-st-unknownunknownunknownunknown00")).await.unwrap(), None);
    let acme = whole.to_doc().organizations[0].clone();
    assert_eq!(store.org_name(&acme.id).await.unwrap().as_deref(), Some("acme"));
    let checkout = store.project_by_name(&acme.id, "checkout").await.unwrap().unwrap();
    assert!(store.experiment_by_name(&checkout, "exp").await.unwrap().is_some());
    assert_eq!(store.project_by_name(&acme.id, "gone").await.unwrap(), None, "deleted projects are not found by name");
}

/// The organization-wide questions (an object about to be created; where a
/// principal's grants can be) answer as the evaluator does on the whole
/// policy. Candidate lists may pick different "first" objects; what must
/// agree is whether one of them allows.
#[tokio::test]
async fn organization_wide_answers_match_the_evaluator_on_the_whole_policy() {
    let db = TestDb::create().await;
    let store = store(&db).await;
    let (p, tokens, _) = world();
    let mut doc = doc_of(&p);
    doc.projects[2].deleted_at = Some(Timestamp::parse_rfc3339("2024-01-01T00:00:00Z").unwrap());
    store.import(&doc, false).await.unwrap();
    let (whole, _) = CompiledPolicy::from_doc(doc);
    let writable = [ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
    let readable = [ObjectType::Project, ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
    let (mut somewhere, mut new_allowed) = (0, 0);
    for t in &tokens {
        let identity = store.identity(&TokenDigest::of(&t.raw)).await.unwrap().expect("known token");
        let principal = Principal::from(&identity);
        let org = principal.org_id.clone();
        for permission in Permission::ALL {
            for object_type in [ObjectType::ProjectLog, ObjectType::Project] {
                let expected = whole.decide_new(&principal, &org, object_type, permission);
                let got = store.decide_new(&principal, &org, object_type, permission).await.unwrap();
                assert_eq!(got, expected, "{} {permission} new {object_type}", t.name);
                new_allowed += usize::from(got.is_allow());
            }
            for types in [&writable[..], &readable[..]] {
                let allows =
                    |found: Vec<ObjectRef>| found.iter().any(|o| whole.decide(&principal, o, permission).is_allow());
                let expected = allows(whole.candidates(&principal, types, 64));
                let got = allows(store.candidates(&principal, types, 64).await.unwrap());
                assert_eq!(got, expected, "{} {permission} somewhere in {types:?}", t.name);
                somewhere += usize::from(got);
            }
        }
    }
    assert!(somewhere >= 6 && new_allowed >= 1, "the fixture should allow a few things ({somewhere}, {new_allowed})");
}

#[tokio::test]
async fn an_unreachable_store_errors_within_the_timeout() {
    let store = PgStore::open("postgres://postgres@127.0.0.1:1/none", Duration::from_millis(300)).unwrap();
    let started = std::time::Instant::now();
    let principal = Principal::new("u", "o");
    assert!(store.decide(&principal, &ObjectRef::new(ObjectType::ProjectLog, "p"), Permission::Update).await.is_err());
    assert!(store.identity(&TokenDigest::of("bt-st-x")).await.is_err());
    assert!(!store.ready().await);
    assert!(started.elapsed() < Duration::from_secs(3));
}
