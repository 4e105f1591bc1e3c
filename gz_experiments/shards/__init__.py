"""Shard folders: TFRecord files + `manifest.json`, the contract between sharding and the rest.

- `manifest`: the read-only manifest (what a folder holds) and `check_compatible(manifest, spec)`;
- `writer`: catalog -> shards (`run_shard`), planned, decoded in parallel, resumable;
- `folder`: the folder's state while it is written (lock, inputs, finished files, outputs);
- `dataset`: manifest -> tf.data (the only module here that imports TensorFlow);
- `default`: the embedded default dataset's shards, for train, tune and main.
"""
