//! The `cocoon-worker` executable.

fn main() {}
