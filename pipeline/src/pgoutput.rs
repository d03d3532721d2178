//! Decoder of the `pgoutput` logical-decoding protocol (version 1), the payload of the replication
//! stream's XLogData messages: Begin, Commit, Origin, Relation, Type, Insert, Update, Delete, Truncate
//! and Message. Pure: bytes in, borrowed structures out (column values are slices of the input, no
//! copies). See "Logical Replication Message Formats" in the Postgres manual.

use crate::lsn::Lsn;

/// A decoding failure: the bytes are not a well-formed pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("pgoutput message truncated while reading {0}")]
    Truncated(&'static str),
    #[error("unknown pgoutput message tag {0:?}")]
    UnknownTag(char),
    #[error("unknown tuple column kind {0:?}")]
    UnknownColumnKind(char),
    #[error("unexpected tuple marker {0:?}")]
    UnexpectedMarker(char),
    #[error("string is not NUL-terminated UTF-8")]
    BadString,
}

/// One column of a tuple as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datum<'a> {
    Null,
    /// A TOASTed value that the change did not touch: the server does not send it.
    UnchangedToast,
    /// The type's text output.
    Text(&'a [u8]),
    /// The type's binary send format (only with the `binary` option).
    Binary(&'a [u8]),
}

/// One column of a relation as the Relation message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn<'a> {
    /// Part of the replica identity (with REPLICA IDENTITY FULL: every column).
    pub key: bool,
    pub name: &'a str,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Begin {
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01 (Postgres epoch).
        commit_ts: i64,
        xid: u32,
    },
    Commit {
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_ts: i64,
    },
    Origin {
        lsn: Lsn,
        name: &'a str,
    },
    Relation {
        id: u32,
        namespace: &'a str,
        name: &'a str,
        replica_identity: u8,
        columns: Vec<RelationColumn<'a>>,
    },
    Type {
        id: u32,
        namespace: &'a str,
        name: &'a str,
    },
    Insert {
        relation: u32,
        new: Vec<Datum<'a>>,
    },
    Update {
        relation: u32,
        /// The old row: its key columns (`K`) or, with REPLICA IDENTITY FULL, the whole row (`O`).
        old: Option<Vec<Datum<'a>>>,
        new: Vec<Datum<'a>>,
    },
    Delete {
        relation: u32,
        old: Vec<Datum<'a>>,
    },
    Truncate {
        cascade: bool,
        restart_identity: bool,
        relations: Vec<u32>,
    },
    /// `pg_logical_emit_message`.
    Message {
        transactional: bool,
        lsn: Lsn,
        prefix: &'a str,
        content: &'a [u8],
    },
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    fn lsn(&mut self, what: &'static str) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array(what)?)))
    }

    fn cstr(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        let end = self.buf.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated(what))?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| DecodeError::BadString)?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Datum<'a>>, DecodeError> {
        let n = self.i16("tuple column count")?;
        let mut cols = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for _ in 0..n {
            let datum = match self.u8("column kind")? {
                b'n' => Datum::Null,
                b'u' => Datum::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32("column length")?;
                    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated("column length"))?;
                    let bytes = self.take(len, "column value")?;
                    if kind == b't' { Datum::Text(bytes) } else { Datum::Binary(bytes) }
                }
                other => return Err(DecodeError::UnknownColumnKind(char::from(other))),
            };
            cols.push(datum);
        }
        Ok(cols)
    }
}

/// Decodes one pgoutput message.
pub fn decode(buf: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader { buf };
    let tag = r.u8("message tag")?;
    Ok(match tag {
        b'B' => Message::Begin { final_lsn: r.lsn("final lsn")?, commit_ts: r.i64("commit time")?, xid: r.u32("xid")? },
        b'C' => {
            let _flags = r.u8("commit flags")?;
            Message::Commit {
                commit_lsn: r.lsn("commit lsn")?,
                end_lsn: r.lsn("end lsn")?,
                commit_ts: r.i64("commit time")?,
            }
        }
        b'O' => Message::Origin { lsn: r.lsn("origin lsn")?, name: r.cstr("origin name")? },
        b'R' => {
            let id = r.u32("relation id")?;
            let namespace = r.cstr("namespace")?;
            let name = r.cstr("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let n = r.i16("column count")?;
            let mut columns = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.cstr("column name")?,
                    type_oid: r.u32("column type")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Message::Relation { id, namespace, name, replica_identity, columns }
        }
        b'Y' => {
            Message::Type { id: r.u32("type id")?, namespace: r.cstr("type namespace")?, name: r.cstr("type name")? }
        }
        b'I' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple marker")? {
                b'N' => Message::Insert { relation, new: r.tuple()? },
                m => return Err(DecodeError::UnexpectedMarker(char::from(m))),
            }
        }
        b'U' => {
            let relation = r.u32("relation id")?;
            let (old, marker) = match r.u8("tuple marker")? {
                b'K' | b'O' => {
                    let old = r.tuple()?;
                    (Some(old), r.u8("tuple marker")?)
                }
                m => (None, m),
            };
            if marker != b'N' {
                return Err(DecodeError::UnexpectedMarker(char::from(marker)));
            }
            Message::Update { relation, old, new: r.tuple()? }
        }
        b'D' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple marker")? {
                b'K' | b'O' => Message::Delete { relation, old: r.tuple()? },
                m => return Err(DecodeError::UnexpectedMarker(char::from(m))),
            }
        }
        b'T' => {
            let n = r.u32("relation count")?;
            let options = r.u8("truncate options")?;
            let relations = (0..n).map(|_| r.u32("relation id")).collect::<Result<Vec<_>, _>>()?;
            Message::Truncate { cascade: options & 1 != 0, restart_identity: options & 2 != 0, relations }
        }
        b'M' => {
            let flags = r.u8("message flags")?;
            let lsn = r.lsn("message lsn")?;
            let prefix = r.cstr("message prefix")?;
            let len = r.u32("message length")?;
            let content =
                r.take(usize::try_from(len).map_err(|_| DecodeError::Truncated("message"))?, "message content")?;
            Message::Message { transactional: flags & 1 == 1, lsn, prefix, content }
        }
        other => return Err(DecodeError::UnknownTag(char::from(other))),
    })
}

/// The encoder, for tests: builds the bytes Postgres would send for a message.
#[cfg(test)]
pub(crate) mod encode {
    use super::*;

    fn cstr(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn tuple(out: &mut Vec<u8>, cols: &[Datum<'_>]) {
        out.extend_from_slice(&i16::try_from(cols.len()).unwrap_or(i16::MAX).to_be_bytes());
        for c in cols {
            match c {
                Datum::Null => out.push(b'n'),
                Datum::UnchangedToast => out.push(b'u'),
                Datum::Text(b) | Datum::Binary(b) => {
                    out.push(if matches!(c, Datum::Text(_)) { b't' } else { b'b' });
                    out.extend_from_slice(&i32::try_from(b.len()).unwrap_or(i32::MAX).to_be_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }

    pub(crate) fn message(m: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        match m {
            Message::Begin { final_lsn, commit_ts, xid } => {
                out.push(b'B');
                out.extend_from_slice(&final_lsn.0.to_be_bytes());
                out.extend_from_slice(&commit_ts.to_be_bytes());
                out.extend_from_slice(&xid.to_be_bytes());
            }
            Message::Commit { commit_lsn, end_lsn, commit_ts } => {
                out.extend_from_slice(b"C\0");
                out.extend_from_slice(&commit_lsn.0.to_be_bytes());
                out.extend_from_slice(&end_lsn.0.to_be_bytes());
                out.extend_from_slice(&commit_ts.to_be_bytes());
            }
            Message::Origin { lsn, name } => {
                out.push(b'O');
                out.extend_from_slice(&lsn.0.to_be_bytes());
                cstr(&mut out, name);
            }
            Message::Relation { id, namespace, name, replica_identity, columns } => {
                out.push(b'R');
                out.extend_from_slice(&id.to_be_bytes());
                cstr(&mut out, namespace);
                cstr(&mut out, name);
                out.push(*replica_identity);
                out.extend_from_slice(&i16::try_from(columns.len()).unwrap_or(i16::MAX).to_be_bytes());
                for c in columns {
                    out.push(u8::from(c.key));
                    cstr(&mut out, c.name);
                    out.extend_from_slice(&c.type_oid.to_be_bytes());
                    out.extend_from_slice(&c.type_modifier.to_be_bytes());
                }
            }
            Message::Type { id, namespace, name } => {
                out.push(b'Y');
                out.extend_from_slice(&id.to_be_bytes());
                cstr(&mut out, namespace);
                cstr(&mut out, name);
            }
            Message::Insert { relation, new } => {
                out.push(b'I');
                out.extend_from_slice(&relation.to_be_bytes());
                out.push(b'N');
                tuple(&mut out, new);
            }
            Message::Update { relation, old, new } => {
                out.push(b'U');
                out.extend_from_slice(&relation.to_be_bytes());
                if let Some(old) = old {
                    out.push(b'O');
                    tuple(&mut out, old);
                }
                out.push(b'N');
                tuple(&mut out, new);
            }
            Message::Delete { relation, old } => {
                out.push(b'D');
                out.extend_from_slice(&relation.to_be_bytes());
                out.push(b'O');
                tuple(&mut out, old);
            }
            Message::Truncate { cascade, restart_identity, relations } => {
                out.push(b'T');
                out.extend_from_slice(&u32::try_from(relations.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.push(u8::from(*cascade) | (u8::from(*restart_identity) << 1));
                for r in relations {
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            Message::Message { transactional, lsn, prefix, content } => {
                out.push(b'M');
                out.push(u8::from(*transactional));
                out.extend_from_slice(&lsn.0.to_be_bytes());
                cstr(&mut out, prefix);
                out.extend_from_slice(&u32::try_from(content.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(content);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datum() -> impl Strategy<Value = Datum<'static>> {
        prop_oneof![
            Just(Datum::Null),
            Just(Datum::UnchangedToast),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Datum::Text(Box::leak(v.into_boxed_slice()))),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Datum::Binary(Box::leak(v.into_boxed_slice()))),
        ]
    }

    fn name() -> impl Strategy<Value = &'static str> {
        "[a-z_][a-z0-9_ ]{0,20}".prop_map(|s| &*Box::leak(s.into_boxed_str()))
    }

    fn message() -> impl Strategy<Value = Message<'static>> {
        let tuple = || proptest::collection::vec(datum(), 0..8);
        let column = (any::<bool>(), name(), any::<u32>(), any::<i32>())
            .prop_map(|(key, name, type_oid, type_modifier)| RelationColumn { key, name, type_oid, type_modifier });
        prop_oneof![
            (any::<u64>(), any::<i64>(), any::<u32>()).prop_map(|(l, t, xid)| Message::Begin {
                final_lsn: Lsn(l),
                commit_ts: t,
                xid
            }),
            (any::<u64>(), any::<u64>(), any::<i64>()).prop_map(|(c, e, t)| Message::Commit {
                commit_lsn: Lsn(c),
                end_lsn: Lsn(e),
                commit_ts: t
            }),
            (any::<u64>(), name()).prop_map(|(l, name)| Message::Origin { lsn: Lsn(l), name }),
            (any::<u32>(), name(), name(), any::<u8>(), proptest::collection::vec(column, 0..6)).prop_map(
                |(id, namespace, name, replica_identity, columns)| Message::Relation {
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns
                }
            ),
            (any::<u32>(), name(), name()).prop_map(|(id, namespace, name)| Message::Type { id, namespace, name }),
            (any::<u32>(), tuple()).prop_map(|(relation, new)| Message::Insert { relation, new }),
            (any::<u32>(), proptest::option::of(tuple()), tuple()).prop_map(|(relation, old, new)| Message::Update {
                relation,
                old,
                new
            }),
            (any::<u32>(), tuple()).prop_map(|(relation, old)| Message::Delete { relation, old }),
            (any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u32>(), 0..5)).prop_map(
                |(cascade, restart_identity, relations)| Message::Truncate { cascade, restart_identity, relations }
            ),
            (any::<bool>(), any::<u64>(), name(), proptest::collection::vec(any::<u8>(), 0..50)).prop_map(
                |(transactional, l, prefix, content)| Message::Message {
                    transactional,
                    lsn: Lsn(l),
                    prefix,
                    content: Box::leak(content.into_boxed_slice()),
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn decodes_what_postgres_encodes(m in message()) {
            let bytes = encode::message(&m);
            prop_assert_eq!(decode(&bytes), Ok(m.clone()));
            // Every strict prefix is refused, never misread.
            for cut in 0..bytes.len() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn reads_a_real_insert() {
        // INSERT of (id int4 = 7, name text = 'Acme', note text = NULL), byte for byte as the manual specifies.
        let mut b = vec![b'I', 0, 0, 0x40, 0x01, b'N', 0, 3];
        b.extend_from_slice(&[b't', 0, 0, 0, 1, b'7']);
        b.extend_from_slice(&[b't', 0, 0, 0, 4, b'A', b'c', b'm', b'e']);
        b.push(b'n');
        assert_eq!(
            decode(&b),
            Ok(Message::Insert { relation: 0x4001, new: vec![Datum::Text(b"7"), Datum::Text(b"Acme"), Datum::Null] })
        );
        assert_eq!(decode(b"Z"), Err(DecodeError::UnknownTag('Z')));
    }
}
