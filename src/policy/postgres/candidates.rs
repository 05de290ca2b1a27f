//! Where a principal's grants can be in its organization, read straight
//! from the tables: the Postgres side of `CompiledPolicy::candidates`.
//! Every object it lists is then decided the ordinary way, so a listed
//! object that grants nothing costs a decision, never a wrong answer.

use loggate_authz::Principal;
use loggate_model::types::{ObjectRef, ObjectType};
use tokio_postgres::{Client, Error};

/// The objects the ACLs naming the principal (or its groups, transitively)
/// sit on in its organization, with `organization` and `project` grants
/// standing for their first live project log, experiment and dataset.
pub async fn load(
    client: &Client,
    principal: &Principal,
    types: &[ObjectType],
    cap: usize,
) -> Result<Vec<ObjectRef>, Error> {
    let org = principal.org_id.as_str();
    let rows = client
        .query(
            "WITH RECURSIVE g (id) AS (
                 SELECT group_id FROM group_member_users WHERE user_id = $1
                 UNION
                 SELECT m.group_id FROM group_member_groups m JOIN g ON m.member_group_id = g.id
             ),
             a AS (SELECT DISTINCT object_type, object_id FROM acls
                    WHERE user_id = $1 OR group_id IN (SELECT id FROM g))
             SELECT a.object_type, a.object_id FROM a
              WHERE a.object_type = 'organization' AND a.object_id = $2
             UNION ALL
             SELECT a.object_type, p.id FROM a JOIN projects p ON p.id = a.object_id
              WHERE a.object_type IN ('project', 'project_log') AND p.org_id = $2 AND p.deleted_at IS NULL
             UNION ALL
             SELECT 'experiment', e.id FROM a JOIN experiments e ON e.id = a.object_id JOIN projects p ON p.id = e.project_id
              WHERE a.object_type = 'experiment' AND p.org_id = $2 AND p.deleted_at IS NULL AND e.deleted_at IS NULL
             UNION ALL
             SELECT 'dataset', d.id FROM a JOIN datasets d ON d.id = a.object_id JOIN projects p ON p.id = d.project_id
              WHERE a.object_type = 'dataset' AND p.org_id = $2 AND p.deleted_at IS NULL AND d.deleted_at IS NULL
             ORDER BY 1, 2",
            &[&principal.user_id, &org],
        )
        .await?;
    let mut out: Vec<ObjectRef> = Vec::new();
    let mut push = |object: ObjectRef| {
        if out.len() < cap && types.contains(&object.object_type) && !out.contains(&object) {
            out.push(object);
        }
    };
    for row in &rows {
        let (kind, id): (&str, String) = (row.get(0), row.get(1));
        match kind {
            "organization" => firsts(client, "p.org_id", &id).await?.into_iter().for_each(&mut push),
            "project" => {
                push(ObjectRef::new(ObjectType::ProjectLog, id.clone()));
                firsts(client, "p.id", &id).await?.into_iter().skip(1).for_each(&mut push);
            }
            "project_log" => push(ObjectRef::new(ObjectType::ProjectLog, id)),
            "experiment" => push(ObjectRef::new(ObjectType::Experiment, id)),
            _ => push(ObjectRef::new(ObjectType::Dataset, id)),
        }
    }
    for scope in principal.scopes.iter() {
        for grant in scope.grants.iter().flatten() {
            push(ObjectRef::new(grant.object_type, grant.object_id.clone()));
        }
    }
    Ok(out)
}

/// The first live project log, experiment and dataset of the projects
/// `column = id` selects (one organization, or one project).
async fn firsts(client: &Client, column: &str, id: &str) -> Result<Vec<ObjectRef>, Error> {
    let live = format!("p.deleted_at IS NULL AND {column} = $1");
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT p.id FROM projects p WHERE {live} ORDER BY p.id LIMIT 1),
                        (SELECT e.id FROM experiments e JOIN projects p ON p.id = e.project_id
                          WHERE {live} AND e.deleted_at IS NULL ORDER BY e.id LIMIT 1),
                        (SELECT d.id FROM datasets d JOIN projects p ON p.id = d.project_id
                          WHERE {live} AND d.deleted_at IS NULL ORDER BY d.id LIMIT 1)"
            ),
            &[&id],
        )
        .await?;
    let kinds = [ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
    Ok(kinds
        .iter()
        .enumerate()
        .filter_map(|(i, &t)| row.get::<_, Option<String>>(i).map(|id| ObjectRef::new(t, id)))
        .collect())
}
