//! `COPY … TO STDOUT` text format: one row a line, columns separated by tabs, `\N` for NULL,
//! backslash escapes for the delimiter, newlines and backslashes. Each column is the type's text
//! output, the same text pgoutput sends, so snapshot rows map through the same [`crate::value`] code.

use std::borrow::Cow;

/// Splits one line (without its `\n`) into columns, undoing the escapes.
pub fn split_row(line: &[u8]) -> Vec<Option<Cow<'_, [u8]>>> {
    line.split(|&b| b == b'\t')
        .map(|field| {
            if field == b"\\N" {
                None
            } else if field.contains(&b'\\') {
                Some(Cow::Owned(unescape(field)))
            } else {
                Some(Cow::Borrowed(field))
            }
        })
        .collect()
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(u8::try_from(v & 0xff).unwrap_or(0));
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match field.get(i).and_then(|d| char::from(*d).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    out.push(b'x');
                } else {
                    out.push(u8::try_from(v).unwrap_or(0));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Reassembles lines from the chunks `COPY` streams (a chunk may end mid-line).
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

impl LineBuffer {
    /// Calls `f` with every complete line in `chunk` (plus what was pending).
    pub fn push<E>(&mut self, chunk: &[u8], mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                None => {
                    self.pending.extend_from_slice(rest);
                    return Ok(());
                }
                Some(i) => {
                    self.pending.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.pending);
                    f(&line)?;
                    rest = &rest[i + 1..];
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            f(&rest[..i])?;
            rest = &rest[i + 1..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Bytes of an unterminated last line (a well-formed COPY never leaves any).
    pub fn leftover(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Postgres' COPY text escaping (CopyAttributeOutText).
    fn escape(v: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in v {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                8 => out.extend_from_slice(b"\\b"),
                12 => out.extend_from_slice(b"\\f"),
                11 => out.extend_from_slice(b"\\v"),
                _ => out.push(b),
            }
        }
        out
    }

    #[test]
    fn reads_nulls_escapes_and_octal() {
        let row = split_row(b"1\t\\N\ta\\tb\\\\c\t\\101\\x42\t");
        let got: Vec<Option<Vec<u8>>> = row.into_iter().map(|c| c.map(Cow::into_owned)).collect();
        assert_eq!(
            got,
            vec![Some(b"1".to_vec()), None, Some(b"a\tb\\c".to_vec()), Some(b"AB".to_vec()), Some(Vec::new())]
        );
    }

    proptest! {
        #[test]
        fn rows_round_trip(cols in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 1..6)) {
            let line: Vec<u8> = cols
                .iter()
                .map(|c| match c { None => b"\\N".to_vec(), Some(v) => escape(v) })
                .collect::<Vec<_>>()
                .join(&b'\t');
            let back: Vec<Option<Vec<u8>>> = split_row(&line).into_iter().map(|c| c.map(Cow::into_owned)).collect();
            prop_assert_eq!(back, cols);
        }

        #[test]
        fn lines_survive_any_chunking(lines in proptest::collection::vec("[a-z\t]{0,12}", 0..10), cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            let mut buf = LineBuffer::default();
            let mut got: Vec<String> = Vec::new();
            for w in points.windows(2) {
                buf.push::<()>(&bytes[w[0]..w[1]], |l| { got.push(String::from_utf8_lossy(l).into_owned()); Ok(()) }).ok();
            }
            prop_assert_eq!(got, lines);
            prop_assert_eq!(buf.leftover(), 0);
        }
    }
}
