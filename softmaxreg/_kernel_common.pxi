# Shared by the kernel files (_kernels.pyx, _sparse_kernels.pyx), included textually:
# the OpenMP shim, the C helpers of _tiles.h, and the per-thread buffers' bookkeeping.
# The including file cimports ``floating`` and ``calloc``/``free`` first.

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define SOFTMAXREG_OPENMP 1
    #else
    #define SOFTMAXREG_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif

    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static int softmaxreg_cpu_has_avx2_fma(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    static int softmaxreg_cpu_has_avx512(void) {
        __builtin_cpu_init();
        return softmaxreg_cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    }
    #else
    static int softmaxreg_cpu_has_avx2_fma(void) { return 0; }
    static int softmaxreg_cpu_has_avx512(void) { return 0; }
    #endif

    #if defined(__linux__)
    #include <unistd.h>
    #include <sys/syscall.h>
    static long softmaxreg_thread_id(void) { return (long) syscall(SYS_gettid); }
    #else
    static long softmaxreg_thread_id(void) { return 0; }
    #endif
    """
    const int SOFTMAXREG_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
    int softmaxreg_cpu_has_avx2_fma() noexcept nogil
    int softmaxreg_cpu_has_avx512() noexcept nogil
    long softmaxreg_thread_id() noexcept nogil


cdef extern from "_tiles.h" nogil:
    void smr_tile_logits6_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_tile_logits6_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_tile_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_tile_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_tile_gradient4_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_tile_gradient4_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_tile_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_tile_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    void smr_wide_logits4_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_wide_logits4_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_wide_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_wide_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_wide_gradient4_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_wide_gradient4_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_wide_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_wide_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    Py_ssize_t smr_lanes_d()
    Py_ssize_t smr_lanes_f()
    void smr_half_logits8_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z, Py_ssize_t ldz)
    void smr_half_logits8_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z, Py_ssize_t ldz)
    void smr_half_logits1_d(const double *x, Py_ssize_t d, const double *w, Py_ssize_t ldw,
                            const double *b, double *z)
    void smr_half_logits1_f(const float *x, Py_ssize_t d, const float *w, Py_ssize_t ldw,
                            const float *b, float *z)
    void smr_half_gradient8_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out, Py_ssize_t ldo)
    void smr_half_gradient8_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out, Py_ssize_t ldo)
    void smr_half_gradient1_d(const double *x, Py_ssize_t d, Py_ssize_t rows, const double *g,
                              Py_ssize_t ldg, double *out)
    void smr_half_gradient1_f(const float *x, Py_ssize_t d, Py_ssize_t rows, const float *g,
                              Py_ssize_t ldg, float *out)
    double smr_row_softmax_grad_d(double *z, Py_ssize_t kp, Py_ssize_t y, double w, double *rest)
    double smr_row_softmax_grad_f(float *z, Py_ssize_t kp, Py_ssize_t y, float w, double *rest)
    void smr_moments_row_d(const double *x, const double *x_first, double w, Py_ssize_t d,
                           double *shifted, double *squares, double *magnitude)
    void smr_moments_row_f(const float *x, const float *x_first, double w, Py_ssize_t d,
                           double *shifted, double *squares, double *magnitude)
    void smr_row_softmax_jvp_d(double *z, double *r, Py_ssize_t kp, double w)
    void smr_row_softmax_jvp_f(float *z, float *r, Py_ssize_t kp, float w)
    void smr_row_softmax_d(double *z, Py_ssize_t kp)
    void smr_row_softmax_f(float *z, Py_ssize_t kp)
    void smr_row_proba_jvp_d(const double *p, double *r, Py_ssize_t kp, double w)
    void smr_row_proba_jvp_f(const float *p, float *r, Py_ssize_t kp, float w)


cdef enum:
    # Per-thread slots are this many bytes apart, so that threads never share a cache line.
    CACHE_LINE = 64


cdef void *_checked_calloc(size_t count, size_t size) except NULL:
    cdef void *p = calloc(max(count, 1), size)
    if p == NULL:
        raise MemoryError()
    return p


cdef inline Py_ssize_t _slot_stride(Py_ssize_t count, Py_ssize_t itemsize) noexcept nogil:
    """``count`` elements rounded up to whole cache lines, so threads never share one."""
    cdef Py_ssize_t per_line = CACHE_LINE // itemsize
    return ((count + per_line - 1) // per_line) * per_line


cdef inline Py_ssize_t _padded_classes(Py_ssize_t k, floating *dtype_tag) noexcept nogil:
    """k rounded up to whole vectors."""
    cdef Py_ssize_t lanes = _lanes(dtype_tag)
    return ((k + lanes - 1) // lanes) * lanes


cdef void _pad_coef(
    const floating[:, ::1] coef_t, const floating[::1] intercept, floating intercept_pad,
    Py_ssize_t kp, floating *out,
) noexcept:
    """out (d + 1, kp) = [coef_t; intercept] with zero columns appended, except that
    the intercept's padded entries are ``intercept_pad``. ``out`` is zeroed already."""
    cdef Py_ssize_t d = coef_t.shape[0], k = coef_t.shape[1], j, c
    for j in range(d):
        for c in range(k):
            out[j * kp + c] = coef_t[j, c]
    for c in range(kp):
        out[d * kp + c] = intercept[c] if c < k else intercept_pad


cdef void _reduce_slots(
    const floating *slots, int n_slots, Py_ssize_t stride, Py_ssize_t kp,
    floating[:, ::1] out_coef_t, floating[::1] out_intercept,
) noexcept:
    """Add the per-thread (d + 1, kp) accumulators in thread order into the outputs."""
    cdef Py_ssize_t d = out_coef_t.shape[0], k = out_coef_t.shape[1], j, c
    cdef int t
    cdef floating total
    for j in range(d + 1):
        for c in range(k):
            total = slots[j * kp + c]
            for t in range(1, n_slots):
                total += slots[t * stride + j * kp + c]
            if j < d:
                out_coef_t[j, c] = total
            else:
                out_intercept[c] = total


cdef inline Py_ssize_t _lanes(floating *dtype_tag) noexcept nogil:
    """Elements per vector: 8 doubles or 16 floats with AVX-512, half as many with
    AVX, a quarter on the baseline.

    A tile of classes is two vectors wide; a half tile, one.
    """
    if floating is float:
        return smr_lanes_f()
    else:
        return smr_lanes_d()


