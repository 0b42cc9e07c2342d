# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c++
"""Thin binding over the C++ kernels in csrc/: limb arrays in, limb arrays out.

Every function takes C-contiguous uint64 arrays (rows of little-endian limbs),
allocates its output, and releases the GIL while the kernel runs.  The Python
layer validates user input and raises the library's own errors; these private
bindings re-check, cheaply, everything a kernel relies on so that no call from
Python can make one read or write out of bounds or abort (widths, row counts,
strides and value bounds; see "argument checks" below), raising ValueError.
"""
from libc.stdint cimport uint64_t, int64_t, uint8_t
from libcpp.vector cimport vector

import math

import numpy as np

from fastpaillier._limbs import int_to_limbs as _int_row, limb_count as _limb_count, limbs_to_int as _row_int
from fastpaillier.errors import InvalidCiphertextError, RandomnessError


cdef extern from "paillier_core.hpp" namespace "fp" nogil:
    cdef cppclass PublicContext:
        PublicContext(const uint64_t* n, size_t n_limbs) except +
        size_t n_limbs
        size_t nsq_limbs
        bint mont_supported
        size_t form_r_bits

    bint c_mont_native "fp::mont_native"(const PublicContext&)

    cdef cppclass PrivateContext:
        PrivateContext(const uint64_t* p, const uint64_t* q, size_t half_limbs,
                       const uint64_t* n, size_t n_limbs) except +

    cdef cppclass DjnContext:
        DjnContext(const PublicContext& pub, const uint64_t* hs, size_t hs_limbs) except +
        size_t exp_bits

    cdef cppclass DjnCrtContext:
        DjnCrtContext(const PrivateContext& priv, const uint64_t* hs, size_t hs_limbs) except +
        size_t exp_bits

    size_t c_djn_exponent_bits "fp::djn_exponent_bits"(size_t)
    bint c_djn_generate_base "fp::djn_generate_base"(const PublicContext&, uint64_t*)
    long c_encrypt_djn "fp::encrypt_djn"(const PublicContext&, const DjnContext&, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_encrypt_djn_crt "fp::encrypt_djn_crt"(const PrivateContext&, const DjnCrtContext&, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_encrypt_djn_with_a "fp::encrypt_djn_with_a"(const PublicContext&, const DjnContext&, const uint64_t*, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_encrypt_djn_crt_with_a "fp::encrypt_djn_crt_with_a"(const PrivateContext&, const DjnCrtContext&, const uint64_t*, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_rerandomize_djn "fp::rerandomize_djn"(const PublicContext&, const DjnContext&, const uint64_t*, size_t, uint64_t*, int)
    long c_rerandomize_djn_crt "fp::rerandomize_djn_crt"(const PrivateContext&, const DjnCrtContext&, const uint64_t*, size_t, uint64_t*, int)
    void c_batch_powm "fp::batch_powm"(const uint64_t*, const uint64_t*, size_t, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_batch_powm_gmp "fp::batch_powm_gmp"(const uint64_t*, const uint64_t*, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_encrypt_public "fp::encrypt_public"(const PublicContext&, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_encrypt_private "fp::encrypt_private"(const PrivateContext&, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_encrypt_with_r "fp::encrypt_with_r"(const PublicContext&, const uint64_t*, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_encrypt_with_r_crt "fp::encrypt_with_r_crt"(const PrivateContext&, const uint64_t*, size_t, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_rerandomize_public "fp::rerandomize_public"(const PublicContext&, const uint64_t*, size_t, uint64_t*, int)
    long c_rerandomize_private "fp::rerandomize_private"(const PrivateContext&, const uint64_t*, size_t, uint64_t*, int)
    long c_decrypt "fp::decrypt"(const PrivateContext&, const uint64_t*, size_t, uint64_t*, int)
    void c_mul_ciphertexts "fp::mul_ciphertexts"(const PublicContext&, const uint64_t*, const uint64_t*, size_t, uint64_t*, int)
    void c_add_plaintexts "fp::add_plaintexts"(const PublicContext&, const uint64_t*, const uint64_t*, size_t, size_t, uint64_t*, int)
    long c_pow_ciphertexts "fp::pow_ciphertexts"(const PublicContext&, const uint64_t*, size_t, const uint64_t*, size_t, size_t, const uint8_t*, size_t, uint64_t*, int)
    long c_invert_ciphertexts "fp::invert_ciphertexts"(const PublicContext&, const uint64_t*, size_t, uint64_t*, int)
    void c_product_of_groups "fp::product_of_groups"(const PublicContext&, const uint64_t*, size_t, size_t, uint64_t*, int)
    void c_product_of_arrays "fp::product_of_arrays"(const PublicContext&, const uint64_t* const*, size_t, size_t, uint64_t*, int)
    void c_mont_product_of_arrays "fp::mont_product_of_arrays"(const PublicContext&, const uint64_t* const*, const uint8_t*, size_t, size_t, int, uint64_t*, int)
    void c_mont_product_of_groups "fp::mont_product_of_groups"(const PublicContext&, const uint64_t*, int, size_t, size_t, int, uint64_t*, int)
    long c_find_invalid_ciphertext "fp::find_invalid_ciphertext"(const PublicContext&, const uint64_t*, size_t, int)
    long c_find_row_at_least "fp::find_row_at_least"(const uint64_t*, size_t, size_t, const uint64_t*, size_t)
    bint c_generate_prime "fp::generate_prime"(size_t, uint64_t*, size_t)
    int c_probable_prime "fp::probable_prime"(const uint64_t*, size_t, int)


cdef extern from "ifma_montgomery.hpp" namespace "fp" nogil:
    bint c_ifma_enabled "fp::ifma_enabled"()
    void c_set_ifma_enabled "fp::set_ifma_enabled"(bint)


cdef extern from "kernel_tier.hpp" namespace "fp" nogil:
    cdef enum class Tier "fp::Tier":
        kGmp "fp::Tier::kGmp"
        kPortable "fp::Tier::kPortable"
        kMulx "fp::Tier::kMulx"
        kIfma "fp::Tier::kIfma"
        kAvx2 "fp::Tier::kAvx2"
    Tier c_kernel_tier "fp::kernel_tier"()
    bint c_tier_supported "fp::tier_supported"(Tier)
    bint c_set_kernel_tier "fp::set_kernel_tier"(Tier)


KERNEL_TIERS = ("ifma", "avx2", "mulx", "portable", "gmp")   # fastest first
cdef dict _TIER_CODES = {"ifma": Tier.kIfma, "avx2": Tier.kAvx2, "mulx": Tier.kMulx, "portable": Tier.kPortable,
                         "gmp": Tier.kGmp}


def ifma_enabled():
    """Whether the AVX-512 IFMA 8-lane kernels are the active tier."""
    return c_ifma_enabled()


def set_ifma_enabled(bint on):
    """True: switch to the ifma tier where the CPU has it; False: switch from ifma to the best other tier."""
    c_set_ifma_enabled(on)


def kernel_tier():
    """Name of the active kernel tier: 'ifma', 'avx2', 'mulx', 'portable' or 'gmp'."""
    cdef Tier t = c_kernel_tier()
    for name, code in _TIER_CODES.items():
        if code == t:
            return name
    raise AssertionError("unknown kernel tier")


def tier_supported(str name):
    """Whether this CPU and build can run the named tier (False for unknown names)."""
    if name not in _TIER_CODES:
        return False
    return c_tier_supported(_TIER_CODES[name])


def set_kernel_tier(str name):
    """Switches the active tier; returns False when the CPU cannot run it (nothing changes then)."""
    if name not in _TIER_CODES:
        raise ValueError(f"unknown kernel tier {name!r}; choose one of {', '.join(KERNEL_TIERS)}")
    return c_set_kernel_tier(_TIER_CODES[name])


cdef extern from "codec_kernels.hpp" namespace "fp" nogil:
    void c_encode_signed "fp::encode_signed"(const PublicContext&, const int64_t*, size_t, uint64_t*)
    long c_decode_signed_scaled "fp::decode_signed_scaled"(const PublicContext&, const uint64_t*, size_t, const uint64_t*, size_t, int, double*)
    void c_pack_slots "fp::pack_slots"(const uint64_t*, size_t, unsigned, size_t, uint64_t, uint64_t*, size_t)
    long c_unpack_slots "fp::unpack_slots"(const uint64_t*, size_t, size_t, unsigned, size_t, size_t, uint64_t*)


# ---- argument checks -----------------------------------------------------------------------------
#
# The bindings are private, but no Python call may make a kernel read or write out of bounds, or
# abort (limb_io.hpp's store() and the fixed-size exponentiations abort on a value that does not
# fit).  Before a kernel runs, every binding checks: the thread count; row widths (ciphertext rows
# exactly nsq_limbs limbs, plaintext and exponent rows at least one limb); that arrays read row by
# row together have the same number of rows; and the value bounds of the kernel's contract
# (plaintexts and r below n, DJN exponents below 2^exp_bits, bases below the modulus, Montgomery
# rows below n^2) with find_row_at_least, O(rows x limbs) in C.  A failed check raises ValueError
# naming the argument.

cdef int MAX_THREADS = 1024




cdef int _check_threads(int threads) except -1:
    if threads < 1 or threads > MAX_THREADS:
        raise ValueError(f"threads must be between 1 and {MAX_THREADS}, got {threads}; "
                         "pass a small positive count such as fastpaillier.get_num_threads()")
    return 0


cdef int _check_width(const uint64_t[:, ::1] rows, size_t limbs, str name, str what) except -1:
    if <size_t>rows.shape[1] != limbs:
        raise ValueError(f"{name} must have rows of exactly {limbs} limbs ({what}), got shape "
                         f"({rows.shape[0]}, {rows.shape[1]})")
    return 0


cdef int _check_nonempty_rows(const uint64_t[:, ::1] rows, str name) except -1:
    if rows.shape[1] == 0:
        raise ValueError(f"{name} must have at least one limb per row, got shape ({rows.shape[0]}, 0)")
    return 0


cdef int _check_count(size_t got, size_t want, str name, str other) except -1:
    if got != want:
        raise ValueError(f"{name} has {got} rows but {other} has {want}; pass one row of {name} "
                         f"per row of {other}")
    return 0


cdef int _check_below(const uint64_t[:, ::1] rows, const uint64_t[::1] bound, str name,
                      str what) except -1:
    """Every row of rows (at least one limb each) must be below bound (at least one limb)."""
    cdef size_t count = rows.shape[0], limbs = rows.shape[1]
    cdef long bad
    if count == 0:
        return 0
    _check_nonempty_rows(rows, name)
    with nogil:
        bad = c_find_row_at_least(&rows[0, 0], limbs, count, &bound[0], bound.shape[0])
    if bad >= 0:
        raise ValueError(f"{name}[{bad}] is not below {what}; reduce it below {what} first")
    return 0


cdef int _check_plaintexts(const uint64_t[:, ::1] m, object n_row, str name) except -1:
    """Plaintext rows: at least one limb each (any width), every value below n."""
    _check_nonempty_rows(m, name)
    _check_below(m, n_row, name, "n")
    return 0


cdef long _first_zero_row(const uint64_t[:, ::1] rows) noexcept nogil:
    cdef size_t i, j
    cdef uint64_t acc
    for i in range(<size_t>rows.shape[0]):
        acc = 0
        for j in range(<size_t>rows.shape[1]):
            acc |= rows[i, j]
        if acc == 0:
            return <long>i
    return -1


cdef int _check_r(const uint64_t[:, ::1] r, object n_row) except -1:
    """Known-answer randomness: 0 < r < n."""
    cdef long bad
    _check_plaintexts(r, n_row, "r")
    with nogil:
        bad = _first_zero_row(r)
    if bad >= 0:
        raise ValueError(f"r[{bad}] is 0; r must satisfy 0 < r < n")
    return 0


cdef int _check_exponents_below(const uint64_t[:, ::1] e, size_t bits, str name) except -1:
    """Exponent rows: at least one limb each, every value below 2^bits."""
    _check_nonempty_rows(e, name)
    _check_below(e, _int_row(1 << int(bits), int(bits) // 64 + 1), name, f"2^{bits}")
    return 0


# ---- contexts ------------------------------------------------------------------------------------

cdef class PublicCtx:
    """Per-key public constants (n, n^2) living in C++."""
    cdef PublicContext* ptr
    cdef readonly object n_row    # n in n_limbs limbs: the bound of plaintext rows
    cdef readonly object nsq_row  # n^2 in nsq_limbs limbs: the bound of Montgomery-form rows

    def __cinit__(self, const uint64_t[::1] n not None):
        if n.shape[0] == 0:
            raise ValueError("n must have at least one limb")
        n_int = _row_int(np.asarray(n))
        if n_int < 3 or n_int % 2 == 0:
            raise ValueError("n must be odd and at least 3; pass the modulus of a Paillier key")
        self.ptr = new PublicContext(&n[0], n.shape[0])
        self.n_row = _int_row(n_int, self.ptr.n_limbs)
        self.nsq_row = _int_row(n_int * n_int, self.ptr.nsq_limbs)

    def __dealloc__(self):
        del self.ptr

    @property
    def n_limbs(self):
        return self.ptr.n_limbs

    @property
    def nsq_limbs(self):
        return self.ptr.nsq_limbs

    @property
    def mont_supported(self):
        """Whether ciphertexts of this key can be held in Montgomery form."""
        return self.ptr.mont_supported

    @property
    def form_r_bits(self):
        """log2 of the Montgomery radix R of this key's Montgomery form (fixed when the context is made)."""
        return self.ptr.form_r_bits

    def mont_native(self):
        """Whether the active tier computes in this key's Montgomery form directly."""
        return c_mont_native(self.ptr[0])


cdef class PrivateCtx:
    """Per-key secret constants (p^2, q^2, hp, hq, CRT inverses) living in C++."""
    cdef PrivateContext* ptr
    cdef readonly size_t n_limbs
    cdef readonly size_t nsq_limbs
    cdef readonly object n_row
    cdef readonly object nsq_row

    def __cinit__(self, const uint64_t[::1] p not None, const uint64_t[::1] q not None,
                  const uint64_t[::1] n not None, size_t n_limbs, size_t nsq_limbs):
        if p.shape[0] != q.shape[0] or p.shape[0] == 0 or n.shape[0] == 0:
            raise ValueError("p and q must have the same nonzero limb count")
        # The kernels size their outputs by n_limbs and nsq_limbs and assume n = p q with p > q
        # odd and coprime (CRT constants, fixed-size recombination): check all of it here.
        p_int, q_int, n_int = _row_int(np.asarray(p)), _row_int(np.asarray(q)), _row_int(np.asarray(n))
        if q_int < 3 or p_int <= q_int or p_int % 2 == 0 or q_int % 2 == 0:
            raise ValueError("p and q must be odd with p > q >= 3; pass the larger prime as p")
        if p_int * q_int != n_int:
            raise ValueError("n must equal p*q; pass the modulus of these primes")
        if math.gcd(p_int, q_int) != 1:
            raise ValueError("p and q must be coprime (distinct primes)")
        want_n, want_nsq = _limb_count(n_int), _limb_count(n_int * n_int)
        if n_limbs != want_n or nsq_limbs != want_nsq:
            raise ValueError(f"n_limbs and nsq_limbs must be the limb counts of n and n^2, {want_n} and "
                             f"{want_nsq}; got {n_limbs} and {nsq_limbs}")
        self.ptr = new PrivateContext(&p[0], &q[0], p.shape[0], &n[0], n.shape[0])
        self.n_limbs = n_limbs
        self.nsq_limbs = nsq_limbs
        self.n_row = _int_row(n_int, n_limbs)
        self.nsq_row = _int_row(n_int * n_int, nsq_limbs)

    def __dealloc__(self):
        del self.ptr


cdef class DjnCtx:
    """A public key's DJN comb table of h_s mod n^2 (built in C++ on first use)."""
    cdef DjnContext* ptr
    cdef readonly PublicCtx pub

    def __cinit__(self, PublicCtx pub not None, const uint64_t[::1] hs not None):
        if <size_t>hs.shape[0] != pub.ptr.nsq_limbs:
            raise ValueError("h_s must have nsq_limbs limbs")
        self.pub = pub
        self.ptr = new DjnContext(pub.ptr[0], &hs[0], hs.shape[0])

    def __dealloc__(self):
        del self.ptr

    @property
    def exp_bits(self):
        return self.ptr.exp_bits


cdef class DjnCrtCtx:
    """A private key's DJN comb tables of h_s mod p^2 and mod q^2."""
    cdef DjnCrtContext* ptr
    cdef readonly PrivateCtx priv

    def __cinit__(self, PrivateCtx priv not None, const uint64_t[::1] hs not None):
        if <size_t>hs.shape[0] != priv.nsq_limbs:
            raise ValueError("h_s must have nsq_limbs limbs")
        self.priv = priv
        self.ptr = new DjnCrtContext(priv.ptr[0], &hs[0], hs.shape[0])

    def __dealloc__(self):
        del self.ptr

    @property
    def exp_bits(self):
        return self.ptr.exp_bits


def djn_exponent_bits(size_t n_bits):
    """Bits of the DJN exponent a for an n of n_bits bits."""
    return c_djn_exponent_bits(n_bits)


def djn_generate_base(PublicCtx ctx not None):
    """A fresh DJN value h = -x^2 mod n (x uniform in Z_n^*, discarded) as an n_limbs row."""
    out = np.zeros(ctx.ptr.n_limbs, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef bint ok
    with nogil:
        ok = c_djn_generate_base(ctx.ptr[0], &o[0])
    if not ok:
        raise RandomnessError("the operating system's random number generator failed (getrandom)")
    return out


# ---- DJN encryption -------------------------------------------------------------------------------

def encrypt_djn(DjnCtx djn not None, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    _check_threads(threads)
    _check_plaintexts(m, djn.pub.n_row, "m")
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_djn(djn.pub.ptr[0], djn.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_djn_crt(DjnCrtCtx djn not None, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    _check_threads(threads)
    _check_plaintexts(m, djn.priv.n_row, "m")
    out = _rows(count, djn.priv.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_djn_crt(djn.priv.ptr[0], djn.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_djn_with_a(DjnCtx djn not None, const uint64_t[:, ::1] m not None,
                       const uint64_t[:, ::1] a not None, int threads):
    """Known answer: (1 + m n) h_s^a mod n^2, 0 <= a < 2^djn.exp_bits."""
    cdef size_t count = m.shape[0]
    _check_threads(threads)
    _check_count(a.shape[0], count, "a", "m")
    _check_plaintexts(m, djn.pub.n_row, "m")
    _check_exponents_below(a, djn.ptr.exp_bits, "a")
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_djn_with_a(djn.pub.ptr[0], djn.ptr[0], &m[0, 0], m.shape[1], &a[0, 0], a.shape[1],
                             count, &o[0, 0], threads)
    return out


def encrypt_djn_crt_with_a(DjnCrtCtx djn not None, const uint64_t[:, ::1] m not None,
                           const uint64_t[:, ::1] a not None, int threads):
    """Known answer by CRT: (1 + m n) h_s^a mod n^2, 0 <= a < 2^djn.exp_bits."""
    cdef size_t count = m.shape[0]
    _check_threads(threads)
    _check_count(a.shape[0], count, "a", "m")
    _check_plaintexts(m, djn.priv.n_row, "m")
    _check_exponents_below(a, djn.ptr.exp_bits, "a")
    out = _rows(count, djn.priv.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_djn_crt_with_a(djn.priv.ptr[0], djn.ptr[0], &m[0, 0], m.shape[1], &a[0, 0], a.shape[1],
                                 count, &o[0, 0], threads)
    return out


def rerandomize_djn(DjnCtx djn not None, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, djn.pub.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_djn(djn.pub.ptr[0], djn.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def rerandomize_djn_crt(DjnCrtCtx djn not None, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, djn.priv.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, djn.priv.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_djn_crt(djn.priv.ptr[0], djn.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def bench_powm(const uint64_t[:, ::1] bases not None, const uint64_t[:, ::1] exps not None,
               const uint64_t[::1] mod not None, size_t exp_bits, bint gmp, int threads):
    """Benchmark/test kernel: bases[i]^exps[i] mod mod, rows of len(mod) limbs, bases < mod.

    gmp=False: the active tier's constant-time exponentiation (8-lane IFMA, the 64-bit
    Montgomery kernels or mpz_powm_sec), exponents below 2^exp_bits with
    1 <= exp_bits <= 64 * exps.shape[1]; gmp=True: GMP's mpz_powm, one row at a time.
    """
    cdef size_t count = bases.shape[0], ml = mod.shape[0]
    _check_threads(threads)
    if ml == 0 or mod[ml - 1] == 0 or mod[0] % 2 == 0 or (ml == 1 and mod[0] < 3):
        raise ValueError("mod must be odd and at least 3, with a nonzero top limb")
    _check_count(exps.shape[0], count, "exps", "bases")
    _check_width(bases, ml, "bases", "len(mod)")
    _check_nonempty_rows(exps, "exps")
    _check_below(bases, mod, "bases", "mod")
    if not gmp:
        if exp_bits < 1 or exp_bits > 64 * <size_t>exps.shape[1]:
            raise ValueError(f"exp_bits must be between 1 and 64 * exps.shape[1] = {64 * exps.shape[1]}, "
                             f"got {exp_bits}")
        _check_exponents_below(exps, exp_bits, "exps")
    out = _rows(count, ml)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        if gmp:
            c_batch_powm_gmp(&bases[0, 0], &exps[0, 0], exps.shape[1], &mod[0], ml, count, &o[0, 0], threads)
        else:
            c_batch_powm(&bases[0, 0], &exps[0, 0], exps.shape[1], exp_bits, &mod[0], ml, count, &o[0, 0], threads)
    return out


cdef inline object _rows(size_t count, size_t limbs):
    return np.zeros((count, limbs), dtype=np.uint64)


def _check_random(long failed):
    if failed >= 0:
        raise RandomnessError("the operating system's random number generator failed (getrandom)")


# ---- classic encryption and decryption -----------------------------------------------------------

def encrypt_public(PublicCtx ctx not None, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    _check_threads(threads)
    _check_plaintexts(m, ctx.n_row, "m")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_public(ctx.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_private(PrivateCtx ctx not None, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    _check_threads(threads)
    _check_plaintexts(m, ctx.n_row, "m")
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_private(ctx.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_with_r(PublicCtx ctx not None, const uint64_t[:, ::1] m not None,
                   const uint64_t[:, ::1] r not None, int threads):
    """Known answer: (1 + m n) r^n mod n^2, 0 < r < n."""
    cdef size_t count = m.shape[0]
    _check_threads(threads)
    _check_count(r.shape[0], count, "r", "m")
    _check_plaintexts(m, ctx.n_row, "m")
    _check_r(r, ctx.n_row)
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_with_r(ctx.ptr[0], &m[0, 0], m.shape[1], &r[0, 0], r.shape[1], count, &o[0, 0], threads)
    return out


def encrypt_with_r_crt(PrivateCtx ctx not None, const uint64_t[:, ::1] m not None,
                       const uint64_t[:, ::1] r not None, int threads):
    """Known answer by CRT: (1 + m n) r^n mod n^2, 0 < r < n."""
    cdef size_t count = m.shape[0]
    _check_threads(threads)
    _check_count(r.shape[0], count, "r", "m")
    _check_plaintexts(m, ctx.n_row, "m")
    _check_r(r, ctx.n_row)
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_with_r_crt(ctx.ptr[0], &m[0, 0], m.shape[1], &r[0, 0], r.shape[1], count, &o[0, 0], threads)
    return out


def rerandomize_public(PublicCtx ctx not None, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_public(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def rerandomize_private(PrivateCtx ctx not None, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_private(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def decrypt(PrivateCtx ctx not None, const uint64_t[:, ::1] c not None, int threads):
    """Plaintext rows; raises InvalidCiphertextError for a row that shares a factor with n."""
    cdef size_t count = c.shape[0]
    cdef long bad
    _check_threads(threads)
    _check_width(c, ctx.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, ctx.n_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        bad = c_decrypt(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    if bad >= 0:
        raise InvalidCiphertextError(
            f"ciphertext {bad} shares a factor with n: no encryption produces it, and decrypting it "
            "would reveal the private key; refused")
    return out


# ---- homomorphic operations ----------------------------------------------------------------------

def mul_ciphertexts(PublicCtx ctx not None, const uint64_t[:, ::1] a not None,
                    const uint64_t[:, ::1] b not None, int threads):
    cdef size_t count = a.shape[0]
    _check_threads(threads)
    _check_width(a, ctx.ptr.nsq_limbs, "a", "the key's nsq_limbs")
    _check_width(b, ctx.ptr.nsq_limbs, "b", "the key's nsq_limbs")
    _check_count(b.shape[0], count, "b", "a")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mul_ciphertexts(ctx.ptr[0], &a[0, 0], &b[0, 0], count, &o[0, 0], threads)
    return out


def add_plaintexts(PublicCtx ctx not None, const uint64_t[:, ::1] c not None,
                   const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    _check_count(m.shape[0], count, "m", "c")
    _check_plaintexts(m, ctx.n_row, "m")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_add_plaintexts(ctx.ptr[0], &c[0, 0], &m[0, 0], m.shape[1], count, &o[0, 0], threads)
    return out


def pow_ciphertexts(PublicCtx ctx not None, const uint64_t[:, ::1] c not None,
                    const uint64_t[:, ::1] e not None, const uint8_t[::1] neg not None,
                    int threads):
    """c[i]^(+-e[i]); e and neg have one row per ciphertext or a single row."""
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    if e.shape[0] != 1 and <size_t>e.shape[0] != count:
        raise ValueError(f"e must have one row per ciphertext ({count}) or a single row, got {e.shape[0]}")
    _check_nonempty_rows(e, "e")
    if neg.shape[0] != 1 and <size_t>neg.shape[0] != count:
        raise ValueError(f"neg must have one flag per ciphertext ({count}) or a single flag, got {neg.shape[0]}")
    cdef size_t e_stride = 0 if e.shape[0] == 1 else 1
    cdef size_t neg_stride = 0 if neg.shape[0] == 1 else 1
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out, -1
    cdef uint64_t[:, ::1] o = out
    cdef long bad
    with nogil:
        bad = c_pow_ciphertexts(ctx.ptr[0], &c[0, 0], count, &e[0, 0], e.shape[1], e_stride,
                                &neg[0], neg_stride, &o[0, 0], threads)
    return out, bad


def invert_ciphertexts(PublicCtx ctx not None, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out, -1
    cdef uint64_t[:, ::1] o = out
    cdef long bad
    with nogil:
        bad = c_invert_ciphertexts(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    return out, bad


def product_of_groups(PublicCtx ctx not None, const uint64_t[:, ::1] c not None, size_t group, int threads):
    """Row g of the result is the product of rows [g*group, (g+1)*group) of c; rows past the last
    whole group are not read (group 0: no groups)."""
    cdef size_t groups = c.shape[0] // group if group else 0
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    out = _rows(groups, ctx.ptr.nsq_limbs)
    if groups == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_product_of_groups(ctx.ptr[0], &c[0, 0], groups, group, &o[0, 0], threads)
    return out


cdef Py_ssize_t _check_ciphertext_arrays(PublicCtx ctx, list arrays, vector[const uint64_t*]& ptrs,
                                         list keep, bint reduced) except -1:
    """arrays: at least one C-contiguous uint64 array, each of nsq_limbs-limb rows, all with the
    same row count (and values below n^2 if reduced).  Fills ptrs with their data (NULL when
    empty) and keep with their buffers (held while the kernel runs); returns the row count."""
    cdef const uint64_t[:, ::1] mv
    cdef size_t count = 0, cl = ctx.ptr.nsq_limbs
    if len(arrays) == 0:
        raise ValueError("arrays must hold at least one ciphertext array")
    for k, arr in enumerate(arrays):
        try:
            mv = arr
        except (TypeError, ValueError) as exc:
            raise ValueError(f"arrays[{k}] must be a C-contiguous 2-D uint64 array ({exc})") from None
        _check_width(mv, cl, f"arrays[{k}]", "the key's nsq_limbs")
        if k == 0:
            count = mv.shape[0]
        else:
            _check_count(mv.shape[0], count, f"arrays[{k}]", "arrays[0]")
        if reduced:
            _check_below(mv, ctx.nsq_row, f"arrays[{k}]", "n^2")
        keep.append(mv)
        ptrs.push_back(&mv[0, 0] if count else NULL)
    return <Py_ssize_t>count


def product_of_arrays(PublicCtx ctx not None, list arrays not None, int threads):
    """Row-wise product of K >= 1 equally shaped ciphertext arrays."""
    cdef vector[const uint64_t*] ptrs
    cdef list keep = []
    _check_threads(threads)
    cdef size_t count = _check_ciphertext_arrays(ctx, arrays, ptrs, keep, False)
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_product_of_arrays(ctx.ptr[0], ptrs.data(), ptrs.size(), count, &o[0, 0], threads)
    return out


def mont_product_of_arrays(PublicCtx ctx not None, list arrays not None, forms, int out_form, int threads):
    """Row-wise product of K >= 1 equally shaped ciphertext arrays given in forms[k] (0 canonical,
    1 Montgomery; rows below n^2), in form out_form."""
    cdef vector[const uint64_t*] ptrs
    cdef vector[uint8_t] fv
    cdef list keep = []
    _check_threads(threads)
    if len(arrays) == 0 or len(arrays) != len(forms) or out_form not in (0, 1):
        raise ValueError("need one form (0 or 1) per array and at least one array")
    for f in forms:
        if f not in (0, 1):
            raise ValueError(f"forms must be 0 (canonical) or 1 (Montgomery), got {f!r}")
        fv.push_back(f)
    cdef size_t count = _check_ciphertext_arrays(ctx, arrays, ptrs, keep, True)
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mont_product_of_arrays(ctx.ptr[0], ptrs.data(), fv.data(), ptrs.size(), count, out_form, &o[0, 0],
                                 threads)
    return out


def mont_product_of_groups(PublicCtx ctx not None, const uint64_t[:, ::1] c not None, int form, size_t group,
                           int out_form, int threads):
    """Row g of the result is the product of rows [g*group, (g+1)*group) of c (in form; rows below
    n^2), in out_form; rows past the last whole group are not read (group 0: no groups)."""
    cdef size_t groups = c.shape[0] // group if group else 0
    _check_threads(threads)
    if form not in (0, 1) or out_form not in (0, 1):
        raise ValueError(f"form and out_form must be 0 (canonical) or 1 (Montgomery), got {form} and {out_form}")
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    _check_below(c, ctx.nsq_row, "c", "n^2")
    out = _rows(groups, ctx.ptr.nsq_limbs)
    if groups == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mont_product_of_groups(ctx.ptr[0], &c[0, 0], form, groups, group, out_form, &o[0, 0], threads)
    return out


# ---- validation and keys -------------------------------------------------------------------------

def find_invalid_ciphertext(PublicCtx ctx not None, const uint64_t[:, ::1] c not None, int threads=1):
    """First row that is 0, not below n^2, or shares a factor with n (not in Z*_{n^2}); -1 if none."""
    cdef long bad
    cdef size_t count = c.shape[0]
    _check_threads(threads)
    _check_width(c, ctx.ptr.nsq_limbs, "c", "the key's nsq_limbs")
    if count == 0:
        return -1
    with nogil:
        bad = c_find_invalid_ciphertext(ctx.ptr[0], &c[0, 0], count, threads)
    return bad


def find_row_at_least(const uint64_t[:, ::1] rows not None, const uint64_t[::1] bound not None):
    """First row of rows (any width) that is >= bound, or -1."""
    if bound.shape[0] == 0:
        raise ValueError("bound must have at least one limb")
    if rows.shape[0] == 0:
        return -1
    return c_find_row_at_least(&rows[0, 0], rows.shape[1], rows.shape[0], &bound[0], bound.shape[0])


def generate_prime(size_t bits):
    """A random prime of exactly bits >= 3 bits with its two top bits set."""
    if bits < 3:
        raise ValueError(f"bits must be at least 3, got {bits}")
    cdef size_t limbs = (bits + 63) // 64
    out = np.zeros(limbs, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef bint ok
    with nogil:
        ok = c_generate_prime(bits, &o[0], limbs)
    if not ok:
        raise RandomnessError("the operating system's random number generator failed (getrandom)")
    return out


def probable_prime(const uint64_t[::1] x not None, int reps):
    if x.shape[0] == 0:
        raise ValueError("x must have at least one limb")
    cdef int res
    with nogil:
        res = c_probable_prime(&x[0], x.shape[0], reps)
    return res


# ---- codec kernels -------------------------------------------------------------------------------

def encode_signed(PublicCtx ctx not None, const int64_t[::1] v not None):
    """Rows of v mod n; every |v[i]| must be below n / 2."""
    cdef size_t count = v.shape[0]
    if count and ctx.ptr.n_limbs == 1:  # n >= 2^64 holds every int64 with room to spare
        arr = np.asarray(v)
        lo, hi = int(arr.min()), int(arr.max())
        big = hi if hi >= -lo else lo
        if 2 * abs(big) >= _row_int(ctx.n_row):
            raise ValueError(f"v holds {big}, whose magnitude is not below n / 2; encode smaller values "
                             "or use a larger key")
    out = _rows(count, ctx.ptr.n_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encode_signed(ctx.ptr[0], &v[0], count, &o[0, 0])
    return out


def decode_signed_scaled(PublicCtx ctx not None, const uint64_t[:, ::1] m not None,
                         const uint64_t[::1] bound not None, int frac_bits):
    """Returns (float64 values, index of first row beyond +-bound or -1); rows of n_limbs limbs below n."""
    cdef size_t count = m.shape[0]
    _check_width(m, ctx.ptr.n_limbs, "m", "the key's n_limbs")
    if bound.shape[0] == 0:
        raise ValueError("bound must have at least one limb")
    _check_below(m, ctx.n_row, "m", "n")
    out = np.zeros(count, dtype=np.float64)
    if count == 0:
        return out, -1
    cdef double[::1] o = out
    cdef long bad
    with nogil:
        bad = c_decode_signed_scaled(ctx.ptr[0], &m[0, 0], count, &bound[0], bound.shape[0], frac_bits, &o[0])
    return out, bad


cdef long _first_at_least(const uint64_t[::1] u, uint64_t limit) noexcept nogil:
    cdef size_t i
    for i in range(<size_t>u.shape[0]):
        if u[i] >= limit:
            return <long>i
    return -1


cdef int _check_slots(unsigned slot_bits, size_t slots, size_t limbs, str rows_name) except -1:
    # Python ints: slots * slot_bits must not wrap around.
    if slot_bits < 1 or slot_bits > 64:
        raise ValueError(f"slot_bits must be between 1 and 64, got {slot_bits}")
    if int(slots) * int(slot_bits) > 64 * int(limbs):
        raise ValueError(f"{slots} slots of {slot_bits} bits do not fit {rows_name} of {limbs} limbs; "
                         "use fewer slots")
    return 0


def pack_slots(const uint64_t[::1] u not None, unsigned slot_bits, size_t slots,
               uint64_t pad, size_t out_limbs):
    """Packs values u[k] < 2^slot_bits, slots per row of out_limbs limbs (missing values: pad)."""
    cdef size_t count = u.shape[0]
    cdef long bad
    _check_slots(slot_bits, slots, out_limbs, "output rows")
    if slots == 0:
        raise ValueError("slots must be at least 1")
    if slot_bits < 64:
        if pad >> slot_bits:
            raise ValueError(f"pad {pad} does not fit {slot_bits} bits")
        with nogil:
            bad = _first_at_least(u, (<uint64_t>1) << slot_bits)
        if bad >= 0:
            raise ValueError(f"u[{bad}] = {u[bad]} does not fit {slot_bits} bits")
    cdef size_t rows = (count + slots - 1) // slots if count else 0
    out = _rows(rows, out_limbs)
    if rows == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_pack_slots(&u[0], count, slot_bits, slots, pad, &o[0, 0], out_limbs)
    return out


def unpack_slots(const uint64_t[:, ::1] m not None, unsigned slot_bits, size_t slots, size_t count):
    """Returns (slot values, index of first row with bits beyond the slots or -1)."""
    cdef size_t rows = m.shape[0]
    _check_slots(slot_bits, slots, m.shape[1], "input rows")
    if int(count) > int(rows) * int(slots):
        raise ValueError(f"count {count} exceeds the {rows} x {slots} slots of m")
    out = np.zeros(count, dtype=np.uint64)
    if rows == 0:
        return out, -1
    cdef uint64_t[::1] o = out
    cdef long bad
    with nogil:
        bad = c_unpack_slots(&m[0, 0], rows, m.shape[1], slot_bits, slots, count, &o[0] if count else NULL)
    return out, bad
