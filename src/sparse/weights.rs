//! Where network parameters come from: a safetensors file (PyTorch names and layouts), or a
//! seeded random initialisation (benchmarks at sizes with no trained weights).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Location, Result};

/// Initialisation of a parameter when it is not read from a file.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Uniform in `±bound` (TorchSparse's `1/√(C·K)`).
    Uniform(f32),
    Const(f32),
}

/// A parameter source.
pub enum Params {
    File { path: PathBuf, tensors: HashMap<String, (Vec<usize>, Vec<f32>)>, metadata: HashMap<String, String> },
    Random(Box<ChaCha8Rng>),
}

impl Params {
    /// Reads every tensor of a safetensors file (F32, or F16 widened to f32).
    pub fn load(path: &Path) -> Result<Self> {
        let at = || Location::file(path);
        let bytes = std::fs::read(path).map_err(|e| Error::io(at(), e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::decode(at(), "safetensors header", e))?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| Error::decode(at(), "safetensors", e))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => {
                    data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                }
                safetensors::Dtype::F16 => {
                    data.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect()
                }
                safetensors::Dtype::I64 => {
                    // BatchNorm's `num_batches_tracked`: not a parameter.
                    continue;
                }
                other => {
                    return Err(Error::invalid(
                        at().detail(format!("tensor `{name}`")),
                        "F32 or F16",
                        format!("{other:?}"),
                    ));
                }
            };
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Params::File { path: path.to_path_buf(), tensors, metadata })
    }

    /// Seeded random parameters.
    pub fn random(seed: u64) -> Self {
        Params::Random(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// The file's `__metadata__` entry `key`.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        match self {
            Params::File { metadata, .. } => metadata.get(key).map(String::as_str),
            Params::Random(_) => None,
        }
    }

    /// Parameter `name` of `shape`: read (the shape must match) or initialised.
    pub fn get(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Vec<f32>> {
        match self {
            Params::File { path, tensors, .. } => {
                let at = || Location::file(&*path).detail(format!("tensor `{name}`"));
                let (s, v) = tensors.get(name).ok_or_else(|| Error::MissingColumn {
                    at: at(),
                    expected: format!("a tensor of shape {shape:?}"),
                })?;
                if s != shape {
                    return Err(Error::invalid(at(), format!("shape {shape:?}"), format!("shape {s:?}")));
                }
                Ok(v.clone())
            }
            Params::Random(rng) => {
                let n = shape.iter().product();
                Ok(match init {
                    Init::Const(c) => vec![c; n],
                    Init::Uniform(b) => (0..n).map(|_| rng.random_range(-b..=b)).collect(),
                })
            }
        }
    }
}

/// IEEE half → single.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    #[test]
    fn half_values() {
        assert_eq!(super::f16_to_f32(0x3c00), 1.0);
        assert_eq!(super::f16_to_f32(0xc000), -2.0);
        assert_eq!(super::f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(super::f16_to_f32(0x0001), 5.960_464_5e-8);
    }
}
