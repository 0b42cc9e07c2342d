"""fedtrain on Flower: the secure round of `fedtrain run` as a Flower ServerApp and ClientApp.

The ServerApp (`fedtrain.flower.server_app:app`) drives the same `fedtrain.server.Server` through the
same sequence of exchanges (`fedtrain.rounds.run_round`), each exchange one round trip of Flower
Messages; it holds the public key only and imports no torch.  The ClientApp
(`fedtrain.flower.client_app:app`) wraps a `fedtrain.client.Client` built from its SuperNode's node
config (client id, private key file, data folder) and carries it between messages in its Context.

- `fedtrain flower-setup`: the key holder's set-up (keys, the server's public bundle, the Flower App
  folder, the run directory);
- `fedtrain flower-evaluate`: a key holder opens the sealed global models the ServerApp kept and writes
  the run directory's metrics, checkpoints, predictions and report;
- `fedtrain flower-demo`: both, with a SuperLink and one SuperNode per hospital on 127.0.0.1.

Needs the `flwr` extra (flwr==1.42.0).  This package imports neither flwr nor torch by itself.
"""
