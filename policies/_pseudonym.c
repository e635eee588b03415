/* Native pseudonyms for a whole column: the optional speed-up of policies.transforms.
 *
 *     pseudonym(v) = "p_" + hex(HMAC-SHA256(key, prefix + utf8(v)))[:16]
 *
 * with prefix = "<pii>:" (see policies/transforms.py and docs/decisions/0007). The pure-Python
 * `_pseudonym_of` is the reference and the fallback when this module is not built; the tests
 * hold the two together byte for byte.
 *
 * Self-contained on purpose: SHA-256 (FIPS 180-4) and HMAC (RFC 2104) are written out here so
 * the build needs nothing but Python.h and a C compiler (no OpenSSL headers, no new runtime
 * dependency). Where the CPU has the x86 SHA extensions (checked at import with CPUID) the
 * block function uses them; everywhere else a portable C block function does the same job.
 *
 * Only exact `str` values are hashed here. None stays None, and any other value (int, date,
 * str subclass, ...) is handed to the Python fallback given at construction, so the rules for
 * turning a value into text live in one place (`policies.transforms._text`).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

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

/* --- the Pseudonymizer type ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    sha256_ctx inner;    /* key ^ ipad block and the prefix absorbed */
    uint32_t outer[8];   /* state after the key ^ opad block */
    compress_fn compress;
    PyObject *fallback;  /* called for every value that is neither None nor an exact str */
} Pseudonymizer;

static const char HEX[] = "0123456789abcdef";

/* "p_" + 16 hex characters of HMAC(key, prefix + data), as a new str. */
static PyObject *
pseudonym_of_bytes(Pseudonymizer *self, const uint8_t *data, size_t n)
{
    sha256_ctx ctx = self->inner;
    uint8_t block[64];
    sha256_update(&ctx, self->compress, data, n);
    sha256_final(&ctx, self->compress, block); /* inner digest: the outer message */

    /* The outer message is always 32 bytes after one 64-byte key block, so its padding is
     * fixed: 0x80, zeros, and a length of 96 bytes = 768 bits. One block, no buffering. */
    block[32] = 0x80;
    memset(block + 33, 0, 64 - 33 - 2);
    block[62] = 0x03;
    block[63] = 0x00;
    uint32_t h[8];
    memcpy(h, self->outer, sizeof h);
    self->compress(h, block, 1);

    PyObject *out = PyUnicode_New(18, 127);
    if (out == NULL)
        return NULL;
    Py_UCS1 *s = PyUnicode_1BYTE_DATA(out);
    s[0] = 'p';
    s[1] = '_';
    for (int i = 0; i < 2; i++) { /* 16 hex characters = the first 8 bytes = two words */
        for (int j = 0; j < 8; j++)
            s[2 + 8 * i + j] = (Py_UCS1)HEX[(h[i] >> (28 - 4 * j)) & 0xF];
    }
    return out;
}

static PyObject *
pseudonym_of_value(Pseudonymizer *self, PyObject *v)
{
    if (v == Py_None)
        Py_RETURN_NONE;
    if (!PyUnicode_CheckExact(v))
        return PyObject_CallOneArg(self->fallback, v);
    if (PyUnicode_IS_ASCII(v)) {
        /* ASCII text is its own UTF-8: this returns the string's data, copying nothing. */
        Py_ssize_t n;
        const char *p = PyUnicode_AsUTF8AndSize(v, &n);
        if (p == NULL)
            return NULL;
        return pseudonym_of_bytes(self, (const uint8_t *)p, (size_t)n);
    }
    /* A temporary bytes object rather than PyUnicode_AsUTF8AndSize, which would keep a UTF-8
     * copy attached to the str for as long as it lives. Same strict encoder as str.encode(),
     * so a lone surrogate raises the same UnicodeEncodeError as the pure-Python path. */
    PyObject *encoded = PyUnicode_AsUTF8String(v);
    if (encoded == NULL)
        return NULL;
    PyObject *out = pseudonym_of_bytes(self, (const uint8_t *)PyBytes_AS_STRING(encoded),
                                       (size_t)PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return out;
}

PyDoc_STRVAR(column_doc,
             "column(values, /) -> list\n\n"
             "The pseudonym of each value, in order: None stays None, str is hashed here, any\n"
             "other value goes through the fallback given to make().");

static PyObject *
Pseudonymizer_column(Pseudonymizer *self, PyObject *values)
{
    PyObject *seq = PySequence_Fast(values, "column() needs a sequence of values");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Re-read the item each time: the fallback is Python code and may change a list. */
        if (i >= PySequence_Fast_GET_SIZE(seq)) {
            PyErr_SetString(PyExc_RuntimeError, "the sequence changed size during column()");
            goto error;
        }
        PyObject *v = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(v);
        PyObject *p = pseudonym_of_value(self, v);
        Py_DECREF(v);
        if (p == NULL)
            goto error;
        PyList_SET_ITEM(out, i, p);
    }
    Py_DECREF(seq);
    return out;
error:
    Py_DECREF(seq);
    Py_DECREF(out); /* unset items are NULL, which list dealloc skips */
    return NULL;
}

static PyObject *
Pseudonymizer_call(Pseudonymizer *self, PyObject *args, PyObject *kwargs)
{
    PyObject *v;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "a Pseudonymizer takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Pseudonymizer", 1, 1, &v))
        return NULL;
    return pseudonym_of_value(self, v);
}

static int
Pseudonymizer_traverse(Pseudonymizer *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    return 0;
}

static int
Pseudonymizer_clear(Pseudonymizer *self)
{
    Py_CLEAR(self->fallback);
    return 0;
}

static void
Pseudonymizer_dealloc(Pseudonymizer *self)
{
    PyObject_GC_UnTrack(self);
    Pseudonymizer_clear(self);
    /* The key schedule is secret material: do not leave it in freed memory. */
    volatile uint8_t *p = (volatile uint8_t *)&self->inner;
    for (size_t i = 0; i < sizeof self->inner; i++)
        p[i] = 0;
    p = (volatile uint8_t *)self->outer;
    for (size_t i = 0; i < sizeof self->outer; i++)
        p[i] = 0;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Pseudonymizer_implementation(Pseudonymizer *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(self->compress == compress_portable ? "portable" : "sha-ni");
}

static PyMethodDef Pseudonymizer_methods[] = {
    {"column", (PyCFunction)Pseudonymizer_column, METH_O, column_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Pseudonymizer_getset[] = {
    {"implementation", (getter)Pseudonymizer_implementation, NULL,
     "The SHA-256 block function in use: 'sha-ni' or 'portable'.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PseudonymizerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "policies._pseudonym.Pseudonymizer",
    .tp_basicsize = sizeof(Pseudonymizer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Pseudonyms under one key and prefix; made by make().",
    .tp_dealloc = (destructor)Pseudonymizer_dealloc,
    .tp_traverse = (traverseproc)Pseudonymizer_traverse,
    .tp_clear = (inquiry)Pseudonymizer_clear,
    .tp_call = (ternaryfunc)Pseudonymizer_call,
    .tp_methods = Pseudonymizer_methods,
    .tp_getset = Pseudonymizer_getset,
};

PyDoc_STRVAR(make_doc,
             "make(key, prefix, fallback, /, *, portable=False) -> Pseudonymizer\n\n"
             "A pseudonymizer for HMAC-SHA256 under `key` of `prefix` + the UTF-8 of a value.\n"
             "`fallback(value)` is called for values that are neither None nor an exact str.\n"
             "`portable` forces the portable C block function even where SHA-NI is present.");

static PyObject *
make(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"", "", "", "portable", NULL};
    Py_buffer key, prefix;
    PyObject *fallback;
    int portable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*O|$p:make", kwlist, &key, &prefix,
                                     &fallback, &portable))
        return NULL;
    PyObject *result = NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "make() needs a callable fallback");
        goto done;
    }
    Pseudonymizer *self = PyObject_GC_New(Pseudonymizer, &PseudonymizerType);
    if (self == NULL)
        goto done;
    self->compress = portable ? compress_portable : best_compress;
    self->fallback = Py_NewRef(fallback);

    /* RFC 2104: a key longer than the block is replaced by its hash, then zero-padded. */
    uint8_t block[64] = {0};
    sha256_ctx ctx;
    if (key.len > 64) {
        sha256_init(&ctx);
        sha256_update(&ctx, self->compress, key.buf, (size_t)key.len);
        sha256_final(&ctx, self->compress, block);
    }
    else {
        memcpy(block, key.buf, (size_t)key.len);
    }
    uint8_t pad[64];
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    sha256_init(&self->inner);
    sha256_update(&self->inner, self->compress, pad, 64);
    sha256_update(&self->inner, self->compress, prefix.buf, (size_t)prefix.len);
    for (int i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    memcpy(self->outer, H256, sizeof self->outer);
    self->compress(self->outer, pad, 1);

    volatile uint8_t *wipe = block;
    for (int i = 0; i < 64; i++)
        wipe[i] = 0;
    wipe = pad;
    for (int i = 0; i < 64; i++)
        wipe[i] = 0;
    wipe = (volatile uint8_t *)&ctx;
    for (size_t i = 0; i < sizeof ctx; i++)
        wipe[i] = 0;

    PyObject_GC_Track((PyObject *)self);
    result = (PyObject *)self;
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return result;
}

static PyMethodDef module_methods[] = {
    {"make", (PyCFunction)(void (*)(void))make, METH_VARARGS | METH_KEYWORDS, make_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "policies._pseudonym",
    .m_doc = "Native HMAC-SHA256 pseudonyms for whole columns (see policies/transforms.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__pseudonym(void)
{
#if HAVE_X86_SHA
    if (cpu_has_sha())
        best_compress = compress_shani;
#endif
    if (PyType_Ready(&PseudonymizerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    const char *impl = best_compress == compress_portable ? "portable" : "sha-ni";
    if (PyModule_AddType(m, &PseudonymizerType) < 0 ||
        PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
