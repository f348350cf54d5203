//! The default `rate_limit` frame ([`default_frame`]).

use crate::Throttled;
use axum::extract::ws::Message;
use serde_json::Value;

/// The default `rate_limit` frame for a rejected message hit:
/// `{"type":"rate_limit","error":"Too many messages","retry_after":N}`, where N is
/// the wait in whole seconds rounded up, with the entries of the context's `extras`
/// object appended in the object's key order (an entry named like a fixed field
/// replaces its value in place). An `extras` that is not an object is ignored.
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
    let seconds = throttled.retry_after_secs();
    let mut fields: Vec<(String, Value)> = vec![
        ("type".into(), Value::from("rate_limit")),
        ("error".into(), Value::from("Too many messages")),
        ("retry_after".into(), Value::from(seconds)),
    ];
    if let Some(Value::Object(extras)) = throttled.context.get("extras") {
        for (name, value) in extras {
            match fields.iter_mut().find(|(field, _)| field == name) {
                Some(field) => field.1 = value.clone(),
                None => fields.push((name.clone(), value.clone())),
            }
        }
    }
    Message::text(object_in_order(fields))
}

/// A JSON object with its keys in the given order. Written here rather than through a
/// `serde_json::Map` because that map sorts its keys (unless serde_json's
/// `preserve_order` feature is on, which would change every serde_json user in the
/// build), and the frame keeps the seed's order: `type`, `error`, `retry_after`, then
/// the extras. serde_json still escapes every key and value.
fn object_in_order(fields: Vec<(String, Value)>) -> String {
    let mut json = String::from("{");
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&Value::String(name).to_string());
        json.push(':');
        json.push_str(&value.to_string());
    }
    json.push('}');
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    fn throttled(wait_ms: u64, context: Context) -> Throttled {
        Throttled {
            uid: "t".into(),
            wait_ms,
            rate: crate::Rate::per_second(1),
            headers: Default::default(),
            context: context.into(),
            handler: None,
        }
    }

    fn text(message: Message) -> String {
        match message {
            Message::Text(text) => text.as_str().to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn the_default_frame_is_exact() {
        let frame = text(default_frame(&throttled(49_001, Context::new())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":50}"#);
        let frame = text(default_frame(&throttled(1, Context::new())));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"Too many messages","retry_after":1}"#);
    }

    #[test]
    fn extras_merge_after_and_replace_in_place() {
        let extras = serde_json::json!({ "foo": "bar", "error": "slow \"down\"", "n": [1, 2] });
        let frame = text(default_frame(&throttled(2_000, Context::new().with("extras", extras))));
        assert_eq!(frame, r#"{"type":"rate_limit","error":"slow \"down\"","retry_after":2,"foo":"bar","n":[1,2]}"#);
        let ignored = text(default_frame(&throttled(2_000, Context::new().with("extras", "not an object"))));
        assert_eq!(ignored, r#"{"type":"rate_limit","error":"Too many messages","retry_after":2}"#);
    }

    #[test]
    fn hostile_extras_stay_one_valid_object() {
        let extras = serde_json::json!({ "\"}": "\u{0}\n\"]}", "type": { "nested": true } });
        let frame = text(default_frame(&throttled(1_000, Context::new().with("extras", extras))));
        let parsed: serde_json::Value = serde_json::from_str(&frame).expect("valid JSON");
        assert_eq!(parsed["\"}"], "\u{0}\n\"]}");
        assert_eq!(parsed["type"]["nested"], true);
        assert_eq!(parsed.as_object().map(|o| o.len()), Some(4));
    }
}
