//! The chat room on smoltcp.
#![no_std]
