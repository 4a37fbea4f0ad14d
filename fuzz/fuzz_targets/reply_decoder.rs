//! Fuzz the reply decoder: arbitrary bytes in arbitrary chunks. It must never panic, never
//! buffer more than its cap, and reach the same verdict whatever the chunking.
#![no_main]

use blender_session_mcp::backend::classic::protocol::{Reply, ReplyDecoder};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 4096;

/// Feed `data` in the given chunk sizes; return the verdict and how many bytes were fed.
fn decode(data: &[u8], sizes: &[u8]) -> (Result<Option<Reply>, String>, usize) {
    let mut decoder = ReplyDecoder::new(CAP);
    let mut fed = 0;
    let mut i = 0;
    while fed < data.len() {
        let size = (sizes.get(i).copied().unwrap_or(255) as usize).max(1);
        i += 1;
        let end = (fed + size).min(data.len());
        let verdict = decoder.feed(&data[fed..end]);
        assert!(
            decoder.buffered() <= CAP,
            "the decoder buffered past its cap"
        );
        fed = end;
        match verdict {
            Ok(None) => continue,
            Ok(Some(reply)) => return (Ok(Some(reply)), fed),
            Err(e) => return (Err(e.to_string()), fed),
        }
    }
    (Ok(None), fed)
}

fuzz_target!(|input: &[u8]| {
    if input.is_empty() {
        return;
    }
    let split = (input[0] as usize) % input.len().max(1);
    let (sizes, data) = input[1..].split_at(split.min(input.len() - 1));
    let (chunked, fed) = decode(data, sizes);
    // The same bytes in one piece give the same verdict.
    let (whole, _) = decode(&data[..fed], &[255; 64]);
    let whole_in_one = {
        let mut d = ReplyDecoder::new(CAP);
        d.feed(&data[..fed]).map_err(|e| e.to_string())
    };
    match (&chunked, &whole_in_one) {
        (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b),
        (Ok(None), Ok(None)) => {}
        (Err(_), Err(_)) => {}
        (Ok(None), Err(_)) | (Err(_), Ok(None)) if fed > CAP => {}
        _ => panic!("chunking changed the verdict: {chunked:?} vs {whole_in_one:?} ({whole:?})"),
    }
    // A decoded reply really is the JSON that was sent.
    if let Ok(Some(reply)) = &chunked {
        let text = &data[..fed];
        let value: serde_json::Value =
            serde_json::from_slice(text).expect("decoded bytes are JSON");
        assert_eq!(&Reply::from_value(value).expect("a reply"), reply);
    }
});
