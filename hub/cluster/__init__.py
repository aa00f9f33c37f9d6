"""Several hub copies sharing the work: who runs which partition (site), by leases in the state database."""
