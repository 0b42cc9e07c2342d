"""PaillierFedAvg: FedAvg over Paillier ciphertexts for flwr.serverapp (the server holds the public key only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from logging import INFO, WARNING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.supercore import log

from ..encrypted_array import EncryptedArray, sum_arrays
from ..errors import FastPaillierError, InvalidArgumentError, SummandLimitError
from ..keys import PrivateKey, PublicKey
from ..packed import PackedCodec
from .records import NUM_EXAMPLES_KEY, from_array, is_encrypted, to_array

# Key of the ConfigRecord that PaillierFedAvg adds to train and evaluate messages, for paillier_mod.
CONFIG_RECORD_KEY = "fastpaillier"


class PaillierFedAvg(FedAvg):
    """FedAvg whose ClientApps (with paillier_mod) send E(n_k x_k) and E(n_k); the server adds ciphertexts.

    Given a PublicKey only.  aggregate_train() sums each array over the replies with sum_arrays,
    and the encrypted sample counts likewise; the aggregate stays encrypted (the next round's
    arrays), and paillier_mod on each client decrypts it and divides by the decrypted total.
    The server sees neither an update, nor a sample count, nor the global model after round 1.
    Clients that do not reply (or reply with an error or a malformed record) are left out of the
    round; the mean is over those that replied.  Values are quantized by a PackedCodec: range
    +-2^(value_bits - 1 - frac_bits), rounding 2^-(frac_bits + 1) per value (one half unit of
    the last place), and max_summands bounds the total sample count of a round.  Client metrics
    are averaged without weights (the counts are secret) unless *_metrics_aggr_fn is given.
    """

    def __init__(self, public_key: PublicKey, *, value_bits: int = 32, frac_bits: int = 20,
                 max_summands: int = 2**20, fraction_train: float = 1.0, fraction_evaluate: float = 1.0,
                 min_train_nodes: int = 2, min_evaluate_nodes: int = 2, min_available_nodes: int = 2,
                 weighted_by_key: str = "num-examples", arrayrecord_key: str = "arrays",
                 configrecord_key: str = "config",
                 train_metrics_aggr_fn: Callable[[list[RecordDict], str], MetricRecord] | None = None,
                 evaluate_metrics_aggr_fn: Callable[[list[RecordDict], str], MetricRecord] | None = None) -> None:
        if isinstance(public_key, PrivateKey):
            raise InvalidArgumentError(
                "PaillierFedAvg takes the PublicKey only: pass private_key.public_key (or "
                "fp.PublicKey.load(path)); the server must never hold the private key")
        if not isinstance(public_key, PublicKey):
            raise InvalidArgumentError(f"public_key must be a fastpaillier PublicKey, got {type(public_key).__name__}")
        if arrayrecord_key == CONFIG_RECORD_KEY or configrecord_key == CONFIG_RECORD_KEY:
            raise InvalidArgumentError(f"record key {CONFIG_RECORD_KEY!r} is reserved for fastpaillier; choose another")
        super().__init__(fraction_train=fraction_train, fraction_evaluate=fraction_evaluate,
                         min_train_nodes=min_train_nodes, min_evaluate_nodes=min_evaluate_nodes,
                         min_available_nodes=min_available_nodes, weighted_by_key=weighted_by_key,
                         arrayrecord_key=arrayrecord_key, configrecord_key=configrecord_key,
                         train_metrics_aggr_fn=train_metrics_aggr_fn or aggregate_metrics_mean,
                         evaluate_metrics_aggr_fn=evaluate_metrics_aggr_fn or aggregate_metrics_mean)
        self.public_key = public_key
        self.codec = PackedCodec(public_key, value_bits=value_bits, max_summands=max_summands,
                                 frac_bits=frac_bits)

    def summary(self) -> None:
        """Log summary configuration of the strategy."""
        super().summary()
        log(INFO, "\t└──> Paillier: key %s, %r", self.public_key.fingerprint.hex()[:16], self.codec)

    def _fastpaillier_config(self, clients: int) -> ConfigRecord:
        """The parameters paillier_mod needs: key fingerprint, codec, per-client weight bound, weight key."""
        per_client = self.codec.max_summands // max(clients, 1)
        if per_client < 1:
            raise SummandLimitError(
                f"{clients} clients per round exceed max_summands={self.codec.max_summands}; raise "
                "max_summands in PaillierFedAvg(...)")
        return ConfigRecord({
            "fingerprint": self.public_key.fingerprint.hex(),
            "value-bits": self.codec.value_bits,
            "frac-bits": self.codec.frac_bits,
            "max-summands": self.codec.max_summands,
            "max-weight": per_client,
            "weighted-by-key": self.weighted_by_key,
        })

    def _with_config(self, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        if messages:
            record = self._fastpaillier_config(len(messages))
            for message in messages:
                message.content[CONFIG_RECORD_KEY] = record
        return messages

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        """FedAvg's train messages, with the fastpaillier parameters for paillier_mod."""
        return self._with_config(super().configure_train(server_round, arrays, config, grid))

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        """FedAvg's evaluate messages, with the fastpaillier parameters for paillier_mod."""
        return self._with_config(super().configure_evaluate(server_round, arrays, config, grid))

    def _parse_reply(self, content: RecordDict, replies: int) -> dict[str, EncryptedArray]:
        """The encrypted arrays of one of `replies` train replies, checked against this strategy's key and codec.

        Each array may claim at most max_summands // replies summands (the bound configure_train
        sent is no larger), so that the sum of the replies stays within the codec's headroom.
        """
        bound = self.codec.max_summands // max(replies, 1)
        if len(content.array_records) != 1:
            raise InvalidArgumentError(f"expected one ArrayRecord, got {len(content.array_records)}")
        record = next(iter(content.array_records.values()))
        if NUM_EXAMPLES_KEY not in record:
            raise InvalidArgumentError(f"no encrypted sample count {NUM_EXAMPLES_KEY!r} (is paillier_mod installed?)")
        parsed = {}
        for key, array in record.items():
            if not is_encrypted(array):
                raise InvalidArgumentError(f"array {key!r} is plaintext (stype {array.stype!r}); it is never aggregated")
            encrypted = from_array(array, self.public_key)
            expected = None if key == NUM_EXAMPLES_KEY else self.codec
            if encrypted.codec != expected:
                raise InvalidArgumentError(f"array {key!r} was encoded with {encrypted.codec!r}, expected {expected!r}")
            limit = 1 if expected is None else bound
            if encrypted.summands > limit:
                raise InvalidArgumentError(
                    f"array {key!r} claims {encrypted.summands} summands, more than the {limit} a reply may hold")
            parsed[key] = encrypted
        if parsed[NUM_EXAMPLES_KEY].shape != (1,):
            raise InvalidArgumentError(f"{NUM_EXAMPLES_KEY!r} must have shape (1,)")
        return parsed

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sums the replies' ciphertexts per array (sum_arrays) and their encrypted counts; no decryption."""
        valid, _ = self._check_and_log_replies(replies, is_train=True, validate=False)
        accepted: list[tuple[Message, dict[str, EncryptedArray]]] = []
        for message in valid:
            try:
                parsed = self._parse_reply(message.content, len(valid))
            except (FastPaillierError, TypeError, ValueError) as exc:
                log(WARNING, "aggregate_train: reply from node %d left out: %s", message.metadata.src_node_id, exc)
                continue
            if accepted and set(parsed) != set(accepted[0][1]):
                log(WARNING, "aggregate_train: reply from node %d left out: its arrays have other keys",
                    message.metadata.src_node_id)
                continue
            accepted.append((message, parsed))
        if not accepted:
            if valid:
                log(WARNING, "aggregate_train: no reply could be aggregated; the global model is unchanged")
            return None, None
        log(INFO, "aggregate_train: adding the ciphertexts of %d replies", len(accepted))
        first = next(iter(accepted[0][0].content.array_records.values()))
        totals = ArrayRecord()
        for key in first.keys():
            total = sum_arrays([parsed[key] for _, parsed in accepted])
            totals[key] = to_array(total, dtype=first[key].dtype)
        metrics = self.train_metrics_aggr_fn([m.content for m, _ in accepted], self.weighted_by_key)
        return totals, metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Client metrics aggregated by evaluate_metrics_aggr_fn (by default an unweighted mean)."""
        valid, _ = self._check_and_log_replies(replies, is_train=False, validate=False)
        if not valid:
            return None
        return self.evaluate_metrics_aggr_fn([m.content for m in valid], self.weighted_by_key)


def aggregate_metrics_mean(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Unweighted mean of each metric (lists element-wise) over the replies that carry it; the weight key is skipped."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for record in records:
        for metrics in record.metric_records.values():
            for key, value in metrics.items():
                if key == weighted_by_key:
                    continue
                current = np.asarray(value, dtype=np.float64)
                if key in sums and sums[key].shape != current.shape:
                    continue
                sums[key] = sums[key] + current if key in sums else current
                counts[key] = counts.get(key, 0) + 1
    out = MetricRecord()
    for key, total in sums.items():
        mean = total / counts[key]
        out[key] = [float(v) for v in mean] if mean.ndim else float(mean)
    return out
