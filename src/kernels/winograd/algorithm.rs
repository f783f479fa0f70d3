//! The two Winograd algorithms: F(2x2, 3x3) and F(4x4, 3x3), each as its kernel transform G
//! and four 1-D transforms written out so that multiplications by 0 and ±1 never happen.

// The transforms index tile positions by number on purpose: fixed-length loops are what the
// compiler unrolls.
#![allow(clippy::needless_range_loop)]

use crate::kernels::simd::Lanes;

/// One Winograd algorithm F(M x M, 3x3) with patches of A = M + 2: the kernel transform G
/// and the four one-dimensional transforms, written out so that multiplications by 0 and ±1
/// never happen. Each 2-D transform applies one of them to every column, then to every row.
pub(super) trait Algorithm<const M: usize, const A: usize> {
    /// G (A x 3), the kernel transform.
    const G: [[f32; 3]; A];
    /// Bᵀ d, the input transform.
    fn input<V: Lanes>(d: [V; A]) -> [V; A];
    /// Aᵀ m, the output transform.
    fn output<V: Lanes>(m: [V; A]) -> [V; M];
    /// A e, the output transform's transpose (backward).
    fn grad_output<V: Lanes>(e: [V; M]) -> [V; A];
    /// B e, the input transform's transpose (backward).
    fn grad_input<V: Lanes>(e: [V; A]) -> [V; A];
}

/// F(2x2, 3x3): Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], Aᵀ = [1 1 1 0; 0 1 -1 -1].
pub(super) struct F2;

impl Algorithm<2, 4> for F2 {
    const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

    #[inline(always)]
    fn input<V: Lanes>([d0, d1, d2, d3]: [V; 4]) -> [V; 4] {
        [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3]: [V; 4]) -> [V; 2] {
        [m0.add(m1).add(m2), m1.sub(m2).sub(m3)]
    }
    #[inline(always)]
    fn grad_output<V: Lanes>([e0, e1]: [V; 2]) -> [V; 4] {
        [e0, e0.add(e1), e0.sub(e1), e1.neg()]
    }
    #[inline(always)]
    fn grad_input<V: Lanes>([e0, e1, e2, e3]: [V; 4]) -> [V; 4] {
        [e0, e1.sub(e2).add(e3), e1.add(e2).sub(e0), e3.neg()]
    }
}

/// F(4x4, 3x3) with the points 0, ±1, ±2 and ∞ (Lavin and Gray, 2016):
///
/// ```text
///        [4  0 -5  0  1  0]
///        [0 -4 -4  1  1  0]        [1  1  1  1  1  0]
///   Bᵀ = [0  4 -4 -1  1  0]   Aᵀ = [0  1 -1  2 -2  0]
///        [0 -2 -1  2  1  0]        [0  1  1  4  4  0]
///        [0  2 -1 -2  1  0]        [0  1 -1  8 -8  1]
///        [0  4  0 -5  0  1]
/// ```
pub(super) struct F4;

impl Algorithm<4, 6> for F4 {
    const G: [[f32; 3]; 6] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];

    #[inline(always)]
    fn input<V: Lanes>([d0, d1, d2, d3, d4, d5]: [V; 6]) -> [V; 6] {
        let (a, b) = (d4.sub(d2.scale(4.0)), d3.sub(d1.scale(4.0)));
        let (c, e) = (d4.sub(d2), d3.sub(d1).scale(2.0));
        [
            d0.scale(4.0).sub(d2.scale(5.0)).add(d4),
            a.add(b),
            a.sub(b),
            c.add(e),
            c.sub(e),
            d1.scale(4.0).sub(d3.scale(5.0)).add(d5),
        ]
    }
    #[inline(always)]
    fn output<V: Lanes>([m0, m1, m2, m3, m4, m5]: [V; 6]) -> [V; 4] {
        let (s12, d12, s34, d34) = (m1.add(m2), m1.sub(m2), m3.add(m4), m3.sub(m4));
        [m0.add(s12).add(s34), d12.add(d34.scale(2.0)), s12.add(s34.scale(4.0)), d12.add(d34.scale(8.0)).add(m5)]
    }
    #[inline(always)]
    fn grad_output<V: Lanes>([e0, e1, e2, e3]: [V; 4]) -> [V; 6] {
        let (s02, s13) = (e0.add(e2), e1.add(e3));
        let (p, q) = (e0.add(e2.scale(4.0)), e1.scale(2.0).add(e3.scale(8.0)));
        [e0, s02.add(s13), s02.sub(s13), p.add(q), p.sub(q), e3]
    }
    #[inline(always)]
    fn grad_input<V: Lanes>([e0, e1, e2, e3, e4, e5]: [V; 6]) -> [V; 6] {
        // The columns of Bᵀ.
        let (d12, d34) = (e2.sub(e1), e4.sub(e3));
        let (s12, s34) = (e1.add(e2), e3.add(e4));
        [
            e0.scale(4.0),
            d12.scale(4.0).add(d34.scale(2.0)).add(e5.scale(4.0)),
            e0.scale(-5.0).sub(s12.scale(4.0)).sub(s34),
            d34.scale(-2.0).sub(d12).sub(e5.scale(5.0)),
            e0.add(s12).add(s34),
            e5,
        ]
    }
}

/// (G g Gᵀ) for one 3x3 kernel g, into `out` [ξ].
pub(super) fn transform_kernel<T: Algorithm<M, A>, const M: usize, const A: usize>(g: &[f32], out: &mut [f32]) {
    // G g (A x 3), then (G g) Gᵀ (A x A).
    let mut gg = [[0.0f32; 3]; A];
    for a in 0..A {
        for c in 0..3 {
            gg[a][c] = T::G[a][0] * g[c] + T::G[a][1] * g[3 + c] + T::G[a][2] * g[6 + c];
        }
    }
    for a in 0..A {
        for b in 0..A {
            out[a * A + b] = gg[a][0] * T::G[b][0] + gg[a][1] * T::G[b][1] + gg[a][2] * T::G[b][2];
        }
    }
}

/// grad += Gᵀ dU G for one kernel, dU given as [ξ].
pub(super) fn kernel_gradient<T: Algorithm<M, A>, const M: usize, const A: usize>(grad_u: &[f32], grad: &mut [f32]) {
    // Gᵀ dU (3 x A), then (Gᵀ dU) G (3x3).
    let mut t = [[0.0f32; A]; 3];
    for r in 0..3 {
        for b in 0..A {
            t[r][b] = (0..A).map(|a| T::G[a][r] * grad_u[a * A + b]).sum();
        }
    }
    for r in 0..3 {
        for c in 0..3 {
            grad[r * 3 + c] += (0..A).map(|b| t[r][b] * T::G[b][c]).sum::<f32>();
        }
    }
}
