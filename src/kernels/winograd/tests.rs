//! Winograd against the direct convolution: forward, backward (with and without the fused ReLU),
//! every tile size and instruction set, f32 and bf16 products, and bit-identical results on any
//! number of threads.

use super::*;
use crate::kernels::conv::{ConvGeometry, conv2d_naive};
use crate::kernels::test_values as values;

fn direct(g: &WinogradGeometry) -> ConvGeometry {
    ConvGeometry {
        batch: g.batch,
        in_h: g.in_h,
        in_w: g.in_w,
        in_c: g.in_c,
        out_c: g.out_c,
        kernel: 3,
        stride: 1,
        pad: g.pad,
    }
}

/// The direct convolution's gradients: dw (OIHW), dbias, dx.
fn naive_backward(g: &WinogradGeometry, x: &[f32], weight: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (cin, cout) = (g.in_c, g.out_c);
    let mut dw = vec![0.0f32; cout * cin * 9];
    let mut db = vec![0.0f32; cout];
    let mut dx = vec![0.0f32; x.len()];
    for b in 0..g.batch {
        for oy in 0..g.out_h() {
            for ox in 0..g.out_w() {
                for o in 0..cout {
                    let d = dy[((b * g.out_h() + oy) * g.out_w() + ox) * cout + o];
                    db[o] += d;
                    for kh in 0..3 {
                        for kw in 0..3 {
                            let (Some(iy), Some(ix)) = ((oy + kh).checked_sub(g.pad), (ox + kw).checked_sub(g.pad))
                            else {
                                continue;
                            };
                            if iy >= g.in_h || ix >= g.in_w {
                                continue;
                            }
                            for i in 0..cin {
                                let at = ((b * g.in_h + iy) * g.in_w + ix) * cin + i;
                                let w = (o * cin + i) * 9 + kh * 3 + kw;
                                dw[w] += x[at] * d;
                                dx[at] += weight[w] * d;
                            }
                        }
                    }
                }
            }
        }
    }
    (dw, db, dx)
}

fn assert_close(got: &[f32], want: &[f32], tolerance: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what} length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tolerance * scale, "{what}[{i}]: {a} vs {b}");
    }
}

/// Relative to the largest value, f32 products: rounding in the transforms and sums.
const F32_TOLERANCE: f32 = 2e-5;
/// bf16 products: each of V and U is rounded to 8 significant bits (relative error 2^-9), so a
/// product is off by up to 2^-8 of its size; F(2x2)'s output transform adds 3 or 4 of the 4
/// positions' sums with coefficients ±1, and each sum holds 9 x in_c products of inputs in
/// [-1, 1). Measured: at most 0.5% of the largest output (the direct convolution on rounded
/// inputs: 0.25%); a wrong index or pair is off by the size of a whole value.
const BF16_TOLERANCE: f32 = 0.01;

/// Every instruction set with both tile sizes in f32, and both tile sizes with bf16 products if
/// this CPU has them (reported as skipped if not).
fn every_path() -> Vec<(Isa, TileSize, bool)> {
    let mut paths: Vec<_> = Isa::tested("the Winograd tests")
        .into_iter()
        .flat_map(|isa| [(isa, TileSize::F2, false), (isa, TileSize::F4, false)])
        .collect();
    // F(4x4) is not run with bf16 products: its transforms amplify their rounding 30-fold (see
    // `WinogradPlan::new`).
    if crate::kernels::bf16::tests::available("Winograd with bf16 products") {
        paths.push((Isa::Avx512, TileSize::F2, true));
    }
    paths
}

/// U (or Uᵀ) as the plan's GEMMs read it: f32, or paired into `pairs`.
fn transformed<'a>(plan: &WinogradPlan, u: &'a [f32], transposed: bool, pairs: &'a mut Vec<u32>) -> Transformed<'a> {
    if plan.bf16 {
        plan.pair_transformed(u, transposed, pairs);
        Transformed::Bf16(pairs)
    } else {
        Transformed::F32(u)
    }
}

/// Odd and even sizes, padding, channel counts that are and are not whole vectors, and
/// bands that split an image; every instruction set the CPU has.
const SHAPES: [WinogradGeometry; 4] = [
    WinogradGeometry { batch: 2, in_h: 8, in_w: 8, in_c: 16, out_c: 32, pad: 0 },
    WinogradGeometry { batch: 3, in_h: 7, in_w: 6, in_c: 3, out_c: 5, pad: 1 },
    WinogradGeometry { batch: 1, in_h: 26, in_w: 26, in_c: 32, out_c: 64, pad: 0 },
    WinogradGeometry { batch: 2, in_h: 5, in_w: 9, in_c: 20, out_c: 17, pad: 2 },
];

#[test]
fn forward_matches_direct_convolution() {
    for (isa, tile, bf16) in every_path() {
        let tolerance = if bf16 { BF16_TOLERANCE } else { F32_TOLERANCE };
        for g in SHAPES {
            let plan = WinogradPlan::new(g, tile, isa, bf16);
            let x = values(g.batch * g.in_len(), 1);
            let weight = values(g.out_c * g.in_c * 9, 2);
            let bias = values(g.out_c, 3);
            let (mut u, mut pairs) = (Vec::new(), Vec::new());
            plan.transform_weight(&weight, &mut u, &mut Vec::new());
            let u = transformed(&plan, &u, false, &mut pairs);
            let mut y = vec![f32::NAN; g.batch * g.out_len()];
            plan.forward(&x, u, &bias, false, &mut y);
            let want = conv2d_naive(&direct(&g), &x, &weight, &bias);
            let what = format!("{isa:?} {tile:?} bf16 {bf16} {g:?}");
            assert_close(&y, &want, tolerance, &format!("{what} y"));
            plan.forward(&x, u, &bias, true, &mut y);
            let want: Vec<f32> = want.iter().map(|v| v.max(0.0)).collect();
            assert_close(&y, &want, tolerance, &format!("{what} relu(y)"));
        }
    }
}

#[test]
fn backward_matches_direct_gradients() {
    for (isa, tile, bf16) in every_path() {
        let tolerance = if bf16 { BF16_TOLERANCE } else { F32_TOLERANCE };
        for g in SHAPES {
            for relu in [false, true] {
                let plan = WinogradPlan::new(g, tile, isa, bf16);
                let x = values(g.batch * g.in_len(), 4);
                let weight = values(g.out_c * g.in_c * 9, 5);
                let bias = values(g.out_c, 6);
                let dy = values(g.batch * g.out_len(), 7);
                let (mut u, mut ut) = (Vec::new(), Vec::new());
                plan.transform_weight(&weight, &mut u, &mut Vec::new());
                plan.transpose_transformed(&u, &mut ut);
                let (mut u_pairs, mut ut_pairs) = (Vec::new(), Vec::new());
                let u = transformed(&plan, &u, false, &mut u_pairs);
                let ut = transformed(&plan, &ut, true, &mut ut_pairs);
                // With a fused ReLU the gradient flows only where the output is positive.
                let mut y = vec![0.0; g.batch * g.out_len()];
                plan.forward(&x, u, &bias, true, &mut y);
                let relu_output = relu.then_some(&y[..]);
                let dy_through_relu: Vec<f32> =
                    dy.iter().zip(&y).map(|(&d, &y)| if relu && y <= 0.0 { 0.0 } else { d }).collect();
                let (mut grad_u, mut grad_bias) = (vec![0.0; plan.transformed_weight_len()], vec![0.0; g.out_c]);
                let mut dx = vec![f32::NAN; x.len()];
                let mut partials = Vec::new();
                let gradients = (&mut grad_u[..], &mut grad_bias[..], Some(&mut dx[..]));
                plan.backward(&x, &dy, relu_output, Some(ut), &mut partials, gradients.0, gradients.1, gradients.2);
                let mut grad_weight = vec![0.0; weight.len()];
                plan.weight_gradient(&grad_u, &mut grad_weight);
                let (want_dw, want_db, want_dx) = naive_backward(&g, &x, &weight, &dy_through_relu);
                let what = format!("{isa:?} {tile:?} bf16 {bf16} {g:?} relu {relu}");
                assert_close(&grad_weight, &want_dw, tolerance, &format!("{what} dw"));
                // The bias gradient is summed from dy in f32 on every path.
                assert_close(&grad_bias, &want_db, F32_TOLERANCE, &format!("{what} dbias"));
                assert_close(&dx, &want_dx, tolerance, &format!("{what} dx"));
            }
        }
    }
}

#[test]
fn every_thread_count_gives_the_same_bits() {
    for bf16 in [false, true] {
        if bf16 && !crate::kernels::bf16::tests::available("Winograd bf16 threads") {
            continue;
        }
        same_bits_on_any_thread_count(bf16);
    }
}

fn same_bits_on_any_thread_count(bf16: bool) {
    let g = WinogradGeometry { batch: 10, in_h: 12, in_w: 10, in_c: 16, out_c: 24, pad: 1 };
    let isa = if bf16 { Isa::Avx512 } else { Isa::supported()[Isa::supported().len() - 1] };
    let tile = if bf16 { TileSize::F2 } else { TileSize::best_for(g.out_h(), g.out_w()) };
    let plan = WinogradPlan::new(g, tile, isa, bf16);
    let x = values(g.batch * g.in_len(), 7);
    let dy = values(g.batch * g.out_len(), 8);
    let weight = values(g.out_c * g.in_c * 9, 9);
    let (mut u, mut ut) = (Vec::new(), Vec::new());
    plan.transform_weight(&weight, &mut u, &mut Vec::new());
    plan.transpose_transformed(&u, &mut ut);
    let (mut u_pairs, mut ut_pairs) = (Vec::new(), Vec::new());
    let (u, ut) = (transformed(&plan, &u, false, &mut u_pairs), transformed(&plan, &ut, true, &mut ut_pairs));
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut y = vec![0.0; g.batch * g.out_len()];
            plan.forward(&x, u, &weight[..g.out_c], true, &mut y);
            let mut dx = vec![0.0; x.len()];
            let (mut grad_u, mut grad_bias) = (vec![0.0; plan.transformed_weight_len()], vec![0.0; g.out_c]);
            plan.backward(&x, &dy, Some(&y), Some(ut), &mut Vec::new(), &mut grad_u, &mut grad_bias, Some(&mut dx));
            (y, dx, grad_u)
        })
    };
    // Forward bands are independent and the backward pass sums fixed groups of images in a
    // fixed order, so every thread count gives the same bits.
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}
