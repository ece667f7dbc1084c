//! Every aggregate of srs as pure decide/evolve code.
