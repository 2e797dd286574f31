//! Camera detection with SparseViT: the window-pruned Swin backbone equals its PyTorch twin
//! (dense and pruned, on an image no stage's windows divide), and bad ratios or inputs are
//! refused with what was expected.

use scenetok::backend::Device;
use scenetok::models::det::{Backbone, ChwImage, Ratios, SwinConfig};

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `tools/train/make_sparsevit_golden.py`: the twin's four stage outputs (float64) and the
/// windows each pruned block kept, for the dense backbone and two sets of ratios.
#[test]
fn sparsevit_backbone_reproduces_the_pytorch_twin() {
    let bytes = std::fs::read(golden_dir().join("sparsevit.safetensors")).expect("the golden file is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let words = |n: &str| -> Vec<[u8; 4]> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| [b[0], b[1], b[2], b[3]]).collect()
    };
    let f32s = |n: &str| -> Vec<f32> { words(n).into_iter().map(f32::from_le_bytes).collect() };
    let dev = Device::cpu();
    let backbone = Backbone::load(&golden_dir().join("sparsevit_weights.safetensors"), &dev).unwrap();
    let cfg = backbone.config().clone();
    assert_eq!(cfg.depths, vec![2, 2, 4, 2]);
    let image = st.tensor("image").unwrap();
    let (height, width) = (image.shape()[1], image.shape()[2]);
    let values = f32s("image");
    for key in ["dense", "a", "b"] {
        let ratios = match meta.get(&format!("ratios.{key}")) {
            None => Ratios::dense(&cfg),
            Some(text) => {
                let stages = text.split(';').map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).collect();
                Ratios::new(stages, &cfg).unwrap()
            }
        };
        let out = backbone.forward(&dev, ChwImage { height, width, values: &values }, &ratios).unwrap();
        for (s, f) in out.features.iter().enumerate() {
            let want = f32s(&format!("{key}.{s}"));
            let got = dev.backend().download(&f.values).unwrap();
            assert_eq!(got.len(), want.len(), "{key} stage {s}");
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(err / scale < 1e-4, "{key} stage {s}: max relative error {:e}", err / scale);
            for (b, block) in out.windows[s].iter().enumerate() {
                let name = format!("{key}.kept.{s}.{b}");
                if st.names().iter().any(|n| **n == name) {
                    let want: Vec<u32> = words(&name).into_iter().map(|w| i32::from_le_bytes(w) as u32).collect();
                    assert_eq!(block.kept, want, "{name}");
                } else {
                    assert_eq!(block.kept.len(), block.grid.0 * block.grid.1, "{name}: a dense block runs every window");
                }
            }
        }
        // Stage strides 4, 8, 16, 32 over the padded grid.
        assert_eq!((out.features[0].height, out.features[0].width), (height.div_ceil(4), width.div_ceil(4)));
    }
}

/// Ratios for another backbone's depths and images whose values do not match their size are
/// refused with what was expected; no panic.
#[test]
fn sparsevit_refuses_bad_ratios_and_images() {
    let dev = Device::cpu();
    let cfg = SwinConfig { embed: 8, depths: vec![2, 2], heads: vec![1, 2], ..SwinConfig::small() };
    let backbone = Backbone::random(cfg.clone(), 1, &dev).unwrap();
    let values = vec![0.5f32; 3 * 20 * 30];
    let image = ChwImage { height: 20, width: 30, values: &values };
    let other = Ratios::dense(&SwinConfig::swin_t());
    let err = backbone.forward(&dev, image, &other).unwrap_err().to_string();
    assert!(err.contains("depths [2, 2]"), "{err}");
    let short = ChwImage { height: 21, ..image };
    let err = backbone.forward(&dev, short, &Ratios::dense(&cfg)).unwrap_err().to_string();
    assert!(err.contains("3 × 21 × 30"), "{err}");
    // Everything pruned but the last window of each list still runs, on a 1-pixel image too.
    let r = Ratios::parse("0.9/0.9", &cfg).unwrap();
    let tiny = vec![0.1f32; 3];
    let out = backbone.forward(&dev, ChwImage { height: 1, width: 1, values: &tiny }, &r).unwrap();
    assert_eq!((out.features[1].height, out.features[1].width), (1, 1));
    assert!(out.windows.iter().flatten().all(|b| b.kept.is_empty()), "int(1 · 0.1) = 0 windows kept");
    let bad = SwinConfig { heads: vec![3, 2], ..cfg };
    assert!(Backbone::random(bad, 1, &dev).unwrap_err().to_string().contains("3 heads for 8 channels"));
}

/// `tools/train/make_camera_det_golden.py`: the detector's input (the ½ resize of an odd-sized
/// image) and its head map, dense and pruned, equal the twin's (float64).
#[test]
fn camera_detector_reproduces_the_pytorch_twin() {
    use scenetok::models::det::Detector;
    use scenetok::models::image_encoder::preprocess::RgbView;
    let bytes = std::fs::read(golden_dir().join("camera_det.safetensors")).expect("the golden file is committed");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n).unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    };
    let close = |got: &[f32], want: &[f32], what: &str| {
        assert_eq!(got.len(), want.len(), "{what}");
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err / scale < 1e-4, "{what}: max relative error {:e}", err / scale);
    };
    let dev = Device::cpu();
    let det = Detector::load(&golden_dir().join("camera_det_weights.safetensors"), &dev).unwrap();
    let rgb = st.tensor("rgb").unwrap();
    let (h, w) = (rgb.shape()[0] as u32, rgb.shape()[1] as u32);
    let (input, iw, ih) = det.input(RgbView::new(w, h, rgb.data()).unwrap());
    assert_eq!((iw, ih), (151, 102), "round(301 / 2), round(203 / 2)");
    close(&input, &f32s("input"), "input");
    let cfg = det.config().clone();
    let pruned = {
        let stages = meta["ratios"].split(';').map(|s| s.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        Ratios::new(stages, &cfg).unwrap()
    };
    for (key, ratios) in [("dense", Ratios::dense(&cfg)), ("pruned", pruned)] {
        let map = det.forward(&dev, ChwImage { height: ih, width: iw, values: &input }, &ratios).unwrap();
        close(&map.values, &f32s(key), key);
    }
}
