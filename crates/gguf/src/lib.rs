//! Reads GGUF model files: metadata, the tensor table, and tensor data decoded
//! from GGML's quantized block formats.
//!
//! # Design
//!
//! The core is sans-IO: [`Gguf::parse`] takes the file's bytes (a `Vec<u8>`,
//! a borrowed slice, or a memory map owned by the caller) and validates the
//! whole layout once: magic and version (2 and 3), every metadata key/value
//! (all thirteen value types, arrays nested up to [`MAX_ARRAY_NESTING`]
//! levels), the tensor table, the data alignment (`general.alignment`,
//! default [`DEFAULT_ALIGNMENT`]), and the position of every tensor's data,
//! which must be aligned, in bounds and non-overlapping. Counts read from the
//! file are checked against the bytes that remain before anything is
//! allocated, so a hostile header cannot exhaust memory; arithmetic on offsets
//! is checked; corrupt input yields a [`GgufError`], never a panic.
//!
//! After parsing, nothing is copied: metadata strings and arrays and tensor
//! bytes are borrowed views into the file ([`MetadataValue`], [`TensorView`]).
//! [`open`] is the convenience that reads a file from disk first.
//!
//! The [`quant`] module decodes tensor data to `f32` ([`quant::dequantize`])
//! for F32, F16, BF16, F64, the integer types, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//! Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and Q8_K, and computes dot products directly
//! on quantized blocks ([`quant::dot`]). Its per-format block kernels are
//! public so an inference engine can build matrix products on them.
//!
//! Only little-endian files are read; big-endian ones are recognized and
//! rejected with [`GgufError::BigEndian`].
//!
//! ```
//! # fn main() -> Result<(), cocoon_gguf::GgufError> {
//! # let bytes = include_bytes!("../tests/fixtures/synthetic.gguf").to_vec();
//! let gguf = cocoon_gguf::Gguf::parse(bytes)?;
//! let arch = gguf.get_str("general.architecture")?;
//! for tensor in gguf.tensor_views() {
//!     let values = tensor.to_f32_vec()?;
//!     println!("{arch} {} {:?}: {} values", tensor.name(), tensor.dims(), values.len());
//! }
//! # Ok(())
//! # }
//! ```

mod error;
pub mod quant;
mod reader;
mod tensor;
mod value;
mod writer;

pub use error::{GgufError, Result};
pub use reader::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, Gguf, MAX_ARRAY_NESTING, MAX_DIMS, open,
};
pub use tensor::{GgmlType, TensorInfo, TensorView};
pub use value::{MetadataArray, MetadataValue, ValueType};
pub use writer::{GgufWriter, WriteValue};
