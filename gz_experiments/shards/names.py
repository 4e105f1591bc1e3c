"""File names inside a shard folder, shared by the manifest and the remote-folder copier."""

MANIFEST_NAME = "manifest.json"
REJECTED_NAME = "rejected.csv"
