use super::*;
use crate::Target;
use loggate_model::types::{ObjectRef, ObjectType};

fn field(body: &str) -> Option<String> {
    match overflow_request(body.as_bytes()) {
        Err(InspectError::BadRequest { field, .. }) => field,
        other => panic!("{body}: expected a 400, got {other:?}"),
    }
}

fn row(ids: &str, extra: &str) -> String {
    format!(r#"{{"object_ids":{ids}{extra},"input_row":{{"byte_size":120}}}}"#)
}

fn req(rows: &[String]) -> String {
    format!(r#"{{"content_type":"application/json","size_bytes":9,"rows":[{}]}}"#, rows.join(","))
}

#[test]
fn targets() {
    let b = req(&[
        row(r#"{"project_id":"p","log_id":"g"}"#, r#","is_delete":false"#),
        row(r#"{"experiment_id":"e"}"#, r#","is_delete":true,"has_comment":false"#),
        row(r#"{"dataset_id":"d"}"#, ""),
        row(r#"{"project_id":"p","log_id":"g"}"#, r#","is_delete":null"#),
    ]);
    let got = overflow_request(b.as_bytes()).unwrap();
    assert_eq!(got.rows, 4);
    let t = |ty, id: &str, permission| Target { object: ObjectRef::new(ty, id), permission };
    assert_eq!(
        got.targets,
        [
            t(ObjectType::ProjectLog, "p", Permission::Update),
            t(ObjectType::Experiment, "e", Permission::Delete),
            t(ObjectType::Dataset, "d", Permission::Update),
        ]
    );
}

#[test]
fn refusals() {
    let pl = r#"{"project_id":"p","log_id":"g"}"#;
    for (b, f) in [
        (r#"{"content_type":"x"}"#.to_string(), Some("rows")),
        (r#"{"rows":{}}"#.to_string(), Some("rows")),
        (r#"{"rows":[],"rows":[]}"#.to_string(), Some("rows")),
        (req(&["1".into()]), Some("rows[0]")),
        (req(&[r#"{"is_delete":true}"#.into()]), Some("rows[0].object_ids")),
        (req(&[row(pl, r#","is_delete":"true""#)]), Some("rows[0].is_delete")),
        (req(&[row(pl, r#","is_delete":true,"is_delete":false"#)]), Some("rows[0].is_delete")),
        (req(&[row(pl, &format!(r#","object_ids":{pl}"#))]), Some("rows[0].object_ids")),
        (req(&[row(r#"{"project_id":"p","log_id":"x"}"#, "")]), Some("rows[0].object_ids.log_id")),
        (req(&[row(r#"{"project_id":"p"}"#, "")]), Some("rows[0].object_ids")),
        (req(&[row(r#"{"experiment_id":"e","dataset_id":"d"}"#, "")]), Some("rows[0].object_ids")),
        (req(&[row(r#"{"dataset_id":"d","dataset_id":"d"}"#, "")]), Some("rows[0].object_ids.dataset_id")),
        (req(&[row(r#"{"dataset_id":7}"#, "")]), Some("rows[0].object_ids.dataset_id")),
        (req(&[row(pl, r#","input_row":{"byte_size":1e999}"#)]), Some("rows[0].input_row")),
        (req(&[row(pl, "")]) + "]", None),
    ] {
        assert_eq!(field(&b).as_deref(), f, "{b}");
    }
}
