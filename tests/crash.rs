//! Placeholder replaced by the kill -9 crash test.
fn main() {}
