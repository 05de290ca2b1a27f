//! Distinct targets in first-seen order, without allocating for repeats.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::policy::types::{ObjectRef, ObjectType, Permission};

use super::{Target, Targets};

#[derive(Default)]
pub(crate) struct Collector<'a> {
    targets: Vec<Target>,
    seen: HashSet<(ObjectType, Permission, Cow<'a, str>)>,
    rows: usize,
}

impl<'a> Collector<'a> {
    /// Counts one row.
    #[inline]
    pub fn row(&mut self) {
        self.rows += 1;
    }

    #[inline]
    pub fn add(&mut self, object_type: ObjectType, id: Cow<'a, str>, permission: Permission) {
        // Batches usually repeat the previous row's target.
        if let Some(last) = self.targets.last()
            && last.permission == permission
            && last.object.object_type == object_type
            && last.object.id == *id
        {
            return;
        }
        if self.seen.insert((object_type, permission, id.clone())) {
            let object = ObjectRef::new(object_type, id.into_owned());
            self.targets.push(Target { object, permission });
        }
    }

    pub fn finish(self) -> Targets {
        Targets { targets: self.targets, rows: self.rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupes_in_first_seen_order() {
        let mut c = Collector::default();
        for (t, id, p) in [
            (ObjectType::Experiment, "e", Permission::Update),
            (ObjectType::Dataset, "d", Permission::Update),
            (ObjectType::Experiment, "e", Permission::Update),
            (ObjectType::Experiment, "e", Permission::Delete),
            (ObjectType::Dataset, "d", Permission::Update),
        ] {
            c.row();
            c.add(t, Cow::Borrowed(id), p);
        }
        let t = c.finish();
        assert_eq!(t.rows, 5);
        let got: Vec<String> =
            t.targets.iter().map(|t| format!("{}/{}", t.object, t.permission)).collect();
        assert_eq!(got, ["experiment:e/update", "dataset:d/update", "experiment:e/delete"]);
    }
}
