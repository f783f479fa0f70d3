//! Criterion benchmarks of the kernels and layers at the seed CNN's shapes (batch 32): the GEMM,
//! each layer forward and backward, and both Winograd tile sizes.
//! `cargo bench` runs them; `DIGITNN_ISA=avx2 cargo bench` (or `portable`) measures another path
//! (this program reads the variable, as the command line does; the library never does).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use digitnn::kernels::winograd::{TileSize, Transformed, WinogradGeometry, WinogradPlan};
use digitnn::kernels::{Epilogue, IndexedA, IndexedB, MatRef, gemm, gemm_indexed_serial};
use digitnn::nn::{Conv2d, Conv2dConfig, Layer, Linear, Pass, Tensor};
use digitnn::{EngineConfig, Isa};
use std::hint::black_box;

/// The engine: the default, or the instruction set `DIGITNN_ISA` names.
fn engine() -> EngineConfig {
    let isa = std::env::var("DIGITNN_ISA").ok().and_then(|name| name.parse::<Isa>().ok());
    EngineConfig { isa: isa.unwrap_or_else(Isa::best), ..EngineConfig::default() }
}

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

fn bench_gemm(c: &mut Criterion) {
    let isa = engine().isa;
    let mut group = c.benchmark_group("gemm");
    // (name, m, n, k): the seed CNN's convolutions as GEMMs over a batch of 32.
    for (name, m, n, k) in
        [("conv2_forward", 32 * 576, 64, 288), ("conv3_forward", 32 * 484, 64, 576), ("square_512", 512, 512, 512)]
    {
        let (a, b) = (values(m * k), values(k * n));
        let mut out = vec![0.0; m * n];
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(name, |bench| {
            bench.iter(|| {
                gemm(isa, MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n), &mut out, n, Epilogue::OVERWRITE);
                black_box(&out);
            })
        });
    }
    // One forward band of conv3 under F(4x4,3x3): 36 products of (18 tiles x 64) by (64 x 64),
    // on one thread as the Winograd code runs them (each thread takes its own bands).
    let (tiles, channels, points) = (18, 64, 36);
    let v = values(points * tiles * channels);
    let u = values(points * channels * channels);
    let mut m = vec![0.0; points * tiles * channels];
    let rows: Vec<usize> = (0..tiles).map(|t| t * channels).collect();
    let k_offsets: Vec<usize> = (0..channels).collect();
    let u_rows: Vec<usize> = (0..channels).map(|i| i * channels).collect();
    group.throughput(Throughput::Elements((2 * points * tiles * channels * channels) as u64));
    group.bench_function("winograd_band_conv3_f4", |bench| {
        bench.iter(|| {
            for xi in 0..points {
                gemm_indexed_serial(
                    isa,
                    IndexedA { data: &v[xi * tiles * channels..], row: &rows, k_offsets: &k_offsets },
                    IndexedB { data: &u[xi * channels * channels..], k_offsets: &u_rows, n: channels },
                    &mut m[xi * tiles * channels..],
                    channels,
                    Epilogue::OVERWRITE,
                );
            }
            black_box(&m);
        })
    });
    group.finish();
}

fn bench_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(20);
    let convs = [("conv1", 1, 32, 28), ("conv2", 32, 64, 26), ("conv3", 64, 64, 24)];
    for (name, cin, cout, side) in convs {
        let mut conv =
            Conv2d::new(Conv2dConfig { in_channels: cin, out_channels: cout, ..Default::default() }, engine());
        let params = values(cout * cin * 9 + cout);
        let mut grads = vec![0.0; params.len()];
        let x = Tensor::new(&[32, side, side, cin], values(32 * side * side * cin));
        let mut y = Tensor::default();
        conv.forward(&params, &mut [], &x, &mut y, Pass::TRAIN);
        let mut dy = Tensor::new(&y.shape, values(y.data.len()));
        let mut dx = Tensor::default();
        group.bench_function(format!("{name}_forward"), |b| {
            b.iter(|| conv.forward(&params, &mut [], &x, &mut y, Pass::TRAIN))
        });
        group.bench_function(format!("{name}_backward"), |b| {
            b.iter(|| conv.backward(&params, &mut grads, &x, &y, &mut dy, if cin > 1 { Some(&mut dx) } else { None }))
        });
    }
    let mut linear = Linear::new(30976, 10, engine());
    let params = values(30976 * 10 + 10);
    let mut grads = vec![0.0; params.len()];
    let x = Tensor::new(&[32, 30976], values(32 * 30976));
    let (mut y, mut dx) = (Tensor::default(), Tensor::default());
    linear.forward(&params, &mut [], &x, &mut y, Pass::TRAIN);
    let mut dy = Tensor::new(&y.shape, values(y.data.len()));
    group.bench_function("linear_forward", |b| b.iter(|| linear.forward(&params, &mut [], &x, &mut y, Pass::TRAIN)));
    group.bench_function("linear_backward", |b| {
        b.iter(|| linear.backward(&params, &mut grads, &x, &y, &mut dy, Some(&mut dx)))
    });
    group.finish();
}

/// Both Winograd tile sizes on conv2 and conv3 (batch 32), forward and backward (with dx), and
/// F(2x2) with bf16 products where the CPU has them: the layers above run whichever needs fewer
/// multiplications (in bf16, F(2x2)-bf16 for 64 channels and more).
fn bench_winograd(c: &mut Criterion) {
    let mut group = c.benchmark_group("winograd");
    group.sample_size(20);
    for (name, cin, cout, side) in [("conv2", 32, 64, 26), ("conv3", 64, 64, 24)] {
        let g = WinogradGeometry { batch: 32, in_h: side, in_w: side, in_c: cin, out_c: cout, pad: 0 };
        for (tile, bf16) in [(TileSize::F2, false), (TileSize::F4, false), (TileSize::F2, true)] {
            if bf16 && !digitnn::kernels::bf16::is_supported() {
                continue;
            }
            let isa = if bf16 { Isa::Avx512 } else { engine().isa };
            let plan = WinogradPlan::new(g, tile, isa, bf16);
            let (x, weight, bias) = (values(32 * side * side * cin), values(cout * cin * 9), values(cout));
            let (mut u, mut ut) = (Vec::new(), Vec::new());
            plan.transform_weight(&weight, &mut u, &mut Vec::new());
            plan.transpose_transformed(&u, &mut ut);
            let (mut u_pairs, mut ut_pairs) = (Vec::new(), Vec::new());
            let (u, ut) = if bf16 {
                plan.pair_transformed(&u, false, &mut u_pairs);
                plan.pair_transformed(&ut, true, &mut ut_pairs);
                (Transformed::Bf16(&u_pairs), Transformed::Bf16(&ut_pairs))
            } else {
                (Transformed::F32(&u), Transformed::F32(&ut))
            };
            let mut y = vec![0.0; 32 * (side - 2) * (side - 2) * cout];
            let dy = values(y.len());
            let (mut dx, mut grad_u, mut grad_bias) =
                (vec![0.0; x.len()], vec![0.0; plan.transformed_weight_len()], vec![0.0; cout]);
            let mut partials = Vec::new();
            let (m, precision) = (tile.m(), if bf16 { "_bf16" } else { "" });
            group.bench_function(format!("{name}_f{m}{precision}_forward"), |b| {
                b.iter(|| plan.forward(&x, u, &bias, true, &mut y))
            });
            group.bench_function(format!("{name}_f{m}{precision}_backward"), |b| {
                b.iter(|| {
                    plan.backward(
                        &x,
                        &dy,
                        Some(&y),
                        Some(ut),
                        &mut partials,
                        &mut grad_u,
                        &mut grad_bias,
                        Some(&mut dx),
                    )
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_layers, bench_winograd);
criterion_main!(benches);
