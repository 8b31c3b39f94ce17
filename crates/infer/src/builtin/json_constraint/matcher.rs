//! A byte-at-a-time recogniser of JSON values of a [`Grammar`]: fed the answer's bytes, it
//! says whether they are still the start of a value the grammar admits. Alternatives (`anyOf`,
//! type lists, enums) are followed side by side, each as its own stack of frames.
//!
//! Two limits keep an answer from running away inside the grammar: at most [`MAX_WS`]
//! whitespace bytes in a row between tokens of the structure, and numbers of at most
//! [`MAX_NUMBER`] characters.

use super::schema::{Grammar, Prop, Shape, ShapeId, UNREACHABLE};

/// Whitespace bytes allowed in a row outside strings.
pub(crate) const MAX_WS: u8 = 16;
/// Characters of one number.
pub(crate) const MAX_NUMBER: u16 = 24;
/// Alternatives followed at once; more are dropped (what is kept still only admits valid text),
/// which also bounds the work of masking one step to this many times that of one reading.
const MAX_ALTS: usize = 8;
/// Readings an alternative may add for one byte (a guard against definitions that refer to
/// themselves and against wide alternatives).
const MAX_EXPANSIONS: usize = 256;
/// The deepest the answer may nest objects and arrays: each level makes every later step
/// dearer, so deeper ones are not admitted.
pub(crate) const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Str {
    /// Before the opening quote.
    Open,
    Body,
    Backslash,
    /// Hex digits of a `\u` escape still to come.
    Hex(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Start,
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    E,
    ESign,
    Exp,
}

impl Num {
    fn accepting(self) -> bool {
        matches!(self, Self::Zero | Self::Int | Self::Frac | Self::Exp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arr {
    Open,
    First,
    AfterValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    Open,
    First,
    AfterComma,
    /// After a key (its declared property, if any), before the colon.
    Colon(Option<u8>),
    AfterValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// A value of this shape comes next (whitespace may come first).
    Value(ShapeId),
    Literal {
        shape: ShapeId,
        pos: u16,
    },
    Str(Str),
    /// A declared key being typed, after its opening quote.
    Key {
        typed: Vec<u8>,
    },
    Num {
        integer: bool,
        state: Num,
        len: u16,
    },
    Arr {
        shape: ShapeId,
        count: u32,
        state: Arr,
    },
    Obj {
        shape: ShapeId,
        seen: u64,
        state: Obj,
    },
}

/// One way of reading the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Alt {
    stack: Vec<Frame>,
    /// Structural whitespace bytes in a row.
    ws: u8,
}

enum Step {
    Reject,
    Consumed,
    /// The frame changed; the same byte goes to the new top.
    Refeed,
}

/// Where the answer stands in the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher {
    alts: Vec<Alt>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Matcher {
    pub(crate) fn new(grammar: &Grammar) -> Self {
        Self {
            alts: vec![Alt {
                stack: vec![Frame::Value(grammar.root())],
                ws: 0,
            }],
        }
    }

    /// Takes one byte; `false` (and the matcher unusable) when no reading admits it.
    pub(crate) fn feed(&mut self, g: &Grammar, b: u8) -> bool {
        let mut work = std::mem::take(&mut self.alts);
        let mut out: Vec<Alt> = Vec::with_capacity(work.len());
        let mut expansions = 0;
        while let Some(mut alt) = work.pop() {
            if let Some(Frame::Value(id)) = alt.stack.last()
                && let Shape::OneOf(ids) = g.shape(*id)
            {
                expansions += ids.len();
                if expansions > MAX_EXPANSIONS {
                    continue;
                }
                for id in ids.iter().rev() {
                    let mut a = alt.clone();
                    if let Some(top) = a.stack.last_mut() {
                        *top = Frame::Value(*id);
                    }
                    work.push(a);
                }
                continue;
            }
            match step(g, &mut alt, b) {
                Step::Reject => {}
                Step::Refeed => work.push(alt),
                Step::Consumed => {
                    if !is_ws(b) {
                        alt.ws = 0;
                    }
                    if !out.contains(&alt) && out.len() < MAX_ALTS {
                        out.push(alt);
                    }
                }
            }
        }
        self.alts = out;
        !self.alts.is_empty()
    }

    /// Whether `bytes` may follow what was fed.
    pub(crate) fn admits(&self, g: &Grammar, bytes: &[u8]) -> bool {
        if self.in_string_body() && bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
            return true;
        }
        let mut m = self.clone();
        bytes.iter().all(|&b| m.feed(g, b))
    }

    /// The matcher after `bytes`, if they fit.
    pub(crate) fn after(&self, g: &Grammar, bytes: &[u8]) -> Option<Self> {
        let mut m = self.clone();
        bytes.iter().all(|&b| m.feed(g, b)).then_some(m)
    }

    /// About the fewest bytes that complete the value from here (0: it may end now). Each
    /// byte of the shortest completion lowers it, which is what lets an answer close in time.
    pub(crate) fn closing_cost(&self, g: &Grammar) -> u32 {
        self.alts
            .iter()
            .map(|a| alt_cost(g, a))
            .min()
            .unwrap_or(UNREACHABLE)
    }

    /// Whether every reading is inside a string's text, where plain bytes change nothing.
    fn in_string_body(&self) -> bool {
        self.alts
            .iter()
            .all(|a| matches!(a.stack.last(), Some(Frame::Str(Str::Body))))
    }

    /// Whether a whole value has been read and closed (nothing but whitespace may follow).
    pub(crate) fn closed(&self) -> bool {
        self.alts.iter().any(|a| a.stack.is_empty())
    }

    /// Whether the answer may end here: a value closed, or a number at the top level.
    pub(crate) fn may_end(&self) -> bool {
        self.alts.iter().any(|a| match a.stack.as_slice() {
            [] => true,
            [Frame::Num { state, .. }] => state.accepting(),
            _ => false,
        })
    }
}

/// Bytes of the required properties not given yet, each with its comma.
fn missing(g: &Grammar, props: &[Prop], seen: u64) -> u32 {
    props
        .iter()
        .enumerate()
        .filter(|(i, p)| p.required && seen & (1u64 << i) == 0)
        .map(|(_, p)| p.cost().saturating_add(g.min_len(p.shape)))
        .fold(0, u32::saturating_add)
        .min(UNREACHABLE)
}

fn alt_cost(g: &Grammar, alt: &Alt) -> u32 {
    let mut total: u32 = 0;
    for (i, frame) in alt.stack.iter().enumerate() {
        let cost = match frame {
            Frame::Value(id) => g.min_len(*id),
            Frame::Literal { shape, pos } => match g.shape(*shape) {
                Shape::Literal(b) => (b.len() as u32).saturating_sub(u32::from(*pos)),
                _ => UNREACHABLE,
            },
            Frame::Str(Str::Open | Str::Backslash) => 2,
            Frame::Str(Str::Body) => 1,
            Frame::Str(Str::Hex(n)) => u32::from(*n) + 1,
            // Counted with its object, below.
            Frame::Key { .. } => 0,
            Frame::Num { state, .. } => u32::from(!state.accepting()),
            Frame::Arr {
                shape,
                count,
                state,
            } => match (g.shape(*shape), state) {
                (_, Arr::Open) => g.min_len(*shape),
                (Shape::Array { items, min, .. }, Arr::First) => match *min {
                    0 => 1,
                    k => 1 + k.saturating_mul(g.min_len(*items) + 1).min(UNREACHABLE),
                },
                (Shape::Array { items, min, .. }, Arr::AfterValue) => {
                    1 + min
                        .saturating_sub(*count)
                        .saturating_mul(g.min_len(*items) + 1)
                        .min(UNREACHABLE)
                }
                _ => UNREACHABLE,
            },
            Frame::Obj { shape, seen, state } => match (g.shape(*shape), state) {
                (_, Obj::Open) => g.min_len(*shape),
                (Shape::Object { props, extra }, state) => {
                    obj_cost(g, props, *extra, *seen, *state, alt.stack.get(i + 1))
                }
                _ => UNREACHABLE,
            },
        };
        total = total.saturating_add(cost);
    }
    total.min(UNREACHABLE)
}

/// The fewest bytes that close an object from `state`, counting a key being typed above it.
fn obj_cost(
    g: &Grammar,
    props: &[Prop],
    extra: Option<ShapeId>,
    seen: u64,
    state: Obj,
    child: Option<&Frame>,
) -> u32 {
    let unseen = |j: usize| seen & (1u64 << j) == 0;
    if let Some(Frame::Key { typed }) = child {
        // The key goes on to the cheapest property it may still become.
        return props
            .iter()
            .enumerate()
            .filter(|(j, p)| unseen(*j) && p.key.starts_with(typed))
            .map(|(j, p)| {
                let rest = (p.key.len() - typed.len()) as u32 + 2 + g.min_len(p.shape);
                rest + 1 + missing(g, props, seen | (1u64 << j))
            })
            .min()
            .unwrap_or(UNREACHABLE);
    }
    let owed = missing(g, props, seen);
    match state {
        Obj::Open => UNREACHABLE,
        Obj::Colon(which) => {
            let value = match which {
                Some(p) => props.get(usize::from(p)).map(|p| p.shape),
                None => extra,
            };
            value.map_or(UNREACHABLE, |v| 1 + g.min_len(v)) + 1 + owed
        }
        Obj::AfterValue => 1 + owed,
        // The next property needs no comma before it.
        Obj::First | Obj::AfterComma if owed > 0 => owed,
        Obj::First => 1,
        // A comma with nothing required left: some key must still come.
        Obj::AfterComma => {
            let any_key = if props.is_empty() {
                extra.map_or(UNREACHABLE, |v| 3 + g.min_len(v))
            } else {
                props
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| unseen(*j))
                    .map(|(_, p)| p.cost() - 1 + g.min_len(p.shape))
                    .min()
                    .unwrap_or(UNREACHABLE)
            };
            1 + any_key
        }
    }
}

fn ws(alt: &mut Alt) -> Step {
    if alt.ws < MAX_WS {
        alt.ws += 1;
        Step::Consumed
    } else {
        Step::Reject
    }
}

fn step(g: &Grammar, alt: &mut Alt, b: u8) -> Step {
    let depth = alt.stack.len();
    let Some(top) = alt.stack.last_mut() else {
        // The value is complete: only whitespace may follow.
        return if is_ws(b) { ws(alt) } else { Step::Reject };
    };
    match top {
        Frame::Value(id) => {
            if is_ws(b) {
                return ws(alt);
            }
            let nests = matches!(b, b'{' | b'[');
            if nests && depth > MAX_DEPTH {
                return Step::Reject;
            }
            let next = match g.shape(*id) {
                Shape::Any => match b {
                    b'{' => Frame::Obj {
                        shape: Grammar::ANY_OBJECT,
                        seen: 0,
                        state: Obj::Open,
                    },
                    b'[' => Frame::Arr {
                        shape: Grammar::ANY_ARRAY,
                        count: 0,
                        state: Arr::Open,
                    },
                    b'"' => Frame::Str(Str::Open),
                    b'-' | b'0'..=b'9' => Frame::Num {
                        integer: false,
                        state: Num::Start,
                        len: 0,
                    },
                    b't' => Frame::Literal {
                        shape: Grammar::TRUE,
                        pos: 0,
                    },
                    b'f' => Frame::Literal {
                        shape: Grammar::FALSE,
                        pos: 0,
                    },
                    b'n' => Frame::Literal {
                        shape: Grammar::NULL,
                        pos: 0,
                    },
                    _ => return Step::Reject,
                },
                Shape::Literal(_) => Frame::Literal { shape: *id, pos: 0 },
                Shape::String => Frame::Str(Str::Open),
                Shape::Number { integer } => Frame::Num {
                    integer: *integer,
                    state: Num::Start,
                    len: 0,
                },
                Shape::Array { .. } => Frame::Arr {
                    shape: *id,
                    count: 0,
                    state: Arr::Open,
                },
                Shape::Object { .. } => Frame::Obj {
                    shape: *id,
                    seen: 0,
                    state: Obj::Open,
                },
                // Expanded by the caller before stepping.
                Shape::OneOf(_) => return Step::Reject,
            };
            *top = next;
            Step::Refeed
        }
        Frame::Literal { shape, pos } => {
            let Shape::Literal(bytes) = g.shape(*shape) else {
                return Step::Reject;
            };
            if bytes.get(usize::from(*pos)) != Some(&b) {
                return Step::Reject;
            }
            *pos += 1;
            if usize::from(*pos) == bytes.len() {
                alt.stack.pop();
            }
            Step::Consumed
        }
        Frame::Str(state) => {
            match (*state, b) {
                (Str::Open, b'"') => *state = Str::Body,
                (Str::Open, _) => return Step::Reject,
                (Str::Body, b'"') => {
                    alt.stack.pop();
                }
                (Str::Body, b'\\') => *state = Str::Backslash,
                (Str::Body, 0..0x20) => return Step::Reject,
                (Str::Body, _) => {}
                (Str::Backslash, b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                    *state = Str::Body;
                }
                (Str::Backslash, b'u') => *state = Str::Hex(4),
                (Str::Backslash, _) => return Step::Reject,
                (Str::Hex(n), _) if b.is_ascii_hexdigit() => {
                    *state = if n == 1 { Str::Body } else { Str::Hex(n - 1) };
                }
                (Str::Hex(_), _) => return Step::Reject,
            }
            Step::Consumed
        }
        Frame::Key { .. } => key(g, alt, depth, b),
        Frame::Num {
            integer,
            state,
            len,
        } => {
            let digit = b.is_ascii_digit();
            let next = match (*state, b) {
                (Num::Start, b'-') => Some(Num::Minus),
                (Num::Start | Num::Minus, b'0') => Some(Num::Zero),
                (Num::Start | Num::Minus, _) if digit => Some(Num::Int),
                (Num::Int, _) if digit => Some(Num::Int),
                (Num::Zero | Num::Int, b'.') if !*integer => Some(Num::Dot),
                (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') if !*integer => Some(Num::E),
                (Num::Dot | Num::Frac, _) if digit => Some(Num::Frac),
                (Num::E, b'+' | b'-') => Some(Num::ESign),
                (Num::E | Num::ESign | Num::Exp, _) if digit => Some(Num::Exp),
                _ => None,
            };
            match next {
                Some(_) if *len >= MAX_NUMBER => Step::Reject,
                Some(n) => {
                    *state = n;
                    *len += 1;
                    Step::Consumed
                }
                // The number ends at the first byte that cannot continue it, which then
                // belongs to what encloses it.
                None if state.accepting() => {
                    alt.stack.pop();
                    Step::Refeed
                }
                None => Step::Reject,
            }
        }
        Frame::Arr {
            shape,
            count,
            state,
        } => {
            let Shape::Array { items, min, max } = g.shape(*shape) else {
                return Step::Reject;
            };
            let (items, min, max) = (*items, *min, *max);
            match (*state, b) {
                (Arr::Open, b'[') => {
                    *state = Arr::First;
                    Step::Consumed
                }
                (Arr::Open, _) => Step::Reject,
                (Arr::First | Arr::AfterValue, _) if is_ws(b) => ws(alt),
                (Arr::First, b']') if min == 0 => {
                    alt.stack.pop();
                    Step::Consumed
                }
                (Arr::First, _) if max > 0 => {
                    *count = 1;
                    *state = Arr::AfterValue;
                    alt.stack.push(Frame::Value(items));
                    Step::Refeed
                }
                (Arr::AfterValue, b',') if *count < max => {
                    *count += 1;
                    alt.stack.push(Frame::Value(items));
                    Step::Consumed
                }
                (Arr::AfterValue, b']') if *count >= min => {
                    alt.stack.pop();
                    Step::Consumed
                }
                _ => Step::Reject,
            }
        }
        Frame::Obj { shape, seen, state } => {
            let Shape::Object { props, extra } = g.shape(*shape) else {
                return Step::Reject;
            };
            let seen_now = *seen;
            let unseen = |i: usize| seen_now & (1u64 << i) == 0;
            let may_close = props
                .iter()
                .enumerate()
                .all(|(i, p)| !p.required || !unseen(i));
            let key_left = if props.is_empty() {
                extra.is_some()
            } else {
                (0..props.len()).any(unseen)
            };
            match (*state, b) {
                (Obj::Open, b'{') => {
                    *state = Obj::First;
                    Step::Consumed
                }
                (Obj::Open, _) => Step::Reject,
                (Obj::First | Obj::AfterComma | Obj::Colon(_) | Obj::AfterValue, _) if is_ws(b) => {
                    ws(alt)
                }
                (Obj::First | Obj::AfterValue, b'}') if may_close => {
                    alt.stack.pop();
                    Step::Consumed
                }
                (Obj::First | Obj::AfterComma, b'"') if key_left => {
                    if props.is_empty() {
                        *state = Obj::Colon(None);
                        alt.stack.push(Frame::Str(Str::Body));
                    } else {
                        alt.stack.push(Frame::Key { typed: Vec::new() });
                    }
                    Step::Consumed
                }
                (Obj::AfterValue, b',') if key_left => {
                    *state = Obj::AfterComma;
                    Step::Consumed
                }
                (Obj::Colon(which), b':') => {
                    let value = match which {
                        Some(i) => props.get(usize::from(i)).map(|p| p.shape),
                        None => *extra,
                    };
                    let Some(value) = value else {
                        return Step::Reject;
                    };
                    *state = Obj::AfterValue;
                    alt.stack.push(Frame::Value(value));
                    Step::Consumed
                }
                _ => Step::Reject,
            }
        }
    }
}

/// A byte of a declared key: it must keep the key a prefix of a property not yet given, and
/// the closing quote must complete one.
fn key(g: &Grammar, alt: &mut Alt, depth: usize, b: u8) -> Step {
    let Some(Frame::Obj { shape, seen, .. }) = alt.stack.get(depth.wrapping_sub(2)) else {
        return Step::Reject;
    };
    let Shape::Object { props, .. } = g.shape(*shape) else {
        return Step::Reject;
    };
    let seen = *seen;
    let Some(Frame::Key { typed }) = alt.stack.last_mut() else {
        return Step::Reject;
    };
    let open = |i: usize| seen & (1u64 << i) == 0;
    if b == b'"' {
        let Some(i) = (0..props.len()).find(|&i| open(i) && *props[i].key == typed[..]) else {
            return Step::Reject;
        };
        alt.stack.pop();
        if let Some(Frame::Obj { seen, state, .. }) = alt.stack.last_mut() {
            *seen |= 1u64 << i;
            *state = Obj::Colon(u8::try_from(i).ok());
        }
        return Step::Consumed;
    }
    typed.push(b);
    let typed = &typed[..];
    if (0..props.len()).any(|i| open(i) && props[i].key.starts_with(typed)) {
        Step::Consumed
    } else {
        Step::Reject
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn admits(g: &Grammar, text: &str) -> bool {
        Matcher::new(g).admits(g, text.as_bytes())
    }

    fn complete(g: &Grammar, text: &str) -> bool {
        let mut m = Matcher::new(g);
        text.bytes().all(|b| m.feed(g, b)) && m.may_end()
    }

    #[test]
    fn any_json_object_and_its_prefixes() {
        let g = Grammar::json_object();
        for ok in [
            r#"{}"#,
            r#"{"a": [1, -2.5e3, true, null, "x\"y\u00e9"], "b": {"c": {}}}"#,
            "{\n  \"k\": \"v\"\n}",
        ] {
            assert!(complete(&g, ok), "{ok}");
            for cut in 0..ok.len() {
                assert!(admits(&g, &ok[..cut]), "prefix of {ok}: {}", &ok[..cut]);
            }
        }
        for bad in [
            "[1]",
            "\"s\"",
            "{a:1}",
            "{\"a\" 1}",
            "{\"a\":01}",
            "{\"a\":1,}",
            "{\"a\":tru}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":1.}",
            "{\"a\":\"\\x\"}",
            "{}}",
        ] {
            assert!(!complete(&g, bad), "{bad:?}");
        }
    }

    #[test]
    fn a_schema_admits_exactly_its_shapes() {
        let g = Grammar::from_schema(&json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
                "nick": {"type": ["string", "null"]}
            },
            "required": ["name", "age"]
        }))
        .unwrap();
        assert!(complete(&g, r#"{"name":"Ann","age":30}"#));
        assert!(complete(
            &g,
            r#"{"age": 3, "name": "B", "tags": ["b", "a"], "nick": null}"#
        ));
        for bad in [
            r#"{"name":"Ann"}"#,                            // a required property missing
            r#"{"name":"Ann","age":3.5}"#,                  // not an integer
            r#"{"name":"Ann","age":3,"x":1}"#,              // an undeclared key
            r#"{"name":"A","name":"B","age":1}"#,           // a key twice
            r#"{"name":"A","age":1,"tags":[]}"#,            // below minItems
            r#"{"name":"A","age":1,"tags":["a","a","a"]}"#, // above maxItems
            r#"{"name":"A","age":1,"tags":["c"]}"#,         // not in the enum
            r#"{"name":1,"age":1}"#,                        // the wrong type
        ] {
            assert!(!complete(&g, bad), "{bad}");
        }
        assert!(!admits(&g, r#"{"nam":"#));
        assert!(admits(&g, r#"{"nam"#));
    }

    #[test]
    fn whitespace_and_numbers_cannot_run_on() {
        let g = Grammar::json_object();
        assert!(admits(
            &g,
            &format!("{{{}", " ".repeat(usize::from(MAX_WS)))
        ));
        assert!(!admits(
            &g,
            &format!("{{{}", " ".repeat(usize::from(MAX_WS) + 1))
        ));
        let long = "1".repeat(usize::from(MAX_NUMBER) + 1);
        assert!(!admits(&g, &format!("{{\"n\":{long}")));
        let number = Grammar::from_schema(&json!({"type": "number"})).unwrap();
        let mut m = Matcher::new(&number);
        assert!("-12.5".bytes().all(|b| m.feed(&number, b)));
        assert!(m.may_end() && !m.closed());
    }

    #[test]
    fn the_closing_cost_falls_with_each_byte_of_the_shortest_completion() {
        let g = Grammar::from_schema(&json!({
            "type": "object",
            "properties": {"a": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
                           "b": {"type": "string"}},
            "required": ["a"]
        }))
        .unwrap();
        let mut m = Matcher::new(&g);
        for b in br#"{"b":"xy"#.iter() {
            assert!(m.feed(&g, *b));
        }
        // Close the string, then the shortest way on: ,"a":[0]}
        let mut cost = m.closing_cost(&g);
        for b in br#"","a":[0]}"#.iter() {
            assert!(m.feed(&g, *b));
            let next = m.closing_cost(&g);
            assert!(next < cost, "{} after {:?}", next, *b as char);
            cost = next;
        }
        assert_eq!(cost, 0);
        assert!(m.closed());
    }

    #[test]
    fn nesting_stops_at_the_depth_bound() {
        let g = Grammar::json_object();
        let deep = format!("{{\"a\":{}", "[".repeat(MAX_DEPTH - 2));
        assert!(admits(&g, &deep));
        assert!(!admits(&g, &format!("{deep}[[")));
        // A schema that forces nesting cannot drive it deeper either.
        let forced = Grammar::from_schema(&json!({
            "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}},
            "$ref": "#/$defs/a"
        }))
        .unwrap();
        assert!(!admits(&forced, &"[".repeat(MAX_DEPTH + 2)));
    }

    #[test]
    fn alternatives_and_recursion_are_followed_side_by_side() {
        let g = Grammar::from_schema(&json!({
            "$defs": {"node": {"type": "object", "properties": {
                "v": {"type": "integer"},
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}},
                "required": ["v", "next"]}},
            "$ref": "#/$defs/node"
        }))
        .unwrap();
        assert!(complete(&g, r#"{"v":1,"next":{"v":2,"next":null}}"#));
        assert!(!complete(&g, r#"{"v":1,"next":{"v":2}}"#));
        let looping = Grammar::from_schema(&json!({
            "$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"
        }))
        .unwrap();
        assert!(!admits(&looping, "1"));
    }
}
