//! (filled in by the discovery work)
