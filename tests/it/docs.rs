//! The clone stands alone: the documents a reader starts from link only to
//! files inside the repository, and the wire contract they follow is carried
//! here (`docs/contract.md`), byte-identical to the shared original.
//! No NATS, no service.

use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Parser, Tag};

/// The workspace root (`tests/..`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The project's copy of the wire contract.
fn contract() -> PathBuf {
    root().join("docs/contract.md")
}

/// The shared original, when this checkout sits next to it.
fn shared_contract() -> PathBuf {
    root().join("../shared/contract.md")
}

/// The documents whose links must resolve: README.md, ARCHITECTURE.md,
/// docs/*.md and deploy/*.md.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut files = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for dir in ["docs", "deploy"] {
        let dir = root.join(dir);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("read dir entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "md"))
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// The destinations of the links and images in a Markdown text, as written.
/// Text in code spans and code blocks is not a link.
fn link_targets(markdown: &str) -> Vec<String> {
    Parser::new(markdown)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some(dest_url.to_string())
            }
            _ => None,
        })
        .collect()
}

/// The relative links of `markdown` (a file in directory `dir`) that do not
/// name an existing file or directory inside `root`, each with the reason.
/// Links with a scheme (`https:`, `mailto:`) and in-page anchors are not
/// checked.
fn broken_relative_links(markdown: &str, dir: &Path, root: &Path) -> Vec<String> {
    let root = root.canonicalize().expect("repository root exists");
    let mut broken = Vec::new();
    for target in link_targets(markdown) {
        let path = target.split(['#', '?']).next().unwrap_or_default();
        let has_scheme = path
            .split_once(':')
            .is_some_and(|(scheme, _)| !scheme.is_empty() && !scheme.contains('/'));
        if path.is_empty() || has_scheme {
            continue;
        }
        match dir.join(path).canonicalize() {
            Ok(resolved) if resolved.starts_with(&root) => {}
            Ok(resolved) => broken.push(format!(
                "{target}: resolves outside the repository ({})",
                resolved.display()
            )),
            Err(e) => broken.push(format!("{target}: {e}")),
        }
    }
    broken
}

#[test]
fn relative_links_resolve_inside_the_repository() {
    let root = root();
    let documents = documents();
    assert!(
        documents.len() > 4,
        "found too few documents: {documents:?}"
    );
    let mut violations = Vec::new();
    for file in documents {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let dir = file.parent().expect("a file has a directory");
        for problem in broken_relative_links(&text, dir, &root) {
            let shown = file.strip_prefix(&root).unwrap_or(&file);
            violations.push(format!("{}: {problem}", shown.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "links that do not resolve inside the repository (a clone has nothing beside it):\n  {}",
        violations.join("\n  ")
    );
}

/// The checker itself: it finds links that leave the repository or name
/// nothing, and ignores code, external links and anchors.
#[test]
fn the_link_checker_reads_links_right() {
    let root = root();
    let text = "See [the contract](../shared/contract.md), [gone](docs/nothing-here.md), \
                [ok](docs/interface.md#faq), [dir](docs/), [web](https://example.com/x), \
                [mail](mailto:a@b.example), [anchor](#top), `[code](../nowhere.md)`.\n\n\
                ```\n[block](../nowhere.md)\n```\n";
    let broken = broken_relative_links(text, &root, &root);
    assert_eq!(broken.len(), 2, "{broken:#?}");
    assert!(
        broken[0].starts_with("../shared/contract.md: "),
        "{broken:#?}"
    );
    assert!(
        broken[1].starts_with("docs/nothing-here.md: "),
        "{broken:#?}"
    );
}

/// `docs/contract.md` is byte-identical to `../shared/contract.md` when that
/// exists (a checkout without it skips).
#[test]
fn contract_in_sync_with_shared() {
    let ours =
        std::fs::read(contract()).unwrap_or_else(|e| panic!("{}: {e}", contract().display()));
    let shared = shared_contract();
    if !shared.is_file() {
        eprintln!(
            "note: {} does not exist; skipping the contract sync check",
            shared.display()
        );
        return;
    }
    let theirs = std::fs::read(&shared).unwrap_or_else(|e| panic!("{}: {e}", shared.display()));
    assert!(
        ours == theirs,
        "docs/contract.md differs from {}; copy it over: cp {} {}",
        shared.display(),
        shared.display(),
        contract().display()
    );
}

/// The profiles (`debug`, `release`) of every `target/PROFILE/cpor` in `text`.
fn cpor_profiles(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .match_indices("target/")
        .filter_map(|(at, _)| {
            let rest = &text[at + "target/".len()..];
            let (profile, after) = rest.split_once('/')?;
            let named_cpor = after.strip_prefix("cpor").is_some_and(|tail| {
                tail.chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric() && c != '-' && c != '_')
            });
            named_cpor.then(|| profile.to_string())
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// The text of the code blocks of a Markdown text (the commands a reader
/// copies).
fn code_blocks(markdown: &str) -> String {
    let mut inside = false;
    let mut code = String::new();
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::CodeBlock(_)) => inside = true,
            Event::End(pulldown_cmark::TagEnd::CodeBlock) => inside = false,
            Event::Text(text) if inside => code.push_str(&text),
            _ => {}
        }
    }
    code
}

/// One build for the walkthrough: the `cpor` binary README's commands run
/// and the one `scripts/demo` builds are of the same profile (`target/debug`,
/// the one `scripts/test` builds too).
#[test]
fn the_demo_and_the_walkthrough_use_one_build() {
    let read = |file: &str| {
        std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let demo = cpor_profiles(&read("scripts/demo"));
    let readme = cpor_profiles(&code_blocks(&read("README.md")));
    assert_eq!(
        demo,
        ["debug"],
        "scripts/demo runs target/<profile>/cpor of: {demo:?}"
    );
    assert_eq!(
        readme, demo,
        "README's commands run another build of cpor than scripts/demo: {readme:?}"
    );
    assert_eq!(
        cpor_profiles("target/release/cpor serve; target/debug/cpor-bench; `target/debug/cpor`"),
        ["debug", "release"]
    );
}
