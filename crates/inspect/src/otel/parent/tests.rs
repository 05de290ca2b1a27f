//! The parent grammar, with span components written by the Python SDK.
//!
//! The span-components vectors were produced with the Python SDK,
//! `braintrust==0.48.1` (Python 3.11), by `SpanComponentsV3(...).to_str()`
//! and `SpanComponentsV4(...).to_str()`; the doc line above each says what
//! `SpanComponentsV4.from_str` read back. The refused vectors were written
//! byte by byte and base64-encoded with `base64.b64encode`; their doc line
//! says whether `from_str` accepts them (where it does and this decoder
//! refuses, that is the fail-closed choice described in `components`).

use super::*;

/// V3_PROJECT_LOGS_UUID: project_logs object_id='5d1e6d2e-4a1b-4c3d-9e8f-0a1b2c3d4e5f' args=None row=None span=None root=None
const V3_PROJECT_LOGS_UUID: &str = "AwIBAV0ebS5KG0w9no8KGyw9Tl8=";
/// V3_EXPERIMENT_PLAIN_ID: experiment object_id='exp-not-a-uuid' args=None row=None span=None root=None
const V3_EXPERIMENT_PLAIN_ID: &str = "AwEAeyJvYmplY3RfaWQiOiJleHAtbm90LWEtdXVpZCJ9";
/// V3_PLAYGROUND_ROW_IDS: playground_logs object_id='0b8c6a1e-2f3d-4e5f-8a9b-c0d1e2f3a4b5' args=None row='row-1' span='9f4a7c2e-1b3d-4e5f-a6b7-c8d9e0f1a2b3' root='1a2b3c4d-5e6f-4a8b-9c0d-e1f2a3b4c5d6'
const V3_PLAYGROUND_ROW_IDS: &str =
    "AwMDAQuMah4vPU5fipvA0eLzpLUDn0p8Lhs9Tl+mt8jZ4PGiswQaKzxNXm9Ki5wN4fKjtMXWeyJyb3dfaWQiOiJyb3ctMSJ9";
/// V3_PROJECT_NAME_ARGS: project_logs object_id=None args={'project_name': 'my project', 'project_id': None} row=None span=None root=None
const V3_PROJECT_NAME_ARGS: &str =
    "AwIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6Im15IHByb2plY3QiLCJwcm9qZWN0X2lkIjpudWxsfX0=";
/// V3_PROJECT_ID_AND_NAME_ARGS: project_logs object_id=None args={'project_name': 'n', 'project_id': '5d1e6d2e-4a1b-4c3d-9e8f-0a1b2c3d4e5f'} row=None span=None root=None
const V3_PROJECT_ID_AND_NAME_ARGS: &str = "AwIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6Im4iLCJwcm9qZWN0X2lkIjoiNWQxZTZkMmUtNGExYi00YzNkLTllOGYtMGExYjJjM2Q0ZTVmIn19";
/// V3_EXPERIMENT_ARGS: experiment object_id=None args={'project_name': 'p', 'experiment_name': 'e'} row=None span=None root=None
const V3_EXPERIMENT_ARGS: &str =
    "AwEAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6InAiLCJleHBlcmltZW50X25hbWUiOiJlIn19";
/// V4_PROJECT_LOGS_UUID: project_logs object_id='5d1e6d2e-4a1b-4c3d-9e8f-0a1b2c3d4e5f' args=None row=None span=None root=None
const V4_PROJECT_LOGS_UUID: &str = "BAIAeyJvYmplY3RfaWQiOiI1ZDFlNmQyZS00YTFiLTRjM2QtOWU4Zi0wYTFiMmMzZDRlNWYifQ==";
/// V4_EXPERIMENT_ROW_IDS: experiment object_id='e1' args=None row='otel' span='0123456789abcdef' root='0123456789abcdef0123456789abcdef'
const V4_EXPERIMENT_ROW_IDS: &str =
    "BAECAwEjRWeJq83vBAEjRWeJq83vASNFZ4mrze97Im9iamVjdF9pZCI6ImUxIiwicm93X2lkIjoib3RlbCJ9";
/// V4_PLAYGROUND: playground_logs object_id='ps-7' args=None row=None span=None root=None
const V4_PLAYGROUND: &str = "BAMAeyJvYmplY3RfaWQiOiJwcy03In0=";
/// V4_PROJECT_NAME_ARGS_ROW_IDS: project_logs object_id=None args={'project_name': 'default-otel-project'} row='otel' span='0123456789abcdef' root='0123456789abcdef0123456789abcdef'
const V4_PROJECT_NAME_ARGS_ROW_IDS: &str = "BAICAwEjRWeJq83vBAEjRWeJq83vASNFZ4mrze97ImNvbXB1dGVfb2JqZWN0X21ldGFkYXRhX2FyZ3MiOnsicHJvamVjdF9uYW1lIjoiZGVmYXVsdC1vdGVsLXByb2plY3QifSwicm93X2lkIjoib3RlbCJ9";
/// V4_LOGGER_ARGS: project_logs object_id=None args={'project_name': 'my-proj', 'project_id': None} row='0b8c6a1e-2f3d-4e5f-8a9b-c0d1e2f3a4b5' span='9f4a7c2e-1b3d-4e5f-a6b7-c8d9e0f1a2b3' root='9f4a7c2e-1b3d-4e5f-a6b7-c8d9e0f1a2b3'
const V4_LOGGER_ARGS: &str = "BAIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6Im15LXByb2oiLCJwcm9qZWN0X2lkIjpudWxsfSwicm93X2lkIjoiMGI4YzZhMWUtMmYzZC00ZTVmLThhOWItYzBkMWUyZjNhNGI1Iiwic3Bhbl9pZCI6IjlmNGE3YzJlLTFiM2QtNGU1Zi1hNmI3LWM4ZDllMGYxYTJiMyIsInJvb3Rfc3Bhbl9pZCI6IjlmNGE3YzJlLTFiM2QtNGU1Zi1hNmI3LWM4ZDllMGYxYTJiMyJ9";
/// V4_PROJECT_ID_AND_NAME_ARGS: project_logs object_id=None args={'project_name': 'ignored', 'project_id': 'p-9'} row=None span=None root=None
const V4_PROJECT_ID_AND_NAME_ARGS: &str =
    "BAIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6Imlnbm9yZWQiLCJwcm9qZWN0X2lkIjoicC05In19";
/// V4_EXPERIMENT_ARGS: experiment object_id=None args={'project_name': 'p', 'experiment_name': 'e'} row=None span=None root=None
const V4_EXPERIMENT_ARGS: &str =
    "BAEAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6InAiLCJleHBlcmltZW50X25hbWUiOiJlIn19";
/// V4_PROPAGATED_EVENT: project_logs object_id='p-1' args=None row='r' span='s' root='rs'
const V4_PROPAGATED_EVENT: &str = "BAIAeyJwcm9wYWdhdGVkX2V2ZW50Ijp7Im1ldGFkYXRhIjp7ImsiOlsxLCJcdTAwZmMiXX19LCJvYmplY3RfaWQiOiJwLTEiLCJyb3dfaWQiOiJyIiwic3Bhbl9pZCI6InMiLCJyb290X3NwYW5faWQiOiJycyJ9";
/// V2: python refuses
const V2: &str = "AgIAe30=";
/// V5: python accepts: project_logs object_id='p' args=None
const V5: &str = "BQIAeyJvYmplY3RfaWQiOiJwIn0=";
/// TYPE_4: python refuses
const TYPE_4: &str = "BAQAeyJvYmplY3RfaWQiOiJwIn0=";
/// FIELD_5: python refuses
const FIELD_5: &str = "AwIBBV0ebS5KG0w9no8KGyw9Tl8=";
/// TRUNCATED_V3: python refuses
const TRUNCATED_V3: &str = "AwIBAV0ebS5KG0w9no8=";
/// TRUNCATED_V4: python refuses
const TRUNCATED_V4: &str = "BAIBAwEC";
/// MISSING_ENTRY: python refuses
const MISSING_ENTRY: &str = "BAICAzEyMzQ1Njc4";
/// TAIL_ARRAY: python accepts: project_logs object_id='p' args=None
const TAIL_ARRAY: &str = "BAIAW1sib2JqZWN0X2lkIiwicCJdXQ==";
/// TAIL_DUPLICATE: python accepts: project_logs object_id='b' args=None
const TAIL_DUPLICATE: &str = "BAIAeyJvYmplY3RfaWQiOiJhIiwib2JqZWN0X2lkIjoiYiJ9";
/// V3_UNKNOWN_MEMBER: python refuses
const V3_UNKNOWN_MEMBER: &str = "AwIAeyJvYmplY3RfaWQiOiJwIiwieCI6MX0=";
/// V4_UNKNOWN_MEMBER: python accepts: project_logs object_id='p' args=None
const V4_UNKNOWN_MEMBER: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwieCI6MX0=";
/// TAIL_OBJECT_TYPE: python accepts: experiment object_id='p' args=None
const TAIL_OBJECT_TYPE: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwib2JqZWN0X3R5cGUiOjF9";
/// BOTH: python refuses
const BOTH: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwiY29tcHV0ZV9vYmplY3RfbWV0YWRhdGFfYXJncyI6eyJwcm9qZWN0X25hbWUiOiJuIn19";
/// NEITHER: python refuses
const NEITHER: &str = "BAIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7fX0=";
/// ROW_WITHOUT_SPAN: python refuses
const ROW_WITHOUT_SPAN: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwicm93X2lkIjoiciJ9";
/// SPAN_WITHOUT_ROW: python refuses
const SPAN_WITHOUT_ROW: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwic3Bhbl9pZCI6InMiLCJyb290X3NwYW5faWQiOiJ0In0=";
/// TAIL_OVERRIDES_ENTRY: python accepts: project_logs object_id='override' args=None
const TAIL_OVERRIDES_ENTRY: &str = "AwIBAV0ebS5KG0w9no8KGyw9Tl97Im9iamVjdF9pZCI6Im92ZXJyaWRlIn0=";
/// TAIL_NULLS_ENTRY: python refuses
const TAIL_NULLS_ENTRY: &str = "AwIBAV0ebS5KG0w9no8KGyw9Tl97Im9iamVjdF9pZCI6bnVsbH0=";
/// ARGS_NO_PROJECT: python accepts: project_logs object_id=None args={'org_name': 'o'}
const ARGS_NO_PROJECT: &str = "BAIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7Im9yZ19uYW1lIjoibyJ9fQ==";
/// ARGS_EMPTY_ID: python accepts: project_logs object_id=None args={'project_id': '', 'project_name': 'n'}
const ARGS_EMPTY_ID: &str =
    "BAIAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfaWQiOiIiLCJwcm9qZWN0X25hbWUiOiJuIn19";
/// ARGS_NOT_OBJECT: python accepts: project_logs object_id='p' args=[]
const ARGS_NOT_OBJECT: &str = "BAIAeyJvYmplY3RfaWQiOiJwIiwiY29tcHV0ZV9vYmplY3RfbWV0YWRhdGFfYXJncyI6W119";
/// ID_NOT_STRING: python refuses
const ID_NOT_STRING: &str = "BAIAeyJvYmplY3RfaWQiOjV9";
/// V4_OBJECT_ID_ENTRY: python accepts: experiment object_id='5d1e6d2e4a1b4c3d9e8f0a1b2c3d4e5f' args=None
const V4_OBJECT_ID_ENTRY: &str = "BAEBAV0ebS5KG0w9no8KGyw9Tl8=";
/// TAIL_NOT_UTF8: python refuses
const TAIL_NOT_UTF8: &str = "BAIAeyJvYmplY3RfaWQiOiL/In0=";
/// PLAYGROUND_ARGS: python accepts: playground_logs object_id=None args={'project_name': 'n'}
const PLAYGROUND_ARGS: &str = "BAMAeyJjb21wdXRlX29iamVjdF9tZXRhZGF0YV9hcmdzIjp7InByb2plY3RfbmFtZSI6Im4ifX0=";

fn id(s: &str) -> OtelParent {
    OtelParent::ProjectLog(ProjectRef::Id(s.into()))
}

fn name(s: &str) -> OtelParent {
    OtelParent::ProjectLog(ProjectRef::Name(s.into()))
}

const U1: &str = "5d1e6d2e-4a1b-4c3d-9e8f-0a1b2c3d4e5f";

#[test]
fn prefixed_forms() {
    assert_eq!(parse_parent("project_id:5d1e"), Ok(id("5d1e")));
    assert_eq!(parse_parent("project_name:default-otel-project"), Ok(name("default-otel-project")));
    assert_eq!(parse_parent("project_name:a:b c"), Ok(name("a:b c")));
    assert_eq!(parse_parent("experiment_id:e-1"), Ok(OtelParent::Experiment("e-1".into())));
    for empty in ["project_id:", "project_name:", "experiment_id:"] {
        let e = parse_parent(empty).unwrap_err();
        assert!(e.contains("is empty"), "{e}");
    }
    for other in ["", "project:p", "dataset_id:d", "PROJECT_ID:p", "project_id", "experiment:e"] {
        let e = parse_parent(other).unwrap_err();
        assert!(e.starts_with("parent must be 'project_id:<id>'"), "{other}: {e}");
    }
}

#[test]
fn sdk_span_components() {
    let experiment = |s: &str| OtelParent::Experiment(s.into());
    let cases = [
        (V3_PROJECT_LOGS_UUID, id(U1)),
        (V3_EXPERIMENT_PLAIN_ID, experiment("exp-not-a-uuid")),
        (V3_PLAYGROUND_ROW_IDS, OtelParent::PromptSession("0b8c6a1e-2f3d-4e5f-8a9b-c0d1e2f3a4b5".into())),
        (V3_PROJECT_NAME_ARGS, name("my project")),
        (V3_PROJECT_ID_AND_NAME_ARGS, id(U1)),
        (V4_PROJECT_LOGS_UUID, id(U1)),
        (V4_EXPERIMENT_ROW_IDS, experiment("e1")),
        (V4_PLAYGROUND, OtelParent::PromptSession("ps-7".into())),
        (V4_PROJECT_NAME_ARGS_ROW_IDS, name("default-otel-project")),
        (V4_LOGGER_ARGS, name("my-proj")),
        (V4_PROJECT_ID_AND_NAME_ARGS, id("p-9")),
        (V4_PROPAGATED_EVENT, id("p-1")),
        (V4_UNKNOWN_MEMBER, id("p")),
        (TAIL_OVERRIDES_ENTRY, id("override")),
        (V4_OBJECT_ID_ENTRY, experiment("5d1e6d2e4a1b4c3d9e8f0a1b2c3d4e5f")),
    ];
    for (s, want) in cases {
        assert_eq!(parse_parent(s), Ok(want), "{s}");
    }
}

#[test]
fn refused_span_components() {
    let cases = [
        (V3_EXPERIMENT_ARGS, "must carry its object_id"),
        (V4_EXPERIMENT_ARGS, "must carry its object_id"),
        (PLAYGROUND_ARGS, "must carry its object_id"),
        (V2, "version 2"),
        (V5, "version 5"),
        (TYPE_4, "object type 4"),
        (FIELD_5, "entry field 5"),
        (TRUNCATED_V3, "truncated entry"),
        (TRUNCATED_V4, "truncated entry"),
        (MISSING_ENTRY, "fewer entries"),
        (TAIL_ARRAY, "must be an object"),
        (TAIL_DUPLICATE, "duplicate key"),
        (V3_UNKNOWN_MEMBER, "unknown member"),
        (TAIL_OBJECT_TYPE, "object_type"),
        (BOTH, "both object_id and compute_object_metadata_args"),
        (NEITHER, "neither"),
        (TAIL_NULLS_ENTRY, "neither"),
        (ROW_WITHOUT_SPAN, "all or none"),
        (SPAN_WITHOUT_ROW, "all or none"),
        (ARGS_NO_PROJECT, "names neither project_id nor project_name"),
        (ARGS_EMPTY_ID, "empty project_id"),
        (ARGS_NOT_OBJECT, "must be an object"),
        (ID_NOT_STRING, "must be a string"),
        (TAIL_NOT_UTF8, "UTF-8"),
    ];
    for (s, why) in cases {
        let e = parse_parent(s).unwrap_err();
        assert!(e.contains(why), "{s}: {e}");
    }
}

/// Only the canonical base64 the SDKs write: Python also takes stray
/// characters and missing-then-ignored padding variants.
#[test]
fn only_canonical_base64() {
    assert_eq!(parse_parent(V4_PLAYGROUND), Ok(OtelParent::PromptSession("ps-7".into())));
    let unpadded = V4_PLAYGROUND.trim_end_matches('=');
    let url_safe = V3_PLAYGROUND_ROW_IDS.replace('+', "-");
    for s in [unpadded, &format!("{V4_PLAYGROUND}\n"), &format!(" {V4_PLAYGROUND}"), &url_safe, "=", "A"] {
        let e = parse_parent(s).unwrap_err();
        assert!(e.contains("base64"), "{s:?}: {e}");
    }
    // Non-zero bits after the last byte are not canonical either.
    let e = parse_parent("BAMAeyJvYmplY3RfaWQiOiJwcy03In1=").unwrap_err();
    assert!(e.contains("base64"), "{e}");
    // Too short to hold a header.
    assert!(parse_parent("BAM=").unwrap_err().contains("too short"));
}
