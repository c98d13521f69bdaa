//! The layers of DESIGN.md, kept: no two top-level modules of the library import each other
//! (directly), and the pure protocol imports nothing of the rest. A use of `crate::x` or
//! `ferry::x` in a file counts as a dependency of the file's top-level module on `x`; unit-test
//! files and `#[cfg(test)]` sections do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a source file belongs to (`services/chat/hub/mod.rs` → `services`).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![src.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy();
            if !name.ends_with(".rs") || name == "tests.rs" {
                continue;
            }
            let from = module_of(path.strip_prefix(&src).unwrap());
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for prefix in ["crate::", "ferry::"] {
                for (at, _) in code.match_indices(prefix) {
                    let rest = &code[at + prefix.len()..];
                    let to: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !to.is_empty() && to != from {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    edges
}

#[test]
fn no_two_modules_import_each_other() {
    let edges = dependencies();
    let mut cycles = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if from < to && edges.get(to).is_some_and(|back| back.contains(from)) {
                cycles.push(format!("{from} <-> {to}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other: {cycles:?}"
    );
    // The test sees real imports (it would pass vacuously on a parse that found none).
    assert!(edges["server"].contains("services"), "{edges:?}");
}

#[test]
fn the_protocol_is_pure_and_the_lower_layers_stay_below() {
    let edges = dependencies();
    let below = |module: &str, allowed: &[&str]| {
        let extra: Vec<&String> = edges
            .get(module)
            .into_iter()
            .flatten()
            .filter(|to| !allowed.contains(&to.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}");
    };
    below("protocol", &[]);
    below("connection", &["protocol"]);
    below(
        "transfer",
        &["protocol", "connection", "random", "atomic_file"],
    );
    for upper in ["cli", "bench", "client", "server", "legacy"] {
        assert!(
            !edges["services"].contains(upper) && !edges["transfer"].contains(upper),
            "a lower layer imports {upper}"
        );
    }
    assert!(
        !edges["server"].contains("legacy"),
        "the legacy listeners run beside the server"
    );
    assert!(
        !edges["auth"].contains("config"),
        "auth is given its accounts"
    );
}
