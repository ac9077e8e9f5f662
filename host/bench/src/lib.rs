//! `chat-bench`, the chat room's load generator, as a library: the binary
//! (`main.rs`) is its command line.
//!
//! - [`plan`]: what a run is asked to do;
//! - [`message`]: the messages the bench sends, and how a receiver's stream
//!   is cut up and judged;
//! - [`ledger`]: which deliveries arrived, and the counts of what went wrong;
//! - [`order`]: the `--same-order` check, one order of messages for all;
//! - [`run`]: the clients, the poller and the pacing of one run;
//! - [`report`]: what a run found, as a table and as JSON;
//! - [`ceiling`]: the loopback ceiling, with no server;
//! - [`server`]: the server process's memory and CPU time, from `/proc`;
//! - [`websocket`]: the web dialect's client side: the upgrade, frames.
//!
//! It is a package of its own so that the server's library and binaries do
//! not carry a load generator's dependencies.

pub mod ceiling;
pub mod ledger;
pub mod message;
pub mod order;
pub mod plan;
pub mod report;
pub mod run;
pub mod server;
pub mod tls;
pub mod websocket;

pub use ceiling::{ceiling, Ceiling};
pub use plan::{Dialect, Plan};
pub use report::{table, Report};
pub use run::run;
