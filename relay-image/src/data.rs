//! The DATA phase: finding the end of a message and undoing dot-stuffing.
//!
//! Only `<CRLF>.<CRLF>` ends a message, where the first CRLF may be the one that ended the DATA
//! command itself. A dot after a bare LF or a bare CR is ordinary content, so the SMTP smuggling
//! sequences (`<LF>.<LF>`, `<CR>.<CR>`, `<LF>.<CRLF>` and their mixes) never split one message
//! into two. Bare LF and bare CR are stored as CRLF, so a later hop cannot read them as line ends
//! of its own either: delivery dot-stuffs every line that starts with a dot.

/// Collects one message from the bytes that follow a `354` reply.
#[derive(Debug)]
pub struct DataReader {
    message: Vec<u8>,
    max_bytes: usize,
    oversized: bool,
    /// The last line end was a CRLF (or DATA just began): a dot here may start the terminator.
    strict_line_start: bool,
    cr_pending: bool,
    dot: DotState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DotState {
    None,
    /// A dot right after a CRLF line end.
    Dot,
    /// That dot followed by a CR.
    DotCr,
}

/// What the reader made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum DataProgress {
    /// The terminator has not been seen; every byte was taken.
    NeedMore,
    /// The terminator was seen after this many of the given bytes; the rest belongs to the next
    /// command.
    Complete { consumed: usize },
}

impl DataReader {
    /// A reader that keeps at most `max_bytes` of message; beyond that it only looks for the end.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            message: Vec::new(),
            max_bytes,
            oversized: false,
            strict_line_start: true,
            cr_pending: false,
            dot: DotState::None,
        }
    }

    /// Feeds bytes from the client.
    pub fn feed(&mut self, bytes: &[u8]) -> DataProgress {
        for (i, &b) in bytes.iter().enumerate() {
            if self.step(b) {
                return DataProgress::Complete { consumed: i + 1 };
            }
        }
        DataProgress::NeedMore
    }

    /// The message exceeded the size limit; its content was not kept.
    pub fn oversized(&self) -> bool {
        self.oversized
    }

    /// The most message bytes this reader keeps.
    pub fn limit(&self) -> usize {
        self.max_bytes
    }

    /// The message, with CRLF line ends and dot-stuffing removed.
    pub fn into_message(self) -> Vec<u8> {
        self.message
    }

    /// Takes one byte; returns true when it completed the terminator.
    fn step(&mut self, b: u8) -> bool {
        match self.dot {
            DotState::Dot if b == b'\r' => {
                self.dot = DotState::DotCr;
                return false;
            }
            DotState::Dot => {
                // A stuffed dot: the leading dot is dropped and the byte is ordinary content.
                self.dot = DotState::None;
            }
            DotState::DotCr if b == b'\n' => return true,
            DotState::DotCr => {
                // `<CRLF>.<CR>` then something else: a line holding one dot, ended by a bare CR.
                self.dot = DotState::None;
                self.push(b".\r\n");
                self.strict_line_start = false;
            }
            DotState::None => {}
        }

        if self.cr_pending {
            self.cr_pending = false;
            self.push(b"\r\n");
            if b == b'\n' {
                self.strict_line_start = true;
                return false;
            }
            self.strict_line_start = false;
        }

        match b {
            b'\r' => self.cr_pending = true,
            b'\n' => {
                self.push(b"\r\n");
                self.strict_line_start = false;
            }
            b'.' if self.strict_line_start => {
                self.dot = DotState::Dot;
                self.strict_line_start = false;
            }
            _ => {
                self.push(&[b]);
                self.strict_line_start = false;
            }
        }
        false
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.oversized {
            return;
        }
        if self.message.len() + bytes.len() > self.max_bytes {
            self.oversized = true;
            self.message = Vec::new();
            return;
        }
        self.message.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Vec<u8>, Option<usize>) {
        let mut reader = DataReader::new(1 << 20);
        match reader.feed(input) {
            DataProgress::Complete { consumed } => (reader.into_message(), Some(consumed)),
            DataProgress::NeedMore => (reader.into_message(), None),
        }
    }

    #[test]
    fn crlf_dot_crlf_ends_the_message() {
        let (message, consumed) = read_all(b"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(message, b"Subject: a\r\n\r\nbody\r\n");
        assert_eq!(consumed, Some(23));
    }

    #[test]
    fn an_empty_message_ends_at_the_first_dot_line() {
        let (message, consumed) = read_all(b".\r\n");
        assert_eq!(message, b"");
        assert_eq!(consumed, Some(3));
    }

    #[test]
    fn smuggling_sequences_do_not_end_the_message() {
        for sequence in [
            &b"\n.\n"[..],
            b"\r.\r",
            b"\n.\r\n",
            b"\r.\r\n",
            b"\r\n.\n",
            b"\r\n.\r",
        ] {
            let mut input = b"a".to_vec();
            input.extend_from_slice(sequence);
            input.extend_from_slice(b"MAIL FROM:<x@evil.example>\r\n");
            let (message, consumed) = read_all(&input);
            assert_eq!(consumed, None, "{sequence:?} ended the data");
            assert!(
                message.ends_with(b"MAIL FROM:<x@evil.example>\r\n"),
                "{sequence:?}"
            );
        }
    }

    #[test]
    fn bare_line_ends_are_stored_as_crlf() {
        let (message, consumed) = read_all(b"a\nb\rc\n.\nd\r\n.\r\n");
        assert_eq!(message, b"a\r\nb\r\nc\r\n.\r\nd\r\n");
        assert_eq!(consumed, Some(14));
    }

    #[test]
    fn stuffed_dots_are_removed() {
        let (message, _) = read_all(b"..hidden\r\n...\r\nx\r\n.\r\n");
        assert_eq!(message, b".hidden\r\n..\r\nx\r\n");
    }

    #[test]
    fn the_terminator_may_span_reads() {
        let mut reader = DataReader::new(100);
        assert_eq!(reader.feed(b"hello\r"), DataProgress::NeedMore);
        assert_eq!(reader.feed(b"\n."), DataProgress::NeedMore);
        assert_eq!(reader.feed(b"\r"), DataProgress::NeedMore);
        assert_eq!(
            reader.feed(b"\nNOOP\r\n"),
            DataProgress::Complete { consumed: 1 }
        );
        assert_eq!(reader.into_message(), b"hello\r\n");
    }

    #[test]
    fn an_oversized_message_is_dropped_but_still_terminated() {
        let mut reader = DataReader::new(4);
        assert_eq!(
            reader.feed(b"12345678\r\n.\r\n"),
            DataProgress::Complete { consumed: 13 }
        );
        assert!(reader.oversized());
        assert_eq!(reader.into_message(), b"");
    }
}
