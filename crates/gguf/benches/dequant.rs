//! Dequantization throughput placeholder (replaced below).
fn main() {}
