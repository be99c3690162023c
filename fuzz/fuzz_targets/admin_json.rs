//! The admin API's resource decoding on fuzzed bodies: the first byte picks the
//! resource kind (and whether the id comes from the URL, as in PUT), the rest is the
//! body. Decoding and validation must return errors, never panic. A resource that
//! passes validation must also survive what happens to it next: its route matcher
//! compiles, its Raft command encodes and decodes to the same value, and the JSON the
//! admin API shows for it parses back as the same kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftgate_node::admin::resources::parse_resource;
use raftgate_node::proxy::router::Matcher;
use raftgate_store::codec;
use raftgate_store::model::{Kind, PathMatch, Resource, REDACTED};
use raftgate_store::validate::validate;
use raftgate_store::{Command, Op};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(selector) % Kind::ALL.len()];
    let path_id = (selector & 0x80 != 0).then_some("from-url");
    let Ok(res) = parse_resource(kind, body, path_id) else {
        return;
    };
    assert_eq!(res.kind(), kind);
    if let Some(id) = path_id {
        assert_eq!(res.id(), id, "the URL id must win or the body be rejected");
    }
    if validate(&res).is_err() {
        return;
    }

    if let Resource::Route(r) = &res {
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| (h.name.clone(), h.regex.clone()))
            .collect();
        if let Err(e) = Matcher::new(
            &r.id,
            &r.hosts,
            &r.path,
            r.path_match == PathMatch::Exact,
            &r.methods,
            &headers,
            r.priority,
        ) {
            panic!("a validated route does not compile: {e}");
        }
    }

    let cmd = Command::new("fuzz", Op::Create(res.clone()));
    let bytes = codec::encode(&cmd).expect("a validated resource encodes");
    let back: Command = codec::decode(&bytes).expect("an encoded command decodes");
    assert_eq!(back.op, cmd.op, "the Raft encoding changed the resource");

    let public = res.to_public_json();
    let text = serde_json::to_vec(&public).expect("public JSON serializes");
    match parse_resource(kind, &text, None) {
        Ok(again) if public.to_string().contains(REDACTED) => assert_eq!(again.kind(), kind),
        Ok(again) => assert_eq!(again, res, "GET then PUT changed the resource"),
        Err(e) => panic!("the admin API's own JSON for a {kind} does not parse: {e:?}"),
    }
});
