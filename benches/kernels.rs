//! Criterion benchmarks of the kernels and layers at the seed CNN's shapes (batch 32).
//! `cargo bench` runs them; `DIGITNN_ISA=avx2 cargo bench` (or `portable`) measures another path.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use digitnn::kernels::{Epilogue, MatRef, gemm};
use digitnn::nn::{Conv2d, Conv2dConfig, Layer, Linear, Pass, Tensor};
use std::hint::black_box;

fn values(len: usize) -> Vec<f32> {
    (0..len).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
}

fn bench_gemm(c: &mut Criterion) {
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
                gemm(MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n), &mut out, n, Epilogue::OVERWRITE);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn bench_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer");
    group.sample_size(20);
    let convs = [("conv1", 1, 32, 28), ("conv2", 32, 64, 26), ("conv3", 64, 64, 24)];
    for (name, cin, cout, side) in convs {
        let mut conv = Conv2d::new(Conv2dConfig { in_channels: cin, out_channels: cout, ..Default::default() });
        let params = values(cout * cin * 9 + cout);
        let mut grads = vec![0.0; params.len()];
        let x = Tensor::new(&[32, side, side, cin], values(32 * side * side * cin));
        let mut y = Tensor::default();
        conv.forward(&params, &x, &mut y, Pass::TRAIN);
        let dy = Tensor::new(&y.shape, values(y.data.len()));
        let mut dx = Tensor::default();
        group.bench_function(format!("{name}_forward"), |b| b.iter(|| conv.forward(&params, &x, &mut y, Pass::TRAIN)));
        group.bench_function(format!("{name}_backward"), |b| {
            b.iter(|| conv.backward(&params, &mut grads, &x, &y, &dy, if cin > 1 { Some(&mut dx) } else { None }))
        });
    }
    let mut linear = Linear::new(30976, 10);
    let params = values(30976 * 10 + 10);
    let mut grads = vec![0.0; params.len()];
    let x = Tensor::new(&[32, 30976], values(32 * 30976));
    let (mut y, mut dx) = (Tensor::default(), Tensor::default());
    linear.forward(&params, &x, &mut y, Pass::TRAIN);
    let dy = Tensor::new(&y.shape, values(y.data.len()));
    group.bench_function("linear_forward", |b| b.iter(|| linear.forward(&params, &x, &mut y, Pass::TRAIN)));
    group.bench_function("linear_backward", |b| {
        b.iter(|| linear.backward(&params, &mut grads, &x, &y, &dy, Some(&mut dx)))
    });
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_layers);
criterion_main!(benches);
