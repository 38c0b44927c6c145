//! The committed `workflows/workflow.schema.json` matches the types.
//! Regenerate with `UPDATE_SCHEMA=1 cargo test -p hybrid-workflow --test workflow schema::`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

#[test]
fn committed_schema_is_current() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../workflows/workflow.schema.json");
    let fresh = hybrid_workflow::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale; regenerate it with: UPDATE_SCHEMA=1 cargo test -p hybrid-workflow --test workflow schema::",
        path.display()
    );
}

#[test]
fn schema_refuses_unknown_keys() {
    let schema: serde_json::Value = serde_json::from_str(&hybrid_workflow::json_schema()).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["$defs"]["StageSpec"].is_object());
}
