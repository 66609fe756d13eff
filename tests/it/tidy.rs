//! Tidy checks: the architecture invariants of `ARCHITECTURE.md` that a
//! reading of the manifests and sources can enforce. No NATS, no service.
//!
//! - `cpor-domain` does no IO and reads no clock: no IO crates among its
//!   dependencies, no clock, file, network or randomness calls in its sources.
//! - Only `cpor-log` names sled; only `cpor-nats` names async-nats (besides
//!   the benchmark harness and the tests): the binary names no async-nats
//!   item and `cpor-nats` does not re-export the crate.
//! - `cpor-jcs` (RFC 8785) is a leaf: it depends on no other workspace crate,
//!   and nothing outside `cpor-log` reaches canonical JSON through the log.
//! - `anyhow` only in the binaries (`cpor`, `cpor-bench`).
//! - The global allocator (jemalloc) only in the binaries (`cpor`, `cpor-bench`).
//! - `cpor-testkit` is a dev-dependency only, and never published; the one
//!   exception is the benchmark harness (`cpor-bench`, itself never
//!   published), which starts nats-server as the tests do.
//! - No test is switched off (an `ignore` attribute) or passes by
//!   panicking (a `should_panic` attribute).
//! - Every crate says what it is (`description`) and takes the workspace lints.
//! - CI (`.ci/run` → `scripts/test`) checks formatting and runs clippy with
//!   warnings as errors before the tests.
//!
//! Every failure names the file and the rule it breaks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Value;

/// The workspace root (`tests/..`).
pub(super) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// One package: its directory and parsed `Cargo.toml`.
struct Package {
    name: String,
    dir: PathBuf,
    manifest_path: PathBuf,
    manifest: Value,
}

impl Package {
    fn load(dir: &Path) -> Package {
        let manifest_path = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest_path)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
        let manifest: Value = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", manifest_path.display()));
        let name = manifest
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{} has no [package] name", manifest_path.display()))
            .to_string();
        Package {
            name,
            dir: dir.to_path_buf(),
            manifest_path,
            manifest,
        }
    }

    /// Dependency names of the given kinds (`dependencies`,
    /// `dev-dependencies`, `build-dependencies`), target-specific ones
    /// included, each with the table it is in. A renamed dependency counts
    /// under its package name.
    fn dependencies(&self, kinds: &[&str]) -> Vec<(String, String)> {
        let mut tables: Vec<(String, &Value)> = Vec::new();
        for kind in kinds {
            if let Some(table) = self.manifest.get(*kind) {
                tables.push((format!("[{kind}]"), table));
            }
            if let Some(targets) = self.manifest.get("target").and_then(Value::as_table) {
                for (target, spec) in targets {
                    if let Some(table) = spec.get(*kind) {
                        tables.push((format!("[target.{target}.{kind}]"), table));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (table_name, table) in tables {
            for (key, spec) in table.as_table().into_iter().flatten() {
                let name = spec
                    .get("package")
                    .and_then(Value::as_str)
                    .unwrap_or(key)
                    .to_string();
                out.push((name, table_name.clone()));
            }
        }
        out
    }

    /// The `.rs` files under `src/`, recursively.
    fn sources(&self) -> Vec<PathBuf> {
        rust_files(&self.dir.join("src"))
    }
}

const ALL_DEPENDENCY_KINDS: &[&str] = &["dependencies", "dev-dependencies", "build-dependencies"];
/// What ships in the built crate (dev-dependencies only build its tests).
const SHIPPED_DEPENDENCY_KINDS: &[&str] = &["dependencies", "build-dependencies"];

/// Every package under `crates/`, by name.
fn crates() -> BTreeMap<String, Package> {
    let dir = root().join("crates");
    let mut packages = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("read crates/").path();
        if path.join("Cargo.toml").is_file() {
            let package = Package::load(&path);
            packages.insert(package.name.clone(), package);
        }
    }
    for expected in [
        "cpor",
        "cpor-domain",
        "cpor-engine",
        "cpor-jcs",
        "cpor-log",
        "cpor-nats",
        "cpor-testkit",
    ] {
        assert!(
            packages.contains_key(expected),
            "crate {expected} is missing under {}",
            dir.display()
        );
    }
    packages
}

/// The crates under `crates/` and the tests package.
fn all_packages() -> Vec<Package> {
    let mut packages: Vec<Package> = crates().into_values().collect();
    packages.push(Package::load(&root().join("tests")));
    packages
}

/// Every `.rs` file under `dir`, recursively, sorted.
pub(super) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("read dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `path` relative to the workspace root, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// `file:line: text` for every line of `text` containing `needle`.
fn lines_with(path: &Path, text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.contains(needle))
        .map(|(n, line)| format!("{}:{}: {}", shown(path), n + 1, line.trim()))
        .collect()
}

fn assert_no_violations(rule: &str, violations: &[String]) {
    assert!(
        violations.is_empty(),
        "{rule}; broken by:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn domain_depends_on_no_io_crate() {
    let crates = crates();
    let domain = &crates["cpor-domain"];
    let forbidden = ["tokio", "sled", "async-nats", "futures", "reqwest", "rand"];
    let violations: Vec<String> = domain
        .dependencies(SHIPPED_DEPENDENCY_KINDS)
        .into_iter()
        .filter(|(name, _)| forbidden.contains(&name.as_str()))
        .map(|(name, table)| format!("{}: {table} has {name}", shown(&domain.manifest_path)))
        .collect();
    assert_no_violations(
        &format!("cpor-domain does no IO: none of {forbidden:?} among its dependencies"),
        &violations,
    );
}

#[test]
fn domain_reads_no_clock_and_does_no_io() {
    let crates = crates();
    let domain = &crates["cpor-domain"];
    let forbidden = [
        "Utc::now",
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "thread_rng",
    ];
    let sources = domain.sources();
    assert!(!sources.is_empty(), "no sources found for cpor-domain");
    let mut violations = Vec::new();
    for path in &sources {
        let text = read(path);
        for needle in forbidden {
            violations.extend(lines_with(path, &text, needle));
        }
    }
    assert_no_violations(
        &format!(
            "cpor-domain reads no clock and does no IO: its sources never mention {forbidden:?} \
             (take the time as an argument)"
        ),
        &violations,
    );
}

/// Libraries return their fatal errors (`cpor_engine::Fatal`, exit code 70)
/// and the binaries decide how the process ends: no `process::exit` under
/// `crates/` but in the binaries' crates, where a library's caller could not
/// stop it, clean up or test it.
#[test]
fn only_the_binaries_exit_the_process() {
    let allowed = ["cpor", "cpor-bench"];
    let needle = "process::exit";
    let crates_dir = root().join("crates");
    let mut scanned = 0;
    let mut in_binaries = Vec::new();
    let mut violations = Vec::new();
    for path in rust_files(&crates_dir) {
        let text = read(&path);
        let krate = path
            .strip_prefix(&crates_dir)
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .unwrap_or_default();
        if allowed.contains(&krate.as_str()) {
            in_binaries.extend(lines_with(&path, &text, needle));
        } else {
            scanned += 1;
            violations.extend(lines_with(&path, &text, needle));
        }
    }
    assert!(
        scanned > 20,
        "only {scanned} library sources found under crates/"
    );
    // The rule reads the sources right: the binary's own use is found.
    assert!(
        !in_binaries.is_empty(),
        "no `{needle}` found in {allowed:?}: the scan does not see them"
    );
    assert_no_violations(
        &format!(
            "only the binaries {allowed:?} exit the process; libraries return a typed error \
             (e.g. cpor_engine::Fatal) for the binary to turn into an exit code"
        ),
        &violations,
    );
}

#[test]
fn canonical_json_is_a_leaf_crate() {
    let mut violations = Vec::new();
    let packages = crates();
    let jcs = &packages["cpor-jcs"];
    for (name, table) in jcs.dependencies(SHIPPED_DEPENDENCY_KINDS) {
        if name.starts_with("cpor") {
            violations.push(format!("{}: {table} has {name}", shown(&jcs.manifest_path)));
        }
    }
    // Spelled in two parts so this file does not match itself.
    let needle = concat!("cpor_log::", "canonical");
    let mut files: Vec<PathBuf> = packages.values().flat_map(|p| p.sources()).collect();
    files.extend(rust_files(&root().join("tests")));
    for path in files {
        violations.extend(lines_with(&path, &read(&path), needle));
    }
    assert_no_violations(
        "cpor-jcs depends on no workspace crate, and canonical JSON is reached through cpor_jcs",
        &violations,
    );
}

#[test]
fn only_cpor_log_names_sled() {
    let mut violations = Vec::new();
    for package in all_packages() {
        if package.name == "cpor-log" {
            continue;
        }
        for (name, table) in package.dependencies(ALL_DEPENDENCY_KINDS) {
            if name == "sled" {
                violations.push(format!(
                    "{}: {table} has sled",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    // Spelled in two parts so this file does not match itself.
    let needle = concat!("sled", "::");
    let mut files: Vec<PathBuf> = crates()
        .into_values()
        .filter(|p| p.name != "cpor-log")
        .flat_map(|p| p.sources())
        .collect();
    files.extend(rust_files(&root().join("tests")));
    for path in files {
        violations.extend(lines_with(&path, &read(&path), needle));
    }
    assert_no_violations(
        "only cpor-log depends on sled or names it in code (a `sled` path)",
        &violations,
    );
}

#[test]
fn only_cpor_nats_names_async_nats() {
    let allowed = ["cpor-nats", "cpor-bench", "cpor-tests"];
    let mut violations = Vec::new();
    for package in all_packages() {
        if allowed.contains(&package.name.as_str()) {
            continue;
        }
        for (name, table) in package.dependencies(ALL_DEPENDENCY_KINDS) {
            if name == "async-nats" {
                violations.push(format!(
                    "{}: {table} has async-nats",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    assert_no_violations(
        &format!("only {allowed:?} depend on async-nats"),
        &violations,
    );

    // The binary reaches NATS through `cpor_nats::connect` and the
    // crate's own types, never naming async-nats.
    let binary = &crates()["cpor"];
    let mut violations = Vec::new();
    for path in binary.sources() {
        let text = read(&path);
        for n in async_nats_lines(&text) {
            let line = text.lines().nth(n - 1).unwrap_or_default();
            violations.push(format!("{}:{n}: {}", shown(&path), line.trim()));
        }
    }
    let nats = &crates()["cpor-nats"];
    for path in nats.sources() {
        let text = read(&path);
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains("pub use async_nats") {
                violations.push(format!("{}:{}: {}", shown(&path), n + 1, line.trim()));
            }
        }
    }
    assert_no_violations(
        "crates/cpor/src names no async-nats item and cpor-nats does not re-export it \
         (use cpor_nats::connect and cpor_nats::connection)",
        &violations,
    );
}

/// Libraries record metrics through the IO-free `metrics` facade only; the
/// binary installs the Prometheus recorder and serves HTTP (axum).
#[test]
fn only_the_binary_exports_metrics_and_serves_http() {
    let allowed = ["cpor"];
    let mut violations = Vec::new();
    for package in crates().into_values() {
        if allowed.contains(&package.name.as_str()) {
            continue;
        }
        for (name, table) in package.dependencies(SHIPPED_DEPENDENCY_KINDS) {
            if ["metrics-exporter-prometheus", "axum", "hyper"].contains(&name.as_str()) {
                violations.push(format!(
                    "{}: {table} has {name}",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    assert_no_violations(
        "only the binary installs the metrics recorder and serves HTTP; libraries use the `metrics` facade",
        &violations,
    );
}

/// Packages that may take `cpor-testkit` as a normal dependency, with the
/// reason. Each must itself be `publish = false`: then no shipped artifact
/// holds test code.
const TESTKIT_AS_DEPENDENCY: &[(&str, &str)] = &[(
    "cpor-bench",
    "the benchmark harness is a test of the whole service run as a binary: it picks free ports \
     and the nats-server to start exactly as the tests do (issue 13 item 5)",
)];

fn is_unpublished(package: &Package) -> bool {
    package
        .manifest
        .get("package")
        .and_then(|p| p.get("publish"))
        .and_then(Value::as_bool)
        == Some(false)
}

#[test]
fn the_testkit_is_only_a_dev_dependency() {
    let mut violations = Vec::new();
    for package in all_packages() {
        let excepted = TESTKIT_AS_DEPENDENCY
            .iter()
            .any(|(name, _)| *name == package.name);
        if excepted && !is_unpublished(&package) {
            violations.push(format!(
                "{}: takes cpor-testkit as a dependency, so needs `publish = false`",
                shown(&package.manifest_path)
            ));
            continue;
        }
        if excepted {
            continue;
        }
        for (name, table) in package.dependencies(SHIPPED_DEPENDENCY_KINDS) {
            if name == "cpor-testkit" {
                violations.push(format!(
                    "{}: {table} has cpor-testkit",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    let testkit = &crates()["cpor-testkit"];
    if !is_unpublished(testkit) {
        violations.push(format!(
            "{}: no `publish = false`",
            shown(&testkit.manifest_path)
        ));
    }
    assert_no_violations(
        "cpor-testkit is test code: only in [dev-dependencies] (or of an unpublished harness in \
         TESTKIT_AS_DEPENDENCY), and `publish = false`",
        &violations,
    );
}

#[test]
fn anyhow_only_in_the_binaries() {
    let allowed = ["cpor", "cpor-bench"];
    let mut violations = Vec::new();
    for package in crates().into_values() {
        if allowed.contains(&package.name.as_str()) {
            continue;
        }
        for (name, table) in package.dependencies(SHIPPED_DEPENDENCY_KINDS) {
            if name == "anyhow" {
                violations.push(format!(
                    "{}: {table} has anyhow",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    assert_no_violations(
        &format!(
            "anyhow only in the binaries {allowed:?}; libraries return typed errors (thiserror)"
        ),
        &violations,
    );
}

/// The global allocator is the binaries' choice (jemalloc: see
/// `crates/cpor/src/main.rs`): no library depends on an allocator crate or
/// declares `#[global_allocator]`, since a program may have only one and a
/// library's tests bring their own (`cpor-bench`'s memory test links the
/// bench library with `stats_alloc` as its allocator). Test sources
/// (`tests/` dirs) may declare one for their own test binary.
#[test]
fn only_the_binaries_choose_the_allocator() {
    let binaries = ["crates/cpor/src/main.rs", "crates/cpor-bench/src/main.rs"];
    let allocator_crates = ["tikv-jemallocator", "tikv-jemalloc-sys", "mimalloc"];
    let needle = "#[global_allocator]";
    let mut violations = Vec::new();
    for package in crates().into_values() {
        let binary = ["cpor", "cpor-bench"].contains(&package.name.as_str());
        for (name, table) in package.dependencies(SHIPPED_DEPENDENCY_KINDS) {
            if !binary && allocator_crates.contains(&name.as_str()) {
                violations.push(format!(
                    "{}: {table} has {name}",
                    shown(&package.manifest_path)
                ));
            }
        }
    }
    let mut declared = Vec::new();
    for path in rust_files(&root().join("crates")) {
        let shown_path = shown(&path);
        if shown_path.split('/').any(|part| part == "tests") {
            continue;
        }
        let found = lines_with(&path, &read(&path), needle);
        if binaries.contains(&shown_path.as_str()) {
            declared.extend(found);
        } else {
            violations.extend(found);
        }
    }
    // The rule sees the binaries' own declarations: one in each.
    assert_eq!(
        declared.len(),
        binaries.len(),
        "one `{needle}` in each of {binaries:?}, found: {declared:?}"
    );
    assert_no_violations(
        &format!(
            "only the binaries {binaries:?} choose the global allocator; libraries use whatever \
             their binary picked"
        ),
        &violations,
    );
}

#[test]
fn no_test_is_ignored_or_passes_by_panicking() {
    // Spelled in parts so this file does not match itself.
    let needles = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let mut files = rust_files(&root().join("crates"));
    files.extend(rust_files(&root().join("tests")));
    assert!(!files.is_empty());
    let mut violations = Vec::new();
    for path in files {
        let text = read(&path);
        for needle in needles {
            violations.extend(lines_with(&path, &text, needle));
        }
    }
    assert_no_violations(
        &format!(
            "no {needles:?} in crates/ or tests/: a test that does not run proves nothing, and a \
             panic proves nothing about which check failed (assert on the error instead)"
        ),
        &violations,
    );
}

#[test]
fn every_crate_has_a_description_and_the_workspace_lints() {
    let mut violations = Vec::new();
    for package in all_packages() {
        let file = shown(&package.manifest_path);
        let description = package
            .manifest
            .get("package")
            .and_then(|p| p.get("description"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if description.trim().is_empty() {
            violations.push(format!("{file}: [package] has no description"));
        }
        let lints = package
            .manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(Value::as_bool);
        if lints != Some(true) {
            violations.push(format!("{file}: no `[lints] workspace = true`"));
        }
    }
    assert_no_violations(
        "every crate has a [package] description and `[lints] workspace = true`",
        &violations,
    );
}

/// The lines (1-based) of a source file that name async-nats: a path
/// `async_nats::…`, `use async_nats`, `extern crate async_nats`. Comments,
/// words containing the name and log filter strings
/// (`"info,async_nats=warn"`) do not count.
fn async_nats_lines(text: &str) -> Vec<usize> {
    const NAME: &str = "async_nats";
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut from = 0;
        while let Some(found) = code[from..].find(NAME) {
            let at = from + found;
            from = at + NAME.len();
            let before = &code[..at];
            let after = &code[from..];
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_')
                || after.starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '=')
            {
                continue; // part of another word, or a log filter
            }
            lines.push(n + 1);
            break;
        }
    }
    lines
}

#[test]
fn the_async_nats_rule_reads_paths_right() {
    let fine = "use cpor_nats::connection::ReadFrom;\n\
                let filter = \"info,async_nats=warn\"; // async_nats in a comment\n\
                let my_async_nats_thing = 1;\n";
    assert_eq!(async_nats_lines(fine), Vec::<usize>::new());
    let named = "use async_nats::jetstream;\nextern crate async_nats;\n\
                 let c = ::async_nats::connect(url);\nuse async_nats;\n\
                 let d = cpor_nats::async_nats::connect(url);\n\
                 fn f() { async_nats::connect(url); }\n";
    assert_eq!(async_nats_lines(named), vec![1, 2, 3, 4, 5, 6]);
}

/// The commands a shell script runs: its lines without comments and blanks.
fn script_commands(path: &Path) -> Vec<String> {
    read(path)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn ci_checks_format_and_lints() {
    let ci = root().join(".ci/run");
    let test = root().join("scripts/test");
    let mut violations = Vec::new();
    if !script_commands(&ci)
        .iter()
        .any(|line| line.starts_with("scripts/test"))
    {
        violations.push(format!("{}: does not run scripts/test", shown(&ci)));
    }
    let commands = script_commands(&test);
    let runs = |words: &[&str]| {
        commands
            .iter()
            .any(|line| words.iter().all(|word| line.contains(word)))
    };
    if !runs(&["cargo fmt", "--check"]) {
        violations.push(format!("{}: no `cargo fmt --check`", shown(&test)));
    }
    if !runs(&[
        "cargo clippy",
        "--workspace",
        "--all-targets",
        "-D warnings",
    ]) {
        violations.push(format!(
            "{}: no `cargo clippy --workspace --all-targets -- -D warnings`",
            shown(&test)
        ));
    }
    assert_no_violations(
        "CI checks formatting and runs clippy with warnings as errors (the workspace lints \
         only hold if something enforces them)",
        &violations,
    );
}

/// `scripts/test` ends with one line for the whole run, summed from every
/// test binary's `test result:` line, and still exits with cargo test's
/// status.
#[test]
fn scripts_test_ends_with_one_summary_line() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let summarize = |input: &str| -> String {
        let mut child = Command::new(root().join("scripts/test-summary"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run scripts/test-summary");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "scripts/test-summary failed");
        String::from_utf8(output.stdout).expect("UTF-8")
    };
    let cargo_output = "running 2 tests\n\
        test a ... ok\n\
        test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.10s\n\
        \n   Doc-tests cpor_log\n\nrunning 0 tests\n\
        test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
        test result: FAILED. 30 passed; 2 failed; 1 ignored; 0 measured; 5 filtered out; finished in 9.00s\n";
    let summed = summarize(cargo_output);
    assert_eq!(
        summed,
        format!("{cargo_output}42 passed, 2 failed, 1 skipped\n"),
        "the output passes through and one summary line ends it"
    );
    let build_error = "error[E0308]: mismatched types\n";
    assert_eq!(
        summarize(build_error),
        build_error,
        "no summary without test results"
    );

    let test = root().join("scripts/test");
    let commands = script_commands(&test);
    assert!(
        commands
            .iter()
            .any(|line| line.starts_with("cargo test") && line.ends_with("| scripts/test-summary")),
        "{}: cargo test's output does not go through scripts/test-summary",
        shown(&test)
    );
    assert!(
        commands.iter().any(|line| line.contains("PIPESTATUS[0]")),
        "{}: does not exit with cargo test's status",
        shown(&test)
    );
}

/// `cpor`'s subcommands print through `outln!`/`out!` (a `writeln!`/`write!`
/// to stdout whose error `main` turns into a quiet exit on a closed pipe),
/// never `println!`/`print!`, which panic when the reader has gone:
/// `cpor verify --data-dir D | head -0`.
#[test]
fn the_cli_never_panics_on_a_closed_pipe() {
    let src = root().join("crates/cpor/src");
    let mut violations = Vec::new();
    let mut uses = 0;
    for path in rust_files(&src) {
        let text = read(&path);
        uses += text.matches("outln!(").count();
        violations.extend(
            lines_with(&path, &text, "print")
                .into_iter()
                .filter(|line| {
                    line.replace("eprint", "").contains("print!(")
                        || line.replace("eprint", "").contains("println!(")
                }),
        );
    }
    // The rule reads the sources right: the macro's own uses are found.
    assert!(
        uses > 10,
        "only {uses} `outln!` found under {}",
        src.display()
    );
    assert_no_violations(
        "print to stdout with `outln!(…)?` or `out!(…)?`, not `println!`/`print!`: they panic on a closed pipe",
        &violations,
    );
}
