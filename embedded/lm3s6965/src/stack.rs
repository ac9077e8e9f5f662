//! Stack high-water-mark measurement by painting.
//!
//! At boot the unused part of the stack (from the lowest stack address up to
//! just below the current stack pointer) is filled with a pattern. Later, the
//! first word from the bottom that no longer holds the pattern marks the
//! deepest point the stack ever reached (exceptions included, since they
//! push onto the same MSP stack).
//!
//! cortex-m-rt places the stack at the top of RAM growing down towards
//! `_stack_end` (the end of .bss/.uninit), so "free stack" is all RAM not
//! used by statics.

use core::ptr::{read_volatile, write_volatile};

const PAINT: u32 = 0x5AA5_C33C;
/// Words left unpainted just below the live stack pointer, so painting never
/// overwrites anything the painting function itself might spill.
const GUARD_BYTES: usize = 64;

extern "C" {
    /// Highest stack address (initial MSP), provided by cortex-m-rt.
    static _stack_start: u32;
    /// Lowest stack address, provided by cortex-m-rt's link.x.
    static _stack_end: u32;
}

fn top() -> usize {
    // Only the symbol's address is used; nothing is read through it.
    (&raw const _stack_start) as usize
}

fn bottom() -> usize {
    (&raw const _stack_end) as usize
}

/// Total stack space in bytes (RAM not taken by statics).
pub fn size() -> usize {
    top() - bottom()
}

/// Paints the currently unused stack. Call once, early in `main`, before
/// interrupts are enabled.
#[inline(never)]
pub fn paint() {
    let sp = cortex_m::register::msp::read() as usize;
    let end = sp.saturating_sub(GUARD_BYTES) & !3;
    let mut p = bottom();
    while p < end {
        // SAFETY: [bottom, sp - GUARD) is RAM below the live stack pointer
        // that nothing references (interrupts are not yet enabled).
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Peak stack usage in bytes since `paint`.
pub fn high_water() -> usize {
    let mut p = bottom();
    let t = top();
    // SAFETY: reads of RAM words within the stack region, word aligned.
    while p < t && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    t - p
}
