//! The `cocoon-proxy` executable.

fn main() {}
