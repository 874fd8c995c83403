"""START-NET trial tracker: patients, cycles, cumulative kidney dose against the protocol rules."""
