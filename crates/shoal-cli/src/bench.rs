//! `shoal-bench`: placeholder replaced below.
fn main() {}
