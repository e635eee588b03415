/* Native pseudonyms and string masks for a whole column: the optional speed-up of
 * policies.pseudonyms.
 *
 *     pseudonym(v) = "p_" + hex(HMAC-SHA256(key, prefix + utf8(v)))[:16]
 *
 * with prefix = "<pii>:" (see policies/pseudonyms.py and docs/decisions/0007). The pure-Python
 * `pseudonym_of` is the reference and the fallback when this module is not built; the tests
 * hold the two together byte for byte.
 *
 * Self-contained on purpose: SHA-256 (FIPS 180-4, in native/sha256.h, shared with
 * audit/_chain.c) and HMAC (RFC 2104, here) are written out so the build needs nothing but
 * Python.h and a C compiler (no OpenSSL headers, no new runtime dependency). Where the CPU
 * has the x86 SHA extensions (checked at import with CPUID) the block function uses them;
 * everywhere else a portable C block function does the same job.
 *
 * Only exact `str` values are hashed here. None stays None, and any other value (int, date,
 * str subclass, ...) is handed to the Python fallback given at construction, so the rules for
 * turning a value into text live in one place (`policies.masks.text_of`).
 *
 * The string masks (mask_name ... mask_default, the `Mask` type below) follow the same pattern
 * and live in this module too, so the one extension that setup.py, the Makefile and the image
 * already build and check covers them (docs/decisions/0007).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "../native/sha256.h"

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

/* The result of `each(self, v)` for every item of `values`, as a list: the column loop shared by
 * the Pseudonymizer and Mask types. */
typedef PyObject *(*value_fn)(PyObject *self, PyObject *v);

static PyObject *
map_values(PyObject *self, PyObject *values, value_fn each)
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
        PyObject *p = each(self, v);
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

PyDoc_STRVAR(column_doc,
             "column(values, /) -> list\n\n"
             "The pseudonym of each value, in order: None stays None, str is hashed here, any\n"
             "other value goes through the fallback given to make().");

static PyObject *
pseudonym_each(PyObject *self, PyObject *v)
{
    return pseudonym_of_value((Pseudonymizer *)self, v);
}

static PyObject *
Pseudonymizer_column(Pseudonymizer *self, PyObject *values)
{
    return map_values((PyObject *)self, values, pseudonym_each);
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

/* --- string masks ---------------------------------------------------------------------- */
/* The string masks of policies/masks.py (mask_name ... mask_default), a column per call,
 * as the Mask type made by mask(name, fallback). The Python functions are the reference and
 * the fallback: every mask is written here as the same slices, s[:a] + "*" * k + s[b:], with
 * lengths and indices counted in code points as Python counts them. None stays None; any value
 * that is not an exact str (int, date, str subclass, ...) goes to the Python mask given at
 * construction, so the rules for turning a value into text keep their one home (`_text`). */

typedef enum {
    MASK_NAME,
    MASK_ID_NUMBER,
    MASK_PHONE,
    MASK_BANK_CARD,
    MASK_EMAIL,
    MASK_ADDRESS,
    MASK_DEFAULT,
    MASK_KINDS
} mask_kind;

static const char *const MASK_NAMES[MASK_KINDS] = {
    "mask_name",  "mask_id_number", "mask_phone",   "mask_bank_card",
    "mask_email", "mask_address",   "mask_default",
};

/* out[pos:pos+len] = s[start:start+len]; `okind` may be narrower than `kind` when only the
 * wide characters were masked, so a different kind is copied a character at a time. */
static inline void
copy_chars(int okind, void *odata, Py_ssize_t pos, int kind, const void *data, Py_ssize_t start,
           Py_ssize_t len)
{
    if (okind == kind) {
        memcpy((char *)odata + pos * kind, (const char *)data + start * kind, (size_t)(len * kind));
        return;
    }
    for (Py_ssize_t j = 0; j < len; j++)
        PyUnicode_WRITE(okind, odata, pos + j, PyUnicode_READ(kind, data, start + j));
}

static inline void
fill_stars(int okind, void *odata, Py_ssize_t pos, Py_ssize_t k)
{
    if (okind == PyUnicode_1BYTE_KIND) {
        memset((Py_UCS1 *)odata + pos, '*', (size_t)k);
        return;
    }
    for (Py_ssize_t j = 0; j < k; j++)
        PyUnicode_WRITE(okind, odata, pos + j, '*');
}

/* max(m, s[start:end]), for PyUnicode_New, which picks the result's kind from it: a str must
 * have the narrowest kind that holds its characters (s[0] of "张三" is UCS-2, of "a张" ASCII).
 * Stops once the result needs the source's own kind: no later character can change it. */
static inline Py_UCS4
max_char(int kind, const void *data, Py_ssize_t start, Py_ssize_t end, Py_UCS4 m)
{
    Py_UCS4 widest = kind == PyUnicode_1BYTE_KIND ? 0x80 : kind == PyUnicode_2BYTE_KIND ? 0x100
                                                                                      : 0x10000;
    for (Py_ssize_t i = start; i < end && m < widest; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c > m)
            m = c;
    }
    return m;
}

/* s[:a] + "*" * k + s[b:], with 0 <= a <= b <= len(s), as a new str. */
static PyObject *
splice(PyObject *s, Py_ssize_t a, Py_ssize_t k, Py_ssize_t b)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_UCS4 m = '*';
    if (!PyUnicode_IS_ASCII(s)) {
        m = max_char(kind, data, 0, a, m);
        m = max_char(kind, data, b, n, m);
    }
    PyObject *out = PyUnicode_New(a + k + (n - b), m);
    if (out == NULL)
        return NULL;
    int okind = PyUnicode_KIND(out);
    void *odata = PyUnicode_DATA(out);
    copy_chars(okind, odata, 0, kind, data, 0, a);
    fill_stars(okind, odata, a, k);
    copy_chars(okind, odata, a + k, kind, data, b, n - b);
    return out;
}

/* head + "*" * k + tail, for characters that are not one slice of a str (bank cards with
 * whitespace); `ascii` says they all are (skips looking for the widest). */
static PyObject *
build_chars(const Py_UCS4 *head, Py_ssize_t nhead, Py_ssize_t k, const Py_UCS4 *tail,
            Py_ssize_t ntail, int ascii)
{
    Py_UCS4 m = '*';
    if (!ascii) {
        for (Py_ssize_t i = 0; i < nhead; i++)
            m = head[i] > m ? head[i] : m;
        for (Py_ssize_t i = 0; i < ntail; i++)
            m = tail[i] > m ? tail[i] : m;
    }
    PyObject *out = PyUnicode_New(nhead + k + ntail, m);
    if (out == NULL)
        return NULL;
    int okind = PyUnicode_KIND(out);
    void *odata = PyUnicode_DATA(out);
    if (okind == PyUnicode_1BYTE_KIND) {
        Py_UCS1 *o = odata;
        for (Py_ssize_t i = 0; i < nhead; i++)
            o[i] = (Py_UCS1)head[i];
        memset(o + nhead, '*', (size_t)k);
        for (Py_ssize_t i = 0; i < ntail; i++)
            o[nhead + k + i] = (Py_UCS1)tail[i];
        return out;
    }
    for (Py_ssize_t i = 0; i < nhead; i++)
        PyUnicode_WRITE(okind, odata, i, head[i]);
    fill_stars(okind, odata, nhead, k);
    for (Py_ssize_t i = 0; i < ntail; i++)
        PyUnicode_WRITE(okind, odata, nhead + k + i, tail[i]);
    return out;
}

/* `_default`: all stars up to 2 characters, else the first and last kept. */
static PyObject *
mask_default_str(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    return n <= 2 ? splice(s, 0, n, n) : splice(s, 1, n - 2, n - 1);
}

/* s.isdigit() and s.isascii(): only '0'-'9' (isdigit alone admits "１" and "²"). */
static int
is_ascii_digits(PyObject *s)
{
    if (!PyUnicode_IS_ASCII(s))
        return 0;
    const Py_UCS1 *p = PyUnicode_1BYTE_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
    }
    return n > 0;
}

/* str.isdigit(): non-empty, and every character a digit in Unicode's sense. */
static int
is_digits(PyObject *s)
{
    if (PyUnicode_IS_ASCII(s))
        return is_ascii_digits(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!Py_UNICODE_ISDIGIT(PyUnicode_READ(kind, data, i)))
            return 0;
    }
    return n > 0;
}

static PyObject *
mask_bank_card_str(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (is_digits(s)) /* the usual case, and Python skips the split/join for it too */
        return n <= 10 ? mask_default_str(s) : splice(s, 6, n - 10, n - 4);
    /* "".join(s.split()): every character but whitespace in str.split()'s sense
     * (Py_UNICODE_ISSPACE, which includes U+3000), of which at most the first six and the
     * last four are kept (`ring` holds the last four). */
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    int ascii = PyUnicode_IS_ASCII(s);
    Py_UCS4 head[6], ring[4], tail[4];
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(c))
            continue;
        if (m < 6)
            head[m] = c;
        ring[m & 3] = c;
        m++;
    }
    if (m <= 2) /* `_default` of the joined text */
        return build_chars(head, 0, m, tail, 0, 1);
    if (m <= 10) {
        tail[0] = ring[(m - 1) & 3];
        return build_chars(head, 1, m - 2, tail, 1, ascii);
    }
    for (Py_ssize_t j = 0; j < 4; j++)
        tail[j] = ring[(m - 4 + j) & 3];
    return build_chars(head, 6, m - 10, tail, 4, ascii);
}

/* The mask of an exact str, as the Python function of the same name computes it. */
static PyObject *
mask_str(mask_kind kind, PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    switch (kind) {
    case MASK_NAME:
        return n <= 1 ? splice(s, 0, n, n) : splice(s, 1, n - 1, n);
    case MASK_ID_NUMBER:
        if (n == 18)
            return splice(s, 6, 8, 14);
        if (n == 15)
            return splice(s, 6, 6, 12);
        return mask_default_str(s);
    case MASK_PHONE:
        if (n == 11 && is_ascii_digits(s))
            return splice(s, 3, 4, 7);
        return n <= 5 ? mask_default_str(s) : splice(s, 3, n - 5, n - 2);
    case MASK_BANK_CARD:
        return mask_bank_card_str(s);
    case MASK_EMAIL: {
        /* s.rpartition("@"): local[:1] + "***" + "@" + domain, where "@" + domain = s[at:] */
        Py_ssize_t at = PyUnicode_FindChar(s, '@', 0, n, -1);
        if (at == -2)
            return NULL;
        if (at < 0)
            return mask_default_str(s);
        return splice(s, at > 0 ? 1 : 0, 3, at);
    }
    case MASK_ADDRESS:
        return n <= 6 ? mask_default_str(s) : splice(s, 6, 4, n);
    case MASK_DEFAULT:
    default:
        return mask_default_str(s);
    }
}

typedef struct {
    PyObject_HEAD
    mask_kind kind;
    PyObject *fallback; /* the Python mask: called for every value that is neither None nor str */
} Mask;

static PyObject *
mask_each(PyObject *op, PyObject *v)
{
    Mask *self = (Mask *)op;
    if (v == Py_None)
        Py_RETURN_NONE;
    if (!PyUnicode_CheckExact(v))
        return PyObject_CallOneArg(self->fallback, v);
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(v) < 0) /* a legacy str from the old Py_UNICODE API */
        return NULL;
#endif
    return mask_str(self->kind, v);
}

PyDoc_STRVAR(mask_column_doc,
             "column(values, /) -> list\n\n"
             "The mask of each value, in order: None stays None, str is masked here, any other\n"
             "value goes through the fallback given to mask().");

static PyObject *
Mask_column(Mask *self, PyObject *values)
{
    return map_values((PyObject *)self, values, mask_each);
}

static PyObject *
Mask_call(Mask *self, PyObject *args, PyObject *kwargs)
{
    PyObject *v;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "a Mask takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "Mask", 1, 1, &v))
        return NULL;
    return mask_each((PyObject *)self, v);
}

static int
Mask_traverse(Mask *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    return 0;
}

static int
Mask_clear(Mask *self)
{
    Py_CLEAR(self->fallback);
    return 0;
}

static void
Mask_dealloc(Mask *self)
{
    PyObject_GC_UnTrack(self);
    Mask_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Mask_repr(Mask *self)
{
    return PyUnicode_FromFormat("<policies._pseudonym.Mask %s>", MASK_NAMES[self->kind]);
}

static PyObject *
Mask_name(Mask *self, void *Py_UNUSED(closure))
{
    return PyUnicode_FromString(MASK_NAMES[self->kind]);
}

static PyMethodDef Mask_methods[] = {
    {"column", (PyCFunction)Mask_column, METH_O, mask_column_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Mask_getset[] = {
    {"name", (getter)Mask_name, NULL, "The transform: 'mask_name', 'mask_phone', ...", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MaskType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "policies._pseudonym.Mask",
    .tp_basicsize = sizeof(Mask),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One string mask of policies.masks, native for str; made by mask().",
    .tp_dealloc = (destructor)Mask_dealloc,
    .tp_traverse = (traverseproc)Mask_traverse,
    .tp_clear = (inquiry)Mask_clear,
    .tp_repr = (reprfunc)Mask_repr,
    .tp_call = (ternaryfunc)Mask_call,
    .tp_methods = Mask_methods,
    .tp_getset = Mask_getset,
};

PyDoc_STRVAR(mask_doc,
             "mask(name, fallback, /) -> Mask\n\n"
             "The string mask `name` (one of MASKS) for exact str values; `fallback(value)`, the\n"
             "Python mask of that name, is called for values that are neither None nor str.");

static PyObject *
mask(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *name;
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "sO:mask", &name, &fallback))
        return NULL;
    int kind = 0;
    while (kind < MASK_KINDS && strcmp(name, MASK_NAMES[kind]) != 0)
        kind++;
    if (kind == MASK_KINDS) {
        PyErr_Format(PyExc_ValueError, "no native mask %R", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "mask() needs a callable fallback");
        return NULL;
    }
    Mask *self = PyObject_GC_New(Mask, &MaskType);
    if (self == NULL)
        return NULL;
    self->kind = (mask_kind)kind;
    self->fallback = Py_NewRef(fallback);
    PyObject_GC_Track((PyObject *)self);
    return (PyObject *)self;
}

static PyMethodDef module_methods[] = {
    {"make", (PyCFunction)(void (*)(void))make, METH_VARARGS | METH_KEYWORDS, make_doc},
    {"mask", (PyCFunction)mask, METH_VARARGS, mask_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "policies._pseudonym",
    .m_doc = "Native HMAC-SHA256 pseudonyms and string masks for whole columns (see "
             "policies/masks.py).",
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
    if (PyType_Ready(&PseudonymizerType) < 0 || PyType_Ready(&MaskType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    const char *impl = best_compress == compress_portable ? "portable" : "sha-ni";
    PyObject *masks = PyTuple_New(MASK_KINDS);
    if (masks == NULL)
        goto error;
    for (int i = 0; i < MASK_KINDS; i++) {
        PyObject *name = PyUnicode_FromString(MASK_NAMES[i]);
        if (name == NULL) {
            Py_DECREF(masks);
            goto error;
        }
        PyTuple_SET_ITEM(masks, i, name);
    }
    if (PyModule_AddObject(m, "MASKS", masks) < 0) {
        Py_DECREF(masks);
        goto error;
    }
    if (PyModule_AddType(m, &PseudonymizerType) < 0 || PyModule_AddType(m, &MaskType) < 0 ||
        PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
