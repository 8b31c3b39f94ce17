//! Every constructor id is the CRC32 of its schema line (or the explicit id the reference
//! schema states), and `Message` dispatches on exactly the reference's message table
//! (`tests/data/constructor_ids.txt`) plus this project's `ext.` extensions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use cocoon_protocol::messages::{Message, client, http, proxy, tcp};
use cocoon_protocol::tl;

struct TableRow {
    kind: String,
    id: u32,
    explicit: bool,
    declaration: String,
}

/// The reference table: name → row.
fn table() -> BTreeMap<String, TableRow> {
    let text = include_str!("data/constructor_ids.txt");
    let mut rows = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let mut parts = line.splitn(5, ' ');
        let kind = parts.next().unwrap().to_owned();
        let name = parts.next().unwrap().to_owned();
        let id = u32::from_str_radix(parts.next().unwrap(), 16).unwrap();
        let explicit = match parts.next().unwrap() {
            "crc" => false,
            "explicit" => true,
            other => panic!("{line}: unknown id origin {other}"),
        };
        let declaration = parts.next().unwrap().to_owned();
        assert!(kind == "ty" || kind == "fn", "{line}");
        assert!(declaration.starts_with(&format!("{name} ")), "{line}");
        let row = TableRow {
            kind,
            id,
            explicit,
            declaration,
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} listed twice"
        );
    }
    rows
}

/// The table writes vector types as `(vector X)`; the id is computed over `vector X`.
fn normalize(declaration: &str) -> String {
    declaration.replace("(vector ", "vector ").replace(')', "")
}

fn name_of(schema: &str) -> &str {
    schema.split(' ').next().unwrap()
}

/// Extensions of this project live in their own TL namespace.
fn is_extension(name: &str) -> bool {
    name.starts_with("ext.")
}

#[test]
fn every_id_is_the_crc32_of_its_schema_line_unless_explicit() {
    let table = table();
    assert_eq!(Message::IDS.len(), Message::SCHEMAS.len());
    let mut explicit = 0;
    for (&id, &schema) in Message::IDS.iter().zip(Message::SCHEMAS) {
        let crc = tl::schema_crc32(schema);
        // The same value through an independent CRC32 implementation.
        assert_eq!(crc32fast::hash(schema.as_bytes()), crc, "{schema}");
        if table.get(name_of(schema)).is_some_and(|r| r.explicit) {
            // Kept honest: an "explicit" id that matched the text would be mislabelled.
            assert_ne!(crc, id, "{schema}: explicit id equals the CRC32");
            explicit += 1;
        } else {
            assert_eq!(
                crc, id,
                "{schema}: id {id:08x} is not the CRC32 of the schema line"
            );
        }
    }
    assert_eq!(explicit, 6);
}

#[test]
fn ids_and_schemas_match_the_reference_table() {
    let table = table();
    for (&id, &schema) in Message::IDS.iter().zip(Message::SCHEMAS) {
        let name = name_of(schema);
        let Some(row) = table.get(name) else {
            assert!(is_extension(name), "{name} is not in the reference table");
            continue;
        };
        assert_eq!(id, row.id, "{name}: {id:08x} vs table {:08x}", row.id);
        assert_eq!(schema, normalize(&row.declaration), "{name}");
        if !row.explicit {
            assert_eq!(tl::schema_crc32(&normalize(&row.declaration)), row.id);
        }
    }
}

#[test]
fn message_covers_every_constructor_in_the_table_once() {
    let table = table();
    assert_eq!(table.len(), 73, "the reference table lists 73 constructors");
    let functions = table.values().filter(|r| r.kind == "fn").count();
    assert_eq!(functions, 18);

    let mut names: Vec<&str> = Message::SCHEMAS.iter().map(|s| name_of(s)).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(
        names.len(),
        Message::SCHEMAS.len(),
        "a constructor appears twice"
    );
    let reference: Vec<&str> = names.iter().copied().filter(|n| !is_extension(n)).collect();
    let table_names: Vec<&str> = table.keys().map(String::as_str).collect();
    assert_eq!(reference, table_names);

    let mut ids = Message::IDS.to_vec();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        Message::IDS.len(),
        "two constructors share an id"
    );
}

#[test]
fn boxed_types_are_subsets_of_message_with_their_own_schemas() {
    let groups: [(&[u32], &[&str]); 12] = [
        (tcp::AnyPacket::IDS, tcp::AnyPacket::SCHEMAS),
        (
            client::AnyProxyConnectionAuth::IDS,
            client::AnyProxyConnectionAuth::SCHEMAS,
        ),
        (
            client::AnyAuthorizationWithProxy::IDS,
            client::AnyAuthorizationWithProxy::SCHEMAS,
        ),
        (client::AnyQueryAnswer::IDS, client::AnyQueryAnswer::SCHEMAS),
        (
            client::AnyQueryAnswerPart::IDS,
            client::AnyQueryAnswerPart::SCHEMAS,
        ),
        (
            client::AnyQueryAnswerEx::IDS,
            client::AnyQueryAnswerEx::SCHEMAS,
        ),
        (client::AnyRefund::IDS, client::AnyRefund::SCHEMAS),
        (
            proxy::AnySignedPayment::IDS,
            proxy::AnySignedPayment::SCHEMAS,
        ),
        (
            proxy::AnyQueryAnswerEx::IDS,
            proxy::AnyQueryAnswerEx::SCHEMAS,
        ),
        (
            proxy::AnyWorkerRequestPayment::IDS,
            proxy::AnyWorkerRequestPayment::SCHEMAS,
        ),
        (proxy::AnyQueryAnswer::IDS, proxy::AnyQueryAnswer::SCHEMAS),
        (
            proxy::AnyQueryAnswerPart::IDS,
            proxy::AnyQueryAnswerPart::SCHEMAS,
        ),
    ];
    for (ids, schemas) in groups {
        assert_eq!(ids.len(), schemas.len());
        // All constructors of one boxed type share its result type.
        let result = schemas[0].rsplit(" = ").next().unwrap();
        for (&id, &schema) in ids.iter().zip(schemas) {
            assert_eq!(tl::schema_crc32(schema), id, "{schema}");
            assert!(Message::IDS.contains(&id), "{schema}");
            assert_eq!(schema.rsplit(" = ").next().unwrap(), result, "{schema}");
        }
    }
    // `http.request` is a function answered by `http.response`; both live in `Message`.
    use cocoon_protocol::tl::TlConstructor;
    assert!(Message::IDS.contains(&http::Request::ID));
    assert!(Message::IDS.contains(&http::Response::ID));
}

#[test]
fn the_documented_example_id() {
    assert_eq!(
        tl::schema_crc32("tcp.ping id:long = tcp.Packet"),
        0xbbe9627c
    );
}
