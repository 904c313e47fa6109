/* Optional C kernels of the sparse CPU backend (pynq_sparse/backends/cpu_sparse.py).
 *
 * One call scores a block of words through every layer (conv1 + pool + requant, k-WTA 1,
 * conv2 + pool + requant, k-WTA 2, fc1 + requant, k-WTA 3, fc2), bit-exact with the golden
 * model (docs/golden_model.md). Two versions:
 *
 *  - ps_words_avx2: x86 AVX2 + FMA (compiled with __attribute__((target)), run only after a
 *    runtime CPU check), float32 lanes. Exact because the caller uses it only when both conv
 *    layers' accumulator bounds are at most 24 bits: every product and partial sum is then an
 *    integer below 2^24, which float32 holds exactly (in any order, FMA or not).
 *  - ps_words_portable: plain C99, int32 accumulators (exact for every model the backend
 *    accepts); gcc vectorises its inner loops for SSE2 / NEON.
 *
 * The layer algorithms are described in the module docstring of cpu_sparse.py. The caller
 * (cpu_sparse.py) builds the tables and owns every buffer: nothing here allocates.
 * Loaded with ctypes (which releases the GIL around the call). ps_words_ticks times the
 * stages of the AVX2 version (for the profile in cpu_sparse's docstring).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* PS_PORTABLE_ONLY: build without the x86 code (what an ARM board compiles; for tests) */
#if !defined(PS_PORTABLE_ONLY) && (defined(__x86_64__) || defined(__i386__)) && \
    (defined(__GNUC__) || defined(__clang__))
#define PS_X86 1
#include <immintrin.h>
#endif

#define ACT_MAX 127


/* Mirrors cpu_sparse._CModel (ctypes.Structure): keep the order. Pointers are int64 or void*. */
typedef struct {
    /* conv1: polyphase planes xp[n_xp] = word[src[k]] (src -1: 0), pooled [c1_out, ph1, pw1] */
    int64_t n_xp, c1_out, n_tap, ph1, pw1, stride1, k1;
    const int32_t *src;        /* [n_xp] */
    const int32_t *tap_off;    /* [c1_out, 4, n_tap] offset in xp of tap t, pooling phase p */
    const int32_t *tap_w;      /* [c1_out, n_tap] (taps past n_taps weigh 0) */
    const float *tap_wf;       /* the same as float32 */
    const int32_t *n_taps;     /* [c1_out] */
    const int32_t *bias1;
    const int64_t *mult1, *shift1, *rnd1;
    /* conv2: input [c2_in, h2, w2], ks2 x ks2, c2_out kernels; routed rows [c2_in*ks2*ks2, c2_out] */
    int64_t c2_in, h2, w2, ks2, c2_out, k2;
    const int8_t *rows8;       /* [ci, ky, kx, o] int8 (portable) */
    const float *rowsk;        /* the same rows as float32 ordered [ky, kx, ci, o]: one (ky, kx) slice
                                  of every channel is contiguous (avx2) */
    const int32_t *bias2;
    const int64_t *mult2, *shift2, *rnd2;
    /* fc1 (f1_in -> f1_out, f1_g groups of f1_pack kernels), fc2 likewise: packed weight and owner
     * of (input, group), int8 / uint8 [in, g] (the file's arrays transposed: one row per input) */
    int64_t f1_in, f1_g, f1_pack, f1_out, k3, f2_in, f2_g, f2_pack, f2_out;
    const int8_t *f1_w;
    const uint8_t *f1_own;
    const int32_t *bias3;
    const int64_t *mult3, *shift3, *rnd3;
    const double *mult3d, *rnd3d, *scale3d;   /* the same as float64; scale = 2^-shift (avx2 requant) */
    const int8_t *f2_w;
    const uint8_t *f2_own;
    const int32_t *bias4;
    /* activation buffer lengths (multiples of 32, zero padded) */
    int64_t n_v1, n_v2, n_v3;
} ps_model;

/* Mirrors cpu_sparse._CScratch: one thread's buffers. */
typedef struct {
    float *xpf;                /* [n_xp] (avx2) */
    int32_t *xpi;              /* [n_xp] (portable) */
    int32_t *pooled;           /* [ph1 * stride1] (portable conv1; requantised bytes in the avx2 one) */
    int32_t *phase;            /* [ph1 * stride1] (portable conv1) */
    uint8_t *v1, *v2, *v3;     /* [n_v1], [n_v2], [n_v3] */
    int64_t *win;              /* [max(n_v1, n_v2, n_v3) + 32] */
    int32_t *start;            /* [h2 * w2 + 1] */
    int32_t *ent_row;          /* [n_v1] */
    int32_t *ent_val;          /* [n_v1] (float32 in the avx2 version) */
    int32_t *acc3;             /* [f1_out] */
    int32_t *acc4;             /* [f2_out] */
    float *acc2;               /* [(h2-ks2+1) * (w2-ks2+1) * c2_out] (avx2 conv2) */
} ps_scratch;

static inline uint8_t requant(int64_t a, int64_t m, int64_t s, int64_t r)
{
    int64_t y = (a * m + r) >> s;   /* arithmetic (floor) shift with gcc / clang, as the contract */
    return (uint8_t)(y < 0 ? 0 : (y > ACT_MAX ? ACT_MAX : y));
}

/* ---------------------------------------------------------------------------------- k-WTA */
/* T = the largest t with count(v >= t) >= k; every cell > T wins and the first k - count(v > T)
 * cells == T (ascending index). When fewer than k cells are non-zero, every non-zero cell wins
 * (zero cells output nothing and are not listed). Returns the winners, ascending, in win. */
static int64_t count_ge(const uint8_t *restrict v, int64_t n, int t)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += v[i] >= t;
    return c;
}

static int kwta_threshold(const uint8_t *restrict v, int64_t n, int64_t k, int64_t (*cnt)(const uint8_t *, int64_t, int),
                          int64_t *take)
{
    if (cnt(v, n, 1) < k) {
        *take = 0;
        return 0;
    }
    int lo = 1, hi = ACT_MAX;
    while (lo < hi) {                       /* invariant: count(v >= lo) >= k */
        int mid = (lo + hi + 1) >> 1;
        if (cnt(v, n, mid) >= k)
            lo = mid;
        else
            hi = mid - 1;
    }
    *take = k - cnt(v, n, lo + 1);
    return lo;
}

static int64_t kwta_portable(const uint8_t *restrict v, int64_t n, int64_t k, int64_t *restrict win)
{
    int64_t take, m = 0;
    int t = kwta_threshold(v, n, k, count_ge, &take);
    if (t == 0) {
        for (int64_t i = 0; i < n; i++)
            if (v[i])
                win[m++] = i;
        return m;
    }
    for (int64_t i = 0; i < n; i++) {
        int x = v[i];
        if (x > t || (x == t && take > 0)) {
            take -= x == t;
            win[m++] = i;
        }
    }
    return m;
}

/* ------------------------------------------------------------------------------ fc layers */
static void fc_winners(const uint8_t *restrict v, const int64_t *restrict win, int64_t n_win, int64_t g,
                       int64_t n_pack, const int8_t *restrict w, const uint8_t *restrict own,
                       const int32_t *restrict bias, int64_t n_out, int32_t *restrict acc)
{
    for (int64_t o = 0; o < n_out; o++)
        acc[o] = bias[o];
    for (int64_t j = 0; j < n_win; j++) {   /* winner i adds v[i] * w to kernel q*n_pack + owner */
        int64_t i = win[j];
        int32_t x = v[i];
        const int8_t *restrict wi = w + i * g;
        const uint8_t *restrict oi = own + i * g;
        for (int64_t q = 0; q < g; q++)
            acc[q * n_pack + oi[q]] += x * (int32_t)wi[q];
    }
}

/* k-WTA 2, fc1, requant, k-WTA 3, fc2 */
static void tail(const ps_model *M, const ps_scratch *S, int32_t *restrict scores,
                 int64_t (*kwta)(const uint8_t *, int64_t, int64_t, int64_t *))
{
    int64_t n = kwta(S->v2, M->n_v2, M->k2, S->win);
    fc_winners(S->v2, S->win, n, M->f1_g, M->f1_pack, M->f1_w, M->f1_own, M->bias3, M->f1_out, S->acc3);
    for (int64_t o = 0; o < M->f1_out; o++)
        S->v3[o] = requant(S->acc3[o], M->mult3[o], M->shift3[o], M->rnd3[o]);
    n = kwta(S->v3, M->n_v3, M->k3, S->win);
    fc_winners(S->v3, S->win, n, M->f2_g, M->f2_pack, M->f2_w, M->f2_own, M->bias4, M->f2_out, S->acc4);
    for (int64_t o = 0; o < M->f2_out; o++)
        scores[o] = S->acc4[o];
}

/* Counting sort of the winners by input position r = y*w + x (channel ascending within a
 * position: the winners ascend). start[hw + 1]; ent_row[e] = ci * row_step; ent_val[e]. */
static void bucket_winners(const uint8_t *restrict v, const int64_t *restrict win, int64_t n_win, int64_t hw,
                           int64_t row_step, int32_t *restrict start, int32_t *restrict ent_row,
                           int32_t *restrict ent_val, int as_float)
{
    float *restrict ent_f = (float *)ent_val;
    memset(start, 0, (size_t)(hw + 1) * sizeof(int32_t));
    for (int64_t j = 0; j < n_win; j++)
        start[win[j] % hw + 1]++;
    for (int64_t r = 0; r < hw; r++)
        start[r + 1] += start[r];
    for (int64_t j = 0; j < n_win; j++) {   /* start[r] is the cursor of position r, shifted back after */
        int64_t i = win[j], ci = i / hw, r = i - ci * hw;
        int32_t e = start[r]++;
        ent_row[e] = (int32_t)(ci * row_step);
        if (as_float)
            ent_f[e] = (float)v[i];
        else
            ent_val[e] = v[i];
    }
    for (int64_t r = hw; r > 0; r--)
        start[r] = start[r - 1];
    start[0] = 0;
}

/* ------------------------------------------------------------------------- portable (int32) */
static void conv1_portable(const ps_model *M, const ps_scratch *S, const int8_t *restrict word)
{
    const int64_t nq = M->ph1 * M->stride1, T = M->n_tap, npp = M->ph1 * M->pw1;
    int32_t *restrict xp = S->xpi, *restrict pooled = S->pooled, *restrict phase = S->phase;
    for (int64_t k = 0; k < M->n_xp; k++)
        xp[k] = M->src[k] >= 0 ? word[M->src[k]] : 0;
    for (int64_t o = 0; o < M->c1_out; o++) {
        const int32_t *restrict w = M->tap_w + o * T;
        for (int p = 0; p < 4; p++) {
            const int32_t *restrict off = M->tap_off + (o * 4 + p) * T;
            for (int64_t q = 0; q < nq; q++)
                phase[q] = 0;
            for (int64_t t = 0; t < M->n_taps[o]; t++) {
                const int32_t wt = w[t];
                const int32_t *restrict x = xp + off[t];
                for (int64_t q = 0; q < nq; q++)
                    phase[q] += wt * x[q];
            }
            if (p == 0)
                memcpy(pooled, phase, (size_t)nq * sizeof(int32_t));
            else
                for (int64_t q = 0; q < nq; q++)
                    pooled[q] = phase[q] > pooled[q] ? phase[q] : pooled[q];
        }
        for (int64_t py = 0; py < M->ph1; py++)
            for (int64_t px = 0; px < M->pw1; px++)
                S->v1[o * npp + py * M->pw1 + px] = requant((int64_t)pooled[py * M->stride1 + px] + M->bias1[o],
                                                            M->mult1[o], M->shift1[o], M->rnd1[o]);
    }
}

static void conv2_portable(const ps_model *M, const ps_scratch *S, int64_t n_win)
{
    const int64_t c_out = M->c2_out, ks = M->ks2, w = M->w2, hw = M->h2 * M->w2;
    const int64_t ph = (M->h2 - ks + 1) / 2, pw = (M->w2 - ks + 1) / 2;
    const int32_t *restrict start = S->start, *restrict ent_row = S->ent_row, *restrict ent_val = S->ent_val;
    int32_t acc[256], best[256];
    bucket_winners(S->v1, S->win, n_win, hw, ks * ks * c_out, S->start, S->ent_row, S->ent_val, 0);
    for (int64_t py = 0; py < ph; py++)
        for (int64_t px = 0; px < pw; px++) {
            for (int p = 0; p < 4; p++) {
                int64_t oy = 2 * py + (p >> 1), ox = 2 * px + (p & 1);
                for (int64_t o = 0; o < c_out; o++)
                    acc[o] = 0;
                for (int64_t ky = 0; ky < ks; ky++)
                    for (int64_t kx = 0; kx < ks; kx++) {
                        int64_t r = (oy + ky) * w + ox + kx, koff = (ky * ks + kx) * c_out;
                        for (int32_t e = start[r]; e < start[r + 1]; e++) {
                            const int8_t *restrict row = M->rows8 + ent_row[e] + koff;
                            int32_t x = ent_val[e];
                            for (int64_t o = 0; o < c_out; o++)
                                acc[o] += x * (int32_t)row[o];
                        }
                    }
                for (int64_t o = 0; o < c_out; o++)
                    best[o] = (p == 0 || acc[o] > best[o]) ? acc[o] : best[o];
            }
            int64_t pp = py * pw + px;
            for (int64_t o = 0; o < c_out; o++)      /* max(acc) + bias = max(acc + bias) */
                S->v2[o * ph * pw + pp] = requant((int64_t)best[o] + M->bias2[o], M->mult2[o], M->shift2[o],
                                                  M->rnd2[o]);
        }
}

static void word_portable(const ps_model *M, const ps_scratch *S, const int8_t *word, int32_t *scores)
{
    conv1_portable(M, S, word);
    int64_t n = kwta_portable(S->v1, M->n_v1, M->k1, S->win);
    conv2_portable(M, S, n);
    tail(M, S, scores, kwta_portable);
}

/* ------------------------------------------------------------------------ AVX2 + FMA (x86) */
#ifdef PS_X86
#define PS_AVX2 __attribute__((target("avx2,fma,bmi,popcnt")))

PS_AVX2 static int64_t count_ge_avx2(const uint8_t *restrict v, int64_t n, int t)
{
    const __m256i tm1 = _mm256_set1_epi8((char)(t - 1));      /* cells are 0..127: signed compare */
    int64_t c = 0;
    for (int64_t i = 0; i < n; i += 32)
        c += __builtin_popcount((unsigned)_mm256_movemask_epi8(
            _mm256_cmpgt_epi8(_mm256_load_si256((const __m256i *)(v + i)), tm1)));
    return c;
}

/* n: a multiple of 32, v 32-byte aligned */
PS_AVX2 static int64_t kwta_avx2(const uint8_t *restrict v, int64_t n, int64_t k, int64_t *restrict win)
{
    int64_t take, m = 0;
    int t = kwta_threshold(v, n, k, count_ge_avx2, &take);
    const __m256i tv = _mm256_set1_epi8((char)t), tm1 = _mm256_set1_epi8((char)(t - 1));
    for (int64_t i = 0; i < n; i += 32) {
        __m256i x = _mm256_load_si256((const __m256i *)(v + i));
        uint32_t sel = (uint32_t)_mm256_movemask_epi8(_mm256_cmpgt_epi8(x, t == 0 ? tv : tm1));
        if (!sel)
            continue;
        if (t > 0) {
            uint32_t eq = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, tv));
            if (eq) {
                int64_t ne = __builtin_popcount(eq);
                if (ne <= take) {
                    take -= ne;
                } else {                     /* the ties run out here: the lowest `take` win */
                    for (int64_t q = 0; q < take; q++)
                        eq &= eq - 1;        /* drop the lowest tie from the losers */
                    sel &= ~eq;              /* the remaining ties lose */
                    take = 0;
                }
            }
        }
        while (sel) {
            win[m++] = i + __builtin_ctz(sel);
            sel &= sel - 1;
        }
    }
    return m;
}

/* Requantise 8 float32 accumulators (integers, |a + bias| < 2^23) to 8 bytes 0..127, exactly:
 * in float64, a*m is exact (< 2^39), + 2^(s-1) is exact (s <= 52, the caller checks), the
 * scaling by 2^-s is exact and floor is the arithmetic shift. */
PS_AVX2 static inline __attribute__((always_inline)) __m128i
requant8(__m256 a, __m256d m_lo, __m256d m_hi, __m256d r_lo, __m256d r_hi, __m256d s_lo, __m256d s_hi)
{
    const __m256d zero = _mm256_setzero_pd(), top = _mm256_set1_pd(ACT_MAX);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(a)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
    lo = _mm256_floor_pd(_mm256_mul_pd(_mm256_fmadd_pd(lo, m_lo, r_lo), s_lo));
    hi = _mm256_floor_pd(_mm256_mul_pd(_mm256_fmadd_pd(hi, m_hi, r_hi), s_hi));
    lo = _mm256_min_pd(_mm256_max_pd(lo, zero), top);
    hi = _mm256_min_pd(_mm256_max_pd(hi, zero), top);
    __m128i q = _mm_packs_epi32(_mm256_cvttpd_epi32(lo), _mm256_cvttpd_epi32(hi));   /* 8 x int16 */
    return _mm_packus_epi16(q, q);                                                     /* 8 bytes, twice */
}

/* conv1 for a chunk of CH vectors (8 pooled positions each) of kernel o: 4 phases, max. */
PS_AVX2 static inline __attribute__((always_inline)) void
conv1_chunk(const ps_model *M, const float *restrict xp, int64_t o, int64_t q0, uint8_t *restrict out8, const int CH)
{
    const int64_t T = M->n_tap, nt = M->n_taps[o];
    const float *restrict w = M->tap_wf + o * T;
    __m256 m[8] = {0}, a[8];
    for (int p = 0; p < 4; p++) {
        const int32_t *restrict off = M->tap_off + (o * 4 + p) * T;
        for (int j = 0; j < CH; j++)
            a[j] = _mm256_setzero_ps();
        for (int64_t t = 0; t < nt; t++) {
            __m256 wt = _mm256_broadcast_ss(w + t);
            const float *restrict x = xp + off[t] + q0;
            for (int j = 0; j < CH; j++)
                a[j] = _mm256_fmadd_ps(wt, _mm256_loadu_ps(x + 8 * j), a[j]);
        }
        for (int j = 0; j < CH; j++)
            m[j] = p == 0 ? a[j] : _mm256_max_ps(m[j], a[j]);
    }
    const __m256 bias = _mm256_set1_ps((float)M->bias1[o]);
    const __m256d mu = _mm256_set1_pd((double)M->mult1[o]), rn = _mm256_set1_pd((double)M->rnd1[o]);
    const __m256d scale = _mm256_set1_pd(1.0 / (double)((int64_t)1 << M->shift1[o]));
    for (int j = 0; j < CH; j++)
        _mm_storel_epi64((__m128i *)(out8 + 8 * j), requant8(_mm256_add_ps(m[j], bias), mu, mu, rn, rn, scale, scale));
}

PS_AVX2 static void conv1_avx2(const ps_model *M, const ps_scratch *S, const int8_t *restrict word)
{
    const int64_t nq = M->ph1 * M->stride1, npp = M->ph1 * M->pw1, nv = nq / 8;
    const int ch = nv % 7 == 0 ? 7 : (nv % 4 == 0 ? 4 : 1);
    float *restrict xp = S->xpf;
    uint8_t *restrict q8 = (uint8_t *)S->pooled;     /* [nq] requantised, row stride stride1 */
    for (int64_t k = 0; k < M->n_xp; k++)
        xp[k] = M->src[k] >= 0 ? (float)word[M->src[k]] : 0.0f;
    for (int64_t o = 0; o < M->c1_out; o++) {
        for (int64_t q0 = 0; q0 < nq; q0 += 8 * ch) {
            if (ch == 7)
                conv1_chunk(M, xp, o, q0, q8 + q0, 7);
            else if (ch == 4)
                conv1_chunk(M, xp, o, q0, q8 + q0, 4);
            else
                conv1_chunk(M, xp, o, q0, q8 + q0, 1);
        }
        uint8_t *restrict dst = S->v1 + o * npp;
        for (int64_t py = 0; py < M->ph1; py++)
            for (int64_t px = 0; px < M->pw1; px++)
                dst[py * M->pw1 + px] = q8[py * M->stride1 + px];
    }
}

/* conv2, slice-stationary: for each kernel offset (ky, kx) the rows of every channel (a 16 KB
 * slice, stays in L1) update the accumulators of every output position (in memory, 25.6 KB):
 * acc[p] += sum over the winners at input p + (ky, kx) of value * row[ci]. Then pool + requant. */
PS_AVX2 static void conv2_avx2(const ps_model *M, const ps_scratch *S, int64_t n_win)
{
    const int64_t ks = M->ks2, w = M->w2, hw = M->h2 * M->w2, ci_n = M->c2_in;
    const int64_t ho = M->h2 - ks + 1, wo = M->w2 - ks + 1, ph = ho / 2, pw = wo / 2, npp = ph * pw;
    const int32_t *restrict start = S->start, *restrict ent_row = S->ent_row;
    const float *restrict ent_f = (const float *)S->ent_val;
    float *restrict acc = S->acc2;
    float bf[64] __attribute__((aligned(32)));
    double md[64] __attribute__((aligned(32))), rd[64] __attribute__((aligned(32))), sd[64] __attribute__((aligned(32)));
    uint8_t best8[64] __attribute__((aligned(32)));
    for (int o = 0; o < 64; o++) {
        bf[o] = (float)M->bias2[o];
        md[o] = (double)M->mult2[o];
        rd[o] = (double)M->rnd2[o];
        sd[o] = 1.0 / (double)((int64_t)1 << M->shift2[o]);
    }
    bucket_winners(S->v1, S->win, n_win, hw, 64, S->start, S->ent_row, S->ent_val, 1);
    memset(acc, 0, (size_t)(ho * wo * 64) * sizeof(float));
    for (int64_t ky = 0; ky < ks; ky++)
        for (int64_t kx = 0; kx < ks; kx++) {
            const float *restrict slice = M->rowsk + (ky * ks + kx) * ci_n * 64;
#define PS_W(o) _mm256_load_ps(row + (o))
            for (int64_t oy = 0; oy < ho; oy++) {
                const int64_t r0 = (oy + ky) * w + kx;
                for (int64_t ox = 0; ox < wo; ox++) {
                    const int32_t e0 = start[r0 + ox], e1 = start[r0 + ox + 1];
                    if (e0 == e1)
                        continue;
                    float *restrict a = acc + (oy * wo + ox) * 64;
                    __m256 a0 = _mm256_load_ps(a), a1 = _mm256_load_ps(a + 8), a2 = _mm256_load_ps(a + 16),
                           a3 = _mm256_load_ps(a + 24), a4 = _mm256_load_ps(a + 32), a5 = _mm256_load_ps(a + 40),
                           a6 = _mm256_load_ps(a + 48), a7 = _mm256_load_ps(a + 56);
                    for (int32_t e = e0; e < e1; e++) {
                        const float *restrict row = slice + ent_row[e];
                        __m256 x = _mm256_broadcast_ss(ent_f + e);
                        a0 = _mm256_fmadd_ps(x, PS_W(0), a0);
                        a1 = _mm256_fmadd_ps(x, PS_W(8), a1);
                        a2 = _mm256_fmadd_ps(x, PS_W(16), a2);
                        a3 = _mm256_fmadd_ps(x, PS_W(24), a3);
                        a4 = _mm256_fmadd_ps(x, PS_W(32), a4);
                        a5 = _mm256_fmadd_ps(x, PS_W(40), a5);
                        a6 = _mm256_fmadd_ps(x, PS_W(48), a6);
                        a7 = _mm256_fmadd_ps(x, PS_W(56), a7);
                    }
                    _mm256_store_ps(a, a0); _mm256_store_ps(a + 8, a1); _mm256_store_ps(a + 16, a2);
                    _mm256_store_ps(a + 24, a3); _mm256_store_ps(a + 32, a4); _mm256_store_ps(a + 40, a5);
                    _mm256_store_ps(a + 48, a6); _mm256_store_ps(a + 56, a7);
                }
            }
#undef PS_W
        }
    for (int64_t py = 0; py < ph; py++)
        for (int64_t px = 0; px < pw; px++) {
            const float *restrict q0 = acc + ((2 * py) * wo + 2 * px) * 64, *restrict q2 = q0 + wo * 64;
            for (int j = 0; j < 8; j++) {
                __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_load_ps(q0 + 8 * j), _mm256_load_ps(q0 + 64 + 8 * j)),
                                          _mm256_max_ps(_mm256_load_ps(q2 + 8 * j), _mm256_load_ps(q2 + 64 + 8 * j)));
                _mm_storel_epi64((__m128i *)(best8 + 8 * j),
                                 requant8(_mm256_add_ps(mx, _mm256_load_ps(bf + 8 * j)),
                                          _mm256_load_pd(md + 8 * j), _mm256_load_pd(md + 8 * j + 4),
                                          _mm256_load_pd(rd + 8 * j), _mm256_load_pd(rd + 8 * j + 4),
                                          _mm256_load_pd(sd + 8 * j), _mm256_load_pd(sd + 8 * j + 4)));
            }
            const int64_t pp = py * pw + px;
            for (int64_t o = 0; o < 64; o++)
                S->v2[o * npp + pp] = best8[o];
        }
}

/* tail() with fc1's requantisation 8 at a time in float64 (exact: |acc * mult| < 2^46, + 2^(shift-1)
 * < 2^53 for shift <= 52, the caller checks) */
PS_AVX2 static void tail_avx2(const ps_model *M, const ps_scratch *S, int32_t *restrict scores)
{
    int64_t n = kwta_avx2(S->v2, M->n_v2, M->k2, S->win);
    fc_winners(S->v2, S->win, n, M->f1_g, M->f1_pack, M->f1_w, M->f1_own, M->bias3, M->f1_out, S->acc3);
    const int64_t n8 = M->f1_out / 8 * 8;
    for (int64_t o = 0; o < n8; o += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(S->acc3 + o));
        const __m256d zero = _mm256_setzero_pd(), top = _mm256_set1_pd(ACT_MAX);
        __m256d lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(a)), hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(a, 1));
        lo = _mm256_floor_pd(_mm256_mul_pd(_mm256_fmadd_pd(lo, _mm256_loadu_pd(M->mult3d + o), _mm256_loadu_pd(M->rnd3d + o)),
                                           _mm256_loadu_pd(M->scale3d + o)));
        hi = _mm256_floor_pd(_mm256_mul_pd(_mm256_fmadd_pd(hi, _mm256_loadu_pd(M->mult3d + o + 4),
                                                           _mm256_loadu_pd(M->rnd3d + o + 4)),
                                           _mm256_loadu_pd(M->scale3d + o + 4)));
        lo = _mm256_min_pd(_mm256_max_pd(lo, zero), top);
        hi = _mm256_min_pd(_mm256_max_pd(hi, zero), top);
        __m128i q = _mm_packs_epi32(_mm256_cvttpd_epi32(lo), _mm256_cvttpd_epi32(hi));
        _mm_storel_epi64((__m128i *)(S->v3 + o), _mm_packus_epi16(q, q));
    }
    for (int64_t o = n8; o < M->f1_out; o++)
        S->v3[o] = requant(S->acc3[o], M->mult3[o], M->shift3[o], M->rnd3[o]);
    n = kwta_avx2(S->v3, M->n_v3, M->k3, S->win);
    fc_winners(S->v3, S->win, n, M->f2_g, M->f2_pack, M->f2_w, M->f2_own, M->bias4, M->f2_out, S->acc4);
    for (int64_t o = 0; o < M->f2_out; o++)
        scores[o] = S->acc4[o];
}

PS_AVX2 static void word_avx2(const ps_model *M, const ps_scratch *S, const int8_t *word, int32_t *scores)
{
    conv1_avx2(M, S, word);
    int64_t n = kwta_avx2(S->v1, M->n_v1, M->k1, S->win);
    conv2_avx2(M, S, n);
    tail_avx2(M, S, scores);
}

/* Stage timings (time-stamp counter ticks added to ticks[0..3]: conv1, k-WTA 1, conv2, the rest);
 * for the profile in cpu_sparse's docstring, not used by the backend. */
PS_AVX2 static void word_avx2_ticks(const ps_model *M, const ps_scratch *S, const int8_t *word, int32_t *scores,
                                    int64_t *ticks)
{
    uint64_t t0 = __rdtsc();
    conv1_avx2(M, S, word);
    uint64_t t1 = __rdtsc();
    int64_t n = kwta_avx2(S->v1, M->n_v1, M->k1, S->win);
    uint64_t t2 = __rdtsc();
    conv2_avx2(M, S, n);
    uint64_t t3 = __rdtsc();
    tail_avx2(M, S, scores);
    uint64_t t4 = __rdtsc();
    ticks[0] += t1 - t0; ticks[1] += t2 - t1; ticks[2] += t3 - t2; ticks[3] += t4 - t3;
}

static int have_avx2(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                 __builtin_cpu_supports("bmi") && __builtin_cpu_supports("popcnt");
    }
    return cached;
}
#else
static int have_avx2(void) { return 0; }
#endif

/* ------------------------------------------------------------------------------ entry points */
/* 1 when ps_words(..., avx2 = 1) can run on this CPU. */
int ps_has_avx2(void) { return have_avx2(); }

/* Scores int32 [n, f2_out] of int8 words [n, word_len]: every layer, word after word.
 * avx2: 1 for the AVX2 float32 version (the caller checked ps_has_avx2, c2_out == 64 and the
 * 24-bit accumulator bounds), 0 for the portable int32 version. Returns 0, -1 if refused. */
int ps_words(const ps_model *M, const ps_scratch *S, int64_t n, const int8_t *words, int64_t word_len,
             int32_t *scores, int avx2)
{
    if (avx2) {
#ifdef PS_X86
        if (!have_avx2() || M->c2_out != 64 || (M->ph1 * M->stride1) % 8)
            return -1;
        for (int64_t b = 0; b < n; b++)
            word_avx2(M, S, words + b * word_len, scores + b * M->f2_out);
        return 0;
#else
        return -1;
#endif
    }
    if (M->c2_out > 256)
        return -1;
    for (int64_t b = 0; b < n; b++)
        word_portable(M, S, words + b * word_len, scores + b * M->f2_out);
    return 0;
}

int ps_words_ticks(const ps_model *M, const ps_scratch *S, int64_t n, const int8_t *words, int64_t word_len,
                   int32_t *scores, int64_t *ticks)
{
#ifdef PS_X86
    if (!have_avx2())
        return -1;
    for (int64_t b = 0; b < n; b++)
        word_avx2_ticks(M, S, words + b * word_len, scores + b * M->f2_out, ticks);
    return 0;
#else
    (void)M; (void)S; (void)n; (void)words; (void)word_len; (void)scores; (void)ticks;
    return -1;
#endif
}

/* A Python module only so that setup.py builds and installs this file like any extension;
 * the functions above are called through ctypes. */
static struct PyModuleDef ps_module = {PyModuleDef_HEAD_INIT, "_sparse_c",
                                       "C kernels of pynq_sparse.backends.cpu_sparse (called through ctypes)",
                                       -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__sparse_c(void) { return PyModule_Create(&ps_module); }
