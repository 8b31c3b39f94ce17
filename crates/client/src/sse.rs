//! Rewrites an OpenAI SSE answer on its way to the caller: events pass through as they arrive,
//! except the usage event and `[DONE]`, which are held until the request's cost is known and
//! then sent with `prompt_total_cost`, `completion_total_cost` and `total_cost` added.

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::api::{CostedUsage, HopTimes};

/// Longest event kept while looking for its end; longer ones pass through unexamined.
const MAX_EVENT: usize = 1 << 20;

/// Incremental SSE rewriter.
#[derive(Debug, Default)]
pub struct SsePatcher {
    partial: BytesMut,
    /// How much of `partial` was searched for an event's end without finding one: a push
    /// searches only what it added (a trickle of one-byte parts stays linear, not quadratic).
    searched: usize,
    held_usage: Option<String>,
    saw_done: bool,
    last_id: Option<String>,
    model: Option<String>,
    receipt: Option<Value>,
}

impl SsePatcher {
    /// Feeds body bytes; returns what can go to the caller now.
    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        self.partial.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        // An end marker is at most 3 bytes: the last 2 searched may begin one.
        let mut from = self.searched.saturating_sub(2);
        while let Some(end) = find_event_end(&self.partial, from) {
            let event = self.partial.split_to(end);
            self.examine(event, &mut out);
            from = 0;
        }
        self.searched = self.partial.len();
        if self.partial.len() > MAX_EVENT {
            out.extend_from_slice(&self.partial.split());
            self.searched = 0;
        }
        out.freeze()
    }

    fn examine(&mut self, event: BytesMut, out: &mut BytesMut) {
        let text = match std::str::from_utf8(&event) {
            Ok(t) => t,
            Err(_) => {
                out.extend_from_slice(&event);
                return;
            }
        };
        let data = text.trim_end().strip_prefix("data:").map(str::trim_start);
        match data {
            Some("[DONE]") => self.saw_done = true,
            Some(json) if json.contains("\"usage\"") && !json.contains("\"usage\":null") => {
                self.remember(json);
                self.held_usage = Some(json.to_owned());
            }
            Some(json) => {
                if self.last_id.is_none() {
                    self.remember(json);
                }
                out.extend_from_slice(&event);
            }
            None => out.extend_from_slice(&event),
        }
    }

    fn remember(&mut self, json: &str) {
        if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(json) {
            self.last_id = o.get("id").and_then(Value::as_str).map(str::to_owned);
            self.model = o.get("model").and_then(Value::as_str).map(str::to_owned);
        }
    }

    /// Adds `cocoon_receipt` (the worker's receipt and whether it verified) to the final
    /// usage event.
    pub fn set_receipt(&mut self, receipt: Value) {
        self.receipt = Some(receipt);
    }

    /// The end of the answer: the held usage event with costs, then `[DONE]`.
    pub fn finish(&mut self, usage: &CostedUsage, times: &HopTimes) -> Bytes {
        let mut out = BytesMut::new();
        out.extend_from_slice(&self.partial.split());
        self.searched = 0;
        let held = self.held_usage.take();
        if held.is_none() && !self.saw_done {
            // Not an SSE answer we understand: leave it as it was.
            return out.freeze();
        }
        let mut event: Map<String, Value> = held
            .and_then(|h| serde_json::from_str::<Value>(&h).ok())
            .and_then(|v| {
                if let Value::Object(o) = v {
                    Some(o)
                } else {
                    None
                }
            })
            .unwrap_or_else(|| {
                let mut o = Map::new();
                o.insert(
                    "id".into(),
                    Value::from(self.last_id.clone().unwrap_or_default()),
                );
                o.insert("object".into(), Value::from("chat.completion.chunk"));
                o.insert(
                    "model".into(),
                    Value::from(self.model.clone().unwrap_or_default()),
                );
                o.insert("choices".into(), Value::Array(Vec::new()));
                o
            });
        add_costs(&mut event, usage, times);
        if let Some(r) = self.receipt.take() {
            event.insert("cocoon_receipt".into(), r);
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(Value::Object(event).to_string().as_bytes());
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
        out.freeze()
    }
}

/// Adds metered usage, costs and hop times to an OpenAI answer or chunk object.
pub fn add_costs(object: &mut Map<String, Value>, usage: &CostedUsage, times: &HopTimes) {
    let entry = object
        .entry("usage")
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(u) = entry {
        u.insert("prompt_tokens".into(), Value::from(usage.prompt_tokens));
        u.insert(
            "completion_tokens".into(),
            Value::from(usage.completion_tokens),
        );
        u.insert("total_tokens".into(), Value::from(usage.total_tokens));
        u.insert(
            "prompt_total_cost".into(),
            Value::from(usage.prompt_total_cost),
        );
        u.insert(
            "completion_total_cost".into(),
            Value::from(usage.completion_total_cost),
        );
        u.insert("total_cost".into(), Value::from(usage.total_cost));
    }
    object.insert(
        "cocoon".into(),
        serde_json::to_value(times).unwrap_or(Value::Null),
    );
}

/// Index just past the first `\n\n` (or `\r\n\r\n`), if any.
fn find_event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn usage() -> CostedUsage {
        CostedUsage {
            prompt_tokens: 3,
            completion_tokens: 2,
            total_tokens: 5,
            total_cost: 100,
            ..Default::default()
        }
    }

    #[test]
    fn holds_usage_and_done_until_finish_whatever_the_chunking() {
        let stream = "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
                      data: {\"id\":\"a\",\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\ndata: [DONE]\n\n";
        for split in 1..stream.len() {
            let mut p = SsePatcher::default();
            let mut out = Vec::new();
            out.extend_from_slice(&p.push(&stream.as_bytes()[..split]));
            out.extend_from_slice(&p.push(&stream.as_bytes()[split..]));
            let before = String::from_utf8(out.clone()).unwrap();
            assert!(
                !before.contains("usage") && !before.contains("[DONE]"),
                "{before}"
            );
            out.extend_from_slice(&p.finish(&usage(), &HopTimes::default()));
            let all = String::from_utf8(out).unwrap();
            assert!(all.contains("\"hi\""));
            assert!(all.contains("\"total_cost\":100"), "{all}");
            assert!(all.ends_with("data: [DONE]\n\n"));
        }
    }

    #[test]
    fn a_trickle_of_one_byte_parts_costs_linear_time() {
        // A peer sends one long event a byte at a time. Each push searches only the byte it
        // added: searching the whole held event at every push took minutes for this size.
        let mut event = b"data: {\"choices\":[{\"delta\":{\"content\":\"".to_vec();
        event.extend(std::iter::repeat_n(b'a', 512 << 10));
        event.extend_from_slice(b"\"}}]}\r\n\r\n");
        let mut p = SsePatcher::default();
        let mut out = Vec::new();
        for byte in &event {
            out.extend_from_slice(&p.push(std::slice::from_ref(byte)));
        }
        assert_eq!(out, event, "the event passes whole once its end arrives");
    }

    #[test]
    fn an_event_end_split_across_parts_is_found_wherever_it_splits() {
        for end in ["\n\n", "\n\r\n"] {
            let stream = format!("data: {{\"id\":\"a\"}}{end}data: {{\"id\":\"b\"}}{end}");
            for a in 1..stream.len() {
                for b in a..stream.len() {
                    let mut p = SsePatcher::default();
                    let mut out = Vec::new();
                    out.extend_from_slice(&p.push(&stream.as_bytes()[..a]));
                    out.extend_from_slice(&p.push(&stream.as_bytes()[a..b]));
                    out.extend_from_slice(&p.push(&stream.as_bytes()[b..]));
                    assert_eq!(out, stream.as_bytes(), "split at {a} and {b}");
                }
            }
        }
    }

    #[test]
    fn synthesizes_usage_when_upstream_sent_none() {
        let mut p = SsePatcher::default();
        let out =
            p.push(b"data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert!(String::from_utf8_lossy(&out).contains("\"id\":\"x\""));
        let end = String::from_utf8(p.finish(&usage(), &HopTimes::default()).to_vec()).unwrap();
        assert!(
            end.contains("\"usage\"")
                && end.contains("\"id\":\"x\"")
                && end.ends_with("[DONE]\n\n"),
            "{end}"
        );
    }

    #[test]
    fn non_sse_bodies_pass_through() {
        let mut p = SsePatcher::default();
        let mut out = p.push(b"{\"a\":1}\n{\"usage\":").to_vec();
        out.extend_from_slice(&p.finish(&usage(), &HopTimes::default()));
        assert_eq!(out, b"{\"a\":1}\n{\"usage\":");
    }
}
