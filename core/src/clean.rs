//! Cleaning untrusted text before anyone's terminal sees it.
//!
//! A chat line travels from one peer's keyboard to every other peer's
//! terminal, so anything a terminal would interpret is removed here:
//!
//! - invalid UTF-8 becomes U+FFFD;
//! - C0 controls (except tab), DEL and C1 controls are removed, `\r` included,
//!   so a bare carriage return can never overwrite what a reader sees;
//! - escape sequences are removed whole: CSI (`ESC [` … final byte), OSC
//!   (`ESC ]` … BEL or ST, e.g. OSC 52 clipboard writes and title sets), DCS,
//!   SOS, PM and APC strings (… ST), and two-character `ESC x` sequences;
//!   their 8-bit C1 forms too;
//! - Unicode bidi embeddings, overrides and isolates (U+202A–U+202E,
//!   U+2066–U+2069), which can make a line display as something it is not.
//!
//! An unterminated sequence swallows the rest of its input: a line is cleaned
//! on its own, so the damage stops at the line's end.

/// What the cleaner is in the middle of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// After ESC.
    Escape,
    /// After ESC plus intermediate bytes (0x20–0x2F): waits for the final byte.
    EscapeIntermediate,
    /// Inside a CSI sequence: parameters until a final byte 0x40–0x7E.
    Csi,
    /// Inside an OSC/DCS/SOS/PM/APC string: until BEL (OSC) or ST.
    String,
    /// Inside a string, right after an ESC (an ST is `ESC \`).
    StringEscape,
}

/// Calls `emit` for each character of `input` that is safe to show.
///
/// ```
/// let mut out = heapless::String::<32>::new();
/// chat_core::clean(b"hi \x1b]52;c;ZXZpbA==\x07there\r", |c| { let _ = out.push(c); });
/// assert_eq!(out, "hi there");
/// ```
pub fn clean(input: &[u8], mut emit: impl FnMut(char)) {
    let mut state = State::Text;
    for chunk in input.utf8_chunks() {
        for c in chunk.valid().chars() {
            state = step(state, c, &mut emit);
        }
        if !chunk.invalid().is_empty() {
            state = step(state, char::REPLACEMENT_CHARACTER, &mut emit);
        }
    }
}

fn step(state: State, c: char, emit: &mut impl FnMut(char)) -> State {
    const ESC: char = '\u{1b}';
    const BEL: char = '\u{07}';
    const ST: char = '\u{9c}';
    match state {
        State::Text => match c {
            ESC => State::Escape,
            '\u{9b}' => State::Csi,
            '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => State::String,
            _ => {
                if is_shown(c) {
                    emit(c);
                }
                State::Text
            }
        },
        State::Escape => match c {
            '[' => State::Csi,
            ']' | 'P' | 'X' | '^' | '_' => State::String,
            '\u{20}'..='\u{2f}' => State::EscapeIntermediate,
            // `ESC x`: the sequence is two characters long, both dropped.
            _ => State::Text,
        },
        State::EscapeIntermediate => match c {
            '\u{20}'..='\u{2f}' => State::EscapeIntermediate,
            _ => State::Text,
        },
        State::Csi => match c {
            '\u{40}'..='\u{7e}' => State::Text,
            _ => State::Csi,
        },
        State::String => match c {
            BEL | ST => State::Text,
            ESC => State::StringEscape,
            _ => State::String,
        },
        State::StringEscape => match c {
            '\\' => State::Text,
            ESC => State::StringEscape,
            _ => State::String,
        },
    }
}

/// Whether `c` may reach a terminal on its own.
fn is_shown(c: char) -> bool {
    match c {
        '\t' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => false,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => false,
        _ => true,
    }
}

#[cfg(test)]
mod test {
    use super::clean;
    use heapless::String;

    fn cleaned(input: &[u8]) -> String<256> {
        let mut out = String::new();
        clean(input, |c| out.push(c).unwrap());
        out
    }

    #[test]
    fn plain_text_and_tab_pass_through() {
        assert_eq!(cleaned("héllo\twörld ✓".as_bytes()), "héllo\twörld ✓");
    }

    #[test]
    fn c0_c1_and_del_are_removed() {
        assert_eq!(cleaned(b"a\x00b\x07c\x08d\x7fe"), "abcde");
        assert_eq!(cleaned("x\u{85}y\u{8d}z".as_bytes()), "xyz");
    }

    #[test]
    fn bare_carriage_return_cannot_overwrite() {
        assert_eq!(cleaned(b"I owe you 100\rI owe you 0"), "I owe you 100I owe you 0");
    }

    #[test]
    fn csi_sequences_are_removed_whole() {
        assert_eq!(cleaned(b"\x1b[31mred\x1b[0m \x1b[2J\x1b[1;1Hx"), "red x");
        assert_eq!(cleaned("\u{9b}31mred".as_bytes()), "red");
    }

    #[test]
    fn osc_sequences_are_removed_whole() {
        // OSC 52 (clipboard write) ended by BEL, title set ended by ST.
        assert_eq!(cleaned(b"a\x1b]52;c;cm0gLXJmIH4=\x07b"), "ab");
        assert_eq!(cleaned(b"a\x1b]0;pwned\x1b\\b"), "ab");
        assert_eq!(cleaned("a\u{9d}0;t\u{9c}b".as_bytes()), "ab");
    }

    #[test]
    fn dcs_and_single_escapes_are_removed() {
        assert_eq!(cleaned(b"a\x1bPq#0;2;0;0;0\x1b\\b"), "ab");
        assert_eq!(cleaned(b"a\x1bcb\x1b(Bc\x1b7d"), "abcd");
    }

    #[test]
    fn unterminated_sequence_swallows_the_rest() {
        assert_eq!(cleaned(b"ok\x1b]0;never ends"), "ok");
    }

    #[test]
    fn bidi_controls_are_removed() {
        assert_eq!(cleaned("a\u{202e}evil\u{202c}b\u{2066}c\u{2069}".as_bytes()), "aevilbc");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(cleaned(b"a\xffb\xe2\x82c"), "a\u{fffd}b\u{fffd}c");
    }
}
