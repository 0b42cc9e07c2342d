"""fastpaillier for Flower (``pip install 'fastpaillier[flwr]'``): encrypted FedAvg by one mod and one strategy.

ServerApp: ``strategy = PaillierFedAvg(fp.PublicKey.load(path))`` instead of ``FedAvg()``.
ClientApp: ``app = ClientApp(mods=[paillier_mod])``, the node's private key file named by node
config ``fastpaillier-private-key``.  Records: ``to_array`` / ``from_array`` convert between
EncryptedArray and flwr.app.Array (stype ``fastpaillier.EncryptedArray``, logical shape kept).
"""

from __future__ import annotations

try:
    import flwr as _flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "fastpaillier.flwr needs Flower: pip install 'fastpaillier[flwr]' (flwr==1.42.0)") from exc

from .mod import PRIVATE_KEY_CONFIG_KEY, PaillierMod, paillier_mod
from .records import (NUM_EXAMPLES_KEY, STYPE, decrypt_arrayrecord, encrypt_weighted, encrypted_mean,
                      from_array, is_encrypted, to_array)
from .strategy import CONFIG_RECORD_KEY, PaillierFedAvg, aggregate_metrics_mean

__all__ = [
    "CONFIG_RECORD_KEY", "NUM_EXAMPLES_KEY", "PRIVATE_KEY_CONFIG_KEY", "PaillierFedAvg", "PaillierMod", "STYPE",
    "aggregate_metrics_mean", "decrypt_arrayrecord", "encrypt_weighted", "encrypted_mean", "from_array",
    "is_encrypted", "paillier_mod", "to_array",
]
