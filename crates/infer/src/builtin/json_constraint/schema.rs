//! Compiles the JSON Schema of a `response_format` into the shapes the matcher walks.
//!
//! Only what constrained decoding can enforce byte by byte is accepted; any other keyword is
//! refused by name rather than ignored, so an answer that comes back always validates against
//! the schema the caller sent. Annotations (`title`, `description`, ...) change nothing and are
//! accepted.

use ahash::AHashMap;
use serde_json::{Map, Value};

use crate::builtin::BuiltinError;

/// Index of a shape in its [`Grammar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShapeId(pub(crate) u32);

/// What one JSON value may look like.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    /// Any JSON value.
    Any,
    /// Exactly these bytes (a `null`, `true`, `false`, `const` or `enum` member, compact).
    Literal(Box<[u8]>),
    /// Any string.
    String,
    /// A number; `integer` forbids a fraction and an exponent.
    Number { integer: bool },
    /// An array of `items`, between `min` and `max` of them.
    Array { items: ShapeId, min: u32, max: u32 },
    /// An object. With `props`, only those keys (each at most once, the required ones before
    /// it closes); without, any key whose value is `extra` (`None`: no key at all).
    Object {
        props: Vec<Prop>,
        extra: Option<ShapeId>,
    },
    /// One of these.
    OneOf(Vec<ShapeId>),
}

/// A declared property of an object shape.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prop {
    /// The key as it appears between the quotes (JSON-escaped).
    pub(crate) key: Box<[u8]>,
    pub(crate) shape: ShapeId,
    pub(crate) required: bool,
}

impl Prop {
    /// Bytes of this property besides its value: the quoted key, the colon and a comma.
    pub(crate) fn cost(&self) -> u32 {
        self.key.len() as u32 + 4
    }
}

/// The most declared properties one object may have (their presence is a 64-bit set).
pub(crate) const MAX_PROPS: usize = 64;
/// The most shapes one schema compiles to.
const MAX_SHAPES: usize = 4096;
/// The most alternatives of one `enum` or `anyOf` (each is followed side by side).
const MAX_ALTERNATIVES: usize = 256;
/// The deepest a schema nests (through `$ref` chains too).
const MAX_DEPTH: usize = 64;
/// The longest `const` or `enum` member, compact, in bytes.
const MAX_LITERAL: usize = 4096;

/// Every shape of one schema, the root first reachable from [`Grammar::root`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Grammar {
    shapes: Vec<Shape>,
    root: ShapeId,
    /// The fewest bytes a value of each shape takes.
    min_len: Vec<u32>,
}

/// A length no answer reaches (a shape that cannot be completed, or a deep recursion).
pub(crate) const UNREACHABLE: u32 = 1 << 24;

impl Grammar {
    /// Any value.
    pub(crate) const ANY: ShapeId = ShapeId(0);
    /// Any object.
    pub(crate) const ANY_OBJECT: ShapeId = ShapeId(1);
    /// Any array.
    pub(crate) const ANY_ARRAY: ShapeId = ShapeId(2);
    pub(crate) const TRUE: ShapeId = ShapeId(3);
    pub(crate) const FALSE: ShapeId = ShapeId(4);
    pub(crate) const NULL: ShapeId = ShapeId(5);

    /// The shapes every grammar starts with, at the ids above.
    fn prelude() -> Vec<Shape> {
        vec![
            Shape::Any,
            Shape::Object {
                props: Vec::new(),
                extra: Some(Self::ANY),
            },
            Shape::Array {
                items: Self::ANY,
                min: 0,
                max: u32::MAX,
            },
            Shape::Literal(b"true".as_slice().into()),
            Shape::Literal(b"false".as_slice().into()),
            Shape::Literal(b"null".as_slice().into()),
        ]
    }

    /// Any JSON object (`response_format: {"type": "json_object"}`).
    pub(crate) fn json_object() -> Self {
        Self::finish(Self::prelude(), Self::ANY_OBJECT)
    }

    fn finish(shapes: Vec<Shape>, root: ShapeId) -> Self {
        let mut g = Self {
            min_len: vec![UNREACHABLE; shapes.len()],
            shapes,
            root,
        };
        // Recursive definitions settle in one pass per link of a `$ref` chain; past the bound a
        // shape keeps UNREACHABLE, which only makes the budget check more careful.
        for _ in 0..(MAX_DEPTH + 2) {
            let next: Vec<u32> = (0..g.shapes.len()).map(|i| g.shortest(i)).collect();
            if next == g.min_len {
                break;
            }
            g.min_len = next;
        }
        g
    }

    fn shortest(&self, i: usize) -> u32 {
        let ml = |id: ShapeId| self.min_len[id.0 as usize];
        let n = match &self.shapes[i] {
            Shape::Any | Shape::Number { .. } => 1,
            Shape::Literal(bytes) => bytes.len() as u32,
            Shape::String => 2,
            Shape::Array { items, min, .. } => match *min {
                0 => 2,
                k => 2u32.saturating_add(k.saturating_mul(ml(*items).saturating_add(1))),
            },
            Shape::Object { props, .. } => props
                .iter()
                .filter(|p| p.required)
                .map(|p| p.cost().saturating_add(ml(p.shape)))
                .fold(2, u32::saturating_add),
            Shape::OneOf(ids) => ids.iter().map(|id| ml(*id)).min().unwrap_or(UNREACHABLE),
        };
        n.min(UNREACHABLE)
    }

    /// The fewest bytes a value of `id` takes.
    pub(crate) fn min_len(&self, id: ShapeId) -> u32 {
        self.min_len[id.0 as usize]
    }

    /// The grammar of a JSON Schema, or the first thing in it that cannot be enforced.
    pub(crate) fn from_schema(schema: &Value) -> Result<Self, BuiltinError> {
        let mut c = Compiler {
            root: schema,
            shapes: Grammar::prelude(),
            refs: AHashMap::new(),
            depth: 0,
        };
        let root = c.compile(schema, "")?;
        Ok(Self::finish(c.shapes, root))
    }

    pub(crate) fn root(&self) -> ShapeId {
        self.root
    }

    pub(crate) fn shape(&self, id: ShapeId) -> &Shape {
        &self.shapes[id.0 as usize]
    }
}

/// Keywords that describe and never constrain.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$defs",
    "definitions",
    "strict",
];

/// Keywords the compiler enforces.
const HANDLED: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "$ref",
];

struct Compiler<'s> {
    root: &'s Value,
    shapes: Vec<Shape>,
    refs: AHashMap<String, ShapeId>,
    depth: usize,
}

fn refuse(at: &str, reason: impl Into<String>) -> BuiltinError {
    BuiltinError::Schema {
        at: if at.is_empty() { "/".into() } else { at.into() },
        reason: reason.into(),
    }
}

impl<'s> Compiler<'s> {
    fn push(&mut self, shape: Shape, at: &str) -> Result<ShapeId, BuiltinError> {
        if self.shapes.len() >= MAX_SHAPES {
            return Err(refuse(
                at,
                format!("the schema has more than {MAX_SHAPES} parts"),
            ));
        }
        self.shapes.push(shape);
        Ok(ShapeId((self.shapes.len() - 1) as u32))
    }

    fn literal(&mut self, v: &Value, at: &str) -> Result<ShapeId, BuiltinError> {
        let bytes = compact(v);
        if bytes.len() > MAX_LITERAL {
            return Err(refuse(
                at,
                format!("a `const` or `enum` value over {MAX_LITERAL} bytes"),
            ));
        }
        self.push(Shape::Literal(bytes), at)
    }

    fn compile(&mut self, schema: &'s Value, at: &str) -> Result<ShapeId, BuiltinError> {
        if self.depth >= MAX_DEPTH {
            return Err(refuse(
                at,
                format!("the schema nests deeper than {MAX_DEPTH}"),
            ));
        }
        self.depth += 1;
        let compiled = self.compile_inner(schema, at);
        self.depth -= 1;
        compiled
    }

    fn compile_inner(&mut self, schema: &'s Value, at: &str) -> Result<ShapeId, BuiltinError> {
        let map = match schema {
            Value::Bool(true) => return Ok(Grammar::ANY),
            Value::Bool(false) => return Err(refuse(at, "`false` admits no value")),
            Value::Object(map) => map,
            _ => return Err(refuse(at, "a schema must be an object or a boolean")),
        };
        if let Some(k) = map
            .keys()
            .find(|k| !ANNOTATIONS.contains(&k.as_str()) && !HANDLED.contains(&k.as_str()))
        {
            return Err(refuse(
                at,
                format!("keyword `{k}` cannot be enforced by the built-in engine"),
            ));
        }
        if let Some(r) = map.get("$ref") {
            if map.len() > 1
                && map
                    .keys()
                    .any(|k| HANDLED.contains(&k.as_str()) && k != "$ref")
            {
                return Err(refuse(
                    at,
                    "`$ref` beside other constraints is not supported",
                ));
            }
            return self.reference(r, at);
        }
        // `const`, `enum` and `anyOf` stand alone: beside other constraints one of them would
        // go unenforced. A `type` beside `const` or `enum` is checked against its values here
        // (then the values enforce both).
        for keyword in ["const", "enum", "anyOf"] {
            if map.contains_key(keyword)
                && let Some(other) = map.keys().find(|k| {
                    HANDLED.contains(&k.as_str())
                        && k.as_str() != keyword
                        && !(k.as_str() == "type" && keyword != "anyOf")
                })
            {
                return Err(refuse(
                    at,
                    format!("`{keyword}` beside `{other}` is not supported"),
                ));
            }
        }
        if let Some(types) = map.get("type")
            && let Some(values) = map
                .get("const")
                .map(std::slice::from_ref)
                .or_else(|| map.get("enum").and_then(Value::as_array).map(Vec::as_slice))
            && let Some(stray) = values.iter().find(|v| !of_type(v, types))
        {
            return Err(refuse(
                at,
                format!("value {stray} is not of `type` {types}"),
            ));
        }
        if let Some(v) = map.get("const") {
            return self.literal(v, at);
        }
        if let Some(v) = map.get("enum") {
            let items = v
                .as_array()
                .filter(|a| !a.is_empty() && a.len() <= MAX_ALTERNATIVES)
                .ok_or_else(|| {
                    refuse(
                        at,
                        format!("`enum` must list 1 to {MAX_ALTERNATIVES} values"),
                    )
                })?;
            let ids = items
                .iter()
                .map(|v| self.literal(v, at))
                .collect::<Result<_, _>>()?;
            return self.push(Shape::OneOf(ids), at);
        }
        if let Some(v) = map.get("anyOf") {
            let items = v
                .as_array()
                .filter(|a| !a.is_empty() && a.len() <= MAX_ALTERNATIVES)
                .ok_or_else(|| {
                    refuse(
                        at,
                        format!("`anyOf` must list 1 to {MAX_ALTERNATIVES} schemas"),
                    )
                })?;
            let mut ids = Vec::with_capacity(items.len());
            for (i, s) in items.iter().enumerate() {
                ids.push(self.compile(s, &format!("{at}/anyOf/{i}"))?);
            }
            return self.push(Shape::OneOf(ids), at);
        }
        let types: Vec<&str> = match map.get("type") {
            None if map.contains_key("properties") => vec!["object"],
            None if map.contains_key("items") => vec!["array"],
            None => return Ok(Grammar::ANY),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .map(Value::as_str)
                .collect::<Option<Vec<_>>>()
                .filter(|ts| !ts.is_empty())
                .ok_or_else(|| refuse(at, "`type` must be a string or a list of strings"))?,
            Some(_) => return Err(refuse(at, "`type` must be a string or a list of strings")),
        };
        let mut ids = Vec::with_capacity(types.len());
        for t in types {
            let id = match t {
                "null" => Grammar::NULL,
                "boolean" => self.push(Shape::OneOf(vec![Grammar::TRUE, Grammar::FALSE]), at)?,
                "string" => self.push(Shape::String, at)?,
                "number" => self.push(Shape::Number { integer: false }, at)?,
                "integer" => self.push(Shape::Number { integer: true }, at)?,
                "array" => self.array(map, at)?,
                "object" => self.object(map, at)?,
                other => return Err(refuse(at, format!("unknown type `{other}`"))),
            };
            ids.push(id);
        }
        Ok(if ids.len() == 1 {
            ids[0]
        } else {
            self.push(Shape::OneOf(ids), at)?
        })
    }

    fn reference(&mut self, r: &Value, at: &str) -> Result<ShapeId, BuiltinError> {
        let r = r
            .as_str()
            .ok_or_else(|| refuse(at, "`$ref` must be a string"))?;
        if let Some(&id) = self.refs.get(r) {
            return Ok(id);
        }
        let root: &'s Value = self.root;
        let target = if r == "#" {
            root
        } else {
            let (section, name) = r
                .strip_prefix("#/$defs/")
                .map(|n| ("$defs", n))
                .or_else(|| r.strip_prefix("#/definitions/").map(|n| ("definitions", n)))
                .ok_or_else(|| {
                    refuse(
                        at,
                        format!("`$ref` {r}: only #, #/$defs/… and #/definitions/… are supported"),
                    )
                })?;
            root.get(section)
                .and_then(|d| d.get(name))
                .ok_or_else(|| refuse(at, format!("`$ref` {r} names nothing")))?
        };
        // A placeholder first, so that a recursive definition refers to itself.
        let id = self.push(Shape::Any, at)?;
        self.refs.insert(r.to_owned(), id);
        let inner = self.compile(target, r.trim_start_matches('#'))?;
        self.shapes[id.0 as usize] = Shape::OneOf(vec![inner]);
        Ok(id)
    }

    fn array(&mut self, map: &'s Map<String, Value>, at: &str) -> Result<ShapeId, BuiltinError> {
        let items = match map.get("items") {
            None => Grammar::ANY,
            Some(s) => self.compile(s, &format!("{at}/items"))?,
        };
        let count = |key: &str, default: u32| match map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n.min(u64::from(u32::MAX)) as u32)
                .ok_or_else(|| refuse(at, format!("`{key}` must be a non-negative integer"))),
        };
        let min = count("minItems", 0)?;
        let max = count("maxItems", u32::MAX)?;
        if min > max {
            return Err(refuse(at, "`minItems` is above `maxItems`"));
        }
        self.push(Shape::Array { items, min, max }, at)
    }

    fn object(&mut self, map: &'s Map<String, Value>, at: &str) -> Result<ShapeId, BuiltinError> {
        let required: Vec<&str> = match map.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => r
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()
                .ok_or_else(|| refuse(at, "`required` must be a list of strings"))?,
            Some(_) => return Err(refuse(at, "`required` must be a list of strings")),
        };
        let declared: Vec<(&'s String, &'s Value)> = match map.get("properties") {
            None => Vec::new(),
            Some(Value::Object(p)) => p.iter().collect(),
            Some(_) => return Err(refuse(at, "`properties` must be an object")),
        };
        if let Some(missing) = required
            .iter()
            .find(|r| !declared.iter().any(|(k, _)| k.as_str() == **r))
        {
            return Err(refuse(
                at,
                format!("required property `{missing}` is not among `properties`"),
            ));
        }
        if declared.len() > MAX_PROPS {
            return Err(refuse(at, format!("more than {MAX_PROPS} properties")));
        }
        let mut props = Vec::with_capacity(declared.len());
        for (key, schema) in declared {
            let shape = self.compile(schema, &format!("{at}/properties/{key}"))?;
            let escaped = serde_json::to_string(key).unwrap_or_default();
            let inner = escaped.as_bytes();
            props.push(Prop {
                key: inner[1..inner.len().saturating_sub(1)].into(),
                shape,
                required: required.contains(&key.as_str()),
            });
        }
        // With declared properties the answer uses only those (which validates whatever
        // `additionalProperties` says); without, any key with the additional schema.
        let extra = if !props.is_empty() {
            None
        } else {
            match map.get("additionalProperties") {
                None | Some(Value::Bool(true)) => Some(Grammar::ANY),
                Some(Value::Bool(false)) => None,
                Some(s) => Some(self.compile(s, &format!("{at}/additionalProperties"))?),
            }
        };
        self.push(Shape::Object { props, extra }, at)
    }
}

/// Whether `v` is of the schema `type` (a name or a list of names).
fn of_type(v: &Value, types: &Value) -> bool {
    let is = |t: &str| match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    match types {
        Value::String(t) => is(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(is),
        _ => false,
    }
}

fn compact(v: &Value) -> Box<[u8]> {
    serde_json::to_vec(v).unwrap_or_default().into_boxed_slice()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_that_cannot_be_enforced_are_refused_by_name_and_place() {
        for (schema, at, keyword) in [
            (json!({"type": "string", "pattern": "^a"}), "/", "pattern"),
            (
                json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}),
                "/properties/n",
                "minimum",
            ),
            (json!({"oneOf": [{"type": "string"}]}), "/", "oneOf"),
            (
                json!({"type": "string", "format": "date-time"}),
                "/",
                "format",
            ),
        ] {
            let err = Grammar::from_schema(&schema).unwrap_err().to_string();
            assert!(err.contains(at) && err.contains(keyword), "{err}");
        }
    }

    #[test]
    fn annotations_are_accepted_and_types_compile() {
        let g = Grammar::from_schema(&json!({
            "title": "x", "description": "y", "type": "object",
            "properties": {"a": {"type": ["string", "null"]}, "b": {"enum": [1, "two"]}},
            "required": ["a"], "additionalProperties": false
        }))
        .unwrap();
        let Shape::Object { props, extra } = g.shape(g.root()) else {
            panic!("not an object")
        };
        assert_eq!(props.len(), 2);
        assert!(props[0].required && !props[1].required);
        assert_eq!(extra, &None);
    }

    #[test]
    fn schemas_that_would_cost_the_worker_too_much_are_refused() {
        // A `$ref` chain 10,000 links deep: refused at the depth bound, not a stack overflow.
        let mut defs = serde_json::Map::new();
        for i in 0..10_000 {
            defs.insert(
                format!("a{i}"),
                json!({"$ref": format!("#/$defs/a{}", i + 1)}),
            );
        }
        defs.insert("a10000".into(), json!({"type": "string"}));
        let chain = json!({"$defs": defs, "$ref": "#/$defs/a0"});
        let err = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || Grammar::from_schema(&chain).unwrap_err().to_string())
            .unwrap()
            .join()
            .unwrap();
        assert!(err.contains("deeper"), "{err}");
        // Huge enums and literals, and too many parts.
        let many: Vec<Value> = (0..1000).map(|i| json!(i)).collect();
        assert!(Grammar::from_schema(&json!({"enum": many})).is_err());
        let long = "x".repeat(MAX_LITERAL + 1);
        assert!(Grammar::from_schema(&json!({"const": long})).is_err());
        let wide: serde_json::Map<String, Value> = (0..60)
            .map(|i| {
                (
                    format!("p{i}"),
                    json!({"enum": (0..100).collect::<Vec<_>>()}),
                )
            })
            .collect();
        let err = Grammar::from_schema(&json!({"type": "object", "properties": wide})).unwrap_err();
        assert!(err.to_string().contains("parts"), "{err}");
    }

    #[test]
    fn const_enum_and_any_of_do_not_hide_other_constraints() {
        for (schema, says) in [
            (json!({"const": "a", "type": "integer"}), "not of `type`"),
            (
                json!({"enum": [1, "x"], "type": ["integer", "null"]}),
                "not of `type`",
            ),
            (json!({"enum": [1, 2], "maxItems": 1}), "beside"),
            (
                json!({"anyOf": [{"type": "object"}], "required": ["x"], "properties": {"x": {}}}),
                "beside",
            ),
            (
                json!({"anyOf": [{"type": "string"}], "type": "string"}),
                "beside",
            ),
        ] {
            let err = Grammar::from_schema(&schema).unwrap_err().to_string();
            assert!(err.contains(says), "{schema}: {err}");
        }
        // The common shape, a typed enum, is accepted.
        assert!(Grammar::from_schema(&json!({"type": "string", "enum": ["a", "b"]})).is_ok());
        assert!(
            Grammar::from_schema(&json!({"type": ["integer", "null"], "enum": [1, null]})).is_ok()
        );
    }

    #[test]
    fn a_required_property_must_be_declared_and_refs_must_resolve() {
        assert!(Grammar::from_schema(&json!({"type": "object", "required": ["x"]})).is_err());
        assert!(Grammar::from_schema(&json!({"$ref": "#/$defs/none"})).is_err());
        assert!(Grammar::from_schema(&json!({"$ref": "http://elsewhere"})).is_err());
        let recursive = json!({
            "$defs": {"node": {"type": "object", "properties": {
                "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}}}},
            "$ref": "#/$defs/node"
        });
        assert!(Grammar::from_schema(&recursive).is_ok());
    }
}
