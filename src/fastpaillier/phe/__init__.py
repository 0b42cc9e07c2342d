"""fastpaillier.phe: a drop-in for python-paillier (``phe`` 1.5) on fastpaillier's native core.

Change one import and keep the rest of your code::

    from fastpaillier.phe import paillier        # was: from phe import paillier

    public_key, private_key = paillier.generate_paillier_keypair()
    total = public_key.encrypt(3.141592) + public_key.encrypt(-1.5) * 2
    private_key.decrypt(total)                   # 0.141592

Same classes, exceptions, encodings and numbers as phe 1.5, interoperable both ways with phe's
objects and serialized forms (n, p, q as ints; ciphertexts as int plus exponent); phe's own
test suite passes against it.  Like phe, and unlike fastpaillier's own API, it accepts keys of
any size (it passes insecure=True to fastpaillier): generate 2048 bits or more.  Additions:
``encrypt_many`` / ``decrypt_many``, ``to_encrypted_array`` / ``from_encrypted_array``,
``generate_paillier_keypair(djn=True)``, ``PaillierPrivateKey.encrypt`` (CRT) and
``precompute_obfuscators``.  See the README section "Coming from python-paillier".
"""

from . import encoding, paillier, util
from .encoding import EncodedNumber
from .paillier import (EncryptedNumber, PaillierPrivateKey, PaillierPrivateKeyring, PaillierPublicKey,
                       from_encrypted_array, generate_paillier_keypair, to_encrypted_array)

try:  # needs click, as phe's command line does
    from . import command_line
except ImportError:
    pass

__version__ = "1.5.0"
"""The python-paillier release whose API this module reproduces."""

__all__ = [
    "EncodedNumber", "EncryptedNumber", "PaillierPrivateKey", "PaillierPrivateKeyring", "PaillierPublicKey",
    "encoding", "from_encrypted_array", "generate_paillier_keypair", "paillier", "to_encrypted_array", "util",
]
