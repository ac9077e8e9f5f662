//! Startup, the statics, the main loop, and what happens on a panic or a
//! fault.

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use chat_core::{ClientStorage, Config, Duration, LineStorage, Room};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use defmt_semihosting as _; // the global defmt logger
use embedded::{Server, Settings, Slot, Sockets};
use smoltcp::iface::SocketStorage;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::{clock, eth, stack};

/// The server's address on its network, the chat port, and the web port
/// (the chat page, and its WebSocket into the room).
const ADDRESS: Ipv4Address = Ipv4Address::new(192, 168, 69, 1);
const PREFIX_LEN: u8 = 24;
const PORT: u16 = 55555;
const WEB_PORT: u16 = 80;

/// The room's client slots, and the server's sockets: a spare for each
/// port, so that the connection one beyond capacity is accepted and told
/// the room is full (a browser, in HTTP). Every socket serves either port:
/// the clients may be any mix of line clients and browsers.
const CLIENTS: usize = 8;
const SOCKETS: usize = CLIENTS + 2;

/// Each socket's receive and send buffers. The receive buffer is the TCP
/// window: the room reads lines into its own input buffer (a whole 512-byte
/// line fits in each client's), so this needs not hold one. The send buffer
/// holds what the client has not acknowledged yet; the room's log keeps the
/// rest of what it has to be sent.
const RX_BUFFER: usize = 512;
const TX_BUFFER: usize = 1024;

/// The room's log: every line said, stored once for all readers. A client
/// whose unread lines are overwritten is disconnected as too slow, so this is
/// how far one may fall behind (beyond its socket's send buffer).
const LOG_BYTES: usize = 4096;
const LOG_LINES: usize = 128;

/// How often the main loop looks at the stack's high-water mark; a new peak
/// is logged (`stack peak N B of M B`).
const STACK_CHECK: Duration = Duration::from_millis(250);

/// How often it logs how things are: uptime, clients, stack, the driver's
/// counters.
const STATUS: Duration = Duration::from_secs(60);

/// Every long-lived buffer, in one static rather than on the stack: the
/// stack measurement then shows call depth only, and the RAM budget shows in
/// the ELF's section sizes. Every field is zeros or uninitialised, which
/// keeps the static in .bss: no flash image, no copy at reset. Fields whose
/// empty value need not be all zeros (`SocketStorage::EMPTY`, `Slot::EMPTY`,
/// `ClientStorage::EMPTY`, `LineStorage::EMPTY`) are uninitialised here and filled in at
/// boot, element by element: a constant initialiser would move the whole
/// static, socket buffers included, into .data, that is into flash too.
/// That is also why this does not use `embedded::Storage` or
/// `chat_core::Storage`, which hold their buffers and those values in one
/// struct: a `static` `embedded::Storage` for these sockets is 17 KiB of
/// .data.
struct Statics {
    eth: eth::Buffers,
    rx: [u8; SOCKETS * RX_BUFFER],
    tx: [u8; SOCKETS * TX_BUFFER],
    log_bytes: [u8; LOG_BYTES],
    sockets: MaybeUninit<[SocketStorage<'static>; SOCKETS]>,
    slots: MaybeUninit<[Slot; SOCKETS]>,
    clients: MaybeUninit<[ClientStorage; CLIENTS]>,
    log_lines: MaybeUninit<[LineStorage; LOG_LINES]>,
}

static mut STATICS: Statics = Statics {
    eth: eth::Buffers::new(),
    rx: [0; SOCKETS * RX_BUFFER],
    tx: [0; SOCKETS * TX_BUFFER],
    log_bytes: [0; LOG_BYTES],
    sockets: MaybeUninit::uninit(),
    slots: MaybeUninit::uninit(),
    clients: MaybeUninit::uninit(),
    log_lines: MaybeUninit::uninit(),
};

/// Unique `'static` borrows of the parts of [`STATICS`], all initialised.
struct Resources {
    eth: &'static mut eth::Buffers,
    room: Room<'static>,
    sockets: Sockets<'static>,
}

/// Hands out [`STATICS`], once.
fn take_statics() -> Resources {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    assert!(!TAKEN.swap(true, Ordering::AcqRel), "statics taken twice");
    // SAFETY: the flag above makes this the only reference ever made to
    // STATICS, and no interrupt handler touches it. (`&raw mut` avoids the
    // `static_mut_refs` lint; clippy's suggestion would bring it back.)
    #[allow(clippy::deref_addrof)]
    let statics = unsafe { &mut *(&raw mut STATICS) };
    let mut room = Room::new(
        fill(&mut statics.clients, || ClientStorage::EMPTY),
        fill(&mut statics.log_lines, || LineStorage::EMPTY),
        &mut statics.log_bytes,
        Config::default(),
    );
    // A board has no files: its passwords, if any, are built in
    // (`CHAT_PASSWORD=… CHAT_OP_PASSWORD=… cargo build -p lm3s6965 …`).
    room.set_password(option_env!("CHAT_PASSWORD").map(str::as_bytes));
    room.set_op_password(option_env!("CHAT_OP_PASSWORD").map(str::as_bytes));
    let sockets = Sockets {
        storage: fill(&mut statics.sockets, || SocketStorage::EMPTY),
        slots: fill(&mut statics.slots, || Slot::EMPTY),
        rx: &mut statics.rx,
        tx: &mut statics.tx,
    };
    Resources { eth: &mut statics.eth, room, sockets }
}

/// Initialises an array in place, element by element (never the whole array
/// on the stack), and returns it.
fn fill<T, const N: usize>(array: &'static mut MaybeUninit<[T; N]>, empty: impl Fn() -> T) -> &'static mut [T] {
    let first = array.as_mut_ptr().cast::<T>();
    for i in 0..N {
        // SAFETY: `i < N`, so this is an element of the array; each one is
        // written once, and nothing was there to drop.
        unsafe { first.add(i).write(empty()) };
    }
    // SAFETY: every element was initialised just above.
    unsafe { array.assume_init_mut() }
}

defmt::timestamp!("{=u64:ms}", clock::now_ms());

#[entry]
fn main() -> ! {
    // First, before any deep call or interrupt: mark the free stack.
    stack::paint();

    // Boot-time invariants: failing here is a programming error, not input.
    let core = cortex_m::Peripherals::take().expect("core peripherals taken once");
    clock::init(core.SYST);
    defmt::info!("boot: LM3S6965, core clock {=u32} Hz, stack {=usize} B", clock::CORE_CLOCK_HZ, stack::size());

    let Resources { eth, room, sockets } = take_statics();
    let mut eth = eth::Eth::new(eth).expect("Ethernet driver created once");
    let mac = eth.mac_address();
    let settings = Settings {
        mac,
        address: Ipv4Cidr::new(ADDRESS, PREFIX_LEN),
        gateway: None,
        port: PORT,
        web_port: Some(WEB_PORT),
        random_seed: random_seed(mac.0),
    };
    defmt::info!("MAC {}", mac);
    let mut server = Server::new(&mut eth, &settings, clock::now(), room, sockets);
    defmt::info!("listening on {}:{=u16} ({=usize} clients)", ADDRESS, PORT, CLIENTS);
    defmt::info!("web on {}:{=u16}", ADDRESS, WEB_PORT);

    let mut peak = 0;
    let mut next_check = clock::now();
    let mut next_status = clock::now() + STATUS;
    loop {
        let now = clock::now();
        let next = server.poll(now, &mut eth);

        if now >= next_check {
            next_check = now + STACK_CHECK;
            let used = stack::high_water();
            if used > peak {
                peak = used;
                defmt::info!("stack peak {=usize} B of {=usize} B", peak, stack::size());
            }
        }
        if now >= next_status {
            next_status = now + STATUS;
            let (up, clients) = (now.millis() / 1000, server.room().len());
            defmt::info!(
                "up {=u64} s, {=usize} in the room, stack peak {=usize} B, {}",
                up,
                clients,
                peak,
                eth.stats()
            );
        }

        // Sleep until the next interrupt (SysTick, every millisecond) unless
        // a frame is waiting or the server has something to do now. A frame
        // that arrives after this check waits at most that millisecond.
        let due = next.is_some_and(|at| at <= clock::now());
        if !due && !eth.rx_pending() {
            cortex_m::asm::wfi();
        }
    }
}

/// Seeds TCP's initial sequence numbers, which should differ on every boot.
/// There is no entropy source on this part: the host's clock (seconds, over
/// semihosting, which the log needs anyway), the cycle the core is at, and
/// the MAC, so that boards differ too.
fn random_seed(mac: [u8; 6]) -> u64 {
    let time = semihosting::sys::arm_compat::sys_time().unwrap_or(0) as u64;
    let cycle = u64::from(cortex_m::peripheral::SYST::get_current());
    let mac = u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0, 0]);
    (time << 32 | cycle) ^ mac.rotate_left(17)
}

/// Set once the first panic or fault starts reporting, so that a fault in
/// the logger cannot recurse forever.
static DYING: AtomicBool = AtomicBool::new(false);

/// Logs the panic, then ends QEMU with a non-zero status through
/// semihosting (on silicon without a debugger this faults in turn: reset
/// there instead).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if !DYING.swap(true, Ordering::Relaxed) {
        defmt::error!("panic: {}", defmt::Display2Format(info));
    }
    semihosting::process::exit(101)
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if !DYING.swap(true, Ordering::Relaxed) {
        defmt::error!("HardFault: pc={=u32:#010x} lr={=u32:#010x}", frame.pc(), frame.lr());
    }
    semihosting::process::exit(102)
}
