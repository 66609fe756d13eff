//! Small NATS clients for people: `cpor request` sends one request and
//! prints the reply; `cpor watch` follows claim statuses like a dashboard.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use cpor_nats::connection::ReadFrom;

use crate::audit::terminal_safe;
use crate::nats_flags::{NatsArgs, TOOL_CONNECT_WAIT};

/// How long `cpor request` waits for a reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `cpor watch` looks again for a stream the service has not
/// created yet.
const WATCH_STREAM_RETRY: Duration = Duration::from_secs(1);

#[derive(Args, Debug)]
pub(crate) struct RequestArgs {
    /// Subject after the prefix, e.g. `cmd.ref.tenant` or `qry.claims.list`.
    subject: String,
    /// JSON body; `command_id` is added (a fresh uuid) to `cmd.*` requests without one.
    #[arg(default_value = "{}")]
    body: String,
    #[command(flatten)]
    nats: NatsArgs,
    #[arg(long, env = "CPOR_PREFIX", default_value = "cpor")]
    prefix: String,
    /// Print the facts a reader follows instead of the JSON reply: refusal
    /// code and message; claim, partner, status, reason; event types.
    #[arg(long)]
    brief: bool,
}

#[derive(Args, Debug)]
pub(crate) struct WatchArgs {
    /// Follow events (`{prefix}.evt.>`) instead of claim statuses.
    #[arg(long)]
    events: bool,
    /// Follow only this partner's claim statuses
    /// (`{prefix}.status.claim.{partner_id}.>`, contract v1.1 §5).
    #[arg(long, conflicts_with = "events", value_parser = partner_id)]
    partner: Option<String>,
    /// Print each view (or event) as it is published: one JSON object per
    /// line, for programs.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    nats: NatsArgs,
    #[arg(long, env = "CPOR_PREFIX", default_value = "cpor")]
    prefix: String,
}

/// A partner id as subjects carry it (contract §2: `^[A-Za-z0-9_-]{1,64}$`).
fn partner_id(value: &str) -> Result<String, String> {
    if cpor_nats::wire::is_subject_id(value) {
        Ok(value.to_string())
    } else {
        Err("a partner id matches ^[A-Za-z0-9_-]{1,64}$".into())
    }
}

pub(crate) fn request(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut body: serde_json::Value =
            serde_json::from_str(&args.body).context("the body is not JSON")?;
        if args.subject.starts_with("cmd.") {
            if let Some(map) = body.as_object_mut() {
                map.entry("command_id")
                    .or_insert_with(|| uuid::Uuid::new_v4().to_string().into());
            }
        }
        let nats = cpor_nats::connect(&args.nats.options("cpor request", Some(TOOL_CONNECT_WAIT))?)
            .await?;
        let subject = format!("{}.{}", args.prefix, args.subject);
        let reply = nats
            .request(&subject, serde_json::to_vec(&body)?, REQUEST_TIMEOUT)
            .await
            .context("request failed (is `cpor serve` running with this prefix?)")?;
        let value: serde_json::Value = serde_json::from_slice(&reply)?;
        // writeln!, not println!: a closed pipe (`cpor request … | head -0`)
        // is an error main() treats as success, not a panic.
        let mut out = std::io::stdout().lock();
        if args.brief {
            writeln!(out, "{}", brief(&value))?;
        } else {
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        Ok(if value.get("ok") == Some(&serde_json::Value::Bool(true)) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

pub(crate) fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let nats =
            cpor_nats::connect(&args.nats.options("cpor watch", Some(TOOL_CONNECT_WAIT))?).await?;
        let upper = args.prefix.to_uppercase();
        let (stream_name, filter) = if args.events {
            (format!("{upper}_EVENTS"), format!("{}.evt.>", args.prefix))
        } else {
            let owner = args.partner.as_deref().unwrap_or("*");
            (
                format!("{upper}_STATUS"),
                format!("{}.status.claim.{owner}.>", args.prefix),
            )
        };
        wait_for_stream(&nats, &stream_name, &args.prefix, &args.nats.nats_url).await?;
        // An ordered consumer: for statuses, the last view of every claim
        // first, then live changes; for events, the whole log, then live.
        let from = if args.events {
            ReadFrom::Start
        } else {
            ReadFrom::LastPerSubject
        };
        let mut messages = nats
            .read_stream(&stream_name, from, Some(filter), "cpor watch")
            .await?;
        if !args.json {
            let mut out = std::io::stdout().lock();
            if args.events {
                writeln!(
                    out,
                    "{:>8}  {:<20}  {:<28}  SUBJECT",
                    "POSITION", "TIME", "TYPE"
                )?;
            } else {
                writeln!(
                    out,
                    "{:<36}  {:<10}  {:<23}  {:>7}  {:<7}  CASE",
                    "CLAIM", "PARTNER", "STATUS", "VERSION", "OVERDUE"
                )?;
            }
        }
        while let Some(message) = messages.next().await {
            let message = message?;
            let value: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            let line = if args.json {
                serde_json::to_string(&value)?
            } else if args.events {
                event_line(&value)
            } else {
                view_line(&value)
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Returns once `stream` exists: until the service has created it, says so
/// on stderr (once, naming the server `url`: a watch on the wrong server
/// waits forever) and looks again every [`WATCH_STREAM_RETRY`]. Other
/// errors (no JetStream, no permission) end the watch.
async fn wait_for_stream(
    nats: &cpor_nats::Nats,
    stream: &str,
    prefix: &str,
    url: &str,
) -> anyhow::Result<()> {
    let mut said = false;
    while !nats.stream_exists(stream).await? {
        if !said {
            eprintln!(
                "cpor watch: no stream {stream} yet at {url} (no `cpor serve --prefix {prefix}` \
                 has created it on this server; set --nats-url or CPOR_NATS_URL to the \
                 service's); waiting, looking again every {} s",
                WATCH_STREAM_RETRY.as_secs()
            );
            said = true;
        }
        tokio::time::sleep(WATCH_STREAM_RETRY).await;
    }
    if said {
        eprintln!("cpor watch: stream {stream} is there; watching");
    }
    Ok(())
}

/// One claim view as a table row.
fn view_line(view: &serde_json::Value) -> String {
    // Whatever is on the stream is escaped for the terminal (issue 11 case 14).
    let text = |key: &str| terminal_safe(view[key].as_str().unwrap_or("-"));
    format!(
        "{:<36}  {:<10}  {:<23}  {:>7}  {:<7}  {}",
        text("claim_id"),
        text("partner_id"),
        text("status"),
        // `Value`'s Display ignores width and alignment: format a String.
        view["version"].to_string(),
        view["overdue"].to_string(),
        text("arbitration_case_id"),
    )
}

/// One CloudEvent as a table row.
fn event_line(event: &serde_json::Value) -> String {
    format!(
        "{:>8}  {:<20}  {:<28}  {}",
        event["position"],
        terminal_safe(event["time"].as_str().unwrap_or("")),
        terminal_safe(event["type"].as_str().unwrap_or("")),
        terminal_safe(event["subject"].as_str().unwrap_or(""))
    )
}

/// A reply in the words a reader follows, one line per claim:
/// - refused: `refused CODE: message [reasons: …]`;
/// - a command: `ok claim ID v3: claim.submitted, … (duplicate) [warning: …]`;
/// - `qry.claim.get`: the claim's line; `qry.claims.list`: one per claim;
/// - anything else (health, arbitration): the reply as one line of JSON.
fn brief(reply: &Value) -> String {
    if reply["ok"] == Value::Bool(false) {
        return brief_refusal(&reply["error"]);
    }
    if reply["claim"].is_object() {
        return brief_claim(&reply["claim"]);
    }
    if let Some(claims) = reply["claims"].as_array() {
        if claims.is_empty() {
            return "no claims".into();
        }
        return claims
            .iter()
            .map(brief_claim)
            .collect::<Vec<_>>()
            .join("\n");
    }
    if let Some(events) = reply["events"]
        .as_array()
        .filter(|e| e.iter().all(Value::is_string))
    {
        return brief_accepted(reply, events);
    }
    reply.to_string()
}

/// A string of a reply, `-` when absent, escaped for the terminal like
/// watch's rows (issue 11 case 14).
fn text(value: &Value) -> String {
    terminal_safe(value.as_str().unwrap_or("-"))
}

/// `refused CODE: message [reasons: …]` (the reasons only when they say
/// more than the code).
fn brief_refusal(error: &Value) -> String {
    let mut line = format!(
        "refused {}: {}",
        text(&error["code"]),
        text(&error["message"])
    );
    let reasons: Vec<String> = error["reasons"]
        .as_array()
        .map(|list| list.iter().map(text).collect())
        .unwrap_or_default();
    if reasons.len() > 1 || reasons.first().is_some_and(|r| *r != text(&error["code"])) {
        line.push_str(&format!(" [reasons: {}]", reasons.join(", ")));
    }
    line
}

/// One claim: id, partner, status, and the reason, overdue flag and
/// arbitration case when there are any.
fn brief_claim(claim: &Value) -> String {
    let mut line = format!(
        "claim {}  partner {}  {}",
        text(&claim["claim_id"]),
        text(&claim["partner_id"]),
        text(&claim["status"])
    );
    if !claim["reason"].is_null() {
        line.push_str(&format!(" ({})", text(&claim["reason"])));
    }
    if claim["overdue"] == Value::Bool(true) {
        line.push_str("  overdue");
    }
    if !claim["arbitration_case_id"].is_null() {
        line.push_str(&format!(
            "  in arbitration case {}",
            text(&claim["arbitration_case_id"])
        ));
    }
    line
}

/// An accepted command: `ok claim ID v3: claim.submitted, … (duplicate)
/// [warning: …]`.
fn brief_accepted(reply: &Value, events: &[Value]) -> String {
    let mut line = String::from("ok");
    if !reply["claim_id"].is_null() {
        line.push_str(&format!(
            " claim {} v{}",
            text(&reply["claim_id"]),
            reply["version"]
        ));
    }
    let events: Vec<String> = events.iter().map(text).collect();
    line.push_str(&format!(
        ": {}",
        if events.is_empty() {
            "no events".to_string()
        } else {
            events.join(", ")
        }
    ));
    if reply["duplicate"] == Value::Bool(true) {
        line.push_str(" (duplicate: the stored reply)");
    }
    for warning in reply["warnings"].as_array().into_iter().flatten() {
        line.push_str(&format!(
            " [warning: {}]",
            warning
                .as_str()
                .map_or_else(|| warning.to_string(), str::to_string)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn watch_rows_escape_what_the_stream_holds() {
        let forged = "P-1\n00000000-0000-0000-0000-000000000000  P-2  approved\u{1b}[32m";
        let view = serde_json::json!({"claim_id": "c", "partner_id": forged, "status": "submitted",
                                      "version": 1, "overdue": false});
        let event =
            serde_json::json!({"position": 1, "time": "t\r", "type": forged, "subject": "\u{9b}"});
        for line in [view_line(&view), event_line(&event)] {
            assert!(!line.chars().any(char::is_control), "{line:?}");
            assert!(line.contains("P-1\\n"), "{line:?}");
        }
    }

    #[test]
    fn brief_says_the_facts() {
        assert_eq!(
            brief(
                &json!({"ok": false, "error": {"code": "DOMAIN_TENANT_MISMATCH",
                "message": "The domain fabrikam.com is not one of the tenant's.",
                "reasons": ["DOMAIN_TENANT_MISMATCH"]}})
            ),
            "refused DOMAIN_TENANT_MISMATCH: The domain fabrikam.com is not one of the tenant's."
        );
        assert_eq!(
            brief(
                &json!({"ok": false, "error": {"code": "SUBSCRIPTION_NOT_ELIGIBLE",
                "message": "m", "reasons": ["A", "B"]}})
            ),
            "refused SUBSCRIPTION_NOT_ELIGIBLE: m [reasons: A, B]"
        );
        assert_eq!(
            brief(&json!({"ok": true, "claim_id": "c1", "version": 2,
                "events": ["claim.submitted", "arbitration.opened"], "warnings": [], "duplicate": false})),
            "ok claim c1 v2: claim.submitted, arbitration.opened"
        );
        assert_eq!(brief(&json!({"ok": true, "events": []})), "ok: no events");
        let claim = json!({"claim_id": "c1", "partner_id": "P-100", "status": "rejected",
            "reason": "LOST_ARBITRATION", "overdue": false, "arbitration_case_id": "k1"});
        assert_eq!(
            brief(&json!({"ok": true, "claim": claim, "comments": []})),
            "claim c1  partner P-100  rejected (LOST_ARBITRATION)  in arbitration case k1"
        );
        let other = json!({"claim_id": "c2", "partner_id": "P-300", "status": "submitted",
            "reason": null, "overdue": true, "arbitration_case_id": null});
        assert_eq!(
            brief(&json!({"ok": true, "claims": [claim, other], "next": null})),
            "claim c1  partner P-100  rejected (LOST_ARBITRATION)  in arbitration case k1\n\
             claim c2  partner P-300  submitted  overdue"
        );
        assert_eq!(
            brief(&json!({"ok": true, "log_position": 3})),
            r#"{"log_position":3,"ok":true}"#
        );
    }
}
