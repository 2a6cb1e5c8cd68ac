//! Real servers the DNS integration tests run against, started per test on loopback.
#![allow(dead_code)]

pub mod cloudflare;
pub mod dkimpy;
pub mod domain;
pub mod knot;

use std::path::PathBuf;

/// Finds a program on PATH or in the sbin directories, or fails naming the package to install.
pub fn require(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{program} is not installed: run `apt-get install -y {package}` (or e2e/setup.sh)");
}
