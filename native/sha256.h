/* SHA-256 (FIPS 180-4) for the project's optional C extensions: policies/_pseudonym.c (HMAC
 * pseudonyms) and audit/_chain.c (the audit chain verifier). One copy, included by both, so
 * the build needs nothing but Python.h and a C compiler (no OpenSSL headers).
 *
 * Where the CPU has the x86 SHA extensions (checked with CPUID: call `sha256_choose()` once at
 * import) the block function uses them; everywhere else a portable C block function does the
 * same job. Every function is static: each extension gets its own copy.
 */

#ifndef OPENGATE_SHA256_H
#define OPENGATE_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_SHA 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define HAVE_X86_SHA 0
#endif

/* --- SHA-256 --------------------------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t H256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* Processes `blocks` 64-byte blocks of `data` into `state`. */
typedef void (*compress_fn)(uint32_t state[8], const uint8_t *data, size_t blocks);

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static inline uint32_t
load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}

static inline void
store_be32(uint8_t *p, uint32_t x)
{
    p[0] = (uint8_t)(x >> 24);
    p[1] = (uint8_t)(x >> 16);
    p[2] = (uint8_t)(x >> 8);
    p[3] = (uint8_t)x;
}

static void
compress_portable(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    uint32_t w[64];
    for (; blocks; blocks--, data += 64) {
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(data + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = ROTR(w[t - 15], 7) ^ ROTR(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = ROTR(w[t - 2], 17) ^ ROTR(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 64; t++) {
            uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) +
                          K256[t] + w[t];
            uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }
}

#if HAVE_X86_SHA
/* The same block function with the SHA-NI instructions (Intel since Goldmont / Ice Lake,
 * AMD since Zen): about 5x fewer cycles a block. The state is kept as the ABEF/CDGH word
 * pairs the instructions expect; four rounds per step, the message schedule computed four
 * words at a time (sha256msg1 adds sigma0, sha256msg2 adds sigma1). */
__attribute__((target("sha,sse4.1,ssse3"))) static void
compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);     /* DCBA */
    __m128i state1 = _mm_loadu_si128((const __m128i *)&state[4]);  /* HGFE */
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                             /* CDAB */
    state1 = _mm_shuffle_epi32(state1, 0x1B);                       /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);               /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);                    /* CDGH */

    for (; blocks; blocks--, data += 64) {
        __m128i abef = state0, cdgh = state1;
        __m128i m[4], msg;
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) {
            if (i < 4) {
                m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
            }
            else {
                /* W[t..t+3] from W[t-16..t-13], W[t-15..t-12] (msg1), W[t-7..t-4] and
                 * W[t-2..t-1] (msg2); m[] is a ring of the last 16 words. */
                __m128i x = _mm_sha256msg1_epu32(m[i & 3], m[(i + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[(i + 3) & 3], m[(i + 2) & 3], 4));
                m[i & 3] = _mm_sha256msg2_epu32(x, m[(i + 3) & 3]);
            }
            msg = _mm_add_epi32(m[i & 3], _mm_loadu_si128((const __m128i *)&K256[4 * i]));
            state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            state0 = _mm_sha256rnds2_epu32(state0, state1, msg);
        }
        state0 = _mm_add_epi32(state0, abef);
        state1 = _mm_add_epi32(state1, cdgh);
    }

    tmp = _mm_shuffle_epi32(state0, 0x1B);         /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);      /* DCHG */
    state0 = _mm_blend_epi16(tmp, state1, 0xF0);   /* DCBA */
    state1 = _mm_alignr_epi8(state1, tmp, 8);      /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], state0);
    _mm_storeu_si128((__m128i *)&state[4], state1);
}

static int
cpu_has_sha(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & (1u << 9)) || !(c & (1u << 19))) /* SSSE3, SSE4.1 */
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}
#endif

/* Chosen once at import; `make(..., portable=True)` forces the C version (for the tests). */
static compress_fn best_compress = compress_portable;

typedef struct {
    uint32_t h[8];
    uint64_t len; /* bytes absorbed so far */
    uint8_t buf[64];
    size_t buflen;
} sha256_ctx;

static void
sha256_init(sha256_ctx *ctx)
{
    memcpy(ctx->h, H256, sizeof ctx->h);
    ctx->len = 0;
    ctx->buflen = 0;
}

static void
sha256_update(sha256_ctx *ctx, compress_fn compress, const uint8_t *p, size_t n)
{
    ctx->len += n;
    if (ctx->buflen) {
        size_t take = 64 - ctx->buflen;
        if (take > n)
            take = n;
        memcpy(ctx->buf + ctx->buflen, p, take);
        ctx->buflen += take;
        p += take;
        n -= take;
        if (ctx->buflen < 64)
            return;
        compress(ctx->h, ctx->buf, 1);
        ctx->buflen = 0;
    }
    if (n >= 64) {
        compress(ctx->h, p, n / 64);
        p += n & ~(size_t)63;
        n &= 63;
    }
    memcpy(ctx->buf, p, n);
    ctx->buflen = n;
}

/* The digest as eight big-endian words (`out` may not alias `ctx`). */
static void
sha256_final(sha256_ctx *ctx, compress_fn compress, uint8_t out[32])
{
    uint64_t bits = ctx->len * 8;
    size_t n = ctx->buflen;
    ctx->buf[n++] = 0x80;
    if (n > 56) {
        memset(ctx->buf + n, 0, 64 - n);
        compress(ctx->h, ctx->buf, 1);
        n = 0;
    }
    memset(ctx->buf + n, 0, 56 - n);
    for (int i = 0; i < 8; i++)
        ctx->buf[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(ctx->h, ctx->buf, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, ctx->h[i]);
}

/* Picks the best block function for this CPU (once, at import). */
static inline void
sha256_choose(void)
{
#if HAVE_X86_SHA
    if (cpu_has_sha())
        best_compress = compress_shani;
#endif
}

#endif /* OPENGATE_SHA256_H */
