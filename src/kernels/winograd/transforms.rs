//! The 2-D transforms of one band of tiles: V = Bᵀ d B (input), Y = Aᵀ M A (output, with bias
//! and ReLU), dM = A dY Aᵀ (output gradient, with the bias gradient and the fused ReLU's mask) and
//! dd = B dV Bᵀ (input gradient). Each is written once, generic over the SIMD layer's vector type
//! (`kernels::simd`) and run on the plan's instruction set; channels left over after whole
//! vectors go one at a time as plain `f32`.

// The transforms index tile positions by number on purpose: fixed-length loops are what the
// compiler unrolls.
#![allow(clippy::needless_range_loop)]

use super::WinogradGeometry;
use super::algorithm::Algorithm;
use crate::kernels::isa::Isa;
use crate::kernels::simd::{self, Lanes, SimdTask};
use std::marker::PhantomData;
use std::ops::Range;

/// Declares `$name(isa, args)`: runs `$generic::<V, T, M, A>(args)` with the vector type of the
/// plan's instruction set, through a [`SimdTask`] that carries the arguments.
macro_rules! simd_entry {
    ($name:ident, $task:ident => $generic:ident($($arg:ident: $ty:ty),*)) => {
        struct $task<'a, T, const M: usize, const A: usize> {
            $($arg: $ty,)*
            algorithm: PhantomData<fn() -> T>,
        }

        impl<T: Algorithm<M, A>, const M: usize, const A: usize> SimdTask for $task<'_, T, M, A> {
            type Output = ();
            #[inline(always)]
            fn run<V: Lanes>(self) {
                $generic::<V, T, M, A>($(self.$arg),*)
            }
        }

        pub(super) fn $name<'a, T: Algorithm<M, A>, const M: usize, const A: usize>(isa: Isa, $($arg: $ty),*) {
            simd::run(isa, $task::<T, M, A> { $($arg,)* algorithm: PhantomData })
        }
    };
}

simd_entry!(input_transform, InputTransform => input_transform_with(
    g: &'a WinogradGeometry, x: &'a [f32], rows: Range<usize>, stride: usize, v: &'a mut [f32]));
simd_entry!(output_transform, OutputTransform => output_transform_with(
    g: &'a WinogradGeometry, m: &'a [f32], rows: Range<usize>, stride: usize, out: Output<'a>));
simd_entry!(grad_output_transform, GradOutputTransform => grad_output_transform_with(
    g: &'a WinogradGeometry, dy: GradOutput<'a>, rows: Range<usize>, stride: usize, dm: &'a mut [f32],
    grad_bias: &'a mut [f32]));
simd_entry!(grad_input_transform, GradInputTransform => grad_input_transform_with(
    g: &'a WinogradGeometry, dv: &'a [f32], rows: Range<usize>, stride: usize, dx: &'a mut [f32]));

/// `f` (a 1-D transform from N_IN to N_OUT vectors) applied to every column of an
/// N_IN x N_IN block of vectors, then to every row of the result. A macro, not a function
/// taking `f`: a call through a function parameter may not be inlined into the vector-ISA
/// functions, and then neither are the vector operations in it (nor in `array::from_fn`
/// closures, hence the loops).
macro_rules! separable {
    ($x:expr, $f:path, $n_in:expr, $n_out:expr) => {{
        let x = $x;
        let mut t = [[V::zero(); $n_in]; $n_out];
        for j in 0..$n_in {
            let mut column = [V::zero(); $n_in];
            for i in 0..$n_in {
                column[i] = x[i][j];
            }
            let column = $f(column);
            for r in 0..$n_out {
                t[r][j] = column[r];
            }
        }
        let mut result = [[V::zero(); $n_out]; $n_out];
        for r in 0..$n_out {
            result[r] = $f(t[r]);
        }
        result
    }};
}

/// Every tile of the band as (tile, ty, tx), `tile` counting from 0. (Plain loops over these
/// ranges, not closures handed to a helper: the portable path's closures were not inlined.)
#[inline(always)]
fn band_tiles(tiles_w: usize, rows: Range<usize>) -> impl Iterator<Item = (usize, usize, usize)> {
    let first = rows.start;
    rows.flat_map(move |ty| (0..tiles_w).map(move |tx| ((ty - first) * tiles_w + tx, ty, tx)))
}

/// Channel offsets: whole vectors of V first, then the single channels left over.
#[inline(always)]
fn channel_chunks<V: Lanes>(channels: usize) -> (std::iter::StepBy<Range<usize>>, Range<usize>) {
    let whole = channels - channels % V::LANES;
    ((0..whole).step_by(V::LANES), whole..channels)
}

/// Tiles per output row for tile size M.
fn tiles_w<const M: usize>(g: &WinogradGeometry) -> usize {
    g.out_w().div_ceil(M)
}

/// The band's tiles must fit in `stride` tiles and its blocks in a buffer of `len` values.
fn check_band<const M: usize, const A: usize>(
    g: &WinogradGeometry,
    rows: &Range<usize>,
    stride: usize,
    channels: usize,
    len: usize,
) {
    assert!(rows.end <= g.out_h().div_ceil(M) && rows.len() * tiles_w::<M>(g) <= stride, "band past the plan");
    assert!(A * A * stride * channels <= len, "band buffer too small");
}

/// V = Bᵀ d B for every tile of the band and every input channel, into v[ξ][tile][channel].
#[inline(always)]
fn input_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    x: &[f32],
    rows: Range<usize>,
    stride: usize,
    v: &mut [f32],
) {
    assert_eq!(x.len(), g.in_len(), "image size");
    check_band::<M, A>(g, &rows, stride, g.in_c, v.len());
    let c = g.in_c;
    for (tile, ty, tx) in band_tiles(tiles_w::<M>(g), rows) {
        prefetch_patch::<M, A>(g, x, ty, tx + PREFETCH_TILES);
        let patch = g.patch::<M, A>(ty, tx);
        let out = v[tile * c..].as_mut_ptr();
        // SAFETY: patch offsets lie in the image and the band's blocks in v (both checked above).
        let (vectors, singles) = channel_chunks::<V>(c);
        for c0 in vectors {
            unsafe { input_tile::<V, T, M, A>(x, &patch, c0, out, stride * c) }
        }
        for c0 in singles {
            unsafe { input_tile::<f32, T, M, A>(x, &patch, c0, out, stride * c) }
        }
    }
}

/// How many tiles ahead the input transform asks for the patch it will need.
const PREFETCH_TILES: usize = 2;

/// Asks the CPU to start loading the input that tile (ty, tx) will read: the columns it adds to
/// its left neighbour's patch, or, past the end of a row, the first patch of the next row. The
/// first touch of each input pixel otherwise stalls on memory.
#[inline(always)]
fn prefetch_patch<const M: usize, const A: usize>(g: &WinogradGeometry, x: &[f32], ty: usize, tx: usize) {
    let tiles_w = tiles_w::<M>(g);
    let (ty, tx, columns) = if tx < tiles_w { (ty, tx, A - M..A) } else { (ty + 1, tx - tiles_w, 0..A) };
    for r in 0..A {
        for c in columns.clone() {
            let (Some(y), Some(col)) = ((M * ty + r).checked_sub(g.pad), (M * tx + c).checked_sub(g.pad)) else {
                continue;
            };
            if y < g.in_h && col < g.in_w {
                prefetch(&x[(y * g.in_w + col) * g.in_c..][..g.in_c]);
            }
        }
    }
}

/// The same for the output pixels of tile (ty, tx), in an image `data` of the output's shape.
#[inline(always)]
fn prefetch_outputs<const M: usize>(g: &WinogradGeometry, data: &[f32], ty: usize, tx: usize) {
    let tiles_w = tiles_w::<M>(g);
    let (ty, tx) = if tx < tiles_w { (ty, tx) } else { (ty + 1, tx - tiles_w) };
    for y in (M * ty..M * ty + M).filter(|&y| y < g.out_h()) {
        let columns = (M * tx).min(g.out_w())..(M * tx + M).min(g.out_w());
        prefetch(&data[(y * g.out_w() + columns.start) * g.out_c..(y * g.out_w() + columns.end) * g.out_c]);
    }
}

/// Asks the CPU to start loading `values` into the L1 cache (a hint; nothing on other targets).
#[inline(always)]
fn prefetch(values: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in values.chunks(16) {
        // SAFETY: a prefetch is only a hint, and the address lies inside the slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = values;
}

/// V for one tile at channels c0.. (a vector of V, or one channel for `f32`): loads the patch's
/// values (zero where `patch` says padding) and stores the A x A transformed block at
/// `out + ξ * xi_step + c0`.
///
/// # Safety
/// Every `Some` offset of `patch` plus c0 + LANES must lie in `x`; the A x A block, `xi_step`
/// apart, must be writable at `out + c0`; the CPU must have V's instruction set.
#[inline(always)]
unsafe fn input_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    x: &[f32],
    patch: &[[Option<usize>; A]; A],
    c0: usize,
    out: *mut f32,
    xi_step: usize,
) {
    unsafe {
        let mut d = [[V::zero(); A]; A];
        for r in 0..A {
            for c in 0..A {
                if let Some(at) = patch[r][c] {
                    d[r][c] = V::load(x.as_ptr().add(at + c0));
                }
            }
        }
        let transformed = separable!(&d, T::input::<V>, A, A);
        for (r, row) in transformed.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                value.store(out.add((r * A + c) * xi_step + c0));
            }
        }
    }
}

/// The A x A block of vectors at channel c0 of one tile in a [ξ][tile][channel] buffer.
///
/// # Safety
/// `LANES` values at `block + ξ * xi_step + c0` must be readable for every ξ < A², and the CPU
/// must have V's instruction set.
#[inline(always)]
unsafe fn load_block<V: Lanes, const A: usize>(block: *const f32, xi_step: usize, c0: usize) -> [[V; A]; A] {
    let mut e = [[V::zero(); A]; A];
    for r in 0..A {
        for c in 0..A {
            e[r][c] = unsafe { V::load(block.add((r * A + c) * xi_step + c0)) };
        }
    }
    e
}

/// Where a band's outputs go, with the bias and ReLU to apply.
pub(super) struct Output<'a> {
    pub(super) bias: &'a [f32],
    pub(super) relu: bool,
    /// The band's output rows.
    pub(super) y: &'a mut [f32],
}

/// Y = Aᵀ M A (+ bias, ReLU) for every tile of the band.
#[inline(always)]
fn output_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    m: &[f32],
    rows: Range<usize>,
    stride: usize,
    out: Output,
) {
    check_band::<M, A>(g, &rows, stride, g.out_c, m.len());
    let c = g.out_c;
    let first_row = M * rows.start;
    let band_pixels = (M * rows.len()).min(g.out_h() - first_row) * g.out_w();
    assert!(out.y.len() >= band_pixels * c && out.bias.len() == c, "band output size");
    let (bias, relu, y) = (out.bias, out.relu, out.y.as_mut_ptr());
    for (tile, ty, tx) in band_tiles(tiles_w::<M>(g), rows) {
        let outputs =
            g.outputs::<M>(ty, tx).map(|row| row.map(|p| p.map(|(oy, ox)| ((oy - first_row) * g.out_w() + ox) * c)));
        let m = m[tile * c..].as_ptr();
        // SAFETY: the band's blocks in m and its pixels in y were checked above.
        let (vectors, singles) = channel_chunks::<V>(c);
        for c0 in vectors {
            unsafe { output_tile::<V, T, M, A>(m, stride * c, bias, relu, c0, &outputs, y) }
        }
        for c0 in singles {
            unsafe { output_tile::<f32, T, M, A>(m, stride * c, bias, relu, c0, &outputs, y) }
        }
    }
}

/// Y = Aᵀ M A + bias (then ReLU) for one tile at channels c0.., stored at `y + offset + c0` for
/// each output pixel inside the image.
///
/// # Safety
/// The block at `m` (see `load_block`) must be readable, `bias` must hold c0 + LANES values,
/// every `Some` offset of `outputs` plus c0 + LANES must be writable in `y`, and the CPU must
/// have V's instruction set.
#[inline(always)]
unsafe fn output_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    m: *const f32,
    xi_step: usize,
    bias: &[f32],
    relu: bool,
    c0: usize,
    outputs: &[[Option<usize>; M]; M],
    y: *mut f32,
) {
    unsafe {
        let e = load_block::<V, A>(m, xi_step, c0);
        let b = V::load(bias.as_ptr().add(c0));
        let values = separable!(&e, T::output::<V>, A, M);
        for i in 0..M {
            for j in 0..M {
                if let Some(at) = outputs[i][j] {
                    let value = values[i][j].add(b);
                    let value = if relu { value.relu() } else { value };
                    value.store(y.add(at + c0));
                }
            }
        }
    }
}

/// One image's output gradient, and the ReLU output that masks it (if the ReLU was fused).
#[derive(Clone, Copy)]
pub(super) struct GradOutput<'a> {
    pub(super) dy: &'a [f32],
    pub(super) relu_output: Option<&'a [f32]>,
}

/// dM = A dY Aᵀ for every tile of the band, into dm[ξ][tile][channel], and the bias gradient
/// (the sum of dY) added into `grad_bias`.
#[inline(always)]
fn grad_output_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    dy: GradOutput,
    rows: Range<usize>,
    stride: usize,
    dm: &mut [f32],
    grad_bias: &mut [f32],
) {
    assert_eq!(dy.dy.len(), g.out_len(), "output gradient size");
    assert!(dy.relu_output.is_none_or(|y| y.len() == g.out_len()), "output size");
    assert_eq!(grad_bias.len(), g.out_c, "bias gradient size");
    check_band::<M, A>(g, &rows, stride, g.out_c, dm.len());
    let c = g.out_c;
    for (tile, ty, tx) in band_tiles(tiles_w::<M>(g), rows) {
        prefetch_outputs::<M>(g, dy.dy, ty, tx + PREFETCH_TILES);
        if let Some(y) = dy.relu_output {
            prefetch_outputs::<M>(g, y, ty, tx + PREFETCH_TILES);
        }
        let outputs = g.outputs::<M>(ty, tx).map(|row| row.map(|p| p.map(|(oy, ox)| (oy * g.out_w() + ox) * c)));
        let out = dm[tile * c..].as_mut_ptr();
        let grad_bias = grad_bias.as_mut_ptr();
        // SAFETY: output offsets lie in dy (and y), the band's blocks in dm (checked above).
        let (vectors, singles) = channel_chunks::<V>(c);
        for c0 in vectors {
            unsafe { grad_output_tile::<V, T, M, A>(dy, &outputs, c0, out, stride * c, grad_bias) }
        }
        for c0 in singles {
            unsafe { grad_output_tile::<f32, T, M, A>(dy, &outputs, c0, out, stride * c, grad_bias) }
        }
    }
}

/// dM = A dY Aᵀ for one tile at channels c0.. (dY masked by the fused ReLU's output), stored as
/// an A x A block at `out`, and dY's sum added to `grad_bias[c0..]`.
///
/// # Safety
/// Every `Some` offset of `outputs` plus c0 + LANES must lie in dy (and the ReLU output); the
/// block at `out + c0`, `xi_step` apart, and LANES values at `grad_bias + c0` must be writable;
/// the CPU must have V's instruction set.
#[inline(always)]
unsafe fn grad_output_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    dy: GradOutput,
    outputs: &[[Option<usize>; M]; M],
    c0: usize,
    out: *mut f32,
    xi_step: usize,
    grad_bias: *mut f32,
) {
    unsafe {
        let mut e = [[V::zero(); M]; M];
        for i in 0..M {
            for j in 0..M {
                let Some(at) = outputs[i][j] else { continue };
                let d = V::load(dy.dy.as_ptr().add(at + c0));
                e[i][j] = match dy.relu_output {
                    Some(y) => d.where_positive(V::load(y.as_ptr().add(at + c0))),
                    None => d,
                };
            }
        }
        let mut bias_sum = V::load(grad_bias.add(c0));
        for row in &e {
            for &value in row {
                bias_sum = bias_sum.add(value);
            }
        }
        bias_sum.store(grad_bias.add(c0));
        let transformed = separable!(&e, T::grad_output::<V>, M, A);
        for (r, row) in transformed.iter().enumerate() {
            for (c, value) in row.iter().enumerate() {
                value.store(out.add((r * A + c) * xi_step + c0));
            }
        }
    }
}

/// dd = B dV Bᵀ for every tile of the band, added into the input patches of `dx` (whole image).
#[inline(always)]
fn grad_input_transform_with<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    g: &WinogradGeometry,
    dv: &[f32],
    rows: Range<usize>,
    stride: usize,
    dx: &mut [f32],
) {
    assert_eq!(dx.len(), g.in_len(), "input gradient size");
    check_band::<M, A>(g, &rows, stride, g.in_c, dv.len());
    let c = g.in_c;
    for (tile, ty, tx) in band_tiles(tiles_w::<M>(g), rows) {
        let patch = g.patch::<M, A>(ty, tx);
        let dv = dv[tile * c..].as_ptr();
        let dx = dx.as_mut_ptr();
        // SAFETY: patch offsets lie in dx and the band's blocks in dv (checked above).
        let (vectors, singles) = channel_chunks::<V>(c);
        for c0 in vectors {
            unsafe { grad_input_tile::<V, T, M, A>(dv, stride * c, c0, &patch, dx) }
        }
        for c0 in singles {
            unsafe { grad_input_tile::<f32, T, M, A>(dv, stride * c, c0, &patch, dx) }
        }
    }
}

/// dd = B dV Bᵀ for one tile at channels c0.., added into dx at the patch's offsets.
///
/// # Safety
/// The block at `dv` (see `load_block`) must be readable, every `Some` offset of `patch` plus
/// c0 + LANES must be writable in `dx`, and the CPU must have V's instruction set.
#[inline(always)]
unsafe fn grad_input_tile<V: Lanes, T: Algorithm<M, A>, const M: usize, const A: usize>(
    dv: *const f32,
    xi_step: usize,
    c0: usize,
    patch: &[[Option<usize>; A]; A],
    dx: *mut f32,
) {
    unsafe {
        let e = load_block::<V, A>(dv, xi_step, c0);
        let dd = separable!(&e, T::grad_input::<V>, A, A);
        for r in 0..A {
            for c in 0..A {
                if let Some(at) = patch[r][c] {
                    let target = dx.add(at + c0);
                    V::load(target).add(dd[r][c]).store(target);
                }
            }
        }
    }
}
