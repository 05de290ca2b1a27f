use super::*;
use crate::Target;
use loggate_model::types::Permission;

fn field(body: &str) -> Option<String> {
    match cross_object_insert(body.as_bytes()) {
        Err(InspectError::BadRequest { field, .. }) => field,
        other => panic!("{body}: expected a 400, got {other:?}"),
    }
}

fn t(object_type: ObjectType, id: &str, permission: Permission) -> Target {
    Target { object: ObjectRef::new(object_type, id), permission }
}

#[test]
fn targets_per_object() {
    let b = r#"{
        "experiment": {"e1": {"events": [{"input":1},{"_object_delete":true}], "feedback": [{"id":"r"}]},
                       "e2": {"feedback": [{"id":"r"}]}},
        "dataset": {"d1": {"events": [{"input":1}], "feedback": null}},
        "project_logs": {"p1": {"events": [{"project_id":"p1","log_id":"g"}]}}
    }"#;
    let got = cross_object_insert(b.as_bytes()).unwrap();
    assert_eq!(got.rows, 6);
    assert_eq!(
        got.targets,
        [
            t(ObjectType::Experiment, "e1", Permission::Update),
            t(ObjectType::Experiment, "e1", Permission::Delete),
            t(ObjectType::Experiment, "e2", Permission::Update),
            t(ObjectType::Dataset, "d1", Permission::Update),
            t(ObjectType::ProjectLog, "p1", Permission::Update),
        ]
    );
}

#[test]
fn empty_and_null_sections() {
    assert_eq!(cross_object_insert(b"{}").unwrap(), Targets::default());
    let b = br#"{"experiment":null,"dataset":{},"project_logs":{"p":{}}}"#;
    assert_eq!(cross_object_insert(b).unwrap(), Targets::default());
    let b = br#"{"dataset":{"d":{"events":null,"extra":[1]}}}"#;
    assert_eq!(cross_object_insert(b).unwrap(), Targets::default());
}

#[test]
fn refusals() {
    for (b, f) in [
        (r#"{"prompt":{}}"#, Some("prompt")),
        (r#"{"experiment":{},"experiment":{}}"#, Some("experiment")),
        (r#"{"experiment":[]}"#, Some("experiment")),
        (r#"{"experiment":{"e":[]}}"#, Some("experiment.e")),
        (r#"{"experiment":{"e":{},"e":{}}}"#, Some("experiment.e")),
        (r#"{"experiment":{"e":{"events":[],"events":[]}}}"#, Some("experiment.e.events")),
        (r#"{"experiment":{"e":{"events":{}}}}"#, Some("experiment.e.events")),
        (r#"{"experiment":{"e":{"events":[1]}}}"#, Some("experiment.e.events[0]")),
        (
            r#"{"experiment":{"e":{"events":[{},{"_object_delete":"yes"}]}}}"#,
            Some("experiment.e.events[1]._object_delete"),
        ),
        (r#"{"dataset":{"d":{"feedback":[{"dataset_id":"other"}]}}}"#, Some("dataset.d.feedback[0].dataset_id")),
        (r#"{"project_logs":{"p":{"events":[{"project_id":"q"}]}}}"#, Some("project_logs.p.events[0].project_id")),
        (r#"{"dataset":{"d":{"x":[1,2,]}}}"#, Some("dataset.d.x")),
        (r#"[]"#, None),
        (r#"{} {}"#, None),
    ] {
        assert_eq!(field(b).as_deref(), f, "{b}");
    }
}
