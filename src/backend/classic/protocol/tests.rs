//! Unit tests of the classic wire codec: request encoding (ASCII only, params omitted when
//! none, the size cap) and incremental reply decoding (any chunking, incomplete replies,
//! trailing data, the reply cap, malformed input, both error layers).

use super::*;
use serde_json::json;

fn decode_chunks(bytes: &[u8], size: usize) -> Result<Option<Reply>, ProtocolError> {
    let mut d = ReplyDecoder::new(1 << 20);
    for chunk in bytes.chunks(size.max(1)) {
        if let Some(r) = d.feed(chunk)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

#[test]
fn encodes_non_ascii_as_escapes() {
    let bytes =
        encode_request("execute_code", Some(&json!({"code": "立方体 😀"})), 1 << 20).expect("fits");
    assert!(bytes.is_ascii());
    let text = String::from_utf8(bytes).expect("ascii");
    assert!(text.contains("\\u7acb\\u65b9\\u4f53"), "{text}");
    assert!(text.contains("\\ud83d\\ude00"), "{text}");
    let back: Value = serde_json::from_str(&text).expect("valid json");
    assert_eq!(back["params"]["code"], "立方体 😀");
}

#[test]
fn omits_params_when_none() {
    let bytes = encode_request("get_scene_info", None, 100).expect("fits");
    assert_eq!(bytes, br#"{"type":"get_scene_info"}"#);
}

#[test]
fn request_over_cap_is_refused() {
    let err = encode_request("execute_code", Some(&json!({"code": "x".repeat(100)})), 50)
        .expect_err("too large");
    assert!(matches!(
        err,
        ProtocolError::RequestTooLarge { limit: 50, .. }
    ));
}

#[test]
fn decodes_in_any_chunking_including_inside_strings() {
    let reply = br#"{"status": "success", "result": {"s": "a}\"{[", "n": [1, {"x": 2}]}}"#;
    for size in 1..reply.len() {
        let r = decode_chunks(reply, size).expect("ok").expect("complete");
        assert_eq!(
            r,
            Reply::Success(json!({"s": "a}\"{[", "n": [1, {"x": 2}]}))
        );
    }
}

#[test]
fn incomplete_reply_needs_more() {
    assert!(
        decode_chunks(br#"{"status": "success""#, 3)
            .expect("ok")
            .is_none()
    );
}

#[test]
fn trailing_bytes_are_a_desync() {
    let err =
        decode_chunks(br#"{"status":"success","result":1}{"status""#, 64).expect_err("desync");
    assert!(matches!(err, ProtocolError::TrailingData { extra: 9 }));
    // Whitespace after the reply is harmless.
    assert!(
        decode_chunks(b"{\"status\":\"success\",\"result\":1}\n", 64)
            .expect("ok")
            .is_some()
    );
}

#[test]
fn over_cap_reply_is_an_error() {
    let mut d = ReplyDecoder::new(16);
    let err = d
        .feed(br#"{"status":"success","result":"long"}"#)
        .expect_err("too large");
    assert!(matches!(err, ProtocolError::ReplyTooLarge { limit: 16 }));
}

#[test]
fn garbage_is_malformed() {
    assert!(matches!(
        decode_chunks(b"HTTP/1.1 400", 4),
        Err(ProtocolError::Malformed { .. })
    ));
    assert!(matches!(
        decode_chunks(b"{nope}", 4),
        Err(ProtocolError::Malformed { .. })
    ));
    assert!(matches!(
        decode_chunks(br#"{"result": 1}"#, 4),
        Err(ProtocolError::Malformed { .. })
    ));
}

#[test]
fn both_error_layers() {
    assert_eq!(
        Reply::from_value(json!({"status": "error", "message": "Unknown command type: x"}))
            .expect("reply"),
        Reply::Error("Unknown command type: x".into())
    );
    assert_eq!(
        in_band_error(&json!({"error": "API request failed"})),
        Some("API request failed".into())
    );
    assert!(
        in_band_error(&json!({"succeed": false, "message": "no asset"}))
            .expect("error")
            .contains("no asset")
    );
    assert_eq!(
        in_band_error(&json!({"executed": true, "result": ""})),
        None
    );
    assert_eq!(in_band_error(&json!({"error": null, "ok": 1})), None);
}
