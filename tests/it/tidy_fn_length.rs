//! Tidy: functions a reader can hold (issue 13 item 3; TigerBeetle's style
//! guide puts the limit at 70 lines, so does the product owner's guide).
//!
//! Every non-test function in `crates/*/src` is at most [`FN_LINES_MAX`]
//! lines long, counted from the line of its `fn` keyword to the line of its
//! closing brace. Test code does not count: `tests.rs` files, `tests/`
//! directories, files included as `#[cfg(test)] mod x;` (and their
//! sub-modules), and any item under a `#[cfg(test)]` attribute. The vendored
//! async-nats (`vendor/`) is not under `crates/` and is not ours to shape.
//!
//! The source is read by a small scanner, not a parser: it blanks out
//! comments, string, raw-string and char literals (telling a char literal
//! from a lifetime), then matches braces. That is enough for this
//! workspace's code; `the_scanner_reads_rust_right` pins what it must get
//! right.
//!
//! [`ALLOWED`] names the functions that may stay longer, each with its
//! reason. The list only shrinks: an entry whose function is no longer over
//! the limit (split, renamed or deleted) fails the test until it is removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::tidy::{root, rust_files};

/// The most lines a non-test function may span, `fn` to closing brace.
const FN_LINES_MAX: usize = 70;

/// `(file under crates/, function name, reason)`: the functions allowed over
/// [`FN_LINES_MAX`]. A name covers every function of that name in the file.
/// Empty since the last "split pending (issue 13 item 3)" entries (the
/// relay's `run` and `resume_position`) were split.
const ALLOWED: &[(&str, &str, &str)] = &[];

/// One function found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Function {
    /// The name after `fn`.
    name: String,
    /// 1-based line of the `fn` keyword.
    line: usize,
    /// Lines from the `fn` keyword to the closing brace, both included.
    lines: usize,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `src` with every comment and string, raw-string, byte-string and char
/// literal replaced by spaces (newlines kept, so line numbers hold), one
/// `char` per source `char`. Lifetimes (`'a`, `'static`) are code.
fn mask(src: &str) -> Vec<char> {
    let s: Vec<char> = src.chars().collect();
    let mut out = s.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(s.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < s.len() {
        let end = match s[i] {
            '/' if s.get(i + 1) == Some(&'/') => {
                (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len())
            }
            '/' if s.get(i + 1) == Some(&'*') => block_comment_end(&s, i),
            '"' => quoted_end(&s, i, '"'),
            'r' if raw_string_start(&s, i) => raw_string_end(&s, i),
            '\'' => match char_literal_end(&s, i) {
                Some(end) => end,
                None => i + 1, // a lifetime: leave it
            },
            _ => i + 1,
        };
        if end > i + 1 {
            blank(&mut out, i, end);
        }
        i = end;
    }
    out
}

/// The index after the `*/` closing the (possibly nested) block comment
/// opening at `i`.
fn block_comment_end(s: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i < s.len() {
        if s[i] == '/' && s.get(i + 1) == Some(&'*') {
            depth += 1;
            i += 2;
        } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    s.len()
}

/// The index after the `close` ending the escaped literal opening at `i`.
fn quoted_end(s: &[char], i: usize, close: char) -> usize {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            '\\' => j += 2,
            c if c == close => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// Whether `r` at `i` opens a raw string (`r"`, `r#"`, `br"`): not the end
/// of an identifier, followed by `#`s and a quote.
fn raw_string_start(s: &[char], i: usize) -> bool {
    let before = i.checked_sub(1).map(|j| s[j]);
    let prefix_ok = match before {
        None => true,
        Some('b') => i < 2 || !is_ident(s[i - 2]),
        Some(c) => !is_ident(c),
    };
    let mut j = i + 1;
    while s.get(j) == Some(&'#') {
        j += 1;
    }
    prefix_ok && s.get(j) == Some(&'"')
}

/// The index after the raw string opening at `i` (`r##"…"##`).
fn raw_string_end(s: &[char], i: usize) -> usize {
    let mut j = i + 1;
    let mut hashes = 0;
    while s.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    j += 1; // the opening quote
    while j < s.len() {
        if s[j] == '"' && (1..=hashes).all(|k| s.get(j + k) == Some(&'#')) {
            return j + 1 + hashes;
        }
        j += 1;
    }
    s.len()
}

/// The index after the char literal opening at `i`, or `None` when the
/// quote starts a lifetime or a label (`'a`, `'outer:`).
fn char_literal_end(s: &[char], i: usize) -> Option<usize> {
    match s.get(i + 1)? {
        '\\' => Some(quoted_end(s, i, '\'')),
        _ if s.get(i + 2) == Some(&'\'') => Some(i + 3),
        _ => None,
    }
}

/// The index of the brace closing the one at `open` in masked code.
fn matching_brace(code: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, &c) in code.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    code.len().saturating_sub(1)
}

/// The end (exclusive) of the item starting at `from` in masked code: after
/// its `;` or its closing brace, whichever comes first outside parentheses
/// and brackets. With the index of the opening brace, if it has a body.
fn item_end(code: &[char], from: usize) -> (usize, Option<usize>) {
    let mut depth = 0i32;
    for (j, &c) in code.iter().enumerate().skip(from) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ';' if depth == 0 => return (j + 1, None),
            '{' if depth == 0 => return (matching_brace(code, j) + 1, Some(j)),
            _ => {}
        }
    }
    (code.len(), None)
}

fn starts_with_at(code: &[char], at: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, c)| code.get(at + k) == Some(&c))
}

/// Test code in masked code: the char ranges of items under a
/// `#[cfg(test)]` attribute, and the names of the modules included from
/// other files that way (`#[cfg(test)] mod schema_docs;`).
fn test_items(code: &[char]) -> (Vec<(usize, usize)>, Vec<String>) {
    const ATTRIBUTE: &str = "#[cfg(test)]";
    let mut ranges = Vec::new();
    let mut modules = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !starts_with_at(code, i, ATTRIBUTE) {
            i += 1;
            continue;
        }
        let from = i + ATTRIBUTE.chars().count();
        let (end, body) = item_end(code, from);
        if body.is_none() {
            let item: String = code[from..end - 1].iter().collect();
            let words: Vec<&str> = item.split_whitespace().collect();
            if let [.., "mod", name] = words.as_slice() {
                modules.push((*name).to_string());
            }
        }
        ranges.push((i, end));
        i = end;
    }
    (ranges, modules)
}

/// Every function with a body in `src` outside test items, and the names of
/// the test modules `src` includes from other files.
fn functions(src: &str) -> (Vec<Function>, Vec<String>) {
    let code = mask(src);
    let (tests, test_modules) = test_items(&code);
    let line_of = |at: usize| 1 + code[..at].iter().filter(|&&c| c == '\n').count();
    let mut found = Vec::new();
    for i in 0..code.len() {
        let keyword = starts_with_at(&code, i, "fn")
            && (i == 0 || !is_ident(code[i - 1]))
            && code.get(i + 2).is_some_and(|c| c.is_whitespace());
        if !keyword || tests.iter().any(|&(from, to)| (from..to).contains(&i)) {
            continue;
        }
        let name_at = (i + 2..code.len()).find(|&j| !code[j].is_whitespace());
        let name: String = name_at
            .map(|at| code[at..].iter().take_while(|&&c| is_ident(c)).collect())
            .unwrap_or_default();
        if name.is_empty() {
            continue; // a function pointer type, `fn (u8)`
        }
        if let (_, Some(open)) = item_end(&code, i) {
            let close = matching_brace(&code, open);
            found.push(Function {
                name,
                line: line_of(i),
                lines: line_of(close) - line_of(i) + 1,
            });
        }
    }
    (found, test_modules)
}

/// The directory holding the sub-modules of the module in `file`.
fn module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().expect("a file has a parent");
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "main.rs" | "mod.rs") => parent.to_path_buf(),
        _ => parent.join(file.file_stem().expect("a file has a stem")),
    }
}

/// Every non-test function in `crates/*/src`, with its file relative to
/// `crates/`.
fn production_functions() -> Vec<(String, Function)> {
    let crates = root().join("crates");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("read crates/") {
        files.extend(rust_files(
            &entry.expect("crates/ entry").path().join("src"),
        ));
    }
    assert!(!files.is_empty(), "no sources under {}", crates.display());
    let mut test_paths: BTreeSet<PathBuf> = BTreeSet::new();
    let mut parsed = Vec::new();
    for file in files {
        let src = std::fs::read_to_string(&file).expect("read source");
        let (found, test_modules) = functions(&src);
        for module in test_modules {
            test_paths.insert(module_dir(&file).join(format!("{module}.rs")));
            test_paths.insert(module_dir(&file).join(module));
        }
        parsed.push((file, found));
    }
    let is_test = |file: &Path| {
        let relative = file.strip_prefix(&crates).expect("under crates/");
        file.file_name().is_some_and(|n| n == "tests.rs")
            || relative
                .components()
                .skip(2)
                .any(|c| c.as_os_str() == "tests")
            || test_paths.iter().any(|t| file.starts_with(t))
    };
    let mut out = Vec::new();
    for (file, found) in parsed {
        if is_test(&file) {
            continue;
        }
        let shown = file.strip_prefix(&crates).expect("under crates/");
        let shown = shown.display().to_string();
        out.extend(found.into_iter().map(|f| (shown.clone(), f)));
    }
    out
}

#[test]
fn no_function_is_longer_than_a_reader_can_hold() {
    let functions = production_functions();
    assert!(
        functions.len() > 100,
        "only {} functions found: is the scanner broken?",
        functions.len()
    );
    let allowed = |file: &str, name: &str| ALLOWED.iter().any(|&(f, n, _)| f == file && n == name);
    let mut long = Vec::new();
    let mut over: BTreeSet<(String, String)> = BTreeSet::new();
    for (file, f) in &functions {
        if f.lines <= FN_LINES_MAX {
            continue;
        }
        over.insert((file.clone(), f.name.clone()));
        if !allowed(file, &f.name) {
            long.push(format!(
                "crates/{file}:{}: fn {} is {} lines",
                f.line, f.name, f.lines
            ));
        }
    }
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|&&(file, name, _)| !over.contains(&(file.to_string(), name.to_string())))
        .map(|&(file, name, _)| format!("({file:?}, {name:?}) is no longer over the limit"))
        .collect();
    assert!(
        long.is_empty(),
        "no non-test function in crates/*/src is over {FN_LINES_MAX} lines (split it by what it \
         decides; see ARCHITECTURE.md); over the limit:\n  {}",
        long.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "ALLOWED in tests/it/tidy_fn_length.rs only shrinks: remove\n  {}",
        stale.join("\n  ")
    );
    for &(file, name, reason) in ALLOWED {
        assert!(!reason.trim().is_empty(), "({file}, {name}) needs a reason");
    }
}

#[test]
fn the_scanner_reads_rust_right() {
    let src = r####"
fn one() {
    let s = "} { \" }";
    let c = '}';
    let e = '\'';
    let r = r#"}" { "#;
    // a } in a comment
    /* a { in /* a nested */ block } */
}
impl<'a> Thing<'a> {
    fn two(&'a self, f: fn(u8) -> u8) -> &'a str {
        'outer: loop {
            break 'outer;
        }
        let b = br"{";
        fn inner() {}
        ""
    }
    fn declared(&self);
}
#[cfg(test)]
mod tests {
    fn hidden() {}
}
#[cfg(test)]
mod schema_docs;
fn three() { let u = '€'; }
"####;
    let (found, test_modules) = functions(src);
    let summary: Vec<(&str, usize, usize)> = found
        .iter()
        .map(|f| (f.name.as_str(), f.line, f.lines))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("one", 2, 8),
            ("two", 11, 8),
            ("inner", 16, 1),
            ("three", 27, 1)
        ]
    );
    assert_eq!(test_modules, vec!["schema_docs".to_string()]);
}
