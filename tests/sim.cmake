# Tests of the sim module; owned by whoever works on sim.
