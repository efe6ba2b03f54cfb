//! What a delivery says: the topic from the path (`services.updated`) and the event in the
//! body. Both parse into types that are valid by construction; the body is only parsed after
//! its signature has been verified.

use std::fmt;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::catalog::is_plausible_id;
use crate::domain::{Resource, Resources};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Deleted,
    /// `bookings.cancelled` only.
    Cancelled,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A declared catalog resource: its item and list are invalidated.
    Catalog(Resource),
    /// `bookings`: a slot was taken or freed; availability is invalidated (CONTRACT §13).
    Bookings,
    /// A resource this instance does not declare: recorded and answered `ignored` (§6).
    Undeclared(String),
}

/// `{resource}.{event}`: what changed in Biz. Every catalog action is handled the same way
/// (the item and its list are invalidated; the next read asks Biz, which also answers a
/// deleted item's 404), but the topic must still match the body's `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub subject: Subject,
    pub action: Action,
}

/// Longest undeclared resource segment recorded as such.
const MAX_UNDECLARED: usize = 64;

impl Topic {
    /// The error is a `detail` for the 400 answer (only given once the signature checked out).
    pub fn parse(resources: &Resources, resource: &str, action: &str) -> Result<Self, String> {
        let subject = if resource == "bookings" {
            Subject::Bookings
        } else if let Some(r) = resources.parse(resource) {
            Subject::Catalog(r)
        } else if resource.len() <= MAX_UNDECLARED && is_plausible_id(resource) {
            Subject::Undeclared(resource.to_string())
        } else {
            return Err("the resource in the path is not a resource name".into());
        };
        let action = match (&subject, action) {
            (_, "created") => Action::Created,
            (_, "updated") => Action::Updated,
            (Subject::Bookings, "cancelled") => Action::Cancelled,
            (Subject::Catalog(_) | Subject::Undeclared(_), "deleted") => Action::Deleted,
            (Subject::Bookings, _) => {
                return Err("booking events are `created`, `updated` or `cancelled`".into());
            }
            _ => return Err("catalog events are `created`, `updated` or `deleted`".into()),
        };
        Ok(Self { subject, action })
    }

    fn resource(&self) -> &str {
        match &self.subject {
            Subject::Catalog(r) => r.as_str(),
            Subject::Bookings => "bookings",
            Subject::Undeclared(name) => name,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.resource(), self.action.as_str())
    }
}

/// A delivery's body, checked against its path and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Equal to the `webhook-id` header.
    pub id: String,
    pub topic: Topic,
    pub business_id: String,
    pub item_id: String,
    pub occurred_at_ms: i64,
}

#[derive(Deserialize)]
struct Body {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    business_id: String,
    occurred_at: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    id: String,
}

impl WebhookEvent {
    /// Parses the raw body of a delivery to `topic` whose `webhook-id` was `webhook_id`. The
    /// error is a `detail` for the 400 answer.
    pub fn parse(topic: &Topic, webhook_id: &str, body: &[u8]) -> Result<Self, String> {
        let body: Body = serde_json::from_slice(body)
            .map_err(|e| format!("the webhook body is not a valid event: {e}"))?;
        if body.id != webhook_id {
            return Err("`id` must equal the webhook-id header".into());
        }
        if !is_plausible_id(&body.id) {
            return Err("`id` must be 1 to 128 printable ASCII characters".into());
        }
        if body.event_type != topic.to_string() {
            return Err(format!("`type` must be \"{topic}\" to match the path"));
        }
        if !is_plausible_id(&body.business_id) {
            return Err("`business_id` must be 1 to 128 printable ASCII characters".into());
        }
        if !is_plausible_id(&body.data.id) {
            return Err("`data.id` must be 1 to 128 printable ASCII characters".into());
        }
        let occurred_at = OffsetDateTime::parse(&body.occurred_at, &Rfc3339)
            .map_err(|_| "`occurred_at` must be an RFC 3339 date-time".to_string())?;
        Ok(Self {
            id: body.id,
            topic: topic.clone(),
            business_id: body.business_id,
            item_id: body.data.id,
            occurred_at_ms: (occurred_at.unix_timestamp_nanos() / 1_000_000) as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn topic() -> Topic {
        Topic::parse(&Resources::defaults(), "services", "updated").unwrap()
    }

    fn body() -> Value {
        json!({"id": "evt_1", "type": "services.updated", "business_id": "biz_demo",
               "occurred_at": "2026-11-21T10:00:00Z", "data": {"id": "svc_1"}})
    }

    fn parse(body: &Value) -> Result<WebhookEvent, String> {
        WebhookEvent::parse(&topic(), "evt_1", body.to_string().as_bytes())
    }

    #[test]
    fn topics_are_resource_dot_action() {
        let r = Resources::defaults();
        let parse = |res, ev| Topic::parse(&r, res, ev);
        assert_eq!(topic().to_string(), "services.updated");
        assert_eq!(
            parse("staff", "deleted").unwrap().to_string(),
            "staff.deleted"
        );
        assert_eq!(
            parse("clients", "updated").unwrap().subject,
            Subject::Undeclared("clients".into())
        );
        assert_eq!(
            parse("bookings", "cancelled").unwrap().subject,
            Subject::Bookings
        );
        assert!(parse("bookings", "deleted").is_err());
        assert!(parse("services", "cancelled").is_err());
        assert!(parse("services", "archived").is_err());
        assert!(parse("clients", "archived").is_err());
        assert!(parse("a b", "updated").is_err());
    }

    #[test]
    fn a_well_formed_event_parses() {
        let event = parse(&body()).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.business_id, "biz_demo");
        assert_eq!(event.item_id, "svc_1");
        assert_eq!(event.occurred_at_ms, 1_795_255_200_000);
        // Unknown fields are Biz's business, not an error.
        let mut extra = body();
        extra["data"]["name"] = json!("Haircut");
        extra["version"] = json!(2);
        assert!(parse(&extra).is_ok());
    }

    #[test]
    fn every_broken_field_is_named() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|b| b["id"] = json!("evt_2")), "webhook-id"),
            (Box::new(|b| b["type"] = json!("services.deleted")), "type"),
            (Box::new(|b| b["type"] = json!("staff.updated")), "type"),
            (Box::new(|b| b["business_id"] = json!("")), "business_id"),
            (Box::new(|b| b["data"]["id"] = json!(42)), "invalid type"),
            (Box::new(|b| b["data"]["id"] = json!("a b")), "data.id"),
            (
                Box::new(|b| b["data"]["id"] = json!("x".repeat(129))),
                "data.id",
            ),
            (Box::new(|b| b["data"] = json!({})), "missing field `id`"),
            (
                Box::new(|b| b["occurred_at"] = json!("yesterday")),
                "occurred_at",
            ),
            (
                Box::new(|b| {
                    b.as_object_mut().unwrap().remove("business_id");
                }),
                "missing field `business_id`",
            ),
        ];
        for (change, named) in cases {
            let mut b = body();
            change(&mut b);
            let err = parse(&b).unwrap_err();
            assert!(err.contains(named), "{b}: {err}");
        }
        assert!(WebhookEvent::parse(&topic(), "evt_1", b"not json").is_err());
        assert!(WebhookEvent::parse(&topic(), "evt_1", b"[]").is_err());
    }
}
