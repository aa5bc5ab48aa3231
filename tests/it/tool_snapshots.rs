//! The reviewed `tools/list` snapshots (see `tests/it/common/snapshots.rs`), checked against
//! the server built in-process: every listing's tools and every tool's exact JSON. This is
//! the one place that rewrites them: `UPDATE_SNAPSHOTS=1 cargo test --test it tool_snapshots::`.
//! That the real binary lists the same over MCP is checked in `stdio.rs` and
//! `toolsets.rs`.

use crate::common;

use std::collections::BTreeSet;

use common::snapshots::{self, LISTINGS};

#[tokio::test]
async fn every_listing_and_tool_matches_its_snapshot() {
    let mut listed = Vec::new();
    for listing in LISTINGS {
        listed.push((listing, snapshots::in_process(listing.args).await));
    }
    // A tool listed twice must be the same everywhere, or one file could not hold it.
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for (listing, tools) in &listed {
        for tool in tools {
            let name = tool.name.to_string();
            let text = snapshots::tool_text(tool);
            if let Some(seen) = files.get(&name) {
                assert_eq!(
                    seen, &text,
                    "tool {name} differs between listings (in {:?}); one snapshot file per tool needs it the same",
                    listing.name
                );
            }
            files.insert(name, text);
        }
    }
    let index = snapshots::index_for(&listed);
    let index_text = serde_json::to_string_pretty(&index).unwrap() + "\n";
    let on_disk: BTreeSet<String> = std::fs::read_dir(snapshots::tools_dir())
        .map(|dir| {
            dir.filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect()
        })
        .unwrap_or_default();

    if snapshots::updating() {
        std::fs::create_dir_all(snapshots::tools_dir()).unwrap();
        for stale in on_disk.iter().filter(|name| !files.contains_key(*name)) {
            std::fs::remove_file(snapshots::tool_path(stale)).unwrap();
        }
        for (name, text) in &files {
            std::fs::write(snapshots::tool_path(name), text).unwrap();
        }
        std::fs::write(snapshots::index_path(), &index_text).unwrap();
    }

    let stale: Vec<_> = on_disk
        .iter()
        .filter(|name| !files.contains_key(*name))
        .collect();
    assert!(
        snapshots::updating() || stale.is_empty(),
        "snapshot files of tools no listing has: {stale:?}; {}",
        snapshots::HOW_TO_ACCEPT
    );
    let recorded = snapshots::read_index();
    assert_eq!(
        recorded,
        index,
        "{} differs from the listings; {}",
        snapshots::index_path().display(),
        snapshots::HOW_TO_ACCEPT
    );
    for (listing, tools) in &listed {
        let expected: Vec<(String, String)> = snapshots::listed_names(listing)
            .into_iter()
            .map(|name| {
                let text = snapshots::read_tool(&name);
                (name, text)
            })
            .collect();
        snapshots::assert_same_tools(listing, tools, &expected, "in-process");
    }
}

#[test]
fn a_difference_is_shown_as_the_lines_that_changed() {
    let old = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}\n";
    let new = "{\n  \"a\": 1,\n  \"b\": 5,\n  \"c\": 3\n}\n";
    let diff = snapshots::line_diff(old, new);
    assert!(diff.contains("-   \"b\": 2,"), "{diff}");
    assert!(diff.contains("+   \"b\": 5,"), "{diff}");
    assert!(diff.contains("@@ line 3 @@"), "{diff}");
}
