//! The command line's own surface (issue 12 item 6): shell completions that
//! a real bash completes with, a man page that groff renders, and one
//! `--log-format` for every subcommand, whose JSON lines carry the request
//! span's fields (`correlation_id`, issue 13 item 7).

use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::support::{cpor_bin, unique_prefix, NatsServer, Service, ServiceOptions};

/// `cpor ARGS`, run to its end.
fn cpor(args: &[&str]) -> Output {
    Command::new(cpor_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("CPOR_LOG_FORMAT")
        .stdin(Stdio::null())
        .output()
        .expect("run cpor")
}

fn stdout_of(args: &[&str]) -> String {
    let out = cpor(args);
    assert!(
        out.status.success(),
        "cpor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommands `cpor --help` lists (the source of truth for both
/// generators, so a new subcommand is checked without editing this test).
fn subcommands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let listed: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .expect("cpor --help lists its commands")
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    for expected in ["serve", "verify", "repair-stream", "completions", "man"] {
        assert!(listed.iter().any(|n| n == expected), "{listed:?}");
    }
    listed
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn bash_completion_completes_subcommands_and_flags() {
    let script = stdout_of(&["completions", "bash"]);
    for name in subcommands() {
        assert!(script.contains(&name), "the bash script never names {name}");
    }
    if !has("bash") {
        eprintln!("SKIPPED the bash run: no bash on this machine");
        return;
    }
    // Source the script in a real bash and ask it, as bash's completion
    // machinery would, to complete `cpor re` and `cpor serve --log-f`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpor.bash");
    std::fs::write(&path, &script).unwrap();
    let complete = |words: &str| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); \
             _cpor cpor \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let out = Command::new("bash")
            .args(["-c", &program])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        words.sort();
        words
    };
    let mut starting_re: Vec<String> = subcommands()
        .into_iter()
        .filter(|n| n.starts_with("re"))
        .collect();
    starting_re.sort();
    assert!(starting_re.len() >= 4, "{starting_re:?}");
    assert_eq!(complete("cpor re"), starting_re, "completing `cpor re`");
    assert_eq!(complete("cpor serve --log-f"), ["--log-format"]);
    assert_eq!(complete("cpor completions f"), ["fish"]);
}

#[test]
fn other_shells_get_scripts_and_unknown_ones_are_refused() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains("repair-stream"), "{shell}: {script}");
    }
    let out = cpor(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("possible values"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn man_page_is_roff_that_groff_renders_with_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH cpor 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    let names = subcommands();
    for name in &names {
        assert!(
            page.contains(&format!("cpor\\-{}", name.replace('-', "\\-"))),
            "the man page does not list {name}"
        );
    }
    // One page per subcommand in a directory.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("man1");
    stdout_of(&["man", "--out-dir", out_dir.to_str().unwrap()]);
    for name in &names {
        let path = out_dir.join(format!("cpor-{name}.1"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
    let serve = std::fs::read_to_string(out_dir.join("cpor-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-data\\-dir"), "{serve}");

    if !has("groff") {
        eprintln!("SKIPPED the groff rendering: no groff on this machine");
        return;
    }
    let mut groff = Command::new("groff")
        .args(["-k", "-man", "-Tutf8", "-ww", "-P-cbou"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    groff
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = groff.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SUBCOMMANDS"), "{text}");
    assert!(text.contains("cpor-repair-stream(1)"), "{text}");
}

#[test]
fn log_format_is_shared_by_every_subcommand() {
    // Accepted before and after the subcommand, by any of them, and
    // refused with the possible values when unknown.
    for args in [
        &["--log-format", "json", "keys", "--help"][..],
        &["verify", "--log-format", "text", "--help"],
        &["export", "--log-format", "human", "--help"],
    ] {
        stdout_of(args);
    }
    let out = cpor(&["--log-format", "xml", "completions", "bash"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[possible values: text, json]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--log-format json` on `serve`: every line is one JSON object, and a
/// request's lines carry its span with `subject` and `correlation_id`, for
/// commands and queries alike.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_request_span_and_correlation_id() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut opts = ServiceOptions::new(nats.url(), &prefix);
    opts.extra_args = vec!["--log-format".into(), "json".into()];
    opts.env = vec![("RUST_LOG".into(), "info,cpor_nats=debug".into())];
    let service = Service::start(opts).await;
    let actor = json!({"type": "partner", "partner_id": "P-100", "user": "a@p.example", "roles": ["incentives_admin"]});
    let command = json!({
        "command_id": uuid::Uuid::new_v4(), "actor": actor, "correlation_id": "corr-cmd-71",
        "claim_id": uuid::Uuid::new_v4(),
    });
    let reply = crate::support::request(
        service.client(),
        &service.subject("cmd.partner.P-100.withdraw"),
        command.to_string(),
    )
    .await;
    assert_eq!(reply["error"]["code"], "CLAIM_NOT_FOUND", "{reply}");
    let query =
        json!({"actor": actor, "correlation_id": "corr-qry-72", "claim_id": uuid::Uuid::new_v4()});
    let reply = crate::support::request(
        service.client(),
        &service.subject("qry.partner.P-100.claim.get"),
        query.to_string(),
    )
    .await;
    assert_eq!(reply["error"]["code"], "CLAIM_NOT_FOUND", "{reply}");

    let wanted = [
        ("command", "corr-cmd-71", "cmd.partner.P-100.withdraw"),
        ("query", "corr-qry-72", "qry.partner.P-100.claim.get"),
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(service.log_path()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.starts_with("=== test runner"))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let found = |(name, correlation, subject): (&str, &str, &str)| {
            lines.iter().any(|l| {
                l["span"]["name"] == name
                    && l["span"]["correlation_id"] == correlation
                    && l["span"]["subject"] == subject
                    && l["fields"]["message"] == "refused"
            })
        };
        if wanted.into_iter().all(found) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `refused` line in the command's and the query's span with their correlation_id:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
