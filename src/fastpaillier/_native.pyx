# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c++
"""Thin binding over the C++ kernels in csrc/: limb arrays in, limb arrays out.

Every function takes C-contiguous uint64 arrays (rows of little-endian limbs),
allocates its output, and releases the GIL while the kernel runs.  Validation
of shapes and ranges happens in the Python layer; this module only checks
what would otherwise make the kernel read out of bounds.
"""
from libc.stdint cimport uint64_t, int64_t, uint8_t
from libcpp.vector cimport vector

import numpy as np

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
    Tier c_kernel_tier "fp::kernel_tier"()
    bint c_tier_supported "fp::tier_supported"(Tier)
    bint c_set_kernel_tier "fp::set_kernel_tier"(Tier)


KERNEL_TIERS = ("ifma", "mulx", "portable", "gmp")   # fastest first
cdef dict _TIER_CODES = {"ifma": Tier.kIfma, "mulx": Tier.kMulx, "portable": Tier.kPortable, "gmp": Tier.kGmp}


def ifma_enabled():
    """Whether the AVX-512 IFMA 8-lane kernels are the active tier."""
    return c_ifma_enabled()


def set_ifma_enabled(bint on):
    """True: switch to the ifma tier where the CPU has it; False: switch from ifma to the best other tier."""
    c_set_ifma_enabled(on)


def kernel_tier():
    """Name of the active kernel tier: 'ifma', 'mulx', 'portable' or 'gmp'."""
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


cdef class PublicCtx:
    """Per-key public constants (n, n^2) living in C++."""
    cdef PublicContext* ptr

    def __cinit__(self, const uint64_t[::1] n not None):
        if n.shape[0] == 0:
            raise ValueError("n must have at least one limb")
        self.ptr = new PublicContext(&n[0], n.shape[0])

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

    def __cinit__(self, const uint64_t[::1] p not None, const uint64_t[::1] q not None,
                  const uint64_t[::1] n not None, size_t n_limbs, size_t nsq_limbs):
        if p.shape[0] != q.shape[0] or p.shape[0] == 0 or n.shape[0] == 0:
            raise ValueError("p and q must have the same nonzero limb count")
        self.ptr = new PrivateContext(&p[0], &q[0], p.shape[0], &n[0], n.shape[0])
        self.n_limbs = n_limbs
        self.nsq_limbs = nsq_limbs

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


def djn_generate_base(PublicCtx ctx):
    """A fresh h_s = (-x^2 mod n)^n mod n^2 as an nsq_limbs row."""
    out = np.zeros(ctx.ptr.nsq_limbs, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef bint ok
    with nogil:
        ok = c_djn_generate_base(ctx.ptr[0], &o[0])
    if not ok:
        raise RandomnessError("the operating system's random number generator failed (getrandom)")
    return out


def encrypt_djn(DjnCtx djn, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_djn(djn.pub.ptr[0], djn.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_djn_crt(DjnCrtCtx djn, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    out = _rows(count, djn.priv.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_djn_crt(djn.priv.ptr[0], djn.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_djn_with_a(DjnCtx djn, const uint64_t[:, ::1] m not None,
                       const uint64_t[:, ::1] a not None, int threads):
    cdef size_t count = m.shape[0]
    if a.shape[0] != count:
        raise ValueError("m and a must have the same number of rows")
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_djn_with_a(djn.pub.ptr[0], djn.ptr[0], &m[0, 0], m.shape[1], &a[0, 0], a.shape[1],
                             count, &o[0, 0], threads)
    return out


def encrypt_djn_crt_with_a(DjnCrtCtx djn, const uint64_t[:, ::1] m not None,
                           const uint64_t[:, ::1] a not None, int threads):
    cdef size_t count = m.shape[0]
    if a.shape[0] != count:
        raise ValueError("m and a must have the same number of rows")
    out = _rows(count, djn.priv.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_djn_crt_with_a(djn.priv.ptr[0], djn.ptr[0], &m[0, 0], m.shape[1], &a[0, 0], a.shape[1],
                                 count, &o[0, 0], threads)
    return out


def rerandomize_djn(DjnCtx djn, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    out = _rows(count, djn.pub.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_djn(djn.pub.ptr[0], djn.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def rerandomize_djn_crt(DjnCrtCtx djn, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
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

    gmp=False: the 8-lane IFMA exponentiation (mpz_powm_sec without IFMA), exponents below
    2^exp_bits; gmp=True: GMP's mpz_powm, one row at a time.
    """
    cdef size_t count = bases.shape[0], ml = mod.shape[0]
    if exps.shape[0] != count or <size_t>bases.shape[1] != ml or ml == 0 or mod[ml - 1] == 0 or mod[0] % 2 == 0:
        raise ValueError("need one exponent per base, base rows of len(mod) limbs, an odd mod with a nonzero top limb")
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


def encrypt_public(PublicCtx ctx, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_public(ctx.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_private(PrivateCtx ctx, const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = m.shape[0], ml = m.shape[1]
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_encrypt_private(ctx.ptr[0], &m[0, 0], ml, count, &o[0, 0], threads)
    _check_random(failed)
    return out


def encrypt_with_r(PublicCtx ctx, const uint64_t[:, ::1] m not None,
                   const uint64_t[:, ::1] r not None, int threads):
    cdef size_t count = m.shape[0]
    if r.shape[0] != count:
        raise ValueError("m and r must have the same number of rows")
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_with_r(ctx.ptr[0], &m[0, 0], m.shape[1], &r[0, 0], r.shape[1], count, &o[0, 0], threads)
    return out


def encrypt_with_r_crt(PrivateCtx ctx, const uint64_t[:, ::1] m not None,
                       const uint64_t[:, ::1] r not None, int threads):
    cdef size_t count = m.shape[0]
    if r.shape[0] != count:
        raise ValueError("m and r must have the same number of rows")
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encrypt_with_r_crt(ctx.ptr[0], &m[0, 0], m.shape[1], &r[0, 0], r.shape[1], count, &o[0, 0], threads)
    return out


def rerandomize_public(PublicCtx ctx, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_public(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def rerandomize_private(PrivateCtx ctx, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    out = _rows(count, ctx.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef long failed
    with nogil:
        failed = c_rerandomize_private(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    _check_random(failed)
    return out


def decrypt(PrivateCtx ctx, const uint64_t[:, ::1] c not None, int threads):
    """Plaintext rows; raises InvalidCiphertextError for a row that shares a factor with n."""
    cdef size_t count = c.shape[0]
    cdef long bad
    out = _rows(count, ctx.n_limbs)
    if count == 0:
        return out
    if <size_t>c.shape[1] != ctx.nsq_limbs:
        raise ValueError("ciphertext rows must have nsq_limbs limbs")
    cdef uint64_t[:, ::1] o = out
    with nogil:
        bad = c_decrypt(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    if bad >= 0:
        raise InvalidCiphertextError(
            f"ciphertext {bad} shares a factor with n: no encryption produces it, and decrypting it "
            "would reveal the private key; refused")
    return out


def mul_ciphertexts(PublicCtx ctx, const uint64_t[:, ::1] a not None,
                    const uint64_t[:, ::1] b not None, int threads):
    cdef size_t count = a.shape[0]
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mul_ciphertexts(ctx.ptr[0], &a[0, 0], &b[0, 0], count, &o[0, 0], threads)
    return out


def add_plaintexts(PublicCtx ctx, const uint64_t[:, ::1] c not None,
                   const uint64_t[:, ::1] m not None, int threads):
    cdef size_t count = c.shape[0]
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_add_plaintexts(ctx.ptr[0], &c[0, 0], &m[0, 0], m.shape[1], count, &o[0, 0], threads)
    return out


def pow_ciphertexts(PublicCtx ctx, const uint64_t[:, ::1] c not None,
                    const uint64_t[:, ::1] e not None, const uint8_t[::1] neg not None,
                    int threads):
    """c[i]^(+-e[i]); e and neg have one row per ciphertext or a single row."""
    cdef size_t count = c.shape[0]
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


def invert_ciphertexts(PublicCtx ctx, const uint64_t[:, ::1] c not None, int threads):
    cdef size_t count = c.shape[0]
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out, -1
    cdef uint64_t[:, ::1] o = out
    cdef long bad
    with nogil:
        bad = c_invert_ciphertexts(ctx.ptr[0], &c[0, 0], count, &o[0, 0], threads)
    return out, bad


def product_of_groups(PublicCtx ctx, const uint64_t[:, ::1] c not None, size_t group, int threads):
    """Row g of the result is the product of rows [g*group, (g+1)*group) of c."""
    cdef size_t groups = c.shape[0] // group if group else 0
    out = _rows(groups, ctx.ptr.nsq_limbs)
    if groups == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_product_of_groups(ctx.ptr[0], &c[0, 0], groups, group, &o[0, 0], threads)
    return out


def product_of_arrays(PublicCtx ctx, list arrays, int threads):
    """Row-wise product of K equally shaped ciphertext arrays."""
    cdef vector[const uint64_t*] ptrs
    cdef const uint64_t[:, ::1] mv
    cdef size_t count = 0
    for arr in arrays:
        mv = arr
        count = mv.shape[0]
        if count:
            ptrs.push_back(&mv[0, 0])
    out = _rows(count, ctx.ptr.nsq_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_product_of_arrays(ctx.ptr[0], ptrs.data(), ptrs.size(), count, &o[0, 0], threads)
    return out


def mont_product_of_arrays(PublicCtx ctx, list arrays, forms, int out_form, int threads):
    """Row-wise product of K equally shaped ciphertext arrays given in forms[k] (0 canonical,
    1 Montgomery), in form out_form."""
    cdef vector[const uint64_t*] ptrs
    cdef vector[uint8_t] fv
    cdef const uint64_t[:, ::1] mv
    cdef size_t count = 0, cl = ctx.ptr.nsq_limbs
    if len(arrays) == 0 or len(arrays) != len(forms) or out_form not in (0, 1):
        raise ValueError("need one form (0 or 1) per array and at least one array")
    for arr, f in zip(arrays, forms):
        mv = arr
        if <size_t>mv.shape[1] != cl or (ptrs.size() and <size_t>mv.shape[0] != count) or f not in (0, 1):
            raise ValueError("arrays must have equal row counts and nsq_limbs limbs")
        count = mv.shape[0]
        ptrs.push_back(&mv[0, 0] if count else NULL)
        fv.push_back(f)
    out = _rows(count, cl)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mont_product_of_arrays(ctx.ptr[0], ptrs.data(), fv.data(), ptrs.size(), count, out_form, &o[0, 0],
                                 threads)
    return out


def mont_product_of_groups(PublicCtx ctx, const uint64_t[:, ::1] c not None, int form, size_t group,
                           int out_form, int threads):
    """Row g of the result is the product of rows [g*group, (g+1)*group) of c (in form), in out_form."""
    cdef size_t groups = c.shape[0] // group if group else 0
    if form not in (0, 1) or out_form not in (0, 1) or (c.shape[0] and <size_t>c.shape[1] != ctx.ptr.nsq_limbs):
        raise ValueError("forms are 0 or 1; rows have nsq_limbs limbs")
    out = _rows(groups, ctx.ptr.nsq_limbs)
    if groups == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_mont_product_of_groups(ctx.ptr[0], &c[0, 0], form, groups, group, out_form, &o[0, 0], threads)
    return out


def find_invalid_ciphertext(PublicCtx ctx, const uint64_t[:, ::1] c not None, int threads=1):
    """First row that is 0, not below n^2, or shares a factor with n (not in Z*_{n^2}); -1 if none."""
    cdef long bad
    cdef size_t count = c.shape[0]
    if count == 0:
        return -1
    if <size_t>c.shape[1] != ctx.ptr.nsq_limbs:
        raise ValueError("ciphertext rows must have nsq_limbs limbs")
    with nogil:
        bad = c_find_invalid_ciphertext(ctx.ptr[0], &c[0, 0], count, threads)
    return bad


def find_row_at_least(const uint64_t[:, ::1] rows not None, const uint64_t[::1] bound not None):
    if rows.shape[0] == 0:
        return -1
    return c_find_row_at_least(&rows[0, 0], rows.shape[1], rows.shape[0], &bound[0], bound.shape[0])


def generate_prime(size_t bits):
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
    cdef int res
    with nogil:
        res = c_probable_prime(&x[0], x.shape[0], reps)
    return res


def encode_signed(PublicCtx ctx, const int64_t[::1] v not None):
    cdef size_t count = v.shape[0]
    out = _rows(count, ctx.ptr.n_limbs)
    if count == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    with nogil:
        c_encode_signed(ctx.ptr[0], &v[0], count, &o[0, 0])
    return out


def decode_signed_scaled(PublicCtx ctx, const uint64_t[:, ::1] m not None,
                         const uint64_t[::1] bound not None, int frac_bits):
    """Returns (float64 values, index of first row beyond +-bound or -1)."""
    cdef size_t count = m.shape[0]
    out = np.zeros(count, dtype=np.float64)
    if count == 0:
        return out, -1
    if <size_t>m.shape[1] != ctx.ptr.n_limbs:
        raise ValueError("plaintext rows must have n_limbs limbs")
    cdef double[::1] o = out
    cdef long bad
    with nogil:
        bad = c_decode_signed_scaled(ctx.ptr[0], &m[0, 0], count, &bound[0], bound.shape[0], frac_bits, &o[0])
    return out, bad


def pack_slots(const uint64_t[::1] u not None, unsigned slot_bits, size_t slots,
               uint64_t pad, size_t out_limbs):
    cdef size_t count = u.shape[0]
    cdef size_t rows = (count + slots - 1) // slots
    if slot_bits < 1 or slot_bits > 64 or slots * slot_bits > 64 * out_limbs:
        raise ValueError("slots do not fit the output rows")
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
    if slot_bits < 1 or slot_bits > 64 or slots * slot_bits > 64 * <size_t>m.shape[1]:
        raise ValueError("slots do not fit the input rows")
    if count > rows * slots:
        raise ValueError("count exceeds the number of slots")
    out = np.zeros(count, dtype=np.uint64)
    if rows == 0:
        return out, -1
    cdef uint64_t[::1] o = out
    cdef long bad
    with nogil:
        bad = c_unpack_slots(&m[0, 0], rows, m.shape[1], slot_bits, slots, count, &o[0] if count else NULL)
    return out, bad
