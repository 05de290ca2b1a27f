use super::*;
use crate::Target;
use loggate_model::types::{ObjectType, Permission};

fn obj(t: ObjectType, id: &str) -> ObjectRef {
    ObjectRef::new(t, id)
}

fn field(r: Result<Targets, InspectError>) -> Option<String> {
    match r {
        Err(InspectError::BadRequest { field, .. }) => field,
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn perms(t: &Targets) -> Vec<Permission> {
    t.targets.iter().map(|t| t.permission).collect()
}

#[test]
fn events_update_and_delete_on_the_route_object() {
    let o = obj(ObjectType::ProjectLog, "p1");
    let b = br#"{"events":[{"input":1},{"id":"x","_object_delete":true},{"_object_delete":false},{}]}"#;
    let got = events(b, &o).unwrap();
    assert_eq!(got.rows, 4);
    assert_eq!(
        got.targets,
        [
            Target { object: o.clone(), permission: Permission::Update },
            Target { object: o.clone(), permission: Permission::Delete },
        ]
    );
    assert_eq!(events(br#"{"events":[]}"#, &o).unwrap(), Targets::default());
    let only_delete = events(br#"{"events":[{"_object_delete":true}]}"#, &o).unwrap();
    assert_eq!(perms(&only_delete), [Permission::Delete]);
}

#[test]
fn events_shape() {
    let o = obj(ObjectType::Experiment, "e");
    assert_eq!(field(events(br#"{}"#, &o)).as_deref(), Some("events"));
    assert_eq!(field(events(br#"{"feedback":[]}"#, &o)).as_deref(), Some("events"));
    assert_eq!(field(events(br#"{"events":{}}"#, &o)).as_deref(), Some("events"));
    assert_eq!(field(events(br#"{"events":[],"events":[]}"#, &o)).as_deref(), Some("events"));
    assert_eq!(field(events(br#"{"events":[{},1]}"#, &o)).as_deref(), Some("events[1]"));
    assert_eq!(field(events(br#"[{"events":[]}]"#, &o)), None);
    assert_eq!(field(events(br#"{"events":[]} x"#, &o)), None);
    assert_eq!(field(events(br#"{"events":[{"a":[1,}]}"#, &o)).as_deref(), Some("events[0].a"));
}

#[test]
fn events_typed_and_duplicate_target_fields() {
    let o = obj(ObjectType::Dataset, "d");
    for (b, f) in [
        (r#"{"events":[{"_object_delete":"true"}]}"#, "events[0]._object_delete"),
        (r#"{"events":[{},{"_object_delete":true,"_object_delete":true}]}"#, "events[1]._object_delete"),
        (r#"{"events":[{"dataset_id":"d","dataset_id":"d"}]}"#, "events[0].dataset_id"),
        (r#"{"events":[{"project_id":5}]}"#, "events[0].project_id"),
    ] {
        assert_eq!(field(events(b.as_bytes(), &o)).as_deref(), Some(f), "{b}");
    }
}

#[test]
fn events_may_not_name_another_object() {
    let pl = obj(ObjectType::ProjectLog, "p");
    let ex = obj(ObjectType::Experiment, "e");
    let ds = obj(ObjectType::Dataset, "d");
    let one = |o: &ObjectRef, row: &str| events(format!(r#"{{"events":[{row}]}}"#).as_bytes(), o);
    // Consistent ids are fine (e.g. rows copied from a fetch).
    assert!(one(&pl, r#"{"project_id":"p","log_id":"g"}"#).is_ok());
    assert!(one(&ex, r#"{"project_id":"parent","experiment_id":"e"}"#).is_ok());
    assert!(one(&ds, r#"{"project_id":"parent","dataset_id":"d"}"#).is_ok());
    for (o, row, f) in [
        (&pl, r#"{"project_id":"other"}"#, "events[0].project_id"),
        (&pl, r#"{"log_id":"x"}"#, "events[0].log_id"),
        (&pl, r#"{"experiment_id":"e"}"#, "events[0].experiment_id"),
        (&ex, r#"{"experiment_id":"other"}"#, "events[0].experiment_id"),
        (&ex, r#"{"dataset_id":"d"}"#, "events[0].dataset_id"),
        (&ex, r#"{"log_id":"g"}"#, "events[0].log_id"),
        (&ds, r#"{"dataset_id":"e"}"#, "events[0].dataset_id"),
        (&ds, r#"{"prompt_session_id":"s"}"#, "events[0].prompt_session_id"),
    ] {
        assert_eq!(field(one(o, row)).as_deref(), Some(f), "{o} {row}");
    }
}

#[test]
fn feedback_items() {
    let o = obj(ObjectType::Experiment, "e");
    let got = feedback(br#"{"feedback":[{"id":"r1","scores":{"a":1}},{"id":"r2","comment":"c"}]}"#, &o).unwrap();
    assert_eq!(got.rows, 2);
    assert_eq!(perms(&got), [Permission::Update]);
    assert_eq!(field(feedback(br#"{"feedback":["r1"]}"#, &o)).as_deref(), Some("feedback[0]"));
    assert_eq!(field(feedback(br#"{"events":[]}"#, &o)).as_deref(), Some("feedback"));
    assert_eq!(
        field(feedback(br#"{"feedback":[{"id":"r","experiment_id":"x"}]}"#, &o)).as_deref(),
        Some("feedback[0].experiment_id")
    );
    let nested = "[".repeat(126) + &"]".repeat(126);
    assert!(feedback(format!(r#"{{"feedback":[{{"m":{nested}}}]}}"#).as_bytes(), &o).is_err());
    let nested = "[".repeat(125) + &"]".repeat(125);
    assert!(feedback(format!(r#"{{"feedback":[{{"m":{nested}}}]}}"#).as_bytes(), &o).is_ok());
}
