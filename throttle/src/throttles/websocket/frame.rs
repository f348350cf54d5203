//! The default `rate_limit` frame ([`default_frame`]).

use crate::Throttled;
use axum::extract::ws::Message;

/// The default `rate_limit` frame for a rejected message hit:
/// `{"type":"rate_limit","error":"Too many messages","retry_after":N}`, where N is
/// the wait in whole seconds rounded up, with the throttle's and the hit's
/// `frame_extra` fields appended in the order given (one named like a fixed field
/// replaces its value in place; with the `json` feature).
///
/// A [`message_handler`](crate::ThrottleBuilder::message_handler) can start from it.
///
/// ```
/// use axum::extract::ws::Message;
/// use throttle::{Throttled, websocket::default_frame};
///
/// fn frame_with_hint(throttled: &Throttled) -> Option<Message> {
///     let Message::Text(json) = default_frame(throttled) else { return None };
///     Some(Message::text(json.as_str().replace("Too many messages", "Too many messages, slow down")))
/// }
/// # let _ = frame_with_hint;
/// ```
pub fn default_frame(throttled: &Throttled) -> Message {
    let retry_after = itoa::Buffer::new().format(throttled.retry_after_secs()).to_string();
    // The fixed fields, as JSON text: no escaping is needed for any of them.
    #[cfg_attr(not(feature = "json"), allow(unused_mut))]
    let mut fields: Vec<(String, String)> = vec![
        (r#""type""#.into(), r#""rate_limit""#.into()),
        (r#""error""#.into(), r#""Too many messages""#.into()),
        (r#""retry_after""#.into(), retry_after),
    ];
    #[cfg(feature = "json")]
    for (name, value) in &throttled.rejection.frame_extras {
        // serde_json escapes every name and value.
        let name = serde_json::Value::String(name.clone()).to_string();
        let value = value.to_string();
        match fields.iter_mut().find(|(field, _)| *field == name) {
            Some(field) => field.1 = value,
            None => fields.push((name, value)),
        }
    }
    Message::text(object_in_order(fields))
}

/// A JSON object of already encoded names and values, in the given order. Written
/// here rather than through a `serde_json::Map` because that map sorts its keys
/// (unless serde_json's `preserve_order` feature is on, which would change every
/// serde_json user in the build), and the frame keeps the seed's order: `type`,
/// `error`, `retry_after`, then the extras.
fn object_in_order(fields: Vec<(String, String)>) -> String {
    let mut json = String::from("{");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&name);
        json.push(':');
        json.push_str(&value);
    }
    json.push('}');
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rejection::Rejection;

    fn throttled(wait_ms: u64, rejection: Rejection) -> Throttled {
        Throttled {
            uid: "t".into(),
            wait_ms,
            rate: crate::Rate::per_second(1),
            headers: Default::default(),
            context: Default::default(),
            handler: None,
            rejection: rejection.into(),
        }
    }

    #[cfg(feature = "json")]
    fn extras(fields: serde_json::Value) -> Rejection {
        let fields = fields.as_object().expect("an object").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Rejection { frame_extras: fields, ..Rejection::default() }
    }

    fn text(message: Message) -> String {
        match message {
            Message::Text(text) => text.as_str().to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn the_default_frame_is_exact() {
        let frame = text(default_frame(&throttled(49_001, Rejection::default())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":50}"#);
        let frame = text(default_frame(&throttled(1, Rejection::default())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":1}"#);
    }

    #[cfg(feature = "json")]
    #[test]
    fn extras_merge_after_and_replace_in_place() {
        let extras = extras(serde_json::json!({ "error": "slow \"down\"", "foo": "bar", "n": [1, 2] }));
        let frame = text(default_frame(&throttled(2_000, extras)));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"slow \"down\"","retry_after":2,"foo":"bar","n":[1,2]}"#);
    }

    #[cfg(feature = "json")]
    #[test]
    fn hostile_extras_stay_one_valid_object() {
        let extras = extras(serde_json::json!({ "\"}": "\u{0}\n\"]}", "type": { "nested": true } }));
        let frame = text(default_frame(&throttled(1_000, extras)));
        let parsed: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
        assert_eq!(parsed["\"}"], "\u{0}\n\"]}");
        assert_eq!(parsed["type"]["nested"], true);
        assert_eq!(parsed.as_object().map(|o| o.len()), Some(4));
    }
}
