/* The audit chain's hot loops, natively — optional speed-ups with pure-Python twins that give
 * the same bytes (tests/audit/test_native_chain.py, test_native_writer.py):
 *
 *   - walk(): the verifier's fast loop over PostgreSQL COPY lines, below (decision 0008);
 *   - link(), copy_line(), in_domain(): the writer's per-event work — the chain link under
 *     the head lock, and before it the COPY line and the canonical-domain check of an
 *     event (audit/writer.py, audit/store.py, audit/canonical.py; decision 0009).
 *
 * The verifier's fast loop (the optional speed-up of audit.verify.ChainWalk.feed_lines, see
 * docs/decisions/0008-native-chain-verifier.md):
 *
 *     walk(lines, start, prev, expected, nodes, size, stop_at)
 *         -> (end, prev, expected, size)
 *
 * walks `lines` (a list of bytes) from index `start` for as long as every line is one the
 * pure-Python fast path would accept on that path, with the same result: its seq is
 * `expected`, its stored link is `prev`, it has nothing the template cannot encode, and its
 * stored hash is hex(SHA-256(prev ‖ template encoding)). Each such line moves the chain on
 * (prev = its hash, expected + 1) and appends its hash to the RFC 9162 Merkle frontier
 * (`nodes`, a list of 32-byte roots, updated in place, and `size`). It stops
 *
 *   - before the first line it cannot vouch for: Python hands that one line to its own
 *     loop (the exact path, a re-read in key order, the error report) — so this module
 *     never decides that something is wrong, only that something is right;
 *   - after the line whose seq is `stop_at`, so Python checks that checkpoint;
 *   - at the end of the list;
 *
 * and returns the index it stopped at with the new state. A line is accepted only when its
 * stored hash equals SHA-256 over every column of it (the encoding is injective), so a
 * changed column cannot pass; anything unusual (a stray tab, no newline, a seq written
 * differently) is simply left to Python.
 *
 * The template: the event's members in sorted key order, string columns in quotes, number
 * and JSON columns as the line carries them; `\N` (null) becomes null. It is written out
 * below (TEMPLATE, PICK) and audit/verify.py uses this module only when both equal its own
 * template and column order, so the two cannot drift apart silently.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../native/sha256.h"

#define NCOLUMNS 18 /* audit.store.COLUMNS: the 16 event keys, prev_hash, hash */
#define NKEYS 16
#define COL_FIELDS 8
#define COL_DETAIL 15
#define COL_PREV 16
#define COL_HASH 17
#define HEXLEN 64
#define WINDOW 256 /* lines walked per release of the GIL */

/* The event keys in sorted order: the COPY column each one is read from, and whether it is
 * a string (quoted) or a number / JSON text (as it is). */
static const struct {
    const char *key;
    int column;
    int quoted;
} MEMBERS[NKEYS] = {
    {"action", 6, 1},      {"actor", 3, 1},      {"client_id", 4, 1},  {"detail", 15, 0},
    {"fields", 8, 0},      {"grant_id", 11, 0},  {"grant_version", 12, 0}, {"ip", 5, 1},
    {"outcome", 13, 1},    {"purpose", 10, 1},   {"request_id", 2, 1}, {"resource", 7, 1},
    {"row_count", 9, 0},   {"seq", 0, 0},        {"status", 14, 0},    {"ts", 1, 1},
};

/* The constant text before each member's value ("{\"action\":\"", "\",\"actor\":\"", ...)
 * and after the last: built once at import from MEMBERS. */
static char *piece[NKEYS + 1];
static size_t piece_len[NKEYS + 1];
static size_t pieces_total;

/* Bytes the fast path must account for: C0 controls but tab and newline, quote, backslash. */
static uint8_t odd_byte[256];

static const char HEX[] = "0123456789abcdef";

/* --- counting bytes: 16 at a time where SSE2 is there (every x86-64) ------------------ */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* How many bytes of p[0..n) are odd_byte[]s (C0 controls but tab and newline, quote,
 * backslash), less the quotes of the two ranges in `skip` (the JSON texts). */
#if defined(__SSE2__)
/* The byte lanes of `sums` (each at most 255) added up. */
static inline size_t
lanes_sum(__m128i sums)
{
    __m128i s = _mm_sad_epu8(sums, _mm_setzero_si128());
    return (size_t)_mm_cvtsi128_si32(s) + (size_t)_mm_extract_epi16(s, 4);
}
#endif

static size_t
count_odd(const uint8_t *p, size_t n)
{
    size_t count = 0, i = 0;
#if defined(__SSE2__)
    const __m128i c31 = _mm_set1_epi8(31), tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n');
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (i + 16 <= n) {
        __m128i sums = _mm_setzero_si128();
        for (int round = 0; round < 255 && i + 16 <= n; round++, i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(x, c31), x); /* x <= 31 */
            __m128i layout = _mm_or_si128(_mm_cmpeq_epi8(x, tab), _mm_cmpeq_epi8(x, nl));
            __m128i odd = _mm_or_si128(_mm_andnot_si128(layout, control),
                                       _mm_or_si128(_mm_cmpeq_epi8(x, quote),
                                                    _mm_cmpeq_epi8(x, backslash)));
            sums = _mm_sub_epi8(sums, odd); /* a match is -1 */
        }
        count += lanes_sum(sums);
    }
#endif
    for (; i < n; i++)
        count += odd_byte[p[i]];
    return count;
}

/* How many bytes of p[0..n) are `c`. */
static size_t
count_byte(const uint8_t *p, size_t n, uint8_t c)
{
    size_t count = 0, i = 0;
#if defined(__SSE2__)
    const __m128i want = _mm_set1_epi8((char)c);
    while (i + 16 <= n) {
        __m128i sums = _mm_setzero_si128();
        for (int round = 0; round < 255 && i + 16 <= n; round++, i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
            sums = _mm_sub_epi8(sums, _mm_cmpeq_epi8(x, want));
        }
        count += lanes_sum(sums);
    }
#endif
    for (; i < n; i++)
        count += p[i] == c;
    return count;
}

/* --- Merkle (RFC 9162) ----------------------------------------------------------------- */

/* leaf = SHA-256(0x00 ‖ 32 bytes): one block with fixed padding (33 bytes = 264 bits). */
static void
leaf_hash(compress_fn compress, const uint8_t chain[32], uint8_t out[32])
{
    uint8_t block[64];
    uint32_t h[8];
    block[0] = 0x00;
    memcpy(block + 1, chain, 32);
    block[33] = 0x80;
    memset(block + 34, 0, 64 - 34 - 2);
    block[62] = 0x01;
    block[63] = 0x08;
    memcpy(h, H256, sizeof h);
    compress(h, block, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, h[i]);
}

/* node = SHA-256(0x01 ‖ left ‖ right): two blocks (65 bytes = 520 bits). */
static void
node_hash(compress_fn compress, const uint8_t left[32], const uint8_t right[32], uint8_t out[32])
{
    uint8_t block[128];
    uint32_t h[8];
    block[0] = 0x01;
    memcpy(block + 1, left, 32);
    memcpy(block + 33, right, 32);
    block[65] = 0x80;
    memset(block + 66, 0, 128 - 66 - 2);
    block[126] = 0x02;
    block[127] = 0x08;
    memcpy(h, H256, sizeof h);
    compress(h, block, 2);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, h[i]);
}

typedef struct {
    uint8_t node[64][32];
    int count;
    unsigned long long size;
} frontier;

/* Frontier.append_digest: each trailing 1-bit of the old size is a perfect subtree the new
 * leaf completes. */
static void
frontier_append(frontier *f, compress_fn compress, const uint8_t chain[32])
{
    uint8_t node[32];
    leaf_hash(compress, chain, node);
    for (unsigned long long s = f->size; s & 1; s >>= 1) {
        f->count--;
        node_hash(compress, f->node[f->count], node, node);
    }
    memcpy(f->node[f->count], node, 32);
    f->count++;
    f->size++;
}

/* --- one line ---------------------------------------------------------------------------- */

typedef struct {
    compress_fn compress;
    uint8_t prev[HEXLEN];       /* the hash of the last accepted event, hex */
    long long expected;         /* the seq the next line must carry */
    frontier tree;
    uint8_t *buf;               /* prev ‖ encoding, grown as needed */
    size_t cap;
    char seq_text[24];          /* `expected` in decimal */
    size_t seq_len;
} walk_state;

static void
seq_text_set(walk_state *st)
{
    int n = snprintf(st->seq_text, sizeof st->seq_text, "%lld", st->expected);
    st->seq_len = n > 0 ? (size_t)n : 0;
}

/* `expected` has just gone up by one: its decimal text too, without printf. */
static void
seq_text_next(walk_state *st)
{
    for (size_t i = st->seq_len; i-- > 0;) {
        if (st->seq_text[i] != '9') {
            st->seq_text[i]++;
            return;
        }
        st->seq_text[i] = '0';
    }
    seq_text_set(st); /* 9...9 + 1: one digit more */
}

/* 1 when `line` is accepted (the state moved on), 0 when Python must look at it, -1 when
 * out of memory. */
static int
walk_line(walk_state *st, const uint8_t *p, size_t n)
{
    const uint8_t *start[NCOLUMNS];
    size_t len[NCOLUMNS];

    /* Exactly 18 tab-separated fields, the last one ending the line with its newline. */
    if (n == 0 || p[n - 1] != '\n')
        return 0;
    const uint8_t *at = p, *end = p + n - 1;
    for (int i = 0; i < NCOLUMNS - 1; i++) {
        const uint8_t *tab = memchr(at, '\t', (size_t)(end - at));
        if (tab == NULL)
            return 0;
        start[i] = at;
        len[i] = (size_t)(tab - at);
        at = tab + 1;
    }
    if (memchr(at, '\t', (size_t)(end - at)) != NULL)
        return 0;
    start[COL_HASH] = at;
    len[COL_HASH] = (size_t)(end - at);

    /* seq: the decimal digits of `expected`, written as PostgreSQL writes a bigint. */
    if (len[0] != st->seq_len || memcmp(start[0], st->seq_text, st->seq_len) != 0)
        return 0;
    if (len[COL_PREV] != HEXLEN || memcmp(start[COL_PREV], st->prev, HEXLEN) != 0)
        return 0;
    if (len[COL_HASH] != HEXLEN)
        return 0;

    /* The odd bytes of the line, less the quotes of the two JSON texts, must be none — or
     * exactly the backslashes of the `\N` null markers. */
    size_t odd = count_odd(p, n);
    odd -= count_byte(start[COL_FIELDS], len[COL_FIELDS], '"');
    odd -= count_byte(start[COL_DETAIL], len[COL_DETAIL], '"');
    if (odd) {
        /* bytes.count(b"\\N"): non-overlapping, and two can never overlap. */
        size_t nulls = 0;
        for (const uint8_t *q = p, *last = p + n; (q = memchr(q, '\\', (size_t)(last - q)));) {
            if (q + 1 < last && q[1] == 'N') {
                nulls++;
                q += 2;
            }
            else {
                q++;
            }
        }
        if (odd != nulls)
            return 0;
    }

    /* prev ‖ the template filled in. Nulls at most double their two bytes. */
    size_t need = HEXLEN + pieces_total + 2 * n;
    if (need > st->cap) {
        uint8_t *grown = realloc(st->buf, need);
        if (grown == NULL)
            return -1;
        st->buf = grown;
        st->cap = need;
    }
    uint8_t *out = st->buf;
    memcpy(out, st->prev, HEXLEN);
    out += HEXLEN;
    for (int k = 0; k < NKEYS; k++) {
        memcpy(out, piece[k], piece_len[k]);
        out += piece_len[k];
        int c = MEMBERS[k].column;
        memcpy(out, start[c], len[c]);
        out += len[c];
    }
    memcpy(out, piece[NKEYS], piece_len[NKEYS]);
    out += piece_len[NKEYS];
    size_t total = (size_t)(out - st->buf);

    if (odd) {
        /* bytes.replace(b'"\\N"', b"null") then .replace(b"\\N", b"null"), in one pass (a
         * `\N` match never covers a quote, so the two passes pick the same matches). The
         * output never runs ahead of the input: rewrite the encoding in place from a copy. */
        uint8_t *copy = malloc(total);
        if (copy == NULL)
            return -1;
        memcpy(copy, st->buf, total);
        size_t r = HEXLEN, w = HEXLEN;
        while (r < total) {
            if (r + 3 < total && copy[r] == '"' && copy[r + 1] == '\\' && copy[r + 2] == 'N' &&
                copy[r + 3] == '"') {
                memcpy(st->buf + w, "null", 4);
                w += 4;
                r += 4;
            }
            else if (r + 1 < total && copy[r] == '\\' && copy[r + 1] == 'N') {
                memcpy(st->buf + w, "null", 4);
                w += 4;
                r += 2;
            }
            else {
                st->buf[w++] = copy[r++];
            }
        }
        free(copy);
        total = w;
    }

    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    sha256_update(&ctx, st->compress, st->buf, total);
    sha256_final(&ctx, st->compress, digest);

    const uint8_t *stored = start[COL_HASH];
    for (int i = 0; i < 32; i++) {
        if (stored[2 * i] != (uint8_t)HEX[digest[i] >> 4] ||
            stored[2 * i + 1] != (uint8_t)HEX[digest[i] & 0xF])
            return 0;
    }

    memcpy(st->prev, stored, HEXLEN);
    frontier_append(&st->tree, st->compress, digest);
    st->expected++;
    seq_text_next(st);
    return 1;
}

/* --- walk() ------------------------------------------------------------------------------ */

static PyObject *
walk(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"lines", "start", "prev", "expected", "nodes", "size", "stop_at",
                             "portable", NULL};
    PyObject *lines, *nodes;
    Py_ssize_t begin;
    PyObject *prev;
    long long expected, size, stop_at;
    int portable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!nO!LO!LL|$p", kwlist, &PyList_Type, &lines,
                                     &begin, &PyBytes_Type, &prev, &expected, &PyList_Type, &nodes, &size,
                                     &stop_at, &portable))
        return NULL;

    walk_state st;
    memset(&st, 0, sizeof st);
    st.compress = portable ? compress_portable : best_compress;
    st.expected = expected;
    seq_text_set(&st);
    Py_ssize_t n_nodes = PyList_GET_SIZE(nodes);
    int valid = size >= 0 && expected >= 1 && begin >= 0 &&
                n_nodes == __builtin_popcountll((unsigned long long)size) && n_nodes <= 63;
    /* A link that is not 64 characters is one no line can match: vouch for nothing. */
    int linkable = PyBytes_GET_SIZE(prev) == HEXLEN;
    if (linkable)
        memcpy(st.prev, PyBytes_AS_STRING(prev), HEXLEN);
    if (valid) {
        for (Py_ssize_t i = 0; i < n_nodes; i++) {
            PyObject *node = PyList_GET_ITEM(nodes, i);
            if (!PyBytes_CheckExact(node) || PyBytes_GET_SIZE(node) != 32) {
                valid = 0;
                break;
            }
            memcpy(st.tree.node[i], PyBytes_AS_STRING(node), 32);
        }
    }
    if (!valid) {
        PyErr_SetString(PyExc_ValueError, "walk(): expected or the frontier is not valid");
        return NULL;
    }
    st.tree.count = (int)n_nodes;
    st.tree.size = (unsigned long long)size;

    /* Own the lines for the walk (a slice holds its own references), then let go of the GIL:
     * the verifier runs in a thread of a busy gateway. A window at a time, so a walk that
     * stops early (a log where most lines take the exact path) copies little. */
    Py_ssize_t total = PyList_GET_SIZE(lines), done = 0;
    if (begin > total)
        begin = total;
    int failed = 0, stopped = !linkable;
    while (!stopped && begin + done < total) {
        Py_ssize_t window = total - begin - done < WINDOW ? total - begin - done : WINDOW;
        PyObject *held = PyList_GetSlice(lines, begin + done, begin + done + window);
        if (held == NULL) {
            free(st.buf);
            return NULL;
        }
        Py_ssize_t count = PyList_GET_SIZE(held), i = 0;
        Py_BEGIN_ALLOW_THREADS
        for (; i < count; i++) {
            PyObject *line = PyList_GET_ITEM(held, i);
            int accepted = PyBytes_CheckExact(line)
                               ? walk_line(&st, (const uint8_t *)PyBytes_AS_STRING(line),
                                           (size_t)PyBytes_GET_SIZE(line))
                               : 0;
            if (accepted <= 0) {
                failed = accepted < 0;
                stopped = 1;
                break;
            }
            if (st.expected - 1 == stop_at) {
                i++;
                stopped = 1;
                break;
            }
        }
        Py_END_ALLOW_THREADS
        Py_DECREF(held);
        done += i;
    }
    free(st.buf);
    if (failed)
        return PyErr_NoMemory();

    /* The frontier back into `nodes`, in place. */
    PyObject *fresh = PyList_New(st.tree.count);
    if (fresh == NULL)
        return NULL;
    for (int i = 0; i < st.tree.count; i++) {
        PyObject *node = PyBytes_FromStringAndSize((const char *)st.tree.node[i], 32);
        if (node == NULL) {
            Py_DECREF(fresh);
            return NULL;
        }
        PyList_SET_ITEM(fresh, i, node);
    }
    int set = PyList_SetSlice(nodes, 0, PyList_GET_SIZE(nodes), fresh);
    Py_DECREF(fresh);
    if (set < 0)
        return NULL;
    if (done == 0)
        return Py_BuildValue("(nOLL)", begin, prev, st.expected,
                             (long long)st.tree.size);
    return Py_BuildValue("(ny#LL)", begin + done, (const char *)st.prev, (Py_ssize_t)HEXLEN,
                         st.expected, (long long)st.tree.size);
}

/* --- link(): the writer's work under the head lock ------------------------------------ */

/* link(events, prev, seq, ts) -> (data, last)
 *
 * Numbers and hashes a batch of prepared events (audit.writer.Prepared: head, status, values,
 * line) after the chain head (`prev`, its 64 hex digits; `seq`, its number) at time `ts`, as
 * audit.writer.link_copy does in Python, and returns the batch as PostgreSQL COPY input with
 * the hex hash of its last event. For event i (seq + 1 + i):
 *
 *     hash = hex(SHA-256(prev ‖ head ‖ ,"seq":N ‖ status ‖ ts ‖ "}))
 *     data += line ‖ N \t ts \t prev \t hash \n
 *
 * It runs while the writer holds the chain's lock in PostgreSQL, so it is quick (a few
 * hundred events in a tenth of a millisecond with SHA-NI) and keeps the GIL: giving it up
 * would mean queueing to get it back — behind request handlers, up to a switch interval —
 * with the lock held. */
typedef struct {
    const char *head, *status, *line;
    Py_ssize_t head_len, status_len, line_len;
} link_item;

static PyObject *
link_batch(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"events", "prev", "seq", "ts", "portable", NULL};
    PyObject *events;
    Py_buffer prev_buf, ts_buf;
    long long seq;
    int portable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!y*Ly*|$p", kwlist, &PyList_Type, &events,
                                     &prev_buf, &seq, &ts_buf, &portable))
        return NULL;
    PyObject *result = NULL, *data = NULL, *items = NULL;
    link_item *at = NULL;
    if (prev_buf.len != HEXLEN) {
        PyErr_SetString(PyExc_ValueError, "prev must be 64 hex digits");
        goto done;
    }
    items = PyList_AsTuple(events); /* the items stay alive whatever happens to the list */
    if (items == NULL)
        goto done;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    at = PyMem_Malloc(sizeof *at * (size_t)(n ? n : 1));
    if (at == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *event = PyTuple_GET_ITEM(items, i);
        PyObject *head, *status, *line;
        if (!PyTuple_Check(event) || PyTuple_GET_SIZE(event) < 4 ||
            !PyBytes_Check(head = PyTuple_GET_ITEM(event, 0)) ||
            !PyBytes_Check(status = PyTuple_GET_ITEM(event, 1)) ||
            !PyBytes_Check(line = PyTuple_GET_ITEM(event, 3))) {
            PyErr_SetString(PyExc_TypeError, "events must be prepared events with bytes");
            goto done;
        }
        at[i] = (link_item){PyBytes_AS_STRING(head), PyBytes_AS_STRING(status),
                            PyBytes_AS_STRING(line), PyBytes_GET_SIZE(head),
                            PyBytes_GET_SIZE(status), PyBytes_GET_SIZE(line)};
        /* line, seq (at most 20 digits), ts, prev, hash, three tabs and the newline */
        total += (size_t)at[i].line_len + 20 + (size_t)ts_buf.len + 2 * HEXLEN + 4;
    }
    data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (data == NULL)
        goto done;
    compress_fn compress = portable ? compress_portable : best_compress;
    const char *ts = ts_buf.buf;
    size_t ts_len = (size_t)ts_buf.len;
    char prev[HEXLEN];
    memcpy(prev, prev_buf.buf, HEXLEN);
    char *w = PyBytes_AS_STRING(data);
    for (Py_ssize_t i = 0; i < n; i++) {
        char number[32];
        int number_len = snprintf(number, sizeof number, "%lld", ++seq);
        sha256_ctx ctx;
        uint8_t digest[32];
        sha256_init(&ctx);
        sha256_update(&ctx, compress, (const uint8_t *)prev, HEXLEN);
        sha256_update(&ctx, compress, (const uint8_t *)at[i].head, (size_t)at[i].head_len);
        sha256_update(&ctx, compress, (const uint8_t *)",\"seq\":", 7);
        sha256_update(&ctx, compress, (const uint8_t *)number, (size_t)number_len);
        sha256_update(&ctx, compress, (const uint8_t *)at[i].status, (size_t)at[i].status_len);
        sha256_update(&ctx, compress, (const uint8_t *)ts, ts_len);
        sha256_update(&ctx, compress, (const uint8_t *)"\"}", 2);
        sha256_final(&ctx, compress, digest);
        memcpy(w, at[i].line, (size_t)at[i].line_len);
        w += at[i].line_len;
        memcpy(w, number, (size_t)number_len);
        w += number_len;
        *w++ = '\t';
        memcpy(w, ts, ts_len);
        w += ts_len;
        *w++ = '\t';
        memcpy(w, prev, HEXLEN);
        w += HEXLEN;
        *w++ = '\t';
        for (int b = 0; b < 32; b++) {
            prev[2 * b] = HEX[digest[b] >> 4];
            prev[2 * b + 1] = HEX[digest[b] & 15];
        }
        memcpy(w, prev, HEXLEN);
        w += HEXLEN;
        *w++ = '\n';
    }
    if (_PyBytes_Resize(&data, w - PyBytes_AS_STRING(data)) < 0)
        goto done; /* data is NULL now */
    result = Py_BuildValue("(Oy#)", data, prev, (Py_ssize_t)HEXLEN);
done:
    Py_XDECREF(data);
    Py_XDECREF(items);
    PyMem_Free(at);
    PyBuffer_Release(&prev_buf);
    PyBuffer_Release(&ts_buf);
    return result;
}

/* --- copy_line(), in_domain(): the writer's per-event work, before the lock ------------- */

/* copy_line(values) -> bytes: audit.store._copy_line, the Python twin. Each value as PostgreSQL's COPY
 * text format writes it (None as \N; str(value) for anything but a str; backslash, tab,
 * newline and carriage return escaped), each followed by a tab. */
static int
copy_value(PyObject *value, char **w, PyObject *text)
{
    if (value == Py_None) {
        memcpy(*w, "\\N\t", 3);
        *w += 3;
        return 0;
    }
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(text, &n);
    if (p == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i], e = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 0;
        if (e) {
            *(*w)++ = '\\';
            *(*w)++ = e;
        }
        else
            *(*w)++ = c;
    }
    *(*w)++ = '\t';
    return 0;
}

static PyObject *
copy_line(PyObject *module, PyObject *values)
{
    if (!PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "values must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(values);
    PyObject **texts = PyMem_Calloc((size_t)(n ? n : 1), sizeof *texts);
    if (texts == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    size_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyList_GET_ITEM(values, i);
        if (value == Py_None) {
            size += 3;
            continue;
        }
        texts[i] = PyUnicode_CheckExact(value) ? Py_NewRef(value) : PyObject_Str(value);
        if (texts[i] == NULL)
            goto done;
        Py_ssize_t len;
        if (PyUnicode_AsUTF8AndSize(texts[i], &len) == NULL)
            goto done;
        size += 2 * (size_t)len + 1; /* every byte escaped at worst, and the tab */
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL)
        goto done;
    char *w = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (copy_value(PyList_GET_ITEM(values, i), &w, texts[i]) < 0) {
            Py_CLEAR(out);
            goto done;
        }
    }
    if (_PyBytes_Resize(&out, w - PyBytes_AS_STRING(out)) < 0)
        out = NULL;
done:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(texts[i]);
    PyMem_Free(texts);
    return out;
}

/* in_domain(value) -> bool: audit.canonical._in_domain — exact str, bool, None, integers
 * within ±(2^53 − 1), and lists and str-keyed dicts of the same. */
#define SAFE_INTEGER 9007199254740991LL

static int
in_domain_of(PyObject *value)
{
    if (value == Py_None || PyUnicode_CheckExact(value) || PyBool_Check(value))
        return 1;
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow)
            return 0;
        if (v == -1 && PyErr_Occurred())
            return -1;
        return v >= -SAFE_INTEGER && v <= SAFE_INTEGER;
    }
    int exact_dict = PyDict_CheckExact(value);
    if (!exact_dict && !PyList_CheckExact(value))
        return 0;
    if (Py_EnterRecursiveCall(" in audit in_domain"))
        return -1;
    int ok = 1;
    if (exact_dict) {
        Py_ssize_t pos = 0;
        PyObject *key, *item;
        while (ok == 1 && PyDict_Next(value, &pos, &key, &item))
            ok = PyUnicode_CheckExact(key) ? in_domain_of(item) : 0;
    }
    else {
        for (Py_ssize_t i = 0; ok == 1 && i < PyList_GET_SIZE(value); i++)
            ok = in_domain_of(PyList_GET_ITEM(value, i));
    }
    Py_LeaveRecursiveCall();
    return ok;
}

static PyObject *
in_domain(PyObject *module, PyObject *value)
{
    int ok = in_domain_of(value);
    if (ok < 0)
        return NULL;
    return PyBool_FromLong(ok);
}

/* --- sha256() for the tests: the block functions on their own -------------------------- */

static PyObject *
sha256(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"data", "portable", NULL};
    Py_buffer data;
    int portable = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$p", kwlist, &data, &portable))
        return NULL;
    compress_fn compress = portable ? compress_portable : best_compress;
    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    sha256_update(&ctx, compress, data.buf, (size_t)data.len);
    sha256_final(&ctx, compress, digest);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

/* --- the module -------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_VARARGS | METH_KEYWORDS,
     "walk(lines, start, prev, expected, nodes, size, stop_at, *, portable=False)\n--\n\n"
     "Walk the COPY lines from `start` while each one is vouched for; stop after seq "
     "`stop_at`. Returns (end, prev, expected, size); `nodes` is updated in place."},
    {"link", (PyCFunction)(void (*)(void))link_batch, METH_VARARGS | METH_KEYWORDS,
     "link(events, prev, seq, ts, *, portable=False)\n--\n\n"
     "Number and hash prepared events after the head (prev, seq) at time ts: "
     "(COPY data, hash of the last event)."},
    {"copy_line", (PyCFunction)copy_line, METH_O,
     "copy_line(values)\n--\n\nThe values as a PostgreSQL COPY text line, tab-terminated."},
    {"in_domain", (PyCFunction)in_domain, METH_O,
     "in_domain(value)\n--\n\nWhether the value is in the canonical JSON domain as it is."},
    {"sha256", (PyCFunction)(void (*)(void))sha256, METH_VARARGS | METH_KEYWORDS,
     "sha256(data, *, portable=False)\n--\n\nThe SHA-256 digest of `data` (for the tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "audit._chain",
    .m_doc = "Native fast paths of the audit chain: the writer's link, the verifier's walk.",
    .m_size = -1,
    .m_methods = module_methods,
};

/* The template as a bytes %-format ("{\"action\":\"%s\",...}") and the COPY column of each
 * %s, for audit/verify.py to compare with its own. */
static int
add_template(PyObject *m)
{
    PyObject *text = NULL;
    PyObject *pick = PyTuple_New(NKEYS);
    if (pick == NULL)
        goto error;
    size_t n = 0;
    for (int k = 0; k <= NKEYS; k++)
        n += piece_len[k] + (k < NKEYS ? 2 : 0);
    text = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (text == NULL)
        goto error;
    char *w = PyBytes_AS_STRING(text);
    for (int k = 0; k <= NKEYS; k++) {
        memcpy(w, piece[k], piece_len[k]);
        w += piece_len[k];
        if (k < NKEYS) {
            memcpy(w, "%s", 2);
            w += 2;
            PyObject *column = PyLong_FromLong(MEMBERS[k].column);
            if (column == NULL)
                goto error;
            PyTuple_SET_ITEM(pick, k, column);
        }
    }
    if (PyModule_AddObject(m, "TEMPLATE", text) < 0)
        goto error;
    text = NULL;
    if (PyModule_AddObject(m, "PICK", pick) < 0)
        goto error;
    return 0;
error:
    Py_XDECREF(text);
    Py_XDECREF(pick);
    return -1;
}

static int
build_pieces(void)
{
    /* piece[k] = (k ? closing quote of the previous string and "," : "{") + "\"key\":" +
     * (quoted ? "\"" : ""); piece[NKEYS] = closing quote of the last + "}". */
    pieces_total = 0;
    for (int k = 0; k <= NKEYS; k++) {
        char text[64];
        int n = 0;
        if (k == 0)
            text[n++] = '{';
        else if (MEMBERS[k - 1].quoted)
            text[n++] = '"';
        if (k == NKEYS) {
            text[n++] = '}';
        }
        else {
            if (k > 0)
                text[n++] = ',';
            n += snprintf(text + n, sizeof text - (size_t)n, "\"%s\":%s", MEMBERS[k].key,
                          MEMBERS[k].quoted ? "\"" : "");
        }
        piece[k] = malloc((size_t)n);
        if (piece[k] == NULL)
            return -1;
        memcpy(piece[k], text, (size_t)n);
        piece_len[k] = (size_t)n;
        pieces_total += (size_t)n;
    }
    for (int b = 0; b < 32; b++)
        odd_byte[b] = b != '\t' && b != '\n';
    odd_byte['"'] = 1;
    odd_byte['\\'] = 1;
    return 0;
}

PyMODINIT_FUNC
PyInit__chain(void)
{
    sha256_choose();
    if (build_pieces() < 0)
        return PyErr_NoMemory();
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    const char *impl = best_compress == compress_portable ? "portable" : "sha-ni";
    if (add_template(m) < 0 || PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
