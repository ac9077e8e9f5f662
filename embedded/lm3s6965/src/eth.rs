//! Polled driver for the Stellaris LM3S6965 on-chip Ethernet MAC, as modelled
//! by QEMU's `hw/net/stellaris_enet.c` (board `lm3s6965evb`).
//!
//! The controller has no DMA: frames move through a word-wide FIFO register
//! (`DATA`). The driver therefore copies every frame through a small,
//! word-aligned bounce buffer and hands slices of it to smoltcp.
//!
//! FIFO framing (both directions, little-endian words):
//!
//! ```text
//! byte 0..2   16-bit length field (see below)
//! byte 2..    Ethernet frame (DA, SA, type, payload)
//! RX only:    4-byte FCS after the frame
//! ```
//!
//! * RX: the length field is `frame_len + 6` (itself + frame + FCS); the
//!   frame's words are read from `DATA` while `NP` (frames pending) > 0.
//!   The frame is consumed after `ceil(len_field / 4)` reads.
//! * TX: the length field is `frame_len - 14` (payload length only); the
//!   frame goes out when `TR` is written with 1.
//!
//! Interrupts stay masked: the main loop polls `NP`. Everything read from the
//! FIFO is bounds-checked; a malformed length drops the frame (or, if the FIFO
//! can no longer be trusted, resets it) and never panics.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

// ---- System control (clock gating, factory MAC) -------------------------

/// Run-mode clock gating control 2.
const SYSCTL_RCGC2: usize = 0x400F_E108;
/// RCGC2 bit 28: EMAC0 clock.
const RCGC2_EMAC0: u32 = 1 << 28;
/// RCGC2 bit 30: EPHY0 clock.
const RCGC2_EPHY0: u32 = 1 << 30;
/// Non-volatile user registers; TI/QEMU store the MAC address here as
/// USER0 = mac[0] | mac[1] << 8 | mac[2] << 16, USER1 = mac[3..6] likewise.
/// QEMU fills them from `-nic ...,mac=`. Erased flash reads 0xFFFF_FFFF.
const SYSCTL_USER0: usize = 0x400F_E1E0;
const SYSCTL_USER1: usize = 0x400F_E1E4;

// ---- Ethernet controller ---------------------------------------------

const MAC_BASE: usize = 0x4004_8000;
/// Raw interrupt status (read) / interrupt acknowledge (write).
const MACRIS_IACK: usize = 0x00;
/// Interrupt mask.
const MACIM: usize = 0x04;
/// Receive control.
const MACRCTL: usize = 0x08;
/// Transmit control.
const MACTCTL: usize = 0x0C;
/// Data FIFO (read = RX, write = TX).
const MACDATA: usize = 0x10;
/// Individual (station) address, bytes 0..4 and 4..6.
const MACIA0: usize = 0x14;
const MACIA1: usize = 0x18;
/// Number of frames pending in the RX FIFO.
const MACNP: usize = 0x34;
/// Transmission request; reads 1 while a frame is being sent.
const MACTR: usize = 0x38;

/// All seven interrupt sources (RX, TXER, TXEMP, FOV, RXER, MD, PHY).
const INT_ALL: u32 = 0x7F;

const RCTL_RXEN: u32 = 1 << 0;
const RCTL_AMUL: u32 = 1 << 1;
const RCTL_BADCRC: u32 = 1 << 3;
const RCTL_RSTFIFO: u32 = 1 << 4;

const TCTL_TXEN: u32 = 1 << 0;
const TCTL_PADEN: u32 = 1 << 1;
const TCTL_CRC: u32 = 1 << 2;
const TCTL_DUPLEX: u32 = 1 << 3;

/// Receive: enabled, accept multicast, drop frames with a bad FCS.
const RCTL_ON: u32 = RCTL_RXEN | RCTL_AMUL | RCTL_BADCRC;
/// Transmit: enabled, pad short frames to 60 bytes, append the FCS in
/// hardware, full duplex.
const TCTL_ON: u32 = TCTL_TXEN | TCTL_PADEN | TCTL_CRC | TCTL_DUPLEX;

/// Largest Ethernet frame we exchange with smoltcp (no FCS, no VLAN tag).
pub const MTU: usize = 1514;
const ETH_HEADER: usize = 14;
/// Size of the RX/TX hardware FIFO in bytes. A length field claiming more
/// than this cannot be real, so the FIFO has lost sync and gets reset.
const FIFO_BYTES: usize = 2048;
/// RX overhead around the frame: 2-byte length field + 4-byte FCS.
const RX_OVERHEAD: usize = 6;
/// Bounce buffers: 2-byte length prefix + frame (+ FCS on RX), whole words.
const RX_BUF: usize = (2 + MTU + 4 + 3) & !3;
const TX_BUF: usize = (2 + MTU + 3) & !3;

/// MAC used when USER0/USER1 are unprogrammed (locally administered, unicast).
const FALLBACK_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x65, 0x69, 0x65];

#[inline(always)]
fn reg_read(addr: usize) -> u32 {
    // SAFETY: only called with addresses of the LM3S6965 system-control and
    // Ethernet MMIO registers listed above; 32-bit aligned reads have no
    // side effects other than the documented FIFO pop for MACDATA, which is
    // only read while MACNP > 0.
    unsafe { read_volatile(addr as *const u32) }
}

#[inline(always)]
fn reg_write(addr: usize, value: u32) {
    // SAFETY: as for `reg_read`; the registers are owned by the single `Eth`
    // instance (see `Eth::new`), so writes cannot race another driver.
    unsafe { write_volatile(addr as *mut u32, value) }
}

#[inline(always)]
fn mac_read(offset: usize) -> u32 {
    reg_read(MAC_BASE + offset)
}

#[inline(always)]
fn mac_write(offset: usize, value: u32) {
    reg_write(MAC_BASE + offset, value)
}

/// Word-aligned frame buffers, kept separate from `Eth` so the caller can
/// place them in a static instead of on the stack.
#[repr(C, align(4))]
pub struct Buffers {
    rx: [u8; RX_BUF],
    tx: [u8; TX_BUF],
}

impl Buffers {
    pub const fn new() -> Self {
        Self { rx: [0; RX_BUF], tx: [0; TX_BUF] }
    }
}

/// Counters for dropped or rejected frames; cheap, and useful in the field.
#[derive(Clone, Copy, Default, defmt::Format)]
pub struct Stats {
    pub rx_frames: u32,
    pub tx_frames: u32,
    /// Frames dropped because their length field was too short or too long.
    pub rx_bad_len: u32,
    /// RX FIFO resets after an impossible length field.
    pub rx_fifo_resets: u32,
    /// Transmit requests outside 14..=MTU bytes, not sent (smoltcp never
    /// makes them; see `TxToken::consume`).
    pub tx_too_big: u32,
}

pub struct Eth<'a> {
    bufs: &'a mut Buffers,
    mac: EthernetAddress,
    stats: Stats,
}

/// Guards against a second driver instance fighting over the FIFO.
static TAKEN: AtomicBool = AtomicBool::new(false);

impl<'a> Eth<'a> {
    /// Clocks, resets and enables the controller. Returns `None` if a driver
    /// instance was already created.
    ///
    /// The PHY is not waited for: QEMU does not model it (MII reads are
    /// inert), and on real hardware smoltcp copes with a link that comes up
    /// later.
    pub fn new(bufs: &'a mut Buffers) -> Option<Self> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }

        // Gate the MAC and PHY clocks on. A few cycles must pass before the
        // peripheral is accessed on silicon; the read-back provides them.
        reg_write(SYSCTL_RCGC2, reg_read(SYSCTL_RCGC2) | RCGC2_EMAC0 | RCGC2_EPHY0);
        let _ = reg_read(SYSCTL_RCGC2);

        let mac = factory_mac();

        // Polled operation: mask every source and clear anything latched.
        mac_write(MACIM, 0);
        mac_write(MACRIS_IACK, INT_ALL);

        let m = mac.0;
        mac_write(MACIA0, u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        mac_write(MACIA1, u32::from_le_bytes([m[4], m[5], 0, 0]));

        // Flush the RX FIFO (with RX disabled), then enable reception.
        mac_write(MACRCTL, RCTL_RSTFIFO);
        mac_write(MACRCTL, RCTL_ON);
        mac_write(MACTCTL, TCTL_ON);

        Some(Self { bufs, mac, stats: Stats::default() })
    }

    pub fn mac_address(&self) -> EthernetAddress {
        self.mac
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// True if at least one received frame waits in the FIFO. Used by the
    /// main loop to decide whether it may sleep.
    pub fn rx_pending(&self) -> bool {
        mac_read(MACNP) != 0
    }

    /// Discards everything in the RX FIFO after it lost framing.
    fn reset_rx_fifo(&mut self) {
        mac_write(MACRCTL, RCTL_RSTFIFO);
        mac_write(MACRCTL, RCTL_ON);
        self.stats.rx_fifo_resets = self.stats.rx_fifo_resets.wrapping_add(1);
    }

    /// Pops and discards the `remaining_words` words left of a frame whose
    /// first word was already read.
    fn drop_frame(&mut self, remaining_words: usize) {
        for _ in 0..remaining_words {
            let _ = mac_read(MACDATA);
        }
        self.stats.rx_bad_len = self.stats.rx_bad_len.wrapping_add(1);
    }

    /// Pops the next frame from the RX FIFO into the bounce buffer and
    /// returns the frame's length (without FCS), or `None` if nothing valid
    /// is pending. Malformed frames are drained and dropped here.
    fn pop_frame(&mut self) -> Option<usize> {
        // Loop only to skip dropped frames; bounded by the FIFO depth since
        // every iteration consumes one frame (or resets the FIFO and exits).
        for _ in 0..32 {
            if mac_read(MACNP) == 0 {
                return None; // Reading DATA now would underflow the FIFO.
            }
            let first = mac_read(MACDATA);
            let len_field = (first & 0xFFFF) as usize;

            if len_field > FIFO_BYTES {
                // Cannot be a real frame: we do not know how many words to
                // skip, so resynchronise by flushing the whole FIFO.
                self.reset_rx_fifo();
                return None;
            }
            // Number of words the hardware expects us to pop for this frame.
            // At least one (the word already read).
            let words = len_field.div_ceil(4).max(1);
            let frame_len = len_field.saturating_sub(RX_OVERHEAD);

            if !(ETH_HEADER..=MTU).contains(&frame_len) {
                // Runt or jumbo: drain its remaining words and drop it.
                self.drop_frame(words - 1);
                continue;
            }

            // frame_len <= MTU implies words * 4 <= RX_BUF; `get_mut` keeps
            // this panic-free even if that reasoning is ever broken.
            let Some(rx) = self.bufs.rx.get_mut(..words * 4) else {
                self.drop_frame(words - 1);
                continue;
            };
            let mut chunks = rx.chunks_exact_mut(4);
            if let Some(c) = chunks.next() {
                c.copy_from_slice(&first.to_le_bytes());
            }
            for c in chunks {
                c.copy_from_slice(&mac_read(MACDATA).to_le_bytes());
            }
            self.stats.rx_frames = self.stats.rx_frames.wrapping_add(1);
            return Some(frame_len);
        }
        None
    }
}

/// Reads the MAC address from USER0/USER1, falling back to a fixed locally
/// administered address if the registers are erased (all ones) or zero.
fn factory_mac() -> EthernetAddress {
    let u0 = reg_read(SYSCTL_USER0).to_le_bytes();
    let u1 = reg_read(SYSCTL_USER1).to_le_bytes();
    let mac = [u0[0], u0[1], u0[2], u1[0], u1[1], u1[2]];
    let addr = EthernetAddress(mac);
    if mac == [0xFF; 6] || mac == [0; 6] || !addr.is_unicast() {
        EthernetAddress(FALLBACK_MAC)
    } else {
        addr
    }
}

impl Device for Eth<'_> {
    type RxToken<'b>
        = RxToken<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _ts: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let len = self.pop_frame()?;
        let Buffers { rx, tx } = &mut *self.bufs;
        // pop_frame guarantees 2 + len <= RX_BUF; `get` keeps it panic-free.
        let frame = rx.get(2..2 + len)?;
        Some((RxToken { frame }, TxToken { buf: tx, stats: &mut self.stats }))
    }

    fn transmit(&mut self, _ts: Instant) -> Option<Self::TxToken<'_>> {
        // TR stays set while a previous frame is still leaving the FIFO on
        // real hardware; QEMU sends synchronously and always reads 0.
        if mac_read(MACTR) & 1 != 0 {
            return None;
        }
        Some(TxToken { buf: &mut self.bufs.tx, stats: &mut self.stats })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        // One frame per poll step: the TX FIFO holds a single frame.
        caps.max_burst_size = Some(1);
        caps
    }
}

pub struct RxToken<'b> {
    frame: &'b [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

pub struct TxToken<'b> {
    buf: &'b mut [u8; TX_BUF],
    stats: &'b mut Stats,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        if !(ETH_HEADER..=MTU).contains(&len) {
            // Never sent: nothing but a whole frame of 14..=MTU bytes reaches
            // the FIFO, and this one is counted and dropped. smoltcp never
            // asks for it: every frame has its 14-byte header, and none is
            // over `max_transmission_unit` (TCP segments fit the MSS; an IPv4
            // packet over the MTU is dropped, fragmentation being off). `f`
            // must still run, as only it makes the `R` to return: a runt gets
            // a scratch slice of exactly `len` bytes, an oversized request the
            // MTU's worth, shorter than asked, on which smoltcp's writer would
            // panic (a bounds check) rather than write past the buffer.
            self.stats.tx_too_big = self.stats.tx_too_big.wrapping_add(1);
            let n = len.min(MTU);
            return f(&mut self.buf[2..2 + n]);
        }

        let result = f(&mut self.buf[2..2 + len]);

        // First word: payload length (frame minus header) in the low half;
        // the high half is the first two bytes of the destination address,
        // which already sit at buf[2..4].
        let payload_len = (len - ETH_HEADER) as u16;
        self.buf[..2].copy_from_slice(&payload_len.to_le_bytes());

        let words = (2 + len).div_ceil(4);
        for c in self.buf[..words * 4].chunks_exact(4) {
            mac_write(MACDATA, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        mac_write(MACTR, 1);
        self.stats.tx_frames = self.stats.tx_frames.wrapping_add(1);
        result
    }
}
