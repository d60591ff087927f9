/* One instantiation of the tiles; see _tiles.h. Not include-guarded on purpose. */

typedef SMR_T SMR_SUFFIX(smr_vec) __attribute__((vector_size(SMR_LANES * sizeof(SMR_T))));
typedef SMR_I SMR_SUFFIX(smr_ivec) __attribute__((vector_size(SMR_LANES * sizeof(SMR_T))));

/* A tile is 2 vectors of classes wide. */
#define SMR_VEC SMR_SUFFIX(smr_vec)
#define SMR_IVEC SMR_SUFFIX(smr_ivec)

static inline SMR_VEC SMR_SUFFIX(smr_load)(const SMR_T *p) {
    SMR_VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void SMR_SUFFIX(smr_store)(SMR_T *p, SMR_VEC v) {
    memcpy(p, &v, sizeof v);
}

static inline Py_ssize_t SMR_SUFFIX(smr_lanes)(void) { return SMR_LANES; }

/*
 * Wide tiles: three vectors of classes by 4 rows (or features), 12 accumulators.
 * Used first; the classes left over go to the 2-vector and 1-vector tiles.
 */
static inline void SMR_SUFFIX(smr_wide_logits4)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b,
    SMR_T *z, Py_ssize_t ldz)
{
    const SMR_VEC b0 = SMR_SUFFIX(smr_load)(b), b1 = SMR_SUFFIX(smr_load)(b + SMR_LANES);
    const SMR_VEC b2 = SMR_SUFFIX(smr_load)(b + 2 * SMR_LANES);
    SMR_VEC a00 = b0, a01 = b1, a02 = b2, a10 = b0, a11 = b1, a12 = b2;
    SMR_VEC a20 = b0, a21 = b1, a22 = b2, a30 = b0, a31 = b1, a32 = b2;
    for (Py_ssize_t j = 0; j < d; j++) {
        const SMR_T *w_j = w + j * ldw;
        const SMR_VEC w0 = SMR_SUFFIX(smr_load)(w_j);
        const SMR_VEC w1 = SMR_SUFFIX(smr_load)(w_j + SMR_LANES);
        const SMR_VEC w2 = SMR_SUFFIX(smr_load)(w_j + 2 * SMR_LANES);
        SMR_T xr;
        xr = x[j];         a00 += xr * w0; a01 += xr * w1; a02 += xr * w2;
        xr = x[d + j];     a10 += xr * w0; a11 += xr * w1; a12 += xr * w2;
        xr = x[2 * d + j]; a20 += xr * w0; a21 += xr * w1; a22 += xr * w2;
        xr = x[3 * d + j]; a30 += xr * w0; a31 += xr * w1; a32 += xr * w2;
    }
    SMR_T *zr;
    zr = z;           SMR_SUFFIX(smr_store)(zr, a00); SMR_SUFFIX(smr_store)(zr + SMR_LANES, a01); SMR_SUFFIX(smr_store)(zr + 2 * SMR_LANES, a02);
    zr = z + ldz;     SMR_SUFFIX(smr_store)(zr, a10); SMR_SUFFIX(smr_store)(zr + SMR_LANES, a11); SMR_SUFFIX(smr_store)(zr + 2 * SMR_LANES, a12);
    zr = z + 2 * ldz; SMR_SUFFIX(smr_store)(zr, a20); SMR_SUFFIX(smr_store)(zr + SMR_LANES, a21); SMR_SUFFIX(smr_store)(zr + 2 * SMR_LANES, a22);
    zr = z + 3 * ldz; SMR_SUFFIX(smr_store)(zr, a30); SMR_SUFFIX(smr_store)(zr + SMR_LANES, a31); SMR_SUFFIX(smr_store)(zr + 2 * SMR_LANES, a32);
}

static inline void SMR_SUFFIX(smr_wide_logits1)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b, SMR_T *z)
{
    SMR_VEC a0 = SMR_SUFFIX(smr_load)(b), a1 = SMR_SUFFIX(smr_load)(b + SMR_LANES);
    SMR_VEC a2 = SMR_SUFFIX(smr_load)(b + 2 * SMR_LANES);
    for (Py_ssize_t j = 0; j < d; j++) {
        const SMR_T *w_j = w + j * ldw;
        a0 += x[j] * SMR_SUFFIX(smr_load)(w_j);
        a1 += x[j] * SMR_SUFFIX(smr_load)(w_j + SMR_LANES);
        a2 += x[j] * SMR_SUFFIX(smr_load)(w_j + 2 * SMR_LANES);
    }
    SMR_SUFFIX(smr_store)(z, a0);
    SMR_SUFFIX(smr_store)(z + SMR_LANES, a1);
    SMR_SUFFIX(smr_store)(z + 2 * SMR_LANES, a2);
}

/*
 * z[r, :tile] = b[:tile] + x[r] @ w[:, :tile] for 6 rows r of x (row stride d): 12
 * vector accumulators, enough to keep both FMA units busy through their latency.
 */
static inline void SMR_SUFFIX(smr_tile_logits6)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b,
    SMR_T *z, Py_ssize_t ldz)
{
    const SMR_VEC b0 = SMR_SUFFIX(smr_load)(b), b1 = SMR_SUFFIX(smr_load)(b + SMR_LANES);
    SMR_VEC a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1;
    SMR_VEC a30 = b0, a31 = b1, a40 = b0, a41 = b1, a50 = b0, a51 = b1;
    for (Py_ssize_t j = 0; j < d; j++) {
        const SMR_VEC w0 = SMR_SUFFIX(smr_load)(w + j * ldw);
        const SMR_VEC w1 = SMR_SUFFIX(smr_load)(w + j * ldw + SMR_LANES);
        SMR_T xr;
        xr = x[j];         a00 += xr * w0; a01 += xr * w1;
        xr = x[d + j];     a10 += xr * w0; a11 += xr * w1;
        xr = x[2 * d + j]; a20 += xr * w0; a21 += xr * w1;
        xr = x[3 * d + j]; a30 += xr * w0; a31 += xr * w1;
        xr = x[4 * d + j]; a40 += xr * w0; a41 += xr * w1;
        xr = x[5 * d + j]; a50 += xr * w0; a51 += xr * w1;
    }
    SMR_SUFFIX(smr_store)(z, a00);            SMR_SUFFIX(smr_store)(z + SMR_LANES, a01);
    SMR_SUFFIX(smr_store)(z + ldz, a10);      SMR_SUFFIX(smr_store)(z + ldz + SMR_LANES, a11);
    SMR_SUFFIX(smr_store)(z + 2 * ldz, a20);  SMR_SUFFIX(smr_store)(z + 2 * ldz + SMR_LANES, a21);
    SMR_SUFFIX(smr_store)(z + 3 * ldz, a30);  SMR_SUFFIX(smr_store)(z + 3 * ldz + SMR_LANES, a31);
    SMR_SUFFIX(smr_store)(z + 4 * ldz, a40);  SMR_SUFFIX(smr_store)(z + 4 * ldz + SMR_LANES, a41);
    SMR_SUFFIX(smr_store)(z + 5 * ldz, a50);  SMR_SUFFIX(smr_store)(z + 5 * ldz + SMR_LANES, a51);
}

/* z[:tile] = b[:tile] + x @ w[:, :tile] for one row x. */
static inline void SMR_SUFFIX(smr_tile_logits1)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b, SMR_T *z)
{
    SMR_VEC a0 = SMR_SUFFIX(smr_load)(b), a1 = SMR_SUFFIX(smr_load)(b + SMR_LANES);
    for (Py_ssize_t j = 0; j < d; j++) {
        a0 += x[j] * SMR_SUFFIX(smr_load)(w + j * ldw);
        a1 += x[j] * SMR_SUFFIX(smr_load)(w + j * ldw + SMR_LANES);
    }
    SMR_SUFFIX(smr_store)(z, a0);
    SMR_SUFFIX(smr_store)(z + SMR_LANES, a1);
}

#define SMR_ADD_TO(p, a) SMR_SUFFIX(smr_store)((p), SMR_SUFFIX(smr_load)(p) + (a))

/* Half tiles (one vector of classes), for the classes left after the whole tiles. */

/* With one vector of classes, 8 rows (or features) keep 8 accumulators in flight. */
static inline void SMR_SUFFIX(smr_half_logits8)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b,
    SMR_T *z, Py_ssize_t ldz)
{
    const SMR_VEC b0 = SMR_SUFFIX(smr_load)(b);
    SMR_VEC a0 = b0, a1 = b0, a2 = b0, a3 = b0, a4 = b0, a5 = b0, a6 = b0, a7 = b0;
    for (Py_ssize_t j = 0; j < d; j++) {
        const SMR_VEC w0 = SMR_SUFFIX(smr_load)(w + j * ldw);
        a0 += x[j] * w0;
        a1 += x[d + j] * w0;
        a2 += x[2 * d + j] * w0;
        a3 += x[3 * d + j] * w0;
        a4 += x[4 * d + j] * w0;
        a5 += x[5 * d + j] * w0;
        a6 += x[6 * d + j] * w0;
        a7 += x[7 * d + j] * w0;
    }
    SMR_SUFFIX(smr_store)(z, a0);
    SMR_SUFFIX(smr_store)(z + ldz, a1);
    SMR_SUFFIX(smr_store)(z + 2 * ldz, a2);
    SMR_SUFFIX(smr_store)(z + 3 * ldz, a3);
    SMR_SUFFIX(smr_store)(z + 4 * ldz, a4);
    SMR_SUFFIX(smr_store)(z + 5 * ldz, a5);
    SMR_SUFFIX(smr_store)(z + 6 * ldz, a6);
    SMR_SUFFIX(smr_store)(z + 7 * ldz, a7);
}

static inline void SMR_SUFFIX(smr_half_logits1)(
    const SMR_T *x, Py_ssize_t d, const SMR_T *w, Py_ssize_t ldw, const SMR_T *b, SMR_T *z)
{
    SMR_VEC a0 = SMR_SUFFIX(smr_load)(b);
    for (Py_ssize_t j = 0; j < d; j++) {
        a0 += x[j] * SMR_SUFFIX(smr_load)(w + j * ldw);
    }
    SMR_SUFFIX(smr_store)(z, a0);
}

/* out[f, :3 vectors] += sum_r x[r, f] g[r, :3 vectors] for 4 features f. */
static inline void SMR_SUFFIX(smr_wide_gradient4)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg,
    SMR_T *out, Py_ssize_t ldo)
{
    SMR_VEC a00 = {0}, a01 = {0}, a02 = {0}, a10 = {0}, a11 = {0}, a12 = {0};
    SMR_VEC a20 = {0}, a21 = {0}, a22 = {0}, a30 = {0}, a31 = {0}, a32 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        const SMR_T *g_r = g + r * ldg;
        const SMR_VEC g0 = SMR_SUFFIX(smr_load)(g_r);
        const SMR_VEC g1 = SMR_SUFFIX(smr_load)(g_r + SMR_LANES);
        const SMR_VEC g2 = SMR_SUFFIX(smr_load)(g_r + 2 * SMR_LANES);
        const SMR_T *x_r = x + r * d;
        SMR_T xf;
        xf = x_r[0]; a00 += xf * g0; a01 += xf * g1; a02 += xf * g2;
        xf = x_r[1]; a10 += xf * g0; a11 += xf * g1; a12 += xf * g2;
        xf = x_r[2]; a20 += xf * g0; a21 += xf * g1; a22 += xf * g2;
        xf = x_r[3]; a30 += xf * g0; a31 += xf * g1; a32 += xf * g2;
    }
    SMR_T *o;
    o = out;           SMR_ADD_TO(o, a00); SMR_ADD_TO(o + SMR_LANES, a01); SMR_ADD_TO(o + 2 * SMR_LANES, a02);
    o = out + ldo;     SMR_ADD_TO(o, a10); SMR_ADD_TO(o + SMR_LANES, a11); SMR_ADD_TO(o + 2 * SMR_LANES, a12);
    o = out + 2 * ldo; SMR_ADD_TO(o, a20); SMR_ADD_TO(o + SMR_LANES, a21); SMR_ADD_TO(o + 2 * SMR_LANES, a22);
    o = out + 3 * ldo; SMR_ADD_TO(o, a30); SMR_ADD_TO(o + SMR_LANES, a31); SMR_ADD_TO(o + 2 * SMR_LANES, a32);
}

static inline void SMR_SUFFIX(smr_wide_gradient1)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg, SMR_T *out)
{
    SMR_VEC a0 = {0}, a1 = {0}, a2 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        const SMR_T *g_r = g + r * ldg;
        a0 += x[r * d] * SMR_SUFFIX(smr_load)(g_r);
        a1 += x[r * d] * SMR_SUFFIX(smr_load)(g_r + SMR_LANES);
        a2 += x[r * d] * SMR_SUFFIX(smr_load)(g_r + 2 * SMR_LANES);
    }
    SMR_ADD_TO(out, a0);
    SMR_ADD_TO(out + SMR_LANES, a1);
    SMR_ADD_TO(out + 2 * SMR_LANES, a2);
}

/* out[f, :tile] += sum_r x[r, f] g[r, :tile] for 4 features f (x's row stride d). */
static inline void SMR_SUFFIX(smr_tile_gradient4)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg,
    SMR_T *out, Py_ssize_t ldo)
{
    SMR_VEC a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        const SMR_VEC g0 = SMR_SUFFIX(smr_load)(g + r * ldg);
        const SMR_VEC g1 = SMR_SUFFIX(smr_load)(g + r * ldg + SMR_LANES);
        const SMR_T *x_r = x + r * d;
        const SMR_T x0 = x_r[0], x1 = x_r[1], x2 = x_r[2], x3 = x_r[3];
        a00 += x0 * g0; a01 += x0 * g1;
        a10 += x1 * g0; a11 += x1 * g1;
        a20 += x2 * g0; a21 += x2 * g1;
        a30 += x3 * g0; a31 += x3 * g1;
    }
    SMR_ADD_TO(out, a00);            SMR_ADD_TO(out + SMR_LANES, a01);
    SMR_ADD_TO(out + ldo, a10);      SMR_ADD_TO(out + ldo + SMR_LANES, a11);
    SMR_ADD_TO(out + 2 * ldo, a20);  SMR_ADD_TO(out + 2 * ldo + SMR_LANES, a21);
    SMR_ADD_TO(out + 3 * ldo, a30);  SMR_ADD_TO(out + 3 * ldo + SMR_LANES, a31);
}

/* out[:tile] += sum_r x[r, 0] g[r, :tile] for one feature. */
static inline void SMR_SUFFIX(smr_tile_gradient1)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg, SMR_T *out)
{
    SMR_VEC a0 = {0}, a1 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        a0 += x[r * d] * SMR_SUFFIX(smr_load)(g + r * ldg);
        a1 += x[r * d] * SMR_SUFFIX(smr_load)(g + r * ldg + SMR_LANES);
    }
    SMR_ADD_TO(out, a0);
    SMR_ADD_TO(out + SMR_LANES, a1);
}

static inline void SMR_SUFFIX(smr_half_gradient8)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg,
    SMR_T *out, Py_ssize_t ldo)
{
    SMR_VEC a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        const SMR_VEC g0 = SMR_SUFFIX(smr_load)(g + r * ldg);
        const SMR_T *x_r = x + r * d;
        a0 += x_r[0] * g0;
        a1 += x_r[1] * g0;
        a2 += x_r[2] * g0;
        a3 += x_r[3] * g0;
        a4 += x_r[4] * g0;
        a5 += x_r[5] * g0;
        a6 += x_r[6] * g0;
        a7 += x_r[7] * g0;
    }
    SMR_ADD_TO(out, a0);
    SMR_ADD_TO(out + ldo, a1);
    SMR_ADD_TO(out + 2 * ldo, a2);
    SMR_ADD_TO(out + 3 * ldo, a3);
    SMR_ADD_TO(out + 4 * ldo, a4);
    SMR_ADD_TO(out + 5 * ldo, a5);
    SMR_ADD_TO(out + 6 * ldo, a6);
    SMR_ADD_TO(out + 7 * ldo, a7);
}

static inline void SMR_SUFFIX(smr_half_gradient1)(
    const SMR_T *x, Py_ssize_t d, Py_ssize_t rows, const SMR_T *g, Py_ssize_t ldg, SMR_T *out)
{
    SMR_VEC a0 = {0};
    for (Py_ssize_t r = 0; r < rows; r++) {
        a0 += x[r * d] * SMR_SUFFIX(smr_load)(g + r * ldg);
    }
    SMR_ADD_TO(out, a0);
}
#undef SMR_ADD_TO

/*
 * exp of a vector: x = n ln2 + r with n = round(x / ln2) (by the 1.5 * 2**p shift,
 * exact in round-to-nearest), r by Cody-Waite with ln2 split in two, exp(r) by a
 * polynomial, and 2**n applied as two exact power-of-two factors, so that results
 * in the subnormal range are rounded once. x is clamped to [EXP_LO, EXP_HI]: below,
 * the result is 0; above, +inf. NaN propagates.
 */
static inline SMR_VEC SMR_SUFFIX(smr_exp_vec)(SMR_VEC x) {
    const SMR_VEC zero = {0};
    const SMR_VEC lo = zero + SMR_EXP_LO, hi = zero + SMR_EXP_HI;
    SMR_IVEC below = x < lo, above = x > hi;
    SMR_IVEC xi, loi, hii;
    memcpy(&xi, &x, sizeof x);
    memcpy(&loi, &lo, sizeof x);
    memcpy(&hii, &hi, sizeof x);
    xi = (xi & ~below & ~above) | (loi & below) | (hii & above);
    memcpy(&x, &xi, sizeof x);

    const SMR_VEC shifted = x * SMR_LOG2E + SMR_SHIFT;
    const SMR_VEC n = shifted - SMR_SHIFT;
    const SMR_VEC r = (x - n * SMR_LN2_HI) - n * SMR_LN2_LO;
    SMR_VEC p = SMR_POLY(r);

    /* n = n1 + n2 with n1 = round(n / 2): each 2**ni is a normal number. */
    const SMR_VEC shifted1 = n * (SMR_T)0.5 + SMR_SHIFT;
    const SMR_VEC n1 = shifted1 - SMR_SHIFT;
    const SMR_VEC shifted2 = (n - n1) + SMR_SHIFT;
    SMR_IVEC i1, i2, shift_bits;
    const SMR_VEC shift_vec = zero + SMR_SHIFT;
    memcpy(&i1, &shifted1, sizeof x);
    memcpy(&i2, &shifted2, sizeof x);
    memcpy(&shift_bits, &shift_vec, sizeof x);
    i1 = (i1 - shift_bits + SMR_EXP_BIAS) << SMR_MANTISSA_BITS;
    i2 = (i2 - shift_bits + SMR_EXP_BIAS) << SMR_MANTISSA_BITS;
    SMR_VEC s1, s2;
    memcpy(&s1, &i1, sizeof x);
    memcpy(&s2, &i2, sizeof x);
    return p * s1 * s2;
}

/* e[c] = exp(z[c] - m) for c < kp (kp a multiple of the vector width). */
static inline void SMR_SUFFIX(smr_exp_shifted)(const SMR_T *z, Py_ssize_t kp, SMR_T m, SMR_T *e) {
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_SUFFIX(smr_store)(e + c, SMR_SUFFIX(smr_exp_vec)(SMR_SUFFIX(smr_load)(z + c) - m));
    }
}

/* max(z[:kp]), kp a positive multiple of the vector width. */
static inline SMR_T SMR_SUFFIX(smr_row_max)(const SMR_T *z, Py_ssize_t kp) {
    SMR_VEC mv = SMR_SUFFIX(smr_load)(z);
    for (Py_ssize_t c = SMR_LANES; c < kp; c += SMR_LANES) {
        const SMR_VEC v = SMR_SUFFIX(smr_load)(z + c);
        const SMR_IVEC greater = v > mv;
        SMR_IVEC vi, mi;
        memcpy(&vi, &v, sizeof v);
        memcpy(&mi, &mv, sizeof v);
        mi = (vi & greater) | (mi & ~greater);
        memcpy(&mv, &mi, sizeof v);
    }
    SMR_T m = mv[0];
    for (int i = 1; i < SMR_LANES; i++) {
        m = mv[i] > m ? mv[i] : m;
    }
    return m;
}

/*
 * Compensated (Kahan) sums of vectors, lane by lane: the error of a sum of many
 * terms stays within a few eps of the sum of their magnitudes, whatever their number.
 * No multiplication is involved, so -ffp-contract cannot fuse away the compensation.
 */
#define SMR_KAHAN_ADD(total, compensation, x) do { \
        const SMR_VEC kahan_y_ = (x) - (compensation); \
        const SMR_VEC kahan_t_ = (total) + kahan_y_; \
        (compensation) = (kahan_t_ - (total)) - kahan_y_; \
        (total) = kahan_t_; \
    } while (0)

/* The lanes of a compensated vector sum, added in float64 with compensation. */
static inline double SMR_SUFFIX(smr_kahan_lanes)(SMR_VEC total, SMR_VEC compensation) {
    double sum = 0.0, c = 0.0;
    for (int i = 0; i < SMR_LANES; i++) {
        const double y = ((double)total[i] - (double)compensation[i]) - c;
        const double t = sum + y;
        c = (t - sum) - y;
        sum = t;
    }
    return sum - c;
}

/* Index of the first entry equal to m = max(z[:kp]) (kp - 1 if none, as for NaN). */
static inline Py_ssize_t SMR_SUFFIX(smr_index_of)(const SMR_T *z, Py_ssize_t kp, SMR_T m) {
    Py_ssize_t j = 0;
    while (j < kp - 1 && !(z[j] == m)) {
        j++;
    }
    return j;
}

/*
 * One row of padded logits z[:kp], whose padding holds -inf, turned in place into
 * g = w (softmax(z) - onehot(y)) (0 in the padding). With m = max(z) = z[jmax] and
 * e = exp(z - m), the row's loss is w ((m - z_y) + log1p(rest)) with rest =
 * sum_{c != jmax} e_c = s - 1, so that a loss near 0 keeps its relative precision:
 * this returns w (m - z_y) and writes rest, so that the caller can take the logs of
 * many rows at once. g_y = -w (s - e_y) / s, with s - e_y summed from the other
 * classes' terms, so it keeps its relative precision when p_y is close to 1.
 */
static inline double SMR_SUFFIX(smr_row_softmax_grad)(
    SMR_T *z, Py_ssize_t kp, Py_ssize_t y, SMR_T w, double *rest_out)
{
    const SMR_T m = SMR_SUFFIX(smr_row_max)(z, kp);
    const Py_ssize_t jmax = SMR_SUFFIX(smr_index_of)(z, kp, m);
    const double z_y = z[y];
    SMR_SUFFIX(smr_exp_shifted)(z, kp, m, z);
    const double e_y = z[y];
    const SMR_T e_max = z[jmax];  /* 1, or NaN where the logits overflowed */
    z[jmax] = 0;
    SMR_VEC total = {0}, compensation = {0};
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_KAHAN_ADD(total, compensation, SMR_SUFFIX(smr_load)(z + c));
    }
    z[jmax] = e_max;
    const double rest = SMR_SUFFIX(smr_kahan_lanes)(total, compensation);
    const double s = 1.0 + rest;
    /* s - e_y: for y != jmax, rest holds e_y. */
    const double not_y = y == jmax ? rest : 1.0 + (rest - e_y);
    const SMR_T scale = (SMR_T)(w / s);
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_SUFFIX(smr_store)(z + c, SMR_SUFFIX(smr_load)(z + c) * scale);
    }
    z[y] = (SMR_T)(-w * (not_y / s));
    *rest_out = rest;
    return w * ((double)m - z_y);
}

/*
 * One row of padded logits z[:kp] (padding -inf) and of a direction's logits
 * r[:kp] (padding 0): r becomes u = w J r, where J = diag(p) - p p^T is the
 * softmax Jacobian at z and p = softmax(z), that is u_c = w p_c (r_c - p.r).
 * With top = argmax(z), r_c - p.r = (r_c - r_top) + sum_c' p_c' (r_top - r_c'):
 * where p_top is close to 1, p.r is close to r_top, and r_top - p.r is summed from
 * the other classes' small terms instead of cancelling. z is overwritten with
 * exp(z - max(z)). The sums are compensated.
 */
static inline void SMR_SUFFIX(smr_row_softmax_jvp)(SMR_T *z, SMR_T *r, Py_ssize_t kp, SMR_T w)
{
    const SMR_T m = SMR_SUFFIX(smr_row_max)(z, kp);
    const SMR_T r_top = r[SMR_SUFFIX(smr_index_of)(z, kp, m)];
    SMR_SUFFIX(smr_exp_shifted)(z, kp, m, z);
    SMR_VEC s_total = {0}, s_comp = {0}, d_total = {0}, d_comp = {0};
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        const SMR_VEC e = SMR_SUFFIX(smr_load)(z + c);
        SMR_KAHAN_ADD(s_total, s_comp, e);
        SMR_KAHAN_ADD(d_total, d_comp, e * (r_top - SMR_SUFFIX(smr_load)(r + c)));
    }
    const double s = SMR_SUFFIX(smr_kahan_lanes)(s_total, s_comp);
    const double top_minus_pr = SMR_SUFFIX(smr_kahan_lanes)(d_total, d_comp) / s;
    const SMR_T centre = (SMR_T)top_minus_pr;
    const SMR_T scale = (SMR_T)(w / s);
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        const SMR_VEC e = SMR_SUFFIX(smr_load)(z + c);
        SMR_SUFFIX(smr_store)(
            r + c, (e * scale) * ((SMR_SUFFIX(smr_load)(r + c) - r_top) + centre));
    }
}

/*
 * One row of padded logits z[:kp] (padding -inf) becomes p = softmax(z) in place
 * (padding 0), with a compensated sum of the exponentials.
 */
static inline void SMR_SUFFIX(smr_row_softmax)(SMR_T *z, Py_ssize_t kp)
{
    const SMR_T m = SMR_SUFFIX(smr_row_max)(z, kp);
    SMR_SUFFIX(smr_exp_shifted)(z, kp, m, z);
    SMR_VEC total = {0}, compensation = {0};
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_KAHAN_ADD(total, compensation, SMR_SUFFIX(smr_load)(z + c));
    }
    const SMR_T scale = (SMR_T)(1.0 / SMR_SUFFIX(smr_kahan_lanes)(total, compensation));
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_SUFFIX(smr_store)(z + c, SMR_SUFFIX(smr_load)(z + c) * scale);
    }
}

/*
 * As smr_row_softmax_jvp, from the probabilities p[:kp] of the row (padding 0)
 * instead of its logits: r becomes u = w (p * r - p (p . r)), centred on the most
 * probable class as there. p is not changed.
 */
static inline void SMR_SUFFIX(smr_row_proba_jvp)(const SMR_T *p, SMR_T *r, Py_ssize_t kp, SMR_T w)
{
    const SMR_T m = SMR_SUFFIX(smr_row_max)(p, kp);
    const SMR_T r_top = r[SMR_SUFFIX(smr_index_of)(p, kp, m)];
    SMR_VEC d_total = {0}, d_comp = {0};
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_KAHAN_ADD(d_total, d_comp,
                      SMR_SUFFIX(smr_load)(p + c) * (r_top - SMR_SUFFIX(smr_load)(r + c)));
    }
    const SMR_T centre = (SMR_T)SMR_SUFFIX(smr_kahan_lanes)(d_total, d_comp);
    for (Py_ssize_t c = 0; c < kp; c += SMR_LANES) {
        SMR_SUFFIX(smr_store)(
            r + c, (SMR_SUFFIX(smr_load)(p + c) * w)
                       * ((SMR_SUFFIX(smr_load)(r + c) - r_top) + centre));
    }
}

#undef SMR_KAHAN_ADD

/*
 * One row's share of column_moments, with v = x - x_first: shifted += w v,
 * squares += w v^2, magnitude = max(magnitude, |x|). restrict and a branch-free
 * select let the compiler vectorize it.
 */
static inline void SMR_SUFFIX(smr_moments_row)(
    const SMR_T *restrict x, const SMR_T *restrict x_first, double w, Py_ssize_t d,
    double *restrict shifted, double *restrict squares, double *restrict magnitude)
{
    for (Py_ssize_t j = 0; j < d; j++) {
        const double xj = (double)x[j];
        const double v = xj - (double)x_first[j];
        const double m = xj < 0 ? -xj : xj;
        shifted[j] += w * v;
        squares[j] += (w * v) * v;
        magnitude[j] = m > magnitude[j] ? m : magnitude[j];
    }
}

#undef SMR_VEC
#undef SMR_IVEC
#undef SMR_T
#undef SMR_I
#undef SMR_LANES
#undef SMR_SUFFIX
#undef SMR_EXP_LO
#undef SMR_EXP_HI
#undef SMR_LOG2E
#undef SMR_LN2_HI
#undef SMR_LN2_LO
#undef SMR_SHIFT
#undef SMR_MANTISSA_BITS
#undef SMR_EXP_BIAS
#undef SMR_POLY
