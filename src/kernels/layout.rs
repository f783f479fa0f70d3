//! Moving images between PyTorch's channel-major order (CHW: all of channel 0, then channel 1...)
//! and the engine's channel-minor order (HWC: the channels of pixel 0, then of pixel 1...).
//! One image (or one weight row laid out like an image) per call; batches call it per image.

/// `hwc[p * channels + c] = chw[c * pixels + p]`.
pub fn chw_to_hwc(chw: &[f32], hwc: &mut [f32], pixels: usize, channels: usize) {
    check(chw, hwc, pixels, channels);
    for p in 0..pixels {
        for c in 0..channels {
            hwc[p * channels + c] = chw[c * pixels + p];
        }
    }
}

/// `chw[c * pixels + p] = hwc[p * channels + c]`.
pub fn hwc_to_chw(hwc: &[f32], chw: &mut [f32], pixels: usize, channels: usize) {
    check(chw, hwc, pixels, channels);
    for p in 0..pixels {
        for c in 0..channels {
            chw[c * pixels + p] = hwc[p * channels + c];
        }
    }
}

/// `chw[c * pixels + p] += hwc[p * channels + c]` (gradients kept in CHW order).
pub fn add_hwc_to_chw(hwc: &[f32], chw: &mut [f32], pixels: usize, channels: usize) {
    check(chw, hwc, pixels, channels);
    for c in 0..channels {
        for p in 0..pixels {
            chw[c * pixels + p] += hwc[p * channels + c];
        }
    }
}

fn check(chw: &[f32], hwc: &[f32], pixels: usize, channels: usize) {
    assert!(chw.len() == pixels * channels && hwc.len() == pixels * channels, "image of {pixels}x{channels} values");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutations_invert_each_other() {
        // Two pixels, three channels: CHW [r0 r1 g0 g1 b0 b1] is HWC [r0 g0 b0 r1 g1 b1].
        let chw = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut hwc = [0.0; 6];
        chw_to_hwc(&chw, &mut hwc, 2, 3);
        assert_eq!(hwc, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        let mut back = [0.0; 6];
        hwc_to_chw(&hwc, &mut back, 2, 3);
        assert_eq!(back, chw);
        add_hwc_to_chw(&hwc, &mut back, 2, 3);
        assert_eq!(back, chw.map(|v| 2.0 * v));
    }
}
