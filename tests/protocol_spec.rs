//! PROTOCOL.md and the code agree: every message type the code knows is described, and the
//! error table lists exactly the codes the code sends.

use std::collections::BTreeSet;

use ferry::protocol::ErrorCode;
use ferry::protocol::message::MESSAGE_TYPES;

fn spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap()
}

#[test]
fn every_message_type_is_described() {
    let spec = spec();
    let missing: Vec<&str> = MESSAGE_TYPES
        .iter()
        .copied()
        .filter(|kind| !spec.contains(&format!("`{kind}`")) && !spec.contains(&format!("`{kind} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "PROTOCOL.md does not describe: {missing:?}"
    );
}

#[test]
fn the_error_table_lists_exactly_the_codes_sent() {
    let spec = spec();
    let section = spec
        .split("### 5.4 Errors and closing")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("section 5.4");
    // Rows of the table: `| `code` | meaning | fatal |`, some naming two codes.
    let documented: BTreeSet<String> = section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let sent: BTreeSet<String> = ErrorCode::ALL.iter().map(|c| c.wire_name()).collect();
    let undocumented: Vec<_> = sent.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&sent).collect();
    assert!(
        undocumented.is_empty(),
        "codes missing from PROTOCOL.md 5.4: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "PROTOCOL.md 5.4 lists codes the code does not have: {unknown:?}"
    );
}
