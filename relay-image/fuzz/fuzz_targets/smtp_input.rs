//! The relay's input path: SMTP command lines and DATA.
//!
//! Properties checked on every input:
//! - parsing never panics, and a reply to an unparsable line is one line (no CR or LF from the
//!   client is echoed into it);
//! - the DATA reader finds the same end whether the bytes arrive at once or split in two;
//! - a kept message has only CRLF line ends, and once dot-stuffed for the next hop the only
//!   `<CRLF>.<CRLF>` in it is the terminator, so no input can smuggle a second message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwarden_relay::data::{DataProgress, DataReader};
use mailwarden_relay::delivery::client::dot_stuffed;
use mailwarden_relay::submission::syntax_reply;
use smtp_proto::Error as ProtoError;
use smtp_proto::request::receiver::RequestReceiver;

fuzz_target!(|input: &[u8]| {
    let split = input.first().map_or(0, |b| *b as usize).min(input.len());

    let mut receiver = RequestReceiver::default();
    for chunk in [&input[..split], &input[split..]] {
        let mut iter = chunk.iter();
        loop {
            match receiver.ingest(&mut iter) {
                Ok(request) => drop(request.into_owned()),
                Err(ProtoError::NeedsMoreData { .. }) => break,
                Err(error) => {
                    let reply = syntax_reply(&error);
                    assert!(!reply.contains(['\r', '\n']), "reply {reply:?}");
                }
            }
        }
    }

    let mut whole = DataReader::new(1 << 20);
    let whole_end = match whole.feed(input) {
        DataProgress::Complete { consumed } => Some(consumed),
        DataProgress::NeedMore => None,
    };
    let mut parts = DataReader::new(1 << 20);
    let parts_end = match parts.feed(&input[..split]) {
        DataProgress::Complete { consumed } => Some(consumed),
        DataProgress::NeedMore => match parts.feed(&input[split..]) {
            DataProgress::Complete { consumed } => Some(split + consumed),
            DataProgress::NeedMore => None,
        },
    };
    assert_eq!(whole_end, parts_end);
    let message = whole.into_message();
    assert_eq!(message, parts.into_message());

    if whole_end.is_some() {
        for (i, &b) in message.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR kept");
            }
            if b == b'\n' {
                assert!(i > 0 && message[i - 1] == b'\r', "bare LF kept");
            }
        }
        let mut wire = b"\r\n".to_vec();
        wire.extend_from_slice(&dot_stuffed(&message));
        let first_end = wire.windows(5).position(|w| w == b"\r\n.\r\n");
        assert_eq!(
            first_end,
            Some(wire.len() - 5),
            "a second end of data inside the message"
        );
    }
});
