use std::future::poll_fn;

use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::mpsc;

use super::*;

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn parsed(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn whole_json_is_redacted_at_any_depth_and_case() {
    let body = json!({
        "user": "ann",
        "Password": "hunter2",
        "profile": {"PASSWORD": {"old": "a", "new": "b"}, "age": 3},
        "list": [{"token": 1}, {"token": null, "keep": "x"}, "password"],
    });
    let out = redact(
        body.to_string().as_bytes(),
        true,
        &names(&["password", "Token"]),
    );
    assert_eq!(
        parsed(&out),
        json!({
            "user": "ann",
            "Password": REDACTED,
            "profile": {"PASSWORD": REDACTED, "age": 3},
            "list": [{"token": REDACTED}, {"token": REDACTED, "keep": "x"}, "password"],
        })
    );
    assert!(!out.contains("hunter2"));
    // No names: the JSON is kept (re-serialized).
    assert_eq!(
        parsed(&redact(b"{\"a\": [1, 2]}", true, &[])),
        json!({"a": [1, 2]})
    );
}

#[test]
fn truncated_json_is_scanned() {
    let full = r#"{"password": "hunter2", "nested": {"Secret": {"k": "v}"}, "n": 1}, "pin": 1234, "note": "a long tail"#;
    let out = redact(
        full.as_bytes(),
        false,
        &names(&["password", "secret", "pin"]),
    );
    assert_eq!(
        out,
        r#"{"password": "[REDACTED]", "nested": {"Secret": "[REDACTED]", "n": 1}, "pin": "[REDACTED]", "note": "a long tail"#
    );
    // Cut inside the secret itself: everything after the key goes.
    let cut = r#"{"a": 1, "password": "hunt"#;
    assert_eq!(
        redact(cut.as_bytes(), false, &names(&["password"])),
        r#"{"a": 1, "password": "[REDACTED]"#
    );
    // Escaped quotes do not end the value; a bare mention of the name is not a key.
    let esc = r#"{"password":"a\"b", "q": "password"}"#;
    assert_eq!(
        redact_scan(esc.as_bytes(), &names(&["password"])),
        br#"{"password":"[REDACTED]", "q": "password"}"#
    );
}

#[test]
fn form_bodies_and_key_value_lines() {
    let n = names(&["password", "api_key"]);
    assert_eq!(
        redact(b"user=ann&PASSWORD=s3cr%21t&x=1", true, &n),
        "user=ann&PASSWORD=[REDACTED]&x=1"
    );
    assert_eq!(
        redact(b"api_key=abc def\npassword=xyz;mode=a", true, &n),
        "api_key=[REDACTED] def\npassword=[REDACTED];mode=a"
    );
    // Only at a boundary: `my_password=` is another field.
    assert_eq!(redact(b"my_password=v", true, &n), "my_password=v");
    // Built-in: bearer tokens in a body, whatever the names.
    assert_eq!(
        redact(b"auth: Bearer eyJhbGc.x-y_z= end", true, &[]),
        "auth: Bearer [REDACTED] end"
    );
}

#[test]
fn non_utf8_is_base64_and_a_cut_character_is_dropped() {
    let bin = [0u8, 159, 146, 150, b'a'];
    let out = redact(&bin, true, &[]);
    assert_eq!(out, format!("{BASE64_MARKER}{}", B64.encode(bin)));
    // "é" is two bytes; a prefix ending between them is text, not binary.
    let cut = "caf\u{e9}".as_bytes();
    assert_eq!(redact(&cut[..4], false, &[]), "caf");
    assert_eq!(redact(cut, true, &[]), "café");
    // A whole body that stops mid-character is not UTF-8.
    assert!(redact(&cut[..4], true, &[]).starts_with(BASE64_MARKER));
}

/// A body fed from a channel, so the test decides when frames arrive and the end comes.
struct Chan(mpsc::UnboundedReceiver<Bytes>);

impl Body for Chan {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn the_wrapper_passes_frames_through_and_keeps_a_prefix() {
    let (tx, rx) = mpsc::unbounded_channel();
    let tap = Tap::new(64);
    let mut body = CaptureBody::new(Chan(rx).boxed_unsync(), tap.clone());
    let first = Bytes::from(vec![b'a'; 40]);
    tx.send(first.clone()).unwrap();
    // The frame comes out at once, while the body is still open.
    let f = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    assert_eq!(f.unwrap().unwrap().into_data().unwrap(), first);
    assert_eq!(
        tap.render(&[]),
        Some(("a".repeat(40), true)),
        "not ended yet"
    );
    let second = Bytes::from(vec![b'b'; 40]);
    tx.send(second.clone()).unwrap();
    let f = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    assert_eq!(
        f.unwrap().unwrap().into_data().unwrap(),
        second,
        "unchanged"
    );
    drop(tx);
    assert!(poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
        .await
        .is_none());
    let (text, truncated) = tap.render(&[]).unwrap();
    assert_eq!(text, format!("{}{}", "a".repeat(40), "b".repeat(24)));
    assert!(truncated, "80 bytes passed, 64 kept");
}

#[tokio::test]
async fn a_body_within_the_cap_is_whole_and_redacted_as_json() {
    let (tx, rx) = mpsc::unbounded_channel();
    let tap = Tap::new(64);
    let body = CaptureBody::new(Chan(rx).boxed_unsync(), tap.clone());
    tx.send(Bytes::from_static(b"{\"password\":")).unwrap();
    tx.send(Bytes::from_static(b"\"x\",\"a\":1}")).unwrap();
    drop(tx);
    let all = body.collect().await.unwrap().to_bytes();
    assert_eq!(&all[..], b"{\"password\":\"x\",\"a\":1}");
    let (text, truncated) = tap.render(&names(&["password"])).unwrap();
    assert!(!truncated);
    assert_eq!(parsed(&text), json!({"password": REDACTED, "a": 1}));
}

#[test]
fn slots_fill_the_record() {
    let rt = CaptureRt::compile(&Capture {
        request_bytes: 4,
        response_bytes: 0,
        redact: vec![],
    });
    let s = rt.start();
    assert!(s.response.is_none(), "0 captures nothing");
    let mut r = CallRecord::default();
    s.fill(&mut r);
    assert_eq!(r.request_body, None, "a body never read is not recorded");
    s.request.as_ref().unwrap().whole(b"hello");
    s.fill(&mut r);
    assert_eq!(
        (r.request_body.as_deref(), r.request_truncated),
        (Some("hell"), true)
    );
    assert_eq!((r.response_body, r.response_truncated), (None, false));
    let empty = rt.start();
    empty.request.as_ref().unwrap().whole(b"");
    let mut r = CallRecord::default();
    empty.fill(&mut r);
    assert_eq!(
        (r.request_body.as_deref(), r.request_truncated),
        (Some(""), false)
    );
}
