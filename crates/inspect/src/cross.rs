//! `POST /v1/insert`: `{"experiment":{ID:{"events":[..],"feedback":[..]}},
//! "dataset":{..},"project_logs":{..}}`.

use std::collections::HashSet;

use loggate_model::types::{ObjectRef, ObjectType};

use super::collect::Collector;
use super::events::addressed_rows;
use super::json::Kind;
use super::path::{At, Path};
use super::walk::{self, members, once};
use super::{InspectError, Targets};

#[cfg(test)]
mod tests;

/// Inspects a cross-object insert: every object it names, `update` (or
/// `delete` for `_object_delete: true` rows) per row. Unknown top-level
/// keys, a repeated object id and non-object entries are refused; `null`
/// sections and lists are allowed (the schema makes them nullable).
pub fn cross_object_insert(body: &[u8]) -> Result<Targets, InspectError> {
    walk::body(body, |sc| {
        let root = Path::Root;
        let mut acc = Collector::default();
        let mut seen = [false; 3];
        members(sc, &root, |sc, key| {
            let here = root.key(&key);
            let (object_type, slot) = match &*key {
                "experiment" => (ObjectType::Experiment, 0),
                "dataset" => (ObjectType::Dataset, 1),
                "project_logs" => (ObjectType::ProjectLog, 2),
                _ => return Err(here.bad(format!("unknown key '{key}'"))),
            };
            once(&mut seen[slot], &here)?;
            if sc.kind().at(&here)? == Kind::Null {
                return sc.null().at(&here);
            }
            let mut ids = HashSet::new();
            members(sc, &here, |sc, id| {
                let at_id = here.key(&id);
                if !ids.insert(id.clone()) {
                    return Err(at_id.bad("duplicate object id"));
                }
                let object = ObjectRef::new(object_type, id.as_ref());
                let mut lists = [false; 2];
                members(sc, &at_id, |sc, list| {
                    let at_list = at_id.key(&list);
                    let slot = match &*list {
                        "events" => 0,
                        "feedback" => 1,
                        _ => return sc.skip_value().at(&at_list),
                    };
                    once(&mut lists[slot], &at_list)?;
                    if sc.kind().at(&at_list)? == Kind::Null {
                        return sc.null().at(&at_list);
                    }
                    addressed_rows(sc, &at_list, &object, id.clone(), &mut acc)
                })
            })
        })?;
        Ok(acc.finish())
    })
}
