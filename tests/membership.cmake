# Tests of the membership module; owned by whoever works on membership.
