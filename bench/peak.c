// This CPU's arithmetic peak per core and over N threads: fp32 FMA (AVX-512 VFMADD231PS) and
// bf16 dot products (AVX512-BF16 VDPBF16PS: two bf16 multiply-adds into each fp32 lane), each on
// 12 independent register accumulators so that neither latency nor memory limits it. The
// figures are what `bench/scaling.sh` divides by. Built and run by bench/peak.sh (x86-64 only).
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ITERS 100000000L
#define ZERO(r) "vxorps %%zmm" #r ",%%zmm" #r ",%%zmm" #r "\n"
#define TWELVE(op)                                                                                                     \
    op " %%zmm12,%%zmm13,%%zmm0\n" op " %%zmm12,%%zmm13,%%zmm1\n" op " %%zmm12,%%zmm13,%%zmm2\n" op                 \
       " %%zmm12,%%zmm13,%%zmm3\n" op " %%zmm12,%%zmm13,%%zmm4\n" op " %%zmm12,%%zmm13,%%zmm5\n" op                    \
       " %%zmm12,%%zmm13,%%zmm6\n" op " %%zmm12,%%zmm13,%%zmm7\n" op " %%zmm12,%%zmm13,%%zmm8\n" op                    \
       " %%zmm12,%%zmm13,%%zmm9\n" op " %%zmm12,%%zmm13,%%zmm10\n" op " %%zmm12,%%zmm13,%%zmm11\n"
#define LOOP(op)                                                                                                       \
    __asm__ volatile(ZERO(0) ZERO(1) ZERO(2) ZERO(3) ZERO(4) ZERO(5) ZERO(6) ZERO(7) ZERO(8) ZERO(9) ZERO(10)         \
                         ZERO(11) ZERO(12) ZERO(13) "1:\n" TWELVE(op) "dec %0\n jnz 1b\n"                              \
                     : "+r"(n)                                                                                         \
                     :                                                                                                 \
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",     \
                       "xmm11", "xmm12", "xmm13", "cc")

static void *fp32(void *unused) { long n = ITERS; LOOP("vfmadd231ps"); return unused; }
static void *bf16(void *unused) { long n = ITERS; LOOP("vdpbf16ps"); return unused; }

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// GFLOP/s of `threads` threads each running `body`; `flops` per instruction.
static double measure(void *(*body)(void *), int threads, double flops) {
    pthread_t t[64];
    double start = seconds();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], 0, body, 0);
    for (int i = 0; i < threads; i++) pthread_join(t[i], 0);
    return flops * 12 * ITERS * threads / (seconds() - start) / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 64) return 2;
    // 16 fp32 lanes x 2 FLOPs (multiply, add); VDPBF16PS does two of those per lane.
    printf("fp32 FMA: %.0f GFLOP/s on 1 thread, %.0f on %d\n", measure(fp32, 1, 32), measure(fp32, threads, 32),
           threads);
    printf("bf16 VDPBF16PS: %.0f GFLOP/s on 1 thread, %.0f on %d\n", measure(bf16, 1, 64),
           measure(bf16, threads, 64), threads);
    return 0;
}
