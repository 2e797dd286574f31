//! The model config (`data/models/*.toml`): how to feed an ONNX image backbone and how to
//! read its outputs. See `data/models/README.md` for the format and how to add a backbone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Location, Result};

/// Memory layout of the model's image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[N, 3, H, W]` (PyTorch exports).
    Nchw,
    /// `[N, H, W, 3]` (TensorFlow exports).
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How a camera image's size becomes the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "policy", rename_all = "lowercase", deny_unknown_fields)]
pub enum SizePolicy {
    /// Resize every image by `scale` (keeping its aspect ratio up to rounding), then pad
    /// right and bottom with the mean colour (0 after normalisation) so that every image
    /// of a batch has the same size, a multiple of `multiple`. For CNNs.
    Scale { scale: f64, multiple: u32 },
    /// Resize every image to exactly `width` × `height` (the aspect ratio changes). For
    /// models with a fixed input, e.g. ViTs exported with a fixed patch grid.
    Fixed { width: u32, height: u32 },
}

/// What an output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `[N, C, H/stride, W/stride]`.
    FeatureMap,
    /// ViT tokens `[N, prefix_tokens + (H/patch)·(W/patch), C]`, row-major over the patch
    /// grid after the prefix (CLS, registers). Read as a feature map with stride `patch`.
    PatchTokens,
    /// `[N, C]` (pooled vector, logits, CLS embedding).
    Vector,
}

/// One model output named in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// The ONNX output name.
    pub name: String,
    pub kind: OutputKind,
    /// Channels (the model's output must agree).
    pub channels: usize,
    /// Input pixels per cell (feature maps).
    #[serde(default)]
    pub stride: Option<u32>,
    /// Patch size in input pixels (patch tokens).
    #[serde(default)]
    pub patch: Option<u32>,
    /// Tokens before the patch grid (patch tokens; e.g. 1 for CLS, 5 with 4 registers).
    #[serde(default)]
    pub prefix_tokens: usize,
}

impl OutputSpec {
    /// Input pixels per cell of a spatial output (feature map or patch tokens).
    pub fn cell_size(&self) -> Option<u32> {
        match self.kind {
            OutputKind::FeatureMap => self.stride,
            OutputKind::PatchTokens => self.patch,
            OutputKind::Vector => None,
        }
    }
    pub fn is_spatial(&self) -> bool {
        self.kind != OutputKind::Vector
    }
}

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelTable {
    file: PathBuf,
    input: String,
    layout: Layout,
    channel_order: ChannelOrder,
    mean: [f32; 3],
    std: [f32; 3],
    /// The spatial output sampled for each LiDAR point unless told otherwise.
    sample: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    model: ModelTable,
    input_size: SizePolicy,
    outputs: Vec<OutputSpec>,
}

/// A validated model config.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The config file it was read from.
    pub path: PathBuf,
    /// The ONNX file (relative paths in the config are relative to the config's folder).
    pub model_file: PathBuf,
    pub description: Option<String>,
    /// The model's image input name.
    pub input: String,
    pub layout: Layout,
    pub channel_order: ChannelOrder,
    /// Per channel (in the model's channel order), on 0..255 pixel values:
    /// `x = (pixel - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub size: SizePolicy,
    pub outputs: Vec<OutputSpec>,
    /// Name of the spatial output sampled per LiDAR point by default.
    pub sample: String,
}

/// The default backbone's config file under the data folder's `models/`.
pub const DEFAULT_CONFIG: &str = "efficientnet_lite0.toml";

/// The default backbone's config in `data`.
pub fn default_config_path(data: &crate::locate::DataDir) -> PathBuf {
    data.model(DEFAULT_CONFIG)
}

impl ModelConfig {
    /// Reads and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(Location::file(path), e))?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` locates errors and relative model files.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let at = || Location::file(path);
        let raw: ConfigFile = toml::from_str(text).map_err(|e| Error::decode(at(), "model config (TOML)", e))?;
        let m = raw.model;
        let model_file =
            if m.file.is_absolute() { m.file } else { path.parent().unwrap_or(Path::new(".")).join(m.file) };
        let cfg = ModelConfig {
            path: path.to_path_buf(),
            model_file,
            description: m.description,
            input: m.input,
            layout: m.layout,
            channel_order: m.channel_order,
            mean: m.mean,
            std: m.std,
            size: raw.input_size,
            outputs: raw.outputs,
            sample: m.sample,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str, expected: &str, found: String| {
            Err(Error::invalid(Location::file(&self.path).detail(what.to_string()), expected, found))
        };
        if self.std.iter().any(|s| !(s.is_finite() && *s != 0.0)) || self.mean.iter().any(|m| !m.is_finite()) {
            return bad(
                "[model] mean/std",
                "finite mean and non-zero finite std",
                format!("{:?} / {:?}", self.mean, self.std),
            );
        }
        match self.size {
            SizePolicy::Scale { scale, multiple } => {
                if !(scale.is_finite() && scale > 0.0 && scale <= 4.0) || multiple == 0 {
                    return bad(
                        "[input_size]",
                        "0 < scale <= 4 and multiple >= 1",
                        format!("scale {scale}, multiple {multiple}"),
                    );
                }
            }
            SizePolicy::Fixed { width, height } => {
                if width == 0 || height == 0 {
                    return bad("[input_size]", "a non-empty fixed size", format!("{width}x{height}"));
                }
            }
        }
        if self.outputs.is_empty() {
            return bad("[[outputs]]", "at least one output", "none".into());
        }
        for (i, o) in self.outputs.iter().enumerate() {
            let what = format!("outputs[{i}] `{}`", o.name);
            if self.outputs[..i].iter().any(|p| p.name == o.name) {
                return bad(&what, "unique output names", "a duplicate".into());
            }
            let ok = match o.kind {
                OutputKind::FeatureMap => o.stride.is_some_and(|s| s > 0) && o.patch.is_none(),
                OutputKind::PatchTokens => o.patch.is_some_and(|p| p > 0) && o.stride.is_none(),
                OutputKind::Vector => o.stride.is_none() && o.patch.is_none(),
            };
            if !ok || o.channels == 0 {
                return bad(
                    &what,
                    "feature_map with `stride`, patch_tokens with `patch`, vector with neither; channels > 0",
                    format!("{:?} stride {:?} patch {:?} channels {}", o.kind, o.stride, o.patch, o.channels),
                );
            }
        }
        match self.output(&self.sample) {
            Some(o) if o.is_spatial() => Ok(()),
            _ => bad("[model] sample", "the name of a feature_map or patch_tokens output", self.sample.clone()),
        }
    }

    /// The output called `name`.
    pub fn output(&self, name: &str) -> Option<&OutputSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// The model input size (width, height) for one image of `width` × `height` pixels,
    /// before batch padding: the resized content size.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.size {
            SizePolicy::Scale { scale, .. } => {
                let r = |v: u32| ((v as f64 * scale).round() as u32).max(1);
                (r(width), r(height))
            }
            SizePolicy::Fixed { width, height } => (width, height),
        }
    }

    /// The padded input size of a batch whose resized images are `sizes`.
    pub fn batch_size(&self, sizes: &[(u32, u32)]) -> (u32, u32) {
        match self.size {
            SizePolicy::Scale { multiple, .. } => {
                let up = |v: u32| v.div_ceil(multiple) * multiple;
                let w = sizes.iter().map(|s| s.0).max().unwrap_or(0);
                let h = sizes.iter().map(|s| s.1).max().unwrap_or(0);
                (up(w), up(h))
            }
            SizePolicy::Fixed { width, height } => (width, height),
        }
    }

    /// A copy with another resize factor (only for the `scale` policy).
    pub fn with_scale(mut self, new_scale: f64) -> Result<Self> {
        match &mut self.size {
            SizePolicy::Scale { scale, .. } => *scale = new_scale,
            SizePolicy::Fixed { .. } => {
                return Err(Error::invalid(
                    Location::file(&self.path).detail("[input_size]"),
                    "the `scale` policy to change the scale",
                    "a fixed input size",
                ));
            }
        }
        self.validate()?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[model]
file = "m.onnx"
input = "image"
layout = "nchw"
channel_order = "rgb"
mean = [127.0, 127.0, 127.0]
std = [128.0, 128.0, 128.0]
sample = "s16"

[input_size]
policy = "scale"
scale = 0.5
multiple = 32

[[outputs]]
name = "s16"
kind = "feature_map"
stride = 16
channels = 112

[[outputs]]
name = "pooled"
kind = "vector"
channels = 1280
"#;

    #[test]
    fn parses_and_resolves_the_model_file() {
        let c = ModelConfig::parse(GOOD, Path::new("/x/models/a.toml")).unwrap();
        assert_eq!(c.model_file, Path::new("/x/models/m.onnx"));
        assert_eq!(c.resized_size(1920, 886), (960, 443));
        assert_eq!(c.batch_size(&[(960, 640), (960, 443)]), (960, 640));
        assert_eq!(c.batch_size(&[(960, 443)]), (960, 448));
        assert_eq!(c.output("s16").unwrap().cell_size(), Some(16));
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let c = ModelConfig::load(default_config_path(&crate::locate::DataDir::locate(None).unwrap())).unwrap();
        assert!(c.model_file.exists(), "{}", c.model_file.display());
    }

    #[test]
    fn rejects_bad_configs_clearly() {
        let cases = [
            (GOOD.replace("sample = \"s16\"", "sample = \"pooled\""), "sample"),
            (GOOD.replace("stride = 16", "patch = 16"), "outputs[0]"),
            (GOOD.replace("nchw", "chw"), "unknown variant"),
            (GOOD.replace("std = [128.0, 128.0, 128.0]", "std = [128.0, 0.0, 128.0]"), "std"),
            (GOOD.replace("multiple = 32", "multiple = 32\nextra = 1"), "extra"),
        ];
        for (text, needle) in cases {
            let e = ModelConfig::parse(&text, Path::new("cfg.toml")).unwrap_err().to_string();
            assert!(e.contains("cfg.toml") && e.contains(needle), "{e}");
        }
    }
}
