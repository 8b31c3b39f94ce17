//! Chooses where the built-in engine runs: on a CUDA GPU when the `cuda` feature is built in
//! and a GPU answers, else on the CPU with the quantized kernels. The worker calls
//! [`load_engine`] and gets an [`Engine`] either way.

use std::path::Path;
use std::sync::Arc;

use super::{BuiltinEngine, BuiltinEngineConfig, BuiltinError, CpuBackend, LoadOptions, TextModel};
use crate::Engine;

/// Where a model was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// The CPU, quantized kernels.
    Cpu,
    /// A CUDA GPU, burn's CUDA backend.
    Cuda,
}

/// The CUDA backend, when built with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// Whether a CUDA GPU can run tensors here: the driver loads and a small tensor computes.
/// Always `false` without the `cuda` feature.
pub fn cuda_available() -> bool {
    #[cfg(feature = "cuda")]
    {
        use burn::tensor::Tensor;
        // Without a driver there is nothing to try; with one, burn reports trouble by
        // panicking, which is caught here.
        let driver = [
            "/dev/nvidiactl",
            "/dev/nvidia0",
            "/proc/driver/nvidia/version",
        ]
        .iter()
        .any(|p| Path::new(p).exists());
        if !driver {
            return false;
        }
        std::panic::catch_unwind(|| {
            let device = burn::backend::cuda::CudaDevice::default();
            let t = Tensor::<CudaBackend, 1>::from_floats([1.0, 2.0], &device);
            t.sum().into_scalar() == 3.0
        })
        .unwrap_or(false)
    }
    #[cfg(not(feature = "cuda"))]
    {
        false
    }
}

/// Loads the model at `path` on a GPU if one is usable, else on the CPU, and starts an
/// engine on it; `chat_template`, if given, replaces the model's own.
///
/// # Errors
/// Those of [`TextModel::open_with`].
pub fn load_engine(
    path: &Path,
    config: BuiltinEngineConfig,
    options: LoadOptions<'_>,
    chat_template: Option<crate::tokenizer::ChatTemplate>,
) -> Result<(Arc<dyn Engine>, Placement), BuiltinError> {
    #[cfg(feature = "cuda")]
    if cuda_available() {
        let device = burn::backend::cuda::CudaDevice::default();
        let mut model = TextModel::<CudaBackend>::open_with(path, &device, options)?;
        if let Some(template) = chat_template {
            model.set_template(template);
        }
        return Ok((Arc::new(BuiltinEngine::new(model, config)), Placement::Cuda));
    }
    let mut model = TextModel::<CpuBackend>::open_with(path, &Default::default(), options)?;
    if let Some(template) = chat_template {
        model.set_template(template);
    }
    Ok((Arc::new(BuiltinEngine::new(model, config)), Placement::Cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_detection_answers_without_panicking() {
        let available = cuda_available();
        if !cfg!(feature = "cuda") {
            assert!(!available, "no CUDA without the feature");
        } else if !available {
            eprintln!("skipping the GPU part: no usable CUDA device");
        }
    }
}
