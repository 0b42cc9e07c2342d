"""fastpaillier: batched Paillier encryption over numpy arrays, with a C++/GMP core.

    >>> import numpy as np, fastpaillier as fp
    >>> pk, sk = fp.generate_keypair(2048)
    >>> codec = fp.PackedCodec(pk, value_bits=16, max_summands=8, frac_bits=12)
    >>> total = fp.sum_arrays([codec.encrypt(np.full(3, 0.5), pk), codec.encrypt(np.full(3, -0.25), pk)])
    >>> sk.decrypt(total)
    array([0.25, 0.25, 0.25])
"""

from .codec import Codec
from .encrypted_array import EncryptedArray, sum_arrays
from .errors import (CodecMismatchError, EncodingOverflowError, FastPaillierError, InsecureKeyError,
                     InvalidArgumentError, InvalidCiphertextError, InvalidKeyError, KeyMismatchError,
                     PlaintextRangeError, RandomnessError, SerializationError, ShapeMismatchError,
                     SummandLimitError, UnsupportedKernelError)
from .fixed_point import FixedPointCodec
from .kernels import available_kernel_tiers, kernel_tier, set_kernel_tier
from .keys import MIN_SECURE_BITS, PrivateKey, PublicKey, generate_keypair
from .packed import PackedCodec
from .threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "Codec", "CodecMismatchError", "EncodingOverflowError", "EncryptedArray", "FastPaillierError",
    "FixedPointCodec", "InsecureKeyError", "InvalidArgumentError", "InvalidCiphertextError",
    "InvalidKeyError", "KeyMismatchError", "MIN_SECURE_BITS", "PackedCodec", "PlaintextRangeError",
    "PrivateKey", "PublicKey", "RandomnessError", "SerializationError", "ShapeMismatchError",
    "SummandLimitError", "UnsupportedKernelError", "available_kernel_tiers", "generate_keypair",
    "get_num_threads", "kernel_tier", "set_kernel_tier", "set_num_threads", "sum_arrays",
]
