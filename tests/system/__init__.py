"""The end-to-end suite: real Redis, real nodes and workers, real browsers."""
