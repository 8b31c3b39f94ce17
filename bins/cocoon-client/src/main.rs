//! The `cocoon-client` executable.

fn main() {}
