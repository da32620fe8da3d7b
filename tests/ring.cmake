# Tests of the ring module; owned by whoever works on ring.
