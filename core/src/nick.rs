//! Nicknames: what a valid one is, and how a taken one gets a variant.

use core::fmt;
use heapless::String;

/// The longest nickname, in bytes. IRC's classic limit is 9; 32 leaves room
/// for real names and UTF-8 while keeping `{nick}: ` short on a board.
pub const MAX_NICK: usize = 32;

/// A registered nickname: non-empty, at most [`MAX_NICK`] bytes of cleaned
/// text, no whitespace, `:` or control characters, and no leading `/`, `*`,
/// `!` or `#` (those start commands and server notices, so no notice can ever
/// read like `{nick}: text`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Nick(String<MAX_NICK>);

/// Why a nickname was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum NickError {
    /// Nothing left after cleaning.
    Empty,
    /// Longer than [`MAX_NICK`] bytes.
    TooLong,
    /// Has whitespace, `:` or a control character.
    BadCharacter,
    /// Starts with `/`, `*`, `!` or `#`.
    BadStart,
    /// Someone in the room already has it (ignoring ASCII case).
    Taken,
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NickError::Empty => "it is empty",
            NickError::TooLong => return write!(f, "it is longer than {MAX_NICK} bytes"),
            NickError::BadCharacter => "it has a space, ':' or a control character",
            NickError::BadStart => "it starts with '/', '*', '!' or '#'",
            NickError::Taken => "it is taken",
        })
    }
}

fn is_allowed(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || c == ':')
}

fn is_bad_start(c: char) -> bool {
    matches!(c, '/' | '*' | '!' | '#')
}

impl Nick {
    /// No nickname yet (not a valid one).
    pub(crate) const EMPTY: Nick = Nick(String::new());

    /// Checks an already cleaned nickname against every rule but uniqueness.
    pub fn parse(text: &str) -> Result<Nick, NickError> {
        let first = text.chars().next().ok_or(NickError::Empty)?;
        if text.len() > MAX_NICK {
            return Err(NickError::TooLong);
        }
        if !text.chars().all(is_allowed) {
            return Err(NickError::BadCharacter);
        }
        if is_bad_start(first) {
            return Err(NickError::BadStart);
        }
        let mut nick = String::new();
        nick.push_str(text).map_err(|_| NickError::TooLong)?;
        Ok(Nick(nick))
    }

    /// Makes a valid nickname out of anything: disallowed characters become
    /// `_`, bad leading characters are dropped, the rest is cut to fit, and
    /// nothing at all becomes `guest`. Used for seed-dialect clients, which
    /// cannot be asked again.
    pub fn salvage(text: &str) -> Nick {
        let mut nick = String::<MAX_NICK>::new();
        for c in text.chars().skip_while(|&c| is_bad_start(c) || c.is_whitespace()) {
            let c = if is_allowed(c) { c } else { '_' };
            if nick.push(c).is_err() {
                break;
            }
        }
        if nick.is_empty() {
            let _ = nick.push_str("guest");
        }
        Nick(nick)
    }

    /// The `n`th variant of this nickname (`alice2`, `alice3`, …), cut so
    /// that it still fits [`MAX_NICK`] bytes.
    pub fn variant(&self, n: u32) -> Nick {
        let mut digits = String::<10>::new();
        let _ = fmt::write(&mut digits, format_args!("{n}"));
        let mut keep = MAX_NICK - digits.len();
        while !self.0.is_char_boundary(keep.min(self.0.len())) {
            keep -= 1;
        }
        let mut nick = String::new();
        let _ = nick.push_str(&self.0[..keep.min(self.0.len())]);
        let _ = nick.push_str(&digits);
        Nick(nick)
    }

    /// The nickname as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether two nicknames are the same for uniqueness (ASCII case folded).
    pub fn same(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl fmt::Display for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Nick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Nick {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rules() {
        assert!(Nick::parse("alice").is_ok());
        assert!(Nick::parse("Zoë_42").is_ok());
        assert_eq!(Nick::parse(""), Err(NickError::Empty));
        assert_eq!(Nick::parse(&"x".repeat(33)), Err(NickError::TooLong));
        assert!(Nick::parse(&"x".repeat(32)).is_ok());
        assert_eq!(Nick::parse("a b"), Err(NickError::BadCharacter));
        assert_eq!(Nick::parse("a:b"), Err(NickError::BadCharacter));
        assert_eq!(Nick::parse("a\tb"), Err(NickError::BadCharacter));
        for bad in ["/x", "*x", "!x", "#x"] {
            assert_eq!(Nick::parse(bad), Err(NickError::BadStart));
        }
    }

    #[test]
    fn salvage_always_gives_a_valid_nick() {
        assert_eq!(Nick::salvage("Neural Net").as_str(), "Neural_Net");
        assert_eq!(Nick::salvage("*** :x").as_str(), "_x");
        assert_eq!(Nick::salvage("").as_str(), "guest");
        assert_eq!(Nick::salvage(&"é".repeat(40)).as_str().len(), 32);
        for s in ["Neural Net", "*** :x", "", "//", "a:b"] {
            assert!(Nick::parse(Nick::salvage(s).as_str()).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn variants_fit() {
        let alice = Nick::parse("alice").unwrap();
        assert_eq!(alice.variant(2).as_str(), "alice2");
        let long = Nick::parse(&"é".repeat(16)).unwrap();
        let v = long.variant(10);
        assert!(v.as_str().len() <= MAX_NICK && v.as_str().ends_with("10"));
        assert!(Nick::parse(v.as_str()).is_ok());
    }
}
