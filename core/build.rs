//! Gzips the chat page (`web/chat.html`) into `OUT_DIR`, so the core
//! serves it compressed (`Content-Encoding: gzip`) from flash on a board.
//! The page is one self-contained file: HTML, CSS and JS, no external
//! resource.

use std::io::Write;
use std::path::PathBuf;

use flate2::write::GzEncoder;
use flate2::Compression;

fn main() {
    let page = "web/chat.html";
    println!("cargo::rerun-if-changed={page}");
    let html = std::fs::read(page).unwrap_or_else(|e| panic!("cannot read {page}: {e}"));
    let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
    gzip.write_all(&html).expect("gzip in memory");
    let gzipped = gzip.finish().expect("gzip in memory");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("chat.html.gz"), gzipped).expect("write the gzipped page");
}
