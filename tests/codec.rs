//! Property tests of the wire codec: any reply in any chunking decodes exactly once; any
//! string encodes to pure ASCII that Python's `json.loads` (what the addon uses) reads back
//! as the same string.

use std::io::Write;
use std::process::{Command, Stdio};

use blender_session_mcp::backend::classic::protocol::{
    ProtocolError, Reply, ReplyDecoder, encode_ascii, encode_request,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[\\{\\}\\[\\]\"\\\\a-z立方体😀]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(any::<String>(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Split `bytes` at the given cut points (sorted, deduplicated, within range).
fn chunk(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points {
        out.push(bytes[start..p].to_vec());
        start = p;
    }
    out.push(bytes[start..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_reply_in_any_chunking_decodes_exactly_once(
        result in arb_json(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        ascii in any::<bool>(),
    ) {
        let reply = json!({"status": "success", "result": result});
        // The addon sends ASCII; also accept raw UTF-8 (split inside characters by the cuts).
        let bytes = if ascii { encode_ascii(&reply) } else { serde_json::to_vec(&reply).unwrap() };
        let mut decoder = ReplyDecoder::new(usize::MAX);
        let mut decoded = Vec::new();
        for piece in chunk(&bytes, &cuts) {
            if let Some(r) = decoder.feed(&piece).expect("valid reply") {
                decoded.push(r);
            }
        }
        prop_assert_eq!(decoded, vec![Reply::Success(reply["result"].clone())]);
    }

    #[test]
    fn one_byte_at_a_time(result in arb_json()) {
        let bytes = serde_json::to_vec(&json!({"status": "error", "message": result.to_string()})).unwrap();
        let mut decoder = ReplyDecoder::new(usize::MAX);
        let mut decoded = None;
        for (i, b) in bytes.iter().enumerate() {
            let r = decoder.feed(std::slice::from_ref(b)).expect("valid");
            prop_assert!(r.is_none() || i == bytes.len() - 1, "complete only at the last byte");
            decoded = decoded.or(r);
        }
        prop_assert_eq!(decoded, Some(Reply::Error(result.to_string())));
    }

    #[test]
    fn leftover_bytes_are_always_a_desync(result in arb_json(), extra in "[a-z{}\\[\\]0-9\"]{1,20}") {
        let mut bytes = serde_json::to_vec(&json!({"status": "success", "result": result})).unwrap();
        bytes.extend_from_slice(extra.as_bytes());
        let mut decoder = ReplyDecoder::new(usize::MAX);
        let err = decoder.feed(&bytes).expect_err("desync");
        let is_trailing = matches!(err, ProtocolError::TrailingData { .. });
        prop_assert!(is_trailing);
    }

    #[test]
    fn replies_over_the_cap_are_errors(len in 64usize..4096, cap in 16usize..63) {
        let bytes = serde_json::to_vec(&json!({"status": "success", "result": "x".repeat(len)})).unwrap();
        let mut decoder = ReplyDecoder::new(cap);
        let mut result = Ok(None);
        for piece in bytes.chunks(7) {
            result = decoder.feed(piece);
            if !matches!(result, Ok(None)) { break; }
        }
        let is_too_large = matches!(result, Err(ProtocolError::ReplyTooLarge { .. }));
        prop_assert!(is_too_large);
        prop_assert!(decoder.buffered() <= cap, "memory stays bounded by the cap");
    }

    #[test]
    fn encoded_requests_are_ascii(code in any::<String>()) {
        let bytes = encode_request("execute_code", Some(&json!({"code": code})), usize::MAX).unwrap();
        prop_assert!(bytes.is_ascii());
        let back: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(back["params"]["code"].as_str(), Some(code.as_str()));
    }
}

/// Python's `json.loads` (the addon's parser) reads every encoded request back exactly.
#[test]
fn encoded_requests_round_trip_through_python_json_loads() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut samples: Vec<String> = vec![
        "立方体".into(),
        "カメラ 😀 \u{0} \u{1f} \u{7f} \u{80} \u{ffff} \u{10ffff}".into(),
        "\"\\/\n\r\t\u{2028}\u{2029}".into(),
        "é".repeat(9000),
    ];
    for _ in 0..300 {
        samples.push(any::<String>().new_tree(&mut runner).unwrap().current());
    }
    let mut input = Vec::new();
    for s in &samples {
        let req = encode_request("execute_code", Some(&json!({"code": s})), usize::MAX).unwrap();
        assert!(req.is_ascii());
        input.extend_from_slice(&req);
        input.push(b'\n');
    }
    // Python decodes each request and prints the code back, ASCII-escaped, one per line.
    let script = "import sys, json\nfor line in sys.stdin.buffer:\n    req = json.loads(line.decode('ascii'))\n    sys.stdout.write(json.dumps(req['params']['code']) + '\\n')\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python output");
    writer.join().unwrap().expect("write");
    assert!(out.status.success());
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), samples.len());
    for (line, sample) in lines.iter().zip(&samples) {
        let back: String = serde_json::from_str(line).unwrap();
        assert_eq!(&back, sample);
    }
}
