//! The layers of docs/architecture.md, checked on the sources: every `crate::` path in
//! `lib/src` (outside `#[cfg(test)]` modules and comments) must point down the layers or
//! inside its own box without a cycle; no shared module imports a tool; no tool imports
//! another tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const TOOLS: [&str; 7] = ["probe", "recover", "notify", "rollup", "board", "tickmon", "cellscan"];

/// The boxes of the drawing, bottom first.
const BOXES: [(&str, &[&str]); 6] = [
    ("base", &["error", "json", "util", "diag", "clock"]),
    ("files", &["store"]),
    ("transport", &["fleet"]),
    ("formats", &["ndjson", "record"]),
    ("services", &["check", "config", "restart", "history", "calendar"]),
    ("set-up", &["entry", "cli", "docs"]),
];

fn rank(module: &str) -> Option<usize> {
    if TOOLS.contains(&module) {
        return Some(BOXES.len());
    }
    BOXES.iter().position(|(_, members)| members.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `lib/src` belongs to (`lib.rs` belongs to none).
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib").then_some(name)
}

/// The top-level modules named by `crate::` paths in the code of `text` (comments and
/// `#[cfg(test)]` modules left out), `use crate::{a, b::c}` included.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn every_import_runs_down_the_layers_and_no_tool_imports_another() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    for file in &files {
        let Some(from) = module_of(&root, file) else { continue };
        let Some(from_rank) = rank(&from) else {
            wrong.push(format!("{}: module {from} is in no box of docs/architecture.md", file.display()));
            continue;
        };
        for to in imports(&std::fs::read_to_string(file).unwrap()) {
            // `crate::Error`, `crate::Result` and `crate::Status` are the root's re-exports of `error`'s.
            let to = if matches!(to.as_str(), "Error" | "Result" | "Status") { "error".to_string() } else { to };
            if to == from {
                continue;
            }
            let Some(to_rank) = rank(&to) else {
                wrong.push(format!("{}: crate::{to} is in no box of docs/architecture.md", file.display()));
                continue;
            };
            if TOOLS.contains(&to.as_str()) {
                wrong.push(format!("{}: {from} imports the tool {to}", file.display()));
            } else if to_rank > from_rank {
                wrong.push(format!("{}: {from} imports {to}, which is above it", file.display()));
            } else if to_rank == from_rank && !TOOLS.contains(&from.as_str()) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Inside a box: no cycle.
    fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str, seen: &mut BTreeSet<String>) -> bool {
        edges
            .get(from)
            .is_some_and(|next| next.iter().any(|n| n == to || (seen.insert(n.clone()) && reaches(edges, n, to, seen))))
    }
    for (from, tos) in &edges {
        for to in tos {
            if reaches(&edges, to, from, &mut BTreeSet::new()) {
                wrong.push(format!("{from} and {to} import each other (through the same box)"));
            }
        }
    }
    assert!(wrong.is_empty(), "the layers of docs/architecture.md are broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_import_reader_sees_groups_and_skips_comments_and_tests() {
    let text = "use crate::{error::Error, util};\n// crate::probe in a comment\nlet x = crate::clock::now();\n#[cfg(test)]\nmod tests { use crate::notify; }\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["clock", "error", "util"]);
}
