//! Claim statuses: the last-value copy of each claim's view that the relay
//! publishes once the events it reflects are in the events stream.

use super::window::{ClaimVersions, EventHead};
use super::{status_subject, Relay, RELAY_WINDOW_EVENTS};

impl Relay {
    /// Publishes the current status of every claim that the events after
    /// `from` up to `to` touched, a window of events at a time.
    pub(super) async fn republish_statuses(
        &self,
        from: u64,
        to: u64,
    ) -> Result<(), async_nats::Error> {
        let mut from = from;
        while from < to {
            let mut claims = ClaimVersions::new();
            let mut last = to;
            for entry in self.reader.events_from(from + 1).take(RELAY_WINDOW_EVENTS) {
                let (position, bytes) = entry?;
                if position > to {
                    break;
                }
                let head: EventHead<'_> = serde_json::from_slice(&bytes)?;
                head.note_claim(&mut claims);
                last = position;
            }
            self.publish_statuses(claims).await?;
            from = last;
        }
        Ok(())
    }

    /// Publishes the current ClaimView of each claim and awaits the acks.
    ///
    /// The stored view may already include a batch the writer has applied
    /// but not yet flushed. Publishing it would publish an unflushed write,
    /// so a view whose version is ahead of the claim's last published event
    /// is skipped here: that later event is published in a later window,
    /// and the view with it. (Every change to a claim's view is a claim
    /// event; arbitration outcomes come with one on each claim.)
    pub(super) async fn publish_statuses(
        &self,
        claims: ClaimVersions,
    ) -> Result<(), async_nats::Error> {
        let mut status_acks = Vec::with_capacity(claims.len());
        for (claim_id, published_version) in claims {
            let Ok(id) = claim_id.parse::<uuid::Uuid>() else {
                continue;
            };
            let Some(view) = self.reader.claim_view(&id)? else {
                continue;
            };
            if view.version > published_version {
                continue;
            }
            let subject = status_subject(&self.prefix, &view.partner_id, &claim_id);
            // Through a `Value`: members in key order, the bytes the status
            // stream has always carried (and `qry.claim.get` answers).
            let payload = serde_json::to_vec(&serde_json::to_value(&view)?)?;
            status_acks.push(self.js.publish(subject, payload.into()).await?);
        }
        for ack in status_acks {
            ack.await?;
        }
        Ok(())
    }
}
