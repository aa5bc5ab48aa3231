//! What a client message may cost before it is parsed, checked on its bytes.
//!
//! serde builds a tree of a message before anything can look at it, and rmcp does so more
//! than once (its message enums are untagged, so each is buffered, then rebuilt), at about
//! two hundred bytes per JSON value however small the value is: a 4 MiB body of zeros
//! (`[0,0,…]`) cost close to 400 MiB, a 15 MB stdio line 1.4 GiB. The byte caps
//! (`--max-body-bytes`, `--max-message-bytes`) bound the text, not the tree. So every
//! message from a client (stdio lines, `/mcp` and `/message` bodies) first passes this
//! check, which walks its bytes once, allocating nothing:
//!
//! - nesting deeper than `--max-json-depth`, or more values than `--max-json-values` (keys
//!   count as values: each costs a map entry), is refused with a parse error (-32700)
//!   before any tree is built;
//! - a request id or progress token longer than `--max-id-bytes` (as JSON text) is refused
//!   with an Invalid Request error (-32600): each is copied into the places that track a
//!   call for as long as it is held (the ids in flight, rmcp's own tables), so a long one
//!   would multiply what a held call costs.
//!
//! A message that passes is parsed as before, and one that is not JSON at all is left for
//! that parse to refuse.

use rmcp::model::{ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::json_shape::Exceeded;

/// The bounds on one client message's shape (`--max-json-depth`, `--max-json-values`,
/// `--max-id-bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageShape {
    pub max_depth: usize,
    pub max_values: usize,
    pub max_id_bytes: usize,
}

/// Why a message was refused, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    TooDeep {
        limit: usize,
    },
    TooManyValues {
        limit: usize,
    },
    LongId {
        limit: usize,
    },
    /// The request's own id is short enough to answer to.
    LongProgressToken {
        limit: usize,
        id: Option<RequestId>,
    },
}

impl Refused {
    pub fn code(&self) -> ErrorCode {
        match self {
            Refused::TooDeep { .. } | Refused::TooManyValues { .. } => ErrorCode::PARSE_ERROR,
            Refused::LongId { .. } | Refused::LongProgressToken { .. } => {
                ErrorCode::INVALID_REQUEST
            }
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refused::TooDeep { limit } => format!(
                "the message nests JSON deeper than this server's {limit} levels \
                 (--max-json-depth) and was not read: flatten it, or ask the operator to \
                 raise the limit"
            ),
            Refused::TooManyValues { limit } => format!(
                "the message holds more JSON values than this server's {limit} \
                 (--max-json-values; object keys count) and was not read: send fewer, \
                 larger values (attach bulky data as a file), or ask the operator to raise \
                 the limit"
            ),
            Refused::LongId { limit } => format!(
                "the request id is longer than this server's {limit} bytes (--max-id-bytes) \
                 and the request was not run: use a short id"
            ),
            Refused::LongProgressToken { limit, .. } => format!(
                "the progress token (params._meta.progressToken) is longer than this \
                 server's {limit} bytes (--max-id-bytes) and the request was not run: use a \
                 short token"
            ),
        }
    }

    /// The JSON-RPC error for this refusal: to the request's id when it is known and
    /// short, else to `fallback` (what could be read from the message's start), else null.
    pub fn answer(&self, fallback: Option<RequestId>) -> ServerJsonRpcMessage {
        let id = match self {
            Refused::LongProgressToken { id, .. } => id.clone().or(fallback),
            Refused::LongId { .. } => None,
            _ => fallback,
        };
        ServerJsonRpcMessage::error(ErrorData::new(self.code(), self.message(), None), id)
    }
}

impl MessageShape {
    /// Whether `text`, one JSON-RPC message (or batch), is within the bounds.
    pub fn check(&self, text: &[u8]) -> Result<(), Refused> {
        crate::json_shape::within(text, self.max_depth, self.max_values).map_err(|exceeded| {
            match exceeded {
                Exceeded::Depth => Refused::TooDeep {
                    limit: self.max_depth,
                },
                Exceeded::Values => Refused::TooManyValues {
                    limit: self.max_values,
                },
            }
        })?;
        self.check_id_and_token(text)
    }

    /// The id and progress token, read without building anything: the message's
    /// top level, `params` and `params._meta` are walked as raw text, and only while they
    /// are objects (anything else is left for the real parse to judge).
    fn check_id_and_token(&self, text: &[u8]) -> Result<(), Refused> {
        #[derive(Deserialize)]
        struct Message<'a> {
            #[serde(borrow, default)]
            id: Option<&'a RawValue>,
            #[serde(borrow, default)]
            params: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Params<'a> {
            #[serde(borrow, default, rename = "_meta")]
            meta: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Meta<'a> {
            #[serde(borrow, default, rename = "progressToken")]
            progress_token: Option<&'a RawValue>,
        }
        fn object<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
            let raw = raw?.get();
            raw.starts_with('{')
                .then(|| serde_json::from_str(raw).ok())
                .flatten()
        }
        // Only an object is a message (rmcp takes no batches): a derived struct would also
        // read an array, by position.
        if text.trim_ascii_start().first() != Some(&b'{') {
            return Ok(());
        }
        let Ok(message) = serde_json::from_slice::<Message<'_>>(text) else {
            return Ok(());
        };
        let limit = self.max_id_bytes;
        if message.id.is_some_and(|id| id.get().len() > limit) {
            return Err(Refused::LongId { limit });
        }
        let token = object::<Params<'_>>(message.params)
            .and_then(|params| object::<Meta<'_>>(params.meta))
            .and_then(|meta| meta.progress_token);
        if token.is_some_and(|token| token.get().len() > limit) {
            let id = message
                .id
                .and_then(|id| serde_json::from_str::<RequestId>(id.get()).ok());
            return Err(Refused::LongProgressToken { limit, id });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: MessageShape = MessageShape {
        max_depth: 4,
        max_values: 10,
        max_id_bytes: 8,
    };

    #[test]
    fn values_and_depth_are_counted_on_the_bytes() {
        // {"a":[1,true,"x\"]"],"b":null}: object, a, array, 1, true, string, b, null = 8
        assert_eq!(SHAPE.check(br#"{"a":[1,true,"x\"]"],"b":null}"#), Ok(()));
        assert_eq!(
            SHAPE.check(br#"{"a":[1,true,"x\"]"],"b":null,"c":0,"d":0}"#),
            Err(Refused::TooManyValues { limit: 10 })
        );
        assert_eq!(SHAPE.check(b"[[[[0]]]]"), Ok(()));
        assert_eq!(
            SHAPE.check(b"[[[[[0]]]]]"),
            Err(Refused::TooDeep { limit: 4 })
        );
        // Brackets inside strings are text.
        assert_eq!(SHAPE.check(br#"["[[[[[[[[[[[[\\"]"#), Ok(()));
        assert_eq!(SHAPE.check(b"-1.5e3"), Ok(()));
    }

    #[test]
    fn long_ids_and_progress_tokens_are_refused() {
        // Counted as JSON text, quotes included.
        assert_eq!(SHAPE.check(br#"{"id":"123456","method":"ping"}"#), Ok(()));
        assert_eq!(
            SHAPE.check(br#"{"id":"1234567","method":"ping"}"#),
            Err(Refused::LongId { limit: 8 })
        );
        let token = br#"{"id":3,"params":{"_meta":{"progressToken":"1234567"}}}"#;
        assert_eq!(
            SHAPE.check(token),
            Err(Refused::LongProgressToken {
                limit: 8,
                id: Some(RequestId::Number(3))
            })
        );
        assert_eq!(
            SHAPE.check(br#"{"id":3,"params":{"_meta":{"progressToken":7}}}"#),
            Ok(())
        );
        // Shapes that are not objects are the parser's to refuse.
        assert_eq!(SHAPE.check(br#"{"id":3,"params":[1]}"#), Ok(()));
        assert_eq!(SHAPE.check(br#"["1234567890"]"#), Ok(()));
        assert_eq!(SHAPE.check(b"not json"), Ok(()));
    }
}
