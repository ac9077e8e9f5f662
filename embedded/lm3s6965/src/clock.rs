//! Millisecond monotonic clock driven by the SysTick exception.
//!
//! SysTick runs from the core clock and fires once per millisecond; the
//! handler bumps a 64-bit counter (no wrap in practice). The counter is
//! shared with thread mode through a `critical_section::Mutex`, because a
//! 64-bit read is two loads on Cortex-M3 and could otherwise tear.
//!
//! The periodic interrupt also serves as the main loop's wake-up source for
//! `wfi`: the Ethernet interrupt stays masked, so a frame that arrives while
//! the core sleeps waits at most one tick, and a timer of the server's
//! (`Server::poll`'s answer) is acted on within one tick of falling due.

use core::cell::Cell;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;
use critical_section::Mutex;

/// Core clock of QEMU's `lm3s6965evb` out of reset: QEMU derives the period
/// from RCC.SYSDIV (reset value 0x078E_3AC0 → SYSDIV = 15) as
/// `5 ns * (SYSDIV + 1)` = 80 ns, i.e. 12.5 MHz. Verified on QEMU 7.2: 10 s
/// of this clock took 10.006 to 10.014 s of host time (at 12 MHz they would
/// have taken 10.417 s). On silicon the same
/// reset state gives a 12 MHz main oscillator / (SYSDIV + 1); set the PLL
/// and update this constant when porting.
pub const CORE_CLOCK_HZ: u32 = 12_500_000;

const TICK_HZ: u32 = 1_000;
/// SysTick counts RELOAD..=0, so the period is RELOAD + 1 core cycles.
const RELOAD: u32 = CORE_CLOCK_HZ / TICK_HZ - 1;

static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

/// Starts the 1 kHz tick.
pub fn init(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since `init`.
pub fn now_ms() -> u64 {
    critical_section::with(|cs| MILLIS.borrow(cs).get())
}

/// The same instant as the chat server's time (milliseconds since reset).
pub fn now() -> chat_core::Instant {
    chat_core::Instant::from_millis(now_ms())
}

#[exception]
fn SysTick() {
    critical_section::with(|cs| {
        let ms = MILLIS.borrow(cs);
        ms.set(ms.get().wrapping_add(1));
    });
}
