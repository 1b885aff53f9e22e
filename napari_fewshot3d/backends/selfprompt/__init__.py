"""The default backend, selfprompt-sam: a per-class head on frozen SAM embeddings, tracked slice by slice and
refined by SAM's decoder. Everything here is used by this backend only."""
