//! Choosing a device: `--device cpu | cuda | cuda:N | auto` on every command that computes.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::Backend;
use super::cpu::CpuBackend;
use super::cuda::{self, CudaBackend};
use crate::error::Result;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (the reference: every op exists there).
    #[default]
    Cpu,
    /// CUDA GPU number N.
    Cuda(usize),
    /// The first CUDA GPU when one works, else the CPU.
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| format!("`{s}` is not a device: expected cpu, cuda, cuda:N or auto")),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Auto => write!(f, "auto"),
        }
    }
}

/// An opened device; cheap to clone (the backend is shared).
#[derive(Debug, Clone)]
pub enum Device {
    Cpu(Arc<CpuBackend>),
    Cuda(Arc<CudaBackend>),
}

impl Default for Device {
    fn default() -> Self {
        Device::cpu()
    }
}

impl Device {
    /// The CPU, on rayon's global pool.
    pub fn cpu() -> Device {
        Device::Cpu(Arc::new(CpuBackend))
    }

    /// Opens what `spec` names. `cuda` without a usable GPU is an error saying what is
    /// missing; `auto` falls back to the CPU then.
    pub fn open(spec: DeviceSpec) -> Result<Device> {
        match spec {
            DeviceSpec::Cpu => Ok(Device::cpu()),
            DeviceSpec::Cuda(n) => Ok(Device::Cuda(cuda::open(n)?)),
            DeviceSpec::Auto => Ok(cuda::open(0).map(Device::Cuda).unwrap_or_else(|_| Device::cpu())),
        }
    }

    /// The backend that runs this device's ops.
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Device::Cpu(b) => b.as_ref(),
            Device::Cuda(b) => b.as_ref(),
        }
    }

    /// `cpu`, `cuda:0`.
    pub fn name(&self) -> String {
        self.backend().name()
    }
}
