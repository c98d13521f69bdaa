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

/// The non-test code of every `.rs` file under `src/DIR`, by path.
fn sources_under(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                let code = text.split("#[cfg(test)]").next().unwrap().to_string();
                found.push((path.display().to_string(), code));
            }
        }
    }
    found
}

#[test]
fn the_chat_hub_knows_the_engine_interface_and_the_engines_know_no_hub() {
    let engines = sources_under("services/chat/engine");
    assert!(
        engines.len() >= 3,
        "the interface and two engines: {engines:?}"
    );
    for (path, code) in &engines {
        assert!(
            !code.contains("hub::") && !code.contains("super::hub") && !code.contains("cluster::"),
            "{path}: an engine reaches into the hub (or another engine)"
        );
    }
    let hub = sources_under("services/chat/hub");
    assert!(hub.len() >= 5, "{hub:?}");
    let mut uses_interface = false;
    for (path, code) in &hub {
        for engine in [
            "engine::disk",
            "engine::memory",
            "engine::one_server",
            "DiskEngine",
            "MemoryEngine",
            "OneServer",
            "cluster::",
            "Cluster",
        ] {
            assert!(
                !code.contains(engine),
                "{path}: the hub names an engine ({engine}); it is given one"
            );
        }
        uses_interface |= code.contains("engine::Engine");
    }
    // The test sees the real imports (it would pass vacuously on files that say nothing).
    assert!(
        uses_interface,
        "the hub keeps lines through the Engine interface"
    );
    // Which engine runs is decided where the server is put together, nowhere in chat.
    let chat = sources_under("services/chat");
    for (path, code) in &chat {
        if path.contains("/cluster/") || path.contains("/engine/") {
            continue;
        }
        assert!(
            !code.contains(".cluster()") && !code.contains("cluster::Cluster"),
            "{path}: chat takes the Redis engine's own path"
        );
    }
}

/// The Redis engine hands records and events to the chat it serves through its `Host`
/// interface, which the hub implements: no file of the engine names the hub, and the shared
/// words (a participant and what it is delivered) belong to neither.
#[test]
fn the_redis_engine_reaches_the_hub_only_through_its_host_interface() {
    let cluster = sources_under("services/chat/cluster");
    assert!(cluster.len() >= 8, "{cluster:?}");
    let mut uses_host = false;
    for (path, code) in &cluster {
        assert!(
            !code.contains("hub::") && !code.contains("super::hub") && !code.contains("ChatHub"),
            "{path}: the Redis engine reaches into the hub"
        );
        uses_host |= code.contains("dyn Host");
    }
    assert!(uses_host, "the engine's tasks hold the hub as a Host");
    let hub = sources_under("services/chat/hub");
    assert!(
        hub.iter()
            .any(|(_, code)| code.contains("impl Host for ChatHub")),
        "the hub implements the engine's Host interface"
    );
    assert!(
        cluster
            .iter()
            .any(|(_, code)| code.contains("impl Engine for Cluster")),
        "the Redis engine is an implementation of the hub's one Engine interface"
    );
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services/chat/participant.rs");
    let code = std::fs::read_to_string(&shared).unwrap();
    assert!(
        code.contains("pub struct Participant")
            && !code.contains("hub::")
            && !code.contains("cluster::"),
        "{}: a participant is reached without naming the hub or an engine",
        shared.display()
    );
}
