//! The shape of a JSON text, measured on its bytes: how deep it nests and how many values it
//! holds. A parsed tree costs a few dozen to a few hundred bytes per value however short
//! the value's text (`0,` is two bytes), so a text's byte length says little about what
//! parsing it costs; its number of values does. Both ends use this: client messages are
//! checked before they are parsed ([`crate::transport::message_shape`]), and a worker's
//! structured output before it may become a tree ([`crate::handinger`]).
//!
//! One pass, no allocation, no validation: malformed text within the bounds is the
//! parser's to refuse, and costs the parser no more than its values.

/// Which bound a text crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    Depth,
    Values,
}

/// Whether `text` nests at most `max_depth` deep and holds at most `max_values` values
/// (containers, strings, object keys and other scalars each count one). Stops at the first
/// bound crossed.
pub(crate) fn within(text: &[u8], max_depth: usize, max_values: usize) -> Result<(), Exceeded> {
    let mut depth = 0usize;
    let mut values = 0usize;
    // Inside a scalar such as `true` or `-1.5e3`: its later bytes start no new value.
    let mut in_scalar = false;
    let count = |values: &mut usize| {
        *values += 1;
        if *values > max_values {
            Err(Exceeded::Values)
        } else {
            Ok(())
        }
    };
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                count(&mut values)?;
                in_scalar = false;
                i = string_end(text, i + 1);
            }
            b'{' | b'[' => {
                count(&mut values)?;
                in_scalar = false;
                depth += 1;
                if depth > max_depth {
                    return Err(Exceeded::Depth);
                }
            }
            b'}' | b']' => {
                in_scalar = false;
                depth = depth.saturating_sub(1);
            }
            b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => in_scalar = false,
            _ => {
                if !in_scalar {
                    count(&mut values)?;
                    in_scalar = true;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

/// The index of the quote closing a string whose text starts at `from` (the end of
/// `text` when it is not closed).
fn string_end(text: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_depth_are_counted_on_the_bytes() {
        // object, a, array, 1, true, string, b, null = 8
        let text = br#"{"a":[1,true,"x\"]"],"b":null}"#;
        assert_eq!(within(text, 2, 8), Ok(()));
        assert_eq!(within(text, 2, 7), Err(Exceeded::Values));
        assert_eq!(within(text, 1, 8), Err(Exceeded::Depth));
        // Brackets inside strings are text; an escaped backslash ends no string early.
        assert_eq!(within(br#"["[[[[[[[[[[[[\\"]"#, 1, 2), Ok(()));
        assert_eq!(within(b" -1.5e3 ", 0, 1), Ok(()));
        assert_eq!(within(b"[0,0,0]", 1, 3), Err(Exceeded::Values));
    }
}
