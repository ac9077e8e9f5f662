//! Prepares the chat page (`web/chat.html`) for the core to serve from
//! flash: gzipped (`Content-Encoding: gzip`), with a Content-Security-Policy
//! that allows exactly its own inline script and style (by their SHA-256)
//! and connections to its own origin, and nothing else.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

fn main() {
    let page = "web/chat.html";
    println!("cargo::rerun-if-changed={page}");
    let html = std::fs::read_to_string(page).unwrap_or_else(|e| panic!("cannot read {page}: {e}"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
    gzip.write_all(html.as_bytes()).expect("gzip in memory");
    let gzipped = gzip.finish().expect("gzip in memory");
    let gzipped_len = gzipped.len();
    std::fs::write(out.join("chat.html.gz"), gzipped).expect("write the gzipped page");

    let scripts = hashes(&html, "script");
    let styles = hashes(&html, "style");
    let csp = format!(
        "default-src 'none'; script-src {scripts}; style-src {styles}; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    // The whole head of the page's answer, so the core sends it from flash.
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n\
         Content-Length: {}\r\nContent-Security-Policy: {csp}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        gzipped_len
    );
    std::fs::write(out.join("chat.head"), head).expect("write the page's head");
    std::fs::write(out.join("chat.csp"), csp).expect("write the page's policy");
}

/// `'sha256-…'` of every inline `<tag>` element's content, space-separated
/// (`'none'` if there is none).
fn hashes(html: &str, tag: &str) -> String {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&format!("<{tag}")) {
        let after = &rest[at..];
        let Some(open_end) = after.find('>') else { break };
        let body = &after[open_end + 1..];
        let Some(close) = body.find(&format!("</{tag}>")) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..close]);
        found.push(format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest)));
        rest = &body[close..];
    }
    if found.is_empty() {
        "'none'".to_string()
    } else {
        found.join(" ")
    }
}
