//! Small NATS clients for people: `cpor request` sends one request and
//! prints the reply; `cpor watch` follows claim statuses like a dashboard.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use cpor_nats::connection::ReadFrom;

use crate::nats_flags::{NatsArgs, TOOL_CONNECT_WAIT};

/// How long `cpor request` waits for a reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
        println!("{}", serde_json::to_string_pretty(&value)?);
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
        // An ordered consumer from the start: every claim's current status
        // first (last-value stream), then live changes.
        let mut messages = nats
            .read_stream(&stream_name, ReadFrom::Start, Some(filter), "cpor watch")
            .await
            .context("is the service running with this prefix?")?;
        while let Some(message) = messages.next().await {
            let message = message?;
            let value: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_default();
            if args.events {
                println!(
                    "{:>6} {} {} {}",
                    value["position"],
                    value["time"].as_str().unwrap_or(""),
                    value["type"].as_str().unwrap_or(""),
                    value["subject"].as_str().unwrap_or("")
                );
            } else {
                println!(
                    "{} {:<24} v{} overdue={} case={}",
                    value["claim_id"].as_str().unwrap_or(""),
                    value["status"].as_str().unwrap_or(""),
                    value["version"],
                    value["overdue"],
                    value["arbitration_case_id"].as_str().unwrap_or("-")
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
